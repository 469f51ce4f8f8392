"""Training throughput at N = 100: a plain in-process loop vs one Ray task vs Ray Train with 1 and 2 workers.

All run the same epoch function (`raysurr.models.fitting.Fit.train_epoch`) on the same data, with the
same total CPU threads (plain: one process with all threads; Ray Train: the threads split over the
workers). `ray_task` is what `fit` does with one worker: the loop in one Ray task, in a process Ray
reuses (the benchmark runs it twice; the second run is reported). Per-epoch samples/s excludes the
fixed start-up (Ray Train: controller, worker group, process group, data shards, checkpoint; task:
reading the data and returning the checkpoint), which is reported separately as `startup_s`;
`cpu_ms_per_sample` is the CPU time of the training process (rank 0's), all its threads, per sample
it trained: above plain's, the same work cost more CPU there.

Prints one JSON object per line:
    {"bench": "training", "model": "unet", "base_channels": 8, "mode": "ray_train", "workers": 2, ...}
    {"bench": "training_ratio", "model": "unet", "base_channels": 8, "task_over_plain": ..., "ray1_over_plain": ...,
     "ray2_over_plain": ..., "train1_startup_over_task": ..., "repeats": 3, "task_over_plain_range": [lo, hi], ...}

Usage:
    python benchmarks/training.py            # small and study widths of both models (~6 min on 2 cores)
    python benchmarks/training.py --quick    # small widths, fewer samples
    python benchmarks/training.py --quick --repeats 3  # each comparison 3 times: median ratios and their range
    python benchmarks/training.py --gpu      # add GPU runs (plain, a Ray task and Ray Train, 1 worker)
    python benchmarks/training.py --gpu-only # GPU runs only, on 8x the samples (a GPU epoch of 32 is all start-up)
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import emit

from raysurr.config import ModelConfig, ResourcesConfig, TrainingConfig
from raysurr.data.store import PartStore, samples_table
from raysurr.models import build_model, count_parameters
from raysurr.models.fitting import Fit
from raysurr.simulators import Diffusion2D

GRID = 100


def make_dataset(n: int, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """n samples of diffusion2d at N = 100, written as Parquet parts (for Ray) and returned (for the plain loop)."""
    sim = Diffusion2D(grid=GRID)
    params = sim.sample(n, np.random.default_rng(0))
    result, inputs = sim.simulate(params), sim.render(params)
    store = PartStore(folder)
    for start in range(0, n, 32):
        part = slice(start, start + 32)
        sub = type(result)(result.outputs[part], {k: v[part] for k, v in result.extras.items()})
        store.write(samples_table(sim, np.arange(n)[part], params[part], inputs[part], sub, {}))
    return inputs, result.outputs


def plain_loop(model_cfg: ModelConfig, x: np.ndarray, y: np.ndarray, epochs: int, threads: int, device: str) -> dict:
    """Median per-epoch samples/s and CPU milliseconds per sample of the training epoch run in this process."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(model_cfg, 1, 1).to(device)
    xs, ys = torch.tensor(x, device=device), torch.tensor(y, device=device)
    run = Fit(
        model, (xs, ys), (xs[:0], ys[:0]), TrainingConfig(lr=1e-4, batch_size=16), torch.Generator().manual_seed(0)
    )
    rates, cpu_ms = [], []
    for _ in range(epochs + 1):  # the first epoch warms up allocators and kernels
        start, cpu_start = time.perf_counter(), time.process_time()
        model.train()
        run.train_epoch()
        if device == "cuda":
            torch.cuda.synchronize()
        rates.append(len(xs) / (time.perf_counter() - start))
        cpu_ms.append(1000 * (time.process_time() - cpu_start) / len(xs))
    return {"samples_per_s": float(np.median(rates[1:])), "cpu_ms_per_sample": float(np.median(cpu_ms[1:]))}


def ray_train(
    model_cfg: ModelConfig, folder: Path, epochs: int, workers: int, cpus: float, gpu: bool, task: bool = False
) -> dict:
    from raysurr.distributed.scoring import read_samples
    from raysurr.distributed.training import fit
    from raysurr.models.fitting import FitSpec

    data = read_samples(folder, ["input", "target"]).materialize()
    datasets = {"train": data, "val": data.limit(16).materialize()}
    resources = ResourcesConfig(train_workers=workers, cpus_per_train_worker=cpus, use_gpu=gpu)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        spec = FitSpec.of(
            model_cfg, (1, 1), TrainingConfig(epochs=epochs + 1, batch_size=16), 0, threads=max(1, int(cpus))
        )
        result = fit(spec, datasets, resources, out, ray_train=not task)
        wall = time.perf_counter() - start
    n = data.count()
    epochs = result.history[1:]  # the first warms up, as in the plain loop
    return {
        # the epoch's training only, as in the plain loop; CPU of the process training rank 0, all its threads
        "samples_per_s": float(np.median([n / r["train_seconds"] for r in epochs])),
        "cpu_ms_per_sample": float(np.median([1000 * r["train_cpu_seconds"] / (n / workers) for r in epochs])),
        "startup_s": wall - sum(r["seconds"] for r in result.history),  # all but the epochs with their validation
    }


