"""One round's work, in one place: label, train (an ensemble's members too), evaluate, stop or select; the loops
(`engine.sync`, `engine.stream`) only decide when each step runs and what is saved between them.

`RoundWork` composes the labelling (`distributed.labeling`), training (`distributed.training`) and scoring
(`distributed.scoring`) adapters for one run folder; it is the one reader of the acquisition function's `Needs`
(how many models a round trains, which checkpoints the scorer gets, which selection vectors `select` sees).
Each step takes what it works on as arguments and fills the round's `RoundRecord`; none touches `RunState`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raysurr.acquisition import Candidates, build_acquisition
from raysurr.acquisition.design import initial_design
from raysurr.config import Config
from raysurr.data.imported import read_labelled, store_labelled
from raysurr.data.labels import parameter_ranges
from raysurr.distributed.labeling import Labeler, Selected
from raysurr.distributed.scoring import (
    ScoreRequest,
    evaluate_splits,
    pool_dataset,
    read_samples,
    read_splits,
    score_pool,
)
from raysurr.distributed.training import TrainResult, fit
from raysurr.engine.datasets import evaluation_sets
from raysurr.engine.rounds import RoundRecord, kept_metrics
from raysurr.engine.run_folder import RunFolder, evaluation_dir, read_candidates
from raysurr.models.checkpoint import checkpoint_bytes, read_checkpoint
from raysurr.models.fitting import FitSpec, Physics
from raysurr.progress import say
from raysurr.seeding import child_seed, generator
from raysurr.simulators import build_simulator

PHYSICS_INPUTS = 2000  # unlabelled inputs a round's physics-informed term draws its batches from (80 MB at 100x100)


@dataclass(frozen=True)
class LabelCounts:
    """What a labelling step did."""

    labeled: int  # new labels stored
    failed: int  # samples recorded as failed
    retried: int  # runs made again after a failure
    busy_s: float  # seconds the mean simulator actor was busy
    actors: int


@dataclass(frozen=True)
class Selection:
    """A round's choice of samples to label next."""

    ids: list[int]  # most wanted first
    at_random: bool  # every score was the same: the ids were drawn at random instead


