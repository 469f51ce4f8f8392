"""The study's reference problem: 2-D steady diffusion from two disc sources."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from raysurr.errors import ParameterError
from raysurr.registry import check_options
from raysurr.simulators.base import AbstractSimulator, Parameter, Simulation, register_simulator
from raysurr.simulators.diffusion2d.physics import SOLVERS, DiffusionOperator, add_discs


@register_simulator("diffusion2d")
class Diffusion2D(AbstractSimulator):
    """2-D steady diffusion with decay from two disc sources (the study's problem).

    Parameters per sample: `row1, col1, flux1, row2, col2, flux2` — 0-based centre cells of the
    two discs and their fluxes. The input is the source image s / max(s); the target is the steady
    field u / max(u), with max(u) kept as the extra `target_max`.

    Args:
        grid: lattice size N.
        diffusivity: D.
        decay: λ.
        radius: disc radius in cells.
        solver: `exact`, `transient` or `sparse`.
        solver_options: passed to the solver (e.g. `{dt: 0.2, tol: 1e-9}` for `transient`).
        delay_s: seconds each sample waits before it is solved, without using a core: the cost model of a
            remote or queued simulator (run such actors with `resources.cpus_per_simulator: 0`).

    Example:
        >>> sim = Diffusion2D(grid=32)
        >>> params = sim.sample(4, np.random.default_rng(0))
        >>> sim.simulate(params).outputs.shape
        (4, 1, 32, 32)
    """

    extras = ("target_max",)
    regions = ("source", "field")
    # A square lattice, an isotropic 5-point operator and the same boundary on every side: mirroring or
    # transposing a source image mirrors or transposes its field (both max-normalised: the maxima move along).
    symmetries = ("flip_rows", "flip_cols", "transpose")
    evaluation_options: ClassVar[Mapping[str, object]] = {"solver": "exact", "delay_s": 0.0}  # val/test: exact, at once

    def __init__(
        self,
        grid: int = 100,
        diffusivity: float = 1.0,
        decay: float = 1.0 / 400.0,
        radius: float = 5.0,
        solver: str = "exact",
        solver_options: dict | None = None,
        delay_s: float = 0.0,
    ) -> None:
        if radius <= 0 or diffusivity <= 0 or decay < 0 or delay_s < 0:
            raise ParameterError(
                f"diffusion2d needs radius > 0, diffusivity > 0, decay >= 0 and delay_s >= 0; "
                f"got radius={radius}, diffusivity={diffusivity}, decay={decay}, delay_s={delay_s}"
            )
        diameter = 2 * int(np.floor(radius)) + 1
        if not isinstance(grid, int) or grid < diameter:
            raise ParameterError(f"diffusion2d grid={grid} is smaller than a source disc; use grid >= {diameter}")
        self.grid, self.radius, self.diffusivity, self.decay = grid, float(radius), float(diffusivity), float(decay)
        self.delay_s = float(delay_s)
        factory = SOLVERS.get(solver)
        check_options(factory, solver_options or {}, f"simulator.solver_options (solver {solver!r})", ["operator"])
        self.solver = factory(DiffusionOperator(grid, diffusivity, decay), **(solver_options or {}))
        self.fidelity = solver
        self.input_shape = self.output_shape = (1, grid, grid)
        last = float(grid - 1)
        self.parameters = (
            Parameter("row1", 0.0, last, integer=True, doc="row of disc 1's centre"),
            Parameter("col1", 0.0, last, integer=True, doc="column of disc 1's centre"),
            Parameter("flux1", 0.0, 1.0, doc="flux of disc 1"),
            Parameter("row2", 0.0, last, integer=True, doc="row of disc 2's centre"),
            Parameter("col2", 0.0, last, integer=True, doc="column of disc 2's centre"),
            Parameter("flux2", 0.0, 1.0, doc="flux of disc 2"),
        )

    @property
    def centre_range(self) -> tuple[int, int]:
        """Where the study draws centres: 1-based 5..95 at N = 100 and radius 5, i.e. 0-based 4..94."""
        r = int(np.floor(self.radius))
        return r - 1, self.grid - 1 - r

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Centres uniform on `centre_range`, flux1 ~ U(0, 1), flux2 = 1 (as the study drew them)."""
        low, high = self.centre_range
        centres = rng.integers(low, high, endpoint=True, size=(n, 4)).astype(np.float64)
        flux1 = rng.uniform(0.0, 1.0, size=n)
        return np.column_stack([centres[:, 0], centres[:, 1], flux1, centres[:, 2], centres[:, 3], np.ones(n)])

    def check_parameters(self, params: np.ndarray) -> np.ndarray:
        params = super().check_parameters(params)
        silent = (params[:, 2] <= 0) & (params[:, 5] <= 0)
        if silent.any():
            row = int(np.flatnonzero(silent)[0])
            raise ParameterError(f"parameter set {row}: flux1 and flux2 are both 0; at least one must be > 0")
        return params

    def sources(self, params: np.ndarray) -> np.ndarray:
        """s / max(s) with s = flux1 · disc1 + flux2 · disc2: [n, N, N] float64."""
        p = np.asarray(params, dtype=np.float64)
        s = np.zeros((len(p), self.grid, self.grid))
        add_discs(s, self.radius, p[:, 0], p[:, 1], p[:, 2])
        add_discs(s, self.radius, p[:, 3], p[:, 4], p[:, 5])
        s /= s.max(axis=(1, 2), keepdims=True)
        return s

    def render(self, params: np.ndarray) -> np.ndarray:
        return self.sources(params)[:, None].astype(np.float32)

    def simulate(self, params: np.ndarray) -> Simulation:
        time.sleep(self.delay_s * len(params))
        field = self.solver.solve(self.sources(params))
        peak = field.max(axis=(1, 2))
        return Simulation(
            outputs=(field / peak[:, None, None])[:, None].astype(np.float32), extras={"target_max": peak}
        )

    def residual(self, inputs, outputs):  # torch tensors in, torch tensor out; no torch import needed
        """The steady equation's residual of (predicted) fields, in units of the source: A y / c - s.

        A y = D (4 y - the 4 neighbours) + λ y is the 5-point operator with the absorbing boundary (zero
        just outside the lattice). A label is max-normalised, y = u / max(u), so A y = s / max(u): with
        c = <A y, s> / <s, s>, the scale that best matches A y to s, the residual is zero on every label
        (to the float32 it is stored in) whatever its max(u), and a prediction's overall scale does not
        change it.

        Args:
            inputs: [n, 1, N, N] sources s / max(s); outputs: [n, 1, N, N] fields. torch tensors.

        Returns:
            [n, 1, N, N], differentiable in `outputs`.
        """
        s, y = inputs[:, :1], outputs[:, :1]
        neighbours = y.new_zeros(y.shape)
        neighbours[..., 1:, :] += y[..., :-1, :]
        neighbours[..., :-1, :] += y[..., 1:, :]
        neighbours[..., :, 1:] += y[..., :, :-1]
        neighbours[..., :, :-1] += y[..., :, 1:]
        applied = self.diffusivity * (4.0 * y - neighbours) + self.decay * y
        scale = (applied * s).sum(dim=(-2, -1), keepdim=True) / (s * s).sum(dim=(-2, -1), keepdim=True)
        return applied / scale.clamp_min(1e-3) - s  # c >= 1e-3: max(u) up to 1,000 (the study's: 11 to 37)

    def region_of_interest(self, inputs: np.ndarray) -> np.ndarray:
        """The study's source region: where the source term (input channel 0) is positive."""
        return np.asarray(inputs)[:, 0] > 0

    def embed(self, params: np.ndarray) -> np.ndarray:
        """The study's 7 numbers: distance between the sources, both centres, both fluxes, scaled to ~[0, 1]."""
        p = np.asarray(params, dtype=np.float64)
        last = self.grid - 1
        distance = np.hypot(p[:, 0] - p[:, 3], p[:, 1] - p[:, 4]) / (last * np.sqrt(2.0))
        return np.column_stack([distance, p[:, [0, 1, 3, 4]] / last, p[:, [2, 5]]])
