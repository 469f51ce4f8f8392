"""Labelling throughput: Ray simulator actors vs a plain loop vs ProcessPoolExecutor, side by side.

Every path does the same work per chunk — simulate, render the inputs, build the Arrow table
(`SimulatorActor.label`) — and writes each chunk as a Parquet part. Ray's actor start-up is timed
separately (`startup_s`); rates are over the labelling itself.

Prints one JSON object per line:
    {"bench": "labeling", "solver": "transient", "mode": "ray", "workers": 2, "chunk_size": 1, "samples_per_s": ...}
    {"bench": "labeling_summary", "solver": "transient", "scaling_efficiency": ..., "ray2_over_pool2": ...}

Usage:
    python benchmarks/labeling.py            # transient: 16 samples; exact: 20,000 samples (~3 min)
    python benchmarks/labeling.py --quick
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import common
import numpy as np

from raysurr.config import LabelingConfig, ResourcesConfig, SimulatorConfig
from raysurr.data.labels import LabelStore
from raysurr.data.store import PartStore
from raysurr.distributed.labeling import SimulatorActor

GRID = 100
_worker: SimulatorActor | None = None


def _pool_init(config: SimulatorConfig) -> None:
    global _worker
    os.environ["OMP_NUM_THREADS"] = "1"
    _worker = SimulatorActor(config, ())


def _pool_label(ids: np.ndarray, params: np.ndarray):
    return _worker.label(ids, params).table


def chunks(ids: np.ndarray, params: np.ndarray, size: int):
    return [(ids[i : i + size], params[i : i + size]) for i in range(0, len(ids), size)]


def plain(config, ids, params, size, out: Path) -> float:
    actor, store = SimulatorActor(config, ()), PartStore(out)
    start = time.perf_counter()
    for chunk_ids, chunk_params in chunks(ids, params, size):
        store.write(actor.label(chunk_ids, chunk_params).table)
    return len(ids) / (time.perf_counter() - start)


def pool(config, ids, params, size, workers, out: Path) -> float:
    store = PartStore(out)
    with ProcessPoolExecutor(workers, initializer=_pool_init, initargs=(config,)) as executor:
        for future in [executor.submit(int, 0) for _ in range(workers)]:  # start-up outside the timing, as for Ray
            future.result()
        start = time.perf_counter()
        futures = [executor.submit(_pool_label, *c) for c in chunks(ids, params, size)]
        for future in futures:
            store.write(future.result())
        return len(ids) / (time.perf_counter() - start)


def ray_actors(config, ids, params, size, workers, out: Path) -> dict:
    from raysurr.distributed.labeling import Labeler

    start = time.perf_counter()
    labeler = Labeler(config, (), LabelingConfig(chunk_size=size), ResourcesConfig(simulators=workers))
    startup = time.perf_counter() - start
    start = time.perf_counter()
    labeler.label(ids, params, LabelStore(out / "labels", out / "failures"))
    rate = len(ids) / (time.perf_counter() - start)
    labeler.close()
    return {"samples_per_s": rate, "startup_s": startup}


def emit(**record: object) -> None:
    common.emit(4, **record)


def bench(solver: str, n: int, sizes: list[int]) -> None:
    from raysurr.simulators import build_simulator

    config = SimulatorConfig(options={"grid": GRID, "solver": solver})
    params = build_simulator(config).sample(n, np.random.default_rng(0))
    ids = np.arange(n)
    common = {"bench": "labeling", "solver": solver, "grid": GRID, "samples": n}
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            rates = {"plain": plain(config, ids, params, size, Path(tmp, "plain"))}
            emit(**common, mode="plain", workers=1, chunk_size=size, samples_per_s=rates["plain"])
            rates["pool2"] = pool(config, ids, params, size, 2, Path(tmp, "pool"))
            emit(**common, mode="process_pool", workers=2, chunk_size=size, samples_per_s=rates["pool2"])
            for workers in (1, 2):
                run = ray_actors(config, ids, params, size, workers, Path(tmp, f"ray{workers}"))
                rates[f"ray{workers}"] = run["samples_per_s"]
                emit(**common, mode="ray", workers=workers, chunk_size=size, **run)
        emit(bench="labeling_summary", solver=solver, chunk_size=size,
             scaling_efficiency=rates["ray2"] / (2 * rates["ray1"]), ray1_over_plain=rates["ray1"] / rates["plain"],
             ray2_over_pool2=rates["ray2"] / rates["pool2"])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RAYSURR_DASHBOARD", "0")
    from raysurr.distributed.runtime import connect

    connect(num_cpus=os.cpu_count())
    emit(bench="machine", cpus=os.cpu_count())
    bench("transient", 4 if args.quick else 16, [1])
    bench("exact", 2000 if args.quick else 20000, [32, 256])


if __name__ == "__main__":
    main()
