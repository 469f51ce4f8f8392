"""`python -m raysurr.train` end to end, as a user runs it."""

from __future__ import annotations

import json
from contextlib import chdir

import pytest

import raysurr
from raysurr.commands.dataset import main as make_dataset
from raysurr.commands.train import main
from raysurr.errors import ConfigError, DatasetError

pytestmark = pytest.mark.timeout(300)


def test_train_command_end_to_end(ray_local, tmp_path, capsys):
    # in this process's Ray: the guide's test (tests/test_docs.py) runs the command in its own, as a user does
    assert make_dataset(["--split", "64,16,16", "--out", str(tmp_path / "data"), "--set", "simulator.grid=24"]) == 0
    args = ["--set", "model.base_channels=4", "--set", "model.depth=3", "--set", "training.epochs=3"]
    with chdir(tmp_path):
        assert main(["--data", "data", "--out", "run", *args]) == 0
    out, err = capsys.readouterr()
    assert "parameters) trained up to 3 epochs on 64 samples, evaluated on 16" in err
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ["test_wmae", "test_mae_all", "test_mae_source", "test_mae_field"]:
        assert metrics[key] > 0
    assert metrics["n_test"] == 16 and metrics["epochs_run"] == 3
    assert metrics["test_mae_source"] > metrics["test_mae_field"]  # an untrained net misses the sources most
    assert json.loads(out.strip().splitlines()[-1])["test_wmae"] == metrics["test_wmae"]
    assert (run / "predictions.png").stat().st_size > 10_000
    assert raysurr.load_surrogate(run / "checkpoint").training is False
    assert "base_channels: 4" in (run / "config.yaml").read_text()


def test_dataset_without_splits_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "dataset.yaml").write_text(
        "simulator: {name: diffusion2d}\nparameters: []\ninput_shape: [1, 8, 8]\noutput_shape: [1, 8, 8]\n"
        "extras: []\nsplits: {all: 10}\nseed: 0\nformat_version: 1\n"
    )
    with pytest.raises(DatasetError, match="training needs train, val and test; write it with"):
        main(["--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")])
    with pytest.raises(DatasetError, match="is not a complete raysurr dataset"):
        main(["--data", str(tmp_path), "--out", str(tmp_path / "o")])


def test_training_on_a_dataset_refuses_the_physics_term(tmp_path):
    with pytest.raises(ConfigError, match="unlabelled pool, which raysurr train does not have"):
        main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "training.physics_weight=1"])
