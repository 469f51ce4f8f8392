"""Steady diffusion with decay on an N x N lattice, h = 1. Pure numpy/scipy.

The steady state of du/dt = D Δu - λ u + s with u = 0 on the ghost cells just outside the
lattice solves A u = s, A = D (T⊗I + I⊗T) + λ I, T = tridiag(-1, 2, -1). Three solvers:

- `exact`: the type-I discrete sine transform diagonalises A; applied as dense matrix products
  (N + 1 is prime at N = 100, where that beats an FFT).
- `transient`: explicit time stepping from u0 = s until |du/dt| is negligible (the study's oracle).
- `sparse`: a sparse LU factorisation of A, made once per solver.
"""

from __future__ import annotations

import abc

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from raysurr.registry import Registry


class DiffusionOperator:
    """A = D (T⊗I + I⊗T) + λ I on an N x N lattice with zero ghost cells.

    Example:
        >>> op = DiffusionOperator(grid=3, diffusivity=1.0, decay=0.0)
        >>> op.apply(np.ones((1, 3, 3)))[0]
        array([[2., 1., 2.],
               [1., 0., 1.],
               [2., 1., 2.]])
    """

    def __init__(self, grid: int, diffusivity: float, decay: float) -> None:
        self.grid, self.diffusivity, self.decay = grid, diffusivity, decay

    def apply(self, u: np.ndarray, decays: np.ndarray | None = None) -> np.ndarray:
        """A u for a batch: [b, N, N] -> [b, N, N] float64; `decays`: [b] per-sample λ instead of the operator's."""
        u = np.asarray(u, dtype=np.float64)
        padded = np.pad(u, ((0, 0), (1, 1), (1, 1)))  # the absorbing ghost cells
        neighbours = padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
        return self.diffusivity * (4.0 * u - neighbours) + self.decays(len(u), decays)[:, None, None] * u

    def decays(self, count: int, decays: np.ndarray | None = None) -> np.ndarray:
        """[count] float64: the per-sample λ given, or the operator's own for every sample."""
        if decays is None:
            return np.full(count, self.decay)
        decays = np.asarray(decays, dtype=np.float64)
        if decays.shape != (count,):
            raise ValueError(f"decays must have shape [{count}], got {list(decays.shape)}")
        return decays

    def matrix(self, decay: float | None = None) -> scipy.sparse.csc_matrix:
        """A as a sparse [N², N²] matrix in row-major cell order (with λ = `decay` if given)."""
        n = self.grid
        t = scipy.sparse.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n))
        eye = scipy.sparse.identity(n)
        laplacian = scipy.sparse.kron(t, eye) + scipy.sparse.kron(eye, t)
        decay = self.decay if decay is None else decay
        return (self.diffusivity * laplacian + decay * scipy.sparse.identity(n * n)).tocsc()


class AbstractSolver(abc.ABC):
    """Solves A u = s for a batch of sources."""

    def __init__(self, operator: DiffusionOperator) -> None:
        self.operator = operator

    @abc.abstractmethod
    def solve(self, sources: np.ndarray, decays: np.ndarray | None = None) -> np.ndarray:
        """sources: [b, N, N] -> steady fields u: [b, N, N] float64. `decays`: [b] each sample's λ (default: the
        operator's for all)."""


SOLVERS: Registry[AbstractSolver] = Registry("diffusion2d solver")


@SOLVERS.register("exact")
class ExactSolver(AbstractSolver):
    """Exact DST-I diagonalisation as dense matrix products; ~0.2 ms per 100x100 field on one core.

    A's eigenvalues are D (μk + μl) + λ: a per-sample λ changes only the diagonal it divides by.
    """

    def __init__(self, operator: DiffusionOperator) -> None:
        super().__init__(operator)
        n = operator.grid
        k = np.arange(1, n + 1)
        # Orthonormal and symmetric: S @ S = I.
        self.sine = np.sqrt(2.0 / (n + 1)) * np.sin(np.pi * np.outer(k, k) / (n + 1))
        mu = 2.0 - 2.0 * np.cos(k * np.pi / (n + 1))
        self.eigenvalues = operator.diffusivity * (mu[:, None] + mu[None, :])  # without λ

    block = 16  # samples per product: larger stacks fall out of cache and run ~2x slower per sample

    def solve(self, sources: np.ndarray, decays: np.ndarray | None = None) -> np.ndarray:
        sources = np.asarray(sources, dtype=np.float64)
        decays = self.operator.decays(len(sources), decays)
        s, out = self.sine, np.empty_like(sources)
        for start in range(0, len(sources), self.block):
            part = slice(start, start + self.block)
            inverse = 1.0 / (self.eigenvalues[None] + decays[part, None, None])
            out[part] = s @ ((s @ sources[part] @ s) * inverse) @ s
        return out


