"""The architecture holds: the pure core imports no Ray, and the code passes the linter."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

NO_RAY_NO_TORCH = ["raysurr", "raysurr.config", "raysurr.simulators", "raysurr.data", "raysurr.registry"]
NO_RAY = ["raysurr.models", "raysurr.models.checkpoint", "raysurr.models.fitting", "raysurr.models.losses"]
NO_RAY += ["raysurr.plots"]
CASES = [(m, ("ray", "torch")) for m in NO_RAY_NO_TORCH] + [(m, ("ray",)) for m in NO_RAY]


@pytest.mark.parametrize(("module", "forbidden"), CASES)
def test_pure_core_never_imports_ray(module, forbidden):
    code = f"import sys, {module}; bad = [m for m in {forbidden!r} if m in sys.modules]; print(bad)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"{module} pulls in {result.stdout.strip()}"


@pytest.mark.skipif(shutil.which("ruff") is None and not (REPO / ".venv/bin/ruff").exists(), reason="ruff missing")
@pytest.mark.parametrize("check", [["check"], ["format", "--check"]])
def test_ruff(check):
    result = subprocess.run([sys.executable, "-m", "ruff", *check, "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    lines = (REPO / "README.md").read_text().splitlines()
    assert lines[2] == "```bash" and lines[5] == "```"
    assert lines[3].endswith(".venv/bin/python -m raysurr.drive --config configs/quickstart.yaml")
    assert lines[4] in (REPO / ".ci" / "run").read_text().splitlines()
