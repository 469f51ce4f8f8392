"""The guide "Your own simulator in ten minutes" (docs/simulators.md) works as written: its blocks run in order in
a fresh folder, as a new user would paste them (files saved, Python run, commands run); then "Use your surrogate"
(docs/use.md) runs as written in the folder the guide left."""

from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
import sys

import pytest

from raysurr.data.dataset import open_dataset, read_split
from raysurr.models.checkpoint import read_checkpoint
from tests.conftest import REPO, command_env

pytestmark = pytest.mark.timeout(900)

GUIDE = "## Your own simulator in ten minutes"
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def guide_blocks() -> list[tuple[str, str, str]]:
    """(language, file name or "", text) of each fenced block of the guide's section."""
    text = (REPO / "docs" / "simulators.md").read_text()
    section = text[text.index(GUIDE) :]
    return blocks_of(section[: section.index("\n## ", len(GUIDE))])


def blocks_of(section: str) -> list[tuple[str, str, str]]:
    blocks = []
    for language, info, body in BLOCK.findall(section):
        name = re.search(r"file=(\S+)", info)
        blocks.append((language, name.group(1) if name else "", body))
    return blocks


def commands(body: str) -> list[list[str]]:
    """A bash block's command lines (continuations joined), `python` as this interpreter."""
    lines = body.replace("\\\n", " ").splitlines()
    argvs = [shlex.split(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [[sys.executable if argv[0] == "python" else argv[0], *argv[1:]] for argv in argvs]


def test_the_guide_has_a_plugin_a_config_python_and_the_four_commands():
    blocks = guide_blocks()
    assert [(language, name) for language, name, _ in blocks] == [
        ("python", "my_simulators.py"),
        ("python", ""),
        ("yaml", "plume.yaml"),
        ("bash", ""),
    ]
    ran = [argv[1:3] for argv in commands(blocks[-1][2])]
    assert ran == [["-m", "raysurr"], ["-m", "raysurr.dataset"], ["-m", "raysurr.train"], ["-m", "raysurr.drive"]]


def run_blocks(blocks: list[tuple[str, str, str]], folder) -> list[str]:
    """Save, run and check the blocks in `folder`; the stdout of each Python block."""
    printed = []
    for language, name, body in blocks:
        if name:
            (folder / name).write_text(body)
            continue
        runs = [[sys.executable, "-c", body]] if language == "python" else commands(body)
        for argv in runs:
            env = command_env({"PYTHONPATH": str(REPO)})  # the commands join the suite's Ray
            result = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, f"{shlex.join(argv[:4])} failed:\n{result.stderr[-3000:]}"
            if language == "python":
                printed.append(result.stdout)
            if argv[1:3] == ["-m", "raysurr"] and argv[3] == "list":
                assert re.search(r"^\s+plume\s+A Gaussian plume", result.stdout, re.MULTILINE)
    return printed


@pytest.fixture(scope="module")
def guide(ray_local, tmp_path_factory):
    folder = tmp_path_factory.mktemp("guide")
    printed = run_blocks(guide_blocks(), folder)
    assert printed[0].startswith("(4, 1, 48, 48)")
    return folder


def test_the_guide_runs_as_written(guide):
    tmp_path = guide
    info = open_dataset(tmp_path / "data" / "plume")  # the plugin's parameters and shapes, as declared
    assert info.parameters == ["row", "col", "rate", "wind"] and info.input_shape == [2, 48, 48]
    assert read_split(tmp_path / "data" / "plume", "val").schema.field("row").type.bit_width == 64  # integer
    # targets of order 1e-3 kg/m³: both models do better than predicting zero, on the weighted MAE
    metrics = json.loads((tmp_path / "runs" / "plume-passive" / "metrics.json").read_text())
    assert metrics["test_wmae_skill_zero"] > 0 and 0 < metrics["test_mae_all"] < 1e-3
    with (tmp_path / "runs" / "plume-al" / "rounds.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["n_labeled"]) for r in rows] == [40, 100]
    assert float(rows[-1]["test_wmae_skill_zero"]) > 0 and "test_mae_stack" in rows[-1]
    trained = read_checkpoint(tmp_path / "runs" / "plume-al" / "checkpoints" / "round_001")[0]
    assert trained.meta["augmented"] == ["flip_rows"]  # the plume's one symmetry


def test_use_your_surrogate_runs_as_written_on_the_guides_run(guide):
    """docs/use.md: every block, in order, in the folder the guide left; what each prints is what its comments say."""
    printed = run_blocks(blocks_of((REPO / "docs" / "use.md").read_text()), guide)
    expected = ["('row', 'col', 'rate', 'wind') 100\n(2, 1, 48, 48) True", "True", "(1, 1, 48, 48) True True",
                "", "500 (500, 1, 48, 48)", "True True\n['row', 'col', 'rate', 'wind']", "(1, 1, 48, 48)"]  # fmt: skip
    assert len(printed) == len(expected)
    for out, start in zip(printed, expected, strict=True):
        assert out.strip().startswith(start), (out, start)
    assert (guide / "plume.pt.json").exists() and (guide / "runs" / "plume-al" / "model").is_symlink()
