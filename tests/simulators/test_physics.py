"""The diffusion physics: solvers against each other, exact solutions, convergence, boundary, discs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
from hypothesis import given
from hypothesis import strategies as st

from raysurr.simulators.diffusion2d import SOLVERS, DiffusionOperator, discs

DECAY = 1.0 / 400.0


def random_sources(grid: int, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, size=(count, grid, grid))


@pytest.mark.parametrize("solver", ["exact", "sparse"])
def test_manufactured_solution_is_recovered(solver):
    grid = 40
    op = DiffusionOperator(grid, 1.0, DECAY)
    truth = random_sources(grid, 3, seed=1) - 0.5
    recovered = SOLVERS.get(solver)(op).solve(op.apply(truth))
    assert np.abs(recovered - truth).max() < 1e-10


def test_operator_matrix_matches_stencil():
    op = DiffusionOperator(7, 1.3, 0.2)
    u = random_sources(7, 1)[0]
    assert np.allclose(op.matrix() @ u.ravel(), op.apply(u[None])[0].ravel(), atol=1e-13)


@pytest.mark.parametrize("grid", [32, 100])
def test_solvers_agree_on_normalised_field(grid):
    op = DiffusionOperator(grid, 1.0, DECAY)
    sources = random_sources(grid, 2, seed=grid)
    fields = {name: SOLVERS.get(name)(op).solve(sources) for name in ["exact", "sparse", "transient"]}
    normalised = {name: f / f.max(axis=(1, 2), keepdims=True) for name, f in fields.items()}
    for name in ["sparse", "transient"]:
        assert np.abs(normalised[name] - normalised["exact"]).max() <= 1e-5, name


def test_transient_tolerance_controls_error():
    op = DiffusionOperator(24, 1.0, DECAY)
    sources = random_sources(24, 1)
    exact = SOLVERS.get("exact")(op).solve(sources)
    loose = SOLVERS.get("transient")(op, tol=1e-4).solve(sources)
    tight = SOLVERS.get("transient")(op, tol=1e-10).solve(sources)
    assert np.abs(tight - exact).max() < np.abs(loose - exact).max() / 100


def test_transient_rejects_unstable_step():
    with pytest.raises(ValueError, match="dt must be in"):
        SOLVERS.get("transient")(DiffusionOperator(8, 1.0, DECAY), dt=0.3)


def _continuous_problem(grid: int, c: float = 3.0):
    """-ΔU + cU = F on the unit square, U = e^X sin(πX) sin(πY), on the lattice X = (i + 1) / (N + 1)."""
    h = 1.0 / (grid + 1)
    x = (np.arange(grid) + 1) * h
    xx, yy = np.meshgrid(x, x, indexing="ij")
    f, g = np.exp(xx) * np.sin(np.pi * xx), np.sin(np.pi * yy)
    f2 = np.exp(xx) * ((1 - np.pi**2) * np.sin(np.pi * xx) + 2 * np.pi * np.cos(np.pi * xx))
    forcing = -f2 * g + np.pi**2 * f * g + c * f * g
    # In lattice units (h = 1) the same problem has D = 1, λ = c h², s = h² F.
    op = DiffusionOperator(grid, 1.0, c * h * h)
    return SOLVERS.get("exact")(op).solve(h * h * forcing[None])[0], f * g


def test_second_order_convergence():
    errors = []
    for grid in [15, 31, 63, 127]:
        numeric, truth = _continuous_problem(grid)
        errors.append(np.abs(numeric - truth).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((orders > 1.9) & (orders < 2.1)), orders


def test_field_next_to_edge_tends_to_ghost_value_zero():
    edge = []
    for grid in [15, 31, 63, 127]:
        numeric, _ = _continuous_problem(grid)
        edge.append(max(np.abs(numeric[0]).max(), np.abs(numeric[-1]).max(), np.abs(numeric[:, 0]).max()))
    ratios = np.array(edge[:-1]) / np.array(edge[1:])
    assert np.all(ratios > 1.8), ratios  # first order in h: the edge cell sits one h from the ghost line


def test_boundary_is_absorbing_by_method_of_images():
    """Zero ghosts = the odd reflection of the source across the ghost row, on a lattice twice as tall."""
    grid = 20
    source = random_sources(grid, 1, seed=3)[0]
    tall = np.zeros((2 * grid + 1, grid))  # rows -grid-1 .. grid-1; row -1 is the ghost row; -2-i mirrors i
    tall[grid + 1 :] = source
    tall[:grid] = -source[::-1]
    reflected = _rectangular_solve(tall, DECAY)
    solved = SOLVERS.get("exact")(DiffusionOperator(grid, 1.0, DECAY)).solve(source[None])[0]
    assert np.abs(reflected[grid]).max() < 1e-12  # the ghost row is zero by symmetry
    assert np.abs(reflected[grid + 1 :] - solved).max() < 1e-12


def _rectangular_solve(source: np.ndarray, decay: float) -> np.ndarray:
    """A direct sparse solve on a rows x cols lattice with zero ghosts, independent of the solvers."""
    rows, cols = source.shape

    def second_difference(n: int) -> scipy.sparse.spmatrix:
        return scipy.sparse.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n))

    a = scipy.sparse.kron(second_difference(rows), scipy.sparse.identity(cols))
    a = a + scipy.sparse.kron(scipy.sparse.identity(rows), second_difference(cols))
    a = a + decay * scipy.sparse.identity(rows * cols)
    return scipy.sparse.linalg.spsolve(a.tocsc(), source.ravel()).reshape(rows, cols)


def _disc_by_loops(grid: int, radius: float, row: int, col: int) -> np.ndarray:
    out = np.zeros((grid, grid))
    for i in range(grid):
        for j in range(grid):
            if (i - row) ** 2 + (j - col) ** 2 <= radius**2:
                out[i, j] = 1.0
    return out


@pytest.mark.parametrize(("row", "col"), [(50, 50), (4, 50), (0, 0), (99, 3), (94, 94)])
def test_disc_shape_and_clipping(row, col):
    image = discs(100, 5.0, np.array([row]), np.array([col]))[0]
    assert np.array_equal(image, _disc_by_loops(100, 5.0, row, col))


def test_disc_cell_counts():
    rows, cols = np.array([50, 4, 0]), np.array([50, 50, 0])
    counts = discs(100, 5.0, rows, cols).sum(axis=(1, 2))
    assert counts.tolist() == [81, 80, 26]  # full disc; the study's edge-most centre loses one cell; a quarter


@given(
    grid=st.integers(11, 40),
    radius=st.floats(0.5, 6.0),
    row=st.integers(-3, 45),
    col=st.integers(-3, 45),
)
def test_disc_painting_matches_brute_force(grid, radius, row, col):
    painted = discs(grid, radius, np.array([row]), np.array([col]))[0]
    assert np.array_equal(painted, _disc_by_loops(grid, radius, row, col))
