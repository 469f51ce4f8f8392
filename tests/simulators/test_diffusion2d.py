"""The diffusion2d simulator: sampling as the study drew, sources, targets, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from raysurr.config import SimulatorConfig
from raysurr.errors import ConfigError, ParameterError, RegistryError, SimulationError
from raysurr.seeding import generator
from raysurr.simulators import Diffusion2D, build_simulator, run_simulation


def test_centres_are_drawn_like_the_study():
    sim = Diffusion2D()
    params = sim.sample(20000, np.random.default_rng(0))
    centres = params[:, [0, 1, 3, 4]]
    assert centres.min() == 4 and centres.max() == 94  # 1-based 5..95
    assert np.array_equal(centres, np.round(centres))
    assert params[:, 2].min() >= 0.0 and params[:, 2].max() < 1.0
    assert np.all(params[:, 5] == 1.0)


def test_centre_margin_scales_with_radius():
    sim = Diffusion2D(grid=40, radius=3)
    assert sim.centre_range == (2, 36)


def test_sources_are_normalised_and_fluxes_add():
    sim = Diffusion2D(grid=32)
    params = np.array([[10, 10, 0.25, 20, 20, 1.0], [10, 10, 0.5, 12, 10, 1.0]])
    s = sim.sources(params)
    assert np.allclose(s.max(axis=(1, 2)), 1.0)
    assert s[0, 10, 10] == pytest.approx(0.25)  # disc 1 alone, relative to disc 2's flux
    assert s[1, 11, 10] == pytest.approx(1.0)  # overlap: (0.5 + 1) / 1.5
    assert s[1, 10, 5] == pytest.approx(0.5 / 1.5)  # disc 1 only
    assert s.min() == 0.0


def test_targets_are_normalised_fields_with_their_maximum():
    sim = Diffusion2D(grid=48)
    params = sim.sample(5, np.random.default_rng(1))
    result = run_simulation(sim, params, list(range(5)))
    assert result.outputs.shape == (5, 1, 48, 48) and result.outputs.dtype == np.float32
    assert np.allclose(result.outputs.max(axis=(1, 2, 3)), 1.0)
    assert np.all(result.outputs > 0)  # the decaying field reaches every interior cell


def test_study_scale_field_maximum():
    sim = Diffusion2D()
    peaks = sim.simulate(sim.sample(200, np.random.default_rng(2))).extras["target_max"]
    assert peaks.min() > 10 and peaks.max() < 40  # the study: between ~11 and ~37


def test_same_seed_same_samples_and_labels():
    sim = Diffusion2D(grid=32)
    a = sim.sample(8, generator(5, "pool"))
    b = sim.sample(8, generator(5, "pool"))
    c = sim.sample(8, generator(6, "pool"))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(sim.simulate(a).outputs, sim.simulate(b).outputs)


GRID_TRANSFORMS = {
    "flip_rows": lambda a: a[..., ::-1, :],
    "flip_cols": lambda a: a[..., ::-1],
    "transpose": lambda a: np.swapaxes(a, -1, -2),
}


def transformed_parameters(params: np.ndarray, name: str, last: int) -> np.ndarray:
    """The parameter sets whose sources are `params`' sources mirrored (or transposed) by `name`."""
    other = params.copy()
    if name == "transpose":
        other[:, [0, 1, 3, 4]] = params[:, [1, 0, 4, 3]]
    else:
        centres = [0, 3] if name == "flip_rows" else [1, 4]
        other[:, centres] = last - params[:, centres]
    return other


