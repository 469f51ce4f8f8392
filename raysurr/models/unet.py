"""The study's U-Net."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raysurr.models.layers import PaddedConv2d
from raysurr.models.registry import register_model


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, padding: str) -> None:
        super().__init__(
            PaddedConv2d(in_channels, out_channels, 3, padding),
            nn.ReLU(inplace=True),
            PaddedConv2d(out_channels, out_channels, 3, padding),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """Up-sample to the skip's size and halve the channels with one 3x3 kernel, concatenate, double conv.

    As the study's up path: from h to 2h + 1 cells a side (12 -> 25 on its grid) a transposed conv of
    stride 2 with no padding, which computes at the low resolution; to any other size nearest
    up-sampling, then the kernel as a conv padded with zeros. Both only mix the up-sampled map; the
    double conv after them applies the boundary condition. One weight serves both, so the layout does
    not depend on the grid.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.block = DoubleConv(2 * out_channels, out_channels, padding)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        size = skip.shape[-2:]
        if all(s == 2 * h + 1 for s, h in zip(size, x.shape[-2:], strict=True)):
            weight = self.reduce.weight.transpose(0, 1).flip(-2, -1)  # the same kernel, run over the zero-stuffed map
            x = F.conv_transpose2d(x, weight, self.reduce.bias, stride=2)
        else:
            x = self.reduce(F.interpolate(x, size=size, mode="nearest"))
        return self.block(torch.cat([skip, x], dim=1))


@register_model("unet")
class UNet(nn.Module):
    """The study's U-Net: double-conv levels, max-pools, skip concatenation, absorbing padding.

    With the defaults (5 levels of 64..1024 channels, 4 pools: 100 -> 50 -> 25 -> 12 -> 6) it has
    about 34.5 M parameters. Odd sizes are fine: each up-sampling restores its skip's exact size.

    Args:
        in_channels, out_channels: from the simulator.
        base_channels: channels of the first level; level k has base * 2**k.
        depth: number of levels (depth - 1 pools).
        dropout: Dropout2d probability after every encoder level (also MC dropout's source).
        padding: `absorbing` (sign-flipped reflection, the study's) or `zeros`.

    Example:
        >>> UNet(base_channels=4, depth=3)(torch.zeros(2, 1, 25, 25)).shape
        torch.Size([2, 1, 25, 25])
    """

    # `build_network` lays the weights out channels-last: measured on a CPU (train, 2 threads, batch 8), 1.4x at
    # base 8, 1.17x at 16, 1.0-1.04x at 32 and 64
    channels_last = True

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        depth: int = 5,
        dropout: float = 0.4,
        padding: str = "absorbing",
    ) -> None:
        super().__init__()
        if depth < 1 or base_channels < 1 or not 0 <= dropout < 1:
            raise ValueError(f"unet needs depth >= 1, base_channels >= 1, 0 <= dropout < 1; got {depth}, "
                             f"{base_channels}, {dropout}")  # fmt: skip
        widths = [base_channels * 2**k for k in range(depth)]
        self.down = nn.ModuleList(
            DoubleConv(c_in, c_out, padding) for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        self.drop = nn.Dropout2d(dropout)
        self.up = nn.ModuleList(Up(widths[k + 1], widths[k], padding) for k in reversed(range(depth - 1)))
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck's channels averaged over space: [n, base * 2**(depth-1)] (for Core-Set)."""
        for k, level in enumerate(self.down):
            x = level(F.max_pool2d(x, 2) if k else x)
        return x.mean(dim=(-2, -1))

    def last_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The map the output layer reads: [n, base, H, W] (for last-layer acquisition features)."""
        smallest = min(x.shape[-2:]) >> (len(self.down) - 1)
        if smallest < 2:
            raise ValueError(f"unet of depth {len(self.down)} needs inputs of at least {2 ** len(self.down)} cells "
                             f"a side, got {list(x.shape[-2:])}; lower model.depth")  # fmt: skip
        skips = []
        for k, level in enumerate(self.down):
            x = self.drop(level(F.max_pool2d(x, 2) if k else x))
            skips.append(x)
        for up, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = up(x, skip)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.last_hidden(x))
