"""Fault injection: a simulator that raises, returns NaN or Inf, hangs, kills its process and is flaky.

Labels N samples on a local Ray with `tests/labeling_sims.py`'s misbehaving plugin and the default
`labeling.retries`, then counts, against the store on disk: labelled, recorded failures, lost
(neither labelled nor recorded), duplicated (stored twice), and how many flaky samples were
labelled after a retry. The goal: 0 lost, 0 duplicated, every flaky sample labelled.

Prints one JSON object per line:
    {"bench": "faults", "fault": "flaky", "injected": 15, "labelled": 15, "failed": 0, ...}
    {"bench": "faults_total", "samples": 300, "labelled": 262, "failed": 38, "lost": 0, "duplicated": 0, ...}

Usage:
    python benchmarks/faults.py            # 300 samples, 3 s timeout (~1 min on 2 cores)
    python benchmarks/faults.py --quick    # 120 samples, fewer hanging and dying ones
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the plugin lives in tests/

from raysurr.config import LabelingConfig, ResourcesConfig, SimulatorConfig
from raysurr.data.labels import LabelStore
from raysurr.distributed.labeling import Labeler
from raysurr.distributed.runtime import connect

FAULTS = {"exception": 10, "nan": 10, "inf": 10, "hang": 3, "die": 5, "flaky": 15}
EXPECTED = {"exception": "exception", "nan": "non_finite", "inf": "non_finite", "hang": "timeout", "die": "crash"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 120 if args.quick else 300
    counts = {**FAULTS, "hang": 2, "die": 3} if args.quick else FAULTS  # a timeout or a crash costs seconds each
    rng = np.random.default_rng(0)
    chosen = rng.choice(n, size=sum(counts.values()), replace=False).tolist()
    faults, start = {}, 0
    for kind, count in counts.items():
        faults[kind] = sorted(chosen[start : start + count])
        start += count
    connect(num_cpus=2, dashboard=False)
    with tempfile.TemporaryDirectory() as tmp:
        options = {"raise_on": faults["exception"], "nan_on": faults["nan"], "inf_on": faults["inf"],
                   "hang_on": faults["hang"], "die_on": faults["die"], "flaky_on": faults["flaky"],
                   "flaky_times": 2, "flaky_dir": tmp}  # fmt: skip
        labeling = LabelingConfig(chunk_size=8, timeout_s=3.0, backoff_s=0.2)
        labeler = Labeler(SimulatorConfig("misbehaving", options), ("tests.labeling_sims",), labeling,
                          ResourcesConfig(simulators=2))  # fmt: skip
        store = LabelStore(Path(tmp) / "labels", Path(tmp) / "failures")
        began = time.perf_counter()
        counts = labeler.label(np.arange(n), np.arange(n, dtype=float)[:, None], store)
        wall = time.perf_counter() - began
        labeler.close()
        labels = store.labels.read(["sample_id", "attempts"]).to_pydict()
        failures = {r["sample_id"]: r for r in store.read_failures().to_pylist()}
    stored = Counter(labels["sample_id"])
    attempts = dict(zip(labels["sample_id"], labels["attempts"], strict=True))
    for kind, ids in faults.items():
        wrong = [i for i in ids if i in failures and failures[i]["reason"] != EXPECTED.get(kind)]
        print(json.dumps({"bench": "faults", "fault": kind, "injected": len(ids),
                          "labelled": sum(i in stored for i in ids), "failed": sum(i in failures for i in ids),
                          "lost": sum(i not in stored and i not in failures for i in ids),
                          "duplicated": sum(stored[i] > 1 for i in ids), "wrong_reason": len(wrong),
                          "retried_and_recovered": sum(i in stored and attempts[i] > 2 for i in ids),
                          "max_attempts": max([attempts.get(i, 0) for i in ids] +
                                              [failures[i]["attempts"] for i in ids if i in failures])}))  # fmt: skip
    print(json.dumps({"bench": "faults_total", "samples": n, "labelled": len(stored), "failed": len(failures),
                      "lost": n - len(stored) - len(failures), "duplicated": sum(c > 1 for c in stored.values()),
                      "retries": counts["retried"], "actors_replaced": labeler.replaced,
                      "wall_s": round(wall, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
