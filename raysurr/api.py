"""The library layer: run an active-learning loop, an experiment or a sweep from Python, as the commands do.

Each takes a config (a `Config`, a dict of sections, or the path of a YAML file), checks it, creates its
folder (`out`, or runs/NAME-TIME) only once every check has passed, connects to Ray (`address`, or
RAY_ADDRESS, else a local Ray; an already connected Ray is used as it is) and returns what the folder
holds. Errors are `raysurr.RaysurrError`s with the one line a command would print.

Example:
    >>> import raysurr
    >>> summary = raysurr.run("configs/quickstart.yaml", out="runs/qs")  # doctest: +SKIP
    >>> summary.stopped, summary.rounds[-1]["test_wmae"]  # doctest: +SKIP
    ('15 rounds done', 1.87)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raysurr.config import Config, load_config

ConfigLike = Config | Mapping[str, Any] | str | Path


@dataclass(frozen=True)
class RunSummary:
    """A finished run: its folder, why it stopped, and rounds.csv's rows (numbers; an empty cell NaN)."""

    folder: Path
    stopped: str
    rounds: list[dict[str, float]]

    @property
    def model(self) -> Path:
        """The final model (`raysurr.load(summary.model)`)."""
        return self.folder / "model"


@dataclass(frozen=True)
class ExperimentSummary:
    """A finished experiment: its folder, report.md, and summary.csv's rows (one per run and round, numbers
    parsed)."""

    folder: Path
    runs: int
    report: Path
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class SweepSummary:
    """A finished sweep: its folder, best.yaml (the winner's sections to lay over a run's config), and one row
    per trial, best first."""

    folder: Path
    best: Path
    trials: list[dict[str, Any]]


def as_config(config: ConfigLike) -> Config:
    """A `Config` from a Config, a dict of sections, or a YAML file's path."""
    if isinstance(config, Config):
        return config
    if isinstance(config, (str, Path)):
        return load_config(config)
    return Config.from_dict(config)


def run(config: ConfigLike, out: str | Path | None = None, address: str | None = None) -> RunSummary:
    """Run an active-learning loop to its end (`python -m raysurr.drive --config ...`)."""
    from raysurr.engine.launch import new_run
    from raysurr.engine.rounds import read_rounds

    folder, result = new_run(as_config(config), _path(out), address)
    return RunSummary(folder, result["stopped"], read_rounds(folder / "rounds.csv"))


def experiment(config: ConfigLike, out: str | Path | None = None, address: str | None = None) -> ExperimentSummary:
    """Run an experiment's grid of runs and write its report (`python -m raysurr.experiment --config ...`)."""
    from raysurr.engine.experiment import check_empty, run_experiment, start_grid
    from raysurr.engine.report import read_summary

    config = as_config(config)
    check_empty(config)
    folder, runs = start_grid(config, _path(out), "experiment", address, lambda f, c: (f, run_experiment(f, c)))
    summary = folder / "summary.csv"  # written once a run has finished
    return ExperimentSummary(folder, runs, folder / "report.md", read_summary(summary) if summary.exists() else [])


def sweep(config: ConfigLike, out: str | Path | None = None, address: str | None = None) -> SweepSummary:
    """Sweep architectures on Ray Tune (`python -m raysurr.tune --config ...`)."""
    from raysurr.engine.sweep import new_sweep

    folder, rows = new_sweep(as_config(config), _path(out), address)
    return SweepSummary(folder, folder / "best.yaml", rows)


def _path(out: str | Path | None) -> Path | None:
    return None if out is None else Path(out)
