"""Self-describing checkpoints: round trip, no config needed, clear errors for bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import raysurr
from raysurr.models import UNet
from raysurr.models.checkpoint import (
    VERSION,
    CheckpointError,
    Surrogate,
    SurrogateSpec,
    TargetTransform,
    read_checkpoint,
    save_surrogate,
)

SPEC = SurrogateSpec("unet", {"in_channels": 1, "out_channels": 1, "base_channels": 3, "depth": 3}, meta={"round": 2})


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = SPEC.build()
    return model, save_surrogate(model, SPEC, tmp_path / "ck")


def test_round_trip_gives_the_same_outputs(saved):
    model, path = saved
    loaded = raysurr.load_surrogate(path.parent)
    assert isinstance(loaded, Surrogate) and not loaded.training
    x = torch.randn(2, 1, 20, 20)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    spec, _ = read_checkpoint(path)
    assert spec.meta == {"round": 2} and spec.init["base_channels"] == 3


def test_target_transform_is_inverted():
    transform = TargetTransform(shift=(1.0,), scale=(4.0,))
    y = torch.randn(3, 1, 5, 5)
    assert torch.allclose(transform.inverse(transform.forward(y)), y)
    model = UNet(base_channels=2, depth=2).eval()
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(Surrogate(model, transform)(x), model(x) * 4.0 + 1.0)


def test_corrupt_file(saved, tmp_path):
    _, path = saved
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="is not a readable surrogate checkpoint"):
        raysurr.load_surrogate(broken)


def test_foreign_files(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(CheckpointError, match="is not a raysurr surrogate checkpoint"):
        raysurr.load_surrogate(plain)
    hostile = tmp_path / "hostile.pt"
    hostile.write_bytes(pickle.dumps(print))  # weights_only refuses arbitrary objects
    with pytest.raises(CheckpointError, match="is not a readable surrogate checkpoint"):
        raysurr.load_surrogate(hostile)
    with pytest.raises(CheckpointError, match="no surrogate checkpoint at"):
        raysurr.load_surrogate(tmp_path / "missing")


def test_version_and_shape_mismatch(saved, tmp_path):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "version": 99}, tmp_path / "future.pt")
    message = rf"checkpoint version 99, which this raysurr \(version {VERSION}\) cannot read; retrain"
    with pytest.raises(CheckpointError, match=message):
        raysurr.load_surrogate(tmp_path / "future.pt")
    torch.save({**payload, "init": {**payload["init"], "base_channels": 5}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="weights do not fit model 'unet'"):
        raysurr.load_surrogate(tmp_path / "other.pt")


def test_a_checkpoint_saved_in_the_default_layout_loads_into_the_channels_last_model(tmp_path):
    torch.manual_seed(0)
    model = UNet(**SPEC.init)  # contiguous weights, as checkpoints written before the layout change have
    path = save_surrogate(model, SPEC, tmp_path / "ck")
    loaded = raysurr.load_surrogate(path.parent)
    assert not loaded.model.down[1][0].conv.weight.is_contiguous()  # channels-last
    x = torch.randn(2, 1, 20, 20)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.eval()(x), atol=1e-6)


FIXTURES = Path(__file__).parents[1] / "fixtures" / "checkpoints"  # a tiny U-Net saved by the raysurr of each version


@pytest.mark.parametrize(("version", "commits"), [(1, "f1b3c0d to 2506416"), (2, "4dee13d to 151aad1")])
def test_every_older_checkpoint_version_is_refused_naming_the_raysurr_that_reads_it(version, commits):
    with pytest.raises(CheckpointError, match=rf"written as checkpoint version {version}, which this raysurr \(version "
                       rf"{VERSION}\) cannot read: raysurr at commits {commits} \(2026-11-23\) reads it"):  # fmt: skip
        raysurr.load_surrogate(FIXTURES / f"v{version}")


def test_the_current_version_reads_its_committed_fixture_to_the_same_outputs():
    """Saved by this version's raysurr with its outputs beside it: a change that reads it differently fails here."""
    assert VERSION == 3
    x = torch.linspace(0, 1, 2 * 16 * 16).reshape(2, 1, 16, 16)
    with torch.no_grad():
        out = raysurr.load_surrogate(FIXTURES / "v3")(x).numpy()
    np.testing.assert_allclose(out, np.load(FIXTURES / "v3" / "expected.npy"), rtol=1e-6, atol=1e-7)
    assert raysurr.load(FIXTURES / "v3").parameter_names[:3] == ("row1", "col1", "flux1")
