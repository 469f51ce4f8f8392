"""Self-describing surrogate checkpoints: weights plus everything needed to rebuild the model.

A checkpoint file holds the registry name, the init arguments, the input and target transforms
(the per-channel scales the network was trained at), training metadata and a format version, so
`load_surrogate(path)` needs no config and gives a model that takes and returns physical units. Files are read with
`torch.load(weights_only=True)`: only tensors and plain containers, never arbitrary objects.
"""

from __future__ import annotations

import io
import os
import pickle
import uuid
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from raysurr.errors import RaysurrError
from raysurr.models.registry import build_network

FORMAT = "raysurr-surrogate"
VERSION = 3  # 2: the autoencoder decodes in the study's order, the U-Net halves channels with zero padding;
# 3: the U-Net's up-step to an odd size 2h + 1 is a stride-2 transposed conv
# Older versions cannot be migrated on read: their networks compute differently with the same weights. Each is read
# by the raysurr of these commits (all version 0.1.0; there are no release tags yet).
READERS = {1: "f1b3c0d to 2506416 (2026-11-23)", 2: "4dee13d to 151aad1 (2026-11-23)"}
FILENAME = "surrogate.pt"


class CheckpointError(RaysurrError):
    """A checkpoint file is missing, corrupt, or not a raysurr surrogate."""