@SOLVERS.register("sparse")
class SparseLUSolver(AbstractSolver):
    """Sparse LU factorisation of A, made once per λ (the last few kept); a cross-check of the others."""

    keep = 8  # factorisations kept: a per-sample λ needs one each

    def __init__(self, operator: DiffusionOperator) -> None:
        super().__init__(operator)
        self.factors: dict[float, scipy.sparse.linalg.SuperLU] = {}

    def factor(self, decay: float) -> scipy.sparse.linalg.SuperLU:
        if decay not in self.factors:
            if len(self.factors) >= self.keep:
                self.factors.pop(next(iter(self.factors)))
            self.factors[decay] = scipy.sparse.linalg.splu(self.operator.matrix(decay))
        return self.factors[decay]

    def solve(self, sources: np.ndarray, decays: np.ndarray | None = None) -> np.ndarray:
        sources = np.asarray(sources, dtype=np.float64)
        b, n = sources.shape[0], self.operator.grid
        decays = self.operator.decays(b, decays)
        out = np.empty_like(sources)
        for decay in np.unique(decays):
            same = decays == decay
            out[same] = self.factor(float(decay)).solve(sources[same].reshape(-1, n * n).T).T.reshape(-1, n, n)
        return out


@SOLVERS.register("transient")
class TransientSolver(AbstractSolver):
    """Explicit time stepping from u0 = s to steady state: the study's expensive oracle.

    Steps with forward Euler at `dt` (stable for dt < 2 / (8 D + λ)) until the largest rate of
    change, relative to the field's maximum, falls under `tol` per unit time. The remaining error
    is about tol / λ_min relative, λ_min ≈ 2 D (π / (N+1))² + λ: tol = 1e-9 gives ~3e-7 at N = 100.
    """

    def __init__(
        self, operator: DiffusionOperator, dt: float = 0.2, tol: float = 1e-9, max_steps: int = 2_000_000
    ) -> None:
        super().__init__(operator)
        limit = 2.0 / (8.0 * operator.diffusivity + operator.decay)
        if not 0 < dt < limit:
            raise ValueError(f"transient solver: dt must be in (0, {limit:.4g}) for stability, got {dt}")
        self.dt, self.tol, self.max_steps = dt, tol, max_steps
        self.steps_taken = 0
        self._check_every = 50

    def solve(self, sources: np.ndarray, decays: np.ndarray | None = None) -> np.ndarray:
        # One sample at a time: each converges at its own pace, and one field stays in cache.
        sources = np.asarray(sources, dtype=np.float64)
        decays = self.operator.decays(len(sources), decays)
        return np.stack([self._solve_one(s[None], float(decay))[0] for s, decay in zip(sources, decays, strict=True)])

    def _solve_one(self, sources: np.ndarray, decay: float) -> np.ndarray:
        b, n = sources.shape[0], self.operator.grid
        d, dt = self.operator.diffusivity, self.dt
        if not dt < 2.0 / (8.0 * d + decay):
            raise ValueError(f"transient solver: dt={dt} is unstable at decay {decay:.4g}; lower solver_options.dt")
        padded = np.zeros((b, n + 2, n + 2))
        u = padded[:, 1:-1, 1:-1]
        u[...] = sources
        forcing = dt * sources
        update, scratch = np.empty_like(sources), np.empty_like(sources)
        self_weight = 1.0 - dt * (4.0 * d + decay)
        for step in range(1, self.max_steps + 1):
            np.add(padded[:, :-2, 1:-1], padded[:, 2:, 1:-1], out=update)
            update += padded[:, 1:-1, :-2]
            update += padded[:, 1:-1, 2:]
            update *= dt * d
            update += forcing
            np.multiply(u, self_weight - 1.0, out=scratch)
            update += scratch  # update = dt * (D Δu - λ u + s)
            u += update
            if step % self._check_every == 0 and self._converged(update, u):
                self.steps_taken = step
                return u.copy()
        raise RuntimeError(f"transient solver did not converge in {self.max_steps} steps (tol={self.tol})")

    def _converged(self, update: np.ndarray, u: np.ndarray) -> bool:
        rate = np.abs(update).max(axis=(1, 2)) / self.dt
        scale = np.abs(u).max(axis=(1, 2))
        return bool(np.all(rate <= self.tol * scale))


def add_discs(images: np.ndarray, radius: float, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> None:
    """Add weight · disc to each image, the disc being the cells with (i - row)² + (j - col)² <= radius².

    Only each disc's bounding box is touched, so the cost does not grow with the lattice.

    Args:
        images: [b, N, N] float64, updated in place.
        rows, cols: [b] 0-based integer centre cells (a disc is clipped by the lattice's edge).
        weights: [b].
    """
    reach = int(np.floor(radius))
    offsets = np.arange(-reach, reach + 1)
    stencil = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.float64)
    grid_rows, grid_cols = images.shape[1:]
    for image, row, col, weight in zip(images, rows, cols, weights, strict=True):
        top, left = int(row) - reach, int(col) - reach
        i0, j0 = max(top, 0), max(left, 0)
        i1, j1 = min(top + 2 * reach + 1, grid_rows), min(left + 2 * reach + 1, grid_cols)
        if i0 < i1 and j0 < j1:
            image[i0:i1, j0:j1] += weight * stencil[i0 - top : i1 - top, j0 - left : j1 - left]


def discs(grid: int, radius: float, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Indicator images of discs clipped by the lattice: [b, N, N] float64 of 0/1.

    Example:
        >>> discs(5, 1.0, np.array([0]), np.array([2]))[0]
        array([[0., 1., 1., 1., 0.],
               [0., 0., 1., 0., 0.],
               [0., 0., 0., 0., 0.],
               [0., 0., 0., 0., 0.],
               [0., 0., 0., 0., 0.]])
    """
    images = np.zeros((len(rows), grid, grid))
    add_discs(images, radius, rows, cols, np.ones(len(rows)))
    return images