def bench(name: str, width: int, samples: int, epochs: int, cpus: int, gpu: bool, cpu: bool = True,
          repeats: int = 1) -> None:  # fmt: skip
    model_cfg = ModelConfig(name=name, options={"base_channels": width})
    params = count_parameters(build_model(model_cfg, 1, 1))
    common = {"bench": "training", "model": name, "base_channels": width, "params": params, "grid": GRID,
              "samples": samples}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        x, y = make_dataset(samples, Path(tmp))
        plain = {"samples_per_s": math.nan}
        if cpu:
            # Each Ray variant is compared with a plain run taken just before it: on a shared 2-core
            # machine the rate drifts by +-20% over minutes, more than the overhead being measured;
            # repeats give the spread of each ratio.
            ray_train(model_cfg, Path(tmp), 1, 1, cpus, gpu=False, task=True)  # warms a pooled process, as a round does
            ratios: dict[str, list[float]] = {"task_over_plain": [], "ray1_over_plain": [], "ray2_over_plain": [],
                                              "train1_startup_over_task": []}  # fmt: skip
            for repeat in range(repeats):
                startup = {}
                for key, mode, workers in (("task", "ray_task", 1), ("ray1", "ray_train", 1), ("ray2", "ray_train", 2)):
                    plain = plain_loop(model_cfg, x, y, epochs, cpus, "cpu")
                    emit(**common, mode="plain", device="cpu", workers=1, threads_per_worker=cpus, repeat=repeat,
                         **plain)  # fmt: skip
                    task = mode == "ray_task"
                    run = ray_train(model_cfg, Path(tmp), epochs, workers, cpus / workers, gpu=False, task=task)
                    emit(**common, mode=mode, device="cpu", workers=workers, threads_per_worker=cpus // workers,
                         repeat=repeat, **run)  # fmt: skip
                    ratios[f"{key}_over_plain"].append(run["samples_per_s"] / plain["samples_per_s"])
                    startup[key] = run["startup_s"]
                ratios["train1_startup_over_task"].append(startup["ray1"] / startup["task"])
            spread = {f"{key}_range": [min(values), max(values)] for key, values in ratios.items() if repeats > 1}
            emit(bench="training_ratio", model=name, base_channels=width, repeats=repeats,
                 **{key: float(np.median(values)) for key, values in ratios.items()}, **spread)  # fmt: skip
        if gpu:
            plain_gpu = plain_loop(model_cfg, x, y, epochs, cpus, "cuda")
            emit(**common, mode="plain", device="cuda", workers=1, **plain_gpu)
            runs = {}
            for key, mode in (("task", "ray_task"), ("ray1", "ray_train")):
                runs[key] = ray_train(model_cfg, Path(tmp), epochs, 1, 1, gpu=True, task=mode == "ray_task")
                emit(**common, mode=mode, device="cuda", workers=1, **runs[key])
            versus_cpu = {"gpu_over_cpu": plain_gpu["samples_per_s"] / plain["samples_per_s"]} if cpu else {}
            emit(bench="training_ratio", model=name, base_channels=width, device="cuda",
                 task_over_plain=runs["task"]["samples_per_s"] / plain_gpu["samples_per_s"],
                 ray1_over_plain=runs["ray1"]["samples_per_s"] / plain_gpu["samples_per_s"],
                 train1_startup_over_task=runs["ray1"]["startup_s"] / runs["task"]["startup_s"],
                 **versus_cpu)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small widths only, 64 samples")
    parser.add_argument("--gpu", action="store_true", help="also run on the GPU")
    parser.add_argument("--gpu-only", action="store_true", help="only the GPU runs, on 8x the samples")
    parser.add_argument("--repeats", type=int, default=1, help="CPU comparisons per case (ratios: median and range)")
    args = parser.parse_args()
    os.environ.setdefault("RAYSURR_DASHBOARD", "0")
    from raysurr.distributed.runtime import connect

    cpus = os.cpu_count() or 2
    connect(num_cpus=cpus)
    emit(bench="machine", cpus=cpus, torch=torch.__version__, cuda=torch.cuda.is_available())
    cases = [("unet", 8, 64 if args.quick else 256, 4), ("autoencoder", 8, 64 if args.quick else 256, 4)]
    if not args.quick:
        cases += [("unet", 64, 32, 2), ("autoencoder", 64, 32, 2)]
    for name, width, samples, epochs in cases:
        if args.gpu_only:
            bench(name, width, 8 * samples, epochs, cpus, gpu=True, cpu=False)
        else:
            bench(name, width, samples, epochs, cpus, args.gpu, repeats=args.repeats)


if __name__ == "__main__":
    main()
