"""Samples on disk: Parquet part files keyed by `sample_id`, tensors as Arrow fixed-shape tensors.

A sample table has the columns `sample_id` (int64), one column per simulator parameter (int64 or
float64), `input` and `target` (float32 `fixed_shape_tensor`), the simulator's extras (float64)
and provenance (`fidelity`, `wall_s`, `node`, `labeled_at`). Every file is written under a hidden
temporary name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raysurr.errors import DatasetError
from raysurr.simulators.base import AbstractSimulator, Simulation

COMPRESSION = "zstd"


def tensor_array(values: np.ndarray) -> pa.FixedShapeTensorArray:
    """[n, *shape] numpy -> Arrow fixed-shape tensor array of n elements."""
    return pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(values))


def tensor_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Arrow fixed-shape tensor column -> [n, *shape] numpy."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.to_numpy_ndarray()


def samples_table(
    simulator: AbstractSimulator,
    sample_ids: Sequence[int],
    params: np.ndarray,
    inputs: np.ndarray,
    simulation: Simulation,
    provenance: Mapping[str, Sequence[object]],
) -> pa.Table:
    """One table row per labelled sample, in the column order described in the module docstring."""
    columns: dict[str, pa.Array] = {"sample_id": pa.array(np.asarray(sample_ids, dtype=np.int64))}
    for j, p in enumerate(simulator.parameters):
        values = params[:, j].astype(np.int64) if p.integer else params[:, j].astype(np.float64)
        columns[p.name] = pa.array(values)
    columns["input"] = tensor_array(inputs.astype(np.float32, copy=False))
    columns["target"] = tensor_array(simulation.outputs)
    for name in simulator.extras:
        columns[name] = pa.array(np.asarray(simulation.extras[name], dtype=np.float64))
    for name, values in provenance.items():
        columns[name] = pa.array(values)
    return pa.table(columns)


def parameters_table(simulator: AbstractSimulator, sample_ids: Sequence[int], params: np.ndarray) -> pa.Table:
    """A candidate pool on disk: `sample_id` and one column per parameter (inputs are rendered when needed)."""
    columns: dict[str, pa.Array] = {"sample_id": pa.array(np.asarray(sample_ids, dtype=np.int64))}
    for j, p in enumerate(simulator.parameters):
        columns[p.name] = pa.array(params[:, j].astype(np.int64) if p.integer else params[:, j].astype(np.float64))
    return pa.table(columns)


def write_table(table: pa.Table, path: Path) -> Path:
    """Write `table` to `path` atomically (hidden temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    # Dictionaries and min/max statistics of tensor columns cost half the write time and help no reader.
    scalar = [f.name for f in table.schema if not isinstance(f.type, pa.FixedShapeTensorType)]
    pq.write_table(table, tmp, compression=COMPRESSION, use_dictionary=scalar, write_statistics=scalar)
    os.replace(tmp, path)
    return path


class PartStore:
    """An append-only folder of Parquet part files.

    Example:
        >>> import tempfile
        >>> store = PartStore(tempfile.mkdtemp())
        >>> _ = store.write(pa.table({"sample_id": [3, 4]}))
        >>> store.read().column("sample_id").to_pylist()
        [3, 4]
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count(len(self.parts()))

    def parts(self) -> list[Path]:
        return sorted(self.directory.glob("part-*.parquet"))

    def write(self, table: pa.Table) -> Path:
        while True:
            path = self.directory / f"part-{next(self._counter):06d}.parquet"
            if not path.exists():
                return write_table(table, path)

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        parts = self.parts()
        if not parts:
            raise DatasetError(f"no part files in {str(self.directory)!r}")
        return pa.concat_tables(pq.read_table(p, columns=columns) for p in parts)


@contextmanager
def staged_directory(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a hidden temporary name and move it to `out` only when complete.

    An interrupted build leaves a hidden `.NAME.partial-*` folder, never a folder named `out`.

    Raises:
        DatasetError: `out` exists, is not empty, and `overwrite` is false.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DatasetError(f"output {str(out)!r} exists and is not empty; pass --overwrite or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
    os.rename(staging, out)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() else old.unlink()
