"""Architecture sweeps on Ray Tune: each trial trains in its own process with the shared `Fit` loop.

A trial's config is the base config with the trial's draws from `sweep.space` set (dotted keys,
as `--set` takes them). Trials report after every epoch; ASHA stops the ones that trail at each
rung. With the `two_sizes` objective a trial trains two models of its configuration side by side,
on the first `sizes[0]` and the first `sizes[1]` training samples, and is scored by the geometric
mean of their best validation errors: what active learning needs is a model that is good with
few labels *and* improves as labels are added (`gain` = error at the small size / at the large one).
Trials checkpoint every `sweep.checkpoint_every` epochs, so that `--resume` continues them.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.tune
import torch
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import BasicVariantGenerator

from raysurr.config import Config, SweepConfig, load_plugins, set_keys
from raysurr.distributed.runtime import check_fits
from raysurr.models.fitting import Fit, FitSpec
from raysurr.progress import say
from raysurr.seeding import child_seed
from raysurr.tracking import experiment_id, mlflow_module, store_uri

METRIC = "score"
STATE = "trial.pt"
EXPERIMENT = "tune"  # the Tune experiment's folder inside the sweep folder


@dataclass(frozen=True)
class SweepData:
    """The labelled samples every trial trains on, [n, C, H, W] arrays (put in the object store once)."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    sizes: tuple[int, ...]  # training-set sizes a trial trains at: one (val objective) or two (two_sizes)
    symmetries: tuple[str, ...] = ()  # the labelling simulator's, for `training.augment: auto`


def search_space(space: dict[str, Any]) -> dict[str, Any]:
    """The sweep section's space as Tune sampling objects (keys stay dotted config paths)."""
    out: dict[str, Any] = {}
    for key, spec in space.items():
        if not isinstance(spec, dict):
            out[key] = spec
            continue
        kind, values = next(iter(spec.items()))
        if kind == "choice":
            out[key] = ray.tune.choice(list(values))
        elif kind == "grid":
            out[key] = ray.tune.grid_search(list(values))
        else:
            out[key] = getattr(ray.tune, kind)(*values)  # uniform, loguniform, randint
    return out


def train_trial(params: dict[str, Any], base: dict[str, Any], data: SweepData, threads: int) -> None:
    """One Tune trial: train at each size, report the objective every epoch, checkpoint on schedule."""
    config = Config.from_dict(set_keys(base, params))
    load_plugins(config.plugins)
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not a line per checkpoint
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # Tune exposes only this trial's GPUs
    channels = (data.train_x.shape[1], data.train_y.shape[1])
    spec = FitSpec.of(config.model, channels, config.training, config.seed, threads=threads, plugins=config.plugins,
                      symmetries=data.symmetries)  # fmt: skip
    val = (torch.tensor(data.val_x, device=device), torch.tensor(data.val_y, device=device))
    fits = []
    for size in data.sizes:  # the same initial weights at every size, its own shuffling
        train = (torch.tensor(data.train_x[:size], device=device), torch.tensor(data.train_y[:size], device=device))
        fits.append(spec.start(train, val, device, stream=size)[0])
    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            states = torch.load(Path(folder, STATE), map_location=device, weights_only=True)
        for run, state in zip(fits, states, strict=True):
            run.load_state_dict(state)
    every = config.sweep.checkpoint_every
    while not all(run.done for run in fits):
        for run in fits:
            if not run.done:
                run.step()
        metrics = trial_metrics(fits, data.sizes)
        epochs = int(metrics["epochs"])
        if every and (epochs % every == 0 or metrics["finished"]):
            with tempfile.TemporaryDirectory() as folder:
                torch.save([run.state_dict() for run in fits], Path(folder, STATE))
                ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(folder))
        else:
            ray.tune.report(metrics)


def trial_metrics(fits: list[Fit], sizes: tuple[int, ...]) -> dict[str, float]:
    """What a trial reports after an epoch; `score` (lower is better) is what ASHA and the ranking use."""
    bests = [run.best for run in fits]
    score = bests[0] if len(bests) == 1 else math.exp(sum(math.log(max(b, 1e-30)) for b in bests) / len(bests))
    metrics: dict[str, float] = {
        METRIC: score,
        "val_wmae": bests[-1],  # the best validation error at the largest size
        "epochs": max(len(run.history) for run in fits),
        "finished": float(all(run.done for run in fits)),  # ("done" is Tune's own key)
    }
    if len(fits) == 2:
        metrics.update(val_wmae_small=bests[0], val_wmae_large=bests[1], gain=bests[0] / bests[1],
                       n_small=sizes[0], n_large=sizes[1])  # fmt: skip
    return metrics


