"""The run folder, owned here: its layout, the run's state, the candidate pool and the evaluation cache.

    config.yaml            the resolved config (written by the command)
    state.json             `RunState`: the round and phase the run is in, every finished round, every selection
    pool/                  the candidates' parameters, part-*.parquet, indexed by sample_id
    labels/, failures/     the label store (`LabelStore`)
    checkpoints/           round_NNN[_memberK]/ per trained model (round_NNN/errors.csv: its per-sample errors),
                           untrained/ (TOD's round-0 comparison)
    rounds.csv             one row per finished round (`RoundRecord.row`)
    learning_curve.png, predictions.png, error.log

The validation and test sets are cached outside the run (`evaluation_dir`), shared by every run of
the same simulator, seed and sizes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from raysurr.config import Config, ModelConfig, SimulatorConfig
from raysurr.data.labels import LabelStore
from raysurr.data.store import parameters_table, staged_directory, write_table, write_text
from raysurr.engine.rounds import RoundRecord, write_rounds
from raysurr.errors import ConfigError, ParameterError, StoreError
from raysurr.models import build_model
from raysurr.models.checkpoint import SurrogateSpec, save_surrogate
from raysurr.seeding import generator
from raysurr.simulators import AbstractSimulator, evaluation_section

STATE_VERSION = 2
PHASES = ("prepare", "label", "train", "eval", "score", "stream", "done")  # stream: the async loop (engine.stream)
POOL_PART = 1000  # candidates per pool file


def _current(record: dict[str, Any]) -> dict[str, Any]:
    """A round in progress as state.json holds it; before `busy_s`, its `utilisation` held those seconds."""
    if "busy_s" not in record and record.get("utilisation") is not None:
        record = {**record, "busy_s": record["utilisation"], "utilisation": None}
    return record


@dataclass
class RunState:
    """Where a run is; `state.json` in the run folder."""

    round: int = 0
    phase: str = "prepare"  # prepare -> label -> train -> eval -> score -> label (next round) ... -> done
    record: RoundRecord | None = None  # the current round so far
    records: list[RoundRecord] = field(default_factory=list)  # finished rounds
    selections: list[list[int]] = field(default_factory=list)  # selections[r]: the ids selected to label in round r
    stopped: str | None = None
    retry: list[int] = field(default_factory=list)  # failed ids that the next labelling phase simulates again
    changes: list[dict[str, Any]] = field(default_factory=list)  # config keys changed on resume, and when
    selected_at: list[float] = field(default_factory=list)  # selected_at[r]: when selections[r] was made (epoch s)
    # The async loop's (engine.stream); there `round` counts checkpoints and selections[c + 1] is checkpoint c's.
    queue: list[list] = field(default_factory=list)  # [id, selected_by, selected_at] waiting for a simulator
    sent: list[list] = field(default_factory=list)  # the same, sent to a simulator and not yet stored
    trained_on: int = 0  # labels when the latest training started
    elapsed_s: float = 0.0  # wall time of the loop up to the last save, over every resume
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
            raise StoreError(f"{str(path)!r} has state version {version}; this raysurr reads {STATE_VERSION}: "
                             "finish the run with the raysurr that started it, or start a new run")  # fmt: skip
        data.pop("utilisation", None)  # an empty list that states before 2026-12-07 carried
        try:
            state = cls(**data)
            state.records = [RoundRecord(**record) for record in state.records]
            state.record = None if state.record is None else RoundRecord(**_current(state.record))
        except TypeError:
            raise StoreError(f"{str(path)!r} has keys this raysurr does not know; {fix}") from None
        rows = len(state.records) if isinstance(state.records, list) else None
        ok = (state.phase in PHASES and isinstance(state.round, int) and state.round >= 0 and rows == state.round
              and all(isinstance(i, int) for i in [*itertools.chain(*state.selections), *state.retry]))  # fmt: skip
        if not ok:
            raise StoreError(f"{str(path)!r} is inconsistent (phase {state.phase!r}, round {state.round!r}, "
                             f"{rows} finished rounds); {fix}")  # fmt: skip
        return state

    @property
    def selected(self) -> list[int]:
        """The ids this round labels (none before the initial set is drawn, or once the run is done)."""
        return self.selections[self.round] if self.round < len(self.selections) else []

    def select(self, round_idx: int, ids: list[int]) -> None:
        """The ids round `round_idx` labels; recorded (again, on a re-run phase) as that round's selection."""
        del self.selections[round_idx:]
        del self.selected_at[round_idx:]
        self.selections.append(ids)
        self.selected_at.append(time.time())

    def selection_tags(self, ids: list[int]) -> dict[int, tuple[int, float]]:
        """{id: (the round whose model selected it, -1 for the initial set; when)} for labels of a sync run."""
        rounds = self.selected_in()
        at = [*self.selected_at, *[math.nan] * (len(self.selections) - len(self.selected_at))]  # older states
        return {i: (rounds[i] - 1, at[rounds[i]]) for i in ids if i in rounds}

    def selected_in(self) -> dict[int, int]:
        """{sample id: the round that selected it}."""
        return {i: round_idx for round_idx, ids in enumerate(self.selections) for i in ids}

    def reopen(self, streaming: bool = False) -> None:
        """A finished run goes on: back to scoring its last round, whose record is finished again then (`streaming`,
        the async loop: its last checkpoint is trained again, on every label, and then scores)."""
        self.round -= 1
        self.stopped = None
        if streaming:
            self.records.pop()
            self.phase, self.trained_on = "stream", 0
        else:
            self.record = self.records.pop()
            self.phase = "score"

    def finish_round(self) -> RoundRecord:
        """The current round's record joins the finished ones; the next round starts labelling."""
        record = self.record
        self.records.append(record)
        self.round, self.record, self.phase = self.round + 1, None, "label"
        return record

    def expected_checkpoints(self) -> list[int]:
        """The rounds whose trained checkpoint must exist at this point of the run."""
        return list(range(self.round + (self.phase in ("eval", "score"))))


