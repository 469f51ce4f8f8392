"""Where a round's time goes: per-phase times of the quickstart and the orchestration overhead.

Runs `python -m raysurr.drive` on a config (default: configs/quickstart.yaml) in a temporary folder,
then splits each round's wall time into the work itself and what orchestrating it cost:

- simulate: the simulator's own time (sum of per-sample `wall_s` in the labels) / simulator actors;
- train: the epochs (sum of `seconds` in the round's history.json); Ray Train's start-up
  (worker group, process group, data shards, checkpoint) is `train_overhead_s`;
- eval and score: whole phases (their Ray Data actor start-up is inside).

`overhead_fraction` = (round_s - simulate - epochs - eval_s - score_s) / round_s.

Prints one JSON object per round and one summary:
    {"bench": "round", "round": 0, "label_s": ..., "simulate_s": ..., "train_s": ..., "epochs_s": ..., ...}
    {"bench": "round_overhead", "rounds": 3, "overhead_fraction": ..., "wall_s": ...}

Usage:
    python benchmarks/round_overhead.py [--config configs/quickstart.yaml] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
QUICK = ["pool.size=400", "pool.initial=40", "pool.val=40", "pool.test=40", "loop.batch_size=40", "training.epochs=2"]


def emit(**record: object) -> None:
    common.emit(4, **record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "quickstart.yaml"))
    parser.add_argument("--quick", action="store_true", help="a smaller pool and 2 epochs")
    args = parser.parse_args()
    os.environ.setdefault("RAYSURR_DASHBOARD", "0")
    from raysurr.commands.drive import main as drive

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        sets = [a for item in (QUICK if args.quick else []) for a in ("--set", item)]
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            drive(["--config", args.config, "--run-dir", str(run), *sets])
        wall = time.perf_counter() - start
        report(run, wall)


def report(run: Path, wall: float) -> None:
    import ray

    actors = max(1, int(ray.cluster_resources().get("CPU", 1)))
    with (run / "rounds.csv").open() as handle:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    labels = pq.read_table(run / "labels", columns=["labeled_at", "wall_s"]).sort_by("labeled_at")
    wall_s = labels.column("wall_s").to_numpy()
    bounds = [0] + [int(row["n_labeled"]) for row in rows]
    total_round, total_overhead = 0.0, 0.0
    for i, row in enumerate(rows):
        simulate = float(np.sum(wall_s[bounds[i] : bounds[i + 1]])) / actors
        history = json.loads((run / "checkpoints" / f"round_{i:03d}" / "history.json").read_text())
        epochs = sum(r["seconds"] for r in history)
        overhead = row["round_s"] - simulate - epochs - row["eval_s"] - row["score_s"]
        total_round += row["round_s"]
        total_overhead += overhead
        emit(bench="round", round=i, n_labeled=int(row["n_labeled"]), label_s=row["label_s"], simulate_s=simulate,
             train_s=row["train_s"], epochs_s=epochs, train_overhead_s=row["train_s"] - epochs, eval_s=row["eval_s"],
             score_s=row["score_s"], round_s=row["round_s"], overhead_s=overhead,
             overhead_fraction=overhead / row["round_s"])  # fmt: skip
    emit(bench="round_overhead", rounds=len(rows), overhead_fraction=total_overhead / total_round, wall_s=wall,
         setup_s=wall - total_round)  # fmt: skip


if __name__ == "__main__":
    main()
