"""The plain-torch training loop that Ray Train workers and Tune trials share."""

from __future__ import annotations

import io
import itertools
import time

import numpy as np
import pytest
import torch

from raysurr.config import TrainingConfig
from raysurr.models import UNet
from raysurr.models.fitting import Fit


def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 16, 16, generator=g)
    return x, 0.5 * x.roll(1, dims=-1)


def make_fit(settings: TrainingConfig, dropout: float = 0.4, **options) -> Fit:
    torch.manual_seed(0)
    model = UNet(in_channels=1, out_channels=1, base_channels=2, depth=2, dropout=dropout)
    return Fit(model, data(24, 1), data(8, 2), settings, torch.Generator().manual_seed(3), **options)


def test_training_lowers_the_validation_error_and_keeps_the_best_weights():
    run = make_fit(TrainingConfig(epochs=6, lr=1e-2, batch_size=8, patience=None))
    first = run.validate()
    while not run.done:
        run.step()
    assert len(run.history) == 6 and run.best < first
    best_epoch = min(run.history, key=lambda r: r["val_wmae"])
    run.best_network()
    assert run.validate() == pytest.approx(best_epoch["val_wmae"], rel=1e-5)


def test_min_steps_makes_a_small_sets_epochs_cycle_through_it_and_validates_as_often():
    """24 samples at batch 8 are 3 steps an epoch; min_steps 40 over 4 epochs makes each epoch 10 steps (3.3 passes),
    still 4 validations. A large enough set is unchanged."""
    run = make_fit(TrainingConfig(epochs=4, lr=1e-2, batch_size=8, min_steps=40), dropout=0.0)
    calls = []
    original = run.model.forward
    run.model.forward = lambda x: calls.append(run.model.training) or original(x)
    while not run.done:
        run.step()
    assert run.steps == 10 and len(run.history) == 4
    assert sum(calls) == 40  # forwards in training mode: the steps (validation runs in eval mode)
    assert make_fit(TrainingConfig(epochs=4, lr=1e-2, batch_size=8, min_steps=8)).steps == 3


def test_the_history_records_each_epochs_wall_and_cpu_time():
    run = make_fit(TrainingConfig(epochs=2, lr=1e-2, batch_size=8, patience=None))
    assert time.process_time() > 1  # this process's CPU so far (torch's import): not an epoch's
    record = run.step()
    assert 0 < record["train_seconds"] <= record["seconds"]
    assert 0 < record["train_cpu_seconds"] < 0.02 + record["train_seconds"] * torch.get_num_threads()


def test_patience_stops_early():
    run = make_fit(TrainingConfig(epochs=50, lr=1e-9, batch_size=8, patience=2))
    while not run.done:
        run.step()
    assert len(run.history) < 50 and run.stale == 2


