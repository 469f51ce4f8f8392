"""The AL driver: one Ray actor runs the rounds and persists its state after every phase.

A round is: label the selected samples -> train -> evaluate -> score the pool and select the next
samples. After each phase `state.json` is rewritten atomically, so a run killed at any moment
resumes from the phase it was in: labelling skips what the store holds, training and scoring are
re-run with the same seeds, so the selections equal those of an uninterrupted run.

The driver composes the labelling (`labeling`), training (`training`) and scoring (`scoring`)
adapters; the science lives in the pure core.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from ray.util import metrics

from raysurr.acquisition import Candidates, build_acquisition
from raysurr.config import Config, SimulatorConfig, load_plugins
from raysurr.data.dataset import open_dataset
from raysurr.data.labels import LabelStore
from raysurr.data.lock import FolderLock
from raysurr.data.store import parameters_table, staged_directory, write_table, write_text
from raysurr.errors import ConfigError, DatasetError, ParameterError, StoreError
from raysurr.labeling import Labeler
from raysurr.seeding import child_seed, generator
from raysurr.simulators import SIMULATORS, build_simulator

ROUND_COLUMNS = ["round", "n_labeled", "n_failed", "val_wmae", "test_wmae", "test_mae_all", "test_mae_source",
                 "test_mae_field", "test_wmae_skill_zero", "test_wmae_skill_mean", "test_mae_skill_zero",
                 "test_mae_skill_mean", "label_s", "train_s", "score_s", "eval_s", "round_s"]  # fmt: skip
SKILLS = ("wmae_skill_zero", "wmae_skill_mean", "mae_skill_zero", "mae_skill_mean")
STATE_VERSION = 1
PHASES = ("prepare", "label", "train", "eval", "score", "done")


@dataclass
class RunState:
    """Where a run is; `state.json` in the run folder."""

    round: int = 0
    phase: str = "prepare"  # prepare -> label -> train -> eval -> score -> label (next round) ... -> done
    selected: list[int] = field(default_factory=list)  # ids this round labels
    row: dict[str, Any] = field(default_factory=dict)  # the current round's rounds.csv row so far
    rows: list[dict[str, Any]] = field(default_factory=list)  # finished rounds
    stopped: str | None = None
    retry: list[int] = field(default_factory=list)  # failed ids that the next labelling phase simulates again
    changes: list[dict[str, Any]] = field(default_factory=list)  # config keys changed on resume, and when
    version: int = STATE_VERSION

    def save(self, path: Path) -> None:
        write_text(path, json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> RunState:
        """Read `state.json`; StoreError (one line, naming the file) if it is unreadable or inconsistent."""
        fix = "restore it from a backup, or start a new run (--config on its config.yaml)"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{str(path)!r} cannot be read ({type(exc).__name__}); {fix}") from None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            version = data.get("version") if isinstance(data, dict) else None
            raise StoreError(f"{str(path)!r} has state version {version}; this raysurr reads {STATE_VERSION}")
        try:
            state = cls(**data)
        except TypeError:
            raise StoreError(f"{str(path)!r} has keys this raysurr does not know; {fix}") from None
        rows = len(state.rows) if isinstance(state.rows, list) else None
        ok = (state.phase in PHASES and isinstance(state.round, int) and state.round >= 0 and rows == state.round
              and all(isinstance(i, int) for i in [*state.selected, *state.retry]))  # fmt: skip
        if not ok:
            raise StoreError(f"{str(path)!r} is inconsistent (phase {state.phase!r}, round {state.round!r}, "
                             f"{rows} finished rounds); {fix}")  # fmt: skip
        return state

    def reopen(self) -> None:
        """A finished run goes on: back to scoring its last round, whose row is finished again then."""
        self.round -= 1
        self.row = self.rows.pop()
        self.phase, self.stopped = "score", None

    def expected_checkpoints(self) -> list[int]:
        """The rounds whose trained checkpoint must exist at this point of the run."""
        return list(range(self.round + (self.phase in ("eval", "score"))))


class RunFolder:
    """The paths of a run folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.state = self.root / "state.json"
        self.pool = self.root / "pool"
        self.store = LabelStore(self.root / "labels", self.root / "failures")
        self.checkpoints = self.root / "checkpoints"
        self.rounds_csv = self.root / "rounds.csv"

    def checkpoint(self, round_idx: int, member: int = 0) -> Path:
        return self.checkpoints / (f"round_{round_idx:03d}" + (f"_member{member}" if member else ""))

    @property
    def untrained(self) -> Path:
        return self.checkpoints / "untrained"

    def read_state(self) -> RunState:
        """The run's state, checked against the folder: a fresh state only where nothing has been done yet.

        Raises:
            StoreError: `state.json` is missing although the folder holds labels or checkpoints, is
                unreadable, or names checkpoints that are not there.
        """
        if not self.state.exists():
            done = [p.name for p in (self.store.labels.directory, self.checkpoints, self.rounds_csv) if _holds_work(p)]
            if done:
                raise StoreError(f"{str(self.state)!r} is missing, but the run folder holds {', '.join(done)}: "
                                 "resuming would start over on top of them; restore state.json from a backup, or "
                                 "start a new run (--config on this folder's config.yaml)")  # fmt: skip
            return RunState()
        state = RunState.load(self.state)
        for round_idx in state.expected_checkpoints():
            if not (self.checkpoint(round_idx) / "surrogate.pt").is_file():
                raise StoreError(f"{str(self.state)!r} says round {round_idx} was trained, but "
                                 f"{str(self.checkpoint(round_idx))!r} holds no surrogate.pt; restore it from a "
                                 "backup, or start a new run")  # fmt: skip
        return state


