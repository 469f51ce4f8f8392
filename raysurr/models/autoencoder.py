"""The study's CNN autoencoder (encoder-decoder without skips)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raysurr.models.layers import PaddedConv2d
from raysurr.models.registry import register_model


@register_model("autoencoder")
class Autoencoder(nn.Module):
    """The study's CNN encoder-decoder: no skip connections, about 50 M parameters by default.

    Encoder: `depth` 3x3 convs (base .. base * 2**(depth-1) channels, 64 .. 2048 by default) with
    LeakyReLU(0.02), batch norm after the first, Dropout2d after the first two, and 2x2 average
    pooling after all but the last (100 -> 50 -> 25 -> 12 -> 6 -> 3). Decoder, in the study's order,
    so that its work happens at the low resolutions: `depth` 3x3 transposed convs (stride 1), each
    halving the channels (2048 -> 1024 ... 64 -> 32) and followed by LeakyReLU; the first two run at
    the code's size, and after each but the first the map is up-sampled (nearest) to the encoder's
    size one level up (3 -> 6 -> 12 -> 25 -> 50 -> 100); last, a 3x3 output layer to `out_channels`.

    Two differences from the study's network, both so that any grid and any target works: the study
    reaches 25 from 12 by up-sampling to 24 and a 2x2 transposed conv without padding (a step only a
    100-cell grid has), here by up-sampling to the encoder's 25 directly; and the output layer is
    linear (the study's ends in LeakyReLU, which squashes negative targets 50-fold).

    Args:
        in_channels, out_channels: from the simulator.
        base_channels: channels of the first conv.
        depth: conv layers in the encoder (and up-sampling levels in the decoder).
        dropout: Dropout2d probability after the first two convs.
        padding: `zeros` (the study's) or `absorbing`.

    Example:
        >>> Autoencoder(base_channels=4, depth=4)(torch.zeros(2, 1, 50, 50)).shape
        torch.Size([2, 1, 50, 50])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 64,
        depth: int = 6,
        dropout: float = 0.4,
        padding: str = "zeros",
    ) -> None:
        super().__init__()
        # Whether `build_network` lays the weights out channels-last: measured on a CPU (train, 2 threads, batch 8),
        # 1.17-1.27x at base 16, 1.0x at 32, 0.87x at the study's 64, so narrow networks only.
        self.channels_last = base_channels <= 32
        if depth < 2 or base_channels < 2 or not 0 <= dropout < 1:
            raise ValueError(f"autoencoder needs depth >= 2, base_channels >= 2, 0 <= dropout < 1; got {depth}, "
                             f"{base_channels}, {dropout}")  # fmt: skip
        widths = [base_channels * 2**k for k in range(depth)]
        self.encoder = nn.ModuleList()
        for k, (c_in, c_out) in enumerate(zip([in_channels, *widths[:-1]], widths, strict=True)):
            layers = [PaddedConv2d(c_in, c_out, 3, padding)]
            layers += [nn.BatchNorm2d(c_out)] if k == 0 else []
            layers += [nn.LeakyReLU(0.02)]
            layers += [nn.Dropout2d(dropout)] if k < 2 else []
            self.encoder.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(widths[k], widths[k - 1] if k else base_channels // 2, 3, padding=1),
                          nn.LeakyReLU(0.02))
            for k in reversed(range(depth))
        )  # fmt: skip
        self.output = nn.ConvTranspose2d(base_channels // 2, out_channels, 3, padding=1)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Size]]:
        """The code and the size of every encoder level, largest first."""
        sizes = []
        for k, level in enumerate(self.encoder):
            if k:
                x = F.avg_pool2d(x, 2)
            sizes.append(x.shape[-2:])
            x = level(x)
        return x, sizes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output averaged over space: [n, base * 2**(depth-1)] (for Core-Set)."""
        return self._encode(x)[0].mean(dim=(-2, -1))

    def last_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The map the output layer reads: [n, base / 2, H, W] (for last-layer acquisition features)."""
        pools = len(self.encoder) - 1
        if min(x.shape[-2:]) >> pools < 1:
            raise ValueError(f"autoencoder with {pools} poolings needs inputs of at least {2**pools} cells a side, "
                             f"got {list(x.shape[-2:])}; lower model.depth")  # fmt: skip
        x, sizes = self._encode(x)
        for level, size in zip(self.decoder, [None, *reversed(sizes[:-1])], strict=True):
            x = level(x)
            if size is not None:
                x = F.interpolate(x, size=size, mode="nearest")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.last_hidden(x))
