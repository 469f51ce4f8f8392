"""The architecture holds: the pure core imports no Ray, and the code passes the linter."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

PURE = ["raysurr", "raysurr.config", "raysurr.simulators", "raysurr.data", "raysurr.registry", "raysurr.seeding"]


@pytest.mark.parametrize("module", PURE)
def test_pure_core_never_imports_ray(module):
    code = f"import sys, {module}; bad = [m for m in ('ray', 'torch') if m in sys.modules]; print(bad)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"{module} pulls in {result.stdout.strip()}"


@pytest.mark.skipif(shutil.which("ruff") is None and not (REPO / ".venv/bin/ruff").exists(), reason="ruff missing")
@pytest.mark.parametrize("check", [["check"], ["format", "--check"]])
def test_ruff(check):
    result = subprocess.run([sys.executable, "-m", "ruff", *check, "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