def driver_name(run_name: str) -> str:
    return f"raysurr-driver-{run_name}"


class ALDriver:
    """Runs an active-learning loop for one run folder. Create it as a named Ray actor.

    Args:
        run_dir: the run folder (its `config.yaml` is the resolved config).
        config: the resolved config as a dict.
    """

    def __init__(self, run_dir: str, config: dict[str, Any]) -> None:
        from raysurr.runtime import quiet_ray_data

        quiet_ray_data()
        self.config = Config.from_dict(config)
        load_plugins(self.config.plugins)
        self.folder = RunFolder(run_dir)
        self.simulator = build_simulator(self.config.simulator)
        self.acquisition = build_acquisition(self.config.acquisition)
        self._params: np.ndarray | None = None
        self._read: dict[str, Any] = {}  # datasets read into Ray once per driver: evaluation sets, pool
        tags = {"run": self.config.name}
        self.gauges = {name: metrics.Gauge(f"raysurr_{name}", description=text, tag_keys=("run",))
                       for name, text in GAUGES.items()}  # fmt: skip
        self.phase_seconds = metrics.Gauge("raysurr_phase_seconds", description="duration of the last phase",
                                           tag_keys=("run", "phase"))  # fmt: skip
        self.tags = tags

    # The loop ------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Run (or resume) until a stopping rule holds; returns the finished rounds' rows.

        The actor holds the run folder's driver lock while it runs: a driver left over from a killed
        command (Ray ends it within seconds) is waited for, never run beside.
        """
        with FolderLock(self.folder.root, "run folder's driver", name=".driver.lock").acquire(wait_s=60):
            return self._run()

    def _run(self) -> dict[str, Any]:
        state = self.folder.read_state()
        if state.phase == "done" and self._stop_reason(state.round - 1, state.rows[-1]) is None:
            state.reopen()  # resumed with a later stopping rule (more rounds, a larger budget): go on
            log(f"resuming a finished run: round {state.round} scores the pool again")
        if state.phase != "prepare":
            n = self.folder.store.verify(self.simulator.input_shape, self.simulator.output_shape)
            log(f"resuming round {state.round} at {state.phase}: the label store's {n} labels check out")
        phases = {"prepare": self._prepare, "label": self._label, "train": self._train, "eval": self._evaluate,
                  "score": self._score}  # fmt: skip
        while state.phase != "done":
            start = time.perf_counter()
            phase = state.phase
            phases[phase](state)
            self.phase_seconds.set(time.perf_counter() - start, tags={**self.tags, "phase": phase})
            state.save(self.folder.state)
        return {"stopped": state.stopped, "rows": state.rows}

    def _prepare(self, state: RunState) -> None:
        """Sample (or read) the candidate pool, make the evaluation sets, pick the initial set."""
        pool = self.config.pool
        if not self.folder.pool.exists():
            params = self._candidates()
            with staged_directory(self.folder.pool) as stage:
                for start in range(0, len(params), 1000):
                    ids = np.arange(start, min(start + 1000, len(params)))
                    write_table(parameters_table(self.simulator, ids, params[ids]), stage / f"part-{start:09d}.parquet")
        self._evaluation_sets()
        self._save_untrained()
        rng = generator(self.config.seed, "initial")
        state.selected = sorted(
            rng.choice(len(self.params), size=min(pool.initial, len(self.params)), replace=False).tolist()
        )
        state.phase = "label"
        log(f"pool: {len(self.params)} candidates; initial set: {len(state.selected)}")

    def _label(self, state: RunState) -> None:
        start = time.perf_counter()
        labeler = Labeler(self.config.simulator, self.config.plugins, self.config.labeling, self.config.resources)
        ids = np.array(sorted({*state.selected, *state.retry}), dtype=np.int64)
        try:
            counts = labeler.label(ids, self.params[ids], self.folder.store, phase=f"round {state.round} label")
        finally:
            labeler.close()  # frees the CPUs for training and scoring on a machine that has few
        state.retry = []
        labeled, failed = len(self.folder.store.labeled_ids()), len(self.folder.store.failed_ids())
        state.row = {"round": state.round, "n_labeled": labeled, "n_failed": failed,
                     "label_s": time.perf_counter() - start}  # fmt: skip
        self._set("round", state.round)
        self._set("labeled", labeled)
        self._set("failed", failed)
        log(f"round {state.round}: labelled {counts['labeled']} new ({counts['failed']} failed, {counts['retried']} "
            f"retries); {labeled} in total")  # fmt: skip
        state.phase = "train"

    def _train(self, state: RunState) -> None:
        from raysurr.scoring import read_samples
        from raysurr.training import fit

        start = time.perf_counter()
        channels = (self.simulator.input_shape[0], self.simulator.output_shape[0])
        columns = ["sample_id", "input", "target"]
        val = self._once("val", lambda: read_samples(self.eval_dir / "val", columns).materialize())
        datasets = {"train": read_samples(self.folder.store.labels.directory, columns).materialize(), "val": val}
        previous = self.folder.checkpoint(state.round - 1) if state.round else None
        warm = previous if (previous is not None and not self.config.training.reinit) else None
        meta = {"round": state.round, "run": self.config.name}
        for member in range(self._members()):
            seed = child_seed(self.config.seed, "train", state.round, member)
            out = self.folder.checkpoint(state.round, member)
            result = fit(datasets, self.config.model, channels, self.config.training, self.config.resources, out,
                         seed=seed, warm_start=warm, meta=meta, plugins=self.config.plugins)  # fmt: skip
        state.row.update(train_s=time.perf_counter() - start)
        log(f"round {state.round}: trained {len(result.history)} epochs, best validation weighted MAE "
            f"{result.best_val_wmae:.4g} ({time.perf_counter() - start:.0f}s)")  # fmt: skip
        state.phase = "eval"

    def _evaluate(self, state: RunState) -> None:
        from raysurr.scoring import evaluate_splits, read_splits

        start = time.perf_counter()
        checkpoint = self.folder.checkpoint(state.round)
        paths = {name: self.eval_dir / name for name in ("val", "test")}
        splits = self._once("splits", lambda: read_splits(paths, self.config.resources))
        metrics = evaluate_splits(checkpoint, splits, self.config)
        val, test = metrics["val"], metrics["test"]
        state.row.update(val_wmae=val["wmae"], test_wmae=test["wmae"], test_mae_all=test["mae_all"],
                         test_mae_source=test["mae_source"], test_mae_field=test["mae_field"],
                         **{f"test_{k}": test[k] for k in SKILLS}, eval_s=time.perf_counter() - start)  # fmt: skip
        self._set("val_wmae", val["wmae"])
        self._set("test_wmae", test["wmae"])
        state.stopped = self._stop_reason(state.round, state.row)
        if state.stopped:
            self._finish_round(state, score_s=0.0)
            state.phase = "done"
            log(f"stopped: {state.stopped}")
        else:
            state.phase = "score"

    def _score(self, state: RunState) -> None:
        start = time.perf_counter()
        done = self.folder.store.labeled_ids() | self.folder.store.failed_ids()
        candidates = self._score_candidates(state.round, done)
        k = min(self.config.loop.batch_size, len(candidates.ids), self._budget_left(state))
        rng = generator(self.config.seed, "select", state.round)
        state.selected = sorted(int(i) for i in self.acquisition.select(candidates, k, rng))
        self._finish_round(state, score_s=time.perf_counter() - start)
        log(f"round {state.round - 1}: selected {len(state.selected)} with {self.config.acquisition.name}")

    # Pieces --------------------------------------------------------------------------------------

    def _finish_round(self, state: RunState, score_s: float) -> None:
        row = {**state.row, "score_s": score_s}
        row["round_s"] = sum(row.get(k, 0.0) for k in ("label_s", "train_s", "score_s", "eval_s"))
        state.rows.append(row)
        write_rounds(self.folder.rounds_csv, state.rows)
        log(summary_line(row))
        from raysurr.plots import plot_learning_curve

        plot_learning_curve(state.rows, self.folder.root / "learning_curve.png")
        self._plot_predictions(state.round)
        state.round += 1
        state.row = {}
        state.phase = "label"

    def _stop_reason(self, round_idx: int, row: dict[str, Any]) -> str | None:
        loop = self.config.loop
        if round_idx + 1 >= loop.rounds:
            return f"{loop.rounds} rounds done"
        if loop.label_budget is not None and row["n_labeled"] >= loop.label_budget:
            return f"label budget {loop.label_budget} reached"
        if loop.target_val_wmae is not None and row["val_wmae"] <= loop.target_val_wmae:
            return f"validation weighted MAE {row['val_wmae']:.4g} <= target {loop.target_val_wmae}"
        if loop.target_test_wmae is not None and row["test_wmae"] <= loop.target_test_wmae:
            return f"test weighted MAE {row['test_wmae']:.4g} <= target {loop.target_test_wmae}"
        if row["n_labeled"] + row["n_failed"] >= len(self.params):
            return "pool exhausted"
        return None

    def _budget_left(self, state: RunState) -> int:
        budget = self.config.loop.label_budget
        return len(self.params) if budget is None else max(1, budget - state.row["n_labeled"])

    def _members(self) -> int:
        return self.acquisition.models if self.acquisition.models > 2 else 1  # an ensemble trains K models

    def _score_candidates(self, round_idx: int, done: set[int]) -> Candidates:
        """Scores (on Ray Data, if the function needs models) and selection vectors for the unlabelled pool."""
        from raysurr.scoring import read_pool, score_pool

        all_ids = np.arange(len(self.params))
        pool_ids = np.setdiff1d(all_ids, np.fromiter(done, dtype=np.int64, count=len(done)))
        labeled = np.fromiter(self.folder.store.labeled_ids(), dtype=np.int64)
        scores = vectors = labeled_vectors = None
        if self.acquisition.models:
            models = [str(self.folder.checkpoint(round_idx, m)) for m in range(self._members())]
            if self.acquisition.models == 2:  # tod: this round's model against the last round's
                models.append(str(self.folder.checkpoint(round_idx - 1) if round_idx else self.folder.untrained))
            features = self.acquisition.vectors == "features"
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
        if self.acquisition.vectors == "embedding":
            vectors, labeled_vectors = (
                self.simulator.embed(self.params[pool_ids]),
                self.simulator.embed(self.params[labeled]),
            )
        return Candidates(pool_ids, scores, vectors, labeled_vectors)

    def _candidates(self) -> np.ndarray:
        return read_candidates(self.config, self.simulator)

    def _once(self, name: str, read: Callable[[], Any]) -> Any:
        """`read()` on first use, then the same object every round (Ray Data pays ~5 s per read, whatever its size)."""
        if name not in self._read:
            self._read[name] = read()
        return self._read[name]

    @property
    def params(self) -> np.ndarray:
        """[pool size, P] parameters of every candidate, indexed by sample id."""
        if self._params is None:
            table = pq.read_table(self.folder.pool).sort_by("sample_id")
            self._params = np.column_stack([table.column(n).to_numpy().astype(np.float64)
                                            for n in self.simulator.parameter_names])  # fmt: skip
        return self._params

    @property
    def eval_seed(self) -> int:
        return evaluation_seed(self.config)

    @property
    def eval_dir(self) -> Path:
        return self.eval_dir_of(self.config, self.folder.root)

    @staticmethod
    def eval_dir_of(config: Config, run_root: Path) -> Path:
        """The cached validation/test sets for a run's simulator, seed and sizes (shared between runs)."""
        options = {**config.simulator.options, **SIMULATORS.get(config.simulator.name).evaluation_options}
        identity = {"simulator": config.simulator.name, "options": options, "seed": evaluation_seed(config),
                    "val": config.pool.val, "test": config.pool.test}  # fmt: skip
        key = json.dumps(identity, sort_keys=True, default=str)
        cache = Path(config.pool.eval_cache) if config.pool.eval_cache else run_root.parent / ".eval-cache"
        return cache / hashlib.sha256(key.encode()).hexdigest()[:16]

    def _evaluation_sets(self) -> None:
        from raysurr.dataset import IncompleteDataset, write_dataset

        if (self.eval_dir / "dataset.yaml").exists():
            log(f"evaluation sets: cached at {self.eval_dir}")
            return
        options = {**self.config.simulator.options, **type(self.simulator).evaluation_options}
        config = replace(self.config, seed=self.eval_seed,
                         simulator=SimulatorConfig(self.config.simulator.name, options))  # fmt: skip
        try:
            with staged_directory(self.eval_dir) as stage:  # an incomplete set raises here and is never cached
                write_dataset(config, {"val": self.config.pool.val, "test": self.config.pool.test}, stage, "eval")
        except IncompleteDataset as exc:
            raise IncompleteDataset(f"evaluation sets: {exc}; nothing was cached: fix the simulator and resume "
                                    f"(--resume {self.folder.root})") from None  # fmt: skip
        except DatasetError:
            if not (self.eval_dir / "dataset.yaml").exists():
                raise
            open_dataset(self.eval_dir)  # another run wrote it meanwhile

    def _save_untrained(self) -> None:
        """The round-0 comparison model of TOD: an untrained network of the configured architecture."""
        import torch

        from raysurr.models import build_model
        from raysurr.models.checkpoint import SurrogateSpec, save_surrogate

        if (self.folder.untrained / "surrogate.pt").exists():
            return
        channels = {"in_channels": self.simulator.input_shape[0], "out_channels": self.simulator.output_shape[0]}
        torch.manual_seed(child_seed(self.config.seed, "untrained"))
        model = build_model(self.config.model, **channels)
        save_surrogate(model, SurrogateSpec(self.config.model.name, {**channels, **self.config.model.options}),
                       self.folder.untrained)  # fmt: skip

    def _plot_predictions(self, round_idx: int) -> None:
        from raysurr.train import plot_examples

        plot_examples(
            self.folder.checkpoint(round_idx), open_dataset(self.eval_dir), self.folder.root / "predictions.png"
        )

    def _set(self, name: str, value: float) -> None:
        self.gauges[name].set(float(value), tags=self.tags)