def test_a_saved_state_continues_exactly_where_it_stopped():
    settings = TrainingConfig(epochs=4, lr=1e-2, batch_size=8, patience=None)
    straight = make_fit(settings)
    for _ in range(4):
        straight.step()
    first = make_fit(settings)
    for _ in range(2):
        first.step()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = make_fit(settings)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for _ in range(2):
        resumed.step()
    assert [r["val_wmae"] for r in resumed.history] == pytest.approx([r["val_wmae"] for r in straight.history])
    for a, b in zip(resumed.network.state_dict().values(), straight.network.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_cosine_schedule_anneals_within_the_round_and_resumes_where_it_was():
    settings = TrainingConfig(epochs=6, lr=1e-2, batch_size=8, schedule="cosine")
    run = make_fit(settings)
    for _ in range(3):
        run.step()
    state = run.state_dict()
    resumed = make_fit(settings)
    resumed.load_state_dict(state)
    while not run.done:
        run.step()
        resumed.step()
    lrs = [r["lr"] for r in run.history]
    assert lrs[0] == pytest.approx(1e-2) and all(a > b for a, b in itertools.pairwise(lrs))
    assert lrs[-1] < 0.1 * lrs[0]
    assert [r["lr"] for r in resumed.history] == lrs  # the schedule is part of a trial's checkpoint


def test_early_stopping_restores_the_best_epoch_not_the_last():
    run = make_fit(TrainingConfig(epochs=30, lr=1e-2, batch_size=8, patience=2))
    for _ in range(4):
        run.step()
    for group in run.optimizer.param_groups:  # from here on every step makes the model worse
        group["lr"] = 5.0
    while not run.done:
        run.step()
    errors = [r["val_wmae"] for r in run.history]
    assert len(errors) < 30 and min(errors) < errors[-1]
    run.best_network()
    assert run.validate() == pytest.approx(min(errors), rel=1e-5)


def test_a_time_budget_sets_the_epochs_and_the_cosine_follows_it():
    run = make_fit(TrainingConfig(epochs=1000, lr=1e-2, batch_size=8, schedule="cosine", budget_s=1e-9))
    run.step()
    assert run.planned == 1 and run.done
    timed = make_fit(TrainingConfig(epochs=1000, lr=1e-2, batch_size=8, schedule="cosine", budget_s=60))
    timed.step()
    timed.plan(elapsed_s=20.0, epoch_s=14.0)  # a slow first epoch: 40 s left holds 2 more at 14 s
    assert timed.planned == 3
    timed.plan(elapsed_s=20.0, epoch_s=10.0)  # re-planned on the faster epoch: 4 more
    assert timed.planned == 5
    while not timed.done:
        timed.step()
        timed.plan(elapsed_s=20.0 + 10.0 * (len(timed.history) - 1), epoch_s=10.0)
    lrs = [r["lr"] for r in timed.history]
    assert len(lrs) == 5 and lrs[-1] == pytest.approx(1e-2 * timed._cosine(4))
    assert all(a > b for a, b in itertools.pairwise(lrs))  # annealed over the 5 planned epochs


def test_a_warm_start_fine_tunes_at_the_old_scale_and_keeps_the_old_weights_if_nothing_beats_them():
    from raysurr.models.checkpoint import TargetTransform

    scales = (TargetTransform((), (2.0,)), TargetTransform((), (0.25,)))
    run = make_fit(TrainingConfig(epochs=3, lr=1e-9, batch_size=8))
    start = {k: v.clone() for k, v in run.network.state_dict().items()}
    torch.manual_seed(0)
    warm = Fit(UNet(in_channels=1, out_channels=1, base_channels=2, depth=2), data(24, 1), data(8, 2),
               TrainingConfig(epochs=3, lr=10.0, batch_size=8), torch.Generator().manual_seed(3),
               warm_start=scales)  # fmt: skip
    assert (warm.inputs, warm.targets) == scales  # not recomputed from this round's data
    initial = warm.best
    while not warm.done:
        warm.step()
    assert min(r["val_wmae"] for r in warm.history) > initial  # lr 10 only made it worse ...
    for name, value in warm.best_network().state_dict().items():  # ... so the starting weights are kept
        torch.testing.assert_close(value, start[name])


def test_a_warm_start_trains_at_a_fraction_of_the_learning_rate():
    from raysurr.models.checkpoint import TargetTransform

    settings = TrainingConfig(epochs=2, lr=1e-2, batch_size=8, schedule="cosine", finetune_lr_factor=0.25)
    cold = make_fit(settings)
    warm = Fit(UNet(in_channels=1, out_channels=1, base_channels=2, depth=2), data(24, 1), data(8, 2), settings,
               torch.Generator().manual_seed(3), warm_start=(TargetTransform(), TargetTransform()))  # fmt: skip
    for run in (cold, warm):
        while not run.done:
            run.step()
    assert [r["lr"] for r in warm.history] == pytest.approx([0.25 * r["lr"] for r in cold.history])
    assert cold.history[0]["lr"] == pytest.approx(1e-2)


def test_the_history_records_the_dropout_gap():
    run = make_fit(TrainingConfig(epochs=1, lr=1e-2, batch_size=8))
    record = run.step()
    assert record["val_wmae_dropout"] > 0 and record["val_wmae_dropout"] != record["val_wmae"]
    torch.manual_seed(0)
    plain = Fit(UNet(base_channels=2, depth=2, dropout=0.0), data(24, 1), data(8, 2), TrainingConfig(epochs=1),
                torch.Generator().manual_seed(3))  # fmt: skip
    assert "val_wmae_dropout" not in plain.step()


def test_every_fit_of_a_spec_starts_from_the_same_weights_and_a_stream_only_changes_the_shuffling():
    from raysurr.config import ModelConfig
    from raysurr.models.fitting import FitSpec

    model = ModelConfig.from_dict({"name": "unet", "base_channels": 2, "depth": 2})
    spec = FitSpec.of(model, (1, 1), TrainingConfig(epochs=1, batch_size=8), seed=5)
    first, _ = spec.start(data(24, 1), data(8, 2), torch.device("cpu"))
    other, _ = spec.start(data(12, 1), data(8, 2), torch.device("cpu"), stream=12)
    for a, b in zip(first.model.parameters(), other.model.parameters(), strict=True):
        assert torch.equal(a, b)
    orders = [torch.randperm(24, generator=run.order) for run in (first, other)]
    assert not torch.equal(*orders)


@pytest.mark.parametrize("options", [{"name": "unet", "base_channels": 2, "depth": 2, "dropout": 0.0},
                                     {"name": "fno", "base_channels": 4, "depth": 1, "modes": 2}])  # fmt: skip
def test_a_compiled_spec_trains_the_same_function_and_checkpoints_the_bare_network(options):
    from raysurr.config import ModelConfig
    from raysurr.models.fitting import FitSpec

    model = ModelConfig.from_dict(options)  # fno: its spectral layers stay eager (inductor has no complex kernels)
    settings = TrainingConfig(epochs=3, lr=1e-2, batch_size=8, compile=True)
    run, _ = FitSpec.of(model, (1, 1), settings, seed=5).start(data(24, 1), data(8, 2), torch.device("cpu"))
    assert run.model is not run.network and "_orig_mod" not in "".join(run.network.state_dict())
    x = data(4, 7)[0]
    torch.testing.assert_close(run.model(x), run.network(x), rtol=1e-4, atol=1e-5)  # compiled against eager
    first = run.validate()
    while not run.done:
        run.step()
    assert run.best < first
    torch.testing.assert_close(run.model(x), run.network(x), rtol=1e-4, atol=1e-5)  # one set of weights


def test_a_warm_started_spec_fine_tunes_the_checkpoints_weights_at_its_scaling(tmp_path):
    from raysurr.config import ModelConfig
    from raysurr.models.checkpoint import SurrogateSpec, checkpoint_bytes, save_surrogate
    from raysurr.models.fitting import FitSpec

    model = ModelConfig.from_dict({"name": "unet", "base_channels": 2, "depth": 2})
    cold = FitSpec.of(model, (1, 1), TrainingConfig(epochs=1, batch_size=8), seed=5)
    trained, spec = cold.start(data(24, 1), data(8, 2), torch.device("cpu"))
    trained.step()
    spec = SurrogateSpec(spec.name, spec.init, trained.targets, {}, trained.inputs, trained.mean_target)
    save_surrogate(trained.best_network(), spec, tmp_path)
    warm = FitSpec.of(model, (1, 1), TrainingConfig(epochs=1, batch_size=8), seed=6,
                      warm_start=checkpoint_bytes(tmp_path))  # fmt: skip
    run, warm_spec = warm.start(data(24, 3), data(8, 2), torch.device("cpu"))
    for a, b in zip(run.model.parameters(), trained.best_network().parameters(), strict=True):
        assert torch.equal(a, b)
    assert warm_spec.transform == trained.targets and run.targets is warm_spec.transform


def numpy_weighted_mae(pred, target, w, w2) -> float:
    pred, target = pred.double().numpy(), target.double().numpy()
    return float(((1 + w2 * np.tanh(w * np.abs(target))) * np.abs(pred - target)).mean())


def test_the_loss_weights_reach_training_and_validation():
    """loss_w and loss_w2 as configured, not their defaults: the epoch's training loss (one batch, a learning
    rate too small to move the weights) and the validation error equal the formula in numpy."""
    settings = TrainingConfig(epochs=1, lr=1e-12, batch_size=24, loss_w=3.0, loss_w2=7.0, normalize="none")
    run = make_fit(settings, dropout=0.0)  # training-mode forward = eval-mode forward
    with torch.no_grad():
        before_train, before_val = run.network.eval()(run.train_x), run.network.eval()(run.val_x)
    record = run.step()
    assert record["train_loss"] == pytest.approx(numpy_weighted_mae(before_train, run.train_y, 3.0, 7.0), rel=1e-4)
    assert record["val_wmae"] == pytest.approx(numpy_weighted_mae(before_val, run.val_y, 3.0, 7.0), rel=1e-4)
    assert record["val_wmae"] != pytest.approx(numpy_weighted_mae(before_val, run.val_y, 1.0, 2000.0), rel=1e-2)


def test_the_physics_term_adds_its_weighted_residual_on_unlabelled_inputs_to_the_loss():
    """One batch, a learning rate too small to move the weights: the epoch's loss is the weighted MAE of the
    labelled batch plus weight * mean(residual(x, f(x))^2) over a batch of the unlabelled inputs, in data units."""
    from raysurr.errors import ConfigError
    from raysurr.simulators import Diffusion2D

    sim = Diffusion2D(grid=16)
    free = torch.tensor(sim.render(sim.sample(40, np.random.default_rng(0))))
    settings = TrainingConfig(epochs=1, lr=1e-12, batch_size=24, physics_weight=0.5)
    with pytest.raises(ConfigError, match="training.physics_weight > 0 needs unlabelled inputs"):
        make_fit(settings)
    run = make_fit(settings, dropout=0.0, physics=(free, sim.residual))
    state = torch.Generator().manual_seed(3)
    torch.randperm(24, generator=state)  # the shuffle of the epoch, then the draw of unlabelled inputs
    drawn = free[torch.randint(40, (24,), generator=state)]
    with torch.no_grad():
        net = run.network.eval()
        data_loss = numpy_weighted_mae(net(run.train_x), run.train_y, 1.0, 2000.0)
        prediction = run.targets.inverse(net(run.inputs.forward(drawn)))
        physics = float(sim.residual(drawn, prediction).pow(2).mean())
    assert physics > 1e-3  # an untrained network is far from the equations
    record = run.step()
    assert record["train_loss"] == pytest.approx(data_loss + 0.5 * physics, rel=1e-4)
    assert record["train_residual"] == pytest.approx(physics, rel=1e-4)  # in the history, unweighted


ALL = ("flip_rows", "flip_cols", "transpose")


def test_fit_knows_every_symmetry_a_simulator_may_declare():
    from raysurr.models.fitting import TRANSFORMS
    from raysurr.simulators import SYMMETRIES

    assert set(TRANSFORMS) == set(SYMMETRIES)


def test_augmentation_transforms_input_and_target_of_each_sample_alike():
    """Each sample comes back as one of the 8 combinations of the symmetries, the same for its input and its
    target; over 256 samples every combination shows up."""
    run = make_fit(TrainingConfig(epochs=1), symmetries=ALL)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, 2, 6, 6, generator=g), torch.rand(256, 1, 6, 6, generator=g)
    out_x, out_y = run.augment(x, y)

    def combine(t, rows, cols, swap):
        t = t.flip(-2) if rows else t
        t = t.flip(-1) if cols else t
        return t.transpose(-2, -1) if swap else t

    seen = set()
    for i in range(256):
        [which] = [c for c in itertools.product([0, 1], repeat=3) if torch.equal(out_x[i], combine(x[i], *c))]
        assert torch.equal(out_y[i], combine(y[i], *which))
        seen.add(which)
    assert len(seen) == 8


