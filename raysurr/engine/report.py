"""The study's comparison from an experiment's `summary.csv`: label savings, paired differences with
their uncertainty, errors at fixed budgets, worst cases and skill.

Pure Python and numpy: it reads rows (one per run and round, `rounds.csv` columns plus `model`,
`acquisition`, `seed`) and writes `report.md` and one learning-curve figure per architecture.

Label savings, per model and seed: the target is the best test weighted MAE the reference function
(`random`) reaches within the full budget; "labels needed" is the first label count at which a run's
best-so-far error is at or below it; the saving is the reference's labels needed / the run's (2.0:
half the simulator runs for the same error; the reference's own is 1.0 by construction). A run that
never reaches the target has no saving; the report says in how many seeds that happened.

Paired differences: per seed (the runs of one seed share their pool, initial set and evaluation
sets), a function's final error and its area under the error-vs-log(labels) curve minus the
reference's; their mean over seeds with a bootstrap 95% interval. An interval that holds 0 is
reported as "cannot tell".
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


def best_so_far(run: list[dict[str, Any]], metric: str = "test_wmae") -> np.ndarray:
    """[rounds] the lowest error of the run up to each round."""
    return np.minimum.accumulate(np.array([row[metric] for row in run], dtype=float))


def labels_needed(run: list[dict[str, Any]], target: float) -> int | None:
    """The first label count at which the run's best-so-far test weighted MAE is <= target."""
    for row, best in zip(run, best_so_far(run), strict=True):
        if best <= target:
            return row["n_labeled"]
    return None


def area_under_curve(run: list[dict[str, Any]], metric: str = "test_wmae") -> float:
    """The mean error over log(labels): the trapezoid area under error-vs-log(n_labeled) over its width.
    One number for a whole curve, which weighs every doubling of the labels alike."""
    x = np.log(np.array([row["n_labeled"] for row in run], dtype=float))
    y = np.array([row[metric] for row in run], dtype=float)
    if len(run) < 2 or x[-1] <= x[0]:
        return float(y[-1]) if len(run) else math.nan
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def bootstrap_interval(values: Sequence[float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean of `values` (NaNs when fewer than 2)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    draws = np.random.default_rng(seed).choice(values, size=(resamples, len(values)), replace=True).mean(axis=1)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def paired(rows: Sequence[dict[str, Any]], reference: str) -> list[dict[str, Any]]:
    """Per (model, acquisition other than the reference): per-seed differences to the reference run of the
    same seed in the final test weighted MAE and in the area under its curve, with bootstrap intervals."""
    runs = curves(rows)
    out = []
    for model, acquisition in sorted({(m, a) for m, a, _ in runs if a != reference}):
        final, area, relative = [], [], []
        for (m, a, seed), run in sorted(runs.items()):
            base = runs.get((m, reference, seed))
            if (m, a) != (model, acquisition) or not base:
                continue
            final.append(run[-1]["test_wmae"] - base[-1]["test_wmae"])
            relative.append(final[-1] / base[-1]["test_wmae"])
            area.append(area_under_curve(run) - area_under_curve(base))
        out.append({"model": model, "acquisition": acquisition, "seeds": len(final),
                    "final": (mean_std(final)[0], bootstrap_interval(final)), "relative": mean_std(relative)[0],
                    "area": (mean_std(area)[0], bootstrap_interval(area))})  # fmt: skip
    return out


def verdict(interval: tuple[float, float]) -> str:
    """What a bootstrap interval of a difference (function - reference, lower is better) says."""
    low, high = interval
    if math.isnan(low):
        return "too few seeds"
    return "lower" if high < 0 else "higher" if low > 0 else "cannot tell"


def error_at(run: list[dict[str, Any]], budget: int, metric: str = "test_wmae") -> float:
    """The metric of the last round with at most `budget` labels; NaN if the run has no such round or
    stopped short of the budget (its last round has fewer labels)."""
    rounds = [row for row in run if row["n_labeled"] <= budget]
    if not rounds or run[-1]["n_labeled"] < budget:
        return math.nan
    return rounds[-1][metric]


def savings(rows: Sequence[dict[str, Any]], reference: str) -> list[dict[str, Any]]:
    """Per (model, acquisition): labels needed for the reference's best error within the full budget, and
    the saving against the reference's own labels needed, over seeds."""
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
                target = best_so_far(reference_run)[-1]
                n = labels_needed(run, target)
                if n is not None:
                    needed.append(n)
                    ratios.append(labels_needed(reference_run, target) / n)
            out.append({"model": model, "acquisition": acquisition, "seeds": seeds, "reached": len(needed),
                        "labels_needed": mean_std(needed), "saving": mean_std(ratios)})  # fmt: skip
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float]:
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
        f"## Labels needed to reach `{reference}`'s best test weighted MAE",
        "",
        f"Per seed: the first label count at which a run's best-so-far error reaches the best error `{reference}` "
        f"reaches within the full budget; the saving is `{reference}`'s labels needed / the run's.",
        "",
        "| model | acquisition | seeds reaching it | labels needed | saving (x fewer labels) |",
        "|---|---|---|---|---|",
    ]
    for item in savings(rows, reference):
        lines.append(f"| {item['model']} | {item['acquisition']} | {item['reached']}/{item['seeds']} | "
                     f"{_fmt(item['labels_needed'], '.0f')} | {_fmt(item['saving'], '.2f')} |")  # fmt: skip
    lines += paired_section(rows, reference)
    lines += ["", "## Test weighted MAE at fixed budgets", ""]
    lines += ["| model | acquisition | " + " | ".join(f"{b} labels" for b in budgets) + " |"]
    lines += ["|---|---|" + "---|" * len(budgets)]
    for model in models:
        for acquisition in sorted({key[1] for key in runs if key[0] == model}):
            members = [run for (m, a, _), run in runs.items() if m == model and a == acquisition]
            cells = [_fmt(mean_std(_finite(error_at(run, b) for run in members)), ".4g") for b in budgets]
            lines.append(f"| {model} | {acquisition} | " + " | ".join(cells) + " |")
    lines += spread_section(runs, models, reference)
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
            stats = {key: mean_std(_finite(row.get(key, math.nan) for row in finals)) for key in SKILLS}
            lines.append(f"| {model} | {acquisition} | " + " | ".join(_fmt(s, ".2f") for s in stats.values()) + " |")
            worse += [f"{model}/{acquisition} ({SKILLS[k]})" for k, (mean, _) in stats.items() if mean <= 0]
    if worse:
        lines += ["", f"**Not better than a trivial model:** {', '.join(worse)}."]
    return lines


