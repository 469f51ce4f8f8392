"""A Fourier neural operator (Li et al. 2021), the neural-operator baseline of AL4PDE and PDEBench.

A compact implementation rather than the `neuraloperator` package: its 2.0 release pulls wandb,
h5py, tensorly, zencfg and pytest-mock into every install for one layer of about thirty lines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raysurr.models.registry import register_model


class SpectralConv2d(nn.Module):
    """Multiply the lowest `modes` x `modes` Fourier modes (both signs of the first axis's frequency)
    by learned complex weights; drop the rest. Always computed in float32 (FFTs do not take bf16).

    The weights are stored as real tensors (a trailing axis of 2) so that optimisers, DDP and
    checkpoints see ordinary parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int) -> None:
        super().__init__()
        self.modes = modes
        scale = 1 / (in_channels * out_channels)
        self.weight = nn.Parameter(scale * torch.rand(2, in_channels, out_channels, modes, modes, 2))

    compile_eager = True  # inductor has no complex kernels (torch 2.11-2.13): this stays eager, the rest compiles

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        spectrum = torch.fft.rfft2(x.float(), norm="ortho")  # complex: autocast leaves it alone
        m1, m2 = min(self.modes, h // 2), min(self.modes, w // 2 + 1)
        weight = torch.view_as_complex(self.weight)
        out = spectrum.new_zeros(x.shape[0], weight.shape[2], h, w // 2 + 1)
        mix = "bixy,ioxy->boxy"
        out[..., :m1, :m2] = torch.einsum(mix, spectrum[..., :m1, :m2], weight[0, ..., :m1, :m2])
        out[..., h - m1 :, :m2] = torch.einsum(mix, spectrum[..., h - m1 :, :m2], weight[1, ..., :m1, :m2])
        return torch.fft.irfft2(out, s=(h, w), norm="ortho")


@register_model("fno")
class FNO(nn.Module):
    """A Fourier neural operator: global receptive field, any grid, the neural-operator baseline.

    Lift to `base_channels` channels (inputs plus the cell coordinates), `depth` Fourier layers
    (spectral conv + 1x1 conv, GELU, Dropout2d), project to `out_channels` through a hidden 1x1 layer.

    The field is zero-padded by `domain_padding` cells on the high side of each axis before the Fourier
    layers and cropped after, so the FFT's periodicity does not tie opposite edges together (the
    usual treatment of non-periodic boundaries). Any grid size works; `modes` is capped by the grid.

    Args:
        in_channels, out_channels: from the simulator.
        base_channels: the Fourier layers' width (named as the other families' width, so that one
            sweep space covers them all).
        depth: Fourier layers.
        modes: Fourier modes kept per axis.
        dropout: Dropout2d probability after each Fourier layer but the last (MC dropout's source).
        domain_padding: cells of zero padding before the FFT.

    Example:
        >>> FNO(2, 3, base_channels=8, depth=2, modes=4)(torch.zeros(2, 2, 30, 20)).shape
        torch.Size([2, 3, 30, 20])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 32,
        depth: int = 4,
        modes: int = 12,
        dropout: float = 0.0,
        domain_padding: int = 8,
    ) -> None:
        super().__init__()
        width = base_channels
        if width < 1 or modes < 1 or depth < 1 or domain_padding < 0 or not 0 <= dropout < 1:
            raise ValueError(f"fno needs base_channels, depth, modes >= 1, domain_padding >= 0, 0 <= dropout < 1; "
                             f"got {width}, {depth}, {modes}, {domain_padding}, {dropout}")  # fmt: skip
        self.padding = domain_padding
        self.lift = nn.Conv2d(in_channels + 2, width, 1)
        self.spectral = nn.ModuleList(SpectralConv2d(width, width, modes) for _ in range(depth))
        self.pointwise = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(depth))
        self.drop = nn.Dropout2d(dropout)
        self.project = nn.Sequential(nn.Conv2d(width, 4 * width, 1), nn.GELU(), nn.Conv2d(4 * width, out_channels, 1))

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        rows = torch.linspace(0, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
        cols = torch.linspace(0, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
        x = F.pad(self.lift(torch.cat([x, rows, cols], dim=1)), [0, self.padding, 0, self.padding])
        for k, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise, strict=True)):
            x = spectral(x).to(x.dtype) + pointwise(x)
            if k < len(self.spectral) - 1:
                x = self.drop(F.gelu(x))
        return x[..., :h, :w]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last Fourier layer's channels averaged over space: [n, base_channels] (for Core-Set)."""
        return self._hidden(x).mean(dim=(-2, -1))

    def last_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The map the output layer reads (the projection's hidden layer): [n, 4 width, H, W]."""
        return self.project[:-1](self._hidden(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project[-1](self.last_hidden(x))
