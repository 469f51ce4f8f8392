"""Malformed input, table-driven: every case exits 2 with one line on stderr and leaves nothing behind.

Each case runs a command's `main` in this process (as `python -m raysurr.X` would, through
`cli.invoke`), in an empty working folder that may hold the files the case needs. The folder must
look the same afterwards: no run, sweep, dataset or experiment folder, no `runs/`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysurr import commands as utilities
from raysurr.commands import dataset, drive, experiment, train, tune
from raysurr.commands.common import invoke
from tests.conftest import REPO

pytestmark = pytest.mark.timeout(300)

QUICK = str(REPO / "configs" / "quickstart.yaml")
SMALL = ["--set", "simulator.grid=32", "--set", "model.depth=3"]  # a run that would start at once


def drive_args(*sets: str) -> list[str]:
    return ["--config", QUICK, *SMALL, *[arg for item in sets for arg in ("--set", item)]]


def candidates(tmp: Path, **columns) -> None:
    pq.write_table(pa.table(columns), tmp / "cands.parquet")


GOOD_COLUMNS = {"row1": [10, 20], "col1": [10, 20], "flux1": [0.5, 0.5], "row2": [50, 60], "col2": [50, 60],
                "flux2": [1.0, 1.0]}  # fmt: skip


def write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)

    return setup


def plugin(body: str) -> Callable[[Path], None]:
    return write("bad_plugin_mod.py", body)


def fake_run(tmp: Path) -> None:
    (tmp / "r").mkdir()
    (tmp / "r" / "config.yaml").write_text("name: r\n")


# (id, command, argv, setup): the commands' argv as a user types them, in the case's working folder.
# fmt: off
CASES = [
    # config files and --set
    ("config-missing", drive, ["--config", "nope.yaml"], None),
    ("config-binary", drive, ["--config", "bin.yaml"], write("bin.yaml", bytes(range(256)) * 4)),
    ("config-bad-yaml", drive, ["--config", "bad.yaml"], write("bad.yaml", "model: [unclosed\n")),
    ("config-not-mapping", drive, ["--config", "list.yaml"], write("list.yaml", "- 1\n- 2\n")),
    ("config-is-folder", drive, ["--config", "."], None),
    ("config-section-not-mapping", drive, ["--config", "s.yaml"], write("s.yaml", "training: 5\n")),
    ("set-broken-yaml", drive, drive_args("training.lr=[1,"), None),
    ("set-without-equals", drive, [*drive_args(), "--set", "training.lr"], None),
    ("set-unknown-section", drive, drive_args("bogus.key=1"), None),
    ("set-unknown-key", drive, drive_args("training.bogus=1"), None),
    ("set-into-a-value", drive, drive_args("seed.x=1"), None),
    ("lr-negative", drive, drive_args("training.lr=-1"), None),
    ("lr-text", drive, drive_args("training.lr=fast"), None),
    ("epochs-fraction", drive, drive_args("training.epochs=1.5"), None),
    ("epochs-bool", drive, drive_args("training.epochs=true"), None),
    ("batch-zero", drive, drive_args("loop.batch_size=0"), None),
    ("rounds-negative", drive, drive_args("loop.rounds=-2"), None),
    ("initial-over-size", drive, drive_args("pool.initial=99999"), None),
    ("pool-size-negative", drive, drive_args("pool.size=-5"), None),
    ("seed-negative", drive, drive_args("seed=-1"), None),
    ("name-dotdot", drive, drive_args("name=../../escape"), None),
    ("name-slash", drive, drive_args("name=a/b"), None),
    ("name-empty", drive, drive_args("name=''"), None),
    ("name-hidden", drive, drive_args("name=.hidden"), None),
    ("plugins-not-list", drive, drive_args("plugins=5"), None),
    ("plugin-missing", drive, drive_args("plugins=[no_such_module_xyz]"), None),
    ("plugin-raises", drive, drive_args("plugins=[bad_plugin_mod]"), plugin("raise RuntimeError('boom')\n")),
    ("plugin-syntax-error", drive, drive_args("plugins=[bad_plugin_mod]"), plugin("def broken(:\n")),
    # simulators
    ("simulator-unknown", drive, drive_args("simulator.name=nope"), None),
    ("simulator-grid-tiny", drive, drive_args("simulator.grid=4"), None),
    ("simulator-grid-text", drive, drive_args("simulator.grid=big"), None),
    ("simulator-solver-unknown", drive, drive_args("simulator.solver=magic"), None),
    ("simulator-option-unknown", drive, drive_args("simulator.bogus=1"), None),
    ("plugin-simulator-wrong-type", drive, drive_args("plugins=[tests.labeling_sims]", "simulator.name=misbehaving",
                                                      "simulator.raise_on=5", "model.depth=2"), None),
    ("command-template-braces", drive, drive_args("simulator.name=command", "simulator.command='run {params} "
                                                  "{outputs} {x}'", "simulator.parameters=[{name: a, low: 0, high: 1}]",
                                                  "simulator.output_shape=[1, 32, 32]"), None),
    ("command-no-placeholders", drive, drive_args("simulator.name=command", "simulator.command=run",
                                                  "simulator.parameters=[{name: a, low: 0, high: 1}]",
                                                  "simulator.output_shape=[1, 32, 32]"), None),
    ("command-timeout-zero", drive, drive_args("simulator.name=command", "simulator.command='r {params} {outputs}'",
                                               "simulator.parameters=[{name: a, low: 0, high: 1}]",
                                               "simulator.output_shape=[1, 32, 32]", "simulator.timeout_s=0"), None),
    # models
    ("model-unknown", drive, drive_args("model.name=resnet"), None),
    ("model-width-negative", drive, drive_args("model.base_channels=-1"), None),
    ("model-dropout-two", drive, drive_args("model.dropout=2"), None),
    ("model-padding-unknown", drive, drive_args("model.padding=circular"), None),
    ("model-too-deep-for-grid", drive, drive_args("model.depth=9"), None),
    ("model-option-unknown", drive, drive_args("model.bogus=1"), None),
    ("model-width-text", drive, drive_args("model.base_channels=wide"), None),
    ("autoencoder-too-deep", drive, drive_args("model.name=autoencoder", "model.depth=12"), None),
    # acquisition
    ("acquisition-unknown", drive, drive_args("acquisition.name=bald"), None),
    ("acquisition-option-unknown", drive, drive_args("acquisition.bogus=1"), None),
    ("entropy-one-pass", drive, drive_args("acquisition.name=entropy", "acquisition.passes=1"), None),
    ("stochastic-inner-unknown", drive, drive_args("acquisition.name=stochastic", "acquisition.inner={name: nope}"),
     None),
    # candidates
    ("candidates-missing", drive, drive_args("pool.candidates=none.parquet"), None),
    ("candidates-not-parquet", drive, drive_args("pool.candidates=c.txt"), write("c.txt", "row1,col1\n1,2\n")),
    ("candidates-wrong-columns", drive, drive_args("pool.candidates=cands.parquet"),
     lambda tmp: candidates(tmp, a=[1.0], b=[2.0])),
    ("candidates-out-of-range", drive, drive_args("pool.candidates=cands.parquet"),
     lambda tmp: candidates(tmp, **{**GOOD_COLUMNS, "row1": [10, 500]})),
    ("candidates-nan", drive, drive_args("pool.candidates=cands.parquet"),
     lambda tmp: candidates(tmp, **{**GOOD_COLUMNS, "flux1": [0.5, float("nan")]})),
    ("candidates-text", drive, drive_args("pool.candidates=cands.parquet"),
     lambda tmp: candidates(tmp, **{**GOOD_COLUMNS, "flux1": ["a", "b"]})),
    # labelling and resources
    ("retries-kind-unknown", drive, drive_args("labeling.retries.bogus=1"), None),
    ("retries-negative", drive, drive_args("labeling.retries.exception=-1"), None),
    ("timeout-zero", drive, drive_args("labeling.timeout_s=0"), None),
    ("simulator-cpus-too-many", drive, drive_args("resources.cpus_per_simulator=64"), None),
    ("train-cpus-too-many", drive, drive_args("resources.cpus_per_train_worker=64"), None),
    ("gpu-without-gpu", drive, drive_args("resources.use_gpu=true"), None),
    ("simulator-gpus-without-gpu", drive, drive_args("resources.gpus_per_simulator=1"), None),
    # folders and flags
    ("run-dir-is-file", drive, [*drive_args(), "--run-dir", "f"], write("f", "x")),
    ("run-dir-not-empty", drive, [*drive_args(), "--run-dir", "full"], write("full/keep", "x")),
    ("resume-missing", drive, ["--resume", "nowhere"], None),
    ("resume-not-a-run", drive, ["--resume", "."], None),
    ("resume-with-config", drive, ["--resume", "r", "--config", QUICK], fake_run),
    ("resume-state-garbage", drive, ["--resume", "r"],
     lambda tmp: (fake_run(tmp), (tmp / "r" / "state.json").write_text("{not json"))),
    ("retry-failed-without-resume", drive, [*drive_args(), "--retry-failed"], None),
    ("unknown-flag", drive, ["--bogus"], None),
    ("flag-missing-value", drive, ["--config"], None),
    # other commands
    ("experiment-no-acquisitions", experiment, ["--config", QUICK, *SMALL], None),
    ("experiment-reference-unknown", experiment, ["--config", QUICK, *SMALL, "--set",
                                                  "experiment.acquisitions={tod: {}}", "--set",
                                                  "experiment.reference=random"], None),
    ("experiment-seeds-repeated", experiment, ["--config", QUICK, "--set", "experiment.seeds=[1, 1]"], None),
    ("experiment-resume-missing", experiment, ["--resume", "nowhere"], None),
    ("experiment-resume-unsafe-change", experiment, ["--resume", "e", "--set", "training.lr=0.5"],
     write("e/config.yaml", "experiment: {acquisitions: {random: {}}}\n")),
    ("tune-empty-space", tune, ["--config", QUICK], None),
    ("tune-space-bad-key", tune, ["--config", QUICK, "--set", "sweep.space={lr: 1}"], None),
    ("tune-space-empty-range", tune, ["--config", QUICK, "--set", "sweep.space={training.lr: {uniform: [1, 1]}}"],
     None),
    ("dataset-n-zero", dataset, ["--n", "0", "--out", "d"], None),
    ("dataset-split-text", dataset, ["--split", "a,b", "--out", "d"], None),
    ("dataset-n-split-mismatch", dataset, ["--n", "5", "--split", "2,2", "--out", "d"], None),
    ("dataset-allow-failures-two", dataset, ["--n", "4", "--out", "d", "--allow-failures", "2"], None),
    ("dataset-out-is-file", dataset, ["--n", "4", "--out", "f"], write("f", "x")),
    ("dataset-missing-out", dataset, ["--n", "4"], None),
    ("train-not-a-dataset", train, ["--data", ".", "--out", "o"], None),
    ("train-simulator-not-importable", train, ["--data", "ds", "--out", "o"],
     write("ds/dataset.yaml", "simulator: {name: my_unloaded_sim}\nparameters: [x]\ninput_shape: [1, 8, 8]\n"
           "output_shape: [1, 8, 8]\nextras: []\nsplits: {train: 1, val: 1, test: 1}\nseed: 0\n"
           "format_version: 1\n")),
    ("list-config-missing", utilities, ["list", "--config", "nope.yaml"], None),
    ("check-not-a-folder", utilities, ["check", "nowhere"], None),
    ("check-unknown-folder", utilities, ["check", "."], None),
]
# fmt: on


def snapshot(folder: Path) -> dict[str, int]:
    """Every file and folder with its size; a folder's lock file (which a resume refused after taking the lock
    leaves, empty of meaning once its holder is gone) is not content."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")
            if "__pycache__" not in p.parts and p.name != ".lock"}  # fmt: skip


