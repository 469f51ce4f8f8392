"""How much active learning could save on a problem, measured before a label budget is spent.

`raysurr headroom` runs a small paired experiment (`plan`): random samples at three or more sizes, each
model trained from scratch, and a hindsight oracle that selects the current model's largest true errors
from the same start. `analyse` then reads, from the run folders:

- `alpha`: the slope of random sampling's learning curve, error ≈ c · n^-α, with its interval;
- how unevenly the final random model errs (`worst10_share`, `worst20_share`);
- `ceiling`: the most any allocation of labels could save over uniform sampling if each input's error
  falls as c(x) · n^-α (`statistics.ceiling`);
- `oracle_saving`: the labels random sampling needs for the oracle's final error over the oracle's labels.

Both bound what an acquisition function can do. Near 1, random sampling is near-optimal and no function
will save labels; well above 1, one may (docs/acquisition.md, "Headroom").
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from raysurr.config import Config, ExperimentConfig
from raysurr.engine.rounds import read_rounds
from raysurr.engine.run_folder import RunFolder
from raysurr.errors import ConfigError
from raysurr.statistics import ceiling, labels_to_reach, power_law, t_interval, worst_share

RANDOM, ORACLE = "random", "oracle"


def budget_of(config: Config) -> int:
    """The labels a run of this config ends with: the last of `loop.sizes`, `loop.label_budget`, or what its
    rounds add up to."""
    loop = config.loop
    if loop.sizes:
        return loop.sizes[-1]
    if loop.label_budget:
        return loop.label_budget
    return config.pool.initial + (loop.rounds - 1) * loop.batch_size


def default_sizes(config: Config) -> tuple[int, ...]:
    """1/8, 1/4 and 1/2 of the run's label budget."""
    budget = budget_of(config)
    sizes = tuple(max(1, round(budget * fraction)) for fraction in (1 / 8, 1 / 4, 1 / 2))
    if len(set(sizes)) < 3:
        raise ConfigError(f"the label budget ({budget}) is too small to measure a learning curve at 1/8, 1/4 and 1/2 "
                          "of it; give --sizes")  # fmt: skip
    return sizes


def plan(config: Config, sizes: tuple[int, ...], seeds: int, oracle: dict[str, Any] | None) -> Config:
    """The paired experiment that measures the headroom: `random` (and the oracle, unless None) from `sizes[0]`
    random labels through `sizes`, trained from scratch every round, `seeds` seeds from the config's."""
    if len(sizes) < 3 or any(a >= b for a, b in itertools.pairwise(sizes)) or sizes[0] < 1:
        raise ConfigError(f"--sizes must be 3 or more increasing label counts, got {list(sizes)}")
    if sizes[-1] >= config.pool.size:
        raise ConfigError(f"the largest size ({sizes[-1]}) must be below pool.size ({config.pool.size}): the oracle "
                          "selects from the rest of the pool (raise pool.size; 20x the labels is a fair "
                          "pool)")  # fmt: skip
    acquisitions = {RANDOM: {}, **({ORACLE: oracle} if oracle is not None else {})}
    grid = ExperimentConfig(acquisitions=acquisitions, seeds=tuple(range(config.seed, config.seed + seeds)),
                            parallel=config.experiment.parallel, reference=RANDOM)  # fmt: skip
    loop = replace(config.loop, sizes=tuple(sizes), mode="sync", label_budget=None)
    return replace(config, pool=replace(config.pool, initial=sizes[0]), loop=loop,
                   training=replace(config.training, reinit=True), experiment=grid)  # fmt: skip


def analyse(folder: Path, config: Config, run_dir) -> dict[str, Any]:
    """headroom.json's contents from the finished runs of `plan`'s experiment in `folder`.

    Args:
        run_dir: (folder, (model, acquisition, seed)) -> that run's folder.
    """
    sizes, seeds = list(config.loop.sizes), list(config.experiment.seeds)
    model = config.model.name
    curves = {seed: _curve(run_dir(folder, (model, RANDOM, seed))) for seed in seeds}
    points = [(n, e) for curve in curves.values() for n, e in curve.items()]
    alpha, low, high = power_law(*zip(*points, strict=True))
    errors = {seed: _errors(run_dir(folder, (model, RANDOM, seed)), len(sizes) - 1) for seed in seeds}
    mean_errors = np.mean([errors[s] for s in seeds], axis=0)  # the same test set for every seed
    result: dict[str, Any] = {
        "sizes": sizes, "seeds": seeds, "random_wmae": {str(n): _mean([c[n] for c in curves.values()]) for n in sizes},
        "alpha": alpha, "alpha_interval": [low, high],
        "worst10_share": _mean([worst_share(errors[s], 0.1) for s in seeds]),
        "worst20_share": _mean([worst_share(errors[s], 0.2) for s in seeds]),
        "ceiling": ceiling(mean_errors, alpha),
        "ceiling_interval": [ceiling(mean_errors, high), ceiling(mean_errors, low)],
        "ceiling_per_seed": [ceiling(errors[s], alpha) for s in seeds],
    }  # fmt: skip
    if ORACLE in config.experiment.acquisitions:
        result.update(_oracle(folder, config, run_dir, curves, alpha))
    result["verdict"] = verdict(result)
    return result


