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


def check_model(config: ModelConfig, input_shape: Sequence[int], output_shape: Sequence[int]) -> None:
    """ConfigError unless the configured model builds and maps one [C, H, W] input to one output of
    `output_shape`: one forward pass of one zero sample on the CPU, without gradients (a fraction of a second;
    torch's meta device would need no memory but loads torch's Python decompositions, seconds per process)."""
    model = build_model(config, input_shape[0], output_shape[0])
    try:
        with torch.no_grad():
            shape = tuple(model.eval()(torch.zeros(1, *input_shape)).shape[1:])
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
