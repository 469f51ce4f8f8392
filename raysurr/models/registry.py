"""The model registry (kept apart so that model modules can register without import cycles)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from raysurr.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")
register_model = MODELS.register


def build_network(name: str, section: str | None = None, **options: Any) -> nn.Module:
    """Build a registered model. One whose `channels_last` attribute is true (a convolutional network,
    where it pays) gets its 4-D weights in torch's channels-last layout, which its convolutions then
    run in whatever the input's layout: on a CPU the narrow networks train 1.2-1.4x and infer 1.3-1.8x
    faster than in the default layout (`benchmarks/peers.py`, `layout_ratio`), with the same values to
    float rounding. Off by default: a network that reshapes its maps with `view` fails in that layout."""
    model = MODELS.build(name, section, **options)
    if getattr(model, "channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    return model
