"""training.normalize: inputs and targets scaled per channel, stored in the checkpoint, physical units outside."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from raysurr.config import TrainingConfig
from raysurr.models import UNet
from raysurr.models.checkpoint import SurrogateSpec, TargetTransform, load_surrogate, save_surrogate
from raysurr.models.fitting import Fit
from raysurr.models.losses import weighted_mae
from raysurr.simulators import Diffusion2D

pytestmark = pytest.mark.timeout(120)


def plume(n: int, seed: int, scale: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Two input channels (a strength map, a position map) on 16 x 16; targets of order `scale`."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(-1, 1, 16)
    xx, yy = np.meshgrid(grid, grid, indexing="ij")
    strength, centre = rng.uniform(0.5, 2.0, n), rng.uniform(-0.5, 0.5, (n, 2))
    blob = np.exp(-((xx - centre[:, :1, None]) ** 2 + (yy - centre[:, 1:, None]) ** 2) / 0.1)
    inputs = np.stack([strength[:, None, None] * np.ones_like(blob), blob], axis=1).astype(np.float32)
    targets = (scale * strength[:, None, None] * blob)[:, None].astype(np.float32)
    return torch.tensor(inputs), torch.tensor(targets)


def train(normalize: str, epochs: int = 60) -> tuple[Fit, TrainingConfig]:
    torch.manual_seed(0)
    settings = TrainingConfig(epochs=epochs, lr=1e-2, batch_size=16, normalize=normalize)
    model = UNet(in_channels=2, base_channels=4, depth=2, dropout=0.0, padding="zeros")
    fit = Fit(model, plume(128, 0), plume(32, 1), settings, torch.Generator().manual_seed(0))
    while not fit.done:
        fit.step()
    return fit, settings


def test_targets_of_order_1e3_train_to_a_model_better_than_predicting_zero(tmp_path):
    test_x, test_y = plume(64, 2)
    errors = {}
    for normalize in ("auto", "none"):
        fit, _ = train(normalize)
        path = save_surrogate(fit.best_network(), SurrogateSpec("unet", {"in_channels": 2, "base_channels": 4,
                              "depth": 2, "dropout": 0.0, "padding": "zeros"}, fit.targets, {}, fit.inputs),
                              tmp_path / normalize)  # fmt: skip
        with torch.no_grad():
            errors[normalize] = float((load_surrogate(path)(test_x) - test_y).abs().mean())
    zero = float(test_y.abs().mean())
    assert errors["auto"] < 0.5 * zero  # skill against the zero field > 0.5 (measured: 0.74)
    assert errors["none"] > zero  # raw targets of order 1e-3: worse than predicting zero (measured: 12x)


def test_scaling_round_trips_through_the_checkpoint(tmp_path):
    fit, _ = train("auto", epochs=1)
    assert fit.targets.scale == pytest.approx((float(plume(128, 0)[1].max()),))
    assert fit.inputs.scale == pytest.approx((2.0, 1.0), rel=0.05)
    spec = SurrogateSpec("unet", {"in_channels": 2, "base_channels": 4, "depth": 2, "dropout": 0.0,
                                  "padding": "zeros"}, fit.targets, {}, fit.inputs)  # fmt: skip
    surrogate = load_surrogate(save_surrogate(fit.best_network(), spec, tmp_path))
    assert surrogate.transform == fit.targets and surrogate.inputs == fit.inputs
    x = plume(4, 3)[0]
    with torch.no_grad():
        by_hand = fit.targets.inverse(fit.best_network().eval()(fit.inputs.forward(x)))
        assert torch.allclose(surrogate(x), by_hand)


def test_diffusion2d_is_already_at_scale_one_so_its_loss_and_metrics_are_unchanged():
    sim = Diffusion2D(grid=24)
    params = sim.sample(16, np.random.default_rng(0))
    inputs, targets = torch.tensor(sim.render(params)), torch.tensor(sim.simulate(params).outputs)
    assert TargetTransform.max_abs(inputs).scale == (1.0,) and TargetTransform.max_abs(targets).scale == (1.0,)
    settings = TrainingConfig(epochs=1, batch_size=8)
    fit = Fit(UNet(base_channels=2, depth=2), (inputs, targets), (inputs, targets), settings, torch.Generator())
    assert torch.equal(fit.train_y, targets) and torch.equal(fit.val_x, inputs)
    pred = torch.rand_like(targets)
    scaled = fit.targets.forward
    assert float(weighted_mae(scaled(pred), scaled(targets))) == float(weighted_mae(pred, targets))


def test_the_relative_weighted_mae_does_not_depend_on_the_target_units():
    y = plume(8, 4, scale=1.0)[1]
    pred = y + 0.01 * torch.randn_like(y)
    by_unit = []
    for unit in (1.0, 1e-3, 250.0):
        t = TargetTransform.max_abs(y * unit)
        by_unit.append(float(weighted_mae(t.forward(pred * unit), t.forward(y * unit))))
    assert by_unit == pytest.approx([by_unit[0]] * 3, rel=1e-5)


def test_normalize_is_checked():
    from raysurr.errors import ConfigError

    with pytest.raises(ConfigError, match="training.normalize must be 'auto' or 'none'"):
        dataclasses.replace(TrainingConfig(), normalize="standard")


def test_skill_against_the_zero_and_the_mean_field_is_one_minus_the_error_ratio(tmp_path):
    """The metrics a checkpoint is evaluated with, on hand-made targets, against the formulas in numpy."""
    from raysurr.config import SimulatorConfig
    from raysurr.distributed.scoring import SampleMetrics, _means

    fit, _ = train("auto", epochs=1)
    spec = SurrogateSpec("unet", {"in_channels": 2, "base_channels": 4, "depth": 2, "dropout": 0.0,
                                  "padding": "zeros"}, fit.targets, {}, fit.inputs, fit.mean_target)  # fmt: skip
    save_surrogate(fit.best_network(), spec, tmp_path)
    x, y = plume(16, 5)
    metrics = SampleMetrics(str(tmp_path), 1.0, 2000.0, SimulatorConfig("diffusion2d"))
    out = metrics({"sample_id": np.arange(16), "input": x.numpy(), "target": y.numpy()})
    means = _means({k: np.asarray(v) for k, v in out.items()})
    with torch.no_grad():
        pred = load_surrogate(tmp_path)(x).numpy()
    s, yn, mean = fit.targets.scale[0], y.numpy(), fit.mean_target.numpy()

    def wmae(p):
        return float(np.mean((1 + 2000 * np.tanh(np.abs(yn) / s)) * np.abs(p - yn)) / s)

    assert np.allclose(mean, plume(128, 0)[1].numpy().mean(0), atol=1e-9)
    assert means["wmae"] == pytest.approx(wmae(pred), rel=1e-4)
    assert means["wmae_skill_zero"] == pytest.approx(1 - wmae(pred) / wmae(np.zeros_like(yn)), rel=1e-4)
    assert means["wmae_skill_mean"] == pytest.approx(1 - wmae(pred) / wmae(np.broadcast_to(mean, yn.shape)), rel=1e-4)
    mae = np.abs(pred - yn).mean()
    assert means["mae_skill_zero"] == pytest.approx(1 - mae / np.abs(yn).mean(), rel=1e-4)
    assert means["mae_skill_mean"] == pytest.approx(1 - mae / np.abs(mean - yn).mean(), rel=1e-4)
    per_sample = np.asarray(out["wmae"])  # the worst case and how uneven the errors are, from the same samples
    assert means["wmae_p95"] == pytest.approx(np.percentile(per_sample, 95))
    assert means["wmae_top10_share"] == pytest.approx(np.sort(per_sample)[-2:].sum() / per_sample.sum())  # 2 of 16


def test_reported_errors_are_on_the_validation_sets_scale_whatever_the_training_sets(tmp_path):
    """The training set grows round by round and its largest target with it; the validation set stays: errors
    reported on its scale compare across rounds, and a checkpoint carries that scale to the evaluation."""
    settings = TrainingConfig(epochs=1, lr=1e-2, batch_size=16)
    val_x, val_y = plume(32, 1)
    val_scale = float(val_y.abs().max())
    model = UNet(in_channels=2, base_channels=4, depth=2, dropout=0.0, padding="zeros")
    for train_scale in (1e-3, 5e-3):  # a training set whose targets are 5x larger: the model's scale changes
        torch.manual_seed(0)
        fit = Fit(model, plume(64, 0, scale=train_scale), (val_x, val_y), settings, torch.Generator().manual_seed(0))
        assert fit.metric.scale == pytest.approx((val_scale,)) and fit.targets.scale != fit.metric.scale
        with torch.no_grad():
            pred = fit.targets.inverse(fit.network.eval()(fit.val_x))  # physical units
        expected = float(weighted_mae(pred / val_scale, val_y / val_scale))
        assert fit.validate() == pytest.approx(expected, rel=1e-5)
        spec = SurrogateSpec("unet", {"in_channels": 2, "base_channels": 4, "depth": 2, "dropout": 0.0,
                                      "padding": "zeros"}, fit.targets, {}, fit.inputs, metric=fit.metric)  # fmt: skip
        loaded = load_surrogate(save_surrogate(fit.network, spec, tmp_path / str(train_scale)))
        assert loaded.metric.scale == pytest.approx((val_scale,)) and loaded.transform.scale == fit.targets.scale
