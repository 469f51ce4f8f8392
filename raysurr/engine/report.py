"""The comparison of an experiment, from its `summary.csv`: label savings read off the reference's learning
curve, paired differences with intervals that hold at the number of seeds, errors at fixed budgets, worst
cases and skill.

Pure Python and numpy: it reads rows (one per run and round, `rounds.csv` columns plus `model`,
`acquisition`, `seed`) and writes `report.md` and one learning-curve figure per architecture.

Savings, per seed: at a budget of n labels a function's error is e; the labels the reference function
(`random`) needs for the same error on its own curve of the same seed, n_ref(e), read off in log-log
between its rounds (`statistics.labels_to_reach`), over n is the saving (2.0: half the simulator runs for
the same error). The reference's runs may go on past the others' budget (`experiment.reference_budget`),
so that every error lies on its curve: a saving is interpolated, never extrapolated; an error below the
reference's whole curve gives a lower bound, and the report says so. The same for the tail: the 95th
percentile of the per-sample errors.

Paired differences, per seed: the log of the error ratio to the reference at the final budget, and the
mean log error over log labels (the area under the learning curve, every doubling weighed alike). Over
seeds: the mean, a t-interval Bonferroni-corrected for the functions compared, and a sign-flip
permutation test with Holm's correction (`raysurr.statistics`). "cannot tell" wherever the corrected
interval holds 0 (or no saving).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from raysurr.plots import plot_experiment_curves
from raysurr.statistics import (
    corrected_confidence,
    holm,
    interpolate_log,
    labels_to_reach,
    sign_flip_pvalue,
    t_interval,
)

KEYS = ("model", "acquisition", "seed")
TEXT_COLUMNS = ("model", "acquisition", "run")
TAIL = "test_wmae_p95"
CURVES = {"test_wmae": "weighted MAE", TAIL: "weighted MAE, 95th percentile"}  # savings are read off these

Run = list[dict[str, Any]]


def read_summary(path: str | Path) -> list[dict[str, Any]]:
    """summary.csv rows with numbers parsed."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key, value in row.items():
            if key not in TEXT_COLUMNS:
                row[key] = float(value) if value not in ("", None) else math.nan
        row["seed"], row["n_labeled"] = int(row["seed"]), int(row["n_labeled"])
    return rows


def region_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """{column: label} of the learning-curve figure: the weighted MAE, its tail, and the plain MAE of each region
    the simulator names (`test_mae_<region>`: diffusion2d's source and field, a plugin's own)."""
    columns = dict.fromkeys(key for row in rows[:1] for key in row)
    regions = [c for c in columns if c.startswith("test_mae_") and c != "test_mae_all" and "_skill_" not in c]
    return {**{c: label for c, label in CURVES.items() if c in columns},
            **{c: f"{c.removeprefix('test_mae_')}-region MAE" for c in regions}}  # fmt: skip


def curves(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str, int], Run]:
    """{(model, acquisition, seed): that run's rows in label order}."""
    out: dict[tuple[str, str, int], Run] = defaultdict(list)
    for row in rows:
        out[(row["model"], row["acquisition"], row["seed"])].append(row)
    return {key: sorted(value, key=lambda r: r["n_labeled"]) for key, value in out.items()}


def best_so_far(run: Run, metric: str = "test_wmae") -> np.ndarray:
    """[rounds] the lowest error of the run up to each round."""
    return np.minimum.accumulate(np.array([row[metric] for row in run], dtype=float))


def error_at(run: Run, budget: int, metric: str = "test_wmae") -> float:
    """The metric of the last round with at most `budget` labels; NaN if the run has no such round or
    stopped short of the budget (its last round has fewer labels)."""
    rounds = [row for row in run if row["n_labeled"] <= budget]
    if not rounds or run[-1]["n_labeled"] < budget:
        return math.nan
    return rounds[-1][metric]