@dataclass(frozen=True)
class TargetTransform:
    """Model space = (values - shift) / scale, per channel; identity by default (inputs or targets)."""

    shift: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()

    @classmethod
    def max_abs(cls, values: torch.Tensor, reduce: Callable[[float], float] = float) -> TargetTransform:
        """Divide each channel by its largest magnitude in `values` ([n, C, H, W]); no shift, so a zero
        boundary stays zero. A channel that is zero everywhere keeps scale 1. `reduce` combines each
        channel's maximum with other shards' (an all-reduce under DDP); an empty shard contributes 0.

        Example:
            >>> TargetTransform.max_abs(torch.tensor([[[[0.25]], [[-4.0]]], [[[0.125]], [[2.0]]]])).scale
            (0.25, 4.0)
        """
        top = (
            values.detach().abs().amax(dim=(0, *range(2, values.dim())))
            if len(values)
            else values.new_zeros(values.shape[1])
        )
        scale = [reduce(s) for s in top.double().tolist()]
        return cls((), tuple(s if s > 0 else 1.0 for s in scale))

    def to_dict(self) -> dict[str, list[float]]:
        return {"shift": list(self.shift), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TargetTransform:
        data = data or {}
        return cls(tuple(data.get("shift", ())), tuple(data.get("scale", ())))

    def _view(self, values: tuple[float, ...], like: torch.Tensor, default: float) -> torch.Tensor:
        t = torch.tensor(values or (default,), dtype=like.dtype, device=like.device)
        return t.view(1, -1, *([1] * (like.dim() - 2)))

    def forward(self, target: torch.Tensor) -> torch.Tensor:
        return (target - self._view(self.shift, target, 0.0)) / self._view(self.scale, target, 1.0)

    def inverse(self, output: torch.Tensor) -> torch.Tensor:
        return output * self._view(self.scale, output, 1.0) + self._view(self.shift, output, 0.0)


class Surrogate(nn.Module):
    """A trained model plus its input and target transforms: `forward` takes inputs and returns
    targets in the data's units; `model` works in the scaled units it was trained in."""

    def __init__(
        self,
        model: nn.Module,
        transform: TargetTransform | None = None,
        inputs: TargetTransform | None = None,
        baseline: torch.Tensor | None = None,
        metric: TargetTransform | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.transform = transform or TargetTransform()
        self.inputs = inputs or TargetTransform()
        # The scale the weighted MAE is relative to: the validation set's (fixed for a run, so rounds compare).
        self.metric = metric or self.transform
        # The training set's mean target [C, H, W]: the trivial model its skill is measured against.
        self.register_buffer("baseline", baseline, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform.inverse(self.model(self.inputs.forward(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Latent features per sample, [n, F], if the architecture defines them."""
        if not hasattr(self.model, "features"):
            raise CheckpointError(f"model {type(self.model).__name__} has no features(); coreset needs one")
        return self.model.features(self.inputs.forward(x))

    def last_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The map the output layer reads, [n, F, H, W], if the architecture defines it (`last_hidden`)."""
        if not hasattr(self.model, "last_hidden"):
            raise CheckpointError(f"model {type(self.model).__name__} has no last_hidden(); last-layer features "
                                  "need one (or choose features: bottleneck)")  # fmt: skip
        return self.model.last_hidden(self.inputs.forward(x))


@dataclass(frozen=True)
class SurrogateSpec:
    """What a checkpoint records besides the weights."""

    name: str
    init: Mapping[str, Any]
    transform: TargetTransform = field(default_factory=TargetTransform)
    meta: Mapping[str, Any] = field(default_factory=dict)
    inputs: TargetTransform = field(default_factory=TargetTransform)
    baseline: torch.Tensor | None = None  # the training set's mean target, [C, H, W]
    metric: TargetTransform | None = None  # the validation targets' scale, the weighted MAE's; None: `transform`

    def build(self) -> nn.Module:
        return build_network(self.name, **self.init)


def save_surrogate(model: nn.Module, spec: SurrogateSpec, path: str | Path) -> Path:
    """Write a checkpoint atomically; `path` may be a folder (then `surrogate.pt` inside it)."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path.mkdir(parents=True, exist_ok=True)
        path = path / FILENAME
    model = getattr(model, "module", model)  # unwrap DDP
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "name": spec.name,
        "init": dict(spec.init),
        "transform": spec.transform.to_dict(),
        "inputs": spec.inputs.to_dict(),
        "baseline": None if spec.baseline is None else spec.baseline.detach().cpu(),
        "metric": None if spec.metric is None else spec.metric.to_dict(),
        "meta": dict(spec.meta),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(source: str | Path | bytes) -> tuple[SurrogateSpec, dict[str, torch.Tensor]]:
    """The spec and the state dict of a checkpoint, with clear errors for bad files.

    `source` is a checkpoint file or folder, or a checkpoint file's contents (as Ray passes it to
    workers on other nodes, which do not see the driver's disk).
    """
    if isinstance(source, bytes):
        where, handle = "the checkpoint passed in memory", io.BytesIO(source)
    else:
        path = Path(source)
        if path.is_dir():
            path = path / FILENAME
        if not path.is_file():
            raise CheckpointError(f"no surrogate checkpoint at {str(path)!r}")
        where, handle = repr(str(path)), path
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles; the error below says more
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(handle, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{where} is not a readable surrogate checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{where} is not a raysurr surrogate checkpoint (no '{FORMAT}' header)")
    version = payload.get("version")
    if version != VERSION:
        reader = f": raysurr at commits {READERS[version]} reads it" if version in READERS else ""
        raise CheckpointError(f"{where} was written as checkpoint version {version}, which this raysurr (version "
                              f"{VERSION}) cannot read{reader}; retrain, or load it with that raysurr")  # fmt: skip
    transform = TargetTransform.from_dict(payload["transform"])
    inputs = TargetTransform.from_dict(payload.get("inputs"))  # absent from checkpoints before input scaling
    metric = TargetTransform.from_dict(payload["metric"]) if payload.get("metric") else None
    spec = SurrogateSpec(payload["name"], payload["init"], transform, payload["meta"], inputs, payload.get("baseline"),
                         metric)  # fmt: skip
    return spec, payload["state_dict"]


def checkpoint_bytes(path: str | Path) -> bytes:
    """A checkpoint file's contents (`path` may be its folder), to hand to workers that cannot see this disk."""
    path = Path(path)
    path = path / FILENAME if path.is_dir() else path
    if not path.is_file():
        raise CheckpointError(f"no surrogate checkpoint at {str(path)!r}")
    return path.read_bytes()


def load_surrogate(path: str | Path | bytes, device: str | torch.device = "cpu") -> Surrogate:
    """Rebuild a trained surrogate from its checkpoint alone (a path, or its contents), in eval mode.

    Example:
        >>> import tempfile
        >>> from raysurr.models import UNet
        >>> spec = SurrogateSpec("unet", {"base_channels": 2, "depth": 2})
        >>> path = save_surrogate(spec.build(), spec, tempfile.mkdtemp())
        >>> load_surrogate(path).training
        False
    """
    spec, state = read_checkpoint(path)
    model = spec.build()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        where = "the checkpoint" if isinstance(path, bytes) else repr(str(path))
        raise CheckpointError(f"{where}: weights do not fit model {spec.name!r} ({str(exc)[:120]})") from None
    return Surrogate(model, spec.transform, spec.inputs, spec.baseline, spec.metric).to(device).eval()
