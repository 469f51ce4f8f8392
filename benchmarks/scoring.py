"""Pool scoring throughput: Ray Data (tasks on CPUs, an actor pool on GPUs) vs a plain in-process loop, per acquisition.

A pool of candidates at N = 100 (parameters on disk; inputs rendered by the scorer) is scored with a
small U-Net. The plain loop runs the same `PoolScorer` in this process with as many torch threads
as the Ray run has actors. `select_s` is the driver-side selection of B = 1,000 (for diversity:
embedding plus greedy k-centre over the whole pool).

Prints one JSON object per line:
    {"bench": "scoring", "acquisition": "tod", "mode": "ray_data", "actors": 2, "samples_per_s": ...}
    {"bench": "scoring_ratio", "acquisition": "tod", "ray1_over_plain1": ..., "ray2_over_plain2": ...}

Usage:
    python benchmarks/scoring.py             # 15,000 candidates
    python benchmarks/scoring.py --quick     # 2,000 candidates
    python benchmarks/scoring.py --gpu       # actors share the GPU (half each); the plain loop uses it too
    python benchmarks/scoring.py --select-only 1000000   # driver-side selection on a 1 M-row pool

`--select-only` scores nothing: it times the selection of B = 1,000 from N random scores (top-B,
stochastic, hybrid) and from N diversity embeddings (greedy k-centre), and reports the bytes the
driver holds for them and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import common
import numpy as np
import torch

from raysurr.acquisition import Candidates, build_acquisition
from raysurr.config import AcquisitionConfig, ResourcesConfig, SimulatorConfig
from raysurr.data.store import parameters_table, write_table
from raysurr.distributed.scoring import PoolScorer, ScoreRequest, score_pool
from raysurr.models.checkpoint import SurrogateSpec, save_surrogate
from raysurr.simulators import build_simulator

SIMULATOR = SimulatorConfig(options={"grid": 100})
MODEL = {"in_channels": 1, "out_channels": 1, "base_channels": 4, "depth": 4}
BATCH = 1000


def setup(n: int, root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    sim = build_simulator(SIMULATOR)
    ids, params = np.arange(n), sim.sample(n, np.random.default_rng(0))
    (root / "pool").mkdir()
    for i in range(0, n, 1000):
        write_table(
            parameters_table(sim, ids[i : i + 1000], params[i : i + 1000]), root / "pool" / f"part-{i:06d}.parquet"
        )
    spec = SurrogateSpec("unet", MODEL)
    checkpoints = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        checkpoints.append(str(save_surrogate(spec.build(), spec, root / f"round{seed}")))
    return ids, params, checkpoints


def plain(kwargs: dict, ids: np.ndarray, params: np.ndarray, threads: int) -> tuple[float, np.ndarray]:
    scorer = PoolScorer(**kwargs, threads=threads)
    names = scorer.simulator.parameter_names
    start, scores = time.perf_counter(), []
    for i in range(0, len(ids), 64):
        batch = {"sample_id": ids[i : i + 64], **{n: params[i : i + 64, j] for j, n in enumerate(names)}}
        scores.append(scorer(batch)["score"])
    return len(ids) / (time.perf_counter() - start), np.concatenate(scores)


def select_seconds(name: str, ids: np.ndarray, params: np.ndarray, scores: np.ndarray) -> float:
    sim = build_simulator(SIMULATOR)
    start = time.perf_counter()
    vectors = sim.embed(params) if name == "diversity" else None
    labeled = vectors[:BATCH] if vectors is not None else None
    pool_vectors = None if vectors is None else vectors[BATCH:]
    candidates = Candidates(ids=ids[BATCH:], scores=scores[BATCH:], vectors=pool_vectors, labeled_vectors=labeled)
    build_acquisition({"name": name}).select(candidates, BATCH, np.random.default_rng(0))
    return time.perf_counter() - start


def select_at_scale(n: int) -> None:
    """Driver-side selection on an n-row pool: what reaches the driver is ids, scores and small vectors."""
    sim = build_simulator(SIMULATOR)
    rng = np.random.default_rng(0)
    ids, scores = np.arange(n, dtype=np.int64), rng.random(n)
    vectors = sim.embed(sim.sample(n + BATCH, rng)).astype(np.float32)
    for name, candidates in [
        ("entropy", Candidates(ids=ids, scores=scores)),
        ("stochastic", Candidates(ids=ids, scores=scores)),
        ("hybrid", Candidates(ids=ids, scores=scores, vectors=vectors[BATCH:], labeled_vectors=vectors[:BATCH])),
        ("diversity", Candidates(ids=ids, scores=scores, vectors=vectors[BATCH:], labeled_vectors=vectors[:BATCH])),
    ]:
        spec = {"name": name, "inner": {"name": "entropy"}} if name in ("stochastic", "hybrid") else {"name": name}
        acquisition = build_acquisition(spec)
        start = time.perf_counter()
        chosen = acquisition.select(candidates, BATCH, np.random.default_rng(0))
        held = ids.nbytes + scores.nbytes + (0 if candidates.vectors is None else candidates.vectors.nbytes)
        emit(bench="select_scale", acquisition=name, pool=n, batch=BATCH, select_s=time.perf_counter() - start,
             driver_mb=held / 2**20, selected=len(set(chosen.tolist())),
             peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # fmt: skip


def emit(**record: object) -> None:
    common.emit(4, **record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 candidates")
    parser.add_argument("--pool", type=int, default=15000, help="candidates (default 15,000)")
    parser.add_argument("--gpu", action="store_true", help="score on a GPU (each Ray actor asks for half of one)")
    parser.add_argument("--select-only", type=int, metavar="N", help="only time driver-side selection on N rows")
    args = parser.parse_args()
    if args.select_only:
        select_at_scale(args.select_only)
        return
    os.environ.setdefault("RAYSURR_DASHBOARD", "0")
    from raysurr.distributed.runtime import connect

    connect(num_cpus=os.cpu_count())
    n = 2000 if args.quick else args.pool
    emit(bench="machine", cpus=os.cpu_count(), pool=n, model=MODEL, cuda=torch.cuda.is_available())
    with tempfile.TemporaryDirectory() as tmp:
        ids, params, checkpoints = setup(n, Path(tmp))
        for name in ["random", "entropy", "tod", "diversity"]:
            kwargs = {"acquisition": AcquisitionConfig(name=name), "checkpoints": checkpoints, "simulator": SIMULATOR}
            rates = {}
            for threads in (1, 2):
                rates[f"plain{threads}"], scores = plain(kwargs, ids, params, threads)
                emit(
                    bench="scoring",
                    acquisition=name,
                    mode="plain",
                    threads=threads,
                    samples_per_s=rates[f"plain{threads}"],
                )
            for actors in (1, 2):
                start = time.perf_counter()
                resources = ResourcesConfig(score_actors=actors, use_gpu=args.gpu, gpus_per_score_actor=0.5)
                score_pool(Path(tmp, "pool"), ScoreRequest(**kwargs), resources)
                rates[f"ray{actors}"] = n / (time.perf_counter() - start)
                emit(bench="scoring", acquisition=name, mode="ray_data", actors=actors,
                     samples_per_s=rates[f"ray{actors}"], includes="start-up and checkpoint loading")  # fmt: skip
            emit(bench="scoring_ratio", acquisition=name, ray1_over_plain1=rates["ray1"] / rates["plain1"],
                 ray2_over_plain2=rates["ray2"] / rates["plain2"], ray2_over_ray1=rates["ray2"] / rates["ray1"],
                 select_s=select_seconds(name, ids, params, scores))  # fmt: skip


if __name__ == "__main__":
    main()
