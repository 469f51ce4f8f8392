"""Batch inference on Ray Data: a callable class per actor loads the checkpoint once.

`read_samples` opens a Parquet folder as a Ray Dataset; `evaluate` computes the study's metrics
per sample on an actor pool and averages them. Only small per-sample rows come back to the driver.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import ray
import ray.data
import torch

from raysurr.config import ResourcesConfig, TrainingConfig
from raysurr.models.losses import per_sample_weighted_mae, roi_mae

METRICS = ("wmae", "mae_all", "mae_source", "mae_field")


def read_samples(path: str | Path, columns: list[str] | None = None) -> ray.data.Dataset:
    """A Parquet folder of samples as a Ray Dataset (optionally only some columns)."""
    dataset = ray.data.read_parquet(str(path))
    return dataset.select_columns(columns) if columns else dataset


class SampleMetrics:
    """Per-sample weighted MAE and region MAEs of a surrogate; used as a `map_batches` class.

    The source region is where the first input channel is > 0 (the sources of diffusion2d).
    """

    def __init__(self, checkpoint: str, loss_w: float, loss_w2: float, threads: int = 1) -> None:
        from raysurr.models.checkpoint import load_surrogate

        torch.set_num_threads(threads)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_surrogate(checkpoint, self.device)
        self.w, self.w2 = loss_w, loss_w2

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = torch.tensor(batch["input"], device=self.device)  # a copy: Ray's arrays are read-only
        y = torch.tensor(batch["target"], device=self.device)
        pred = self.model(x)
        regions = roi_mae(pred, y, x[:, 0] > 0)
        return {
            "sample_id": batch["sample_id"],
            "wmae": per_sample_weighted_mae(pred, y, self.w, self.w2).cpu().numpy(),
            **{f"mae_{name}": values.cpu().numpy() for name, values in regions.items()},
        }


def evaluate(
    checkpoint: str | Path, dataset: ray.data.Dataset, training: TrainingConfig, resources: ResourcesConfig
) -> dict[str, float]:
    """Mean metrics of a checkpoint over a dataset (with `sample_id`, `input`, `target`).

    Returns:
        {"wmae", "mae_all", "mae_source", "mae_field", "n"}; region means skip samples without
        pixels of that region.
    """
    rows = dataset.select_columns(["sample_id", "input", "target"]).map_batches(
        SampleMetrics,
        fn_constructor_kwargs={"checkpoint": str(checkpoint), "loss_w": training.loss_w, "loss_w2": training.loss_w2},
        batch_size=64,
        compute=ray.data.ActorPoolStrategy(size=resources.score_actors),
        num_cpus=1,
        num_gpus=1 if resources.use_gpu else 0,
    )
    frame = rows.to_pandas()
    out = {name: float(np.nanmean(frame[name])) if len(frame) else math.nan for name in METRICS}
    return {**out, "n": len(frame)}
