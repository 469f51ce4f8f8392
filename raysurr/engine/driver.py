"""The AL driver: the Ray actor that runs one run folder's loop and reports on it.

`ALDriver` is a shell around the work: it holds the folder's driver lock, opens the run's tracker (MLflow),
resumes the state, builds the round's work (`engine.work.RoundWork`) and hands both to the loop `loop.mode`
names, once: `engine.sync.SyncLoop` (label, train, evaluate, select in turn, the state saved after each phase)
or `engine.stream.Stream` (labelling never waits for training). What a loop reports comes back through the
shell (`publish`: a finished round's line, rounds.csv, `model/`, figures, tracking, gauges); no loop touches the
actor's members.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from ray.util import metrics

from raysurr.config import Config, load_plugins
from raysurr.data.dataset import open_dataset
from raysurr.data.lock import FolderLock
from raysurr.distributed.runtime import quiet_ray_data
from raysurr.engine.run_folder import RunFolder, RunState
from raysurr.engine.stream import Stream
from raysurr.engine.sync import SyncLoop
from raysurr.engine.work import RoundWork
from raysurr.errors import ConfigError
from raysurr.plots import plot_checkpoint, plot_learning_curve
from raysurr.progress import say
from raysurr.tracking import Tracker, open_tracker

GAUGES = {
    "round": "the round being run",
    "labeled": "labelled samples",
    "failed": "samples whose simulation failed",
    "val_wmae": "validation weighted MAE of the latest model",
    "test_wmae": "test weighted MAE of the latest model",
}


class ALDriver:
    """Runs an active-learning loop for one run folder. Create it as a named Ray actor (`launch.start_driver`).

    Args:
        run_dir: the run folder (its `config.yaml` is the resolved config).
        config: the resolved config as a dict.
        owner: the pid of the command that started it, on this node (the async loop stops when it is gone).
        cwd: the command's working directory: the paths a user gave (the run folder, `pool.candidates`, ...) are
            relative to it, and an actor on a cluster it joined starts wherever that cluster's workers do.
    """

    def __init__(self, run_dir: str, config: dict[str, Any], owner: int | None = None, cwd: str | None = None) -> None:
        if cwd:
            os.chdir(cwd)  # this actor's own process
        self.owner = owner
        quiet_ray_data()
        self.config = Config.from_dict(config)
        load_plugins(self.config.plugins)
        self.folder = RunFolder(run_dir)
        self.work = RoundWork(self.config, self.folder)
        self.tracker = Tracker()  # the run's MLflow run, once `run` holds the folder
        self.tags = {"run": self.config.name}
        self._gauges = {name: metrics.Gauge(f"raysurr_{name}", description=text, tag_keys=("run",))
                        for name, text in GAUGES.items()}  # fmt: skip
        self.phase_seconds = metrics.Gauge("raysurr_phase_seconds", description="duration of the last phase",
                                           tag_keys=("run", "phase"))  # fmt: skip

    def run(self) -> dict[str, Any]:
        """Run (or resume) until a stopping rule holds; returns why it stopped and rounds.csv's rows.

        The actor holds the run folder's driver lock while it runs: a driver left over from a killed
        command (Ray ends it within seconds) is waited for, never run beside.
        """
        with FolderLock(self.folder.root, "run folder's driver", name=".driver.lock").acquire(wait_s=60):
            self.tracker = open_tracker(self.config, self.folder.root)
            try:
                state = self.resume()
                (Stream if self.config.loop.is_async else SyncLoop)(self.work, state, self).run()
            except BaseException:
                with contextlib.suppress(Exception):  # the run's own error is the one to report
                    self.tracker.finish("FAILED")
                raise
            last = self.folder.checkpoint(state.records[-1].round) if state.records else None
            if last:
                self.tracker.log_model(last)
            self.tracker.finish("FINISHED", [self.folder.config_file], {"checkpoint": last} if last else None)
            return {"stopped": state.stopped, "rows": [record.row() for record in state.records]}

    def resume(self) -> RunState:
        """The run's state, checked against the folder and the config: a finished run whose stopping rule no longer
        holds (more rounds, a larger budget) is reopened; an async run prepares as a sync one, then streams."""
        state = self.folder.read_state()
        if state.phase == "done" and self.work.stop_reason(state.records[-1]) is None:
            state.reopen(self.config.loop.is_async)
            say(f"resuming a finished run: round {state.round} scores the pool again")
        if state.phase != "prepare":
            n = self.folder.store.verify(self.work.simulator.input_shape, self.work.simulator.output_shape)
            say(f"resuming round {state.round} at {state.phase}: the label store's {n} labels check out")
        if (state.phase == "stream") != self.config.loop.is_async and state.phase not in ("prepare", "done"):
            raise ConfigError(f"this run was started with loop.mode {'async' if state.phase == 'stream' else 'sync'}; "
                              "resume it in that mode (drop the --set loop.mode)")  # fmt: skip
        if self.config.loop.is_async and state.phase == "prepare":
            state.select(0, self.work.prepare())
            state.queue = [[i, -1, state.selected_at[0]] for i in state.selections[0]]
            state.phase = "stream"
            state.save(self.folder.state_file)
        return state

    # What the loops report (engine.sync.Shell) ---------------------------------------------------------

    def publish(self, state: RunState) -> None:
        """The latest finished round's (checkpoint's) line, rounds.csv, `model/`, gauges and pictures."""
        record, regions = state.records[-1], self.work.regions
        self.folder.write_rounds(state, regions)
        self.folder.point_model_at(record.round)
        say(record.summary(regions, "checkpoint" if self.config.loop.is_async else "round"))
        self.gauges(round=record.round, val_wmae=record.val_wmae, test_wmae=record.test_wmae)
        plot_learning_curve([r.row() for r in state.records], regions, self.folder.learning_curve)
        plot_checkpoint(self.folder.checkpoint(record.round), open_dataset(self.work.eval_dir), self.folder.predictions)
        self.tracker.rounds([r.row() for r in state.records],
                            [self.folder.rounds_csv, self.folder.learning_curve, self.folder.predictions])  # fmt: skip

    def gauges(self, **values: float) -> None:
        for name, value in values.items():
            self._gauges[name].set(float(value), tags=self.tags)

    def phase_done(self, phase: str, seconds: float) -> None:
        self.phase_seconds.set(seconds, tags={**self.tags, "phase": phase})

    def owner_gone(self) -> bool:
        """The command that started this driver has died (killed, say): Ray ends its actors within seconds."""
        if self.owner is None:
            return False
        try:
            os.kill(self.owner, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, under another user
            return False
        return False
