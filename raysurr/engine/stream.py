"""The asynchronous loop (`loop.mode: async`): the simulators never wait for training.

One pool of simulator actors labels a stream of samples fed from a selection queue, each actor kept
`labeling.in_flight_per_actor` chunks deep. Beside it a learner thread of the driver actor trains
checkpoint c as soon as `loop.retrain_after` labels have been stored since checkpoint c - 1 started
(warm-started from it unless `training.reinit`), evaluates it, scores the pool and replaces the
queue with its selection, in the acquisition function's order, while labelling goes on.

Two things keep the simulators busy. While checkpoint 0 trains there is no model to select with: the
random initial design goes on instead (more random picks, `selected_by` -1 and added to the initial
selection, each label's `selected_at` the time it was picked) until checkpoint 0's selection replaces
them. And each checkpoint queues enough ids to last a whole learner cycle: `loop.queue_size` if set, else
the larger of 2 x `loop.batch_size` and 1.5 x the ids the simulators label in the last cycle's time
(train, evaluate, score) at their measured rate.

Two rules keep a selection meaningful. A selection never holds an id that is labelled, failed or
with a simulator. A queued id selected by a checkpoint more than `loop.max_staleness` behind the
newest trained one is dropped (it goes back to the pool) rather than sent.

`state.json` holds the queue and the ids sent to simulators, rewritten after every stored chunk and
every checkpoint; the label store is always written first, each label with the checkpoint that
selected it and when (`selected_by`, -1 for the initial set; `selected_at`). A run killed at any
moment resumes with what was sent and not stored at the front of the queue: a label a simulator
returned is never simulated again (a sample cut off mid-simulation is: its result never existed),
and a checkpoint whose training was cut off is trained again on what the store then holds.

In this loop a "round" of `RunState` and rounds.csv is a checkpoint: the model trained on whatever was
labelled when its training started. The work of a checkpoint (train, evaluate, stop or select) is
`RoundWork`'s, as a sync round's is; this module decides when it runs and what is queued.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from raysurr.distributed.labeling import Labeler, LabelStep
from raysurr.engine.rounds import RoundRecord
from raysurr.engine.run_folder import RunState
from raysurr.progress import say
from raysurr.seeding import generator

if TYPE_CHECKING:
    from raysurr.engine.sync import Shell
    from raysurr.engine.work import RoundWork

TICK_S = 0.25  # longest wait for a label before the loop looks at the learner again
UTILISATION_S = 5.0  # seconds per row of utilisation.csv


@dataclass
class Learned:
    """What the learner thread hands back for one checkpoint."""

    record: RoundRecord
    stopped: str | None  # a stopping rule that holds after this checkpoint
    selection: list[int]  # the ids it wants labelled, most wanted first (empty once stopped)


@dataclass(frozen=True)
class Snapshot:
    """What a checkpoint's learner works from, taken when its training starts."""

    checkpoint: int
    parts: list[Path]  # the label files to train on
    n_labeled: int
    n_failed: int
    unclaimed: np.ndarray  # candidate ids neither labelled, failed, with a simulator nor queued
    labeled: np.ndarray


