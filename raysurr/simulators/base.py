"""The simulator interface. Pure: numpy only, no Ray, no torch.

A simulator declares its parameters, samples parameter sets, renders the network input for a
batch of parameter sets (cheap) and simulates the outputs (expensive). Parameter sets travel as
float64 arrays `[n, P]` whose columns follow `parameters`; integer parameters hold whole numbers.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from raysurr.errors import ParameterError, SimulationError
from raysurr.registry import Registry


@dataclass(frozen=True)
class Parameter:
    """One named input of a simulator, with its allowed closed range."""

    name: str
    low: float
    high: float
    integer: bool = False
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"parameter {self.name!r}: low {self.low} > high {self.high}")

    def describe(self) -> str:
        kind = "integer" if self.integer else "number"
        low, high = (int(self.low), int(self.high)) if self.integer else (self.low, self.high)
        return f"{self.name}: {kind} in [{low}, {high}]"


@dataclass(frozen=True)
class Simulation:
    """The outputs of one batch.

    Attributes:
        outputs: [n, *output_shape] float32, the network targets.
        extras: per-sample float64 scalars the simulator keeps beside the outputs
            (e.g. the normalisation constant of each target), name -> [n].
    """

    outputs: np.ndarray
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)


class AbstractSimulator(abc.ABC):
    """Base of every simulator. Subclasses register with `@register_simulator("name")`.

    Subclasses set `parameters`, `input_shape` and `output_shape` (as attributes or properties)
    and implement `render` and `simulate`. Overriding `sample` and `embed` is optional.
    """

    parameters: tuple[Parameter, ...]
    input_shape: tuple[int, ...]  # [C, H, W] of one network input
    output_shape: tuple[int, ...]  # [C, H, W] of one network target
    extras: tuple[str, ...] = ()  # names of the per-sample scalars `simulate` returns
    fidelity: str = "default"  # recorded with every label, e.g. the solver's name
    # Names of `region_of_interest` and of the rest of the grid: the region MAE columns (test_mae_roi, ...).
    regions: tuple[str, str] = ("roi", "rest")
    # Options that make evaluation sets cheap and exact (e.g. a direct solver); applied on top of the config's.
    evaluation_options: ClassVar[Mapping[str, object]] = {}
    # Optional: a method `residual(inputs, outputs) -> torch.Tensor` taking a batch of network inputs and
    # (predicted or simulated) outputs as torch tensors, in the units stored in the datasets, and returning
    # per-sample residual fields of the governing equations, differentiable, ~0 on the simulator's own
    # labels. The `pre` acquisition function scores with it. None: the simulator has none.
    residual: ClassVar[Callable[..., Any] | None] = None
    # Optional: a method `error_estimate(inputs, outputs, effort) -> torch.Tensor`: for a batch of inputs and
    # predicted outputs (torch, the datasets' units), an estimate of each prediction's error field (prediction
    # minus truth), shaped like `outputs`, at a cost that grows with the integer `effort` and stays far below a
    # simulation (e.g. the residual through a few sweeps of an approximate inverse of the equations' operator).
    # The `estimated_error` acquisition function scores with it. None: the simulator has none.
    error_estimate: ClassVar[Callable[..., Any] | None] = None
    # Optional: grid transforms the problem is symmetric under, any of SYMMETRIES: for every simulated pair
    # (input, output), the same transform of both is the pair of another parameter set. With
    # `training.augment: auto` (the default) every training step transforms each sample by a random
    # combination of them: labels the simulator never had to run. Declare only what holds exactly
    # (`transpose` needs a square grid); docs/simulators.md shows how to test it.
    symmetries: tuple[str, ...] = ()

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw n parameter sets, uniformly in each declared range: [n, P] float64."""
        columns = [
            rng.integers(int(p.low), int(p.high), endpoint=True, size=n).astype(np.float64)
            if p.integer
            else rng.uniform(p.low, p.high, size=n)
            for p in self.parameters
        ]
        return np.stack(columns, axis=1) if columns else np.empty((n, 0))

    def check_parameters(self, params: np.ndarray) -> np.ndarray:
        """Return `params` as [n, P] float64, or raise ParameterError naming the first bad value."""
        params = np.asarray(params, dtype=np.float64)
        if params.ndim != 2 or params.shape[1] != len(self.parameters):
            raise ParameterError(
                f"expected parameter sets of shape [n, {len(self.parameters)}] "
                f"({', '.join(self.parameter_names)}), got {list(params.shape)}"
            )
        for j, p in enumerate(self.parameters):
            column = params[:, j]
            bad = ~np.isfinite(column) | (column < p.low) | (column > p.high)
            if p.integer:
                bad |= column != np.round(column)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                value = float(column[row])
                shown = int(value) if p.integer and value.is_integer() else value
                raise ParameterError(f"parameter set {row}: {p.name}={shown} is not allowed; {p.describe()}")
        return params

    def embed(self, params: np.ndarray) -> np.ndarray:
        """A small vector per parameter set for diversity-based acquisition: [n, E] float64.

        The default scales every parameter to [0, 1] by its declared range.
        """
        low = np.array([p.low for p in self.parameters])
        span = np.array([p.high - p.low for p in self.parameters])
        return (np.asarray(params, dtype=np.float64) - low) / np.where(span > 0, span, 1.0)

    def region_of_interest(self, inputs: np.ndarray) -> np.ndarray:
        """[n, H, W] bool: each input's pixels of interest, the first of `regions` in the region MAEs
        (the rest of the grid is the second).

        The default: the pixels where the first input channel is non-zero.
        """
        return np.asarray(inputs)[:, 0] != 0

    @abc.abstractmethod
    def render(self, params: np.ndarray) -> np.ndarray:
        """The network inputs of a batch: [n, *input_shape] float32. Cheap."""

    @abc.abstractmethod
    def simulate(self, params: np.ndarray) -> Simulation:
        """The network targets of a batch. The expensive part."""


