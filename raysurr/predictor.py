"""Use a trained surrogate: fields from parameter sets, with their spread, range checks and batching. No Ray.

Example (a run folder, or one of its checkpoints):

    predictor = raysurr.load("runs/quickstart-20261207-101500")
    fields = predictor.predict([{"row1": 30, "col1": 40, "flux1": 0.5, "row2": 60, "col2": 20, "flux2": 1.0}])
    fields.shape  # (1, 1, 100, 100), in the units of the simulator's targets

A `Predictor` holds the trained network (with its input and target scaling), the simulator section that renders
its inputs, the parameter names, the ranges the training labels covered, how many labels it was trained on and
its test metrics. `predict` takes an [n, P] array, a pandas or pyarrow table with the parameter columns, or a
list of dicts; it renders the inputs, runs the network in batches that fit a memory bound, on the GPU if there
is one, and returns [n, *output_shape]. Parameters outside the ranges the training labels covered raise an
`ExtrapolationWarning` naming the parameter and the range (an error with `strict=True`); outside the
simulator's declared ranges they are an error (nothing can be rendered there).
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raysurr.config import SimulatorConfig, load_plugins
from raysurr.errors import ParameterError, RaysurrError
from raysurr.models.checkpoint import FILENAME, CheckpointError, Surrogate, load_surrogate, read_checkpoint
from raysurr.models.layers import has_dropout, mc_dropout
from raysurr.simulators import AbstractSimulator, build_simulator

MEMORY_BOUND = 256 * 2**20  # bytes of inputs, outputs and activations a batch may hold (about 8 copies of each)
DROPOUT_PASSES = 16  # MC-dropout passes for the spread of a model without ensemble members


class ExtrapolationWarning(UserWarning):
    """A parameter lies outside the range the surrogate's training labels covered: its prediction extrapolates."""


