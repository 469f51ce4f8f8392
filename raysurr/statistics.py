"""Statistics that hold with few seeds, and the arithmetic of learning curves. Pure numpy/scipy.

Comparisons of acquisition functions are paired by seed (the runs of one seed share their pool, initial
set and evaluation sets), and a study has 5 to 20 seeds. At those counts a percentile bootstrap of the
mean covers the true mean only ~83 % of the time at 5 seeds (`tests/test_statistics.py` measures it); a
t-interval covers 95 % for normal differences, and a sign-flip permutation test is exact for any
symmetric ones. Comparing several functions with one reference, Holm's step-down correction keeps the
chance of any false "better" at the nominal level; the intervals are Bonferroni-corrected, which is
never narrower than Holm's step-down would allow, so a "cannot tell" is never hidden.

Learning curves follow a power law, error ≈ c · n^-α: `power_law` fits α, `labels_to_reach` reads the
labels a curve needs for an error off the curve itself (log-log interpolation between its points, never
beyond them), and `ceiling` is the most any allocation of labels over the inputs could save over
uniform sampling, from per-sample errors.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t-interval of the mean of `values` (NaN bounds with fewer than 2).

    Example:
        >>> mean, low, high = t_interval([1.0, 2.0, 3.0])
        >>> mean, round(low, 3), round(high, 3)
        (2.0, -0.484, 4.484)
    """
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return mean, mean - float(half), mean + float(half)


def sign_flip_pvalue(differences: Sequence[float], resamples: int = 100_000, seed: int = 0) -> float:
    """Two-sided p-value of a mean paired difference of 0: the share of sign flips of the differences whose mean
    is at least as far from 0 as the observed one. Exact (every flip) up to 16 differences, else `resamples` random
    flips. With n differences it is never below 2 / 2^n (0.0625 at 5 seeds): few seeds cannot show much.

    Example:
        >>> sign_flip_pvalue([1.0, 2.0, 3.0, 4.0, 5.0])
        0.0625
    """
    values = np.asarray(differences, dtype=float)
    if len(values) == 0 or not np.any(values):
        return 1.0
    observed = abs(values.mean()) * (1 - 1e-12)  # flips that tie the observed mean count as extreme
    if len(values) <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(values))))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(resamples, len(values)))
    return float(np.mean(np.abs(signs @ values / len(values)) >= observed))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given; NaN stays NaN and counts as no test).

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    values = np.asarray(pvalues, dtype=float)
    tested = np.flatnonzero(~np.isnan(values))
    adjusted = np.full(len(values), math.nan)
    running = 0.0
    for rank, index in enumerate(tested[np.argsort(values[tested], kind="stable")]):
        running = max(running, min(1.0, (len(tested) - rank) * values[index]))
        adjusted[index] = running
    return [round(float(v), 12) for v in adjusted]


def corrected_confidence(confidence: float, comparisons: int) -> float:
    """Bonferroni: the level each of `comparisons` intervals needs for all to hold together at `confidence`."""
    return 1 - (1 - confidence) / max(1, comparisons)


def interpolate_log(n: Sequence[float], values: Sequence[float], at: float) -> float:
    """A curve's value at `at` labels, interpolated linearly in log-log between its points (NaN outside them)."""
    n, values = np.asarray(n, dtype=float), np.asarray(values, dtype=float)
    if not len(n) or at < n[0] or at > n[-1]:
        return math.nan
    return float(np.exp(np.interp(math.log(at), np.log(n), np.log(values))))


def labels_to_reach(n: Sequence[float], errors: Sequence[float], target: float) -> tuple[float, str | None]:
    """The labels a learning curve needs to reach error `target`, read off its points in log-log.

    The curve is made monotone first (the best error so far at each point), so noise never makes one error
    reachable twice. Outside the curve nothing is extrapolated: an error below every point gives
    (the last n, "beyond"), one above every point gives (the first n, "before") — bounds, not values.

    Example:
        >>> labels_to_reach([100, 200, 400], [8.0, 4.0, 2.0], 4.0)
        (200.0, None)
        >>> round(labels_to_reach([100, 200, 400], [8.0, 4.0, 2.0], 2.8284)[0])
        283
        >>> labels_to_reach([100, 200, 400], [8.0, 4.0, 2.0], 1.0)
        (400.0, 'beyond')
    """
    n = np.asarray(n, dtype=float)
    best = np.minimum.accumulate(np.asarray(errors, dtype=float))
    if target < best[-1]:
        return float(n[-1]), "beyond"
    if target >= best[0]:
        return float(n[0]), None if target == best[0] else "before"
    i = int(np.argmax(best <= target))  # the first point at or below the target; best[i - 1] > target
    if target == best[i]:
        return float(n[i]), None
    fraction = math.log(best[i - 1] / target) / math.log(best[i - 1] / best[i])
    return float(math.exp(math.log(n[i - 1]) + fraction * math.log(n[i] / n[i - 1]))), None


def power_law(n: Sequence[float], errors: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(α, low, high): the slope of error ≈ c · n^-α fitted to the points in log-log by least squares, with its
    t-interval (len - 2 degrees of freedom; NaN bounds for 2 points).

    Example:
        >>> alpha, _, _ = power_law([100, 200, 400], [8.0, 4.0, 2.0])
        >>> round(alpha, 6)
        1.0
    """
    x, y = np.log(np.asarray(n, dtype=float)), np.log(np.asarray(errors, dtype=float))
    fit = stats.linregress(x, y)
    alpha = -float(fit.slope)
    if len(x) < 3:
        return alpha, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 2) * fit.stderr)
    return alpha, alpha - half, alpha + half


def power_mean(values: np.ndarray, p: float) -> float:
    """(mean of values^p)^(1/p) of positive values; the geometric mean at p = 0."""
    values = np.asarray(values, dtype=float)
    if p == 0:
        return float(np.exp(np.log(values).mean()))
    return float(np.mean(values**p) ** (1 / p))


def ceiling(errors: Sequence[float], alpha: float) -> float:
    """The most labels an acquisition function could save over uniform sampling, given per-sample errors.

    If an input x has error c(x) · n(x)^-α where n(x) is the label density around it, then the allocation
    that minimises the mean error puts labels in proportion to c^(1/(1+α)), and reaches with n labels what
    uniform sampling reaches with S · n, S = (M_1(c) / M_(1/(1+α))(c))^(1/α) (M_p: the power mean over the
    inputs). c is proportional to the per-sample errors at one label count, so S is read off them
    directly. For log-normal c with spread σ, S = exp(σ² / (2 (1 + α))); for a uniform c, exactly 1.

    Example:
        >>> ceiling([1.0, 1.0, 1.0], 0.5)
        1.0
    """
    errors = np.asarray(errors, dtype=float)
    errors = errors[np.isfinite(errors) & (errors > 0)]
    if not len(errors) or not alpha > 0:
        return math.nan
    errors = errors / errors.max()  # scale-free, and exactly 1 for equal errors
    return float((power_mean(errors, 1.0) / power_mean(errors, 1 / (1 + alpha))) ** (1 / alpha))


def worst_share(errors: Sequence[float], fraction: float) -> float:
    """The share of the total error held by the worst `fraction` of the samples (`fraction` when all are equal).

    Example:
        >>> worst_share([1.0] * 9 + [11.0], 0.1)
        0.55
    """
    errors = np.sort(np.asarray(errors, dtype=float))[::-1]
    if not len(errors) or not errors.sum() > 0:
        return math.nan
    worst = max(1, round(fraction * len(errors)))
    return float(errors[:worst].sum() / errors.sum())