@pytest.mark.parametrize(("command", "argv", "setup"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_input_is_one_line_and_leaves_nothing(ray_local, tmp_path, monkeypatch, capsys, command, argv, setup):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    if setup is not None:
        setup(tmp_path)
    before = snapshot(tmp_path)
    prog = f"raysurr {argv[0]}" if command is utilities else f"raysurr.{command.__name__.rsplit('.', 1)[-1]}"
    code = invoke(command.main, prog, argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert snapshot(tmp_path) == before


def test_there_are_at_least_sixty_cases():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


def test_unreachable_address_is_one_line(tmp_path):
    """A fresh process: joining a cluster that is not there fails at once, with one line."""
    from tests.conftest import run_command

    result = run_command("-m", "raysurr.drive", "--config", QUICK, *SMALL, "--run-dir", str(tmp_path / "r"),
                         "--address", "127.0.0.1:1", env={"RAY_gcs_rpc_server_connect_timeout_s": "2"},
                         timeout=120)  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.strip() and "WARNING" not in line]
    assert result.returncode == 2, result.stderr[-2000:]
    assert lines[-1].startswith("raysurr.drive: error: cannot reach the Ray cluster at '127.0.0.1:1'"), lines
    assert not (tmp_path / "r").exists()


def test_a_malformed_case_can_fail(tmp_path, monkeypatch, capsys):
    """The harness itself: a command that succeeds is not counted as a refusal."""
    monkeypatch.chdir(tmp_path)
    assert invoke(utilities.main, "raysurr", ["list"]) == 0
    assert "simulators:" in capsys.readouterr().out
    assert not os.listdir(tmp_path)
