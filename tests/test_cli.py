"""Commands as a user runs them: fresh interpreters, their own local Ray, one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from raysurr.data import open_dataset
from raysurr.errors import DatasetError
from tests.conftest import REPO, run_command

pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "raysurr.dataset", "--n", "3", "--out", "x", "--solver", "nope"], "unknown diffusion2d solver 'nope'"),
        (["-m", "raysurr", "list", "--set", "model.widht"], "must look like section.key=value"),
        (["-m", "raysurr", "list", "--config", "missing.yaml"], "config file 'missing.yaml' not found"),
    ],
)
def test_errors_are_one_line_with_status_2(tmp_path, args, message):
    result = run_command(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("raysurr"), result.stderr


def test_list_prints_every_registry():
    result = run_command("-m", "raysurr", "list")
    assert result.returncode == 0, result.stderr
    for name in ["diffusion2d", "command", "transient", "unet", "autoencoder", "tod", "stochastic"]:
        assert f"  {name} " in result.stdout, name


def test_killed_run_leaves_no_complete_dataset(tmp_path):
    """SIGKILL the whole process tree mid-labelling: DIR must not exist, nothing reads as complete."""
    args = ["-m", "raysurr.dataset", "--n", "400", "--solver", "transient", "--out", "out"]
    args += ["--set", "simulator.grid=32", "--set", "labeling.chunk_size=4"]
    env = {**os.environ, "RAYSURR_DASHBOARD": "0", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, *args], cwd=tmp_path, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not list(tmp_path.glob(".out.partial-*/part-*.parquet")):
            assert proc.poll() is None, "the run ended before it wrote a part"
            assert time.monotonic() < deadline, "no part file appeared"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (tmp_path / "out").exists()
    (partial,) = tmp_path.glob(".out.partial-*")
    with pytest.raises(DatasetError, match="not a complete raysurr dataset"):
        open_dataset(partial)
