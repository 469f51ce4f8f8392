"""The architecture holds: the pure core imports no Ray, and the code passes the linter."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

NO_RAY_NO_TORCH = [
    "raysurr",
    "raysurr.config",
    "raysurr.simulators",
    "raysurr.data",
    "raysurr.registry",
    "raysurr.tracking",
]
NO_RAY = ["raysurr.models", "raysurr.models.checkpoint", "raysurr.models.fitting", "raysurr.models.losses"]
NO_RAY += ["raysurr.plots"]
CASES = [(m, ("ray", "torch")) for m in NO_RAY_NO_TORCH] + [(m, ("ray",)) for m in NO_RAY]


@pytest.mark.parametrize(("module", "forbidden"), CASES)
def test_pure_core_never_imports_ray(module, forbidden):
    code = f"import sys, {module}; bad = [m for m in {forbidden!r} if m in sys.modules]; print(bad)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"{module} pulls in {result.stdout.strip()}"


def imports(path):
    """Every module name a source file imports (at any depth of the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names


PACKAGE = REPO / "raysurr"
ENTRY_POINTS = {
    "__main__.py",
    "drive.py",
    "dataset.py",
    "train.py",
    "tune.py",
    "experiment.py",
    "headroom.py",
    "predict.py",
    "export.py",
}
LIBRARY = [p for p in PACKAGE.rglob("*.py") if "commands" not in p.relative_to(PACKAGE).parts
           and not (p.parent == PACKAGE and p.name in ENTRY_POINTS)]  # fmt: skip


def test_no_library_module_imports_a_command():
    offenders = {str(p.relative_to(REPO)): sorted(n for n in imports(p) if n.startswith("raysurr.commands"))
                 for p in LIBRARY}  # fmt: skip
    assert len(LIBRARY) > 30 and not {path: names for path, names in offenders.items() if names}


@pytest.mark.parametrize(("library", "adapter"), [("ray.train", "training.py"), ("ray.tune", "tuning.py"),
                                                  ("ray.data", "scoring.py")])  # fmt: skip
def test_each_ray_library_is_used_in_one_adapter(library, adapter):
    users = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
             if any(n == library or n.startswith(f"{library}.") for n in imports(p))}  # fmt: skip
    assert users <= {f"distributed/{adapter}", "distributed/runtime.py"}, users  # runtime quiets Ray Data's logs
    assert f"distributed/{adapter}" in users


@pytest.mark.skipif(shutil.which("ruff") is None and not (REPO / ".venv/bin/ruff").exists(), reason="ruff missing")
@pytest.mark.parametrize("check", [["check"], ["format", "--check"]])
def test_ruff(check):
    result = subprocess.run([sys.executable, "-m", "ruff", *check, "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_opens_with_what_raysurr_is_then_the_two_commands_and_ci_runs_the_second():
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("```bash")
    intro = " ".join(lines[1:start]).strip()
    assert (
        intro.startswith("raysurr trains") and 1 <= intro.count(". ") + intro.endswith(")") + 1 <= 3
    )  # a sentence or two
    assert lines[start + 3] == "```"
    assert lines[start + 1].endswith(".venv/bin/python -m raysurr.drive --config configs/quickstart.yaml")
    assert lines[start + 2] in (REPO / ".ci" / "run").read_text().splitlines()


def test_every_package_has_an_init_so_that_a_wheel_ships_it():
    folders = {p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert [str(f.relative_to(REPO)) for f in folders if not (f / "__init__.py").is_file()] == []