def paired_section(rows: Sequence[dict[str, Any]], reference: str) -> list[str]:
    """Each function against the reference, seed by seed, with how sure the difference is."""
    lines = ["", f"## Paired against `{reference}`, seed by seed", "",
             f"Function minus `{reference}` of the same seed (lower is better): the final test weighted MAE and the "
             "area under its error-vs-log(labels) curve (a mean error over log labels); mean over seeds [bootstrap "
             "95% interval]. \"cannot tell\": the interval holds 0.", "",
             "| model | acquisition | seeds | final error | relative | verdict | area under curve | verdict |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for item in paired(rows, reference):
        (final, final_ci), (area, area_ci) = item["final"], item["area"]
        lines.append(f"| {item['model']} | {item['acquisition']} | {item['seeds']} | {_interval(final, final_ci)} | "
                     f"{item['relative']:+.0%} | {verdict(final_ci)} | {_interval(area, area_ci)} | "
                     f"{verdict(area_ci)} |")  # fmt: skip
    return lines


def spread_section(runs: dict[tuple[str, str, int], list[dict[str, Any]]], models: Sequence[str],
                   reference: str) -> list[str]:  # fmt: skip
    """The final models' worst cases, and whether the reference's errors leave acquisition anything to find."""
    lines = ["", "## Worst cases of the final models", "",
             "95th percentile of the per-sample test weighted MAE, and the share of the total error in the worst 10% "
             "of test samples (0.10: every sample as hard as any other).", "",
             "| model | acquisition | p95 | worst-10% share |", "|---|---|---|---|"]  # fmt: skip
    notes = []
    for model in models:
        for acquisition in sorted({key[1] for key in runs if key[0] == model}):
            finals = [run[-1] for (m, a, _), run in runs.items() if m == model and a == acquisition]
            cells = [_fmt(mean_std(_finite(row.get(key, math.nan) for row in finals)), spec)
                     for key, spec in (("test_wmae_p95", ".4g"), ("test_wmae_top10_share", ".2f"))]  # fmt: skip
            lines.append(f"| {model} | {acquisition} | " + " | ".join(cells) + " |")
            share = mean_std(_finite(row.get("test_wmae_top10_share", math.nan) for row in finals))[0]
            if acquisition == reference and share < 0.2:  # under twice the share of an even spread
                notes.append(f"**{model}: `{reference}`'s final errors are nearly even over the test samples (the "
                             f"worst 10% hold {share:.0%} of the error): there is little for an acquisition function "
                             "to find.**")  # fmt: skip
    return lines + [line for note in notes for line in ("", note)]


def _interval(mean: float, interval: tuple[float, float]) -> str:
    low, high = interval
    return "—" if math.isnan(mean) else f"{mean:+.4g}" if math.isnan(low) else f"{mean:+.4g} [{low:+.4g}, {high:+.4g}]"


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _fmt(stats: tuple[float, float], spec: str) -> str:
    mean, spread = stats
    return "—" if math.isnan(mean) else f"{mean:{spec}} ± {spread:{spec}}"
