"""Small records that cross stage boundaries. Pure: no Ray, no torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa


@dataclass(frozen=True)
class FailureRecord:
    """Why a sample has no label.

    `reason` is one of `exception` (the simulator raised), `non_finite` (it returned NaN/inf),
    `timeout` (it ran past the per-sample limit), `crash` (its process died every time).
    """

    sample_id: int
    reason: str
    error_type: str
    message: str
    attempts: int = 1
    node: str = ""
    actor: str = ""
    wall_s: float = 0.0
    failed_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FAILURE_SCHEMA = pa.schema(
    [("sample_id", pa.int64()), ("reason", pa.string()), ("error_type", pa.string()), ("message", pa.string()),
     ("attempts", pa.int64()), ("node", pa.string()), ("actor", pa.string()), ("wall_s", pa.float64()),
     ("failed_at", pa.float64())]
)  # fmt: skip


def failures_table(failures: list[FailureRecord]) -> pa.Table:
    return pa.Table.from_pylist([f.to_dict() for f in failures], schema=FAILURE_SCHEMA)


@dataclass(frozen=True)
class ChunkResult:
    """What a simulator actor returns for one chunk: labelled rows and failure records."""

    table: pa.Table | None  # a samples table (see raysurr.data.store), None if every sample failed
    failures: list[FailureRecord] = field(default_factory=list)

    @property
    def done(self) -> int:
        return 0 if self.table is None else self.table.num_rows
