"""Retraining on Ray Train, for real, on a local 2-CPU Ray."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import raysurr
from raysurr.commands.dataset import main as make_dataset
from raysurr.config import ModelConfig, ResourcesConfig, TrainingConfig
from raysurr.data.dataset import open_dataset
from raysurr.distributed.scoring import read_samples
from raysurr.distributed.training import fit
from raysurr.models.checkpoint import checkpoint_bytes
from raysurr.models.fitting import FitSpec

pytestmark = pytest.mark.timeout(300)

# No dropout: its masks depend on how the batch is split over workers, so DDP could not match one worker.
MODEL = ModelConfig(name="unet", options={"base_channels": 4, "depth": 3, "dropout": 0.0})


@pytest.fixture(scope="module")
def data(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "ds"
    make_dataset(
        ["--split", "96,32", "--out", str(out), "--set", "simulator.grid=24", "--set", "labeling.chunk_size=16"]
    )
    info = open_dataset(out)
    return {name: read_samples(info.split_dir(name), ["input", "target"]).materialize() for name in ["train", "val"]}


def train(data, out, workers: int = 1, seed: int = 1, ray_train: bool | None = None, warm_start=None, **training):
    """One batch of the whole training set (96) per step and no augmentation: a step's gradient is the mean over
    every sample, however the samples are split over the workers."""
    settings = TrainingConfig(**{"epochs": 6, "batch_size": 96, "lr": 3e-3, "augment": "none", **training})
    spec = FitSpec.of(MODEL, (1, 1), settings, seed, meta={"round": 0},
                      warm_start=checkpoint_bytes(warm_start) if warm_start else None)  # fmt: skip
    return fit(spec, data, ResourcesConfig(train_workers=workers), out, ray_train=ray_train)


@pytest.fixture(scope="module")
def two_worker_run(data, tmp_path_factory):
    return train(data, tmp_path_factory.mktemp("fit2"), workers=2)


def test_ddp_on_two_workers_lowers_the_loss(two_worker_run):
    history = two_worker_run.history
    assert len(history) == 6
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert two_worker_run.best_val_wmae < history[0]["val_wmae"]
    assert two_worker_run.best_val_wmae == min(r["val_wmae"] for r in history)


def test_two_workers_train_the_function_one_does_each_on_its_own_half(data, two_worker_run, tmp_path):
    """The same data and seed on one worker: the all-reduced gradient of two disjoint halves is the whole set's, so
    the weights agree to float rounding; each rank trained on 48 of the 96 samples (both on all 96, or on the same
    half, would give other weights)."""
    one = train(data, tmp_path, workers=1)
    assert [r["train_samples"] for r in two_worker_run.history] == [48] * 6
    assert [r["train_samples"] for r in one.history] == [96] * 6
    # Float rounding of the all-reduce, grown over 6 Adam steps, stays under 0.01% of each weight tensor.
    np.testing.assert_allclose([r["val_wmae"] for r in two_worker_run.history], [r["val_wmae"] for r in one.history],
                               rtol=1e-4)  # fmt: skip
    ddp, single = (torch.load(r.checkpoint / "surrogate.pt", weights_only=True)["state_dict"] for r in (two_worker_run,
                                                                                                      one))  # fmt: skip
    for key in single:
        if single[key].is_floating_point():
            assert (ddp[key] - single[key]).norm() <= 1e-4 * single[key].norm() + 1e-6, key


def test_best_validation_checkpoint_is_kept(two_worker_run):
    folder = two_worker_run.checkpoint
    assert json.loads((folder / "history.json").read_text()) == two_worker_run.history
    model = raysurr.load_surrogate(folder)
    assert model(torch.zeros(1, 1, 24, 24)).shape == (1, 1, 24, 24)
    spec_meta = torch.load(folder / "surrogate.pt", weights_only=True)["meta"]
    assert spec_meta["round"] == 0 and spec_meta["best_val_wmae"] == pytest.approx(two_worker_run.best_val_wmae)
    assert spec_meta["epochs_run"] == 6


def test_early_stopping_and_warm_start(data, two_worker_run, tmp_path):
    # lr so small that nothing improves on the starting weights: patience 2 stops after 2 epochs, and
    # the checkpoint keeps the starting weights (best epoch -1).
    run = train(data, tmp_path, epochs=50, batch_size=16, lr=1e-12, patience=2, reinit=False,
                warm_start=two_worker_run.checkpoint)  # fmt: skip
    assert len(run.history) == 2 and run.best_epoch == -1
    # Warm-started from the trained weights: already as good as the run it started from.
    assert run.history[0]["val_wmae"] == pytest.approx(two_worker_run.best_val_wmae, rel=1e-3)


def test_one_worker_trains_in_a_task_exactly_as_on_ray_train(data, tmp_path):
    # One worker skips Ray Train's worker group; the same seed must give the same weights either way.
    runs = [train(data, tmp_path / str(on), seed=5, ray_train=on, epochs=2, batch_size=16, augment="auto")
            for on in (False, True)]  # fmt: skip
    assert [r["val_wmae"] for r in runs[0].history] == [r["val_wmae"] for r in runs[1].history]
    task, on_train = (torch.load(r.checkpoint / "surrogate.pt", weights_only=True)["state_dict"] for r in runs)
    assert task.keys() == on_train.keys()
    assert all(torch.equal(task[k], on_train[k]) for k in task)
    assert sorted(p.name for p in runs[0].checkpoint.iterdir()) == ["history.json", "surrogate.pt"]