GAUGES = {
    "round": "the round being run",
    "labeled": "labelled samples",
    "failed": "samples whose simulation failed",
    "val_wmae": "validation weighted MAE of the latest model",
    "test_wmae": "test weighted MAE of the latest model",
}


def evaluation_seed(config: Config) -> int:
    """The seed of the validation/test sets: `pool.eval_seed`, else the run's."""
    return config.seed if config.pool.eval_seed is None else config.pool.eval_seed


def _holds_work(path: Path) -> bool:
    """A file, a folder with label parts, or a folder with trained checkpoints."""
    return path.is_file() or any(path.glob("part-*.parquet")) or any(path.glob("round_*"))


def read_candidates(config: Config, simulator) -> np.ndarray:
    """[pool size, P] parameters: sampled from the simulator, or read from `pool.candidates` and checked.

    Raises:
        ConfigError: the file is missing, not Parquet, lacks a parameter column, or holds a value the
            simulator does not accept (naming the row).
    """
    pool = config.pool
    if pool.candidates is None:
        return simulator.check_parameters(simulator.sample(pool.size, generator(config.seed, "pool")))
    path = Path(pool.candidates)
    where = f"pool.candidates: {str(path)!r}"
    if not path.exists():
        raise ConfigError(f"{where} does not exist")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{where} is not a Parquet file or folder of them ({type(exc).__name__}); write one "
                          "with pyarrow.parquet.write_table") from None  # fmt: skip
    missing = [n for n in simulator.parameter_names if n not in table.column_names]
    if missing:
        raise ConfigError(f"{where} lacks parameter columns {missing} (it has {table.column_names})")
    if table.num_rows == 0:
        raise ConfigError(f"{where} holds no rows")
    try:
        params = np.column_stack([table.column(n).to_numpy(zero_copy_only=False).astype(np.float64)
                                  for n in simulator.parameter_names])  # fmt: skip
        return simulator.check_parameters(params)
    except ParameterError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise ConfigError(f"{where}: its parameter columns must be numbers without nulls ({exc})") from None


