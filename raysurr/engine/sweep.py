"""A sweep of surrogate architectures on Ray Tune (ASHA on validation error), from a config's `sweep` section.

The search space, objective and trial resources are the config's `sweep` section (raysurr/config.py,
SweepConfig). Trials train on `sweep.data` (a `raysurr.dataset` folder with train and val splits) or,
without it, on a set labelled the way the AL run draws its initial set: `pool.initial` samples (twice
that for the `two_sizes` objective) plus `pool.val`, kept in `FOLDER/data` for a resumed sweep. The
folder gets `trials.csv` (one row per trial: its draws, score, validation errors, epochs run, how it
ended), `best.yaml` (the winner's `model` and `training` sections, to lay over a run's config) and
`sweep.png` (each trial's score per epoch).
"""

from __future__ import annotations

import csv
import itertools
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from raysurr.config import Config, load_config
from raysurr.data.dataset import open_dataset, read_arrays, read_split
from raysurr.data.store import staged_directory, write_config
from raysurr.distributed.runtime import connect
from raysurr.engine.datasets import dataset_simulator, refuse_physics_term, write_dataset
from raysurr.engine.folders import claim_folder, claim_new_folder, output_folder
from raysurr.errors import ConfigError, DatasetError, RaysurrError
from raysurr.models import MODELS, build_model
from raysurr.plots import plot_sweep
from raysurr.progress import say
from raysurr.simulators import build_simulator
from raysurr.tracking import check_tracking


