"""The library layer: `raysurr.run`, `raysurr.experiment` and `raysurr.sweep` from Python, in this process, on the
suite's local Ray (they use a Ray that is already connected), each writing what its command writes."""

from __future__ import annotations

import math

import pytest
import yaml

import raysurr
from raysurr.engine.run_folder import RunFolder

pytestmark = pytest.mark.timeout(600)

TINY = {
    "name": "api",
    "simulator": {"name": "diffusion2d", "grid": 16},
    "pool": {"size": 48, "initial": 8, "val": 8, "test": 8},
    "model": {"name": "unet", "base_channels": 2, "depth": 2},
    "training": {"epochs": 1, "lr": 3.0e-3, "batch_size": 8},
    "loop": {"batch_size": 8, "rounds": 2},
    "labeling": {"chunk_size": 8},
    "resources": {"simulators": 1, "cpus_per_train_worker": 1, "score_actors": 1},
}


def test_run_returns_the_run_folders_summary(ray_local, tmp_path):
    summary = raysurr.run(TINY, out=tmp_path / "run")
    assert summary.folder == tmp_path / "run" and RunFolder(summary.folder).finished()
    assert summary.stopped == "2 rounds done" and [r["n_labeled"] for r in summary.rounds] == [8, 16]
    assert all(math.isfinite(r["test_wmae"]) for r in summary.rounds)
    predictor = raysurr.load(summary.model)
    inside = [predictor.ranges[name][0] for name in predictor.parameter_names]  # each a training label's value
    assert predictor.predict([inside]).shape == (1, 1, 16, 16)
    with pytest.raises(raysurr.ConfigError, match="is not empty; continue it with --resume"):
        raysurr.run(TINY, out=tmp_path / "run")  # the finished run is never overwritten


def test_experiment_runs_the_grid_and_returns_its_report(ray_local, tmp_path):
    path = tmp_path / "grid.yaml"  # a YAML path works as well as a dict
    grid = {**TINY, "name": "apix", "loop": {"batch_size": 8, "rounds": 1},
            "experiment": {"acquisitions": {"random": {}}, "seeds": [0], "parallel": 1}}  # fmt: skip
    path.write_text(yaml.safe_dump(grid))
    summary = raysurr.experiment(path, out=tmp_path / "grid")
    assert summary.runs == 1 and summary.report.is_file()
    assert [(r["acquisition"], r["seed"], r["n_labeled"]) for r in summary.rows] == [("random", 0, 8)]
    with pytest.raises(raysurr.ConfigError, match="experiment.acquisitions is empty"):
        raysurr.experiment(TINY, out=tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


def test_sweep_returns_its_trials_best_first(ray_local, tmp_path):
    config = raysurr.api.as_config({**TINY, "sweep": {"trials": 1, "grace_period": 1, "objective": "val",
                                                      "space": {"training.lr": {"grid": [3e-3, 1e-9]}}}})  # fmt: skip
    summary = raysurr.sweep(config, out=tmp_path / "sweep")
    assert len(summary.trials) == 2 and summary.best.is_file()
    assert summary.trials[0]["score"] <= summary.trials[1]["score"]
    assert summary.trials[0]["training.lr"] == 3e-3  # the one that can learn wins
    assert yaml.safe_load(summary.best.read_text())["training"]["lr"] == 3e-3