def same_weights(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two state dicts hold the same tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


class RoundWork:
    """A run's rounds: the work of each step, for the loop that drives them.

    Args:
        config: the run's resolved config; folder: its run folder.
    """

    def __init__(self, config: Config, folder: RunFolder) -> None:
        self.config, self.folder = config, folder
        self.simulator = build_simulator(config.simulator)
        self.regions = self.simulator.regions
        self.acquisition = build_acquisition(config.acquisition)
        self.eval_dir = evaluation_dir(config, folder.root)
        self._params: np.ndarray | None = None
        self._read: dict[str, Any] = {}  # datasets read into Ray once per run: evaluation sets, pool

    # Preparing -----------------------------------------------------------------------------------

    def prepare(self) -> list[int]:
        """Sample (or read) the candidate pool, make the evaluation sets, and return the initial set: the labelled
        samples the user brought (`pool.initial_from`, stored now), filled up to `pool.initial` by the initial
        design. Done again after a kill, it changes nothing that exists."""
        pool = self.config.pool
        brought = read_labelled(pool.initial_from, self.simulator, "pool.initial_from", "train") \
            if pool.initial_from else None  # fmt: skip
        if not self.folder.pool_dir.exists():
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
        initial = sorted([*imported.tolist(), *drawn.tolist()])
        say(f"pool: {len(self.params)} candidates; initial set: {len(initial)}"
            + (f" ({len(imported)} brought labelled from {pool.initial_from})" if brought is not None else "")
            + ("" if pool.initial_design == "random" else f" ({pool.initial_design} design)"))  # fmt: skip
        if self.config.training.augment == "auto" and self.simulator.symmetries:
            say(f"training mirrors each batch by the simulator's symmetries ({', '.join(self.simulator.symmetries)}); "
                "training.augment=none turns it off")  # fmt: skip
        return initial

    # The steps -----------------------------------------------------------------------------------

    def labeler(self) -> Labeler:
        """A pool of simulator actors (started now)."""
        return Labeler(self.config.simulator, self.config.plugins, self.config.labeling, self.config.resources)

    def label(self, ids: list[int], phase: str, selected: Selected) -> LabelCounts:
        """Simulate `ids` into the label store (what it holds already is skipped) on a pool of actors started for
        this and closed after it (freeing the CPUs for training and scoring on a machine that has few)."""
        labeler = self.labeler()
        ids = np.array(ids, dtype=np.int64)
        try:
            counts = labeler.label(ids, self.params[ids], self.folder.store, phase=phase, selected=selected)
            return LabelCounts(counts["labeled"], counts["failed"], counts["retried"],
                               labeler.busy_s() / len(labeler.slots), len(labeler.slots))  # fmt: skip
        finally:
            labeler.close()

    def train(self, round_idx: int, record: RoundRecord, parts: list[Path] | None = None) -> TrainResult:
        """Round `round_idx`'s model(s) on the labels in `parts` (default: every label stored), warm-started from
        the last round's unless `training.reinit`; `record.train_s` gets the seconds. An ensemble trains one model
        per member (`needs.members`), each from its own seed and its own last model; the result is the first
        member's, the model evaluated and deployed."""
        start = time.perf_counter()
        source = parts or self.folder.store.labels.directory
        columns = ["sample_id", "input", "target"]
        val = self._once("val", lambda: read_samples(self.eval_dir / "val", columns).materialize())
        datasets = {"train": read_samples(source, columns).materialize(), "val": val}
        ranges, count = parameter_ranges(source, self.simulator.parameter_names)
        # what `raysurr.load` needs to predict from parameters with the checkpoint alone
        meta = {"round": round_idx, "run": self.config.name, "simulator": self.config.simulator.to_dict(),
                "plugins": list(self.config.plugins), "ranges": ranges, "labels": count}  # fmt: skip
        physics = self._physics(round_idx) if self.config.training.physics_weight else None
        results = [fit(self._spec(round_idx, member, meta, physics), datasets, self.config.resources,
                       self.folder.checkpoint(round_idx, member))
                   for member in range(max(1, self.acquisition.needs.members))]  # fmt: skip
        record.train_s = time.perf_counter() - start
        return results[0]

    def _spec(self, round_idx: int, member: int, meta: dict[str, Any], physics: Physics | None) -> FitSpec:
        warm = self.folder.checkpoint(round_idx - 1, member) if round_idx and not self.config.training.reinit else None
        channels = (self.simulator.input_shape[0], self.simulator.output_shape[0])
        return FitSpec.of(self.config.model, channels, self.config.training, child_seed(self.config.seed, "train",
                          round_idx, member), threads=max(1, int(self.config.resources.cpus_per_train_worker)),
                          warm_start=checkpoint_bytes(warm) if warm else None, meta=meta,
                          plugins=tuple(self.config.plugins), physics=physics,
                          symmetries=tuple(self.simulator.symmetries))  # fmt: skip

    def evaluate(self, round_idx: int, record: RoundRecord) -> None:
        """Round `round_idx`'s model on the validation and the test set, in one Ray Data pass, into `record` (every
        sample's errors go to the checkpoint's `errors.csv`)."""
        start = time.perf_counter()
        paths = {name: self.eval_dir / name for name in ("val", "test")}
        splits = self._once("splits", lambda: read_splits(paths, self.config.resources))
        checkpoint = self.folder.checkpoint(round_idx)
        metrics = evaluate_splits(checkpoint, splits, self.config, samples_to=self.folder.errors(round_idx))
        record.val_wmae, record.test = metrics["val"]["wmae"], kept_metrics(metrics["test"], self.regions)
        record.eval_s = time.perf_counter() - start

    def stop_reason(self, record: RoundRecord) -> str | None:
        """Why the run stops after this round (checkpoint), or None."""
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

    def select(self, round_idx: int, pool_ids: np.ndarray, labeled: np.ndarray, k: int,
               record: RoundRecord) -> Selection:  # fmt: skip
        """Up to `k` of the candidates `pool_ids`, most wanted first, by round `round_idx`'s acquisition function
        (`record.score_s` gets the seconds, `record.random_fallback` whether they were drawn at random: where every
        score is the same, a model compared with an identical one or dropout that is off, ranking them would only
        give the pool's order)."""
        start = time.perf_counter()
        candidates = self.candidates(round_idx, pool_ids, labeled)
        rng = generator(self.config.seed, "select", round_idx)
        k = min(k, len(candidates.ids))
        scores = candidates.scores
        if self.acquisition.needs.scores and len(scores) and np.ptp(scores) == 0:
            say(f"round {round_idx}: every {self.config.acquisition.name} score is {scores[0]:.3g}, which ranks "
                "nothing: this round selects at random (rounds.csv: random_fallback)")  # fmt: skip
            selection = Selection([int(i) for i in rng.choice(candidates.ids, size=k, replace=False)], True)
        else:
            selection = Selection([int(i) for i in self.acquisition.select(candidates, k, rng)], False)
        record.score_s, record.random_fallback = time.perf_counter() - start, selection.at_random
        return selection

    def round_size(self, round_idx: int, labeled: int) -> int:
        """How many round `round_idx`'s model selects, `labeled` being labelled (within the label budget)."""
        loop = self.config.loop
        left = len(self.params) if loop.label_budget is None else max(1, loop.label_budget - labeled)
        return min(loop.round_size(round_idx, labeled), left)

    # What the steps read -------------------------------------------------------------------------

    def candidates(self, round_idx: int, pool_ids: np.ndarray, labeled: np.ndarray) -> Candidates:
        """Scores (on Ray Data, if the function needs models) and selection vectors for the candidates `pool_ids`;
        `labeled`: the labelled ids (the selection vectors of Core-Set and LCMD need theirs)."""
        scores = vectors = labeled_vectors = None
        needs = self.acquisition.needs
        if needs.members:
            models = [self.folder.checkpoint(round_idx, m) for m in range(needs.members)]
            if needs.previous:
                models.append(self.previous_model(round_idx))
            features = needs.vectors == "features"
            scored_ids = np.union1d(pool_ids, labeled) if features else pool_ids  # coreset also needs the labelled
            request = ScoreRequest(self.config.acquisition, models, self.config.simulator, self.config.plugins,
                                   np.setdiff1d(np.arange(len(self.params)), scored_ids),
                                   child_seed(self.config.seed, "score", round_idx))  # fmt: skip
            pool = self._once("pool", lambda: pool_dataset(self.folder.pool_dir, self.config.resources))
            scored = score_pool(pool, request, self.config.resources)
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

    def unlabelled(self) -> np.ndarray:
        """The candidates' ids that are neither labelled nor failed, sorted."""
        done = self.folder.store.labeled_ids() | self.folder.store.failed_ids()
        return np.setdiff1d(np.arange(len(self.params)), np.fromiter(done, dtype=np.int64, count=len(done)))

    def _physics(self, round_idx: int) -> Physics:
        """Up to `PHYSICS_INPUTS` unlabelled candidates, drawn per round, for the physics-informed term."""
        free = self.unlabelled()
        size = min(PHYSICS_INPUTS, len(free))
        ids = np.sort(generator(self.config.seed, "physics", round_idx).choice(free, size=size, replace=False))
        return Physics(self.config.simulator, self.params[ids])

    def _once(self, name: str, read: Callable[[], Any]) -> Any:
        """`read()` on first use, then the same object every round (Ray Data pays ~5 s per read, whatever its size)."""
        if name not in self._read:
            self._read[name] = read()
        return self._read[name]

    @property
    def params(self) -> np.ndarray:
        """[pool size, P] parameters of every candidate, indexed by sample id."""
        if self._params is None:
            self._params = self.folder.read_params(self.simulator)
        return self._params
