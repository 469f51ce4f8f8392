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


def run_command(*args: str, cwd: Path | None = None, timeout: float = 240, env: dict | None = None):
    """Run `python -m ...` in a fresh interpreter (its own local Ray) and return the CompletedProcess."""
    full_env = {**os.environ, "RAYSURR_DASHBOARD": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
