"""`raysurr.dataset` on a local Ray: splits, schema, values, determinism, refusals."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from raysurr.commands.dataset import main
from raysurr.config import Config, read_yaml
from raysurr.data import open_dataset, read_arrays, read_split
from raysurr.errors import ConfigError, DatasetError, ParameterError, RegistryError
from raysurr.seeding import generator
from raysurr.simulators import Diffusion2D

pytestmark = pytest.mark.timeout(180)

SMALL = ["--set", "simulator.grid=24", "--set", "labeling.chunk_size=8"]


@pytest.fixture(scope="module")
def split_dataset(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "study"
    assert main(["--split", "30,20,10", "--seed", "3", "--out", str(out), *SMALL]) == 0
    return out


def test_splits_are_disjoint_and_cover_the_samples(split_dataset):
    info = open_dataset(split_dataset)
    assert info.splits == {"train": 30, "val": 20, "test": 10}
    ids = {name: read_split(split_dataset, name, ["sample_id"]).column(0).to_pylist() for name in info.splits}
    assert [len(set(v)) for v in ids.values()] == [30, 20, 10]
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == list(range(60))
    params = {name: read_split(split_dataset, name, ["row1", "col1", "flux1"]).to_pandas() for name in info.splits}
    keys = [set(map(tuple, frame.to_numpy().tolist())) for frame in params.values()]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])


def test_values_match_the_simulator(split_dataset):
    sim = Diffusion2D(grid=24)
    expected = sim.sample(60, generator(3, "dataset"))
    arrays = read_arrays(read_split(split_dataset, "val"))
    ids = arrays["sample_id"]
    stored = np.column_stack([arrays[name] for name in sim.parameter_names])
    assert np.array_equal(stored, expected[ids])
    assert np.array_equal(arrays["input"], sim.render(expected[ids]))
    result = sim.simulate(expected[ids])
    assert np.abs(arrays["target"] - result.outputs).max() < 1e-6
    assert np.allclose(arrays["target_max"], result.extras["target_max"], rtol=1e-12)
    assert set(arrays["fidelity"]) == {"exact"} and np.all(arrays["wall_s"] > 0)


def test_manifest_and_resolved_config(split_dataset):
    info = open_dataset(split_dataset)
    assert info.parameters == ["row1", "col1", "flux1", "row2", "col2", "flux2"]
    assert info.input_shape == info.output_shape == [1, 24, 24]
    assert info.extras == ["target_max"] and info.seed == 3
    config = Config.from_dict(read_yaml(split_dataset / "config.yaml"))
    assert config.simulator.options["grid"] == 24 and config.seed == 3
    schema = read_split(split_dataset, "train").schema
    assert schema.field("target").type == pa.fixed_shape_tensor(pa.float32(), [1, 24, 24])


def test_same_seed_same_dataset(ray_local, tmp_path):
    for name in ["a", "b"]:
        main(["--n", "12", "--seed", "9", "--out", str(tmp_path / name), *SMALL])
    a, b = (read_arrays(read_split(tmp_path / name)) for name in ["a", "b"])
    for column in ["sample_id", "row1", "flux1", "input", "target", "target_max"]:
        assert np.array_equal(a[column], b[column]), column


def test_transient_solver_through_ray_agrees_with_exact(ray_local, tmp_path):
    main(["--n", "3", "--solver", "transient", "--out", str(tmp_path / "t"), "--set", "simulator.grid=16"])
    arrays = read_arrays(read_split(tmp_path / "t"))
    sim = Diffusion2D(grid=16)
    params = np.column_stack([arrays[name] for name in sim.parameter_names])
    assert np.abs(arrays["target"] - sim.simulate(params).outputs).max() <= 1e-5
    assert set(arrays["fidelity"]) == {"transient"}


def test_existing_output_is_refused(ray_local, tmp_path):
    out = tmp_path / "d"
    main(["--n", "4", "--out", str(out), *SMALL])
    with pytest.raises(DatasetError, match="exists and is not empty; pass --overwrite"):
        main(["--n", "4", "--out", str(out), *SMALL])
    main(["--n", "6", "--out", str(out), "--overwrite", *SMALL])
    assert open_dataset(out).splits == {"all": 6}


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--n", "4", "--solver", "multigrid"], RegistryError, "unknown diffusion2d solver 'multigrid'; registered"),
        (["--n", "4", "--simulator", "heat"], RegistryError, r"unknown simulator 'heat'; registered: .*diffusion2d"),
        (["--n", "4", "--set", "simulator.grid=8"], ParameterError, "grid=8 is smaller than a source disc"),
        (["--n", "0"], ConfigError, "--n must be a positive integer"),
        (["--split", "10,x"], ConfigError, "--split must be comma-separated integers"),
        (["--split", "1,2,3,4"], ConfigError, "--split needs 1 to 3 positive sizes"),
        (["--n", "5", "--split", "1,2"], ConfigError, "--n 5 does not equal the sum of --split"),
    ],
)
def test_bad_arguments_fail_before_any_work(tmp_path, args, error, message):
    with pytest.raises(error, match=message):
        main([*args, "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
