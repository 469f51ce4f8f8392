"""Parquet samples: bit-exact round trip, schema, atomic files and folders, a store that checks what it reads."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from raysurr.data import PartStore, read_arrays, samples_table, staged_directory
from raysurr.data.labels import LabelStore
from raysurr.data.store import write_table
from raysurr.errors import DatasetError, StoreError
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
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith((".", "_"))] == ["part-000000.parquet"]
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


def two_part_store(tmp_path):
    store = LabelStore(tmp_path / "labels", tmp_path / "failures")
    store.write(make_table(3, first_id=0)[0], [])
    store.write(make_table(3, first_id=3)[0], [])
    return store, tmp_path / "labels"


def test_a_deleted_part_is_noticed(tmp_path):
    store, labels = two_part_store(tmp_path)
    (labels / "part-000000.parquet").unlink()
    with pytest.raises(StoreError, match=r"part-000000.parquet' is listed in the manifest but missing \(3 rows lost\)"):
        store.labeled_ids()


def test_a_copied_part_is_refused(tmp_path):
    store, labels = two_part_store(tmp_path)
    (labels / "part-000000 (copy).parquet").write_bytes((labels / "part-000000.parquet").read_bytes())
    with pytest.raises(StoreError, match=r"part-000000 \(copy\).parquet' is not in the store's manifest"):
        store.labeled_ids()


def test_a_part_duplicated_under_a_new_name_is_refused(tmp_path):
    store, labels = two_part_store(tmp_path)
    (labels / "part-000002.parquet").write_bytes((labels / "part-000001.parquet").read_bytes())
    with pytest.raises(StoreError, match="sample 3 is stored twice"):  # adopted as the newest, then caught
        store.labeled_ids()


@pytest.mark.parametrize("damage", ["truncate", "rewrite"])
def test_an_altered_part_is_refused(tmp_path, damage):
    store, labels = two_part_store(tmp_path)
    part = labels / "part-000001.parquet"
    if damage == "truncate":
        part.write_bytes(part.read_bytes()[:-100])
        match = "differs from what was written"
        with pytest.raises(StoreError, match=match):
            store.labeled_ids()
    else:  # same size, a NaN in a target: only the checksum sees it
        table, _ = make_table(3, first_id=3)
        target = table.column("target").combine_chunks().to_numpy_ndarray().copy()
        target[0, 0, 0, 0] = np.nan
        from raysurr.data.store import tensor_array

        write_table(table.set_column(table.column_names.index("target"), "target", tensor_array(target)), part)
        with pytest.raises(StoreError, match="part-000001.parquet' differs from what was written"):
            store.verify()


def test_non_finite_or_misshapen_labels_are_refused_by_verify(tmp_path):
    store = LabelStore(tmp_path / "labels", tmp_path / "failures")
    table, _ = make_table(2)
    target = table.column("target").combine_chunks().to_numpy_ndarray().copy()
    target[1] = np.inf
    from raysurr.data.store import tensor_array

    store.write(table.set_column(table.column_names.index("target"), "target", tensor_array(target)), [])
    with pytest.raises(StoreError, match="holds non-finite target values"):
        store.verify()
    with pytest.raises(StoreError, match=r"holds inputs of shape \[1, 16, 16\], but the simulator's are \[1, 32, 32\]"):
        store.verify(input_shape=[1, 32, 32])


def test_the_part_a_crash_left_unlisted_is_adopted(tmp_path):
    """Killed between the rename and the manifest line: the newest part is whole and is kept."""
    store, labels = two_part_store(tmp_path)
    write_table(make_table(2, first_id=6)[0], labels / "part-000002.parquet")
    assert store.labeled_ids() == set(range(8))
    assert store.verify() == 8


def test_a_store_from_before_manifests_is_adopted(tmp_path):
    store, labels = two_part_store(tmp_path)
    (labels / "_manifest.jsonl").unlink()
    assert store.labeled_ids() == set(range(6)) and store.verify() == 6


def test_failures_set_aside_are_simulated_again(tmp_path):
    from raysurr.data.records import FailureRecord

    store = LabelStore(tmp_path / "labels", tmp_path / "failures")
    store.write(None, [FailureRecord(4, "exception", "OSError", "busy")])
    assert store.set_failures_aside("retried-1") == 1
    assert store.failed_ids() == set()
    assert (tmp_path / "failures" / "retried-1" / "part-000000.parquet").exists()