@pytest.mark.parametrize("solver", ["exact", "sparse"])
def test_the_declared_symmetries_hold(solver):
    """Mirroring or transposing the sources mirrors or transposes the field: what `training.augment: auto`
    relies on when it trains on transformed labels."""
    sim = Diffusion2D(grid=24, radius=3, solver=solver)
    params = sim.sample(6, np.random.default_rng(4))
    inputs, outputs = sim.render(params), sim.simulate(params).outputs
    assert sorted(sim.symmetries) == sorted(GRID_TRANSFORMS)
    for name in sim.symmetries:
        other, transform = transformed_parameters(params, name, sim.grid - 1), GRID_TRANSFORMS[name]
        np.testing.assert_array_equal(sim.render(other), transform(inputs))
        np.testing.assert_allclose(sim.simulate(other).outputs, transform(outputs), rtol=1e-5, atol=1e-6)
        assert not np.allclose(transform(outputs), outputs)  # a real change of the field


def test_embedding_has_the_studys_seven_numbers():
    sim = Diffusion2D()
    emb = sim.embed(np.array([[0, 0, 0.5, 99, 99, 1.0]]))
    assert emb.shape == (1, 7)
    assert emb[0, 0] == pytest.approx(1.0)  # opposite corners: the largest distance
    assert emb[0, 1:].tolist() == pytest.approx([0, 0, 1, 1, 0.5, 1.0])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([100, 10, 0.5, 20, 20, 1.0], r"row1=100 is not allowed; row1: integer in \[0, 99\]"),
        ([10, -1, 0.5, 20, 20, 1.0], r"col1=-1 is not allowed"),
        ([10, 10, -0.1, 20, 20, 1.0], r"flux1=-0.1 is not allowed; flux1: number in \[0.0, 1.0\]"),
        ([10, 10.5, 0.5, 20, 20, 1.0], r"col1=10.5 is not allowed; col1: integer"),
        ([10, 10, 0.0, 20, 20, 0.0], "every flux is 0"),
        ([10, 10, np.nan, 20, 20, 1.0], "flux1=nan"),
    ],
)
def test_bad_parameters_name_the_value_and_the_range(params, message):
    with pytest.raises(ParameterError, match=message):
        run_simulation(Diffusion2D(), np.array([params]), [0])


def test_wrong_parameter_shape():
    with pytest.raises(ParameterError, match=r"shape \[n, 6\] \(row1, col1, flux1, row2, col2, flux2\)"):
        Diffusion2D().check_parameters(np.zeros((2, 5)))


def test_grid_smaller_than_a_disc():
    with pytest.raises(ParameterError, match="grid=10 is smaller than a source disc; use grid >= 11"):
        Diffusion2D(grid=10)


def test_unknown_solver_lists_the_known_ones():
    with pytest.raises(
        RegistryError, match="unknown diffusion2d solver 'multigrid'; registered: exact, sparse, transient"
    ):
        build_simulator(SimulatorConfig(options={"solver": "multigrid"}))


def test_unknown_simulator_and_option():
    with pytest.raises(RegistryError, match=r"unknown simulator 'heat'; registered: .*diffusion2d"):
        build_simulator(SimulatorConfig(name="heat"))
    with pytest.raises(ConfigError, match="unknown option 'grdi'; allowed: grid, diffusivity"):
        build_simulator(SimulatorConfig(options={"grdi": 64}))


def test_non_finite_output_names_the_sample():
    class Broken(Diffusion2D):
        def simulate(self, params):
            result = super().simulate(params)
            result.outputs[1, 0, 3, 3] = np.inf
            return result

    sim = Broken(grid=16)
    with pytest.raises(SimulationError, match=r"non-finite output for sample\(s\) \[42\]") as info:
        run_simulation(sim, sim.sample(3, np.random.default_rng(0)), [41, 42, 43])
    assert info.value.sample_ids == (42,)


def test_solver_options_the_solver_does_not_take_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"solver_options \(solver 'exact'\): unknown option 'dt'; allowed: \(none\)"):
        build_simulator(SimulatorConfig(options={"solver": "exact", "solver_options": {"dt": 0.2}}))
    with pytest.raises(ConfigError, match="unknown option 'dtt'; allowed: dt, tol, max_steps"):
        build_simulator(SimulatorConfig(options={"solver": "transient", "solver_options": {"dtt": 0.2}}))


