"""The label store: labelled samples and failure records, append-only, keyed by sample_id."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from raysurr.data.store import PartStore
from raysurr.records import FailureRecord, failures_table


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
        ids: set[int] = set()
        for part in store.parts():
            ids.update(pq.read_table(part, columns=["sample_id"]).column(0).to_pylist())
        return ids

    def labeled_ids(self) -> set[int]:
        return self._ids(self.labels)

    def failed_ids(self) -> set[int]:
        return self._ids(self.failures)

    def write(self, table: pa.Table | None, failures: list[FailureRecord]) -> None:
        if table is not None and table.num_rows:
            self.labels.write(table)
        if failures:
            self.failures.write(failures_table(failures))

    def read_failures(self) -> pa.Table:
        return self.failures.read() if self.failures.parts() else failures_table([])
