"""`loop.mode: async` on a local Ray: a run end to end, SIGKILL mid-stream then resume, the staleness bound."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest

from raysurr.commands.drive import main
from raysurr.config import Config
from raysurr.data.lock import FolderLock
from raysurr.engine.run_folder import RunState
from raysurr.engine.stream import Stream
from raysurr.errors import ConfigError
from tests.conftest import REPO, assert_mlflow_has_every_round

pytestmark = pytest.mark.timeout(600)

QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
ASYNC = ["simulator.grid=24", "pool.size=120", "pool.initial=12", "pool.val=12", "pool.test=12", "loop.mode=async",
         "loop.batch_size=8", "loop.rounds=50", "loop.label_budget=40", "training.epochs=1", "training.batch_size=8",
         "model.base_channels=2", "model.depth=2", "resources.cpus_per_train_worker=1", "resources.score_actors=1",
         "resources.simulators=2", "resources.cpus_per_simulator=0", "labeling.chunk_size=2"]  # fmt: skip


def sets(*items: str) -> list[str]:
    return [arg for item in [*ASYNC, *items] for arg in ("--set", item)]


def rows(run: Path) -> list[dict]:
    with (run / "rounds.csv").open() as handle:
        return list(csv.DictReader(handle))


def labels(run: Path) -> dict[str, list]:
    columns = ["sample_id", "selected_by", "selected_at", "sent_at", "labeled_at"]
    return pq.read_table(run / "labels", columns=columns).to_pydict()


def check_the_staleness_bound(run: Path, max_staleness: int) -> None:
    """No label was handed to a simulator when the newest trained checkpoint (the time its checkpoint file was
    written, 0.5 s of slack for the moment the learner notes it) was more than `max_staleness` ahead of the one
    that selected it."""
    trained_at = [p.stat().st_mtime for p in (run / "checkpoints").glob("round_*/surrogate.pt")]
    got = labels(run)
    for by, sent in zip(got["selected_by"], got["sent_at"], strict=True):
        newest = sum(at <= sent - 0.5 for at in trained_at) - 1
        assert by < 0 or by >= newest - max_staleness, (by, newest, sent, trained_at)


def check_a_finished_run(run: Path) -> None:
    """What an async run leaves: a row per checkpoint up to the budget, each label once with the checkpoint that
    selected it, selections that never held a labelled id, the simulators' utilisation."""
    table, state = rows(run), json.loads((run / "state.json").read_text())
    counts = [int(r["n_labeled"]) for r in table]
    assert counts[0] == 12 and counts[-1] == 40 and counts == sorted(counts)  # the last trained on the whole budget
    assert state["stopped"] == "label budget 40 reached" and len(table) == state["round"] >= 3
    elapsed = [float(r["elapsed_s"]) for r in table]
    assert elapsed == sorted(elapsed) and all(0 <= float(r["utilisation"]) <= 1 for r in table)
    got = labels(run)
    ids, by = got["sample_id"], got["selected_by"]
    assert len(ids) == len(set(ids)) == 40  # nothing lost, nothing stored twice
    selections, selected_at = state["selections"], state["selected_at"]
    # -1: the initial set, and the random picks that kept the simulators busy while checkpoint 0 trained
    random = {i for i, b in zip(ids, by, strict=True) if b == -1}
    assert set(selections[0][:12]) <= random <= set(selections[0]) and len(random) > 12
    for i, b, at, done in zip(ids, by, got["selected_at"], got["labeled_at"], strict=True):
        assert -1 <= b < len(table) and i in selections[b + 1] and at <= done
        assert at == selected_at[b + 1] if b >= 0 or i in selections[0][:12] else at > selected_at[0]
    # A selection never holds an id that was labelled (or with a simulator, so labelled soon after) when it was made.
    labelled_at = dict(zip(ids, got["labeled_at"], strict=True))
    for chosen, at in zip(selections[1:], selected_at[1:], strict=True):
        assert all(labelled_at.get(i, np.inf) > at for i in chosen)
    with (run / "utilisation.csv").open() as handle:
        busy = [float(r["busy"]) for r in csv.DictReader(handle)]
    assert busy and all(0 <= b <= 1 for b in busy)


