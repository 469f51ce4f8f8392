"""raysurr.load and Predictor.predict: fields from parameter sets, spread, ranges, inputs of every kind. No Ray."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

import raysurr
from raysurr.errors import ParameterError, RaysurrError
from raysurr.models.checkpoint import CheckpointError, SurrogateSpec, save_surrogate
from raysurr.simulators import Diffusion2D

SIM = Diffusion2D(grid=16, radius=2)
SECTION = {"name": "diffusion2d", "grid": 16, "radius": 2}
RANGES = {"row1": [2, 12], "col1": [1, 14], "flux1": [0.05, 0.95], "row2": [1, 14], "col2": [1, 14], "flux2": [1, 1]}


def checkpoint(folder, seed: int = 0, dropout: float = 0.0, meta: dict | None = None):
    torch.manual_seed(seed)
    spec = SurrogateSpec("unet", {"base_channels": 2, "depth": 2, "dropout": dropout},
                         meta={"simulator": SECTION, "ranges": RANGES, "labels": 40, **(meta or {})})  # fmt: skip
    return save_surrogate(spec.build(), spec, folder).parent


def inside(n: int = 5) -> np.ndarray:
    params = SIM.sample(200, np.random.default_rng(0))
    keep = np.all([(params[:, j] >= lo) & (params[:, j] <= hi) for j, (lo, hi) in enumerate(RANGES.values())], axis=0)
    return params[keep][:n]


def test_predict_is_the_network_on_rendered_inputs_for_every_kind_of_input(tmp_path):
    predictor = raysurr.load(checkpoint(tmp_path / "ck"))
    params = inside()
    with torch.no_grad():
        expected = predictor.network(torch.tensor(SIM.render(params))).numpy()
    names = SIM.parameter_names
    frame = pd.DataFrame(params, columns=list(names))
    for given in (params, frame, pa.Table.from_pandas(frame), frame.to_dict("records"), params.tolist()):
        np.testing.assert_allclose(predictor.predict(given), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predictor.predict(params, batch_size=2), expected, rtol=1e-5, atol=1e-6)  # batches
    assert predictor.predict(params).shape == (5, 1, 16, 16) and predictor.labels == 40
    assert predictor.parameter_names == names and predictor.ranges["flux1"] == (0.05, 0.95)


def test_parameters_outside_the_training_range_warn_and_strict_refuses(tmp_path):
    predictor = raysurr.load(checkpoint(tmp_path / "ck"))
    params = inside(3)
    params[1, 2] = 0.99  # flux1 beyond the labels' 0.95, within the simulator's [0, 1]
    with pytest.warns(raysurr.ExtrapolationWarning, match=r"flux1=0.99 \(parameter set 1, and 0 more\) lies outside "
                      r"\[0.05, 0.95\], the range the surrogate's training labels covered"):  # fmt: skip
        predictor.predict(params)
    assert issubclass(raysurr.ExtrapolationWarning, UserWarning)
    with pytest.raises(ParameterError, match="flux1=0.99"):
        predictor.predict(params, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", raysurr.ExtrapolationWarning)  # Python's filters apply
        predictor.predict(params)
    params[0, 0] = 40  # outside the simulator's own range: nothing can be rendered there
    with pytest.raises(ParameterError, match=r"row1=40 is not allowed; row1: integer in \[0, 15\]"):
        predictor.predict(params)


@pytest.mark.parametrize(("given", "message"), [
    ({"row1": [1.0]}, r"must be exactly row1, col1, flux1, row2, col2, flux2; missing \['col1'"),
    ({**{n: [1.0] for n in SIM.parameter_names}, "speed": [2.0]}, r"; unknown \['speed'\]"),
    ({**{n: [1.0] for n in SIM.parameter_names}, "flux1": ["high"]}, "column 'flux1' holds values that are not"),
])  # fmt: skip
def test_bad_tables_are_one_line_errors(tmp_path, given, message):
    predictor = raysurr.load(checkpoint(tmp_path / "ck"))
    with pytest.raises(ParameterError, match=message):
        predictor.predict(pd.DataFrame(given))
    with pytest.raises(ParameterError, match=r"expected parameter sets of shape \[n, 6\]"):
        predictor.predict(np.zeros((2, 5)))


def test_the_spread_is_zero_for_identical_members_and_comes_from_dropout_otherwise(tmp_path):
    base = checkpoint(tmp_path / "round_000")
    for member in (1, 2):  # an ensemble's members beside the round's model: identical weights here
        checkpoint(tmp_path / f"round_000_member{member}")
    mean, std = raysurr.load(base).predict(inside(), return_std=True)
    assert std.shape == mean.shape and np.all(std == 0)
    checkpoint(tmp_path / "round_000_member2", seed=7)
    assert raysurr.load(base).predict(inside(), return_std=True)[1].max() > 0
    dropout = raysurr.load(checkpoint(tmp_path / "dropout" / "round_000", dropout=0.3))
    assert dropout.predict(inside(), return_std=True)[1].max() > 0
    with pytest.raises(RaysurrError, match="no ensemble members and no dropout: it has no spread"):
        raysurr.load(checkpoint(tmp_path / "plain")).predict(inside(), return_std=True)


def test_a_checkpoint_without_its_simulator_is_refused_in_one_line(tmp_path):
    spec = SurrogateSpec("unet", {"base_channels": 2, "depth": 2})
    path = save_surrogate(spec.build(), spec, tmp_path / "old")
    with pytest.raises(CheckpointError, match="does not record the simulator that renders its inputs"):
        raysurr.load(path)
    with pytest.raises(CheckpointError, match="is neither a run folder nor a surrogate checkpoint"):
        raysurr.load(tmp_path)
