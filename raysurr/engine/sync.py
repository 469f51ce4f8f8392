"""The sync loop (`loop.mode: sync`): label, train, evaluate, select in turn, the state saved after each phase.

A run killed at any moment resumes from the phase it was in: labelling skips what the store holds, training
and selecting are run again with the same seeds, so the selections equal those of an uninterrupted run. The
work of each phase is `RoundWork`'s; this module only orders it and keeps `RunState`.
"""

from __future__ import annotations

import time
from typing import Protocol

from raysurr.engine.plan import duration, plan_of
from raysurr.engine.rounds import RoundRecord
from raysurr.engine.run_folder import RunState
from raysurr.engine.work import RoundWork
from raysurr.progress import say


class Shell(Protocol):
    """What a loop reports to the actor that runs it (`ALDriver`): no loop touches the actor's members."""

    def publish(self, state: RunState) -> None:
        """A round (checkpoint) has finished: its line, rounds.csv, `model/`, figures, tracking, gauges."""

    def gauges(self, **values: float) -> None:
        """Progress for the Ray dashboard (`round`, `labeled`, `failed`, ...)."""

    def phase_done(self, phase: str, seconds: float) -> None:
        """A phase of the sync loop ended."""

    def owner_gone(self) -> bool:
        """The command that started the run has died."""


class SyncLoop:
    """The phases of one run, in turn. `run` returns when a stopping rule holds."""

    def __init__(self, work: RoundWork, state: RunState, shell: Shell) -> None:
        self.work, self.state, self.shell = work, state, shell
        self.steps = {"prepare": self.prepare, "label": self.label, "train": self.train, "eval": self.evaluate,
                      "score": self.select}  # fmt: skip

    def run(self) -> None:
        state = self.state
        while state.phase != "done":
            start, phase = time.perf_counter(), state.phase
            self.steps[phase]()
            self.shell.phase_done(phase, time.perf_counter() - start)
            state.save(self.work.folder.state_file)

    def prepare(self) -> None:
        self.state.select(0, self.work.prepare())
        self.state.phase = "label"

    def label(self) -> None:
        state, store = self.state, self.work.folder.store
        start = time.perf_counter()
        ids = sorted({*state.selected, *state.retry})
        counts = self.work.label(ids, f"round {state.round} label", state.selection_tags(ids))
        state.retry = []
        labeled, failed = len(store.labeled_ids()), len(store.failed_ids())
        state.record = RoundRecord(state.round, labeled, failed, label_s=time.perf_counter() - start,
                                   busy_s=counts.busy_s)  # fmt: skip
        self.shell.gauges(round=state.round, labeled=labeled, failed=failed)
        say(f"round {state.round}: labelled {counts.labeled} new on {counts.actors} simulator actors ({counts.failed} "
            f"failed, {counts.retried} retries); {labeled} in total")  # fmt: skip
        state.phase = "train"

    def train(self) -> None:
        result = self.work.train(self.state.round, self.state.record)
        say(f"round {self.state.round}: trained {len(result.history)} epochs, best validation weighted MAE "
            f"{result.best_val_wmae:.4g} ({self.state.record.train_s:.0f}s)")  # fmt: skip
        self.state.phase = "eval"

    def evaluate(self) -> None:
        state = self.state
        self.work.evaluate(state.round, state.record)
        state.stopped = self.work.stop_reason(state.record)
        if state.stopped:
            self.finish_round()
            state.phase = "done"
            say(f"stopped: {state.stopped}")
        else:
            state.phase = "score"

    def select(self) -> None:
        state, work, store = self.state, self.work, self.work.folder.store
        labeled = sorted(store.labeled_ids())
        k = work.round_size(state.round, state.record.n_labeled)
        selection = work.select(state.round, work.unlabelled(), labeled, k, state.record)
        self.finish_round()
        state.select(state.round, sorted(selection.ids))
        say(f"round {state.round - 1}: selected {len(selection.ids)} with {work.config.acquisition.name}")

    def finish_round(self) -> None:
        state, record = self.state, self.state.record
        record.utilisation = record.busy_s / record.round_s if record.round_s > 0 else None
        record.elapsed_s = sum(r.round_s for r in (*state.records, record))
        state.finish_round()
        self.shell.publish(state)
        if record.round == 0 and state.phase != "done":
            left = plan_of(self.work.config).seconds_left(record, self.work.config.training.batch_size)
            say(f"round 0 took {record.round_s:.0f}s; the rounds left need about {duration(left)} (training grows "
                "with the labels)")  # fmt: skip
