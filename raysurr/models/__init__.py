"""Surrogate models (pure torch, no Ray). Importing this package registers the built-in ones."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from raysurr.config import ModelConfig
from raysurr.errors import ConfigError
from raysurr.models.autoencoder import Autoencoder
from raysurr.models.fno import FNO
from raysurr.models.registry import MODELS, build_network, register_model
from raysurr.models.unet import UNet


def build_model(config: ModelConfig, in_channels: int, out_channels: int) -> nn.Module:
    """Build the configured architecture for a simulator's channel counts."""
    return build_network(config.name, section="model", in_channels=in_channels, out_channels=out_channels,
                         **config.options)  # fmt: skip


# Above this many parameters (400 MB of float32 weights) `check_model` checks the shapes on torch's meta device.
META_CHECK_PARAMETERS = 100_000_000


def check_model(config: ModelConfig, input_shape: Sequence[int], output_shape: Sequence[int]) -> None:
    """ConfigError unless the configured model builds and maps one [C, H, W] input to one output of
    `output_shape`.

    The network is first built on torch's meta device, which allocates nothing. Up to
    `META_CHECK_PARAMETERS` parameters the check is one forward pass of one zero sample on the CPU,
    without gradients (a fraction of a second); above, the pass runs on the meta device too (about
    1.5 s: it loads torch's Python decompositions), so that a mistyped width or depth (an autoencoder
    of depth 12 has 3 G parameters) is refused at once instead of after initialising 13 GB of weights.
    """
    device = "meta"
    try:
        with torch.device(device):
            model = build_model(config, input_shape[0], output_shape[0])
    except (RuntimeError, NotImplementedError):  # a user's model that cannot be built without memory
        model = None
    if model is None or count_parameters(model) <= META_CHECK_PARAMETERS:
        model, device = build_model(config, input_shape[0], output_shape[0]), "cpu"
    try:
        with torch.no_grad():
            shape = tuple(model.eval()(torch.zeros(1, *input_shape, device=device)).shape[1:])
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ConfigError(f"model ({config.name!r}, options {config.options}) cannot take the simulator's "
                          f"{list(input_shape)} inputs: {detail}") from None  # fmt: skip
    if shape != tuple(output_shape):
        raise ConfigError(f"model ({config.name!r}) maps {list(input_shape)} inputs to {list(shape)}, but the "
                          f"simulator's outputs are {list(output_shape)}; change model options")  # fmt: skip


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["FNO", "MODELS", "Autoencoder", "UNet", "build_model", "check_model", "count_parameters", "register_model"]