def area_under_curve(run: Run, metric: str = "test_wmae", up_to: float = math.inf) -> float:
    """The mean log error over log labels, up to `up_to` labels: the trapezoid area under log(error) against
    log(n_labeled) over its width. One number for a whole curve, which weighs every doubling of the labels alike."""
    run = [row for row in run if row["n_labeled"] <= up_to]
    x = np.log(np.array([row["n_labeled"] for row in run], dtype=float))
    y = np.log(np.array([row[metric] for row in run], dtype=float))
    if len(run) < 2 or x[-1] <= x[0]:
        return float(y[-1]) if len(run) else math.nan
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def saving(run: Run, reference: Run, budget: int, metric: str = "test_wmae") -> tuple[float, str | None]:
    """(the reference's labels for the run's error at `budget` / `budget`, and "beyond"/"before" where that error
    lies outside the reference's curve and the saving is a bound): NaN if the run has no error at the budget."""
    error = error_at(run, budget, metric)
    if math.isnan(error):
        return math.nan, None
    n, errors = zip(*[(row["n_labeled"], row[metric]) for row in reference if math.isfinite(row[metric])], strict=True)
    needed, outside = labels_to_reach(n, errors, error)
    return needed / budget, outside


def summarize_differences(values: Sequence[float], confidence: float) -> dict[str, Any]:
    """Mean, corrected t-interval and sign-flip p-value of per-seed differences."""
    values = [v for v in values if math.isfinite(v)]
    mean, low, high = t_interval(values, confidence)
    return {"seeds": len(values), "mean": mean, "low": low, "high": high, "p": sign_flip_pvalue(values)}


def compare(per_function: dict[tuple[str, str], list[float]], confidence: float) -> dict[tuple[str, str], dict]:
    """Per (model, function): `summarize_differences` at the Bonferroni-corrected level for the functions compared
    per model, with Holm-adjusted p-values over them."""
    out = {}
    for model in sorted({m for m, _ in per_function}):
        keys = [key for key in per_function if key[0] == model]
        level = corrected_confidence(confidence, len(keys))
        items = {key: summarize_differences(per_function[key], level) for key in keys}
        for key, adjusted in zip(keys, holm([items[key]["p"] for key in keys]), strict=True):
            out[key] = {**items[key], "p_holm": adjusted, "level": level}
    return out


def verdict(item: dict[str, Any], lower: str = "lower", higher: str = "higher") -> str:
    """What a corrected interval of a difference (function - reference) says."""
    if item["seeds"] < 2 or math.isnan(item["low"]):
        return "too few seeds"
    return lower if item["high"] < 0 else higher if item["low"] > 0 else "cannot tell"


def final_budget(runs: dict[tuple[str, str, int], Run], model: str, reference: str) -> int:
    """The label count every run of `model` other than the reference's reaches (its common final budget)."""
    ends = [run[-1]["n_labeled"] for (m, a, _), run in runs.items() if m == model and a != reference]
    return min(ends) if ends else max(run[-1]["n_labeled"] for (m, _, _), run in runs.items() if m == model)


def per_seed(runs: dict[tuple[str, str, int], Run], reference: str,
             value: Callable[[Run, Run, str], float]) -> dict[tuple[str, str], list[float]]:  # fmt: skip
    """{(model, function): [value(run, the reference's run of its seed, model) per seed]} for every function but the
    reference."""
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (model, acquisition, seed), run in sorted(runs.items()):
        base = runs.get((model, reference, seed))
        if acquisition != reference and base:
            out[(model, acquisition)].append(value(run, base, model))
    return dict(out)


