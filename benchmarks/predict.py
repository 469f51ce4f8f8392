"""`raysurr predict` throughput: Ray Data against a plain in-process loop on the same model and the same cores.

A U-Net (the quickstart's width, base 8, depth 4) at N = 32 predicts the fields of random parameter sets and writes
them to Parquet as the command does. The plain loop is `Predictor.predict` in this process with as many torch
threads as the Ray run has workers, batch 256, writing the same file. The Ray run is the command's own path
(`distributed.scoring.predict_table` and `commands.predict.write`) on a local Ray, one worker per core; its
start-up (until the first batch is written) is reported apart from its steady rate.

Prints one JSON object per line:
    {"bench": "predict", "mode": "plain", "samples": 100000, "samples_per_s": ..., "seconds": ...}
    {"bench": "predict", "mode": "ray_data", "workers": 2, "samples": 100000, "samples_per_s": ..., "startup_s": ...}
    {"bench": "predict_ratio", "ray_over_plain": ..., "samples": 100000}

Usage:
    python benchmarks/predict.py            # 100,000 parameter sets (goal: ray_over_plain >= 0.95 on 2 cores)
    python benchmarks/predict.py --quick    # 5,000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from argparse import Namespace
from pathlib import Path

import common
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from raysurr.commands.predict import write
from raysurr.config import ResourcesConfig
from raysurr.data.store import COMPRESSION, tensor_array
from raysurr.models.checkpoint import SurrogateSpec, save_surrogate
from raysurr.predictor import load

SIMULATOR = {"name": "diffusion2d", "grid": 32, "radius": 1.6, "decay": 0.0244}


def checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    spec = SurrogateSpec("unet", {"in_channels": 1, "out_channels": 1, "base_channels": 8, "depth": 4, "dropout": 0.0},
                         meta={"simulator": SIMULATOR})  # fmt: skip
    return save_surrogate(spec.build(), spec, folder / "round_000").parent


def plain(path: Path, params: np.ndarray, out: Path, threads: int) -> float:
    """Seconds for the in-process loop: predict in batches of 256 and write each to the Parquet file."""
    torch.set_num_threads(threads)
    predictor = load(path, device="cpu")
    start = time.perf_counter()
    writer = None
    for first in range(0, len(params), 256):
        part = params[first : first + 256]
        fields = predictor.predict(part, batch_size=256)
        table = pa.table({**{n: part[:, j] for j, n in enumerate(predictor.parameter_names)},
                          "prediction": tensor_array(fields)})  # fmt: skip
        writer = writer or pq.ParquetWriter(out, table.schema, compression=COMPRESSION)
        writer.write_table(table)
    writer.close()
    return time.perf_counter() - start


def on_ray(path: Path, params: np.ndarray, out: Path, workers: int) -> tuple[float, float]:
    """(seconds, start-up seconds) of the command's path on Ray Data: start-up is the time to a first, tiny run."""
    predictor = load(path, device="cpu")
    names = predictor.parameter_names
    args = Namespace(std=False, batch_size=256)
    resources = ResourcesConfig(score_actors=workers)
    start = time.perf_counter()
    write(out, pa.table({n: params[:256, j] for j, n in enumerate(names)}), predictor, args, resources)
    startup = time.perf_counter() - start  # workers started, the model loaded in each (they stay warm)
    start = time.perf_counter()
    write(out, pa.table({n: params[:, j] for j, n in enumerate(names)}), predictor, args, resources)
    return time.perf_counter() - start, startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--samples", type=int)
    args = parser.parse_args()
    samples = args.samples or (5_000 if args.quick else 100_000)
    workers = os.cpu_count() or 2
    from raysurr.distributed.runtime import connect

    with tempfile.TemporaryDirectory() as tmp:
        path = checkpoint(Path(tmp))
        predictor = load(path, device="cpu")
        params = predictor.renderer.sample(samples, np.random.default_rng(0))
        seconds = plain(path, params, Path(tmp) / "plain.parquet", workers)
        common.emit(bench="predict", mode="plain", threads=workers, samples=samples, seconds=seconds,
                    samples_per_s=samples / seconds)  # fmt: skip
        os.environ["RAYSURR_PROGRESS"] = "lines"
        connect(num_cpus=workers, dashboard=False)
        ray_seconds, startup = on_ray(path, params, Path(tmp) / "ray.parquet", workers)
        common.emit(bench="predict", mode="ray_data", workers=workers, samples=samples, seconds=ray_seconds,
                    samples_per_s=samples / ray_seconds, startup_s=startup)  # fmt: skip
        common.emit(bench="predict_ratio", samples=samples, ray_over_plain=seconds / ray_seconds)


if __name__ == "__main__":
    main()
