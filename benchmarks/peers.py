"""raysurr's surrogates against the study's two published networks, built from their layer lists.

`StudyUNet` (the study's UNetAB) and `StudyCNN` (its SimpleCNN100) follow the study's layer lists (arXiv 2407.07674)
exactly, 100x100 only, as the study wrote them. Each is timed next to raysurr's model of the same
family at the same width and memory layout (the one `build_network` picks for raysurr's model:
channels-last where it pays), and raysurr's model in each layout (what channels-last buys,
`layout_ratio`), one thread, batch 8: a training step (forward, weighted MAE, backward, Adam) and
inference (eval mode, no grad), alternating the models for `--repeats` rounds and reporting
medians, so that the ratio holds on a noisy machine.

Prints one JSON object per line:
    {"bench": "peer", "family": "unet", "model": "raysurr", "base_channels": 64, "train_samples_per_s": ...}
    {"bench": "peer_ratio", "family": "unet", "base_channels": 64, "train_over_study": ..., "infer_over_study": ...}
    {"bench": "layout_ratio", "family": "unet", "base_channels": 64, "train_channels_last_over_contiguous": ..., ...}

Usage:
    python benchmarks/peers.py           # the study's width (64), ~6 min on 2 cores
    python benchmarks/peers.py --quick   # width 16
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from common import emit
from torch import nn

from raysurr.config import ModelConfig
from raysurr.models import build_model, count_parameters
from raysurr.models.layers import PaddedConv2d
from raysurr.models.losses import weighted_mae

GRID, BATCH = 100, 8


class StudyUNet(nn.Module):
    """UNetAB: double convs with Dropout2d(0.4) after each encoder conv, max-pools, up-path Upsample x2
    + 3x3 ConvT (12 -> 25: one ConvT, stride 2, no padding), skip concatenation, absorbing padding."""

    def __init__(self, base: int = 64, dropout: float = 0.4) -> None:
        super().__init__()
        widths = [base * 2**k for k in range(5)]

        def double(c_in: int, c_out: int, drop: bool) -> nn.Sequential:
            layers: list[nn.Module] = []
            for a, b in ((c_in, c_out), (c_out, c_out)):
                layers += [PaddedConv2d(a, b, 3, "absorbing"), nn.ReLU(inplace=True)]
                layers += [nn.Dropout2d(dropout)] if drop else []
            return nn.Sequential(*layers)

        self.down = nn.ModuleList(double(a, b, True) for a, b in zip([1, *widths[:-1]], widths, strict=True))
        self.up = nn.ModuleList()
        self.blocks = nn.ModuleList()
        for k in reversed(range(4)):  # 6 -> 12, 12 -> 25, 25 -> 50, 50 -> 100
            if k == 2:  # 12 -> 25
                self.up.append(nn.ConvTranspose2d(widths[k + 1], widths[k], 3, stride=2))
            else:
                convt = nn.ConvTranspose2d(widths[k + 1], widths[k], 3, padding=1)
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2), convt))
            self.blocks.append(double(2 * widths[k], widths[k], False))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, level in enumerate(self.down):
            x = level(nn.functional.max_pool2d(x, 2) if k else x)
            skips.append(x)
        for up, block, skip in zip(self.up, self.blocks, reversed(skips[:-1]), strict=True):
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.head(x)


class StudyCNN(nn.Module):
    """SimpleCNN100: 6 convs (BN after the first, Dropout2d after the first two, avg-pool after five),
    then ConvT at 3x3 twice, Upsample to 6, 12, 24, a 2x2 ConvT to 25, Upsample to 50 and 100, and an
    output ConvT; LeakyReLU(0.02) after every layer, the output too."""

    def __init__(self, base: int = 64, dropout: float = 0.4) -> None:
        super().__init__()
        w = [base * 2**k for k in range(6)]
        act = nn.LeakyReLU(0.02)
        enc: list[nn.Module] = []
        for k, (a, b) in enumerate(zip([1, *w[:-1]], w, strict=True)):
            enc += [nn.Conv2d(a, b, 3, padding=1)] + ([nn.BatchNorm2d(b)] if k == 0 else []) + [act]
            enc += ([nn.Dropout2d(dropout)] if k < 2 else []) + ([nn.AvgPool2d(2)] if k < 5 else [])
        up = nn.Upsample(scale_factor=2)
        self.net = nn.Sequential(
            *enc,
            nn.ConvTranspose2d(w[5], w[4], 3, padding=1), act,
            nn.ConvTranspose2d(w[4], w[3], 3, padding=1), act, up,
            nn.ConvTranspose2d(w[3], w[2], 3, padding=1), act, up,
            nn.ConvTranspose2d(w[2], w[1], 3, padding=1), act, up,
            nn.ConvTranspose2d(w[1], w[0], 2), act, up,
            nn.ConvTranspose2d(w[0], w[0] // 2, 3, padding=1), act, up,
            nn.ConvTranspose2d(w[0] // 2, 1, 3, padding=1), act,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def rates(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Samples/s of one training step and of one inference batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    start = time.perf_counter()
    loss = weighted_mae(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    train = len(x) / (time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        start = time.perf_counter()
        model(x)
        infer = len(x) / (time.perf_counter() - start)
    return train, infer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="width 16 instead of the study's 64")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds per pair (the first is warm-up)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    width = 16 if args.quick else 64
    x, y = torch.rand(BATCH, 1, GRID, GRID), torch.rand(BATCH, 1, GRID, GRID)
    for family, study in (("unet", StudyUNet), ("autoencoder", StudyCNN)):
        torch.manual_seed(0)
        ours = build_model(ModelConfig(family, {"base_channels": width}), 1, 1)  # in the layout `build_network` picks
        layouts = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
        layout = "channels_last" if getattr(ours, "channels_last", False) else "contiguous"
        other = next(name for name in layouts if name != layout)
        models = {"raysurr": ours, "study": study(width).to(memory_format=layouts[layout]),  # the same layout
                  f"raysurr_{other}": copy.deepcopy(ours).to(memory_format=layouts[other])}  # fmt: skip
        measured: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
        for _ in range(args.repeats + 1):
            for name, model in models.items():
                measured[name].append(rates(model, x, y))
        medians = {name: np.median(np.array(values[1:]), axis=0) for name, values in measured.items()}
        for name, model in models.items():
            emit(bench="peer", family=family, model=name, base_channels=width, params=count_parameters(model),
                 threads=1, batch=BATCH, train_samples_per_s=float(medians[name][0]),
                 infer_samples_per_s=float(medians[name][1]))  # fmt: skip
        ratio = medians["raysurr"] / medians["study"]
        emit(bench="peer_ratio", family=family, base_channels=width, train_over_study=float(ratio[0]),
             infer_over_study=float(ratio[1]))  # fmt: skip
        by_layout = {layout: medians["raysurr"], other: medians[f"raysurr_{other}"]}
        gain = by_layout["channels_last"] / by_layout["contiguous"]
        emit(bench="layout_ratio", family=family, base_channels=width, raysurr_layout=layout,
             train_channels_last_over_contiguous=float(gain[0]),
             infer_channels_last_over_contiguous=float(gain[1]))  # fmt: skip


if __name__ == "__main__":
    main()
