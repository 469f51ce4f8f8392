"""The `raysurr` console script and the `python -m raysurr.X` entry points run the same commands."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from raysurr.commands import COMMANDS, main
from tests.conftest import REPO, run_command


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)


def test_an_unknown_command_is_one_line_with_status_2(capsys):
    assert main(["drvie"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"raysurr: error: unknown command 'drvie'; the commands are {', '.join(COMMANDS)}"
    ]
    assert list(COMMANDS)[:3] == ["drive", "dataset", "train"] and {"predict", "export", "headroom"} <= set(COMMANDS)


def test_every_command_module_has_a_main_and_every_entry_point_names_its_command():
    for name, (module, _) in COMMANDS.items():
        assert callable(__import__(f"raysurr.commands.{module}", fromlist=["main"]).main), name
    for name in ("drive", "dataset", "train", "tune", "experiment"):
        assert f'run_command("{name}", prog="raysurr.{name}")' in (REPO / "raysurr" / f"{name}.py").read_text()


CONSOLE = Path(sys.executable).parent / "raysurr"


@pytest.mark.skipif(
    not CONSOLE.exists() and shutil.which("raysurr") is None, reason="the console script is not installed"
)
def test_the_console_script_and_python_m_agree(tmp_path):
    script = str(CONSOLE if CONSOLE.exists() else shutil.which("raysurr"))
    console = run_command("-c", f"import subprocess, sys; sys.exit(subprocess.call([{script!r}, 'check', 'nowhere']))")
    module = run_command("-m", "raysurr.drive", "--resume", str(tmp_path / "nowhere"))
    assert console.returncode == 2 and console.stderr.strip() == "raysurr check: error: 'nowhere' is not a folder"
    assert module.returncode == 2 and module.stderr.strip().startswith("raysurr.drive: error: ")


def test_usage_and_errors_name_the_command_as_it_was_typed(capsys):
    from raysurr.commands import run_command

    assert main(["drive", "--bogus"]) == 2
    assert capsys.readouterr().err.strip() == (
        "raysurr drive: error: unrecognized arguments: --bogus (see raysurr drive --help)"
    )
    assert run_command("drive", ["--bogus"], prog="raysurr.drive") == 2  # as `python -m raysurr.drive` runs it
    assert capsys.readouterr().err.strip() == (
        "raysurr.drive: error: unrecognized arguments: --bogus (see python -m raysurr.drive --help)"
    )