class Stream:
    """The async loop of one run: `run` returns when a stopping rule holds and nothing is left with a simulator.

    Everything on `state` and the label store is touched by the loop's own thread only; the learner
    thread gets what it needs as arguments.
    """

    def __init__(self, work: RoundWork, state: RunState, shell: Shell | None = None) -> None:
        self.work, self.state, self.shell = work, state, shell
        self.loop, self.store = work.config.loop, work.folder.store
        self.labeled, self.failed = self.store.labeled_ids(), self.store.failed_ids()
        self.trained = state.round - 1  # the newest trained checkpoint (the learner moves it on)
        self.started = time.monotonic() - state.elapsed_s
        self.utilisation_csv = work.folder.root / "utilisation.csv"
        self.row_from = (self.elapsed(), 0.0)  # (elapsed s, busy actor-s) when the last row was finished
        self.cycle_s = 0.0  # the last learner cycle's seconds (train, evaluate, score); 0 before one ends
        self.cycle_from = 0.0

    def run(self) -> None:
        state = self.state
        if state.sent:  # sent before a kill and never stored: first in line again
            say(f"resuming the stream: {len(state.sent)} samples that were with simulators go first")
            state.queue, state.sent = state.sent + state.queue, []
        labeler = self.work.labeler()
        learner = ThreadPoolExecutor(1, thread_name_prefix="raysurr-learner")
        learning: Future | None = None
        window = (self.elapsed(), labeler.busy_s())
        say(
            f"async loop: labelling on {len(labeler.slots)} simulator actors, a new model every "
            f"{self.loop.labels_per_checkpoint} labels"
        )
        try:
            while True:
                if self.shell.owner_gone():  # killed: send nothing more; what is stored and saved is the run
                    say("the command that started this run is gone: the async loop stops")
                    os._exit(1)
                self.feed(labeler)
                arrived = labeler.step(self.store, max_wait_s=TICK_S)
                if arrived.ids:
                    before = len(self.labeled)
                    self.stored(arrived)
                    if self.budget_reached(before):  # utilisation.csv: a row ends with the budget's last label
                        window = self.note_utilisation(window, labeler)
                if learning is not None and learning.done():
                    self.learned(learning.result(), labeler)
                    learning = None
                if learning is None and state.stopped is None and self.should_train(labeler):
                    learning = learner.submit(self.learn, self.snapshot(), self.queue_length(labeler))
                    self.cycle_from = time.monotonic()
                    if state.round == 0:
                        self.warm_up(labeler)
                elif learning is not None and state.round == 0 and len(state.queue) < len(labeler.slots):
                    self.warm_up(labeler)  # checkpoint 0 outlasts its first picks: the random design goes on
                if self.elapsed() - window[0] >= UTILISATION_S:
                    window = self.note_utilisation(window, labeler)
                if learning is None and labeler.idle and (state.stopped or not self.can_go_on()):
                    break
            self.note_utilisation(window, labeler)
        finally:
            learner.shutdown(wait=False, cancel_futures=True)
            labeler.close()
        state.stopped = state.stopped or "pool exhausted"
        state.phase = "done"
        self.save()
        say(f"stopped: {state.stopped}")

    # The loop's steps -----------------------------------------------------------------------------

    def feed(self, labeler: Labeler) -> None:
        """Send queued ids to free actors, a chunk each, within the budget and the staleness bound; they are in
        `state.sent` on disk before any actor gets them."""
        state, budget = self.state, self.loop.label_budget
        oldest = self.trained - self.loop.max_staleness
        chunks = []
        for _ in range(labeler.free_slots()):
            room = labeler.chunk if budget is None else budget - len(self.labeled) - len(state.sent)
            chunk = []
            while state.queue and len(chunk) < min(labeler.chunk, room):
                entry = state.queue.pop(0)
                if entry[1] >= oldest and entry[0] not in self.labeled and entry[0] not in self.failed:
                    chunk.append(entry)
            if not chunk:
                break
            state.sent += chunk
            chunks.append(chunk)
        if not chunks:
            return
        self.save()
        for chunk in chunks:
            ids = np.array([entry[0] for entry in chunk], dtype=np.int64)
            labeler.submit(ids, self.work.params[ids], {entry[0]: (entry[1], entry[2]) for entry in chunk})

    def stored(self, arrived: LabelStep) -> None:
        self.labeled.update(arrived.labeled_ids)
        self.failed.update(arrived.failed_ids)
        done = set(arrived.ids)
        self.state.sent = [entry for entry in self.state.sent if entry[0] not in done]
        self.shell.gauges(labeled=len(self.labeled), failed=len(self.failed))
        self.save()

    def should_train(self, labeler: Labeler) -> bool:
        """Checkpoint 0 once the initial set is stored; later ones after `loop.retrain_after` new labels (unless the
        label budget is fewer labels away: then only the final one, on the whole budget), or on what there is once
        nothing else can happen (the queue ran dry, the budget is labelled)."""
        new = len(self.labeled) - self.state.trained_on
        if self.state.round == 0:  # the initial set is in (what the warm-up queued is not waited for)
            initial = self.state.selections[0][: self.work.config.pool.initial]
            done = self.labeled | self.failed
            return bool(self.labeled) and all(i in done for i in initial)
        budget = self.loop.label_budget
        near_budget = budget is not None and 0 < budget - len(self.labeled) < self.loop.labels_per_checkpoint
        return (new >= self.loop.labels_per_checkpoint and not near_budget) or (new > 0 and labeler.idle
                                                                         and not self.can_send())  # fmt: skip

    def budget_reached(self, before: int) -> bool:
        """The label budget was reached by the labels just stored (`before`: the count before them)."""
        budget = self.loop.label_budget
        return budget is not None and before < budget <= len(self.labeled)

    def queue_length(self, labeler: Labeler) -> int:
        """The ids the next checkpoint selects: `loop.queue_size`, or enough for the simulators to label through one
        learner cycle (the last one's seconds at their measured rate, with half again to spare), at least 2B."""
        if self.loop.queue_size:
            return self.loop.queue_size
        per_sample_s = labeler.busy_s() / max(1, labeler.finished)  # actor-seconds a sample takes
        rate = len(labeler.slots) / per_sample_s if labeler.finished and per_sample_s > 0 else 0.0
        return max(self.loop.min_queue, math.ceil(1.5 * rate * self.cycle_s))

    def warm_up(self, labeler: Labeler) -> None:
        """While checkpoint 0 trains, random picks from the free pool keep the simulators busy: the random initial
        design goes on (`selected_by` -1, added to the initial selection), topped up to a cycle's worth whenever
        fewer ids than actors are left queued, until checkpoint 0 selects. With a label budget, at most a third
        of what it leaves after the initial set is spent so: the rest is for the models to choose."""
        state, budget, initial = self.state, self.loop.label_budget, self.work.config.pool.initial
        free = self.unclaimed(state.queue)
        size = min(max(0, self.queue_length(labeler) - len(state.queue)), len(free))
        if budget is not None:
            size = min(size, max(0, (budget - initial) // 3 - (len(state.selections[0]) - initial)))
        if not size:
            return
        rng = generator(self.work.config.seed, "warm-up", len(state.selections[0]))
        picks = [int(i) for i in rng.choice(free, size=size, replace=False)]
        now = time.time()
        state.queue += [[i, -1, now] for i in picks]
        state.selections[0] += picks
        say(f"checkpoint 0 trains: {size} random picks keep the simulators busy until it selects")
        self.save()

    def unclaimed(self, queued: list[list] = ()) -> np.ndarray:
        """The pool's ids, sorted, that are neither labelled, failed, with a simulator nor in `queued`."""
        busy = self.labeled | self.failed | {entry[0] for entry in (*self.state.sent, *queued)}
        return np.setdiff1d(np.arange(len(self.work.params)), np.fromiter(busy, dtype=np.int64, count=len(busy)))

    def can_send(self) -> bool:
        """Ids are queued and the label budget leaves room for them."""
        budget = self.loop.label_budget
        return bool(self.state.queue) and (budget is None or len(self.labeled) + len(self.state.sent) < budget)

    def can_go_on(self) -> bool:
        """Something is left to do: ids to send, or labels no checkpoint has trained on."""
        return self.can_send() or len(self.labeled) > self.state.trained_on

    def snapshot(self) -> Snapshot:
        """What the next checkpoint's learner works from; the labels it trains on are recorded as trained on."""
        state = self.state
        state.trained_on = len(self.labeled)
        self.save()
        labeled = np.fromiter(self.labeled, dtype=np.int64, count=len(self.labeled))
        return Snapshot(state.round, self.store.labels.parts(), len(self.labeled), len(self.failed), self.unclaimed(),
                        labeled)  # fmt: skip

    def learn(self, snapshot: Snapshot, k: int) -> Learned:
        """The learner thread: a checkpoint's work (train, evaluate, and unless a stopping rule holds, select `k`)."""
        work, checkpoint = self.work, snapshot.checkpoint
        say(f"checkpoint {checkpoint}: training on {snapshot.n_labeled} labels while labelling goes on")
        record = RoundRecord(checkpoint, snapshot.n_labeled, snapshot.n_failed)
        work.train(checkpoint, record, snapshot.parts)
        self.trained = checkpoint
        work.evaluate(checkpoint, record)
        stopped = work.stop_reason(record)
        if stopped or not len(snapshot.unclaimed):
            return Learned(record, stopped or "pool exhausted", [])
        selection = work.select(checkpoint, snapshot.unclaimed, snapshot.labeled, k, record)
        return Learned(record, None, selection.ids)

    def learned(self, learned: Learned, labeler: Labeler) -> None:
        """A checkpoint is in: its row, its selection as the new queue (or the stop)."""
        state, record, now = self.state, learned.record, time.time()
        self.cycle_s = time.monotonic() - self.cycle_from
        record.elapsed_s, busy = self.elapsed(), labeler.busy_s()
        record.utilisation = (busy - self.row_from[1]) / (len(labeler.slots) * (record.elapsed_s - self.row_from[0]))
        self.row_from = (record.elapsed_s, busy)
        state.records.append(record)
        state.round += 1
        if learned.stopped:
            state.stopped, state.queue = learned.stopped, []
            say(f"checkpoint {record.round}: {learned.stopped}; {len(state.sent)} samples with simulators finish")
        else:
            busy = self.labeled | self.failed | labeler.pending_ids()  # what was sent while the learner worked
            selection = [i for i in learned.selection if i not in busy]
            state.queue = [[i, record.round, now] for i in selection]
            state.selections.append(selection)
            state.selected_at.append(now)
        self.save()
        self.shell.publish(state)

    def note_utilisation(self, window: tuple[float, float], labeler: Labeler) -> tuple[float, float]:
        """Append the busy fraction of the simulator pool since `window` = (elapsed s, busy actor-s) to
        utilisation.csv; the next window."""
        now, busy = self.elapsed(), labeler.busy_s()
        if now > window[0] and labeler.slots:
            fraction = (busy - window[1]) / (len(labeler.slots) * (now - window[0]))
            new = not self.utilisation_csv.exists()
            with self.utilisation_csv.open("a") as out:
                if new:
                    out.write("from_s,to_s,busy,labeled\n")
                out.write(f"{window[0]:.2f},{now:.2f},{min(1.0, fraction):.4f},{len(self.labeled)}\n")
        return now, busy

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def save(self) -> None:
        self.state.elapsed_s = self.elapsed()
        self.state.save(self.work.folder.state_file)