def trial_count(sweep: SweepConfig) -> int:
    """How many trials the sweep runs: each draw repeats for every combination of the grid keys."""
    return sweep.trials * math.prod(len(s["grid"]) for s in sweep.space.values() if isinstance(s, dict) and "grid" in s)


class TrialLines(ray.tune.Callback):
    """One line per trial result and trial end on stderr, instead of Tune's result tables."""

    def __init__(self, total: int) -> None:
        self.total = total  # Tune creates trials lazily under a concurrency cap: len(trials) is not the total
        self.ended = 0

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        extra = f" gain {result['gain']:.3g}" if "gain" in result else ""
        say(f"trial {trial.trial_id} epoch {int(result['epochs'])}: score {result[METRIC]:.5g}{extra}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.ended += 1
        say(f"trial {trial.trial_id} ended ({self.ended}/{self.total} trials ended)")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.ended += 1
        say(f"trial {trial.trial_id} failed: see {trial.path}")


def run_sweep(config: Config, data: SweepData, folder: Path, resume: bool) -> ray.tune.ResultGrid:
    """Run (or continue) the sweep; the Tune experiment lives in `folder / "tune"`."""
    sweep = config.sweep
    check_fits({"CPU": sweep.cpus_per_trial, "GPU": sweep.gpus_per_trial}, "each trial",
               "lower sweep.cpus_per_trial or sweep.gpus_per_trial, or add nodes that have them")  # fmt: skip
    threads = max(1, int(sweep.cpus_per_trial))
    trainable = ray.tune.with_parameters(train_trial, base=config.to_dict(), data=data, threads=threads)
    trainable = ray.tune.with_resources(trainable, {"cpu": sweep.cpus_per_trial, "gpu": sweep.gpus_per_trial})
    path = folder.resolve() / EXPERIMENT
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # small trials save often
    if resume:
        return ray.tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True).fit()
    scheduler = ASHAScheduler(max_t=config.training.epochs, grace_period=sweep.grace_period,
                              reduction_factor=sweep.reduction_factor)  # fmt: skip
    tuner = ray.tune.Tuner(
        trainable,
        param_space=search_space(sweep.space),
        tune_config=ray.tune.TuneConfig(
            metric=METRIC,
            mode="min",
            scheduler=scheduler,
            # The generator caps concurrency itself: Tune ignores max_concurrent_trials beside it (with a warning).
            search_alg=BasicVariantGenerator(
                random_state=child_seed(config.seed, "sweep") % 2**32, max_concurrent=sweep.max_concurrent or 0
            ),
            num_samples=sweep.trials,
        ),
        run_config=ray.tune.RunConfig(
            name=EXPERIMENT,
            storage_path=str(folder.resolve()),
            checkpoint_config=ray.tune.CheckpointConfig(num_to_keep=1),
            failure_config=ray.tune.FailureConfig(max_failures=1),
            callbacks=[TrialLines(trial_count(sweep)), *tracking_callbacks(config, folder)],
            verbose=0,
        ),
    )
    return tuner.fit()


def tracking_callbacks(config: Config, folder: Path) -> list[ray.tune.Callback]:
    """With `tracking.mlflow`, Ray Tune's MLflow integration: one MLflow run per trial (its draws as parameters, its
    per-epoch results as metrics), in the experiment named by the config, in the store beside the sweep folder."""
    if not config.tracking.mlflow:
        return []
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    mlflow = mlflow_module()
    uri = store_uri(config.tracking, folder)
    name = config.tracking.experiment or config.name
    experiment_id(mlflow.MlflowClient(tracking_uri=uri), name, uri)  # its artifacts beside the store, not in the cwd
    tags = {"raysurr.folder": str(folder.resolve())}
    return [MLflowLoggerCallback(tracking_uri=uri, experiment_name=name, tags=tags)]


def can_resume(folder: Path) -> bool:
    return ray.tune.Tuner.can_restore(str(folder.resolve() / EXPERIMENT))
