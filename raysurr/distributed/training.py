"""Retraining on Ray: `fit` trains on Ray Train (DDP; gloo on CPU, NCCL on GPU) or in one Ray task.

Several workers (`resources.train_workers > 1`) run a TorchTrainer: each reads its shard of the
labelled data through Ray Data, and the losses and validation errors are all-reduced. One worker
needs no process group, so it trains in a single Ray task instead: no controller and worker group
to start every round (13-25 s on 2 cores), and on CPUs Ray reuses the task's warm process (torch
already imported) from round to round. Both run the same loop (`Fit`): Adam on the study's weighted
MAE, validation every epoch, best-validation weights kept, early stop after `patience` epochs
without improvement. The checkpoint (best weights plus the per-epoch history) travels back through
Ray, not a shared disk, and is written to `out_dir` on the caller's node; the warm-start weights
travel out the same way.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raysurr.config import ResourcesConfig
from raysurr.distributed.runtime import check_fits, quiet_ray_data
from raysurr.models.checkpoint import SurrogateSpec, read_checkpoint, save_surrogate
from raysurr.models.fitting import Fit, FitSpec
from raysurr.progress import Progress

HISTORY = "history.json"


@dataclass(frozen=True)
class TrainResult:
    """What one training run leaves behind."""

    checkpoint: Path  # the folder holding surrogate.pt and history.json
    history: list[dict[str, float]]  # one record per epoch
    best_epoch: int
    best_val_wmae: float
    wall_s: float


def fit(
    spec: FitSpec,
    datasets: dict[str, ray.data.Dataset],
    resources: ResourcesConfig,
    out_dir: str | Path,
    ray_train: bool | None = None,
) -> TrainResult:
    """Train a surrogate on Ray and return its best-validation checkpoint.

    Args:
        spec: the run's setup besides its data (`FitSpec.of`: model, training, seed, warm start, metadata, ...).
        datasets: Ray Datasets "train" and "val" with float32 tensor columns `input` and `target`.
        out_dir: the checkpoint folder to write (surrogate.pt and history.json; replaced if present).
        ray_train: train on Ray Train even with one worker; None: only with several.
    """
    out_dir = Path(out_dir).resolve()
    scaling = scaling_config(resources)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if ray_train or (ray_train is None and resources.train_workers > 1):
        _fit_ray_train(datasets, spec, scaling, out_dir)
    else:
        _fit_task(datasets, spec, scaling, out_dir)
    history = json.loads((out_dir / HISTORY).read_text())
    meta = read_checkpoint(out_dir)[0].meta
    return TrainResult(out_dir, history, int(meta["best_epoch"]), float(meta["best_val_wmae"]),
                       time.perf_counter() - start)  # fmt: skip


def _fit_ray_train(
    datasets: dict[str, ray.data.Dataset], setup: FitSpec, scaling: ray.train.ScalingConfig, out_dir: Path
) -> None:
    # Rank 0 hands the checkpoint to an inbox on this node rather than to Ray Train's storage, which
    # would have to be a disk every node shares.
    import ray.train.torch  # here, not at the top: a one-worker task need not import Ray Train (~1 s)

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    inbox = _Inbox.options(scheduling_strategy=here).remote()
    storage = Path(tempfile.mkdtemp(prefix=".ray-train-", dir=out_dir.parent))
    trainer = ray.train.torch.TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"setup": setup, "inbox": inbox},
        scaling_config=scaling,
        run_config=ray.train.RunConfig(storage_path=str(storage), name="fit"),
        datasets=datasets,
    )
    try:
        trainer.fit()
        _write_files(ray.get(inbox.files.remote()), out_dir)
    finally:
        ray.kill(inbox)
        shutil.rmtree(storage, ignore_errors=True)


@ray.remote(num_cpus=0)
class _Inbox:
    """Holds what rank 0 sends: the checkpoint folder's files."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}

    def put(self, files: dict[str, bytes]) -> None:
        self._files = files

    def files(self) -> dict[str, bytes]:
        return self._files


