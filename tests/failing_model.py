"""A model that fails once training starts (a plugin module, imported only by the commands that name it).

Kept apart from the other test plugins: a registered model joins every test that iterates over
the registry.
"""

from __future__ import annotations

import torch
from torch import nn

from raysurr.models import register_model


@register_model("fails_in_training")
class FailsInTraining(nn.Module):
    """Builds like any model and passes the shape check (a forward pass without gradients); its forward with
    gradients on raises, so a run with it fails once training starts."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x):
        if not torch.is_grad_enabled():
            return self.conv(x)
        raise RuntimeError("fails_in_training: this model always fails")
