"""Sync against async active learning on the same config and seed: wall time, simulator utilisation, error.

Runs `python -m raysurr.drive` on configs/async.yaml once with `loop.mode=sync` and once with
`loop.mode=async` under each cost model, in a temporary folder, and reads each run's rounds.csv:

- `remote`: 4 actors at `delay_s` = 2 s a sample that use no CPU (a remote or queued simulator), so
  labelling and training overlap without sharing cores;
- `transient`: the transient solver's real CPU cost, 1 simulator actor on 1 core and training on the
  other (both modes get the same resources, so sync is not handicapped).

Per run: `wall_s` (the loop's time to its final model, rounds.csv's last `elapsed_s`), `command_s` (the
whole command), `utilisation` (busy fraction of the simulator pool over the loop, from the rows'
`utilisation` weighted by their duration), `utilisation_to_budget` (async: the same until the budget's
last label was stored, after which only the final training is left), `test_wmae` of the final model,
the checkpoints. Per cost model a `async_vs_sync` line: `speedup` = sync wall / async wall, and the
error ratio async / sync.

Usage:
    python benchmarks/async_loop.py [--budget 320] [--models remote,transient] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "async.yaml"
COSTS = {
    "remote": [],
    "transient": ["simulator.delay_s=0", "simulator.solver=transient", "resources.simulators=1",
                  "resources.cpus_per_simulator=1", "resources.cpus_per_train_worker=1", "resources.score_actors=1"],
}  # fmt: skip
QUICK = ["pool.size=400", "pool.val=50", "pool.test=50", "simulator.delay_s=0.5", "training.epochs=2"]


def run(mode: str, cost: str, budget: int, extra: list[str], folder: Path) -> dict:
    sets = [*COSTS[cost], *extra, f"loop.mode={mode}", f"loop.label_budget={budget}", f"name=bench-{cost}-{mode}"]
    run_dir = folder / f"{cost}-{mode}"
    args = [sys.executable, "-m", "raysurr.drive", "--config", str(CONFIG), "--run-dir", str(run_dir)]
    env = {**os.environ, "RAYSURR_DASHBOARD": "0"}
    start = time.perf_counter()
    done = subprocess.run([*args, *(a for s in sets for a in ("--set", s))], cwd=REPO, env=env, capture_output=True,
                          text=True)  # fmt: skip
    command_s = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{cost}/{mode} failed:\n{done.stderr[-3000:]}")
    with (run_dir / "rounds.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    elapsed = [float(r["elapsed_s"]) for r in rows]
    spans = [b - a for a, b in zip([0.0, *elapsed[:-1]], elapsed, strict=True)]
    busy = sum(float(r["utilisation"]) * span for r, span in zip(rows, spans, strict=True))
    return {"wall_s": elapsed[-1], "command_s": command_s, "utilisation": busy / elapsed[-1],
            "utilisation_to_budget": to_budget(run_dir / "utilisation.csv", budget),
            "test_wmae": float(rows[-1]["test_wmae"]), "n_labeled": int(rows[-1]["n_labeled"]),
            "checkpoints": len(rows)}  # fmt: skip


def to_budget(path: Path, budget: int) -> float | None:
    """Async: the busy fraction of the pool until the budget's last label was stored (utilisation.csv's 5 s rows,
    up to the first that reaches it); after that the simulators have nothing left to do by design. None for sync."""
    if not path.exists():
        return None
    busy = span = 0.0
    with path.open() as handle:
        for row in csv.DictReader(handle):
            seconds = float(row["to_s"]) - float(row["from_s"])
            busy, span = busy + float(row["busy"]) * seconds, span + seconds
            if int(row["labeled"]) >= budget:
                break
    return busy / span if span else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=320, help="labels each run stops at")
    parser.add_argument("--models", default="remote,transient", help="cost models, comma-separated")
    parser.add_argument("--quick", action="store_true", help="a small pool, 0.5 s a sample, 2 epochs (a smoke test)")
    args = parser.parse_args()
    extra = QUICK if args.quick else []
    with tempfile.TemporaryDirectory(prefix="raysurr-async-") as tmp:
        for cost in args.models.split(","):
            results = {}
            for mode in ("sync", "async"):
                results[mode] = run(mode, cost, args.budget, extra, Path(tmp))
                common.emit(bench="async_loop", cost=cost, mode=mode, budget=args.budget, **results[mode])
            sync, asynchronous = results["sync"], results["async"]
            common.emit(bench="async_vs_sync", cost=cost, budget=args.budget,
                        speedup=sync["wall_s"] / asynchronous["wall_s"],
                        command_speedup=sync["command_s"] / asynchronous["command_s"],
                        utilisation_sync=sync["utilisation"], utilisation_async=asynchronous["utilisation"],
                        utilisation_async_to_budget=asynchronous["utilisation_to_budget"],
                        error_ratio=asynchronous["test_wmae"] / sync["test_wmae"])  # fmt: skip


if __name__ == "__main__":
    main()
