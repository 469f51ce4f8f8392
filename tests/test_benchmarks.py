"""`benchmarks/run_all.py` collects every benchmark's JSON lines and the machine into one file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.timeout(300)


def test_run_all_writes_one_file_with_the_machine_and_each_benchmarks_records(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "benchmarks/run_all.py", "--quick", "--only", "simulator", "--out",
                             str(out)], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["machine"]["cpus"] >= 1 and data["machine"]["ray"].startswith("2.60")
    simulator = data["benchmarks"]["simulator"]
    assert simulator["returncode"] == 0 and simulator["wall_s"] > 0
    kinds = {record["bench"] for record in simulator["records"]}
    assert {"simulator", "simulator_ratio", "dataset"} <= kinds
    ratios = [r["transient_over_exact"] for r in simulator["records"] if r["bench"] == "simulator_ratio"]
    assert ratios and all(r > 10 for r in ratios)  # the time integration is the expensive oracle


def test_run_all_refuses_an_unknown_benchmark(tmp_path):
    result = subprocess.run([sys.executable, "benchmarks/run_all.py", "--only", "nope"], cwd=REPO,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2 and "unknown benchmark(s) ['nope']" in result.stderr
