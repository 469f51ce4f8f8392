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
the checkpoints. Per cost model and seed an `async_vs_sync` line: `speedup` = sync wall / async wall, and
the error ratio async / sync. With `--seeds N` (each seed its own pool, initial set and weights) an
`async_vs_sync_seeds` line per cost model: the means and spreads over seeds, and the paired relative error
difference (async - sync) / sync with its 95% bootstrap interval and what it says (`lower`, `higher`,
`cannot tell`): one seed's error is not a comparison, the final model's error moves 5-10% between seeds.

Usage:
    python benchmarks/async_loop.py [--budget 320] [--models remote,transient] [--seeds 3] [--quick]
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

from raysurr.engine.report import bootstrap_interval, mean_std, verdict

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "async.yaml"
COSTS = {
    "remote": [],
    "transient": ["simulator.delay_s=0", "simulator.solver=transient", "resources.simulators=1",
                  "resources.cpus_per_simulator=1", "resources.cpus_per_train_worker=1", "resources.score_actors=1"],
}  # fmt: skip
QUICK = ["pool.size=400", "pool.val=50", "pool.test=50", "simulator.delay_s=0.5", "training.epochs=2"]


def run(mode: str, cost: str, budget: int, seed: int, extra: list[str], folder: Path) -> dict:
    sets = [*COSTS[cost], *extra, f"loop.mode={mode}", f"loop.label_budget={budget}", f"seed={seed}",
            f"name=bench-{cost}-{mode}"]  # fmt: skip
    run_dir = folder / f"{cost}-{mode}-{seed}"
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
    parser.add_argument("--seeds", type=int, default=1, help="repeat each comparison over seeds 0..N-1")
    parser.add_argument("--quick", action="store_true", help="a small pool, 0.5 s a sample, 2 epochs (a smoke test)")
    args = parser.parse_args()
    extra = QUICK if args.quick else []
    with tempfile.TemporaryDirectory(prefix="raysurr-async-") as tmp:
        for cost in args.models.split(","):
            pairs = []
            for seed in range(args.seeds):
                results = {}
                for mode in ("sync", "async"):
                    results[mode] = run(mode, cost, args.budget, seed, extra, Path(tmp))
                    common.emit(bench="async_loop", cost=cost, mode=mode, budget=args.budget, seed=seed,
                                **results[mode])  # fmt: skip
                sync, asynchronous = results["sync"], results["async"]
                common.emit(bench="async_vs_sync", cost=cost, budget=args.budget, seed=seed,
                            speedup=sync["wall_s"] / asynchronous["wall_s"],
                            command_speedup=sync["command_s"] / asynchronous["command_s"],
                            utilisation_sync=sync["utilisation"], utilisation_async=asynchronous["utilisation"],
                            utilisation_async_to_budget=asynchronous["utilisation_to_budget"],
                            error_ratio=asynchronous["test_wmae"] / sync["test_wmae"])  # fmt: skip
                pairs.append(results)
            if args.seeds > 1:
                summarise(cost, args.budget, pairs)


def summarise(cost: str, budget: int, pairs: list[dict[str, dict]]) -> None:
    """The seeds' means and sample spreads, and whether async's final error differs from sync's."""
    speedup = mean_std([p["sync"]["wall_s"] / p["async"]["wall_s"] for p in pairs])
    to_budget = mean_std([p["async"]["utilisation_to_budget"] for p in pairs])
    errors = {mode: mean_std([p[mode]["test_wmae"] for p in pairs]) for mode in ("sync", "async")}
    relative = [p["async"]["test_wmae"] / p["sync"]["test_wmae"] - 1 for p in pairs]
    interval = bootstrap_interval(relative)
    common.emit(bench="async_vs_sync_seeds", cost=cost, budget=budget, seeds=len(pairs), speedup_mean=speedup[0],
                speedup_std=speedup[1], utilisation_async_to_budget_mean=to_budget[0],
                utilisation_async_to_budget_std=to_budget[1], test_wmae_sync_mean=errors["sync"][0],
                test_wmae_sync_std=errors["sync"][1], test_wmae_async_mean=errors["async"][0],
                test_wmae_async_std=errors["async"][1], error_difference_mean=mean_std(relative)[0],
                error_difference_low=interval[0], error_difference_high=interval[1],
                error_verdict=verdict(interval))  # fmt: skip


if __name__ == "__main__":
    main()
