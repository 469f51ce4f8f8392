"""Figures written next to outputs. matplotlib with the Agg backend: no display needed."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_predictions(inputs: np.ndarray, targets: np.ndarray, preds: np.ndarray, path: str | Path) -> Path:
    """One row per sample: input (channel 0), truth, prediction, |error|, each with a colour bar.

    Args:
        inputs: [n, C_in, H, W]; targets, preds: [n, C_out, H, W] (channel 0 is shown).
    """
    n = len(inputs)
    fig, axes = plt.subplots(n, 4, figsize=(13, 3.0 * n), squeeze=False)
    error = np.abs(preds - targets)
    for i in range(n):
        truth_range = (float(targets[i, 0].min()), float(targets[i, 0].max()))  # prediction shares the truth's scale
        panels = [
            ("input", inputs[i, 0], "viridis", (None, None)),
            ("truth", targets[i, 0], "magma", truth_range),
            ("prediction", preds[i, 0], "magma", truth_range),
            ("|error|", error[i, 0], "Reds", (0, None)),
        ]
        for ax, (title, image, cmap, (low, high)) in zip(axes[i], panels, strict=True):
            shown = ax.imshow(image, cmap=cmap, origin="lower", vmin=low, vmax=high)
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