def _oracle(folder: Path, config: Config, run_dir, curves: dict[int, dict[int, float]], alpha: float) -> dict:
    """The oracle's savings over random at the last size, per seed: interpolated on random's curve of the seed
    where the oracle's error lies on it, else extrapolated along the fitted power law (`oracle_extrapolated`)."""
    final, model = config.loop.sizes[-1], config.model.name
    savings, extrapolated, tails = [], 0, []
    for seed, curve in curves.items():
        run = run_dir(folder, (model, ORACLE, seed))
        reached = _curve(run)[final]
        n, outside = labels_to_reach(list(curve), list(curve.values()), reached)
        if outside == "beyond":
            n, extrapolated = final * (curve[final] / reached) ** (1 / alpha), extrapolated + 1
        savings.append(math.log(n / final))
        ours, theirs = _errors(run, len(curve) - 1), _errors(run_dir(folder, (model, RANDOM, seed)), len(curve) - 1)
        tails.append(math.log(np.percentile(ours, 95) / np.percentile(theirs, 95)))
    mean, low, high = t_interval(savings)
    tail, tail_low, tail_high = t_interval(tails)
    return {"oracle_saving": math.exp(mean), "oracle_saving_interval": [math.exp(low), math.exp(high)],
            "oracle_saving_per_seed": [math.exp(s) for s in savings], "oracle_extrapolated": extrapolated,
            "oracle_p95_ratio": math.exp(tail), "oracle_p95_ratio_interval": [math.exp(tail_low), math.exp(tail_high)],
            "oracle_section": config.experiment.acquisitions[ORACLE]}  # fmt: skip


def verdict(result: dict[str, Any]) -> str:
    """One line a user can act on."""
    alpha = result["alpha"]
    if not alpha > 0.02:
        return (f"random's learning curve does not fall at these sizes (error ~ n^-{alpha:.2f}): the model as trained "
                "does not learn from more labels, so no choice of labels can help yet; train longer (training.epochs) "
                "or measure at larger --sizes")  # fmt: skip
    bound = max(result["ceiling"], result.get("oracle_saving", 0.0))
    found = (f"active learning can save at most ~{result['ceiling']:.2f}x labels on this problem (power-law ceiling"
             + (f"; a hindsight oracle saved {result['oracle_saving']:.2f}x" if "oracle_saving" in result else "")
             + f"; random's error falls as n^-{alpha:.2f})")  # fmt: skip
    if bound < 1.25:
        return f"{found}: random sampling is near-optimal here"
    if bound < 1.6:
        return f"{found}: the room is modest; compare functions with raysurr experiment before relying on one"
    return f"{found}: active learning can pay here; compare functions with raysurr experiment (docs/acquisition.md)"


def write(folder: Path, result: dict[str, Any]) -> Path:
    """headroom.json and a readable headroom.md beside it."""
    path = folder / "headroom.json"
    path.write_text(json.dumps(result, indent=1, default=float))
    lines = ["# Headroom", "", result["verdict"] + ".", "", "| quantity | value |", "|---|---|",
             f"| sizes (random labels, seeds {result['seeds']}) | {result['sizes']} |",
             f"| random's test weighted MAE | {', '.join(f'{v:.4g}' for v in result['random_wmae'].values())} |",
             f"| alpha (error ~ n^-alpha) | {result['alpha']:.3f} [{_pair(result['alpha_interval'])}] |",
             f"| worst 10% / 20% of test samples hold | {result['worst10_share']:.0%} / {result['worst20_share']:.0%} "
             "of the error |",
             f"| ceiling (power law) | {result['ceiling']:.2f}x [{_pair(result['ceiling_interval'])}] |"]  # fmt: skip
    if "oracle_saving" in result:
        extrapolated = result["oracle_extrapolated"]
        note = f" (extrapolated along the power law in {extrapolated} seeds)" if extrapolated else ""
        lines += [f"| hindsight oracle's saving | {result['oracle_saving']:.2f}x "
                  f"[{_pair(result['oracle_saving_interval'])}]{note} |",
                  f"| oracle's / random's 95th-percentile error | {result['oracle_p95_ratio']:.2f} "
                  f"[{_pair(result['oracle_p95_ratio_interval'])}] |"]  # fmt: skip
    (folder / "headroom.md").write_text("\n".join(lines) + "\n")
    return path


def _pair(values: list[float]) -> str:
    return ", ".join("—" if not math.isfinite(v) else f"{v:.3g}" for v in values)


def _curve(run: Path) -> dict[int, float]:
    """{labels: test weighted MAE} of a finished run."""
    rows = read_rounds(RunFolder(run).rounds_csv)
    return {int(row["n_labeled"]): float(row["test_wmae"]) for row in rows}


def _errors(run: Path, round_idx: int) -> np.ndarray:
    """[test samples] the per-sample test weighted MAE of a run's round, in sample order."""
    with RunFolder(run).errors(round_idx).open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "test"]
    return np.array([float(row["wmae"]) for row in sorted(rows, key=lambda r: int(r["sample_id"]))])


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan
