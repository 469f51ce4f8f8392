"""Run configuration: one frozen, validated dataclass per YAML section.

A config file is YAML with the sections below; every key is optional and defaults to the study's
setting (the active-learning study of arXiv 2407.07674) where it fixes one. `--set section.key=value`
overrides a key (the value is parsed as YAML), and `Config.to_yaml()` gives the resolved config written
next to every output.

Example:
    >>> cfg = Config.from_dict({"simulator": {"name": "diffusion2d", "grid": 64}})
    >>> cfg.simulator.options["grid"], cfg.training.lr
    (64, 0.0001)
    >>> apply_overrides({"training": {"lr": 0.1}}, ["training.lr=0.01"])
    {'training': {'lr': 0.01}}
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.metadata
import itertools
import re
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from raysurr.errors import ConfigError


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{where} {message}")


@dataclass(frozen=True)
class NamedConfig:
    """A section that picks a registered thing by `name`; the other keys are its options."""

    section: ClassVar[str] = ""
    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NamedConfig:
        data = dict(data)
        name = data.pop("name", cls.name)
        _require(isinstance(name, str) and bool(name), f"{cls.section}.name", "must be a non-empty string")
        return cls(name=name, options=data)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


@dataclass(frozen=True)
class SimulatorConfig(NamedConfig):
    """`simulator`: which simulator labels samples, and its own options (grid, solver, ...)."""

    section: ClassVar[str] = "simulator"
    name: str = "diffusion2d"


@dataclass(frozen=True)
class ModelConfig(NamedConfig):
    """`model`: the surrogate architecture and its options (base_channels, depth, ...)."""

    section: ClassVar[str] = "model"
    name: str = "unet"


@dataclass(frozen=True)
class AcquisitionConfig(NamedConfig):
    """`acquisition`: the acquisition function and its options."""

    section: ClassVar[str] = "acquisition"
    name: str = "random"


@dataclass(frozen=True)
class Section:
    """A section with a fixed set of typed keys."""

    section: ClassVar[str] = ""

    def _positive(self, *names: str, allow_zero: bool = False) -> None:
        for name in names:
            value = getattr(self, name)
            if value is None:
                continue
            ok = value >= 0 if allow_zero else value > 0
            _require(ok, f"{self.section}.{name}", f"must be {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass(frozen=True)
class PoolConfig(Section):
    """`pool`: the candidates active learning picks from, and the fixed evaluation sets."""

    section: ClassVar[str] = "pool"
    size: int = 16000  # candidates sampled from the simulator (initial set included)
    initial: int = 1000  # labelled before the first round
    val: int = 4000
    test: int = 4000
    candidates: str | None = None  # a Parquet file/folder of the user's own candidate parameters
    eval_cache: str | None = None  # where val/test sets are cached; default: .eval-cache beside the run folder
    eval_seed: int | None = None  # the seed of the val/test sets; default: the run's seed (experiments share one)
    # labelled samples you have (a raysurr dataset's train split, or Parquet with the parameters, input and target):
    # they join the pool and start the run labelled, the initial set filled up to `initial` with candidates
    initial_from: str | None = None
    # how the initial set is drawn from the candidates: random, or a design over their parameters (lhs: Latin
    # hypercube, sobol: scrambled Sobol points, kmeans: k-means centres over the pool, each snapped to its nearest
    # candidate; kmeans covers the pool best where there are many parameters)
    initial_design: str = "random"

    def __post_init__(self) -> None:
        self._positive("size", "initial", "val", "test")
        self._positive("eval_seed", allow_zero=True)
        _require(self.initial <= self.size, "pool.initial", f"must be <= pool.size ({self.size}), got {self.initial}")
        _require(self.initial_design in DESIGNS, "pool.initial_design",
                 f"must be one of {', '.join(DESIGNS)}, got {self.initial_design!r}")  # fmt: skip


DESIGNS = ("random", "lhs", "sobol", "kmeans")  # raysurr.acquisition.design


@dataclass(frozen=True)
class EvaluationConfig(Section):
    """`evaluation`: validation and test sets of your own instead of simulated ones (pool.val and pool.test sizes)."""

    section: ClassVar[str] = "evaluation"
    val_from: str | None = None  # a raysurr dataset (its val split) or Parquet with the parameters, input and target
    test_from: str | None = None  # the same, its test split


@dataclass(frozen=True)
class TrainingConfig(Section):
    """`training`: how the surrogate is (re)trained each round."""

    section: ClassVar[str] = "training"
    epochs: int = 500
    lr: float = 1e-4
    batch_size: int = 128
    patience: int | None = None  # early stopping on validation weighted MAE; None: never
    reinit: bool = True  # re-initialise every round (the study); False warm-starts
    # a warm start's learning rate as a fraction of lr: at the full rate a fine-tune rarely beat its starting weights
    finetune_lr_factor: float = 0.3
    loss_w: float = 1.0
    loss_w2: float = 2000.0
    normalize: str = "auto"  # auto: inputs and targets divided by their largest magnitude per channel; none
    schedule: str = "constant"  # the learning rate within a round: constant, or cosine (lr -> lr/100 over epochs)
    budget_s: float | None = None  # seconds of training per round: the epochs that fit, re-planned after each
    # at least this many optimizer steps a round: an epoch of a small training set cycles through it several times
    # (min_steps / epochs steps), so that every size trains to a like convergence (retrained from scratch at 250 and
    # at 2,000 labels, say) and is validated `epochs` times
    min_steps: int | None = None
    # auto: every step transforms each training sample by a random combination of the simulator's declared
    # symmetries (none declared: nothing happens); none: train on the labels as they are
    augment: str = "auto"
    # > 0: add this times the mean squared residual of the simulator's equations on predictions for unlabelled
    # pool inputs (drive only; the simulator needs a `residual`)
    physics_weight: float = 0.0
    # true: train the network through torch.compile (measured on an H200: 2x the samples/s of a U-Net after
    # 40-60 s of compiling per round; it pays only where a round trains for minutes)
    compile: bool = False

    def __post_init__(self) -> None:
        self._positive("epochs", "lr", "batch_size", "patience", "loss_w", "budget_s", "finetune_lr_factor")
        self._positive("min_steps")
        self._positive("loss_w2", "physics_weight", allow_zero=True)
        _require(self.normalize in ("auto", "none"), "training.normalize",
                 f"must be 'auto' or 'none', got {self.normalize!r}")  # fmt: skip
        _require(self.augment in ("auto", "none"), "training.augment",
                 f"must be 'auto' or 'none', got {self.augment!r}")  # fmt: skip
        _require(self.schedule in ("constant", "cosine"), "training.schedule",
                 f"must be 'constant' or 'cosine', got {self.schedule!r}")  # fmt: skip


@dataclass(frozen=True)
class LoopConfig(Section):
    """`loop`: the active-learning rounds and when to stop."""

    section: ClassVar[str] = "loop"
    batch_size: int = 1000  # B, samples labelled per round (async: samples each checkpoint selects)
    rounds: int = 15  # async: checkpoints
    label_budget: int | None = None  # stop once this many samples are labelled
    target_val_wmae: float | None = None
    target_test_wmae: float | None = None
    mode: str = "sync"  # sync: label, train, score in turn; async: labelling never waits (docs/async.md)
    retrain_after: int | None = None  # async: new labels that start the next training; None: batch_size
    max_staleness: int = 1  # async: a label may be selected by a checkpoint at most this many behind the newest
    queue_size: int | None = None  # async: ids each checkpoint queues, best first; None: 2B, or a learner cycle's worth
    # sync: the labelled-set size each round trains at, e.g. [250, 500, 1000, 2000] (the labels double, as
    # AL4PDE and Holzmüller et al. grow them); the first is pool.initial, the run stops after the last (loop.rounds
    # and batch_size are then unused). None: batch_size more every round
    sizes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        self._positive("batch_size", "rounds", "label_budget", "target_val_wmae", "target_test_wmae")
        self._positive("retrain_after", "queue_size")
        self._positive("max_staleness", allow_zero=True)
        _require(self.mode in ("sync", "async"), "loop.mode", f"must be 'sync' or 'async', got {self.mode!r}")
        if self.sizes is not None:
            ok = len(self.sizes) >= 1 and self.sizes[0] > 0 and all(a < b for a, b in itertools.pairwise(self.sizes))
            _require(ok, "loop.sizes", f"must be increasing positive label counts, got {list(self.sizes)}")
            _require(self.mode == "sync", "loop.sizes", "is for the sync loop; in async mode set loop.retrain_after")

    @property
    def labels_per_checkpoint(self) -> int:
        """Async: the new labels that start the next training (`retrain_after`, else B)."""
        return self.retrain_after or self.batch_size

    @property
    def min_queue(self) -> int:
        """Async: the ids each checkpoint selects into the queue at least (`queue_size`, else 2B; `engine.stream`
        adds a learner cycle's worth when that is more)."""
        return self.queue_size or 2 * self.batch_size

    @property
    def is_async(self) -> bool:
        """`mode: async`: labelling never waits for training (engine.stream); else the sync loop (engine.sync)."""
        return self.mode == "async"

    def round_size(self, round_idx: int, labeled: int) -> int:
        """How many samples round `round_idx`'s model selects, `labeled` being labelled: B, or what brings the
        labelled set to the next of `sizes`.

        Example:
            >>> LoopConfig(sizes=(250, 500, 1000)).round_size(1, 500), LoopConfig(batch_size=100).round_size(1, 500)
            (500, 100)
        """
        if self.sizes is None:
            return self.batch_size
        return max(1, self.sizes[min(round_idx + 1, len(self.sizes) - 1)] - labeled)


@dataclass(frozen=True)
class LabelingConfig(Section):
    """`labeling`: how simulator work is cut into chunks and supervised."""

    section: ClassVar[str] = "labeling"
    chunk_size: int = 32  # samples per actor call: larger amortises overhead for cheap simulators
    in_flight_per_actor: int = 2
    timeout_s: float | None = None  # per sample (a call then holds one sample); None: no timeout
    retries: dict[str, int] = field(default_factory=lambda: dict(RETRIES))  # per failure kind, see RETRIES
    backoff_s: float = 1.0  # wait before a retry, doubled for each further one (at most 60 s)

    def __post_init__(self) -> None:
        self._positive("chunk_size", "in_flight_per_actor", "timeout_s")
        self._positive("backoff_s", allow_zero=True)
        for kind, count in self.retries.items():
            _require(kind in RETRIES, f"labeling.retries.{kind}", f"is not a failure kind; kinds: {', '.join(RETRIES)}")
            ok = isinstance(count, int) and not isinstance(count, bool) and count >= 0
            _require(ok, f"labeling.retries.{kind}", f"must be an integer >= 0, got {count!r}")
        object.__setattr__(self, "retries", {**RETRIES, **self.retries})

    def retries_for(self, kind: str) -> int:
        return self.retries.get(kind, 0)


# How often a sample is retried after each kind of failure: exceptions, timeouts and crashes may
# be transient (a busy file system, a lost node); a non-finite output comes back the same.
RETRIES = {"exception": 2, "timeout": 1, "crash": 3, "non_finite": 0}


@dataclass(frozen=True)
class ResourcesConfig(Section):
    """`resources`: what each Ray stage asks the cluster for."""

    section: ClassVar[str] = "resources"
    simulators: int | None = None  # simulator actors; None: one per free CPU slot
    cpus_per_simulator: float = 1.0  # 0 for a simulator that only waits (a remote or queued job)
    gpus_per_simulator: float = 0.0
    simulator_resource: str | None = "simulator"  # custom resource asked for when the cluster has it
    train_workers: int = 1  # more than one: DDP on Ray Train; one: a single Ray task
    cpus_per_train_worker: float = 1.0
    use_gpu: bool = False  # training workers and scoring actors ask for GPUs
    gpus_per_train_worker: float = 1.0  # with use_gpu; a fraction lets trials or workers share a GPU
    score_actors: int = 1  # scoring and evaluation workers (tasks on CPUs, actors on GPUs)
    gpus_per_score_actor: float = 1.0  # with use_gpu

    def __post_init__(self) -> None:
        self._positive("simulators", "train_workers", "cpus_per_train_worker", "score_actors")
        self._positive("cpus_per_simulator", "gpus_per_simulator", "gpus_per_train_worker", "gpus_per_score_actor",
                       allow_zero=True)  # fmt: skip
        _require(self.cpus_per_simulator > 0 or self.simulators is not None, "resources.cpus_per_simulator",
                 "is 0 (a simulator that only waits): set resources.simulators to the actor count")  # fmt: skip


SPACE_KINDS = ("choice", "grid", "uniform", "loguniform", "randint")
SWEEP_SECTIONS = ("model", "training")
OBJECTIVES = ("val", "two_sizes")


@dataclass(frozen=True)
class SweepConfig(Section):
    """`sweep`: the architecture search of `python -m raysurr.tune` (the other commands ignore it).

    `space` maps a `model.KEY` or `training.KEY` to a fixed value or to one of
    `{choice: [...]}`, `{grid: [...]}`, `{uniform: [lo, hi]}`, `{loguniform: [lo, hi]}`,
    `{randint: [lo, hi]}` (hi excluded); each trial's config is the base config with its draws set.
    """

    section: ClassVar[str] = "sweep"
    space: dict[str, Any] = field(default_factory=dict)
    trials: int = 8  # draws of the space (each grid point is tried this many times)
    objective: str = "val"  # val: validation weighted MAE; two_sizes: geometric mean at two training-set sizes
    sizes: tuple[int, ...] | None = None  # two_sizes: the training-set sizes; default: half the data and all of it
    data: str | None = None  # a raysurr.dataset folder (train and val splits); default: label a set as the AL run would
    grace_period: int = 1  # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: float = 2.0  # ASHA: keep the best 1/reduction_factor at each rung
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions share a GPU between trials
    max_concurrent: int | None = None  # None: as many as the resources allow
    checkpoint_every: int = 1  # epochs between trial checkpoints (what --resume continues from); 0: never

    def __post_init__(self) -> None:
        self._positive("trials", "grace_period", "cpus_per_trial", "max_concurrent")
        self._positive("gpus_per_trial", "checkpoint_every", allow_zero=True)
        _require(self.reduction_factor > 1, "sweep.reduction_factor", f"must be > 1, got {self.reduction_factor}")
        _require(
            self.objective in OBJECTIVES, "sweep.objective", f"must be one of {OBJECTIVES}, got {self.objective!r}"
        )
        if self.sizes is not None:
            ok = len(self.sizes) == 2 and 0 < self.sizes[0] < self.sizes[1]
            _require(ok, "sweep.sizes", f"must be two increasing positive sizes, got {list(self.sizes)}")
        for key, spec in self.space.items():
            _check_space_entry(key, spec)


def _check_space_entry(key: str, spec: Any) -> None:
    where = f"sweep.space.{key}"
    section, _, name = key.partition(".")
    _require(section in SWEEP_SECTIONS and bool(name) and "." not in name, where,
             f"must name a key of {' or '.join(SWEEP_SECTIONS)}, like model.base_channels")  # fmt: skip
    if not isinstance(spec, Mapping):
        return  # a fixed value
    _require(len(spec) == 1 and next(iter(spec)) in SPACE_KINDS, where,
             f"must be a value or one of {{{': ..., '.join(SPACE_KINDS)}: ...}}, got {dict(spec)!r}")  # fmt: skip
    kind, values = next(iter(spec.items()))
    _require(isinstance(values, (list, tuple)) and len(values) > 0, where, f"{kind} needs a non-empty list")
    if kind in ("uniform", "loguniform", "randint"):
        ok = len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        _require(ok, where, f"{kind} needs [low, high], got {values!r}")
        lo, hi = values
        _require(lo < hi, where, f"{kind} range [{lo}, {hi}] is empty; low must be < high")
        _require(kind != "loguniform" or lo > 0, where, f"loguniform needs low > 0, got {lo}")


@dataclass(frozen=True)
class ExperimentConfig(Section):
    """`experiment`: the grid of `python -m raysurr.experiment` (the other commands ignore it).

    `models` and `acquisitions` map a label to a config section (its `name` defaults to the label);
    every (model, acquisition, seed) is one AL run of the base config with those sections and seed.
    """

    section: ClassVar[str] = "experiment"
    models: dict[str, Any] = field(default_factory=dict)  # label: model section; empty: the config's model
    acquisitions: dict[str, Any] = field(default_factory=dict)  # label: acquisition section
    seeds: tuple[int, ...] = (0,)
    parallel: int = 1  # runs side by side (each asks for the resources of its config)
    budgets: tuple[int, ...] = ()  # label counts at which report.md compares errors; default: every round's
    reference: str = "random"  # the acquisition whose learning curve the others' savings are read off
    # the reference's runs go on to this many labels (loop.label_budget for the others), so that every other
    # function's error lies on the reference's curve and its saving is interpolated, never extrapolated
    reference_budget: int | None = None
    confidence: float = 0.95  # of the report's intervals, Holm/Bonferroni-corrected over the functions compared

    def __post_init__(self) -> None:
        self._positive("parallel", "reference_budget")
        _require(0.5 <= self.confidence < 1, "experiment.confidence", f"must be in [0.5, 1), got {self.confidence}")
        _require(len(self.seeds) > 0 and len(set(self.seeds)) == len(self.seeds), "experiment.seeds",
                 f"must be a non-empty list of distinct seeds, got {list(self.seeds)}")  # fmt: skip
        _require(all(b > 0 for b in self.budgets), "experiment.budgets", f"must be > 0, got {list(self.budgets)}")
        for key in ("models", "acquisitions"):
            for label, section in getattr(self, key).items():
                ok = section is None or isinstance(section, Mapping)
                _require(ok, f"experiment.{key}.{label}", f"must be a config section (a mapping), got {section!r}")
        if self.acquisitions:
            known = ", ".join(self.acquisitions)
            _require(self.reference in self.acquisitions, "experiment.reference",
                     f"must be one of the acquisitions ({known}), got {self.reference!r}")  # fmt: skip

    def sections(self, key: str) -> dict[str, dict[str, Any]]:
        """{label: section with its name} for `models` or `acquisitions`."""
        return {label: {"name": label, **dict(section or {})} for label, section in getattr(self, key).items()}


@dataclass(frozen=True)
class TrackingConfig(Section):
    """`tracking`: where a run is recorded besides its folder (docs/observability.md)."""

    section: ClassVar[str] = "tracking"
    mlflow: bool = False  # log the run to MLflow (pip install 'raysurr[mlflow]')
    uri: str | None = None  # MLflow tracking URI; None: sqlite:///<folder holding the run folders>/mlflow.db
    experiment: str | None = None  # MLflow experiment; None: the config's name
    parent_run: str | None = None  # an MLflow run id this run is nested under (experiment grids set it)


NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")

_SECTIONS: dict[str, type] = {
    "simulator": SimulatorConfig,
    "pool": PoolConfig,
    "evaluation": EvaluationConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "acquisition": AcquisitionConfig,
    "loop": LoopConfig,
    "labeling": LabelingConfig,
    "resources": ResourcesConfig,
    "sweep": SweepConfig,
    "experiment": ExperimentConfig,
    "tracking": TrackingConfig,
}


@dataclass(frozen=True)
class Config:
    """A whole run's configuration."""

    name: str = "run"
    seed: int = 0
    plugins: tuple[str, ...] = ()
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    acquisition: AcquisitionConfig = field(default_factory=AcquisitionConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    labeling: LabelingConfig = field(default_factory=LabelingConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        _require(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        sizes = self.loop.sizes
        _require(sizes is None or sizes[0] == self.pool.initial, "loop.sizes",
                 f"starts at {sizes[0] if sizes else None}, the initial set, but pool.initial is {self.pool.initial}: "
                 "make them equal")  # fmt: skip
        _require(
            sizes is None or sizes[-1] <= self.pool.size,
            "loop.sizes",
            f"goes up to {sizes[-1] if sizes else None} labels, more than pool.size ({self.pool.size})",
        )
        _require(bool(NAME.fullmatch(self.name)), "name", f"must be letters, digits, '.', '_' or '-', not starting "
                 f"with '.' or '-' (it names folders and Ray actors), got {self.name!r}")  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Config:
        data = dict(data or {})
        _check_keys(data, [f.name for f in dataclasses.fields(cls)], "top level of the config")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in _SECTIONS:
                _require(isinstance(value, Mapping), key, f"must be a mapping of keys, got {value!r}")
                section = _SECTIONS[key]
                kwargs[key] = section.from_dict(value) if issubclass(section, NamedConfig) else _build(section, value)
            else:
                kwargs[key] = _coerce(value, _hints(cls)[key], key)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "seed": self.seed, "plugins": list(self.plugins)}
        for key in _SECTIONS:
            value = getattr(self, key)
            out[key] = value.to_dict() if isinstance(value, NamedConfig) else dataclasses.asdict(value)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def updated(self, values: Mapping[str, Any]) -> Config:
        """This config with dotted keys set (`{"loop.rounds": 3, "model.depth": 4}`) and validated again: for keys
        named at run time (a sweep's draws, a tracker's tags); `dataclasses.replace` where the field is known."""
        return Config.from_dict(set_keys(self.to_dict(), values))


def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise ConfigError(f"unknown key {key!r} in {where}; allowed: {', '.join(allowed)}")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# Keys renamed to match the code: the old name is still read, with a one-line notice.
RENAMED = {"loop": {"retrain_every": "retrain_after", "queue": "queue_size"}}


def _renamed(section: str, data: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for old, new in RENAMED.get(section, {}).items():
        if old in out:
            _require(new not in out, f"{section}.{old}", f"and {section}.{new} are the same key; keep {new}")
            warnings.warn(f"{section}.{old} is now {section}.{new}; the old name will stop working in a later "
                          "release", FutureWarning, stacklevel=2)  # fmt: skip
            out[new] = out.pop(old)
    return out


def _build(cls: type, data: Mapping[str, Any]) -> Any:
    data = _renamed(cls.section, data)
    names = [f.name for f in dataclasses.fields(cls)]
    _check_keys(data, names, f"section {cls.section!r}")
    hints = _hints(cls)
    return cls(**{k: _coerce(v, hints[k], f"{cls.section}.{k}") for k, v in data.items()})


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a type hint, converting the few safe cases (int -> float, list -> tuple)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where)
    if origin is tuple:
        _require(isinstance(value, (list, tuple)), where, f"must be a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        _require(ok, where, f"must be a number, got {value!r}")
        return float(value)
    if hint is int:
        _require(isinstance(value, int) and not isinstance(value, bool), where, f"must be an integer, got {value!r}")
        return value
    if hint is dict or origin is dict:
        _require(isinstance(value, Mapping), where, f"must be a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}
    if hint in (bool, str):
        _require(isinstance(value, hint), where, f"must be a {hint.__name__}, got {value!r}")
        return value
    raise TypeError(f"config field {where} has unsupported type {hint}")  # a bug, not a user error


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides (values parsed as YAML) to a nested dict copy."""
    values = {}
    for item in overrides:
        path, sep, raw = item.partition("=")
        _require(bool(sep) and bool(path), f"--set {item!r}", "must look like section.key=value")
        try:
            values[path] = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError:
            hint = f"--set '{path}=\"...\"'"
            raise ConfigError(f"--set {item!r}: the value is not valid YAML; quote it, e.g. {hint}") from None
    return set_keys(data, values)


def set_keys(data: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys (`section.key`) to Python values in a nested dict copy.

    Example:
        >>> set_keys({"model": {"name": "unet"}}, {"model.depth": 3})
        {'model': {'name': 'unet', 'depth': 3}}
    """
    out = _deepcopy(data)
    for path, value in values.items():
        keys = path.split(".")
        node = out
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            _require(isinstance(child, dict), f"--set {path}={value!r}", f"{key!r} is not a section")
            node = child
        node[keys[-1]] = value.item() if hasattr(value, "item") and not isinstance(value, (list, dict)) else value
    return out


def flat_keys(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config dict as {dotted key: value}.

    Example:
        >>> flat_keys({"model": {"name": "unet", "depth": 3}, "seed": 0})
        {'model.name': 'unet', 'model.depth': 3, 'seed': 0}
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(flat_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _deepcopy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`update` laid over `base` key by key, recursively; a mapping whose `name` differs from the one it lands on
    replaces it whole (another simulator, model or acquisition function keeps none of the old one's options).

    Example:
        >>> merge({"training": {"lr": 1e-3, "epochs": 8}}, {"training": {"epochs": 20}})
        {'training': {'lr': 0.001, 'epochs': 20}}
        >>> merge({"model": {"name": "unet", "depth": 4}}, {"model": {"name": "fno", "modes": 8}})
        {'model': {'name': 'fno', 'modes': 8}}
    """
    out = _deepcopy(base)
    for key, value in update.items():
        old = out.get(key)
        default = getattr(_SECTIONS.get(key), "name", None)  # a named section's default name (unet, random, ...)
        renamed = isinstance(value, Mapping) and isinstance(old, Mapping) and "name" in value and (
            value["name"] != old.get("name", default))  # fmt: skip
        if isinstance(value, Mapping) and isinstance(old, Mapping) and not renamed:
            out[key] = merge(old, value)
        else:
            out[key] = _deepcopy(value) if isinstance(value, Mapping) else value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with one-line errors for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(f"config file {str(path)!r} is not a text file; give a YAML config") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}") from None
    if data is None:
        return {}
    _require(isinstance(data, dict), f"config file {str(path)!r}", "must hold a mapping of sections")
    return data


def load_config(path: str | Path | Sequence[str | Path] | None = None, overrides: Sequence[str] = ()) -> Config:
    """Read config file(s) (or the defaults), apply overrides, validate, and import its plugins.

    With several files, each later file is merged into the earlier ones key by key (`merge`): it changes the
    keys it names and keeps the rest, as Hydra and OmegaConf do. A section that names another `name` (a
    sweep's best.yaml with another model family, say) replaces the earlier section whole, so the new
    architecture inherits no options of the old one.
    """
    paths = [path] if isinstance(path, (str, Path)) else list(path or [])
    data: dict[str, Any] = {}
    for item in paths:
        data = merge(data, read_yaml(item))
    config = Config.from_dict(apply_overrides(data, overrides))
    load_plugins(config.plugins)
    return config


PLUGIN_GROUP = "raysurr.plugins"  # entry points an installed package declares to register its simulators and models
_entry_points_loaded = False


def load_plugins(modules: Sequence[str]) -> None:
    """Import the installed packages' `raysurr.plugins` entry points (once per process) and the config's plugin
    modules, so that their simulators, models and acquisition functions register themselves."""
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for entry in importlib.metadata.entry_points(group=PLUGIN_GROUP):
            _import_plugin(entry.value.split(":")[0], f"the entry point {entry.name!r} of {_package(entry)}")
    for module in modules:
        _import_plugin(module, "plugins")


def _package(entry: importlib.metadata.EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    return f"package {dist.name!r}" if dist is not None else "an installed package"


def _import_plugin(module: str, where: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"{where}: cannot import {module!r} ({exc}); make it importable from the working directory or install it"
        ) from None
    except Exception as exc:  # the plugin's own code failed while it was imported
        raise ConfigError(
            f"{where}: importing {module!r} raised {type(exc).__name__}: {exc}; fix the plugin module"
        ) from None
