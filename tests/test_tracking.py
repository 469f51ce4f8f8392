"""MLflow tracking without Ray: a run's rounds logged once each, across a resume; the clear error without MLflow.

The drive, experiment and tune commands' MLflow runs are tested with their own end-to-end runs
(test_drive, test_experiment, test_tune).
"""

from __future__ import annotations

import sys

import pytest

from raysurr.config import Config
from raysurr.errors import ConfigError
from raysurr.tracking import Tracker, check_tracking, open_tracker

mlflow = pytest.importorskip("mlflow")

CONFIG = Config.from_dict({"name": "probe", "tracking": {"mlflow": True}, "model": {"name": "unet", "depth": 3}})


def rows(n: int) -> list[dict]:
    return [{"round": r, "n_labeled": 16 + 8 * r, "test_wmae": 10.0 / (r + 1), "utilisation": None} for r in range(n)]


def client(folder):
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder.parent / 'mlflow.db'}")


def test_rounds_are_logged_once_with_the_label_count_as_step_across_a_resume(tmp_path):
    folder = tmp_path / "runs" / "probe-1"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(CONFIG.to_yaml())
    (folder / "rounds.csv").write_text("round\n0\n")
    tracker = open_tracker(CONFIG, folder)
    tracker.rounds(rows(1), [folder / "rounds.csv"])
    tracker.rounds(rows(2))  # round 0 again: already logged
    resumed = open_tracker(CONFIG, folder)  # a new driver after a kill: the same MLflow run
    assert resumed.run_id == tracker.run_id
    resumed.rounds(rows(3))
    resumed.finish("FINISHED", [folder / "config.yaml"], {"checkpoint": folder})

    store = client(folder)
    history = store.get_metric_history(tracker.run_id, "test_wmae")
    assert [(m.step, m.value) for m in history] == [(16, 10.0), (24, 5.0), (32, 10.0 / 3)]
    run = store.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "probe-1"
    assert run.data.params["model.depth"] == "3" and run.data.params["training.lr"] == "0.0001"
    assert "utilisation" not in run.data.metrics  # an empty cell is not a metric
    names = {a.path for a in store.list_artifacts(tracker.run_id)}
    assert {"rounds.csv", "config.yaml", "checkpoint"} <= names
    experiment = store.get_experiment(run.info.experiment_id)
    assert experiment.name == "probe" and experiment.artifact_location.endswith("/runs/mlartifacts")
    assert len(store.search_runs([experiment.experiment_id])) == 1


def test_tracking_off_records_nothing(tmp_path):
    tracker = open_tracker(Config(), tmp_path)
    assert type(tracker) is Tracker and tracker.child(Config(), Config(seed=3)) == Config(seed=3)
    tracker.rounds(rows(2))
    tracker.finish("FINISHED")
    assert list(tmp_path.iterdir()) == []


def test_without_mlflow_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'raysurr\[mlflow\]'"):
        check_tracking(CONFIG)
    check_tracking(Config())  # tracking off: MLflow not needed