def _write_files(files: dict[str, bytes], out_dir: Path) -> None:
    if not files:
        raise RuntimeError("training finished without a checkpoint")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for name, content in files.items():
        (out_dir / name).write_bytes(content)


def _fit_task(
    datasets: dict[str, ray.data.Dataset], setup: FitSpec, scaling: ray.train.ScalingConfig, out_dir: Path
) -> None:
    """One worker in one Ray task; the checkpoint comes back as file contents (no shared disk needed)."""
    per_worker = scaling.resources_per_worker
    task = _train_task.options(num_cpus=per_worker.get("CPU", 1), num_gpus=per_worker.get("GPU", 0))
    _write_files(ray.get(task.remote(datasets, setup)), out_dir)


@ray.remote
def _train_task(datasets: dict[str, ray.data.Dataset], setup: FitSpec) -> dict[str, bytes]:
    quiet_ray_data()
    device = torch.device("cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu")
    data = {name: _to_tensors(datasets[name].iter_batches(batch_size=256, batch_format="numpy"), device)
            for name in ("train", "val")}  # fmt: skip
    return _checkpoint_files(*_train(setup, data, device, rank=0, world=1))


def scaling_config(resources: ResourcesConfig) -> ray.train.ScalingConfig:
    """Ray Train's worker group for the `resources` section; refused at once if no node could hold a worker."""
    import ray.train

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
    import ray.train.torch

    setup: FitSpec = config["setup"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    data = {name: _to_tensors(ray.train.get_dataset_shard(name).iter_batches(batch_size=256, batch_format="numpy"),
                              device) for name in ("train", "val")}  # fmt: skip
    run, spec = _train(setup, data, device, rank, world, wrap=ray.train.torch.prepare_model)
    if rank == 0:
        ray.get(config["inbox"].put.remote(_checkpoint_files(run, spec)))
    ray.train.report({"epochs": len(run.history)}, checkpoint=None)


def _train(setup: FitSpec, data: dict[str, tuple[torch.Tensor, torch.Tensor]], device: torch.device, rank: int,
           world: int, wrap=None) -> tuple[Fit, SurrogateSpec]:  # fmt: skip
    """Run the spec's `Fit` to the end (fine-tuning at the warm start's scaling); rank 0 logs every epoch."""
    run, spec = setup.start(data["train"], data["val"], device, wrap, rank, world)
    epochs = Progress("epoch", total=run.planned, failures=False, unit="epochs") if rank == 0 else None
    while not run.done:
        record = run.step()
        if epochs is not None:
            epochs.total = run.planned  # `budget_s` re-plans after every epoch
            epochs.step(f"train_loss {record['train_loss']:.5f} val_wmae {record['val_wmae']:.5f} "
                        f"({record['seconds']:.1f}s)")  # fmt: skip
    if epochs is not None:
        epochs.close()
    return run, spec


def _to_tensors(batches, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A worker's rows of a dataset (numpy batches) as two tensors on `device`: [n, C, H, W] each.

    Rows are put in `sample_id` order when the dataset has that column, so that a re-run (a
    resumed round) sees the same data in the same order whatever order the blocks arrived in.
    """
    inputs, targets, ids = [], [], []
    for batch in batches:
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


def _checkpoint_files(run: Fit, spec: SurrogateSpec) -> dict[str, bytes]:
    """The best weights and the history: the files of one checkpoint folder."""
    history = run.history
    meta = {**spec.meta, "epochs_run": len(history), "best_epoch": run.best_epoch, "best_val_wmae": run.best,
            "augmented": list(run.symmetries)}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        spec = SurrogateSpec(spec.name, spec.init, run.targets, meta, run.inputs, run.mean_target, run.metric)
        save_surrogate(run.best_network(), spec, folder)
        Path(folder, HISTORY).write_text(json.dumps(history))
        return {path.name: path.read_bytes() for path in Path(folder).iterdir()}