def _kill_mid_stream(proc: subprocess.Popen, run: Path, err: Path) -> dict:
    """SIGKILL the run's process tree once checkpoint 0 is in and samples are with simulators; the state then."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run finished before it could be killed: {err.read_text()[-2000:]}"
        try:
            state = json.loads((run / "state.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            state = {}
        if state.get("round", 0) >= 1 and state.get("sent"):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return json.loads((run / "state.json").read_text())
        time.sleep(0.05)
    raise AssertionError("the run never had a checkpoint and samples with simulators")


def test_an_async_run_killed_mid_stream_resumes_losing_no_label_and_simulating_none_twice(ray_local, tmp_path):
    """An async run end to end, SIGKILLed (whole process tree) once checkpoint 0 is in and samples are with
    simulators, then resumed; a logging simulator counts every simulation."""
    run, log = tmp_path / "killed", tmp_path / "simulated.log"
    env = {**os.environ, "RAYSURR_DASHBOARD": "0", "PYTHONPATH": str(REPO)}
    logged = sets("plugins=[tests.labeling_sims]", "simulator.name=logged_diffusion2d", f"simulator.log={log}",
                  "simulator.delay_s=0.2", "tracking.mlflow=true")  # fmt: skip
    first = [sys.executable, "-m", "raysurr.drive", "--config", QUICKSTART, "--run-dir", str(run), *logged]
    with (tmp_path / "first.err").open("w") as err:
        proc = subprocess.Popen(first, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=err)  # fmt: skip
    at_kill = _kill_mid_stream(proc, run, tmp_path / "first.err")
    FolderLock(run, "run", name=".driver.lock").acquire(wait_s=60).release()  # the killed driver has ended
    stored_before = set(labels(run)["sample_id"])
    assert main(["--resume", str(run)]) == 0  # in this process's Ray

    check_a_finished_run(run)
    check_the_staleness_bound(run, Config().loop.max_staleness)
    assert_mlflow_has_every_round(run)  # the killed run's checkpoints and the resumed one's, each once
    got = labels(run)
    pool = pq.read_table(run / "pool").sort_by("sample_id").to_pydict()
    names = ["row1", "col1", "flux1", "row2", "col2", "flux2"]
    key = {" ".join(repr(float(pool[n][i])) for n in names): pool["sample_id"][i] for i in range(len(pool["row1"]))}
    runs = Counter(key[line] for line in log.read_text().splitlines() if line in key)  # val/test sets are not in it
    twice = {i for i, n in runs.items() if n > 1}
    # Only a sample with a simulator when the run died can have run twice; no stored label ever runs again.
    assert twice <= {entry[0] for entry in at_kill["sent"]} and not twice & stored_before
    assert set(got["sample_id"]) <= set(runs)


class FakeLabeler:
    """What `Stream.feed` asks of a Labeler: room, a chunk size, and a record of what it was sent."""

    def __init__(self, room: int) -> None:
        self.room, self.chunk, self.sent = room, 1, []

    def free_slots(self) -> int:
        return self.room - len(self.sent)

    def submit(self, ids, params, selected) -> None:
        self.sent += [int(i) for i in ids]


def stream(tmp_path: Path, queued: list[list], newest: int, labelled: set[int], **loop) -> Stream:
    store = SimpleNamespace(labeled_ids=lambda: set(labelled), failed_ids=set)
    folder = SimpleNamespace(store=store, root=tmp_path, state_file=tmp_path / "state.json")
    config = Config.from_dict({"loop": {"mode": "async", **loop}})
    work = SimpleNamespace(config=config, folder=folder, params=np.zeros((100, 1)))
    return Stream(work, RunState(round=newest + 1, phase="stream", queue=queued))


def feed(tmp_path: Path, queue: list[list], newest: int, labelled: set[int], **loop) -> tuple[list[int], RunState]:
    labeler, loop_ = FakeLabeler(room=10), stream(tmp_path, queue, newest, labelled, **loop)
    loop_.feed(labeler)
    return labeler.sent, loop_.state


@pytest.mark.parametrize("max_staleness", [0, 1, 2])
def test_a_queued_id_staler_than_max_staleness_is_never_sent(tmp_path, max_staleness):
    queue = [[10, 0, 0.0], [11, 1, 0.0], [12, 2, 0.0], [13, 3, 0.0], [14, -1, 0.0]]
    sent, state = feed(tmp_path, queue, newest=3, labelled=set(), max_staleness=max_staleness)
    assert sent == [10 + c for c in range(4) if c >= 3 - max_staleness]
    assert [entry[0] for entry in state.sent] == sent and state.queue == []


def test_the_feed_skips_labelled_ids_and_stops_at_the_budget(tmp_path):
    queue = [[i, 2, 0.0] for i in range(10, 20)]
    sent, state = feed(tmp_path, queue, newest=2, labelled={10, 12, 50, 51}, label_budget=7)
    assert sent == [11, 13, 14]  # 4 labelled + 3 sent = the budget; labelled ids are not sent again
    assert [entry[0] for entry in state.queue] == list(range(15, 20))


def test_each_checkpoint_queues_enough_ids_to_last_a_learner_cycle(tmp_path):
    labeler = SimpleNamespace(slots=[0] * 4, finished=40, busy_s=lambda: 80.0)  # 4 actors, 2 s a sample: 2/s
    loop = stream(tmp_path, [], newest=0, labelled=set(), batch_size=8)
    assert loop.queue_length(labeler) == 16  # no cycle measured yet: 2B
    loop.cycle_s = 30.0  # 60 labels in a cycle, with half again to spare
    assert loop.queue_length(labeler) == 90
    assert stream(tmp_path, [], 0, set(), batch_size=8, queue_size=20).queue_length(labeler) == 20  # set: as set


def test_while_checkpoint_0_trains_random_picks_keep_the_simulators_busy(tmp_path):
    labeler = SimpleNamespace(slots=[0] * 2, finished=0, busy_s=lambda: 0.0)
    loop = stream(tmp_path, [[5, -1, 0.0]], newest=-1, labelled={1, 2, 3}, batch_size=5)
    loop.state.sent, loop.state.selections = [[4, -1, 0.0]], [[1, 2, 3, 4, 5]]
    loop.warm_up(labeler)
    picks = [entry[0] for entry in loop.state.queue[1:]]
    assert len(loop.state.queue) == 10 and loop.state.queue[0] == [5, -1, 0.0]  # topped up to 2B, the queued first
    assert len(set(picks)) == 9 and not {1, 2, 3, 4, 5} & set(picks)  # never a labelled, sent or queued id
    assert {entry[1] for entry in loop.state.queue} == {-1} and loop.state.selections[0] == [1, 2, 3, 4, 5, *picks]
    assert json.loads((tmp_path / "state.json").read_text())["queue"] == loop.state.queue  # on disk first
    # checkpoint 0 outlasts them: once they are with simulators the random design goes on, with new ids
    loop.state.sent, loop.state.queue = loop.state.sent + loop.state.queue, []
    loop.warm_up(labeler)
    more = [entry[0] for entry in loop.state.queue]
    assert len(more) == 10 and not set(more) & {1, 2, 3, 4, 5, *picks}
    assert loop.state.selections[0] == [1, 2, 3, 4, 5, *picks, *more]


def test_the_warm_up_spends_at_most_a_third_of_the_budget_left_after_the_initial_set(tmp_path):
    labeler = SimpleNamespace(slots=[0] * 2, finished=0, busy_s=lambda: 0.0)
    loop = stream(tmp_path, [], newest=-1, labelled=set(), batch_size=8, label_budget=18)
    config = loop.work.config
    loop.work.config, loop.state.selections = replace(config, pool=replace(config.pool, initial=3)), [[0, 1, 2]]
    loop.warm_up(labeler)  # 2B = 16 wanted, (18 - 3) / 3 = 5 allowed
    assert len(loop.state.queue) == 5 and len(loop.state.selections[0]) == 8
    loop.state.sent, loop.state.queue = loop.state.queue, []
    loop.warm_up(labeler)
    assert loop.state.queue == []


@pytest.mark.parametrize(
    ("labelled", "trains"), [(40, True), (60, True), (70, True), (71, False), (79, False), (80, True)]
)
def test_no_checkpoint_starts_when_the_budget_is_fewer_labels_away_than_the_next_one(tmp_path, labelled, trains):
    """B = 10, budget 80, checkpoint 1 trained on 30: 40 and 60 labels start one; from 71 on only the final one,
    on all 80, once they are stored and nothing is with a simulator."""
    loop = stream(tmp_path, [[99, 1, 0.0]], newest=1, labelled=set(range(labelled)), batch_size=10, label_budget=80)
    loop.state.trained_on, loop.state.selections = 30, [[0]]
    idle = SimpleNamespace(idle=labelled == 80)
    assert loop.should_train(idle) is trains
    assert loop.budget_reached(labelled - 1) is (labelled == 80)


def test_async_refuses_simulators_that_leave_no_cpu_for_training(ray_local, tmp_path):
    args = ["--config", QUICKSTART, "--run-dir", str(tmp_path / "r"), "--set", "loop.mode=async"]
    with pytest.raises(ConfigError, match="loop.mode async keeps 2 simulator actors"):
        main([*args, "--set", "resources.simulators=2", "--set", "resources.cpus_per_train_worker=1"])
    assert not (tmp_path / "r").exists()
