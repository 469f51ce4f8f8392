"""Surrogate models (pure torch, no Ray). Importing this package registers the built-in ones."""

from __future__ import annotations

from torch import nn

from raysurr.config import ModelConfig
from raysurr.models.autoencoder import Autoencoder
from raysurr.models.registry import MODELS, register_model
from raysurr.models.unet import UNet


def build_model(config: ModelConfig, in_channels: int, out_channels: int) -> nn.Module:
    """Build the configured architecture for a simulator's channel counts."""
    return MODELS.build(config.name, section="model", in_channels=in_channels, out_channels=out_channels,
                        **config.options)  # fmt: skip


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "Autoencoder", "UNet", "build_model", "count_parameters", "register_model"]