@pytest.mark.parametrize(("grid", "solver"), [(100, "exact"), (33, "exact"), (24, "transient")])
def test_residual_is_zero_on_its_own_labels(grid, solver):
    """On labels max-normalised by maxima of 11 to 37 (at N = 100), to the float32 they are stored in."""
    import torch

    sim = Diffusion2D(grid=grid, solver=solver)
    params = sim.sample(6, np.random.default_rng(grid))
    x, y = torch.tensor(sim.render(params)), torch.tensor(sim.simulate(params).outputs)
    assert sim.residual(x, y).shape == y.shape
    assert sim.residual(x, y).abs().max() < 1e-4  # the source it is measured against has maximum 1


def test_residual_is_the_5_point_operator_rescaled_to_the_source_and_grows_with_an_error():
    import torch

    from raysurr.simulators.diffusion2d.physics import DiffusionOperator

    sim = Diffusion2D(grid=40)
    params = sim.sample(3, np.random.default_rng(0))
    x, y = torch.tensor(sim.render(params), dtype=torch.float64), torch.tensor(sim.simulate(params).outputs)
    wrong = y.double() + 0.01 * torch.rand(y.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    applied = DiffusionOperator(40, 1.0, 1 / 400).apply(wrong[:, 0].numpy())  # numpy, the solvers' own stencil
    s = x[:, 0].numpy()
    scale = (applied * s).sum(axis=(1, 2)) / (s * s).sum(axis=(1, 2))
    np.testing.assert_allclose(sim.residual(x, wrong)[:, 0].numpy(), applied / scale[:, None, None] - s, atol=1e-10)
    np.testing.assert_allclose(sim.residual(x, 7 * wrong).numpy(), sim.residual(x, wrong).numpy(), atol=1e-10)
    sizes = [float(sim.residual(x, y + e * (wrong - y)).pow(2).mean()) for e in (0.0, 0.5, 1.0, 2.0)]
    assert sizes[0] < 1e-9 < sizes[1] < sizes[2] < sizes[3]  # zero on the label, then growing with the error
    assert sim.residual(x, torch.zeros_like(x)).abs().max() == 1.0  # predicting nothing is not physical either
    field = wrong.clone().requires_grad_()
    sim.residual(x, field).pow(2).mean().backward()
    assert field.grad is not None and field.grad.abs().sum() > 0  # differentiable, for a physics-informed loss


VARIANTS = [{"sources": [1, 4]}, {"decay_length": [0.5, 64]}, {"sources": [1, 4], "decay_length": [1, 64]},
            {"sources": 3}]  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_stays_exact_against_the_sparse_solver_and_its_residual(variant):
    """The exact DST solver with a per-sample decay (a per-sample diagonal) against an LU factorisation of A per
    sample; its labels have zero residual, and its symmetries still hold."""
    import torch

    exact, sparse = Diffusion2D(grid=24, **variant), Diffusion2D(grid=24, solver="sparse", **variant)
    params = exact.check_parameters(exact.sample(8, np.random.default_rng(1)))
    a, b = exact.simulate(params), sparse.simulate(params)
    np.testing.assert_allclose(a.outputs, b.outputs, atol=1e-6)
    np.testing.assert_allclose(a.extras["target_max"], b.extras["target_max"], rtol=1e-9)
    x, y = torch.tensor(exact.render(params)), torch.tensor(a.outputs)
    assert x.shape == (8, *exact.input_shape) and exact.residual(x, y).abs().max() < 1e-4
    assert exact.embed(params).shape[0] == 8 and np.isfinite(exact.embed(params)).all()
    flipped = x.flip(-1), y.flip(-1)  # the decay channel is constant: mirroring still maps labels to labels
    assert exact.residual(*flipped).abs().max() < 1e-4


def test_sources_vary_in_count_with_independent_fluxes():
    sim = Diffusion2D(grid=32, sources=[1, 4])
    assert sim.parameter_names[:3] == ("row1", "col1", "flux1") and len(sim.parameters) == 12
    params = sim.sample(4000, np.random.default_rng(0))
    counts = (params[:, 2::3] > 0).sum(axis=1)
    assert sorted(np.unique(counts).tolist()) == [1, 2, 3, 4] and abs(np.bincount(counts)[1:].mean() - 1000) < 100
    assert stats.kstest(params[:, 2], "uniform").pvalue > 0.001  # every used flux ~ U(0, 1), flux1 included
    images = sim.sources(params[:50])
    assert np.allclose(images.max(axis=(1, 2)), 1.0)
    assert Diffusion2D(grid=32, sources=2).parameter_names == Diffusion2D(grid=32).parameter_names  # the study's
    assert np.all(Diffusion2D(grid=32).sample(100, np.random.default_rng(0))[:, 5] == 1.0)  # flux2 = 1 there


def test_decay_lengths_are_log_uniform_and_reach_the_network_as_a_channel():
    import torch

    sim = Diffusion2D(grid=32, decay_length=[0.5, 64])
    params = sim.sample(4000, np.random.default_rng(0))
    lengths = params[:, -1]
    assert sim.parameter_names[-1] == "decay_length" and lengths.min() >= 0.5 and lengths.max() <= 64
    assert stats.kstest((np.log(lengths) - np.log(0.5)) / np.log(128), "uniform").pvalue > 0.001
    x = sim.render(params[:3])
    assert x.shape == (3, 2, 32, 32) and np.ptp(x[:, 1], axis=(1, 2)).max() == 0  # constant over the grid
    np.testing.assert_allclose(x[:, 1, 0, 0], np.log(lengths[:3] / 0.5) / np.log(128), rtol=1e-6)
    short, long = (sim.simulate(np.array([[15, 15, 1.0, 0, 0, 0.0, length]])).outputs for length in (0.5, 64.0))
    assert short[0, 0, 15, 25] < 1e-3 < long[0, 0, 15, 25]  # a short decay length confines the field
    decays = torch.tensor(sim.render(params[:2]))
    assert torch.allclose(sim._decay_of(decays).flatten().double(), torch.tensor(1.0 / lengths[:2] ** 2), rtol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sources": [3, 1]}, r"sources must be a count or \[low, high\] with 1 <= low <= high <= 8, got \[3, 1\]"),
        ({"sources": 9}, "sources must be a count"),
        ({"decay_length": [5, 1]}, r"decay_length must be \[low, high\] cells with 0 < low < high, got \[5, 1\]"),
        ({"decay_length": [0.5, 64], "decay": 0.1}, "takes decay .* or decay_length .*, not both"),
        ({"decay_length": [0.5, 64], "solver": "transient"}, r"dt must be in \(0, 0.1667\)"),
    ],
)
def test_bad_variant_options_are_one_line_errors(options, message):
    with pytest.raises((ParameterError, ConfigError, ValueError), match=message):
        build_simulator(SimulatorConfig(options={"grid": 24, **options}))


def test_the_transient_solver_follows_each_samples_decay():
    variant = {"grid": 20, "radius": 2, "decay_length": [2, 40]}
    transient, exact = Diffusion2D(solver="transient", **variant), Diffusion2D(**variant)
    params = exact.sample(3, np.random.default_rng(5))
    np.testing.assert_allclose(transient.simulate(params).outputs, exact.simulate(params).outputs, atol=1e-5)


def test_every_flux_zero_is_refused_for_any_count():
    with pytest.raises(ParameterError, match="every flux is 0"):
        Diffusion2D(grid=24, sources=[1, 3]).check_parameters(np.array([[5, 5, 0, 6, 6, 0, 7, 7, 0]], dtype=float))
