"""A run folder that is locked, verified on resume, and never silently wrong.

One tiny finished run is made per module; each case damages a copy of it and resumes the copy the
way a user would (`python -m raysurr.drive --resume`, through `cli.invoke` in this process).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysurr import commands as utilities
from raysurr.commands import dataset, drive
from raysurr.commands.common import invoke
from raysurr.data.lock import FolderLock
from raysurr.data.store import tensor_array, write_table
from raysurr.errors import RunFailed
from raysurr.seeding import generator
from raysurr.simulators import build_simulator
from tests.conftest import REPO, run_command

pytestmark = pytest.mark.timeout(600)

QUICK = str(REPO / "configs" / "quickstart.yaml")
TINY = ["simulator.grid=32", "pool.size=48", "pool.initial=8", "pool.val=8", "pool.test=8", "loop.batch_size=8",
        "loop.rounds=2", "training.epochs=1", "training.batch_size=8", "model.base_channels=2", "model.depth=3",
        "resources.cpus_per_train_worker=1", "resources.score_actors=1", "labeling.chunk_size=4",
        "acquisition.name=random"]  # fmt: skip
SETS = [arg for item in TINY for arg in ("--set", item)]
# The misbehaving plugin simulator in place of the quickstart's whole simulator section (the quickstart's
# own `grid` and `solver` are diffusion2d's options).
MISBEHAVING = ["plugins=[tests.labeling_sims]", "simulator={name: misbehaving}", "model.depth=2",
               "labeling.backoff_s=0.05"]  # fmt: skip


def resume(folder: Path, *args: str) -> tuple[int, str]:
    return _drive(["--resume", str(folder), *args])


def _drive(argv: list[str]) -> tuple[int, str]:
    import io
    from contextlib import redirect_stderr

    err = io.StringIO()
    with redirect_stderr(err):
        code = invoke(drive.main, "raysurr.drive", argv)
    return code, err.getvalue()


def error_line(text: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith("raysurr.drive: error: ")]
    return line


@pytest.fixture(scope="module")
def finished(ray_local, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "finished"
    code, err = _drive(["--config", QUICK, "--run-dir", str(run), *SETS])
    assert code == 0, err
    return run


@pytest.fixture
def copy(finished, tmp_path) -> Path:
    target = tmp_path / "runs" / "copy"
    shutil.copytree(finished, target, ignore=shutil.ignore_patterns(".lock", ".driver.lock"))
    shutil.copytree(finished.parent / ".eval-cache", tmp_path / "runs" / ".eval-cache", dirs_exist_ok=True)
    return target


def test_a_finished_run_resumes_to_done(copy):
    code, err = resume(copy)
    assert code == 0, err
    assert json.loads((copy / "state.json").read_text())["phase"] == "done"


def test_missing_state_is_refused_not_restarted(copy):
    (copy / "state.json").unlink()
    before = (copy / "rounds.csv").read_text()
    code, err = resume(copy)
    assert code == 2
    assert "state.json' is missing, but the run folder holds labels, checkpoints, rounds.csv" in error_line(err)
    assert (copy / "rounds.csv").read_text() == before and not (copy / "state.json").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / "state.json").write_text("{half"), "state.json' cannot be read"),
        (lambda r: (r / "state.json").write_text(json.dumps({**json.loads((r / "state.json").read_text()),
                                                             "round": 7})), "state.json' is inconsistent"),
        (lambda r: shutil.rmtree(r / "checkpoints" / "round_001"), "says round 1 was trained"),
        (lambda r: (r / "labels" / "part-000000.parquet").unlink(), "listed in the manifest but missing"),
        (lambda r: shutil.copy(r / "labels" / "part-000000.parquet", r / "labels" / "part-000000-copy.parquet"),
         "is not in the store's manifest"),
        (lambda r: (r / "labels" / "_manifest.jsonl").write_text("{broken\n"), "line 1 is damaged"),
        (lambda r: nan_target(r / "labels" / "part-000001.parquet"), "part-000001.parquet' differs from what"),
        (lambda r: os.chmod(r, 0o777), "is writable by other users"),
    ],
    ids=["state-garbage", "state-inconsistent", "checkpoint-gone", "part-deleted", "part-copied", "manifest-damaged",
         "nan-in-target", "world-writable"],
)  # fmt: skip
def test_damage_is_refused_with_one_line(copy, damage, message):
    damage(copy)
    code, err = resume(copy)
    assert code == 2, err
    assert message in error_line(err)
    code, report = invoke_check(copy)
    assert code == (0 if message.startswith("is writable") else 1), report


def nan_target(part: Path) -> None:
    table = pq.read_table(part)
    target = table.column("target").combine_chunks().to_numpy_ndarray().copy()
    target[0, 0, 0, 0] = np.nan
    write_table(table.set_column(table.column_names.index("target"), "target", tensor_array(target)), part)


def invoke_check(folder: Path) -> tuple[int, str]:
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        code = invoke(utilities.main, "raysurr", ["check", str(folder)])
    return code, out.getvalue()


def test_check_reports_a_sound_run_and_names_a_damaged_part(copy):
    code, out = invoke_check(copy)
    assert code == 0 and "problem" not in out and "label store" in out
    assert "every label was selected" in out
    state = json.loads((copy / "state.json").read_text())
    dropped = state["selections"][1].pop()
    (copy / "state.json").write_text(json.dumps(state))
    code, out = invoke_check(copy)
    assert code == 1 and f"1 labels no round selected (e.g. sample {dropped})" in out
    (copy / "labels" / "part-000001.parquet").unlink()
    code, out = invoke_check(copy)
    assert code == 1 and "problem" in out and "part-000001.parquet' is listed in the manifest but missing" in out


@pytest.mark.parametrize("change", ["seed=99", "simulator.grid=64", "acquisition.name=tod", "model.base_channels=4",
                                    "training.lr=0.5", "pool.size=60"])  # fmt: skip
def test_resume_refuses_changes_that_rewrite_history(copy, change):
    before = (copy / "config.yaml").read_bytes(), (copy / "state.json").read_bytes()
    code, err = resume(copy, "--set", change)
    assert code == 2 and f"--resume cannot change {change.split('=')[0]}" in error_line(err)
    # untouched: byte for byte the folder that test_a_finished_run_resumes_to_done resumes
    assert ((copy / "config.yaml").read_bytes(), (copy / "state.json").read_bytes()) == before


def test_resume_records_a_safe_change_and_runs_on(copy):
    code, err = resume(copy, "--set", "loop.rounds=3", "--set", "labeling.chunk_size=2")
    assert code == 0, err
    state = json.loads((copy / "state.json").read_text())
    assert [(c["key"], c["old"], c["new"], c["round"]) for c in state["changes"]] == [
        ("labeling.chunk_size", 4, 2, 2), ("loop.rounds", 2, 3, 2)]  # fmt: skip
    assert len(state["records"]) == 3 and "loop.rounds=3" not in err
    assert "rounds: 3" in (copy / "config.yaml").read_text()
    # the resumed run reopened round 1's selection: still one selection per labelled round, every label among them
    selections = state["selections"]
    assert len(selections) == 3 and all(selections)
    labeled = set(pq.read_table(copy / "labels", columns=["sample_id"]).column(0).to_pylist())
    assert labeled == {i for ids in selections for i in ids}


def test_an_evaluation_set_whose_samples_failed_is_never_cached(ray_local, tmp_path):
    run = tmp_path / "runs" / "failing"
    code, err = _drive(["--config", QUICK, "--run-dir", str(run), *SETS,
                        *[a for s in [*MISBEHAVING, "simulator.raise_above=-1"] for a in ("--set", s)]])  # fmt: skip
    assert code == 1, err
    assert "evaluation sets: val: 0 of 8 samples labelled" in error_line(err)
    cache = tmp_path / "runs" / ".eval-cache"
    assert not list(cache.glob("*/dataset.yaml"))
    code, err = resume(run, "--set", "simulator.raise_above=20000")  # not a safe change: the run says so
    assert code == 2 and "--resume cannot change simulator.raise_above" in err


def test_a_dataset_with_failures_exits_non_zero_without_a_manifest(ray_local, tmp_path):
    import io
    from contextlib import redirect_stderr

    out = tmp_path / "d"
    args = ["--n", "8", "--out", str(out), *[a for s in [*MISBEHAVING, "simulator.raise_above=5000"]
                                              for a in ("--set", s)]]  # fmt: skip
    err = io.StringIO()
    with redirect_stderr(err):
        code = invoke(dataset.main, "raysurr.dataset", args)
    assert code == 1
    assert "samples labelled" in err.getvalue() and "--allow-failures" in err.getvalue()
    assert not (out / "dataset.yaml").exists() and list((out / "failures").glob("part-*.parquet"))
    with redirect_stderr(io.StringIO()):
        assert invoke(dataset.main, "raysurr.dataset", [*args, "--overwrite", "--allow-failures", "0.99"]) == 0
    assert (out / "dataset.yaml").exists()


def test_retry_failed_simulates_recorded_failures_again(ray_local, tmp_path):
    """A sample that failed for good (no retries) is labelled when the run resumes with --retry-failed."""
    sim = build_simulator_for_test()
    eval_x = set(sim.sample(16, generator(0, "eval"))[:, 0].astype(int).tolist())
    xs = [x for x in range(1, 200) if x not in eval_x][:48]
    pq.write_table(pa.table({"x": xs}), tmp_path / "cands.parquet")
    flaky = [xs[i] for i in sorted(generator(0, "initial").choice(48, size=8, replace=False).tolist())[:2]]
    run = tmp_path / "runs" / "retry"
    options = [
        *MISBEHAVING,
        f"simulator.flaky_on={flaky}",
        f"simulator.flaky_dir={tmp_path}",
        "loop.rounds=1",
        "labeling.retries.exception=0",
        "labeling.chunk_size=1",
        f"pool.candidates={tmp_path / 'cands.parquet'}",
    ]
    sets = [*SETS, *[a for s in options for a in ("--set", s)]]
    code, err = _drive(["--config", QUICK, "--run-dir", str(run), *sets])
    assert code == 0, err
    failed = pq.read_table(run / "failures").column("sample_id").to_pylist()
    assert sorted(xs[i] for i in failed) == sorted(flaky)
    code, err = resume(run, "--retry-failed", "--set", "loop.rounds=2")
    assert code == 0, err
    labels = pq.read_table(run / "labels", columns=["sample_id", "attempts"]).to_pydict()
    assert sorted(set(labels["sample_id"])) == sorted(labels["sample_id"])  # nothing twice
    assert {xs[i] for i in labels["sample_id"]} >= set(flaky)
    assert not list((run / "failures").glob("part-*.parquet"))  # set aside, kept under failures/retried-*/
    assert list((run / "failures").glob("retried-*/part-*.parquet"))


def build_simulator_for_test():
    from raysurr.config import SimulatorConfig, load_plugins

    load_plugins(["tests.labeling_sims"])
    return build_simulator(SimulatorConfig(name="misbehaving"))


def test_a_second_command_on_a_running_folder_is_refused(finished, tmp_path):
    """Another process drives the run: a resume and a new run on its folder are refused, naming it."""
    run = tmp_path / "runs" / "busy"
    env = {**os.environ, "RAYSURR_DASHBOARD": "0", "PYTHONPATH": str(REPO)}
    long = [*SETS, "--set", "loop.rounds=200", "--set", "pool.size=2000"]
    proc = subprocess.Popen([sys.executable, "-m", "raysurr.drive", "--config", QUICK, "--run-dir", str(run), *long],
                            cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (run / "state.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the first run never started"
            time.sleep(0.2)
        code, err = resume(run)
        assert code == 2
        assert f"run folder '{run}' is in use by pid {proc.pid} on host" in error_line(err)
        code, err = _drive(["--config", QUICK, "--run-dir", str(run), *SETS])
        assert code == 2 and "is not empty; continue it with --resume" in error_line(err)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    FolderLock(run, "run folder").acquire().release()  # the lock died with its holder (resuming: test_drive)


def test_an_error_inside_the_driver_reaches_the_command_as_one_line(tmp_path):
    """A plugin model that fails in training: exit 1, one error line naming the log that holds the traceback."""
    run = tmp_path / "r"
    args = ["-m", "raysurr.drive", "--config", QUICK, "--run-dir", str(run), *SETS, "--set",
            "plugins=[tests.failing_model]", "--set", "model={name: fails_in_training}"]  # fmt: skip
    result = run_command(*args, env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line.lower() or "Traceback" in line]
    assert errors == [f"raysurr.drive: error: the run failed inside Ray (RuntimeError: fails_in_training: this model "
                      f"always fails); the traceback is in {run / 'error.log'}, --debug prints it"]  # fmt: skip
    assert "Traceback" in (run / "error.log").read_text() or "File " in (run / "error.log").read_text()


def test_debug_prints_the_remote_traceback_after_the_one_line(capsys):
    def failing(argv):
        error = RunFailed("the run failed inside Ray (RuntimeError: boom)")
        error.detail = 'Traceback (most recent call last):\n  File "model.py", line 3\nRuntimeError: boom'
        raise error

    assert invoke(failing, "raysurr.drive", ["--resume", "r"]) == 1
    assert capsys.readouterr().err == "raysurr.drive: error: the run failed inside Ray (RuntimeError: boom)\n"
    assert invoke(failing, "raysurr.drive", ["--resume", "r", "--debug"]) == 1
    first, *trace = capsys.readouterr().err.splitlines()
    assert first.startswith("raysurr.drive: error: ")
    assert trace == ["Traceback (most recent call last):", '  File "model.py", line 3', "RuntimeError: boom"]
