"""Figures written next to outputs. matplotlib with the Agg backend: no display needed."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from raysurr.data.dataset import DatasetInfo, read_arrays
from raysurr.data.store import PartStore
from raysurr.models.checkpoint import load_surrogate


def plot_predictions(inputs: np.ndarray, targets: np.ndarray, preds: np.ndarray, path: str | Path) -> Path:
    """One row per sample: every input channel, then per output channel the truth, the prediction and
    |error|, each on its own colour scale with its own colour bar (a shared scale would clip a
    prediction that is far off and hide it).

    Args:
        inputs: [n, C_in, H, W]; targets, preds: [n, C_out, H, W].
    """
    n, c_in, c_out = len(inputs), inputs.shape[1], targets.shape[1]
    columns = c_in + 3 * c_out
    fig, axes = plt.subplots(n, columns, figsize=(3.2 * columns, 3.0 * n), squeeze=False)
    error = np.abs(preds - targets)
    for i in range(n):
        panels = [(f"input {c}" if c_in > 1 else "input", inputs[i, c], "viridis") for c in range(c_in)]
        for c in range(c_out):
            suffix = f" {c}" if c_out > 1 else ""
            panels += [(f"truth{suffix}", targets[i, c], "magma"), (f"prediction{suffix}", preds[i, c], "magma"),
                       (f"|error|{suffix}", error[i, c], "Reds")]  # fmt: skip
        for ax, (title, image, cmap) in zip(axes[i], panels, strict=True):
            shown = ax.imshow(image, cmap=cmap, origin="lower")
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    return _save(fig, path)


def plot_learning_curve(rows: list[dict], regions: tuple[str, str], path: str | Path) -> Path:
    """Test weighted MAE (left) and region MAEs (right) against the number of labels, one point per round.

    Args:
        rows: rounds.csv's rows (`RoundRecord.row`); regions: the simulator's region names.
    """
    labels = [row["n_labeled"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(labels, [row["test_wmae"] for row in rows], "o-", label="test")
    left.plot(labels, [row["val_wmae"] for row in rows], "s--", label="validation", alpha=0.7)
    left.set(xlabel="labelled samples", ylabel="weighted MAE", title="weighted MAE")
    left.legend()
    for key, name in [("test_mae_all", "all pixels"), *((f"test_mae_{region}", region) for region in regions)]:
        right.plot(labels, [row[key] for row in rows], "o-", label=name)
    right.set(xlabel="labelled samples", ylabel="MAE", title="test MAE by region", yscale="log")
    right.legend()
    return _save(fig, path)


def plot_sweep(curves: dict[str, list[float]], path: str | Path, ylabel: str = "score") -> Path:
    """Each trial's score per epoch (log scale); a line that ends early is a trial ASHA stopped."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for trial, scores in curves.items():
        if scores:
            ax.plot(range(1, len(scores) + 1), scores, "o-", label=trial, markersize=3)
    ax.set(xlabel="epoch", ylabel=ylabel, yscale="log", title=f"{len(curves)} trials")
    if len(curves) <= 12:
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_experiment_curves(runs: dict[str, list[list[dict]]], metrics: dict[str, str], path: str | Path,
                           title: str = "") -> Path:  # fmt: skip
    """One panel per metric against labels: per acquisition function the mean over seeds, shaded min to max.

    Args:
        runs: {acquisition: [one run's rows in label order, per seed]}.
        metrics: {column: axis label}.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 4), squeeze=False)
    for ax, (column, label) in zip(axes[0], metrics.items(), strict=True):
        for acquisition, members in sorted(runs.items()):
            labels = sorted({row["n_labeled"] for run in members for row in run})
            table = np.array([[next((r[column] for r in run if r["n_labeled"] == n), np.nan) for n in labels]
                              for run in members], dtype=float)  # fmt: skip
            mean = np.nanmean(table, axis=0)
            (line,) = ax.plot(labels, mean, "o-", markersize=3, label=f"{acquisition} ({len(members)})")
            if len(members) > 1:
                ax.fill_between(labels, np.nanmin(table, axis=0), np.nanmax(table, axis=0), alpha=0.2,
                                color=line.get_color())  # fmt: skip
        ax.set(xlabel="labelled samples", ylabel=label, yscale="log", title=f"{title}: {label}" if title else label)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_checkpoint(checkpoint: Path, info: DatasetInfo, path: Path, count: int = 4) -> None:
    """predictions.png: a checkpoint's predictions of a dataset's first few test samples."""
    store = PartStore(info.split_dir("test"))
    if not store.parts():
        return  # an empty test split: nothing to show
    arrays = read_arrays(store.read(["input", "target"]).slice(0, count))
    model = load_surrogate(checkpoint)
    with torch.no_grad():
        preds = model(torch.tensor(arrays["input"])).numpy()
    plot_predictions(arrays["input"], arrays["target"], np.asarray(preds), path)