# The grid transforms a simulator may declare in `symmetries`: reverse the rows (H), the columns (W), swap them.
SYMMETRIES = ("flip_rows", "flip_cols", "transpose")


def check_symmetries(simulator: AbstractSimulator) -> tuple[str, ...]:
    """The simulator's declared symmetries, checked: known names, and a square grid for `transpose`."""
    declared = tuple(simulator.symmetries)
    unknown = sorted(set(declared) - set(SYMMETRIES))
    if unknown:
        raise ParameterError(f"{type(simulator).__name__}.symmetries names {unknown}; the grid transforms are "
                             f"{', '.join(SYMMETRIES)}")  # fmt: skip
    grids = {tuple(simulator.input_shape[1:]), tuple(simulator.output_shape[1:])}
    if "transpose" in declared and any(len(g) != 2 or g[0] != g[1] for g in grids):
        raise ParameterError(f"{type(simulator).__name__} declares the symmetry 'transpose', which needs a square "
                             f"grid; its inputs and outputs are {sorted(grids)}")  # fmt: skip
    return declared


SIMULATORS: Registry[AbstractSimulator] = Registry("simulator")
register_simulator = SIMULATORS.register


def run_simulation(simulator: AbstractSimulator, params: np.ndarray, sample_ids: Sequence[int]) -> Simulation:
    """Check parameters, simulate, and check the outputs (shape, dtype, all finite), without Ray: how to
    try a simulator of your own in a notebook or a test before it labels anything.

    Raises:
        ParameterError: a parameter set is out of range.
        SimulationError: the simulator returned a malformed or non-finite output; names the samples.
    """
    result = simulator.simulate(simulator.check_parameters(params))
    check_shapes(simulator, result, sample_ids)
    finite = finite_rows(result)
    if not finite.all():
        bad = [int(sample_ids[i]) for i in np.flatnonzero(~finite)]
        raise SimulationError(f"non-finite output for sample(s) {bad[:10]}", tuple(bad))
    return result


def finite_rows(result: Simulation) -> np.ndarray:
    """[n] bool: which samples have only finite outputs and extras."""
    n = len(result.outputs)
    finite = np.isfinite(result.outputs.reshape(n, -1)).all(axis=1)
    for values in result.extras.values():
        finite &= np.isfinite(np.asarray(values, dtype=np.float64))
    return finite


def check_shapes(simulator: AbstractSimulator, result: Simulation, sample_ids: Sequence[int]) -> None:
    """Raise SimulationError unless outputs and extras have the declared shapes and dtype."""
    n = len(sample_ids)
    outputs = result.outputs
    expected = (n, *simulator.output_shape)
    if not isinstance(outputs, np.ndarray) or outputs.shape != expected or outputs.dtype != np.float32:
        got = f"{getattr(outputs, 'dtype', type(outputs).__name__)} {list(getattr(outputs, 'shape', ()))}"
        raise SimulationError(
            f"simulator returned outputs of {got}, expected float32 {list(expected)}", tuple(sample_ids)
        )
    if set(result.extras) != set(simulator.extras):
        raise SimulationError(
            f"simulator returned extras {sorted(result.extras)}, declared {sorted(simulator.extras)}", tuple(sample_ids)
        )
    for name, values in result.extras.items():
        values = np.asarray(values)
        if values.shape != (n,):
            raise SimulationError(f"extra {name!r} has shape {list(values.shape)}, expected [{n}]", tuple(sample_ids))