def write_rounds(path: Path, rows: list[dict[str, Any]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=ROUND_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


def summary_line(row: dict[str, Any]) -> str:
    """The round's progress line; it says so when the model is no better than a trivial one."""
    worse = [name for name, key in (("zero", "test_wmae_skill_zero"), ("the mean field", "test_wmae_skill_mean"))
             if row.get(key, 0.0) <= 0]  # fmt: skip
    flag = f" | WORSE than predicting {' and '.join(worse)}" if worse else ""
    return (f"round {row['round']}: {row['n_labeled']} labelled ({row['n_failed']} failed) | val wMAE "
            f"{row['val_wmae']:.4g} | test wMAE {row['test_wmae']:.4g} (source {row['test_mae_source']:.3g}, field "
            f"{row['test_mae_field']:.3g}; skill vs zero {row.get('test_wmae_skill_zero', math.nan):.2f}, vs mean "
            f"{row.get('test_wmae_skill_mean', math.nan):.2f}){flag} | label {row['label_s']:.0f}s train "
            f"{row['train_s']:.0f}s eval {row['eval_s']:.0f}s score {row['score_s']:.0f}s")  # fmt: skip


def log(message: str) -> None:
    """One concise progress line on stderr (forwarded to the `drive` command by Ray)."""
    print(message, file=sys.stderr, flush=True)