class Report:
    """The comparison of one experiment's runs with the reference function (and the oracle, where one ran).

    Args:
        rows: summary rows; reference: the function savings are measured against; budgets: label counts to
        compare at (default: every round's of the functions); bound: the label of a hindsight oracle arm;
        confidence: the family-wise level of the intervals.
    """

    def __init__(self, rows: Sequence[dict[str, Any]], reference: str, budgets: Sequence[int] = (),
                 bound: str | None = None, confidence: float = 0.95) -> None:  # fmt: skip
        self.rows, self.reference, self.bound, self.confidence = rows, reference, bound, confidence
        self.runs = curves(rows)
        self.models = sorted({key[0] for key in self.runs})
        self.finals = {model: final_budget(self.runs, model, reference) for model in self.models}
        starts = {run[0]["n_labeled"] for run in self.runs.values()}
        compared = {row["n_labeled"] for (_, a, _), run in self.runs.items() if a != reference for row in run}
        self.budgets = sorted(budgets) or sorted(compared - starts) or sorted(starts)

    def functions(self, model: str) -> list[str]:
        return sorted({a for m, a, _ in self.runs if m == model})

    def savings(self, budget: int | None = None, metric: str = "test_wmae") -> dict[tuple[str, str], dict]:
        """Per (model, function): the log saving over seeds at `budget` (default: each model's final one), and how
        many seeds gave a bound rather than a value."""
        outside: dict[tuple[str, str], list[str]] = defaultdict(list)

        def log_saving(run: Run, base: Run, model: str) -> float:
            value, where = saving(run, base, budget or self.finals[model], metric)
            if where:
                outside[(run[0]["model"], run[0]["acquisition"])].append(where)
            return math.log(value) if value > 0 else math.nan

        table = compare(per_seed(self.runs, self.reference, log_saving), self.confidence)
        return {key: {**item, "beyond": outside[key].count("beyond"), "before": outside[key].count("before")}
                for key, item in table.items()}  # fmt: skip

    def differences(self, metric: str) -> dict[tuple[str, str], dict]:
        """Per (model, function): log(error / the reference's) at the final budget, over seeds."""

        def log_ratio(run: Run, base: Run, model: str) -> float:
            final = self.finals[model]
            ours = error_at(run, final, metric)
            theirs = interpolate_log([r["n_labeled"] for r in base], [r[metric] for r in base], final)
            return math.log(ours / theirs) if ours > 0 and theirs > 0 else math.nan

        return compare(per_seed(self.runs, self.reference, log_ratio), self.confidence)

    def areas(self) -> dict[tuple[str, str], dict]:
        """Per (model, function): the mean log error over log labels minus the reference's, up to the final budget."""

        def area(run: Run, base: Run, model: str) -> float:
            final = self.finals[model]
            return area_under_curve(run, up_to=final) - area_under_curve(base, up_to=final)

        return compare(per_seed(self.runs, self.reference, area), self.confidence)

    # report.md -----------------------------------------------------------------------------------

    def markdown(self) -> str:
        seeds = sorted({key[2] for key in self.runs})
        functions = {a for _, a, _ in self.runs}
        lines = ["# Experiment report", "",
                 f"{len(self.runs)} runs: {len(self.models)} architectures x {len(functions)} acquisition functions x "
                 f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), paired by seed (each seed's runs share their "
                 f"pool, initial set and evaluation sets). Intervals are t-intervals over seeds, Bonferroni-corrected "
                 f"for the functions compared with `{self.reference}` so that all hold together at "
                 f"{self.confidence:.0%}; p-values are sign-flip permutation tests with Holm's correction. "
                 "\"cannot tell\": the corrected interval holds no difference."]  # fmt: skip
        lines += self._savings_section() + self._differences_section() + self._budgets_section()
        lines += self._spread_section() + self._skill_section()
        lines += ["", "Figures: " + ", ".join(f"`learning_curve-{m}.png`" for m in self.models), ""]
        return "\n".join(lines)

    def _savings_section(self) -> list[str]:
        lines = ["", f"## Label savings against `{self.reference}`", "",
                 f"At each budget, the labels `{self.reference}` needs (on its own curve, same seed, interpolated in "
                 "log-log between its rounds) for the error the function reaches there, over the budget: the factor "
                 "of simulator runs the function saves. Geometric mean over seeds [corrected interval]; \"≥\": some "
                 f"seeds' errors lie beyond `{self.reference}`'s whole curve, so their saving is a lower bound (run "
                 f"`{self.reference}` further with experiment.reference_budget). "
                 + (f"The last column is the function's share of the hindsight oracle's (`{self.bound}`) saving on a "
                    "log scale: log(saving) / log(the oracle's saving), where neither is a bound and the oracle's "
                    "interval lies above 1x." if self.bound
                    else "")]  # fmt: skip
        for metric, name in CURVES.items():
            if not any(metric in row for row in self.rows[:1]):
                continue
            lines += ["", f"### {name}", "",
                      "| model | acquisition | budget | seeds | saving | verdict | p (Holm) |"
                      + (" share of oracle |" if self.bound else ""),
                      "|---|---|---|---|---|---|---|" + ("---|" if self.bound else "")]  # fmt: skip
            for budget in [b for b in self.budgets if b not in self.finals.values()] + [None]:
                table = self.savings(budget, metric)
                for (model, acquisition), item in sorted(table.items()):
                    if budget is not None and budget > self.finals[model]:
                        continue
                    share = f" {self._share(table, model, acquisition)} |" if self.bound else ""
                    at = budget or self.finals[model]
                    cells = f"{_saving(item)} | {verdict(item, 'costs more', 'saves')} | {_p(item)} |{share}"
                    lines.append(f"| {model} | {acquisition} | {at} | {item['seeds']} | {cells}")
        return lines

    def _share(self, table: dict, model: str, acquisition: str) -> str:
        """A function's saving as a share of the oracle's, on a log scale ("—" where either is a bound, or where the
        oracle's own saving is not told apart from none: a share of no room would only magnify noise)."""
        ours, oracle = table[(model, acquisition)], table.get((model, self.bound))
        bounded = any(item["beyond"] or item["before"] for item in (ours, oracle or ours))
        if acquisition == self.bound or not oracle or bounded or not oracle["low"] > 0:
            return "—"
        return f"{ours['mean'] / oracle['mean']:.0%}"

    def _differences_section(self) -> list[str]:
        lines = ["", f"## Paired against `{self.reference}`, seed by seed", "",
                 f"Function against `{self.reference}` of the same seed, as the ratio of errors at the final budget "
                 "(geometric mean over seeds [corrected interval]) and the mean log error over all budgets up to it "
                 "(an area under the learning curve; a difference of -0.1 is ~10% lower error throughout).", "",
                 "| model | acquisition | seeds | final error ratio | verdict | p (Holm) | tail (p95) ratio | verdict "
                 "| p (Holm) | mean log error | verdict | p (Holm) |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        final, tail, area = self.differences("test_wmae"), self.differences(TAIL), self.areas()
        for key, item in sorted(final.items()):
            cells = [f"{_ratio(item)} | {verdict(item)} | {_p(item)}"]
            cells.append(
                f"{_ratio(tail[key])} | {verdict(tail[key])} | {_p(tail[key])}" if key in tail else "— | — | —"
            )
            cells.append(f"{_interval(area[key])} | {verdict(area[key])} | {_p(area[key])}")
            lines.append(f"| {key[0]} | {key[1]} | {item['seeds']} | " + " | ".join(cells) + " |")
        return lines

    def _budgets_section(self) -> list[str]:
        budgets = sorted({*self.budgets, *self.finals.values()})
        lines = []
        for metric, name in CURVES.items():
            lines += ["", f"## Test {name} at fixed budgets (mean ± std over seeds)", "",
                      "| model | acquisition | " + " | ".join(f"{b} labels" for b in budgets) + " |",
                      "|---|---|" + "---|" * len(budgets)]  # fmt: skip
            for model in self.models:
                for acquisition in self.functions(model):
                    members = self._members(model, acquisition)
                    cells = [_fmt(mean_std(_finite(error_at(run, b, metric) for run in members)), ".4g")
                             for b in budgets]  # fmt: skip
                    lines.append(f"| {model} | {acquisition} | " + " | ".join(cells) + " |")
        return lines

    def _members(self, model: str, acquisition: str) -> list[Run]:
        return [run for (m, a, _), run in self.runs.items() if m == model and a == acquisition]

    def _final_rows(self, model: str, acquisition: str) -> list[dict[str, Any]]:
        """Each run's row at the model's final budget (the reference's too, though it goes on)."""
        final = self.finals[model]
        return [next((r for r in reversed(run) if r["n_labeled"] <= final), run[0])
                for run in self._members(model, acquisition)]  # fmt: skip

    def _spread_section(self) -> list[str]:
        lines = ["", "## Worst cases at the final budget", "",
                 "95th percentile of the per-sample test weighted MAE, and the share of the total error in the worst "
                 "10% of test samples (0.10: every sample as hard as any other).", "",
                 "| model | acquisition | p95 | worst-10% share |", "|---|---|---|---|"]  # fmt: skip
        notes = []
        for model in self.models:
            for acquisition in self.functions(model):
                finals = self._final_rows(model, acquisition)
                cells = [_fmt(mean_std(_finite(row.get(key, math.nan) for row in finals)), spec)
                         for key, spec in ((TAIL, ".4g"), ("test_wmae_top10_share", ".2f"))]  # fmt: skip
                lines.append(f"| {model} | {acquisition} | " + " | ".join(cells) + " |")
                share = mean_std(_finite(row.get("test_wmae_top10_share", math.nan) for row in finals))[0]
                if acquisition == self.reference and share < 0.2:  # under twice the share of an even spread
                    notes.append(f"**{model}: `{self.reference}`'s final errors are nearly even over the test samples "
                                 f"(the worst 10% hold {share:.0%} of the error): there is little for an acquisition "
                                 "function to find.**")  # fmt: skip
        return lines + [line for note in notes for line in ("", note)]

    def _skill_section(self) -> list[str]:
        lines = ["", "## Skill of the final models against trivial models", "",
                 "1 - error / the trivial model's error on the same test set: above 0, better than predicting zero "
                 "(or the training set's mean field).", "",
                 "| model | acquisition | " + " | ".join(SKILLS.values()) + " |",
                 "|---|---|" + "---|" * len(SKILLS)]  # fmt: skip
        worse = []
        for model in self.models:
            for acquisition in self.functions(model):
                finals = self._final_rows(model, acquisition)
                stats = {key: mean_std(_finite(row.get(key, math.nan) for row in finals)) for key in SKILLS}
                lines.append(
                    f"| {model} | {acquisition} | " + " | ".join(_fmt(s, ".2f") for s in stats.values()) + " |"
                )
                worse += [f"{model}/{acquisition} ({SKILLS[k]})" for k, (mean, _) in stats.items() if mean <= 0]
        if worse:
            lines += ["", f"**Not better than a trivial model:** {', '.join(worse)}."]
        return lines


SKILLS = {"test_wmae_skill_zero": "wMAE vs zero", "test_wmae_skill_mean": "wMAE vs mean field",
          "test_mae_skill_zero": "MAE vs zero", "test_mae_skill_mean": "MAE vs mean field"}  # fmt: skip


def write_report(rows: Sequence[dict[str, Any]], folder: Path, reference: str, budgets: Sequence[int] = (),
                 bound: str | None = None, confidence: float = 0.95) -> Path:  # fmt: skip
    """report.md and learning_curve-MODEL.png from the summary rows; returns the report's path."""
    report = Report(rows, reference, budgets, bound, confidence)
    metrics = region_metrics(rows)
    for model in report.models:
        by_function = {a: report._members(model, a) for a in report.functions(model)}
        plot_experiment_curves(by_function, metrics, folder / f"learning_curve-{model}.png", title=model)
    path = folder / "report.md"
    path.write_text(report.markdown())
    return path


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, standard deviation over seeds); NaNs when empty."""
    if not values:
        return math.nan, math.nan
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def _saving(item: dict[str, Any]) -> str:
    if math.isnan(item["mean"]):
        return "—"
    bound = "≥ " if item["beyond"] else "≤ " if item["before"] else ""
    interval = "" if math.isnan(item["low"]) else f" [{math.exp(item['low']):.2f}, {math.exp(item['high']):.2f}]"
    note = f" ({item['beyond'] + item['before']} bounds)" if item["beyond"] or item["before"] else ""
    return f"{bound}{math.exp(item['mean']):.2f}x{interval}{note}"


def _ratio(item: dict[str, Any]) -> str:
    if math.isnan(item["mean"]):
        return "—"
    interval = "" if math.isnan(item["low"]) else f" [{math.exp(item['low']):.2f}, {math.exp(item['high']):.2f}]"
    return f"{math.exp(item['mean']):.2f}{interval}"


def _interval(item: dict[str, Any]) -> str:
    if math.isnan(item["mean"]):
        return "—"
    return f"{item['mean']:+.3f}" + ("" if math.isnan(item["low"]) else f" [{item['low']:+.3f}, {item['high']:+.3f}]")


def _p(item: dict[str, Any]) -> str:
    return "—" if math.isnan(item.get("p_holm", math.nan)) else f"{item['p_holm']:.3g}"


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _fmt(stats: tuple[float, float], spec: str) -> str:
    mean, spread = stats
    return "—" if math.isnan(mean) else f"{mean:{spec}} ± {spread:{spec}}"
