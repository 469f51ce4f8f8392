"""Shared fixtures: a module-scoped local Ray cluster and helpers to run commands as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Imported only by the commands that name it as a plugin: collecting it (doctests) would register
# its model in this process, where it would join every test that iterates over the models.
collect_ignore = ["failing_model.py"]


@pytest.fixture(scope="session")
def _ray_session():
    yield
    import ray

    ray.shutdown()


@pytest.fixture(scope="module")
def ray_local(_ray_session):
    """A 2-CPU local Ray: started by the first module that needs one and shared by the later ones, whose
    workers then have torch imported already (a module that needs its own cluster shuts it down first)."""
    ray = pytest.importorskip("ray")
    from raysurr.distributed.runtime import connect

    connect(num_cpus=2, dashboard=False)
    return ray


def command_env(env: dict | None = None) -> dict[str, str]:
    """The environment of a command run in a fresh interpreter: it joins this process's Ray where there is one
    (RAY_ADDRESS; ~2 s where starting its own takes ~15 s), unless `env` names a RAY_ADDRESS of its own."""
    import ray

    joined = {"RAY_ADDRESS": ray.get_runtime_context().gcs_address} if ray.is_initialized() else {}
    return {**os.environ, "RAYSURR_DASHBOARD": "0", **joined, **(env or {})}


def run_command(*args: str, cwd: Path | None = None, timeout: float = 240, env: dict | None = None):
    """Run `python -m ...` in a fresh interpreter (on this process's Ray if it has one, `command_env`) and return
    the CompletedProcess."""
    full_env = command_env(env)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def assert_mlflow_has_every_round(run: Path) -> None:
    """The run's MLflow history is its rounds.csv: every column, each round at the step of its label count
    (an empty cell logs nothing)."""
    import csv
    import json

    mlflow = pytest.importorskip("mlflow")
    store = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run.parent / 'mlflow.db'}")
    run_id = json.loads((run / "mlflow.json").read_text())["run_id"]
    with (run / "rounds.csv").open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert table
    for key in table[0]:
        expected = [(int(row["n_labeled"]), float(row[key])) for row in table if row[key] != ""]
        logged = sorted((m.step, m.value) for m in store.get_metric_history(run_id, key))
        assert [s for s, _ in logged] == [s for s, _ in expected], key
        assert [v for _, v in logged] == pytest.approx([v for _, v in expected], nan_ok=True), key
