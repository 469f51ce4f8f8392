"""The model registry (kept apart so that model modules can register without import cycles)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from raysurr.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")
register_model = MODELS.register


def build_network(name: str, section: str | None = None, **options: Any) -> nn.Module:
    """Build a registered model. One whose class sets `channels_last = True` (a convolutional network)
    gets its 4-D weights in torch's channels-last layout, which its convolutions then run in whatever
    the input's layout: on a CPU 1.2-1.4x the training and 1.4-1.8x the inference samples/s of the
    default layout (`benchmarks/peers.py`'s layout rows), the same values to float rounding. Off by
    default: a network that reshapes its maps with `view` fails in that layout."""
    model = MODELS.build(name, section, **options)
    if getattr(model, "channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    return model
