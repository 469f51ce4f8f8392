"""Simulations a user already has: read from a raysurr dataset or their own Parquet, checked like a label store."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raysurr.data.imported import read_labelled, store_labelled
from raysurr.data.labels import LabelStore
from raysurr.data.store import tensor_array
from raysurr.errors import ConfigError
from raysurr.simulators import Diffusion2D

SIM = Diffusion2D(grid=16, radius=2)


def users_table(n: int = 6, seed: int = 0, lists: bool = False) -> pa.Table:
    """What a user's own Parquet may look like: the parameters, `inputs` and `targets` (tensors or nested lists)."""
    params = SIM.sample(n, np.random.default_rng(seed))
    inputs, targets = SIM.render(params), SIM.simulate(params).outputs
    columns = {name: params[:, j] for j, name in enumerate(SIM.parameter_names)}
    if lists:
        columns |= {"inputs": pa.array(inputs.tolist()), "targets": pa.array(targets.tolist())}
    else:
        columns |= {"inputs": tensor_array(inputs), "targets": tensor_array(targets)}
    return pa.table(columns)


@pytest.mark.parametrize("lists", [False, True])
def test_a_users_parquet_is_read_with_its_labels(tmp_path, lists):
    pq.write_table(users_table(lists=lists), tmp_path / "mine.parquet")
    labelled = read_labelled(tmp_path / "mine.parquet", SIM, "pool.initial_from")
    assert len(labelled) == 6 and labelled.inputs.shape == (6, 1, 16, 16) and labelled.targets.dtype == np.float32
    np.testing.assert_allclose(labelled.targets, SIM.simulate(labelled.params).outputs, rtol=1e-6)
    store = LabelStore(tmp_path / "labels", tmp_path / "failures")
    assert store_labelled(store, SIM, np.arange(100, 106), labelled) == 6
    assert store_labelled(store, SIM, np.arange(100, 106), labelled) == 0  # nothing twice
    assert sorted(store.labeled_ids()) == list(range(100, 106)) and store.verify((1, 16, 16), (1, 16, 16)) == 6
    table = store.labels.read()
    assert set(table.column("fidelity").to_pylist()) == {"imported"} and np.isnan(table.column("target_max")).all()


def broken(kind: str) -> pa.Table:
    table = users_table()
    if kind == "missing":
        return table.drop(["targets", "flux2"])
    if kind == "shape":
        return table.set_column(table.column_names.index("inputs"), "inputs", tensor_array(np.zeros((6, 1, 8, 8))))
    if kind == "nan":
        values = table.column("targets").combine_chunks().to_numpy_ndarray().copy()
        values[3, 0, 2, 2] = np.nan
        return table.set_column(table.column_names.index("targets"), "targets", tensor_array(values))
    if kind == "range":
        return table.set_column(0, "row1", pa.array([99.0] * 6))
    if kind == "duplicate":
        return pa.concat_tables([table, table.slice(2, 1)])
    inputs = table.column("inputs").combine_chunks().to_numpy_ndarray() * 0.5  # "render": another simulator's inputs
    return table.set_column(table.column_names.index("inputs"), "inputs", tensor_array(inputs))


@pytest.mark.parametrize(("kind", "message"), [
    ("missing", r"lacks the columns \['flux2', 'target'\]"),
    ("shape", r"its inputs \(column 'inputs'\) have shape \[1, 8, 8\], the simulator's \[1, 16, 16\]; it belongs"),
    ("nan", r"the targets of rows \[3\] are not finite"),
    ("range", r"parameter set 0: row1=99 is not allowed; row1: integer in \[0, 15\]"),
    ("duplicate", r"rows \[2, 6\] hold the same parameter set; keep one of each"),
    ("render", r"the inputs of rows \[0, 1, 2, 3, 4\] are not what simulator 'diffusion2d' renders"),
])  # fmt: skip
def test_a_malformed_source_is_one_line_naming_the_problem(tmp_path, kind, message):
    pq.write_table(broken(kind), tmp_path / "bad.parquet")
    with pytest.raises(ConfigError, match=f"pool.initial_from: '.*bad.parquet'.*{message}"):
        read_labelled(tmp_path / "bad.parquet", SIM, "pool.initial_from")
    with pytest.raises(ConfigError, match="evaluation.test_from: .* does not exist"):
        read_labelled(tmp_path / "none.parquet", SIM, "evaluation.test_from")
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(ConfigError, match="is not a raysurr dataset nor Parquet"):
        read_labelled(tmp_path / "text.parquet", SIM, "evaluation.val_from")
