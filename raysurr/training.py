"""Retraining on Ray Train: `fit` runs a TorchTrainer (DDP; gloo on CPU, NCCL on GPU).

Each worker reads its shard of the labelled data once through Ray Data into local memory, then
trains with Adam on the study's weighted MAE, validates every epoch (metrics all-reduced across
workers), keeps the best-validation weights and stops early after `patience` epochs without
improvement. Rank 0 writes one self-describing checkpoint plus the per-epoch history.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch

from raysurr.config import ModelConfig, ResourcesConfig, TrainingConfig
from raysurr.models.checkpoint import SurrogateSpec, read_checkpoint, save_surrogate
from raysurr.models.fitting import Fit
from raysurr.runtime import check_fits
from raysurr.seeding import child_seed

log = logging.getLogger(__name__)
HISTORY = "history.json"


@dataclass(frozen=True)
class TrainResult:
    """What one training run leaves behind."""

    checkpoint: Path  # the folder holding surrogate.pt and history.json
    history: list[dict[str, float]]  # one record per epoch
    best_epoch: int
    best_val_wmae: float
    wall_s: float


@dataclass(frozen=True)
class _LoopConfig:
    """Everything a worker needs; small and picklable."""

    model: str
    init: dict[str, Any]
    training: dict[str, Any]
    seed: int
    threads: int
    warm_start: str | None
    meta: dict[str, Any]


def fit(
    datasets: dict[str, ray.data.Dataset],
    model: ModelConfig,
    channels: tuple[int, int],
    training: TrainingConfig,
    resources: ResourcesConfig,
    out_dir: str | Path,
    seed: int,
    warm_start: str | Path | None = None,
    meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a surrogate on Ray Train and return its best-validation checkpoint.

    Args:
        datasets: Ray Datasets "train" and "val" with float32 tensor columns `input` and `target`.
        model: the architecture section; `channels` = (input channels, output channels).
        out_dir: the checkpoint folder to write (surrogate.pt and history.json; replaced if present).
        seed: the seed of this training run (derive one per run and round).
        warm_start: a checkpoint to start from instead of fresh weights (`training.reinit: false`).
    """
    out_dir = Path(out_dir).resolve()
    init = {"in_channels": channels[0], "out_channels": channels[1], **model.options}
    loop = _LoopConfig(model.name, init, asdict(training), seed, max(1, int(resources.cpus_per_train_worker)),
                       str(warm_start) if warm_start else None, dict(meta or {}))  # fmt: skip
    scaling = scaling_config(resources)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    storage = Path(tempfile.mkdtemp(prefix=".ray-train-", dir=out_dir.parent))
    trainer = ray.train.torch.TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"loop": loop},
        scaling_config=scaling,
        run_config=ray.train.RunConfig(storage_path=str(storage), name="fit"),
        datasets=datasets,
    )
    start = time.perf_counter()
    try:
        result = trainer.fit()
        final = out_dir
        if final.exists():
            shutil.rmtree(final)
        with result.checkpoint.as_directory() as source:
            shutil.copytree(source, final)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    history = json.loads((final / HISTORY).read_text())
    best = min(history, key=lambda r: r["val_wmae"])
    return TrainResult(final, history, int(best["epoch"]), float(best["val_wmae"]), time.perf_counter() - start)


def scaling_config(resources: ResourcesConfig) -> ray.train.ScalingConfig:
    """Ray Train's worker group for the `resources` section; refused at once if no node could hold a worker."""
    per_worker = {"CPU": resources.cpus_per_train_worker}
    if resources.use_gpu:
        per_worker["GPU"] = resources.gpus_per_train_worker
    check_fits(per_worker, "each training worker", "lower resources.cpus_per_train_worker or "
               "gpus_per_train_worker, set resources.use_gpu: false, or add nodes that have them")  # fmt: skip
    return ray.train.ScalingConfig(
        num_workers=resources.train_workers, use_gpu=resources.use_gpu, resources_per_worker=per_worker
    )


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """The training loop every Ray Train worker runs."""
    loop: _LoopConfig = config["loop"]
    settings = TrainingConfig(**loop.training)
    torch.set_num_threads(loop.threads)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    if rank == 0 and not log.handlers:  # worker processes have no logging set up; Ray forwards stderr
        log.addHandler(logging.StreamHandler())
        log.setLevel(logging.INFO)
        log.propagate = False
    torch.manual_seed(child_seed(loop.seed, "init"))  # identical initial weights on every rank
    spec = SurrogateSpec(loop.model, loop.init, meta=loop.meta)
    net = spec.build()
    if loop.warm_start:
        net.load_state_dict(read_checkpoint(loop.warm_start)[1])
    device = ray.train.torch.get_device()
    model = ray.train.torch.prepare_model(net)
    order = torch.Generator().manual_seed(child_seed(loop.seed, "order", rank))
    run = Fit(model, _load_shard("train", device), _load_shard("val", device), settings, order, world)
    while not run.done:
        record = run.step()
        if rank == 0:
            log.info("epoch %d/%d train_loss %.5f val_wmae %.5f (%.1fs)", record["epoch"] + 1, settings.epochs,
                     record["train_loss"], record["val_wmae"], record["seconds"])  # fmt: skip
    _report(rank, run, spec)


def _load_shard(name: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """This worker's shard of a dataset as two tensors on `device`: [n, C, H, W] each.

    Rows are put in `sample_id` order when the dataset has that column, so that a re-run (a
    resumed round) sees the same data in the same order whatever order the blocks arrived in.
    """
    inputs, targets, ids = [], [], []
    shard = ray.train.get_dataset_shard(name)
    for batch in shard.iter_batches(batch_size=256, batch_format="numpy"):
        inputs.append(torch.tensor(batch["input"], dtype=torch.float32))
        targets.append(torch.tensor(batch["target"], dtype=torch.float32))
        ids.append(torch.tensor(batch["sample_id"]) if "sample_id" in batch else torch.empty(0))  # a copy: read-only
    if not inputs:
        return torch.empty(0), torch.empty(0)
    x, y, order = torch.cat(inputs), torch.cat(targets), torch.cat(ids)
    if len(order) == len(x):
        index = torch.argsort(order)
        x, y = x[index], y[index]
    return x.to(device), y.to(device)


def _report(rank: int, run: Fit, spec: SurrogateSpec) -> None:
    """Rank 0 writes the best weights and the history as one checkpoint; every rank reports once."""
    history = run.history
    if rank != 0:
        ray.train.report({"epochs": len(history)}, checkpoint=None)
        return
    meta = {**spec.meta, "epochs_run": len(history), "best_val_wmae": min(r["val_wmae"] for r in history)}
    with tempfile.TemporaryDirectory() as tmp:
        save_surrogate(run.best_network(), SurrogateSpec(spec.name, spec.init, spec.transform, meta), tmp)
        Path(tmp, HISTORY).write_text(json.dumps(history))
        ray.train.report({"epochs": len(history)}, checkpoint=ray.train.Checkpoint.from_directory(tmp))
