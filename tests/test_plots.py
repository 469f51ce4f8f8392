"""Figures that do not hide problems: every input channel, predictions and errors on their own scales."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from raysurr import plots


def test_predictions_show_every_channel_each_on_its_own_scale(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or Path(path))
    rng = np.random.default_rng(0)
    inputs = rng.random((2, 2, 8, 8)).astype(np.float32)
    targets = rng.random((2, 1, 8, 8)).astype(np.float32)
    preds = 50 * targets  # 50x too large: a truth-range colour scale would clip it to look right
    plots.plot_predictions(inputs, targets, preds, tmp_path / "p.png")
    (fig,) = figures
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels[:5]] == ["input 0", "input 1", "truth", "prediction", "|error|"]
    shown = {ax.get_title(): ax.images[0].get_clim() for ax in panels[:5]}
    assert shown["prediction"][1] == np.float32(preds[0].max())
    assert shown["truth"][1] == np.float32(targets[0].max())
    assert shown["|error|"][1] == np.float32(np.abs(preds - targets)[0].max())
    assert len(panels) == 2 * 5
