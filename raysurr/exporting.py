"""Export a trained surrogate for use without raysurr: TorchScript, ONNX or a `torch.export` program. No Ray.

The exported network maps rendered inputs [n, C, H, W] (what the simulator's `render` gives) to fields in the
units of the simulator's targets: the input and target scaling raysurr trained with are folded in as constants.
A sidecar `PATH.json` records what a user of the file needs besides it: the simulator section that renders the
inputs, the parameter names and the ranges the training labels covered, the input and output shapes, the test
metrics and where it came from.

Formats:
    torchscript  `torch.jit.trace`; load with `torch.jit.load(path)` (every model family; torch 2.13 deprecates
                 TorchScript in favour of torch.export, so prefer `exported` for new uses)
    exported     `torch.export`, saved with `torch.export.save`; load with `torch.export.load(path).module()`
    onnx         ONNX (opset 18), dynamic batch; needs `pip install 'raysurr[onnx]'` (onnx, onnxscript, and
                 onnxruntime to run it). The FNO's spectral layers (complex FFTs) have no ONNX form: refused.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path

import torch
from torch import nn

import raysurr
from raysurr.data.store import staged_file
from raysurr.errors import ConfigError
from raysurr.predictor import Predictor

FORMATS = ("torchscript", "onnx", "exported")
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx", "exported": ".pt2"}


class Folded(nn.Module):
    """The bare network with the surrogate's input and target scaling as buffers: inputs in, fields out."""

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        network = predictor.network
        self.model = network.model
        channels_in, channels_out = predictor.renderer.input_shape[0], predictor.output_shape[0]
        for name, transform, channels in (
            ("in", network.inputs, channels_in),
            ("out", network.transform, channels_out),
        ):
            shift = transform.shift or (0.0,) * channels
            scale = transform.scale or (1.0,) * channels
            self.register_buffer(f"{name}_shift", torch.tensor(shift, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer(f"{name}_scale", torch.tensor(scale, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model((x - self.in_shift) / self.in_scale)
        return y * self.out_scale + self.out_shift


def export(predictor: Predictor, fmt: str, out: str | Path) -> tuple[Path, Path]:
    """Write the surrogate in `fmt` to `out` (and its sidecar `out.json`), atomically; returns both paths."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    out = Path(out)
    if out.suffix != SUFFIX[fmt]:
        raise ConfigError(f"a {fmt} file's name ends in {SUFFIX[fmt]} (torch and ONNX tools look for it); got "
                          f"{out.name!r}")  # fmt: skip
    model = Folded(predictor).to("cpu").eval()
    example = torch.tensor(predictor.renderer.render(predictor.renderer.sample(2, _rng())))
    if fmt == "onnx" and _has_complex_layers(model):  # torch 2.13's exporter fails to decompose them (measured)
        raise ConfigError(f"{type(model.model).__name__}'s spectral layers compute complex FFTs, which ONNX cannot "
                          "express; export it as torchscript or exported")  # fmt: skip
    with staged_file(out) as stage:
        {"torchscript": _torchscript, "onnx": _onnx, "exported": _exported}[fmt](model, example, stage)
    sidecar = out.with_name(out.name + ".json")
    sidecar.write_text(json.dumps(describe(predictor, fmt), indent=1, default=float))
    return out, sidecar


def describe(predictor: Predictor, fmt: str) -> dict:
    """The sidecar's contents."""
    return {
        "format": fmt,
        "maps": "rendered inputs [n, *input_shape] -> fields [n, *output_shape] in the units of the targets",
        "input_shape": list(predictor.renderer.input_shape),
        "output_shape": list(predictor.output_shape),
        "simulator": predictor.simulator.to_dict(),
        "plugins": list(predictor.plugins),
        "parameters": list(predictor.parameter_names),
        "training_ranges": {k: list(v) for k, v in predictor.ranges.items()},
        "training_labels": predictor.labels,
        "test_metrics": {k: v for k, v in predictor.metrics.items() if math.isfinite(v)},
        "checkpoint": str(predictor.source) if predictor.source else None,
        "raysurr": raysurr.__version__,
        "torch": torch.__version__,
    }


def _torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Traced at the simulator's grid (the networks' size checks become constants there), any batch size."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; it still runs
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, str(path))


def _exported(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    with warnings.catch_warnings():  # torch's note on how it groups the weights, about devices this CPU file lacks
        warnings.simplefilter("ignore", UserWarning)
        torch.export.save(program, str(path))


def _onnx(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the onnx packages: pip install 'raysurr[onnx]'") from None
    quiet = logging.getLogger("torch.onnx")  # its notes on optional packages (torchvision) and its own internals
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(model, (example,), dynamo=True, input_names=["inputs"], output_names=["fields"],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},), opset_version=18,
                                        verbose=False)  # fmt: skip
        program.save(str(path))
    finally:
        quiet.setLevel(level)


def _has_complex_layers(model: nn.Module) -> bool:
    return any(type(module).__name__ == "SpectralConv2d" for module in model.modules())


def _rng():
    import numpy as np

    return np.random.default_rng(0)
