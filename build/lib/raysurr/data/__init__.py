"""Samples and datasets on disk (Parquet); no Ray."""

from raysurr.data.dataset import DatasetInfo, open_dataset, read_arrays, read_split
from raysurr.data.store import PartStore, samples_table, staged_directory, tensor_array, tensor_numpy

__all__ = [
    "DatasetInfo",
    "PartStore",
    "open_dataset",
    "read_arrays",
    "read_split",
    "samples_table",
    "staged_directory",
    "tensor_array",
    "tensor_numpy",
]
