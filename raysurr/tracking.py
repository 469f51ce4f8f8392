"""Experiment tracking with MLflow (`tracking.mlflow: true`; install with `pip install 'raysurr[mlflow]'`).

A `drive` run is one MLflow run: the resolved config as parameters, every rounds.csv row as metrics with the
label count as the step, rounds.csv and the pictures as artifacts after every round, the config and the last
checkpoint when it ends. An `experiment` grid is a parent run with one child run per AL run. The run's id is
kept in the run folder (`mlflow.json`), so a resumed run goes on in the same MLflow run and logs the rounds
it had not logged yet.

The default store is MLflow's own default, an SQLite file, placed beside the run folders
(`runs/mlflow.db`, artifacts in `runs/mlartifacts/`): `cd runs && mlflow ui` shows it with no server (the UI
needs the full `pip install mlflow`; raysurr's extra is the client and the store, mlflow-skinny).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from raysurr.config import Config, TrackingConfig, flat_keys
from raysurr.data.store import write_text
from raysurr.errors import ConfigError

RUN_FILE = "mlflow.json"  # in the run (or experiment) folder: the store and the MLflow run id
STATUSES = ("FINISHED", "FAILED", "KILLED")


def mlflow_module() -> Any:
    """MLflow, imported on first use (it takes seconds), or a one-line error that says how to install it."""
    try:
        import mlflow
    except ImportError:
        raise ConfigError("tracking.mlflow needs MLflow: pip install 'raysurr[mlflow]' (or set tracking.mlflow "
                          "false)") from None  # fmt: skip
    for name in ("mlflow", "alembic"):  # "creating initial database tables" and the like, on every new store
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


def store_uri(tracking: TrackingConfig, folder: Path) -> str:
    """The tracking URI for a run in `folder`: the configured one, or an SQLite file beside the folder."""
    return tracking.uri or f"sqlite:///{Path(folder).resolve().parent / 'mlflow.db'}"


def experiment_id(client: Any, name: str, uri: str) -> str:
    """The id of MLflow experiment `name`, created if new; with a local store its artifacts go beside the
    database (`mlartifacts/`), not into the working directory."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def params(config: Config) -> dict[str, str]:
    """The resolved config as MLflow parameters: dotted keys, values as text.

    Example:
        >>> p = params(Config.from_dict({"model": {"name": "unet", "depth": 3}}))
        >>> p["model.name"], p["model.depth"], p["training.lr"]
        ('unet', '3', '0.0001')
    """
    return {key: str(value)[:6000] for key, value in flat_keys(config.to_dict()).items()}


def metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """A rounds.csv row's numbers as metrics (empty cells left out).

    Example:
        >>> metrics({"round": 1, "n_labeled": 250, "test_wmae": 8.7, "utilisation": None})
        {'round': 1.0, 'n_labeled': 250.0, 'test_wmae': 8.7}
    """
    out = {}
    for key, value in row.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value):
            out[key] = float(value)
    return out


class Tracker:
    """Where a run is recorded besides its folder; this one records nothing (tracking is off)."""

    def rounds(self, rows: Sequence[Mapping[str, Any]], files: Iterable[Path] = ()) -> None:
        """Record the rows not recorded yet (each a rounds.csv row, with `round` and `n_labeled`) and `files`."""

    def finish(self, status: str, files: Iterable[Path] = (), folders: Mapping[str, Path] | None = None) -> None:
        """The run ended (`FINISHED`, `FAILED` or `KILLED`): record `files` and `folders` (artifact path: folder)."""

    def child(self, grid: Config, run: Config) -> Config:
        """`run`, a run of the grid `grid`, recorded as a child of this run (without tracking: as it is)."""
        return run

    def log_model(self, checkpoint: Path) -> None:
        """Record the final model as an MLflow pyfunc model (`raysurr.mlflow_model`)."""


