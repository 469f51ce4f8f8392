"""Simulator cost: per-sample time of each diffusion2d solver, single and batched, and a dataset end to end.

Prints one JSON object per line:
    {"bench": "simulator", "grid": 100, "solver": "exact", "mode": "batched", "batch": 256, "per_sample_s": ...}
    {"bench": "simulator_ratio", "grid": 100, "mode": "single", "transient_over_exact": ...}
    {"bench": "dataset", "samples": 20000, "grid": 100, "wall_s": ..., "samples_per_s": ..., "mb_on_disk": ...}

Usage:
    python benchmarks/simulator.py                 # everything (a few minutes on 2 cores)
    python benchmarks/simulator.py --quick         # small grids and a small dataset
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np

from raysurr.simulators import Diffusion2D

BATCH = {"exact": 256, "sparse": 64, "transient": 4}


def per_sample_seconds(sim: Diffusion2D, batch: int, min_seconds: float) -> float:
    """Median over repeats of (wall time of one simulate call) / batch."""
    params = sim.sample(batch, np.random.default_rng(0))
    sim.simulate(params)  # warm-up: BLAS start-up, allocations
    times: list[float] = []
    spent = 0.0
    while spent < min_seconds or len(times) < 3:
        start = time.perf_counter()
        sim.simulate(params)
        times.append(time.perf_counter() - start)
        spent += times[-1]
        if sim.fidelity == "transient" and len(times) >= 1 and spent > min_seconds:
            break
    return float(np.median(times)) / batch


def bench_solvers(grids: list[int], min_seconds: float) -> None:
    for grid in grids:
        cost: dict[tuple[str, str], float] = {}
        for solver in ["exact", "sparse", "transient"]:
            sim = Diffusion2D(grid=grid, solver=solver)
            for mode, batch in [("single", 1), ("batched", BATCH[solver])]:
                seconds = per_sample_seconds(sim, batch, min_seconds)
                cost[solver, mode] = seconds
                emit(bench="simulator", grid=grid, solver=solver, mode=mode, batch=batch, per_sample_s=seconds,
                     samples_per_s=1.0 / seconds)  # fmt: skip
        for mode in ["single", "batched"]:
            ratio = cost["transient", mode] / cost["exact", mode]
            emit(bench="simulator_ratio", grid=grid, mode=mode, transient_over_exact=ratio)


def bench_dataset(samples: int, grid: int, chunk: int) -> None:
    from raysurr.commands.dataset import main

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ds"
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for JSON
            args = ["--n", str(samples), "--out", str(out), "--set", f"simulator.grid={grid}"]
            main([*args, "--set", f"labeling.chunk_size={chunk}"])
        wall = time.perf_counter() - start
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    includes = "ray start-up, sampling, labelling on 1 actor per CPU, zstd Parquet"
    emit(bench="dataset", samples=samples, grid=grid, chunk_size=chunk, wall_s=wall, samples_per_s=samples / wall,
         mb_on_disk=size / 1e6, includes=includes)  # fmt: skip


def emit(**record: object) -> None:
    common.emit(7, **record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="grids 32 and 64, 2,000 samples: a smoke run")
    parser.add_argument("--skip-dataset", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RAYSURR_DASHBOARD", "0")
    emit(bench="machine", cpus=os.cpu_count(), omp_threads=os.environ.get("OMP_NUM_THREADS"))
    bench_solvers([32, 64] if args.quick else [64, 100, 256], min_seconds=0.2 if args.quick else 1.0)
    if not args.skip_dataset:
        bench_dataset(2000 if args.quick else 20000, 100, 250)


if __name__ == "__main__":
    main()
