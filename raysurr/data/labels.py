"""The label store: labelled samples and failure records, append-only, keyed by sample_id."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raysurr.data.records import FailureRecord, failures_table
from raysurr.data.store import PartStore, tensor_numpy
from raysurr.errors import StoreError


class LabelStore:
    """Labelled samples in one folder of part files, failure records in another.

    A chunk's labels are on disk (atomically renamed into place) before `write` returns, so
    nothing downstream can see a label that a crash could lose.

    Example:
        >>> import tempfile
        >>> store = LabelStore(tempfile.mkdtemp() + "/labels", tempfile.mkdtemp() + "/failures")
        >>> store.write(pa.table({"sample_id": [1, 2]}), [FailureRecord(3, "timeout", "TimeoutError", "slow")])
        >>> sorted(store.labeled_ids()), sorted(store.failed_ids())
        ([1, 2], [3])
    """

    def __init__(self, labels: str | Path, failures: str | Path) -> None:
        self.labels = PartStore(labels)
        self.failures = PartStore(failures)

    @staticmethod
    def _ids(store: PartStore) -> set[int]:
        """Every sample id the store holds; StoreError naming the two files if one is held twice."""
        where: dict[int, str] = {}
        for part in store.parts():
            for i in pq.read_table(part, columns=["sample_id"]).column(0).to_pylist():
                if i in where:
                    raise StoreError(f"sample {i} is stored twice, in {where[i]!r} and {str(part)!r} (a copied part?); "
                                     "move the copy out of the folder")  # fmt: skip
                where[i] = str(part)
        return set(where)

    def labeled_ids(self) -> set[int]:
        return self._ids(self.labels)

    def failed_ids(self) -> set[int]:
        return self._ids(self.failures)

    def verify(self, input_shape: Sequence[int] | None = None, output_shape: Sequence[int] | None = None) -> int:
        """Check everything the store holds, reading it whole; returns the label count.

        Checks each part against the manifest's checksum, that no id is stored twice (labelled,
        failed, or both), that inputs and targets are finite and of the simulator's shapes.

        Raises:
            StoreError: naming the first file that fails a check and what to do.
        """
        self.labels.check(checksums=True)
        self.failures.check(checksums=True)
        labeled, failed = self.labeled_ids(), self.failed_ids()
        if labeled & failed:
            raise StoreError(f"samples {sorted(labeled & failed)[:5]} are both labelled and recorded as failed in "
                             f"{str(self.labels.directory.parent)!r}; the store was edited by hand")  # fmt: skip
        shapes = {"input": input_shape, "target": output_shape}
        for part in self.labels.parts():
            table = pq.read_table(part, columns=[c for c in shapes if c in pq.read_schema(part).names])
            for name, shape in shapes.items():
                if name not in table.column_names:
                    raise StoreError(f"part {str(part)!r} has no {name!r} column; it is not a raysurr label part")
                values = tensor_numpy(table.column(name))
                if shape is not None and list(values.shape[1:]) != list(shape):
                    raise StoreError(f"part {str(part)!r} holds {name}s of shape {list(values.shape[1:])}, but "
                                     f"the simulator's are {list(shape)}; it belongs to another simulator or "
                                     "grid")  # fmt: skip
                if not np.isfinite(values).all():
                    raise StoreError(f"part {str(part)!r} holds non-finite {name} values; restore it from a backup "
                                     "or move it out of the folder (its samples are then labelled again)")  # fmt: skip
        return len(labeled)

    def write(self, table: pa.Table | None, failures: list[FailureRecord]) -> None:
        if table is not None and table.num_rows:
            self.labels.write(table)
        if failures:
            self.failures.write(failures_table(failures))

    def set_failures_aside(self, name: str) -> int:
        """Move the failure records into `failures/NAME/` (kept for the record), so that their ids are no
        longer known to have failed and get simulated again; returns how many parts moved.

        The manifest moves first: a crash half-way leaves parts without a manifest, which are adopted.
        """
        parts = self.failures.parts()
        if not parts:
            return 0
        aside = self.failures.directory / name
        aside.mkdir()
        for path in [self.failures.manifest, *parts]:
            os.replace(path, aside / path.name)
        return len(parts)

    def read_failures(self) -> pa.Table:
        return self.failures.read() if self.failures.parts() else failures_table([])


def parameter_ranges(source: str | Path | Sequence[Path], names: Sequence[str]) -> tuple[dict[str, list[float]], int]:
    """({name: [lowest, highest]} of each parameter over a set of labelled samples, how many): what a surrogate
    trained on them has seen (its predictions outside extrapolate). `source`: a folder of parts, or a list of them."""
    files = [source] if isinstance(source, (str, Path)) else list(source)
    table = pa.concat_tables([pq.read_table(f, columns=list(names)) for f in files]) if files else None
    if table is None or table.num_rows == 0:
        return {}, 0
    ranges = {name: [float(np.min(table.column(name))), float(np.max(table.column(name)))] for name in names}
    return ranges, table.num_rows
