"""Samples on disk: Parquet part files keyed by `sample_id`, tensors as Arrow fixed-shape tensors.

A sample table has the columns `sample_id` (int64), one column per simulator parameter (int64 or
float64), `input` and `target` (float32 `fixed_shape_tensor`), the simulator's extras (float64)
and provenance (`fidelity`, `wall_s`, `node`, `labeled_at`). Every file is written under a hidden
temporary name, flushed to the disk and renamed into place, so a reader never sees half a file and
a power cut cannot lose what a rename announced. A `PartStore` lists its parts (name, rows, bytes,
SHA-256) in `_manifest.jsonl`, so a missing, extra, truncated or altered part is noticed on reading.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raysurr.errors import DatasetError, StoreError
from raysurr.simulators.base import AbstractSimulator, Simulation

if TYPE_CHECKING:
    from raysurr.config import Config

COMPRESSION = "zstd"
MANIFEST = "_manifest.jsonl"  # readers of `*.parquet` and pyarrow's datasets skip names that start with "_"


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
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write a small text file atomically and durably (temporary file, fsync, rename, fsync the folder)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    _fsync(tmp)
    os.replace(tmp, path)
    _fsync(path.parent)
    return path


def write_config(config: Config, directory: Path) -> Path:
    """The resolved config as `directory/config.yaml`, which resuming and `check` read back."""
    return write_text(Path(directory) / "config.yaml", config.to_yaml())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class PartStore:
    """An append-only folder of Parquet part files with a manifest of what it holds.

    Example:
        >>> import tempfile
        >>> store = PartStore(tempfile.mkdtemp())
        >>> _ = store.write(pa.table({"sample_id": [3, 4]}))
        >>> store.read().column("sample_id").to_pylist()
        [3, 4]
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)  # created by the first write
        self.manifest = self.directory / MANIFEST
        self._counter = itertools.count(len(list(self.directory.glob("part-*.parquet"))))

    def parts(self) -> list[Path]:
        """The parts the manifest lists, after checking that they and only they are on disk."""
        return self.check()

    def write(self, table: pa.Table) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            path = self.directory / f"part-{next(self._counter):06d}.parquet"
            if not path.exists():
                write_table(table, path)
                self._list(path, table.num_rows)
                return path

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        parts = self.parts()
        if not parts:
            raise DatasetError(f"no part files in {str(self.directory)!r}")
        return pa.concat_tables(pq.read_table(p, columns=columns) for p in parts)

    def entries(self) -> dict[str, dict]:
        """{part name: its manifest entry (rows, bytes, sha256)}."""
        if not self.manifest.exists():
            return {}
        entries = {}
        for number, line in enumerate(self.manifest.read_text().splitlines(), 1):
            try:
                entry = json.loads(line)
                entries[entry["part"]] = entry
            except (ValueError, KeyError, TypeError):
                if line.strip():
                    raise StoreError(f"{str(self.manifest)!r} line {number} is damaged; {_CHECK}") from None
        return entries

    def check(self, checksums: bool = False) -> list[Path]:
        """The listed parts, in order; StoreError naming the file if one is missing, extra, resized or altered.

        A part on disk but not in the manifest is adopted when it is the newest part and reads whole:
        the one way a crash leaves it (between the rename and the manifest line). A store from before
        manifests is adopted whole.
        """
        on_disk = {p.name: p for p in self.directory.glob("part-*.parquet")}
        entries = self.entries()
        if not entries and on_disk and not self.manifest.exists():
            for path in sorted(on_disk.values()):
                self._list(path, _rows(path))
            entries = self.entries()
        for name in sorted(set(entries) - set(on_disk)):
            raise StoreError(f"part {str(self.directory / name)!r} is listed in the manifest but missing "
                             f"({entries[name]['rows']} rows lost); restore it from a backup; {_CHECK}")  # fmt: skip
        newest = max(entries, default="")
        for name in sorted(set(on_disk) - set(entries)):
            if name < newest or _rows(on_disk[name]) is None:
                raise StoreError(f"part {str(on_disk[name])!r} is not in the store's manifest (copied in, or "
                                 f"left by another program); move it out of the folder; {_CHECK}")  # fmt: skip
            self._list(on_disk[name], _rows(on_disk[name]))
            entries = self.entries()
        for name, entry in entries.items():
            path = on_disk[name]
            if path.stat().st_size != entry["bytes"] or (checksums and file_digest(path) != entry["sha256"]):
                raise StoreError(f"part {str(path)!r} differs from what was written (size or checksum); restore it "
                                 f"from a backup or move it out of the folder; {_CHECK}")  # fmt: skip
        return [on_disk[name] for name in sorted(entries)]

    def _list(self, path: Path, rows: int | None) -> None:
        entry = {"part": path.name, "rows": rows, "bytes": path.stat().st_size, "sha256": file_digest(path)}
        with self.manifest.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


_CHECK = "python -m raysurr check FOLDER lists every problem"


def _rows(path: Path) -> int | None:
    """The row count of a readable Parquet file, None if it is not one."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return None


@contextmanager
def staged_file(out: str | Path) -> Iterator[Path]:
    """Write a file under a hidden temporary name beside `out` and rename it to `out` only when complete (an error
    removes it: nothing is left at `out`, and an existing `out` is replaced only by a finished file)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = (
        out.parent / f".{out.stem}.partial-{uuid.uuid4().hex[:8]}{out.suffix}"
    )  # the suffix kept: some writers check it
    try:
        yield stage
    except BaseException:
        stage.unlink(missing_ok=True)
        raise
    _fsync(stage)
    os.replace(stage, out)
    _fsync(out.parent)


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
