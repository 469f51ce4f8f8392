"""Batch inference on Ray Data: `evaluate` computes the study's metrics per sample, `score_pool`
scores the unlabelled candidates for an acquisition function; only small per-sample rows (ids,
metrics, scores) come back to the driver.

Each pass builds its model-holding class (`SampleMetrics`, `PoolScorer`) once per worker process.
On GPUs the workers are an actor pool (CUDA set up once per actor). On CPUs they are tasks, which
Ray runs in its pooled worker processes: a process that scored last round has torch imported and
only loads this round's checkpoint, where a fresh actor pool costs ~10 s of start-up every pass.
"""

from __future__ import annotations

import math
import uuid
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.data
import torch

from raysurr.acquisition import build_acquisition
from raysurr.config import AcquisitionConfig, Config, ResourcesConfig, SimulatorConfig, load_plugins
from raysurr.data.store import write_text
from raysurr.distributed.runtime import check_fits
from raysurr.errors import DatasetError
from raysurr.models.checkpoint import checkpoint_bytes, load_surrogate
from raysurr.models.losses import error_metrics, error_spread, per_sample_weighted_mae, roi_mae
from raysurr.predictor import ExtrapolationWarning, load_bytes
from raysurr.progress import Progress
from raysurr.seeding import child_seed
from raysurr.simulators import build_simulator, evaluation_section, run_simulation

# Beside the error metrics (`losses.error_metrics`), each evaluation has the same errors of two trivial
# models, predicting zero and the training set's mean target, and its skill against each:
# 1 - error / baseline error (> 0: better than the trivial model).
BASELINES = ("zero", "mean")


def read_samples(path: str | Path | list[Path], columns: list[str] | None = None) -> ray.data.Dataset:
    """A Parquet file, a folder of them or a list of files as a Ray Dataset (optionally only some columns), one
    block per file.

    The files are read here and handed to Ray's object store, so the workers that use the data may
    be on nodes that do not see this disk (run folders live on the node of the command).
    """
    files = path if isinstance(path, list) else [Path(path)]
    if len(files) == 1 and files[0].is_dir():
        files = sorted(f for f in files[0].glob("*.parquet") if not f.name.startswith((".", "_")))
    if not files:
        raise DatasetError(f"{str(path)!r} holds no Parquet files")
    return ray.data.from_arrow([pq.read_table(f, columns=columns) for f in files])