@dataclass
class Predictor:
    """A trained surrogate ready to predict from parameter sets (`load` makes one)."""

    network: Surrogate
    simulator: SimulatorConfig
    plugins: tuple[str, ...] = ()
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # over the training labels
    labels: int | None = None  # how many labels it was trained on
    metrics: dict[str, float] = field(default_factory=dict)  # its test metrics (rounds.csv), where known
    members: list[Surrogate] = field(default_factory=list)  # an ensemble's other members, for the spread
    source: Path | None = None  # the checkpoint it was read from

    def __post_init__(self) -> None:
        load_plugins(self.plugins)
        self._simulator = build_simulator(self.simulator)
        self.device = next(self.network.parameters()).device

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return self._simulator.parameter_names

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(self._simulator.output_shape)

    @property
    def renderer(self) -> AbstractSimulator:
        """The simulator that renders the network's inputs (never asked to simulate)."""
        return self._simulator

    def predict(self, params: Any, return_std: bool = False, strict: bool = False,
                batch_size: int | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Fields for parameter sets: [n, *output_shape] float32 (and their spread [n, *output_shape], `return_std`).

        Args:
            params: [n, P] array in `parameter_names` order, a pandas DataFrame or pyarrow Table with those
                columns, or a list of dicts.
            return_std: also the spread: the standard deviation over an ensemble's members, or over MC-dropout
                passes of a model with dropout; a model with neither has none (an error).
            strict: a parameter outside the training labels' range is an error instead of a warning.
            batch_size: samples per forward pass; default: what `MEMORY_BOUND` holds.
        """
        params = self.check(as_array(params, self.parameter_names), strict)
        batch = batch_size or self.batch_size()
        means, spreads = [], []
        for start in range(0, len(params), batch):
            x = torch.tensor(self._simulator.render(params[start : start + batch]), device=self.device)
            mean, spread = self._forward(x, return_std)
            means.append(mean)
            spreads.append(spread)
        empty = np.empty((0, *self.output_shape), dtype=np.float32)
        mean = np.concatenate(means) if means else empty
        return (mean, np.concatenate(spreads) if spreads else empty) if return_std else mean

    def check(self, params: np.ndarray, strict: bool = False) -> np.ndarray:
        """The parameter sets, checked against the simulator's ranges (error) and the training labels' (a warning,
        or an error with `strict`)."""
        params = self._simulator.check_parameters(params)
        for j, name in enumerate(self.parameter_names):
            low, high = self.ranges.get(name, (-math.inf, math.inf))
            outside = (params[:, j] < low) | (params[:, j] > high)
            if outside.any():
                row = int(np.flatnonzero(outside)[0])
                message = (f"{name}={params[row, j]:g} (parameter set {row}, and {int(outside.sum()) - 1} more) lies "
                           f"outside [{low:g}, {high:g}], the range the surrogate's training labels covered: its "
                           "prediction there extrapolates")  # fmt: skip
                if strict:
                    raise ParameterError(message)
                warnings.warn(message, ExtrapolationWarning, stacklevel=3)
        return params

    def batch_size(self) -> int:
        per_sample = 4 * (math.prod(self._simulator.input_shape) + math.prod(self.output_shape)) * 8
        return max(1, MEMORY_BOUND // per_sample)

    @torch.no_grad()
    def _forward(self, x: torch.Tensor, spread: bool) -> tuple[np.ndarray, np.ndarray | None]:
        self.network.eval()
        mean = self.network(x)
        if not spread:
            return mean.float().cpu().numpy(), None
        if self.members:
            outputs = torch.stack([mean, *(member.eval()(x) for member in self.members)])
        elif has_dropout(self.network):
            outputs = torch.stack([mc_dropout(self.network)(x) for _ in range(DROPOUT_PASSES)])
            self.network.eval()
        else:
            raise RaysurrError("this surrogate has no ensemble members and no dropout: it has no spread to give; train "
                               "with acquisition.name: ensemble (or model.dropout > 0) for one")  # fmt: skip
        return mean.float().cpu().numpy(), outputs.std(dim=0, unbiased=False).float().cpu().numpy()


def as_array(params: Any, names: Sequence[str]) -> np.ndarray:
    """Parameter sets as [n, P] float64 in `names` order, from an array, a DataFrame, an Arrow table or dicts; a
    ParameterError naming the missing or extra columns, or the values that are not numbers."""
    if isinstance(params, np.ndarray) or (isinstance(params, (list, tuple)) and params and
                                          not isinstance(params[0], Mapping)):  # fmt: skip
        array = np.asarray(params, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != len(names):
            raise ParameterError(f"expected parameter sets of shape [n, {len(names)}] ({', '.join(names)}), got "
                                 f"{list(array.shape)}")  # fmt: skip
        return array
    if isinstance(params, (list, tuple)):  # dicts
        columns = {name: [row.get(name) for row in params] for name in dict.fromkeys(k for r in params for k in r)}
    elif hasattr(params, "column_names"):  # pyarrow
        columns = {name: params.column(name).to_pylist() for name in params.column_names}
    elif hasattr(params, "columns"):  # pandas
        columns = {str(name): params[name].tolist() for name in params.columns}
    else:
        raise ParameterError(
            f"parameter sets must be an array, a table or a list of dicts, got {type(params).__name__}"
        )
    missing, extra = [n for n in names if n not in columns], [n for n in columns if n not in names]
    if missing or extra:
        raise ParameterError(
            f"the parameter columns must be exactly {', '.join(names)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {extra}" if extra else "")
        )
    try:
        return np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in names]) if names else np.empty((0, 0))
    except (TypeError, ValueError):
        bad = next(n for n in names if not all(isinstance(v, (int, float)) for v in columns[n]))
        raise ParameterError(f"column {bad!r} holds values that are not numbers (or are missing)") from None


def load(path: str | Path, device: str | torch.device | None = None, round: int | None = None) -> Predictor:
    """A `Predictor` from a run folder (its last finished round's model, or `round`'s) or a checkpoint.

    Args:
        path: a run folder, a checkpoint folder (round_NNN/) or its surrogate.pt.
        device: where to run; default the GPU if there is one.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    path = Path(path)
    run = path if (path / "state.json").exists() else None
    checkpoint = run_checkpoint(run, round) if run else (path.parent if path.name == FILENAME else path)
    if not (checkpoint / FILENAME).is_file():
        raise CheckpointError(f"{str(path)!r} is neither a run folder nor a surrogate checkpoint")
    spec, _ = read_checkpoint(checkpoint)
    section = spec.meta.get("simulator")
    if section is None:
        raise CheckpointError(f"{str(checkpoint)!r} does not record the simulator that renders its inputs (it was "
                              "written before raysurr kept it); load it with raysurr.load_surrogate and render the "
                              "inputs yourself")  # fmt: skip
    members = sorted(checkpoint.parent.glob(f"{checkpoint.name}_member*"))
    return Predictor(load_surrogate(checkpoint, device), SimulatorConfig.from_dict(section),
                     tuple(spec.meta.get("plugins", ())), {k: tuple(v) for k, v in spec.meta.get("ranges", {}).items()},
                     spec.meta.get("labels"), round_metrics(checkpoint), [load_surrogate(m, device) for m in members],
                     checkpoint)  # fmt: skip


def load_bytes(checkpoint: bytes, members: Sequence[bytes] = (), device: str | torch.device | None = None,
               threads: int | None = None) -> Predictor:  # fmt: skip
    """A `Predictor` from checkpoint contents (as Ray hands them to workers that do not see the run's disk)."""
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    spec, _ = read_checkpoint(checkpoint)
    return Predictor(load_surrogate(checkpoint, device), SimulatorConfig.from_dict(spec.meta["simulator"]),
                     tuple(spec.meta.get("plugins", ())), {k: tuple(v) for k, v in spec.meta.get("ranges", {}).items()},
                     spec.meta.get("labels"), {}, [load_surrogate(m, device) for m in members])  # fmt: skip


def run_checkpoint(run: Path, round_idx: int | None) -> Path:
    """A run's checkpoint of `round_idx`, or of its last finished round."""
    rounds = json.loads((run / "state.json").read_text()).get("records", [])
    finished = [int(record["round"]) for record in rounds]
    if not finished:
        raise CheckpointError(f"run {str(run)!r} has no finished round yet: there is no model to load")
    if round_idx is None:
        round_idx = finished[-1]
    elif round_idx not in finished:
        raise CheckpointError(f"run {str(run)!r} has no finished round {round_idx}; its rounds: {finished}")
    return run / "checkpoints" / f"round_{round_idx:03d}"


def round_metrics(checkpoint: Path) -> dict[str, float]:
    """The test metrics rounds.csv holds for a run's checkpoint (none for a checkpoint outside a run)."""
    rounds = checkpoint.parent.parent / "rounds.csv"
    if not rounds.exists() or not checkpoint.name.startswith("round_"):
        return {}
    round_idx = int(checkpoint.name.removeprefix("round_")[:3])
    with rounds.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if int(row["round"]) == round_idx:
                return {k: float(v) for k, v in row.items() if k.startswith("test_") and v not in ("", None)}
    return {}