def new_sweep(config: Config, out: Path | None = None, address: str | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Check the sweep, create its folder (`out`, or runs/sweep-NAME-TIME) and run it; the folder and one row per
    trial, best first. Nothing is created before every check has passed."""
    if not config.sweep.space:
        raise ConfigError("sweep.space is empty: give the keys to search, e.g. model.base_channels: {choice: [8, 16]}")
    check_space(config)
    folder = output_folder(out, f"sweep-{config.name}", "sweep")
    connect(address)
    with claim_new_folder(folder, "sweep"):
        write_config(config, folder)
        return folder, run_sweep(folder, config)


def resume_sweep(folder: Path, overrides: Sequence[str] = (), address: str | None = None) -> list[dict[str, Any]]:
    """Continue the interrupted sweep in `folder` (its own config, `overrides` laid over it)."""
    from raysurr.distributed import tuning  # Ray Tune loads slowly: only once the folder is known to be one

    with claim_folder(folder, "sweep"):
        if not tuning.can_resume(folder):
            raise ConfigError(f"--resume {str(folder)!r} is not a sweep folder that can be continued")
        config = load_config(folder / "config.yaml", overrides)
        check_space(config)
        connect(address)
        return run_sweep(folder, config, resume=True)


def run_sweep(folder: Path, config: Config, resume: bool = False) -> list[dict[str, Any]]:
    """Run (or continue) the sweep in `folder` (its config written there, Ray connected) and write trials.csv,
    best.yaml and sweep.png; one row per trial, best first."""
    from raysurr.distributed import tuning  # Ray Tune loads slowly: only once the config is known to be good

    data = sweep_data(config, folder)
    say(
        f"plan: {config.sweep.trials} draws of {len(config.sweep.space)} keys, up to {config.training.epochs} epochs "
        f"each, objective {config.sweep.objective}, training sizes {list(data.sizes)}, {len(data.val_x)} validation "
        "samples"
    )
    start = time.perf_counter()
    results = tuning.run_sweep(config, data, folder, resume=resume)
    rows, curves = collect(results, config)
    if not any(math.isfinite(row["score"]) for row in rows):
        raise RaysurrError(f"no trial of the sweep finished an epoch; see the trial errors under {folder / 'tune'}")
    write_outputs(folder, config, rows, curves)
    say(f"wrote {folder} ({len(rows)} trials, {time.perf_counter() - start:.0f}s)")
    return rows


def check_space(config: Config) -> None:
    """Fail before any trial starts: every model the space can pick must exist and take the space's options
    (and there is no physics term: a sweep has no unlabelled pool).

    Builds a probe model per model name and per key at each end of its range (the other keys at
    their first value) and runs one zero input of the simulator's shape through it.
    """
    refuse_physics_term(config, "tune")
    check_tracking(config)
    space = config.sweep.space
    name_spec = space.get("model.name", config.model.name)
    names = _values(name_spec)
    for name in names:
        if not isinstance(name, str) or name not in MODELS:
            raise ConfigError(f"sweep.space.model.name: unknown model {name!r}; registered: {', '.join(MODELS)}")
    simulator = build_simulator(config.simulator)
    channels = (simulator.input_shape[0], simulator.output_shape[0])
    zeros = torch.zeros(1, *simulator.input_shape)
    others = {key: _values(spec) for key, spec in space.items() if key != "model.name"}
    first = {key: values[0] for key, values in others.items()}
    probes = [{}] + [{key: values[-1]} for key, values in others.items() if len(values) > 1]
    for name, change in itertools.product(names, probes):
        params = {"model.name": name, **first, **change}
        try:
            probe = config.updated(params)
            with torch.no_grad():
                shape = tuple(build_model(probe.model, *channels).eval()(zeros).shape[1:])
            if shape != tuple(simulator.output_shape):
                raise ValueError(f"the model outputs {list(shape)}, the simulator {list(simulator.output_shape)}")
        except (RaysurrError, ValueError, TypeError, RuntimeError) as exc:
            drawn = ", ".join(f"{k}={v!r}" for k, v in params.items())
            raise ConfigError(f"sweep.space: a trial with {drawn} is invalid: {exc}") from None


def _values(spec: Any) -> list[Any]:
    """The listed values of a space entry, or the ends of its range; a fixed value alone."""
    if not isinstance(spec, dict):
        return [spec]
    kind, values = next(iter(spec.items()))
    if kind == "randint":
        return [values[0], values[1] - 1]
    return list(values)


def sweep_data(config: Config, folder: Path):
    """The arrays every trial trains on, and the training sizes."""
    from raysurr.distributed.tuning import SweepData  # Ray Tune loads slowly: only once the config is good

    sweep, two = config.sweep, config.sweep.objective == "two_sizes"
    root = Path(sweep.data) if sweep.data else folder / "data"
    if not sweep.data and not (root / "dataset.yaml").exists():
        n_train = 2 * config.pool.initial if two else config.pool.initial
        say(f"labelling the sweep's data: {n_train} training and {config.pool.val} validation samples")
        with staged_directory(root) as stage:
            write_dataset(config, {"train": n_train, "val": config.pool.val}, stage, "sweep")
    info = open_dataset(root)
    for split in ("train", "val"):
        if split not in info.splits:
            raise DatasetError(f"sweep.data {str(root)!r} has no {split!r} split; write it with "
                               "python -m raysurr.dataset --split TRAIN,VAL")  # fmt: skip
    train = read_arrays(read_split(root, "train", ["sample_id", "input", "target"]))
    val = read_arrays(read_split(root, "val", ["sample_id", "input", "target"]))
    n = len(train["input"])
    sizes = (sweep.sizes or (n // 2, n)) if two else (n,)
    if sizes[-1] > n or sizes[0] < 1:
        raise DatasetError(f"sweep.sizes {list(sizes)} do not fit the {n} training samples of {str(root)!r}")
    symmetries = build_simulator(dataset_simulator(info)).symmetries
    return SweepData(train["input"], train["target"], val["input"], val["target"], tuple(int(s) for s in sizes),
                     tuple(symmetries))  # fmt: skip


def collect(results, config: Config) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """One row per trial (sorted best first) and each trial's score per epoch."""
    rows, curves = [], {}
    for result in results:
        last = result.metrics or {}
        trial = str(last.get("trial_id", Path(result.path).name))
        history = result.metrics_dataframe
        scores = [] if history is None or "score" not in history else history["score"].tolist()
        epochs = int(last.get("epochs", 0))
        if result.error is not None:
            ended = "error"
        elif last.get("finished"):
            ended = "finished" if epochs >= config.training.epochs else "patience"
        else:
            ended = "asha"  # stopped by the scheduler before its epochs ran out
        row = {"trial": trial, **{k: v for k, v in (result.config or {}).items()}, "score": last.get("score", math.nan),
               "val_wmae": last.get("val_wmae", math.nan), "epochs": epochs, "ended": ended}  # fmt: skip
        for key in ("val_wmae_small", "val_wmae_large", "gain"):
            if key in last:
                row[key] = last[key]
        rows.append(row)
        curves[trial] = scores
    rows.sort(key=lambda r: (not math.isfinite(r["score"]), r["score"]))
    return rows, curves


def write_outputs(folder: Path, config: Config, rows: list[dict[str, Any]], curves: dict[str, list[float]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(folder / "trials.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    best = rows[0]
    winner = config.updated({k: best[k] for k in config.sweep.space})
    sections = {"model": winner.model.to_dict(), "training": winner.to_dict()["training"]}
    header = (f"# The best trial ({best['trial']}) of the sweep in {folder}: score {best['score']:.5g}, "
              f"{best['epochs']} epochs.\n# Lay it over a run's config: python -m raysurr.drive --config RUN.yaml "
              f"--config {folder / 'best.yaml'}\n")  # fmt: skip
    (folder / "best.yaml").write_text(header + yaml.safe_dump(sections, sort_keys=False))
    plot_sweep(curves, folder / "sweep.png", ylabel=f"score ({config.sweep.objective})")
