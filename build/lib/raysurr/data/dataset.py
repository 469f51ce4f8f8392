"""Labelled datasets written by `python -m raysurr.dataset`: splits of samples plus a manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from raysurr.data.store import PartStore, tensor_numpy
from raysurr.errors import DatasetError

FORMAT_VERSION = 1
MANIFEST = "dataset.yaml"
WHOLE = "all"  # the split name of a dataset written without --split


@dataclass(frozen=True)
class DatasetInfo:
    """What `dataset.yaml` records about a dataset folder."""

    root: Path
    simulator: dict[str, Any]
    parameters: list[str]
    input_shape: list[int]
    output_shape: list[int]
    extras: list[str]
    splits: dict[str, int]
    seed: int
    format_version: int = FORMAT_VERSION
    meta: dict[str, Any] = field(default_factory=dict)

    def split_dir(self, split: str) -> Path:
        if split not in self.splits:
            raise DatasetError(f"dataset {str(self.root)!r} has no split {split!r}; it has: {', '.join(self.splits)}")
        return self.root if split == WHOLE else self.root / split

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "root"}
        return out


def write_manifest(info: DatasetInfo, directory: Path) -> None:
    (directory / MANIFEST).write_text(yaml.safe_dump(info.to_dict(), sort_keys=False))


def open_dataset(root: str | Path) -> DatasetInfo:
    """Read a dataset's manifest; a folder without one is not a complete dataset."""
    root = Path(root)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise DatasetError(
            f"{str(root)!r} is not a complete raysurr dataset (no {MANIFEST}); write one with python -m raysurr.dataset"
        )
    data = yaml.safe_load(manifest.read_text())
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise DatasetError(f"{str(root)!r} has dataset format {version}; this raysurr reads format {FORMAT_VERSION}")
    return DatasetInfo(root=root, **data)


def read_split(root: str | Path, split: str = WHOLE, columns: list[str] | None = None) -> pa.Table:
    """A split as one Arrow table sorted by sample_id."""
    info = open_dataset(root)
    table = PartStore(info.split_dir(split)).read(columns)
    return table.sort_by("sample_id") if "sample_id" in table.column_names else table


def read_arrays(table: pa.Table) -> dict[str, np.ndarray]:
    """Every column as numpy: tensors as [n, *shape], others as [n]."""
    out = {}
    for name in table.column_names:
        column = table.column(name)
        out[name] = tensor_numpy(column) if isinstance(column.type, pa.FixedShapeTensorType) else column.to_numpy()
    return out
