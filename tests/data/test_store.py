"""Parquet samples: bit-exact round trip, schema, atomic files and folders."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from raysurr.data import PartStore, read_arrays, samples_table, staged_directory
from raysurr.errors import DatasetError
from raysurr.simulators import Diffusion2D


def make_table(n: int = 5, grid: int = 16, first_id: int = 0) -> tuple[pa.Table, dict]:
    sim = Diffusion2D(grid=grid)
    params = sim.sample(n, np.random.default_rng(first_id))
    result = sim.simulate(params)
    ids = np.arange(first_id, first_id + n)
    provenance = {"fidelity": ["exact"] * n, "wall_s": np.full(n, 1e-4)}
    arrays = {"ids": ids, "params": params, "inputs": sim.render(params), "result": result}
    return samples_table(sim, ids, params, arrays["inputs"], result, provenance), arrays


def test_schema():
    table, _ = make_table()
    assert table.column_names == [
        "sample_id", "row1", "col1", "flux1", "row2", "col2", "flux2",
        "input", "target", "target_max", "fidelity", "wall_s",
    ]  # fmt: skip
    assert table.schema.field("sample_id").type == pa.int64()
    assert table.schema.field("row1").type == pa.int64()
    assert table.schema.field("flux1").type == pa.float64()
    tensor = table.schema.field("input").type
    assert isinstance(tensor, pa.FixedShapeTensorType)
    assert tensor.value_type == pa.float32() and tensor.shape == [1, 16, 16]


def test_round_trip_is_bit_exact(tmp_path):
    table, arrays = make_table()
    store = PartStore(tmp_path / "s")
    store.write(table)
    back = read_arrays(PartStore(tmp_path / "s").read())
    assert np.array_equal(back["sample_id"], arrays["ids"])
    assert np.array_equal(back["input"], arrays["inputs"])
    assert np.array_equal(back["target"], arrays["result"].outputs)
    assert np.array_equal(back["target_max"], arrays["result"].extras["target_max"])
    assert np.array_equal(back["flux1"], arrays["params"][:, 2])


def test_parts_append_and_reopen(tmp_path):
    store = PartStore(tmp_path)
    store.write(make_table(3, first_id=0)[0])
    store.write(make_table(2, first_id=3)[0])
    reopened = PartStore(tmp_path)
    reopened.write(make_table(1, first_id=5)[0])
    assert [p.name for p in reopened.parts()] == ["part-000000.parquet", "part-000001.parquet", "part-000002.parquet"]
    assert sorted(reopened.read(["sample_id"]).column(0).to_pylist()) == list(range(6))


def test_no_temporary_file_is_left_or_read(tmp_path):
    store = PartStore(tmp_path)
    store.write(make_table(2)[0])
    (tmp_path / ".part-000001.parquet.dead.tmp").write_bytes(b"half a file")
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["part-000000.parquet"]
    assert store.read().num_rows == 2


def test_staged_directory_appears_only_when_complete(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError), staged_directory(out) as stage:
        (stage / "x").write_text("partial")
        raise RuntimeError("interrupted")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with staged_directory(out) as stage:
        (stage / "x").write_text("done")
    assert (out / "x").read_text() == "done"


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "old").write_text("keep me")
    with pytest.raises(DatasetError, match="exists and is not empty; pass --overwrite"), staged_directory(out):
        pass
    assert (out / "old").exists()
    with staged_directory(out, overwrite=True) as stage:
        (stage / "new").write_text("1")
    assert sorted(p.name for p in out.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_empty_output_folder_is_accepted(tmp_path):
    with staged_directory(tmp_path / "empty") as stage:
        (stage / "a").write_text("1")
    (tmp_path / "e2").mkdir()
    with staged_directory(tmp_path / "e2") as stage:
        (stage / "a").write_text("1")
    assert (tmp_path / "e2" / "a").exists()
