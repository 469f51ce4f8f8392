"""The study's loss and metrics. Pure torch (and numpy for the spread over samples); batches throughout."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def source_weight(target: torch.Tensor, w: float = 1.0, w2: float = 2000.0) -> torch.Tensor:
    """1 + w2 · tanh(w · |y|): up-weights the few source pixels so the field does not drown them.

    For the non-negative targets of the study this is exactly its weight; |y| keeps the weight
    >= 1 for a simulator whose targets change sign.
    """
    return 1.0 + w2 * torch.tanh(w * target.abs())


def weighted_mae(pred: torch.Tensor, target: torch.Tensor, w: float = 1.0, w2: float = 2000.0) -> torch.Tensor:
    """mean((1 + w2 · tanh(w · |y|)) · |ŷ - y|) over every element: a scalar.

    Example:
        >>> y = torch.tensor([[0.0, 1.0]])
        >>> float(weighted_mae(torch.tensor([[0.5, 1.0]]), y, w2=0.0))
        0.25
    """
    return (source_weight(target, w, w2) * (pred - target).abs()).mean()


def per_sample_weighted_mae(pred: torch.Tensor, target: torch.Tensor, w: float = 1.0, w2: float = 2000.0):
    """The weighted MAE of each sample: [n]."""
    return (source_weight(target, w, w2) * (pred - target).abs()).flatten(1).mean(dim=1)


def roi_mae(
    pred: torch.Tensor, target: torch.Tensor, source_mask: torch.Tensor, regions: Sequence[str] = ("roi", "rest")
) -> dict[str, torch.Tensor]:
    """Plain L1 error per sample over all pixels, the region of interest and the rest.

    Args:
        pred, target: [n, C, H, W].
        source_mask: [n, H, W] bool, the region of interest (the simulator's `region_of_interest`).
        regions: the names of the region of interest and of the rest (the simulator's `regions`).

    Returns:
        {"all", regions[0], regions[1]} -> [n]; a region with no pixel in a sample gives NaN there.
    """
    error = (pred - target).abs().mean(dim=1)  # over channels: [n, H, W]
    mask = source_mask.to(error.dtype)
    source_pixels, field_pixels = mask.flatten(1).sum(1), (1 - mask).flatten(1).sum(1)
    nan = torch.tensor(float("nan"), dtype=error.dtype, device=error.device)
    source = (error * mask).flatten(1).sum(1) / source_pixels
    field = (error * (1 - mask)).flatten(1).sum(1) / field_pixels
    inside, outside = regions
    return {
        "all": error.flatten(1).mean(1),
        inside: torch.where(source_pixels > 0, source, nan),
        outside: torch.where(field_pixels > 0, field, nan),
    }


# The names of an evaluation's numbers, defined here once: scoring computes them, the round records,
# rounds.csv, the plots and the experiment report read them.
SKILLS = ("wmae_skill_zero", "wmae_skill_mean", "mae_skill_zero", "mae_skill_mean")
# How the weighted MAE spreads over the samples: its 95th percentile (the worst case AL4PDE reports) and the
# share of the total error in the worst 10% of samples (0.1 when every sample is as hard as any other).
SPREAD = ("wmae_p95", "wmae_top10_share")


def error_spread(per_sample: np.ndarray) -> dict[str, float]:
    """`SPREAD` of per-sample errors [n]: NaN when there are none.

    Example:
        >>> error_spread(np.array([1.0] * 9 + [11.0]))["wmae_top10_share"]
        0.55
    """
    errors = np.sort(np.asarray(per_sample, dtype=np.float64))[::-1]
    if not len(errors) or not errors.sum() > 0:
        return dict.fromkeys(SPREAD, math.nan)
    worst = max(1, round(0.1 * len(errors)))
    share = float(errors[:worst].sum() / errors.sum())
    return {"wmae_p95": float(np.percentile(errors, 95)), "wmae_top10_share": share}


def error_metrics(regions: Sequence[str]) -> tuple[str, ...]:
    """The error metrics of an evaluation: the weighted MAE, and the plain MAE over all pixels and per region.

    Example:
        >>> error_metrics(("source", "field"))
        ('wmae', 'mae_all', 'mae_source', 'mae_field')
    """
    return ("wmae", "mae_all", *(f"mae_{region}" for region in regions))
