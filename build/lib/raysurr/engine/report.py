"""The study's comparison from an experiment's `summary.csv`: label savings and errors at fixed budgets.

Pure Python and numpy: it reads rows (one per run and round, `rounds.csv` columns plus `model`,
`acquisition`, `seed`) and writes `report.md` and one learning-curve figure per architecture.

Label savings, per model and seed: the target is the test weighted MAE the reference function
(`random`) reaches at the full budget; "labels needed" is the first label count at which a run's
test weighted MAE is at or below it; the saving is full budget / labels needed (2.0: half the
simulator runs for the same error). A run that never reaches the target has no saving; the report
says in how many seeds that happened.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from raysurr.plots import plot_experiment_curves

KEYS = ("model", "acquisition", "seed")
METRICS = {"test_wmae": "test weighted MAE", "test_mae_source": "source-region MAE", "test_mae_field": "field MAE"}


def read_summary(path: str | Path) -> list[dict[str, Any]]:
    """summary.csv rows with numbers parsed."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key, value in row.items():
            if key not in ("model", "acquisition", "run"):
                row[key] = float(value) if value not in ("", None) else math.nan
        row["seed"], row["n_labeled"] = int(row["seed"]), int(row["n_labeled"])
    return rows


def curves(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    """{(model, acquisition, seed): that run's rows in label order}."""
    out: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[(row["model"], row["acquisition"], row["seed"])].append(row)
    return {key: sorted(value, key=lambda r: r["n_labeled"]) for key, value in out.items()}


def labels_needed(run: list[dict[str, Any]], target: float) -> int | None:
    """The first label count at which the run's test weighted MAE is <= target."""
    for row in run:
        if row["test_wmae"] <= target:
            return row["n_labeled"]
    return None


def error_at(run: list[dict[str, Any]], budget: int, metric: str = "test_wmae") -> float:
    """The metric of the last round with at most `budget` labels; NaN if the run has no such round or
    stopped short of the budget (its last round has fewer labels)."""
    rounds = [row for row in run if row["n_labeled"] <= budget]
    if not rounds or run[-1]["n_labeled"] < budget:
        return math.nan
    return rounds[-1][metric]


def savings(rows: Sequence[dict[str, Any]], reference: str) -> list[dict[str, Any]]:
    """Per (model, acquisition): labels needed for the reference's full-budget error, over seeds."""
    runs = curves(rows)
    out = []
    for model in sorted({key[0] for key in runs}):
        for acquisition in sorted({key[1] for key in runs if key[0] == model}):
            needed, ratios, seeds = [], [], 0
            for (m, a, seed), run in sorted(runs.items()):
                reference_run = runs.get((m, reference, seed))
                if m != model or a != acquisition or not reference_run:
                    continue
                seeds += 1
                full = reference_run[-1]
                n = labels_needed(run, full["test_wmae"])
                if n is not None:
                    needed.append(n)
                    ratios.append(full["n_labeled"] / n)
            out.append({"model": model, "acquisition": acquisition, "seeds": seeds, "reached": len(needed),
                        "labels_needed": _stats(needed), "saving": _stats(ratios)})  # fmt: skip
    return out


def _stats(values: Sequence[float]) -> tuple[float, float]:
    """(mean, standard deviation over seeds); NaNs when empty."""
    if not values:
        return math.nan, math.nan
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def write_report(rows: Sequence[dict[str, Any]], folder: Path, reference: str, budgets: Sequence[int] = ()) -> Path:
    """report.md and learning_curve-MODEL.png from the summary rows; returns the report's path."""
    runs = curves(rows)
    models = sorted({key[0] for key in runs})
    budgets = sorted(budgets) or sorted({row["n_labeled"] for row in rows})
    seeds = sorted({key[2] for key in runs})
    lines = [
        "# Experiment report",
        "",
        f"{len(runs)} runs: {len(models)} architectures x {len({k[1] for k in runs})} acquisition functions x "
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}). Errors are test-set means over seeds ± their standard "
        "deviation.",
        "",
        f"## Labels needed to reach `{reference}`'s full-budget test weighted MAE",
        "",
        "| model | acquisition | seeds reaching it | labels needed | saving (x fewer labels) |",
        "|---|---|---|---|---|",
    ]
    for item in savings(rows, reference):
        lines.append(f"| {item['model']} | {item['acquisition']} | {item['reached']}/{item['seeds']} | "
                     f"{_fmt(item['labels_needed'], '.0f')} | {_fmt(item['saving'], '.2f')} |")  # fmt: skip
    lines += ["", "## Test weighted MAE at fixed budgets", ""]
    lines += ["| model | acquisition | " + " | ".join(f"{b} labels" for b in budgets) + " |"]
    lines += ["|---|---|" + "---|" * len(budgets)]
    for model in models:
        for acquisition in sorted({key[1] for key in runs if key[0] == model}):
            members = [run for (m, a, _), run in runs.items() if m == model and a == acquisition]
            cells = [_fmt(_stats(_finite(error_at(run, b) for run in members)), ".4g") for b in budgets]
            lines.append(f"| {model} | {acquisition} | " + " | ".join(cells) + " |")
    lines += skill_section(runs, models)
    lines += ["", "Figures: " + ", ".join(f"`learning_curve-{m}.png`" for m in models), ""]
    for model in models:
        by_function = defaultdict(list)
        for (m, acquisition, _), run in runs.items():
            if m == model:
                by_function[acquisition].append(run)
        plot_experiment_curves(by_function, METRICS, folder / f"learning_curve-{model}.png", title=model)
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path


SKILLS = {"test_wmae_skill_zero": "wMAE vs zero", "test_wmae_skill_mean": "wMAE vs mean field",
          "test_mae_skill_zero": "MAE vs zero", "test_mae_skill_mean": "MAE vs mean field"}  # fmt: skip


def skill_section(runs: dict[tuple[str, str, int], list[dict[str, Any]]], models: Sequence[str]) -> list[str]:
    """The final models' skill (1 - error / trivial model's error) against predicting zero and the training
    set's mean field, over seeds; a line naming every pair whose mean skill is not above 0."""
    lines = ["", "## Skill of the final models against trivial models", "",
             "1 - error / the trivial model's error on the same test set: above 0, better than predicting zero "
             "(or the training set's mean field).", "",
             "| model | acquisition | " + " | ".join(SKILLS.values()) + " |",
             "|---|---|" + "---|" * len(SKILLS)]  # fmt: skip
    worse = []
    for model in models:
        for acquisition in sorted({key[1] for key in runs if key[0] == model}):
            finals = [run[-1] for (m, a, _), run in runs.items() if m == model and a == acquisition]
            stats = {key: _stats(_finite(row.get(key, math.nan) for row in finals)) for key in SKILLS}
            lines.append(f"| {model} | {acquisition} | " + " | ".join(_fmt(s, ".2f") for s in stats.values()) + " |")
            worse += [f"{model}/{acquisition} ({SKILLS[k]})" for k, (mean, _) in stats.items() if mean <= 0]
    if worse:
        lines += ["", f"**Not better than a trivial model:** {', '.join(worse)}."]
    return lines


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _fmt(stats: tuple[float, float], spec: str) -> str:
    mean, spread = stats
    return "—" if math.isnan(mean) else f"{mean:{spec}} ± {spread:{spec}}"