@pytest.mark.parametrize(("augment", "symmetries"), [("none", ALL), ("auto", ())])
def test_no_augmentation_without_symmetries_or_with_augment_none(augment, symmetries):
    run = make_fit(TrainingConfig(epochs=1, augment=augment), symmetries=symmetries)
    x, y = data(16, 0)
    out_x, out_y = run.augment(x, y)
    assert run.symmetries == () and torch.equal(out_x, x) and torch.equal(out_y, y)


class Recorder(torch.nn.Module):
    """The network, recording every batch it sees in training mode."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.seen = net, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.detach().clone())
        return self.net(x)


def test_training_steps_see_mirrored_samples_and_validation_the_data_as_it_is():
    torch.manual_seed(0)
    model = Recorder(UNet(in_channels=1, out_channels=1, base_channels=2, depth=2))
    train, val = data(24, 1), data(8, 2)
    run = Fit(model, train, val, TrainingConfig(epochs=1, batch_size=8, normalize="none"),
              torch.Generator().manual_seed(3), symmetries=("flip_cols",))  # fmt: skip
    run.step()
    seen = torch.cat(model.seen)
    assert len(seen) == 24 and len(model.seen) == 3  # only the training batches

    def match(sample, pool):
        return any(torch.equal(sample, other) for other in pool)

    mirrored = [match(s, train[0].flip(-1)) for s in seen]
    assert all(m or match(s, train[0]) for m, s in zip(mirrored, seen, strict=True))
    assert 0 < sum(mirrored) < 24


def test_a_saved_state_continues_exactly_with_augmentation():
    settings = TrainingConfig(epochs=3, lr=1e-2, batch_size=8)
    straight = make_fit(settings, symmetries=ALL)
    for _ in range(3):
        straight.step()
    first = make_fit(settings, symmetries=ALL)
    first.step()
    resumed = make_fit(settings, symmetries=ALL)
    resumed.load_state_dict(first.state_dict())
    for _ in range(2):
        resumed.step()
    # The same draws of the symmetries (a different one moves the loss by percents); float sums over fresh
    # tensors can differ in the last bits with their alignment in memory.
    expected = [r["val_wmae"] for r in straight.history]
    assert [r["val_wmae"] for r in resumed.history] == pytest.approx(expected, rel=1e-5)
    plain = make_fit(settings)
    for _ in range(3):
        plain.step()
    assert [r["train_loss"] for r in plain.history] != pytest.approx([r["train_loss"] for r in straight.history])
