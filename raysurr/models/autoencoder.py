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
    pooling after all but the last (100 -> 50 -> 25 -> 12 -> 6 -> 3). Decoder: `depth` transposed
    convs (all but the last double the size and halve the channels), then an output layer that
    up-samples to the input's size and maps to `out_channels`.

    Args:
        in_channels, out_channels: from the simulator.
        base_channels: channels of the first conv.
        depth: conv layers in the encoder (and transposed convs in the decoder).
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
        if depth < 2 or base_channels < 1 or not 0 <= dropout < 1:
            raise ValueError(f"autoencoder needs depth >= 2, base_channels >= 1, 0 <= dropout < 1; got {depth}, "
                             f"{base_channels}, {dropout}")  # fmt: skip
        widths = [base_channels * 2**k for k in range(depth)]
        encoder: list[nn.Module] = []
        for k, (c_in, c_out) in enumerate(zip([in_channels, *widths[:-1]], widths, strict=True)):
            encoder += [PaddedConv2d(c_in, c_out, 3, padding)]
            encoder += [nn.BatchNorm2d(c_out)] if k == 0 else []
            encoder += [nn.LeakyReLU(0.02)]
            encoder += [nn.Dropout2d(dropout)] if k < 2 else []
            encoder += [nn.AvgPool2d(2)] if k < depth - 1 else []
        self.encoder = nn.Sequential(*encoder)
        decoder: list[nn.Module] = []
        for k in reversed(range(depth)):
            last = k == 0
            c_in, c_out = widths[k], widths[max(k - 1, 0)]
            decoder += [nn.ConvTranspose2d(c_in, c_out, 3, stride=1 if last else 2, padding=1,
                                           output_padding=0 if last else 1), nn.LeakyReLU(0.02)]  # fmt: skip
        self.decoder = nn.Sequential(*decoder)
        self.output = PaddedConv2d(widths[0], out_channels, 3, padding)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output averaged over space: [n, base * 2**(depth-1)] (for Core-Set)."""
        return self.encoder(x).mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pools = sum(isinstance(m, nn.AvgPool2d) for m in self.encoder)
        if min(size) >> pools < 1:
            raise ValueError(f"autoencoder with {pools} poolings needs inputs of at least {2**pools} cells a side, "
                             f"got {list(size)}; lower model.depth")  # fmt: skip
        x = self.decoder(self.encoder(x))
        return self.output(F.interpolate(x, size=size, mode="bilinear", align_corners=False))
