"""The AL driver: one Ray actor runs the rounds and persists its state after every phase.

A round is: label the selected samples -> train -> evaluate -> score the pool and select the next
samples. After each phase `state.json` is rewritten atomically, so a run killed at any moment
resumes from the phase it was in: labelling skips what the store holds, training and scoring are
re-run with the same seeds, so the selections equal those of an uninterrupted run.

Each phase is two parts: the work (`label`, `train`, `evaluate`, `score`), which takes what it works
on as arguments and leaves the run's state alone, and a step of the phase machine (`_label`, ...),
which feeds the work from the state and records its result. The work composes the labelling
(`distributed.labeling`), training (`distributed.training`) and scoring (`distributed.scoring`)
adapters; the run folder (`engine.run_folder`) owns what is on disk; the science lives in the pure core.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ray.util import metrics

from raysurr.acquisition import Candidates, build_acquisition
from raysurr.acquisition.design import initial_design
from raysurr.config import Config, load_plugins
from raysurr.data.dataset import open_dataset
from raysurr.data.imported import read_labelled, store_labelled
from raysurr.data.labels import parameter_ranges
from raysurr.data.lock import FolderLock
from raysurr.distributed.labeling import Labeler, Selected
from raysurr.distributed.runtime import quiet_ray_data
from raysurr.distributed.scoring import evaluate_splits, read_pool, read_samples, read_splits, score_pool
from raysurr.distributed.training import TrainResult, fit
from raysurr.engine.datasets import evaluation_sets
from raysurr.engine.plan import duration, plan_of
from raysurr.engine.rounds import RoundRecord, kept_metrics
from raysurr.engine.run_folder import RunFolder, RunState, evaluation_dir, read_candidates
from raysurr.engine.stream import Stream
from raysurr.errors import ConfigError
from raysurr.models.checkpoint import read_checkpoint
from raysurr.models.fitting import Physics
from raysurr.plots import plot_checkpoint, plot_learning_curve
from raysurr.progress import say
from raysurr.seeding import child_seed, generator
from raysurr.simulators import build_simulator
from raysurr.tracking import Tracker, open_tracker


def same_weights(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two state dicts hold the same tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


PHYSICS_INPUTS = 2000  # unlabelled inputs a round's physics-informed term draws its batches from (80 MB at 100x100)

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
    """

    def __init__(self, run_dir: str, config: dict[str, Any], owner: int | None = None) -> None:
        self.owner = owner
        quiet_ray_data()
        self.config = Config.from_dict(config)
        load_plugins(self.config.plugins)
        self.folder = RunFolder(run_dir)
        self.simulator = build_simulator(self.config.simulator)
        self.regions = self.simulator.regions
        self.acquisition = build_acquisition(self.config.acquisition)
        self.eval_dir = evaluation_dir(self.config, self.folder.root)
        self._params: np.ndarray | None = None
        self._read: dict[str, Any] = {}  # datasets read into Ray once per driver: evaluation sets, pool
        self.tracker = Tracker()  # the run's MLflow run, once `run` holds the folder
        self.tags = {"run": self.config.name}
        self.gauges = {name: metrics.Gauge(f"raysurr_{name}", description=text, tag_keys=("run",))
                       for name, text in GAUGES.items()}  # fmt: skip
        self.phase_seconds = metrics.Gauge("raysurr_phase_seconds", description="duration of the last phase",
                                           tag_keys=("run", "phase"))  # fmt: skip

    # The phase machine ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run (or resume) until a stopping rule holds; returns why it stopped and rounds.csv's rows.

        The actor holds the run folder's driver lock while it runs: a driver left over from a killed
        command (Ray ends it within seconds) is waited for, never run beside.
        """
        with FolderLock(self.folder.root, "run folder's driver", name=".driver.lock").acquire(wait_s=60):
            self.tracker = open_tracker(self.config, self.folder.root)
            try:
                result = self._run()
            except BaseException:
                with contextlib.suppress(Exception):  # the run's own error is the one to report
                    self.tracker.finish("FAILED")
                raise
            last = self.folder.checkpoint(int(result["rows"][-1]["round"])) if result["rows"] else None
            if last:
                self.tracker.log_model(last)
            self.tracker.finish("FINISHED", [self.folder.config], {"checkpoint": last} if last else None)
            return result

    def _run(self) -> dict[str, Any]:
        state = self.folder.read_state()
        if state.phase == "done" and self.stop_reason(state.records[-1]) is None:
            # resumed with a later stopping rule (more rounds, a larger budget): go on
            state.reopen(self.config.loop.mode)
            say(f"resuming a finished run: round {state.round} scores the pool again")
        if state.phase != "prepare":
            n = self.folder.store.verify(self.simulator.input_shape, self.simulator.output_shape)
            say(f"resuming round {state.round} at {state.phase}: the label store's {n} labels check out")
        if (state.phase == "stream") != (self.config.loop.mode == "async") and state.phase not in ("prepare", "done"):
            raise ConfigError(f"this run was started with loop.mode {'async' if state.phase == 'stream' else 'sync'}; "
                              "resume it in that mode (drop the --set loop.mode)")  # fmt: skip
        if self.config.loop.mode == "async":
            self._stream(state)
        else:
            self._phases(state)
        return {"stopped": state.stopped, "rows": [record.row() for record in state.records]}

    def _phases(self, state: RunState) -> None:
        """The sync loop: one phase after the other, the state saved after each."""
        steps = {"prepare": self._prepare, "label": self._label, "train": self._train, "eval": self._evaluate,
                 "score": self._score}  # fmt: skip
        while state.phase != "done":
            start = time.perf_counter()
            phase = state.phase
            steps[phase](state)
            self.phase_seconds.set(time.perf_counter() - start, tags={**self.tags, "phase": phase})
            state.save(self.folder.state)

    def _stream(self, state: RunState) -> None:
        """The async loop (`engine.stream`), after the same preparation as a sync run."""
        if state.phase == "prepare":
            self._prepare(state)
            state.queue = [[i, -1, state.selected_at[0]] for i in state.selections[0]]
            state.phase = "stream"
            state.save(self.folder.state)
        Stream(self, state).run()

    def _prepare(self, state: RunState) -> None:
        """Sample (or read) the candidate pool, make the evaluation sets, pick the initial set: the labelled samples
        the user brought (`pool.initial_from`, stored now), filled up to `pool.initial` by the initial design."""
        pool = self.config.pool
        brought = None
        if pool.initial_from:
            brought = read_labelled(pool.initial_from, self.simulator, "pool.initial_from", "train")
        if not self.folder.pool.exists():
            candidates = read_candidates(self.config, self.simulator)
            if brought is not None:
                candidates = np.concatenate([candidates, brought.params])
            self.folder.write_pool(self.simulator, candidates)
        evaluation_sets(self.config, self.eval_dir, self.folder.root)
        self.folder.save_untrained(self.config.model, self.simulator, child_seed(self.config.seed, "untrained"))
        sampled = len(self.params) - (len(brought) if brought is not None else 0)
        imported = np.arange(sampled, len(self.params))
        if brought is not None:
            store_labelled(self.folder.store, self.simulator, imported, brought)
        rng = generator(self.config.seed, "initial")
        drawn = initial_design(self.params[:sampled], max(0, pool.initial - len(imported)), pool.initial_design, rng)
        state.select(0, sorted([*imported.tolist(), *drawn.tolist()]))
        state.phase = "label"
        say(f"pool: {len(self.params)} candidates; initial set: {len(state.selected)}"
            + (f" ({len(imported)} brought labelled from {pool.initial_from})" if brought is not None else "")
            + ("" if pool.initial_design == "random" else f" ({pool.initial_design} design)"))  # fmt: skip
        if self.config.training.augment == "auto" and self.simulator.symmetries:
            say(f"training mirrors each batch by the simulator's symmetries ({', '.join(self.simulator.symmetries)}); "
                "training.augment=none turns it off")  # fmt: skip

    def _label(self, state: RunState) -> None:
        start = time.perf_counter()
        ids = sorted({*state.selected, *state.retry})
        counts = self.label(ids, phase=f"round {state.round} label", selected=state.selection_tags(ids))
        state.retry = []
        labeled, failed = len(self.folder.store.labeled_ids()), len(self.folder.store.failed_ids())
        state.record = RoundRecord(state.round, labeled, failed, label_s=time.perf_counter() - start)
        state.record.utilisation = counts["busy_s"]  # seconds for now; a fraction of the round once it is finished
        self.set_gauges(round=state.round, labeled=labeled, failed=failed)
        say(f"round {state.round}: labelled {counts['labeled']} new on {counts['actors']} simulator actors "
            f"({counts['failed']} failed, {counts['retried']} retries); {labeled} in total")  # fmt: skip
        state.phase = "train"

    def _train(self, state: RunState) -> None:
        start = time.perf_counter()
        result = self.train(state.round)
        state.record.train_s = time.perf_counter() - start
        say(f"round {state.round}: trained {len(result.history)} epochs, best validation weighted MAE "
            f"{result.best_val_wmae:.4g} ({state.record.train_s:.0f}s)")  # fmt: skip
        state.phase = "eval"

    def _evaluate(self, state: RunState) -> None:
        start = time.perf_counter()
        val, test = self.evaluate(state.round)
        record = state.record
        record.val_wmae, record.test = val["wmae"], kept_metrics(test, self.regions)
        record.eval_s = time.perf_counter() - start
        state.stopped = self.stop_reason(record)
        if state.stopped:
            self._finish_round(state)
            state.phase = "done"
            say(f"stopped: {state.stopped}")
        else:
            state.phase = "score"

    def _score(self, state: RunState) -> None:
        start = time.perf_counter()
        loop, labeled = self.config.loop, state.record.n_labeled
        left = len(self.params) if loop.label_budget is None else max(1, loop.label_budget - labeled)
        selected, state.record.random_fallback = self.score(
            state.round, min(loop.round_size(state.round, labeled), left)
        )
        state.record.score_s = time.perf_counter() - start
        self._finish_round(state)
        state.select(state.round, selected)
        say(f"round {state.round - 1}: selected {len(selected)} with {self.config.acquisition.name}")

    def _finish_round(self, state: RunState) -> None:
        record = state.record
        record.utilisation = record.utilisation / record.round_s if record.round_s > 0 else None
        record.elapsed_s = sum(r.round_s for r in (*state.records, record))
        state.finish_round()
        self.publish(state)
        if record.round == 0 and state.phase != "done":
            left = plan_of(self.config).seconds_left(record, self.config.training.batch_size)
            say(f"round 0 took {record.round_s:.0f}s; the rounds left need about {duration(left)} (training grows "
                "with the labels)")  # fmt: skip

    def publish(self, state: RunState) -> None:
        """The latest finished round's (checkpoint's) line, rounds.csv, `model/`, gauges and pictures."""
        record = state.records[-1]
        self.folder.write_rounds(state, self.regions)
        self.folder.point_model_at(record.round)
        say(record.summary(self.regions, "checkpoint" if self.config.loop.mode == "async" else "round"))
        self.set_gauges(round=record.round, val_wmae=record.val_wmae, test_wmae=record.test_wmae)
        plot_learning_curve([r.row() for r in state.records], self.regions, self.folder.learning_curve)
        plot_checkpoint(self.folder.checkpoint(record.round), open_dataset(self.eval_dir), self.folder.predictions)
        self.tracker.rounds([r.row() for r in state.records],
                            [self.folder.rounds_csv, self.folder.learning_curve, self.folder.predictions])  # fmt: skip

    def stop_reason(self, record: RoundRecord) -> str | None:
        loop = self.config.loop
        if loop.sizes is not None and record.round + 1 >= len(loop.sizes):
            return f"the last of loop.sizes ({loop.sizes[-1]} labels) trained"
        if loop.sizes is None and record.round + 1 >= loop.rounds:
            return f"{loop.rounds} rounds done"
        if loop.label_budget is not None and record.n_labeled >= loop.label_budget:
            return f"label budget {loop.label_budget} reached"
        if loop.target_val_wmae is not None and record.val_wmae <= loop.target_val_wmae:
            return f"validation weighted MAE {record.val_wmae:.4g} <= target {loop.target_val_wmae}"
        if loop.target_test_wmae is not None and record.test_wmae <= loop.target_test_wmae:
            return f"test weighted MAE {record.test_wmae:.4g} <= target {loop.target_test_wmae}"
        if record.n_labeled + record.n_failed >= len(self.params):
            return "pool exhausted"
        return None

    # The work ------------------------------------------------------------------------------------

    def label(self, ids: list[int], phase: str, selected: Selected) -> dict[str, int]:
        """Simulate `ids` into the label store (what it holds already is skipped); the Labeler's counts, and
        `busy_s`: the seconds the mean actor was busy."""
        labeler = self.labeler()
        ids = np.array(ids, dtype=np.int64)
        try:
            counts = labeler.label(ids, self.params[ids], self.folder.store, phase=phase, selected=selected)
            return {**counts, "busy_s": labeler.busy_s() / len(labeler.slots), "actors": len(labeler.slots)}
        finally:
            labeler.close()  # frees the CPUs for training and scoring on a machine that has few

    def labeler(self) -> Labeler:
        """A pool of simulator actors (started now)."""
        return Labeler(self.config.simulator, self.config.plugins, self.config.labeling, self.config.resources)

    def train(self, round_idx: int, parts: list[Path] | None = None) -> TrainResult:
        """Round `round_idx`'s model(s) on every label so far, warm-started from the last round's unless
        `training.reinit`. An ensemble trains one per member, each from its own seed and its own last model;
        the result is the first member's, the model evaluated and deployed. `parts`: the label files to train on
        (default: every label stored)."""
        channels = (self.simulator.input_shape[0], self.simulator.output_shape[0])
        columns = ["sample_id", "input", "target"]
        val = self._once("val", lambda: read_samples(self.eval_dir / "val", columns).materialize())
        labels = read_samples(parts or self.folder.store.labels.directory, columns).materialize()
        datasets = {"train": labels, "val": val}
        warm_start = round_idx and not self.config.training.reinit
        ranges, count = parameter_ranges(parts or self.folder.store.labels.directory, self.simulator.parameter_names)
        # what `raysurr.load` needs to predict from parameters with the checkpoint alone
        meta = {"round": round_idx, "run": self.config.name, "simulator": self.config.simulator.to_dict(),
                "plugins": list(self.config.plugins), "ranges": ranges, "labels": count}  # fmt: skip
        physics = self._physics(round_idx) if self.config.training.physics_weight else None
        results = []
        for member in range(max(1, self.acquisition.needs.members)):
            seed = child_seed(self.config.seed, "train", round_idx, member)
            warm = self.folder.checkpoint(round_idx - 1, member) if warm_start else None
            out = self.folder.checkpoint(round_idx, member)
            results.append(fit(datasets, self.config.model, channels, self.config.training, self.config.resources,
                               out, seed=seed, warm_start=warm, meta=meta, plugins=self.config.plugins,
                               physics=physics, symmetries=self.simulator.symmetries))  # fmt: skip
        return results[0]

    def evaluate(self, round_idx: int) -> tuple[dict[str, float], dict[str, float]]:
        """Round `round_idx`'s model on the validation and the test set, in one Ray Data pass (every sample's
        errors go to the checkpoint's `errors.csv`)."""
        paths = {name: self.eval_dir / name for name in ("val", "test")}
        splits = self._once("splits", lambda: read_splits(paths, self.config.resources))
        checkpoint = self.folder.checkpoint(round_idx)
        metrics = evaluate_splits(checkpoint, splits, self.config, samples_to=self.folder.errors(round_idx))
        return metrics["val"], metrics["test"]

    def score(self, round_idx: int, k: int) -> tuple[list[int], bool]:
        """The next `k` ids to label: round `round_idx`'s acquisition over the unlabelled candidates; and whether
        they were picked at random instead (`choose`)."""
        labeled = np.fromiter(self.folder.store.labeled_ids(), dtype=np.int64)
        selected, at_random = self.choose(round_idx, self._unlabelled(), labeled, k)
        return sorted(selected), at_random

    def choose(self, round_idx: int, pool_ids: np.ndarray, labeled: np.ndarray, k: int) -> tuple[list[int], bool]:
        """Up to `k` of the candidates `pool_ids`, most wanted first, by round `round_idx`'s acquisition function;
        and whether they were picked at random instead: when every score is the same (a model compared with an
        identical one, dropout that is off), ranking them would only give the pool's order."""
        candidates = self.candidates(round_idx, pool_ids, labeled)
        rng = generator(self.config.seed, "select", round_idx)
        k = min(k, len(candidates.ids))
        scores = candidates.scores
        if self.acquisition.needs.scores and len(scores) and np.ptp(scores) == 0:
            say(f"round {round_idx}: every {self.config.acquisition.name} score is {scores[0]:.3g}, which ranks "
                "nothing: this round selects at random (rounds.csv: random_fallback)")  # fmt: skip
            return [int(i) for i in rng.choice(candidates.ids, size=k, replace=False)], True
        return [int(i) for i in self.acquisition.select(candidates, k, rng)], False

    # Pieces --------------------------------------------------------------------------------------

    def _unlabelled(self) -> np.ndarray:
        """The candidates' ids that are neither labelled nor failed, sorted."""
        done = self.folder.store.labeled_ids() | self.folder.store.failed_ids()
        return np.setdiff1d(np.arange(len(self.params)), np.fromiter(done, dtype=np.int64, count=len(done)))

    def _physics(self, round_idx: int) -> Physics:
        """Up to `PHYSICS_INPUTS` unlabelled candidates, drawn per round, for the physics-informed term."""
        free = self._unlabelled()
        size = min(PHYSICS_INPUTS, len(free))
        ids = np.sort(generator(self.config.seed, "physics", round_idx).choice(free, size=size, replace=False))
        return Physics(self.config.simulator, self.params[ids])

    def candidates(self, round_idx: int, pool_ids: np.ndarray, labeled: np.ndarray) -> Candidates:
        """Scores (on Ray Data, if the function needs models) and selection vectors for the candidates `pool_ids`;
        `labeled`: the labelled ids (the selection vectors of Core-Set and LCMD need theirs)."""
        all_ids = np.arange(len(self.params))
        scores = vectors = labeled_vectors = None
        needs = self.acquisition.needs
        if needs.members:
            models = [str(self.folder.checkpoint(round_idx, m)) for m in range(needs.members)]
            if needs.previous:
                models.append(str(self.previous_model(round_idx)))
            features = needs.vectors == "features"
            scored_ids = np.union1d(pool_ids, labeled) if features else pool_ids  # coreset also needs the labelled
            exclude = np.setdiff1d(all_ids, scored_ids)
            scorer = {"acquisition": self.config.acquisition, "checkpoints": models, "simulator": self.config.simulator,
                      "plugins": self.config.plugins, "exclude": exclude,
                      "seed": child_seed(self.config.seed, "score", round_idx)}  # fmt: skip
            pool = self._once("pool", lambda: read_pool(self.folder.pool, self.config.resources))
            scored = score_pool(pool, scorer, self.config.resources)
            in_pool = np.isin(scored["sample_id"], pool_ids)
            scores = scored["score"][in_pool]
            if features:
                vectors, labeled_vectors = scored["vector"][in_pool], scored["vector"][~in_pool]
            pool_ids = scored["sample_id"][in_pool]
        if needs.vectors == "embedding":
            vectors = self.simulator.embed(self.params[pool_ids])
            labeled_vectors = self.simulator.embed(self.params[labeled])
        return Candidates(pool_ids, scores, vectors, labeled_vectors)

    def previous_model(self, round_idx: int) -> Path:
        """The checkpoint TOD compares round `round_idx`'s model with: the latest earlier one whose weights differ
        (a fine-tune that no epoch improved keeps its starting weights; comparing with those would score 0
        everywhere), else the untrained one."""
        current = read_checkpoint(self.folder.checkpoint(round_idx))[1]
        for earlier in range(round_idx - 1, -1, -1):
            path = self.folder.checkpoint(earlier)
            if not same_weights(current, read_checkpoint(path)[1]):
                if earlier != round_idx - 1:
                    say(f"round {round_idx}: its model is round {round_idx - 1}'s unchanged; "
                        f"{self.config.acquisition.name} compares it with round {earlier}'s")  # fmt: skip
                return path
        return self.folder.untrained

    def _once(self, name: str, read: Callable[[], Any]) -> Any:
        """`read()` on first use, then the same object every round (Ray Data pays ~5 s per read, whatever its size)."""
        if name not in self._read:
            self._read[name] = read()
        return self._read[name]

    @property
    def params(self) -> np.ndarray:
        """[pool size, P] parameters of every candidate, indexed by sample id."""
        if self._params is None:
            self._params = self.folder.read_pool(self.simulator)
        return self._params

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

    def set_gauges(self, **values: float) -> None:
        for name, value in values.items():
            self.gauges[name].set(float(value), tags=self.tags)