class MlflowTracker(Tracker):
    """One MLflow run, created on first use and found again through the folder's `mlflow.json`.

    Args:
        config: the run's config (its `tracking` section says where; its `name` names the run).
        folder: the run folder (or an experiment's folder, for a grid's parent run).
    """

    def __init__(self, config: Config, folder: Path) -> None:
        mlflow = mlflow_module()
        self.folder = Path(folder)
        self.uri = store_uri(config.tracking, self.folder)
        self.client = mlflow.MlflowClient(tracking_uri=self.uri)
        self.run_id = self._open(config)
        logged = self.client.get_metric_history(self.run_id, "round")
        self.logged = {int(metric.value) for metric in logged}

    def _open(self, config: Config) -> str:
        path = self.folder / RUN_FILE
        if path.exists():
            stored = json.loads(path.read_text())
            if stored["uri"] == self.uri:
                self.client.update_run(stored["run_id"], status="RUNNING")
                self.client.log_artifact(stored["run_id"], str(self.folder / "config.yaml"))  # resume may change it
                return stored["run_id"]
        experiment = experiment_id(self.client, config.tracking.experiment or config.name, self.uri)
        tags = {"raysurr.folder": str(self.folder.resolve())}
        if config.tracking.parent_run:
            tags["mlflow.parentRunId"] = config.tracking.parent_run
        run = self.client.create_run(experiment, run_name=self.folder.name, tags=tags)
        items = sorted(params(config).items())
        for start in range(0, len(items), 100):  # MLflow takes at most 100 parameters a call
            batch = [self._param(key, value) for key, value in items[start : start + 100]]
            self.client.log_batch(run.info.run_id, params=batch)
        write_text(path, json.dumps({"uri": self.uri, "run_id": run.info.run_id}) + "\n")
        return run.info.run_id

    @staticmethod
    def _param(key: str, value: str) -> Any:
        from mlflow.entities import Param

        return Param(key, value)

    def rounds(self, rows: Sequence[Mapping[str, Any]], files: Iterable[Path] = ()) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, value, now, int(row["n_labeled"]))
                 for row in rows if int(row["round"]) not in self.logged
                 for key, value in metrics(row).items()]  # fmt: skip
        for start in range(0, len(batch), 1000):  # MLflow takes at most 1000 metrics a call
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])
        self.logged.update(int(row["round"]) for row in rows)
        self._files(files)

    def finish(self, status: str, files: Iterable[Path] = (), folders: Mapping[str, Path] | None = None) -> None:
        self._files(files)
        for artifact_path, folder in (folders or {}).items():
            if folder.is_dir():
                self.client.log_artifacts(self.run_id, str(folder), artifact_path)
        self.client.set_terminated(self.run_id, status=status)

    def log_model(self, checkpoint: Path) -> None:
        from raysurr import mlflow_model  # imports torch and MLflow's model flavours: only here

        with tempfile.TemporaryDirectory() as tmp:
            mlflow_model.save(Path(checkpoint), Path(tmp) / "model")
            self.client.log_artifacts(self.run_id, str(Path(tmp) / "model"), "model")

    def child(self, grid: Config, run: Config) -> Config:
        tracking = replace(run.tracking, uri=self.uri, experiment=grid.tracking.experiment or grid.name,
                           parent_run=self.run_id)  # fmt: skip
        return replace(run, tracking=tracking)

    def _files(self, files: Iterable[Path]) -> None:
        for path in files:
            if Path(path).is_file():
                self.client.log_artifact(self.run_id, str(path))


def open_tracker(config: Config, folder: Path) -> Tracker:
    """The tracker the config asks for, for the run (or experiment) in `folder`."""
    return MlflowTracker(config, folder) if config.tracking.mlflow else Tracker()


def check_tracking(config: Config) -> None:
    """Before a run starts: MLflow is installed if the config asks for it."""
    if config.tracking.mlflow:
        mlflow_module()
