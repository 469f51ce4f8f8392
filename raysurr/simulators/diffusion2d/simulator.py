"""The study's reference problem: 2-D steady diffusion from disc sources, and variants where difficulty varies."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from raysurr.errors import ParameterError
from raysurr.registry import check_options
from raysurr.simulators.base import AbstractSimulator, Parameter, Simulation, register_simulator
from raysurr.simulators.diffusion2d.physics import SOLVERS, DiffusionOperator, add_discs

STUDY_DECAY = 1.0 / 400.0  # the study's λ: a decay length sqrt(D / λ) of 20 cells
MAX_SOURCES = 8


@register_simulator("diffusion2d")
class Diffusion2D(AbstractSimulator):
    """2-D steady diffusion with decay from disc sources: the study's problem, and variants of it.

    With the defaults, the study's problem: parameters `row1, col1, flux1, row2, col2, flux2` (0-based
    centre cells of two discs and their fluxes; flux2 = 1 and flux1 ~ U(0, 1) as the study drew them).
    The input is the source image s / max(s); the target is the steady field u / max(u), with max(u)
    kept as the extra `target_max`.

    Two options make a problem whose difficulty varies from sample to sample, as real parameter studies
    do (docs/acquisition.md, "Headroom"):

    - `sources: [low, high]` (or a count other than 2): `low` to `high` discs per sample, each with its
      own flux ~ U(0, 1). Parameters `rowK, colK, fluxK` for K = 1..high; a slot a sample does not use
      has flux 0.
    - `decay_length: [low, high]`: each sample's decay length sqrt(D / λ) in cells, drawn log-uniform
      (parameter `decay_length`). The input gets a second channel, constant over the grid: the sample's
      log decay length scaled to [0, 1] over the range, so that the network (and `residual`) sees it.

    Args:
        grid: lattice size N.
        diffusivity: D.
        decay: λ for every sample (default the study's 1/400); not with `decay_length`.
        radius: disc radius in cells.
        solver: `exact`, `transient` or `sparse`.
        solver_options: passed to the solver (e.g. `{dt: 0.2, tol: 1e-9}` for `transient`).
        delay_s: seconds each sample waits before it is solved, without using a core: the cost model of a
            remote or queued simulator (run such actors with `resources.cpus_per_simulator: 0`).
        sources: discs per sample: 2 (the study's), a count, or `[low, high]`.
        decay_length: `[low, high]` cells, a per-sample decay length drawn log-uniform; None: `decay` for all.

    Example:
        >>> sim = Diffusion2D(grid=32)
        >>> params = sim.sample(4, np.random.default_rng(0))
        >>> sim.simulate(params).outputs.shape
        (4, 1, 32, 32)
        >>> Diffusion2D(grid=32, sources=[1, 4], decay_length=[1, 64]).input_shape
        (2, 32, 32)
    """

    extras = ("target_max",)
    regions = ("source", "field")
    # A square lattice, an isotropic 5-point operator and the same boundary on every side: mirroring or
    # transposing a source image mirrors or transposes its field (both max-normalised: the maxima move along;
    # the decay channel is constant over the grid).
    symmetries = ("flip_rows", "flip_cols", "transpose")
    evaluation_options: ClassVar[Mapping[str, object]] = {"solver": "exact", "delay_s": 0.0}  # val/test: exact, at once

    def __init__(
        self,
        grid: int = 100,
        diffusivity: float = 1.0,
        decay: float | None = None,
        radius: float = 5.0,
        solver: str = "exact",
        solver_options: dict | None = None,
        delay_s: float = 0.0,
        sources: int | Sequence[int] = 2,
        decay_length: Sequence[float] | None = None,
    ) -> None:
        self.counts = _source_counts(sources)
        # The study's two discs have flux2 = 1; any other `sources` (even [2, 2]) draws every flux independently.
        self.study_sources = sources == 2 and isinstance(sources, int)
        self.lengths = _decay_lengths(decay_length, decay)
        decay = STUDY_DECAY if decay is None else decay
        if radius <= 0 or diffusivity <= 0 or decay < 0 or delay_s < 0:
            raise ParameterError(
                f"diffusion2d needs radius > 0, diffusivity > 0, decay >= 0 and delay_s >= 0; "
                f"got radius={radius}, diffusivity={diffusivity}, decay={decay}, delay_s={delay_s}"
            )
        diameter = 2 * int(np.floor(radius)) + 1
        if not isinstance(grid, int) or grid < diameter:
            raise ParameterError(f"diffusion2d grid={grid} is smaller than a source disc; use grid >= {diameter}")
        self.grid, self.radius, self.diffusivity = grid, float(radius), float(diffusivity)
        # With per-sample decay lengths the operator's λ is the largest one: what the transient solver's step must
        # be stable for.
        self.decay = float(decay) if self.lengths is None else self.diffusivity / self.lengths[0] ** 2
        self.delay_s = float(delay_s)
        factory = SOLVERS.get(solver)
        check_options(factory, solver_options or {}, f"simulator.solver_options (solver {solver!r})", ["operator"])
        self.solver = factory(DiffusionOperator(grid, diffusivity, self.decay), **(solver_options or {}))
        self.fidelity = solver
        self.input_shape = (1 + (self.lengths is not None), grid, grid)
        self.output_shape = (1, grid, grid)
        self.parameters = self._parameters()

    def _parameters(self) -> tuple[Parameter, ...]:
        last = float(self.grid - 1)
        out = []
        for k in range(1, self.counts[1] + 1):
            out += [
                Parameter(f"row{k}", 0.0, last, integer=True, doc=f"row of disc {k}'s centre"),
                Parameter(f"col{k}", 0.0, last, integer=True, doc=f"column of disc {k}'s centre"),
                Parameter(f"flux{k}", 0.0, 1.0, doc=f"flux of disc {k}" + (" (0: no disc)" if k > 1 else "")),
            ]
        if self.lengths is not None:
            out.append(Parameter("decay_length", *self.lengths, doc="decay length sqrt(D / λ), cells"))
        return tuple(out)

    @property
    def centre_range(self) -> tuple[int, int]:
        """Where the study draws centres: 1-based 5..95 at N = 100 and radius 5, i.e. 0-based 4..94."""
        r = int(np.floor(self.radius))
        return r - 1, self.grid - 1 - r

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The study's: centres uniform on `centre_range`, flux1 ~ U(0, 1), flux2 = 1. With `sources: [low, high]`:
        a count uniform in it, each used disc's flux ~ U(0, 1). With `decay_length`: log-uniform in its range."""
        low, high = self.centre_range
        slots = self.counts[1]
        centres = rng.integers(low, high, endpoint=True, size=(n, slots, 2)).astype(np.float64)
        if self.study_sources:
            fluxes = np.column_stack([rng.uniform(0.0, 1.0, size=n), np.ones(n)])
        else:
            used = rng.integers(self.counts[0], self.counts[1], endpoint=True, size=n)
            fluxes = rng.uniform(0.0, 1.0, size=(n, slots)) * (np.arange(slots)[None] < used[:, None])
            centres[fluxes == 0] = low  # an unused slot's centre means nothing: one fixed value
        columns = np.concatenate([centres, fluxes[..., None]], axis=2).reshape(n, 3 * slots)
        if self.lengths is not None:
            lo, hi = np.log(self.lengths)
            columns = np.column_stack([columns, np.exp(rng.uniform(lo, hi, size=n))])
        return columns

    def check_parameters(self, params: np.ndarray) -> np.ndarray:
        params = super().check_parameters(params)
        silent = (params[:, 2 : 3 * self.counts[1] : 3] <= 0).all(axis=1)
        if silent.any():
            row = int(np.flatnonzero(silent)[0])
            raise ParameterError(f"parameter set {row}: every flux is 0; at least one must be > 0")
        return params

    def decays(self, params: np.ndarray) -> np.ndarray | None:
        """[n] each sample's λ = D / decay_length², or None when every sample has the same `decay`."""
        if self.lengths is None:
            return None
        return self.diffusivity / np.asarray(params, dtype=np.float64)[:, -1] ** 2

    def sources(self, params: np.ndarray) -> np.ndarray:
        """s / max(s) with s = Σ fluxK · discK: [n, N, N] float64."""
        p = np.asarray(params, dtype=np.float64)
        s = np.zeros((len(p), self.grid, self.grid))
        for k in range(self.counts[1]):
            add_discs(s, self.radius, p[:, 3 * k], p[:, 3 * k + 1], p[:, 3 * k + 2])
        s /= s.max(axis=(1, 2), keepdims=True)
        return s

    def render(self, params: np.ndarray) -> np.ndarray:
        channels = [self.sources(params)]
        if self.lengths is not None:
            lo, hi = np.log(self.lengths)
            scaled = (np.log(np.asarray(params, dtype=np.float64)[:, -1]) - lo) / (hi - lo)
            channels.append(np.broadcast_to(scaled[:, None, None], channels[0].shape))
        return np.stack(channels, axis=1).astype(np.float32)

    def simulate(self, params: np.ndarray) -> Simulation:
        time.sleep(self.delay_s * len(params))
        field = self.solver.solve(self.sources(params), self.decays(params))
        peak = field.max(axis=(1, 2))
        return Simulation(
            outputs=(field / peak[:, None, None])[:, None].astype(np.float32), extras={"target_max": peak}
        )

    # torch tensors in, torch tensors out; no torch import needed --------------------------------------

    def _decay_of(self, inputs):
        """Each input's λ, [n, 1, 1, 1] (from its decay channel), or the simulator's one λ."""
        if self.lengths is None:
            return self.decay
        lo, hi = np.log(self.lengths)
        length = (lo + inputs[:, 1:2].mean(dim=(-2, -1), keepdim=True) * (hi - lo)).exp()
        return self.diffusivity / length**2

    def _apply(self, y, decay):
        """A y with the absorbing boundary (zero just outside the lattice): [n, 1, N, N]."""
        neighbours = y.new_zeros(y.shape)
        neighbours[..., 1:, :] += y[..., :-1, :]
        neighbours[..., :-1, :] += y[..., 1:, :]
        neighbours[..., :, 1:] += y[..., :, :-1]
        neighbours[..., :, :-1] += y[..., :, 1:]
        return self.diffusivity * (4.0 * y - neighbours) + decay * y

    def _scaled_residual(self, inputs, outputs):
        """(A y - c s, c, λ): the residual in the field's units, with c = <A y, s> / <s, s>."""
        s, y = inputs[:, :1], outputs[:, :1]
        decay = self._decay_of(inputs)
        applied = self._apply(y, decay)
        scale = (applied * s).sum(dim=(-2, -1), keepdim=True) / (s * s).sum(dim=(-2, -1), keepdim=True)
        scale = scale.clamp_min(1e-3)  # c >= 1e-3: max(u) up to 1,000 (the study's: 11 to 37)
        return applied - scale * s, scale, decay

    def residual(self, inputs, outputs):
        """The steady equation's residual of (predicted) fields, in units of the source: A y / c - s.

        A y = D (4 y - the 4 neighbours) + λ y is the 5-point operator with the absorbing boundary (zero
        just outside the lattice). A label is max-normalised, y = u / max(u), so A y = s / max(u): with
        c = <A y, s> / <s, s>, the scale that best matches A y to s, the residual is zero on every label
        (to the float32 it is stored in) whatever its max(u), and a prediction's overall scale does not
        change it. With per-sample decay lengths, each input's λ comes from its decay channel.

        Args:
            inputs: [n, C, N, N] sources s / max(s) (and the decay channel); outputs: [n, 1, N, N] fields.
                torch tensors.

        Returns:
            [n, 1, N, N], differentiable in `outputs`.
        """
        field_residual, scale, _ = self._scaled_residual(inputs, outputs)
        return field_residual / scale

    def error_estimate(self, inputs, outputs, effort: int = 60):
        """An estimate of each predicted field's error (prediction - truth) from its residual: [n, 1, N, N].

        A prediction y of the linear problem differs from the field it implies, c A⁻¹ s, by A⁻¹ (A y - c s) (c as
        in `residual`): an approximate inverse of A applied to the residual estimates that difference. Here:
        `effort` sweeps of damped Jacobi (ω = 0.8) from 0, which resolve its short-range part (about sqrt(effort)
        cells) at the cost of `effort` stencil applications, far below a solve. The implied field, y minus the
        difference, is max-normalised as the labels are, which removes the unknown c; with enough sweeps the
        estimate is the error itself.
        """
        field_residual, _, decay = self._scaled_residual(inputs, outputs)
        diagonal = 4.0 * self.diffusivity + decay
        difference = 0.8 * field_residual / diagonal
        for _ in range(effort - 1):
            difference = difference + 0.8 * (field_residual - self._apply(difference, decay)) / diagonal
        implied = outputs[:, :1] - difference
        peak = implied.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        return outputs[:, :1] - implied / peak

    def region_of_interest(self, inputs: np.ndarray) -> np.ndarray:
        """The study's source region: where the source term (input channel 0) is positive."""
        return np.asarray(inputs)[:, 0] > 0

    def embed(self, params: np.ndarray) -> np.ndarray:
        """The study's 7 numbers for its two sources (distance between them, both centres, both fluxes, scaled
        to ~[0, 1]); every parameter scaled by its range otherwise (the decay length by its logarithm)."""
        p = np.asarray(params, dtype=np.float64)
        last = self.grid - 1
        if self.study_sources:
            distance = np.hypot(p[:, 0] - p[:, 3], p[:, 1] - p[:, 4]) / (last * np.sqrt(2.0))
            vectors = np.column_stack([distance, p[:, [0, 1, 3, 4]] / last, p[:, [2, 5]]])
        else:
            vectors = super().embed(p)[:, : 3 * self.counts[1]]
        if self.lengths is None:
            return vectors
        lo, hi = np.log(self.lengths)
        return np.column_stack([vectors, (np.log(p[:, -1]) - lo) / (hi - lo)])


def _source_counts(sources: int | Sequence[int]) -> tuple[int, int]:
    """`sources` as (low, high), checked."""
    counts = (sources, sources) if isinstance(sources, int) and not isinstance(sources, bool) else sources
    ok = (isinstance(counts, (list, tuple)) and len(counts) == 2
          and all(isinstance(c, int) and not isinstance(c, bool) for c in counts)
          and 1 <= counts[0] <= counts[1] <= MAX_SOURCES)  # fmt: skip
    if not ok:
        raise ParameterError(f"diffusion2d sources must be a count or [low, high] with 1 <= low <= high <= "
                             f"{MAX_SOURCES}, got {sources!r}")  # fmt: skip
    return int(counts[0]), int(counts[1])


def _decay_lengths(decay_length: Sequence[float] | None, decay: float | None) -> tuple[float, float] | None:
    """`decay_length` as (low, high) cells, checked; None for one decay."""
    if decay_length is None:
        return None
    if decay is not None:
        raise ParameterError("diffusion2d takes decay (one λ for every sample) or decay_length (a range per "
                             "sample), not both")  # fmt: skip
    ok = (isinstance(decay_length, (list, tuple)) and len(decay_length) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in decay_length)
          and 0 < decay_length[0] < decay_length[1])  # fmt: skip
    if not ok:
        raise ParameterError(f"diffusion2d decay_length must be [low, high] cells with 0 < low < high, got "
                             f"{decay_length!r}")  # fmt: skip
    return float(decay_length[0]), float(decay_length[1])
