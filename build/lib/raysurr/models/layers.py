"""Building blocks shared by the surrogates. Pure torch."""

from __future__ import annotations

import torch
from torch import nn


def absorbing_pad(x: torch.Tensor, width: int) -> torch.Tensor:
    """Pad H and W with the sign-flipped reflection, so the field is odd-symmetric across each edge.

    The pad mirrors the cells next to the edge cell with their sign flipped (`reflect` mode without
    repeating the edge), one axis after the other, so a corner pad gets both flips. A field that
    vanishes at the edge stays smooth across it: the zero boundary of the diffusion PDE.

    Example:
        >>> absorbing_pad(torch.tensor([[[[1.0, 2.0, 3.0]]]]).expand(1, 1, 3, 3), 1)[0, 0, 1]
        tensor([-2.,  1.,  2.,  3., -2.])
    """
    if width == 0:
        return x
    top, bottom = -x[..., 1 : width + 1, :].flip(-2), -x[..., -width - 1 : -1, :].flip(-2)
    x = torch.cat([top, x, bottom], dim=-2)
    left, right = -x[..., 1 : width + 1].flip(-1), -x[..., -width - 1 : -1].flip(-1)
    return torch.cat([left, x, right], dim=-1)


class PaddedConv2d(nn.Module):
    """A 'same'-size convolution whose padding is `absorbing` (sign-flipped reflection) or `zeros`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: str = "absorbing") -> None:
        super().__init__()
        if padding not in ("absorbing", "zeros"):
            raise ValueError(f"padding must be 'absorbing' or 'zeros', got {padding!r}")
        self.width = kernel_size // 2
        self.absorbing = padding == "absorbing"
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=0 if self.absorbing else self.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(absorbing_pad(x, self.width) if self.absorbing else x)


def mc_dropout(model: nn.Module) -> nn.Module:
    """Put `model` in eval mode except its dropout layers (MC-dropout passes; batch norm stays frozen)."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.train()
    return model


def has_dropout(model: nn.Module) -> bool:
    """Whether any dropout layer of `model` drops anything."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())
