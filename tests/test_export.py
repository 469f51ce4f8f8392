"""raysurr export: every model family in every format it has, at parity with the Predictor; refusals are one line."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import raysurr
from raysurr.commands import run_command
from raysurr.errors import ConfigError
from raysurr.exporting import export
from raysurr.models.checkpoint import SurrogateSpec, TargetTransform, save_surrogate

SECTION = {"name": "diffusion2d", "grid": 16, "radius": 2}
FAMILIES = {"unet": {"base_channels": 2, "depth": 2}, "autoencoder": {"base_channels": 4, "depth": 2},
            "fno": {"base_channels": 4, "depth": 2, "modes": 4}}  # fmt: skip
SUPPORTED = [(family, fmt) for family in FAMILIES for fmt in ("torchscript", "exported", "onnx")
             if (family, fmt) != ("fno", "onnx")]  # fmt: skip
SUFFIX = {"torchscript": ".pt", "exported": ".pt2", "onnx": ".onnx"}


def predictor(folder, family: str):
    """A surrogate with input and target scaling of its own, which the export must fold in."""
    torch.manual_seed(0)
    spec = SurrogateSpec(family, FAMILIES[family], transform=TargetTransform((), (2.5,)),
                         inputs=TargetTransform((), (0.5,)), meta={"simulator": SECTION, "labels": 10,
                                                                   "ranges": {"flux1": [0.1, 0.9]}})  # fmt: skip
    return raysurr.load(save_surrogate(spec.build(), spec, folder / family).parent)


def run_exported(fmt: str, path, x: torch.Tensor) -> np.ndarray:
    with warnings.catch_warnings():  # torch's own notes: TorchScript's deprecation, how it loads the weights
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        if fmt == "torchscript":
            return torch.jit.load(str(path))(x).detach().numpy()
        if fmt == "exported":
            return torch.export.load(str(path)).module()(x).detach().numpy()
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(path)).run(None, {"inputs": x.numpy()})[0]


@pytest.mark.parametrize(("family", "fmt"), SUPPORTED)
def test_an_exported_surrogate_maps_rendered_inputs_to_the_predictors_fields(tmp_path, family, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxscript")
    surrogate = predictor(tmp_path, family)
    path, sidecar = export(surrogate, fmt, tmp_path / f"out{SUFFIX[fmt]}")
    params = surrogate.renderer.sample(5, np.random.default_rng(1))  # another batch size than the export's example
    x = torch.tensor(surrogate.renderer.render(params))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", raysurr.ExtrapolationWarning)
        expected = surrogate.predict(params)
    np.testing.assert_allclose(run_exported(fmt, path, x), expected, rtol=1e-5, atol=1e-5)
    described = json.loads(sidecar.read_text())
    assert described["simulator"] == SECTION and described["parameters"][:3] == ["row1", "col1", "flux1"]
    assert described["training_ranges"] == {"flux1": [0.1, 0.9]} and described["output_shape"] == [1, 16, 16]


def test_what_cannot_be_exported_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="FNO's spectral layers compute complex FFTs, which ONNX cannot express; "
                       "export it as torchscript or exported"):  # fmt: skip
        export(predictor(tmp_path, "fno"), "onnx", tmp_path / "fno.onnx")
    with pytest.raises(ConfigError, match="a exported file's name ends in .pt2"):
        export(predictor(tmp_path, "unet"), "exported", tmp_path / "unet.pt")
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*partial*"))


def test_the_command_exports_a_checkpoint(tmp_path, capsys):
    surrogate = predictor(tmp_path, "unet")
    out = tmp_path / "model.pt"
    assert run_command("export", ["--run", str(surrogate.source), "--format", "torchscript", "--out", str(out)]) == 0
    assert out.exists() and (tmp_path / "model.pt.json").exists()
    assert run_command("export", ["--run", str(tmp_path), "--format", "torchscript", "--out", str(out)]) == 2
    assert "is neither a run folder nor a surrogate checkpoint" in capsys.readouterr().err
