"""Simulations a user already has: read, checked as strictly as a label store, ready to start a run from.

A source is a `raysurr dataset` folder (its `split`, or the whole of it) or a Parquet file or folder of the
user's own with the simulator's parameter columns and the network `input` and `target` tensors (columns
`input`/`target`, or `inputs`/`targets`; fixed-shape tensors, or nested lists). Checked: the columns, the
shapes against the simulator's, finite values, every parameter in its range, no parameter set twice, and
that each input is what the simulator renders for its parameters (otherwise the file came from another
simulator or other options, and the model would learn two different maps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raysurr.data.dataset import MANIFEST, open_dataset
from raysurr.data.labels import LabelStore
from raysurr.data.store import PartStore, samples_table, tensor_numpy
from raysurr.errors import ConfigError, DatasetError, ParameterError
from raysurr.simulators.base import AbstractSimulator, Simulation

NAMES = {"input": ("input", "inputs"), "target": ("target", "targets")}


@dataclass(frozen=True)
class Labelled:
    """Labelled samples from outside a run."""

    params: np.ndarray  # [m, P] float64
    inputs: np.ndarray  # [m, *input_shape] float32
    targets: np.ndarray  # [m, *output_shape] float32
    extras: dict[str, np.ndarray]  # the simulator's extras the source has, [m] each

    def __len__(self) -> int:
        return len(self.params)


def read_labelled(path: str | Path, simulator: AbstractSimulator, where: str, split: str | None = None) -> Labelled:
    """Read and check labelled samples; ConfigError (one line, naming `where` and the problem) if they are unusable.

    Args:
        split: the split of a raysurr dataset to read (its whole data if it has no such split).
    """
    table = _table(Path(path), where, split)
    where = f"{where}: {str(path)!r}"
    missing = [name for name in simulator.parameter_names if name not in table.column_names]
    missing += [names[0] for names in NAMES.values() if not any(n in table.column_names for n in names)]
    if missing:
        raise ConfigError(f"{where} lacks the columns {missing} (it has {table.column_names}); it needs the "
                          "simulator's parameters and the input and target of every sample")  # fmt: skip
    if table.num_rows == 0:
        raise ConfigError(f"{where} holds no samples")
    try:
        params = simulator.check_parameters(
            np.column_stack(
                [table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in simulator.parameter_names]
            )
        )
    except ParameterError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise ConfigError(f"{where}: its parameter columns must be numbers without nulls ({exc})") from None
    inputs = _tensors(table, "input", simulator.input_shape, where)
    targets = _tensors(table, "target", simulator.output_shape, where)
    _check_unique(params, where)
    _check_rendered(simulator, params, inputs, where)
    extras = {n: table.column(n).to_numpy(zero_copy_only=False).astype(np.float64)
              for n in simulator.extras if n in table.column_names}  # fmt: skip
    return Labelled(params, inputs, targets, extras)


def _table(path: Path, where: str, split: str | None) -> pa.Table:
    if not path.exists():
        raise ConfigError(f"{where}: {str(path)!r} does not exist")
    try:
        if (path / MANIFEST).exists():  # a raysurr dataset
            info = open_dataset(path)
            return PartStore(info.split_dir(split if split in info.splits else next(iter(info.splits)))).read()
        return pq.read_table(path)
    except DatasetError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{where}: {str(path)!r} is not a raysurr dataset nor Parquet ({type(exc).__name__}); write "
                          "one with pyarrow.parquet.write_table or raysurr dataset") from None  # fmt: skip


def _tensors(table: pa.Table, kind: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A tensor column as [m, *shape] float32, checked: the simulator's shape, finite."""
    name = next(n for n in NAMES[kind] if n in table.column_names)
    column = table.column(name)
    try:
        if isinstance(column.type, pa.FixedShapeTensorType):
            values = tensor_numpy(column)
        else:  # nested lists, as pandas or plain pyarrow write arrays
            values = np.array(column.to_pylist(), dtype=np.float32)
    except (ValueError, TypeError, pa.ArrowException):
        raise ConfigError(f"{where}: its column {name!r} is not one array of numbers per sample") from None
    if values.shape[1:] != tuple(shape):
        raise ConfigError(f"{where}: its {kind}s (column {name!r}) have shape {list(values.shape[1:])}, the "
                          f"simulator's {list(shape)}; it belongs to another simulator or grid")  # fmt: skip
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        raise ConfigError(f"{where}: the {kind}s of rows {np.flatnonzero(bad)[:5].tolist()} are not finite")
    return values.astype(np.float32, copy=False)


def _check_unique(params: np.ndarray, where: str) -> None:
    _, first, counts = np.unique(params, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        row = int(first[np.argmax(counts > 1)])
        twice = np.flatnonzero((params == params[row]).all(axis=1)).tolist()
        raise ConfigError(f"{where}: rows {twice[:5]} hold the same parameter set; keep one of each")


def _check_rendered(simulator: AbstractSimulator, params: np.ndarray, inputs: np.ndarray, where: str) -> None:
    rendered = simulator.render(params)
    scale = max(float(np.abs(rendered).max()), 1e-12)
    off = np.abs(rendered - inputs).reshape(len(params), -1).max(axis=1) > 1e-4 * scale
    if off.any():
        name = getattr(type(simulator), "registered_name", type(simulator).__name__)
        raise ConfigError(f"{where}: the inputs of rows {np.flatnonzero(off)[:5].tolist()} are not what simulator "
                          f"{name!r} renders for their parameters; the file was made by another simulator or other "
                          "options")  # fmt: skip


def store_labelled(store: LabelStore, simulator: AbstractSimulator, sample_ids: np.ndarray, labelled: Labelled) -> int:
    """Store labelled samples the user brought under `sample_ids`, as the simulator's own labels are stored (fidelity
    `imported`, selected by -1: the initial set, extras the source lacks as NaN); ids already stored are skipped, so
    a re-run preparation adds nothing twice. Returns how many were stored."""
    new = ~np.isin(sample_ids, np.fromiter(store.labeled_ids(), dtype=np.int64))
    if not new.any():
        return 0
    n, now = int(new.sum()), time.time()
    extras = {name: labelled.extras.get(name, np.full(len(labelled), np.nan))[new] for name in simulator.extras}
    provenance = {"fidelity": ["imported"] * n, "wall_s": np.zeros(n), "attempts": np.zeros(n, dtype=np.int64),
                  "node": [""] * n, "actor": [""] * n, "labeled_at": np.full(n, now),
                  "selected_by": np.full(n, -1, dtype=np.int64), "selected_at": np.full(n, now),
                  "sent_at": np.full(n, now)}  # fmt: skip
    table = samples_table(simulator, sample_ids[new], labelled.params[new], labelled.inputs[new],
                          Simulation(labelled.targets[new], extras), provenance)  # fmt: skip
    store.write(table, [])
    return n
