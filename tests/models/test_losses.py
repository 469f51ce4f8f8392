"""Loss and metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from raysurr.models.losses import per_sample_weighted_mae, roi_mae, weighted_mae


def test_weighted_mae_by_hand():
    y = torch.tensor([[[[0.0, 0.5], [1.0, 0.0]]]])
    pred = torch.tensor([[[[0.1, 0.5], [0.8, -0.2]]]])
    weights = [1.0, 1 + 2000 * math.tanh(0.5), 1 + 2000 * math.tanh(1.0), 1.0]
    errors = [0.1, 0.0, 0.2, 0.2]
    expected = sum(w * e for w, e in zip(weights, errors, strict=True)) / 4
    assert float(weighted_mae(pred, y)) == pytest.approx(expected, rel=1e-5)
    assert float(weighted_mae(pred, y, w2=0.0)) == pytest.approx(0.125, rel=1e-6)
    assert float(weighted_mae(pred, y, w=2.0, w2=1.0)) == pytest.approx(
        (0.1 + (1 + math.tanh(1.0)) * 0 + (1 + math.tanh(2.0)) * 0.2 + 0.2) / 4, rel=1e-6
    )


def test_per_sample_weighted_mae_averages_to_the_loss():
    y, pred = torch.rand(5, 1, 8, 8), torch.rand(5, 1, 8, 8)
    assert torch.allclose(per_sample_weighted_mae(pred, y).mean(), weighted_mae(pred, y))


def test_roi_mae_by_hand():
    y = torch.zeros(2, 1, 2, 2)
    pred = torch.tensor([[[[1.0, 0.0], [0.0, 0.5]]], [[[0.2, 0.2], [0.2, 0.2]]]])
    mask = torch.tensor([[[True, False], [False, False]], [[False, False], [False, False]]])
    out = roi_mae(pred, y, mask, ("source", "field"))
    assert out["all"].tolist() == pytest.approx([0.375, 0.2])
    assert out["source"][0].item() == pytest.approx(1.0) and math.isnan(out["source"][1].item())
    assert out["field"].tolist() == pytest.approx([0.5 / 3, 0.2])