class SampleMetrics:
    """Per-sample weighted MAE and region MAEs of a surrogate; used as a `map_batches` class.

    The weighted MAE is relative to the scale s of the validation targets the checkpoint was validated on
    (`training.normalize: auto`; 1 with `none`): mean((1 + w2 tanh(w |y| / s)) |ŷ - y|) / s; the region
    MAEs are plain L1 errors in the data's units, over the simulator's `region_of_interest` of each input and over
    the rest (named by its `regions`).
    """

    def __init__(
        self,
        checkpoint: str | bytes,
        loss_w: float,
        loss_w2: float,
        simulator: SimulatorConfig,
        plugins: tuple[str, ...] = (),
        threads: int = 1,
    ) -> None:
        load_plugins(plugins)
        self.threads = threads
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_surrogate(checkpoint, self.device)
        self.simulator = build_simulator(simulator)
        self.w, self.w2 = loss_w, loss_w2

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch.set_num_threads(self.threads)  # a pooled process may have run a task with other settings
        x = torch.tensor(batch["input"], device=self.device)  # a copy: Ray's arrays are read-only
        y = torch.tensor(batch["target"], device=self.device)
        pred = self.model(x)
        region = torch.as_tensor(self.simulator.region_of_interest(np.asarray(batch["input"])), device=self.device)
        regions = roi_mae(pred, y, region, self.simulator.regions)
        out = {"sample_id": batch["sample_id"], "wmae": self._wmae(pred, y),
               **{f"mae_{name}": values.cpu().numpy() for name, values in regions.items()}}  # fmt: skip
        mean = self.model.baseline
        for name, guess in {"zero": torch.zeros_like(y), "mean": None if mean is None else mean.expand_as(y)}.items():
            missing = np.full(len(y), np.nan)
            out[f"wmae_{name}"] = missing if guess is None else self._wmae(guess, y)
            out[f"mae_all_{name}"] = missing if guess is None else roi_mae(guess, y, region)["all"].cpu().numpy()
        return out

    def _wmae(self, pred: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        scaled = self.model.metric.forward  # relative to the validation targets' scale, as validated in training
        return per_sample_weighted_mae(scaled(pred), scaled(y), self.w, self.w2).cpu().numpy()


def evaluate(checkpoint: str | Path, dataset: ray.data.Dataset, config: Config) -> dict[str, float]:
    """Mean metrics of a checkpoint over a dataset (with `sample_id`, `input`, `target`).

    Returns:
        `losses.error_metrics(simulator.regions)`, `losses.SKILLS`, `losses.SPREAD` and "n"; region means
        skip samples without pixels of that region.
    """
    check_score_fit(config.resources)
    return _means(_metrics(checkpoint, _in_blocks(dataset, config.resources), config))


@dataclass(frozen=True)
class Splits:
    """Evaluation splits read once into Ray's object store, in blocks for the workers; reusable across passes."""

    dataset: ray.data.Dataset
    ids: dict[str, np.ndarray]  # each split's sample ids


def read_splits(splits: dict[str, Path], resources: ResourcesConfig) -> Splits:
    """Several Parquet folders of samples as one dataset; their sample ids must be distinct (as in one
    `raysurr.dataset` folder's splits)."""
    ids = {name: pq.read_table(path, columns=["sample_id"]).column(0).to_numpy() for name, path in splits.items()}
    every = np.concatenate(list(ids.values()))
    if len(np.unique(every)) != len(every):
        raise ValueError(f"evaluate_splits: the splits {list(splits)} share sample ids")
    datasets = [read_samples(path) for path in splits.values()]
    return Splits(_in_blocks(datasets[0].union(*datasets[1:]), resources), ids)


def evaluate_splits(
    checkpoint: str | Path, splits: dict[str, Path] | Splits, config: Config, samples_to: Path | None = None
) -> dict[str, dict[str, float]]:
    """`evaluate` over several splits in one Ray Data pass, not one each.

    Args:
        splits: Parquet folders by split name, or the `read_splits` of them (read once, evaluated every round).
        samples_to: a CSV file to write every sample's errors to (`split`, `sample_id`, `error_metrics`), e.g. for
            where a model errs and how unevenly (`raysurr headroom`).
    """
    check_score_fit(config.resources)
    if not isinstance(splits, Splits):
        splits = read_splits(splits, config.resources)
    frame = _metrics(checkpoint, splits.dataset, config)
    parts = {name: frame[np.isin(frame["sample_id"], members)] for name, members in splits.ids.items()}
    if samples_to is not None:
        columns = ["sample_id", *error_metrics(build_simulator(config.simulator).regions)]
        table = pd.concat([part[columns].assign(split=name) for name, part in parts.items()])
        write_text(samples_to, table[["split", *columns]].sort_values(["split", "sample_id"]).to_csv(index=False))
    return {name: _means(part) for name, part in parts.items()}


def _means(frame) -> dict[str, float]:
    """Mean metrics, the trivial models' errors and the skill against each:
    `wmae_skill_zero`, `wmae_skill_mean`, `mae_skill_zero`, `mae_skill_mean`."""
    with warnings.catch_warnings():  # a region no sample has, or a checkpoint without a mean target: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        names = [name for name in frame.keys() if name != "sample_id"]  # noqa: SIM118 (a pandas frame or a dict)
        out = {name: float(np.nanmean(frame[name])) if len(frame) else math.nan for name in names}
    for base in BASELINES:
        out[f"wmae_skill_{base}"] = _skill(out["wmae"], out[f"wmae_{base}"])
        out[f"mae_skill_{base}"] = _skill(out["mae_all"], out[f"mae_all_{base}"])
    return {**out, **error_spread(np.asarray(frame["wmae"]) if len(frame) else np.empty(0)), "n": len(frame)}


def _skill(error: float, baseline: float) -> float:
    return 1.0 - error / baseline if baseline > 0 else math.nan


def check_score_fit(resources: ResourcesConfig) -> None:
    """One-line error now, rather than an actor pool pending forever, if no node can host a scoring actor."""
    check_fits({"CPU": 1, "GPU": resources.gpus_per_score_actor if resources.use_gpu else 0},
               "each scoring actor", "lower resources.gpus_per_score_actor, set resources.use_gpu: false, "
               "or add nodes that have them")  # fmt: skip


def _in_blocks(dataset: ray.data.Dataset, resources: ResourcesConfig) -> ray.data.Dataset:
    """The samples in several blocks per worker (so that every worker has work), materialized now:
    on a small machine an actor pool holding every CPU would leave the repartition waiting forever."""
    columns = ["sample_id", "input", "target"]
    return dataset.select_columns(columns).repartition(4 * resources.score_actors).materialize()


def _metrics(checkpoint: str | Path, dataset: ray.data.Dataset, config: Config):
    """A pandas frame of per-sample metrics: sample_id, `error_metrics`, the trivial models' errors."""
    kwargs = {"checkpoint": checkpoint_bytes(checkpoint), "loss_w": config.training.loss_w,
              "loss_w2": config.training.loss_w2, "simulator": config.simulator, "plugins": config.plugins}  # fmt: skip
    return _map(dataset, SampleMetrics, kwargs, config.resources).to_pandas()


def _map(dataset: ray.data.Dataset, udf: type, kwargs: dict[str, Any], resources: ResourcesConfig,
         batch_size: int = 64) -> ray.data.Dataset:  # fmt: skip
    """`udf(**kwargs)` over the dataset's batches: an actor pool on GPUs, tasks in reused processes on CPUs."""
    workers = resources.score_actors
    if resources.use_gpu:
        return dataset.map_batches(udf, fn_constructor_kwargs=kwargs, batch_size=batch_size,
                                   compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
                                   num_gpus=resources.gpus_per_score_actor)  # fmt: skip
    fn_kwargs = {"udf": udf, "kwargs": kwargs, "token": uuid.uuid4().hex}
    return dataset.map_batches(_call_cached, fn_kwargs=fn_kwargs, batch_size=batch_size,
                               compute=ray.data.TaskPoolStrategy(size=workers), num_cpus=1)  # fmt: skip


_INSTANCES: OrderedDict[str, Any] = OrderedDict()  # per worker process: recent passes' instances, by token
_KEEP = 4  # passes of runs side by side may share a process; older instances (and their models) are dropped


def _call_cached(batch: dict[str, np.ndarray], udf: type, kwargs: dict[str, Any], token: str) -> dict[str, np.ndarray]:
    """Apply the pass's `udf(**kwargs)`, built on this process's first batch of the pass and kept for the rest."""
    if token not in _INSTANCES:
        _INSTANCES[token] = udf(**kwargs)
        while len(_INSTANCES) > _KEEP:
            _INSTANCES.popitem(last=False)
    _INSTANCES.move_to_end(token)
    return _INSTANCES[token](batch)


@dataclass(frozen=True)
class ScoreRequest:
    """What a pass over the pool scores with: `PoolScorer`'s arguments.

    Attributes:
        checkpoints: the models `score_batch` receives, in the order the function's `needs` declares them.
        exclude: candidate ids not to score (labelled, failed).
        seed: MC dropout's masks (the same for the same batch).
    """

    acquisition: AcquisitionConfig
    checkpoints: list[str | Path | bytes]
    simulator: SimulatorConfig
    plugins: tuple[str, ...] = ()
    exclude: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    seed: int = 0


class PoolScorer:
    """Scores candidate parameter sets; used as a `map_batches` class (or called directly in-process).

    Loads the checkpoints and builds the simulator once per actor; per batch it drops candidates
    already labelled, renders their inputs, and returns `sample_id`, `score` and, for functions
    that select on model features, `vector`.
    """

    def __init__(
        self,
        acquisition: AcquisitionConfig,
        checkpoints: list[str | bytes],
        simulator: SimulatorConfig,
        plugins: tuple[str, ...] = (),
        exclude: np.ndarray | None = None,
        seed: int = 0,
        threads: int = 1,
    ) -> None:
        load_plugins(plugins)
        self.threads = threads
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.acquisition = build_acquisition(acquisition)
        self.models = [load_surrogate(path, self.device) for path in checkpoints]
        self.simulator = build_simulator(simulator)
        self.acquisition.bind(self.simulator)
        # The hindsight oracle's true outputs: the simulator's evaluation settings (exact and at once where it has them)
        self.labeller = build_simulator(evaluation_section(simulator)) if self.acquisition.needs.truth else None
        self.exclude = np.asarray(exclude if exclude is not None else [], dtype=np.int64)
        self.seed = seed

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch.set_num_threads(self.threads)  # a pooled process may have run a task with other settings
        keep = ~np.isin(batch["sample_id"], self.exclude)
        ids = np.asarray(batch["sample_id"])[keep]
        params = np.column_stack([np.asarray(batch[name])[keep] for name in self.simulator.parameter_names])
        out: dict[str, np.ndarray] = {"sample_id": ids}
        if not self.acquisition.needs.members:  # random, diversity: nothing to compute per sample here
            return {**out, "score": np.zeros(len(ids))}
        if not len(ids):
            return {**out, "score": np.empty(0), **({"vector": np.empty((0, 1))} if self._features else {})}
        x = torch.tensor(self.simulator.render(params), device=self.device)
        torch.manual_seed(child_seed(self.seed, "score", int(ids[0])))  # MC dropout: the same masks for the same batch
        truth = {}
        if self.labeller is not None:
            outputs = run_simulation(self.labeller, params, ids).outputs
            truth = {"targets": torch.tensor(outputs, device=self.device)}
        scores = self.acquisition.score_batch(self.models, x, **truth)
        out["score"] = np.zeros(len(ids)) if scores is None else scores.double().cpu().numpy()
        if self._features:
            out["vector"] = self.acquisition.features_batch(self.models, x).double().cpu().numpy()
        return out

    @property
    def _features(self) -> bool:
        return self.acquisition.needs.vectors == "features"


def pool_dataset(pool: str | Path, resources: ResourcesConfig) -> ray.data.Dataset:
    """A candidate pool (Parquet) in Ray's object store, several blocks per scoring worker."""
    return read_samples(pool).repartition(4 * resources.score_actors).materialize()


def score_pool(
    pool: str | Path | ray.data.Dataset,
    request: ScoreRequest,
    resources: ResourcesConfig,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Score the unlabelled rows of a candidate pool on Ray Data.

    Args:
        pool: Parquet folder or file with `sample_id` and the simulator's parameter columns, or its
            `pool_dataset` (read once, scored every round).
        request: what to score with (the acquisition function, its checkpoints, the ids to leave out, ...).
        resources: `score_actors` workers score in parallel; with `use_gpu` each actor takes `gpus_per_score_actor`.

    Returns:
        {"sample_id": [N], "score": [N], "vector": [N, F] if the function selects on features},
        sorted by sample_id. Only these small arrays reach the driver.
    """
    check_score_fit(resources)
    dataset = pool if isinstance(pool, ray.data.Dataset) else pool_dataset(pool, resources)
    kwargs = {**request.__dict__, "checkpoints": [checkpoint_bytes(path) for path in request.checkpoints]}
    rows = _map(dataset, PoolScorer, kwargs, resources, batch_size)
    columns: dict[str, list] = {}
    progress = Progress("score", total=dataset.count() - len(request.exclude), failures=False)
    for batch in rows.iter_batches(batch_size=1024, batch_format="numpy"):
        for name, values in batch.items():
            columns.setdefault(name, []).append(values)
        progress.update(done=len(batch["sample_id"]))
    progress.close()
    out = {name: np.concatenate(parts) for name, parts in columns.items()}
    if not out:
        return {"sample_id": np.empty(0, dtype=np.int64), "score": np.empty(0)}
    order = np.argsort(out["sample_id"], kind="stable")
    return {name: values[order] for name, values in out.items()}


ROW = "_raysurr_row"  # each parameter set's row in the caller's table (a name no simulator's parameter has)


class BatchPredictor:
    """Fields for batches of parameter sets; used as a `map_batches` class: loads the surrogate once per worker.

    Args:
        checkpoint, members: the checkpoint's contents and its ensemble members' (for the spread).
        std: also return each field's spread (`std`).
    """

    def __init__(self, checkpoint: bytes, members: list[bytes], std: bool, batch_size: int, threads: int = 1) -> None:
        self.predictor = load_bytes(checkpoint, members, threads=threads)
        self.std, self.batch_size, self.threads = std, batch_size, threads

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch.set_num_threads(self.threads)
        names = self.predictor.parameter_names
        params = np.column_stack([np.asarray(batch[name], dtype=np.float64) for name in names])
        with warnings.catch_warnings():  # the command checked the ranges and said so once
            warnings.simplefilter("ignore", ExtrapolationWarning)
            result = self.predictor.predict(params, return_std=self.std, batch_size=self.batch_size)
        fields, spread = result if self.std else (result, None)
        return {**{name: batch[name] for name in (ROW, *names)}, "prediction": fields,
                **({"std": spread} if self.std else {})}  # fmt: skip


def predict_table(table: pa.Table, checkpoint: Path, members: list[Path], std: bool, resources: ResourcesConfig,
                  batch_size: int = 256):  # fmt: skip
    """Predict every row of a table of parameter sets on Ray Data, in several blocks per worker; yields numpy batches
    (`ROW`, the parameters, `prediction`, `std`) in the table's order."""
    check_score_fit(resources)
    rows = table.append_column(ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    blocks = max(4 * resources.score_actors, math.ceil(table.num_rows / 4096))
    dataset = ray.data.from_arrow(rows).repartition(blocks)
    dataset.context.execution_options.preserve_order = True  # the output file's rows follow the input's
    kwargs = {"checkpoint": checkpoint_bytes(checkpoint), "members": [checkpoint_bytes(m) for m in members],
              "std": std, "batch_size": batch_size}  # fmt: skip
    yield from _map(dataset, BatchPredictor, kwargs, resources, batch_size).iter_batches(
        batch_size=batch_size, batch_format="numpy")  # fmt: skip