class RunFolder:
    """A run folder: its paths, its state checked against what is on disk, its pool and evaluation sets."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.config_file = self.root / "config.yaml"
        self.state_file = self.root / "state.json"
        self.pool_dir = self.root / "pool"
        self.store = LabelStore(self.root / "labels", self.root / "failures")
        self.checkpoints = self.root / "checkpoints"
        self.rounds_csv = self.root / "rounds.csv"
        self.learning_curve = self.root / "learning_curve.png"
        self.predictions = self.root / "predictions.png"
        self.error_log = self.root / "error.log"

    def checkpoint(self, round_idx: int, member: int = 0) -> Path:
        return self.checkpoints / (f"round_{round_idx:03d}" + (f"_member{member}" if member else ""))

    @property
    def model(self) -> Path:
        """`model/`: a link to the last finished round's checkpoint, replaced atomically at each round's end."""
        return self.root / "model"

    def point_model_at(self, round_idx: int) -> None:
        """Make `model/` lead to round `round_idx`'s checkpoint (a relative link, so the folder can move)."""
        tmp = self.root / f".model.{uuid.uuid4().hex[:8]}"
        os.symlink(Path("checkpoints") / self.checkpoint(round_idx).name, tmp, target_is_directory=True)
        if self.model.is_dir() and not self.model.is_symlink():  # a copy of the folder made the link a folder
            shutil.rmtree(self.model)
        os.replace(tmp, self.model)

    def errors(self, round_idx: int) -> Path:
        """Round `round_idx`'s per-sample validation and test errors (split, sample_id, the error metrics), CSV."""
        return self.checkpoint(round_idx) / "errors.csv"

    @property
    def untrained(self) -> Path:
        return self.checkpoints / "untrained"

    def finished(self) -> bool:
        """The run stopped by a stopping rule (a broken state is not finished: its resume says what is wrong)."""
        try:
            return self.state_file.exists() and RunState.load(self.state_file).phase == "done"
        except StoreError:
            return False

    def read_state(self) -> RunState:
        """The run's state, checked against the folder: a fresh state only where nothing has been done yet.

        Raises:
            StoreError: `state.json` is missing although the folder holds labels or checkpoints, is
                unreadable, or names checkpoints that are not there.
        """
        if not self.state_file.exists():
            done = [p.name for p in (self.store.labels.directory, self.checkpoints, self.rounds_csv) if _holds_work(p)]
            if done:
                raise StoreError(f"{str(self.state_file)!r} is missing, but the run folder holds {', '.join(done)}: "
                                 "resuming would start over on top of them; restore state.json from a backup, or "
                                 "start a new run (--config on this folder's config.yaml)")  # fmt: skip
            return RunState()
        state = RunState.load(self.state_file)
        for round_idx in state.expected_checkpoints():
            if not (self.checkpoint(round_idx) / "surrogate.pt").is_file():
                raise StoreError(f"{str(self.state_file)!r} says round {round_idx} was trained, but "
                                 f"{str(self.checkpoint(round_idx))!r} holds no surrogate.pt; restore it from a "
                                 "backup, or start a new run")  # fmt: skip
        return state

    def save_untrained(self, model: ModelConfig, simulator: AbstractSimulator, seed: int) -> None:
        """The round-0 comparison model of TOD: an untrained network of the configured architecture, once."""
        if (self.untrained / "surrogate.pt").exists():
            return
        channels = {"in_channels": simulator.input_shape[0], "out_channels": simulator.output_shape[0]}
        torch.manual_seed(seed)
        network = build_model(model, **channels)
        save_surrogate(network, SurrogateSpec(model.name, {**channels, **model.options}), self.untrained)

    def write_rounds(self, state: RunState, regions: tuple[str, str]) -> None:
        write_rounds(self.rounds_csv, state.records, regions)

    def write_pool(self, simulator: AbstractSimulator, params: np.ndarray) -> None:
        """The candidates' parameters, written once (a folder that exists is the pool of this run)."""
        with staged_directory(self.pool_dir) as stage:
            for start in range(0, len(params), POOL_PART):
                ids = np.arange(start, min(start + POOL_PART, len(params)))
                write_table(parameters_table(simulator, ids, params[ids]), stage / f"part-{start:09d}.parquet")

    def read_params(self, simulator: AbstractSimulator) -> np.ndarray:
        """[pool size, P] parameters of every candidate, indexed by sample id."""
        table = pq.read_table(self.pool_dir).sort_by("sample_id")
        return np.column_stack([table.column(n).to_numpy().astype(np.float64) for n in simulator.parameter_names])


def evaluation_seed(config: Config) -> int:
    """The seed of the validation/test sets: `pool.eval_seed`, else the run's."""
    return config.seed if config.pool.eval_seed is None else config.pool.eval_seed


def evaluation_simulator(config: Config) -> SimulatorConfig:
    """The simulator that labels a run's validation/test sets: the run's, with its `evaluation_options` on top."""
    return evaluation_section(config.simulator)


def evaluation_dir(config: Config, run_root: Path) -> Path:
    """The cached validation/test sets for a run's simulator, seed and sizes (shared between runs)."""
    options = evaluation_simulator(config).options
    identity = {"simulator": config.simulator.name, "options": options, "seed": evaluation_seed(config),
                "val": config.pool.val, "test": config.pool.test}  # fmt: skip
    for name in ("val_from", "test_from"):  # a set of the user's own: which file, as it is now
        path = getattr(config.evaluation, name)
        if path:
            info = Path(path).resolve().stat() if Path(path).exists() else None
            identity[name] = [str(Path(path).resolve()), info and info.st_size, info and info.st_mtime_ns]
    key = json.dumps(identity, sort_keys=True, default=str)
    cache = Path(config.pool.eval_cache) if config.pool.eval_cache else Path(run_root).parent / ".eval-cache"
    return cache / hashlib.sha256(key.encode()).hexdigest()[:16]


def read_candidates(config: Config, simulator: AbstractSimulator) -> np.ndarray:
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


def record_resume(folder: RunFolder, state: RunState, changes: list, retry_failed: bool) -> None:
    """Note each config change with the round it takes effect in, queue the failed ids to simulate again.

    The state is saved before the failure records are set aside: nothing is lost between the two.
    """
    now = time.time()
    for key, before, after in changes:
        state.changes.append({"round": state.round, "phase": state.phase, "key": key, "old": before, "new": after,
                              "at": now})  # fmt: skip
    if retry_failed:
        state.retry = sorted({*state.retry, *folder.store.failed_ids()})
    state.save(folder.state_file)
    if retry_failed:
        folder.store.set_failures_aside(f"retried-{time.strftime('%Y%m%d-%H%M%S')}")


def _holds_work(path: Path) -> bool:
    """A file, a folder with label parts, or a folder with trained checkpoints."""
    return path.is_file() or any(path.glob("part-*.parquet")) or any(path.glob("round_*"))
