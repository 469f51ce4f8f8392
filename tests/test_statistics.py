"""raysurr.statistics: intervals that hold at a few seeds, exact permutation tests, Holm, learning-curve arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from raysurr.statistics import (
    ceiling,
    corrected_confidence,
    holm,
    interpolate_log,
    labels_to_reach,
    power_law,
    power_mean,
    sign_flip_pvalue,
    t_interval,
    worst_share,
)

EXPERIMENTS, SEEDS = 2000, 5


def coverage(interval, rng: np.random.Generator, draw) -> float:
    """How often `interval(values)` holds the true mean 0.3 over simulated 5-seed paired experiments."""
    hits = 0
    for _ in range(EXPERIMENTS):
        low, high = interval(draw(rng))
        hits += low <= 0.3 <= high
    return hits / EXPERIMENTS


def percentile_bootstrap(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    means = rng.choice(values, size=(2000, len(values))).mean(axis=1)
    return tuple(np.percentile(means, [2.5, 97.5]))


def test_the_t_interval_covers_the_true_mean_at_five_seeds_where_a_percentile_bootstrap_does_not():
    rng = np.random.default_rng(0)
    normal = lambda r: r.normal(0.3, 1.0, SEEDS)  # noqa: E731
    t = coverage(lambda v: t_interval(v)[1:], rng, normal)
    assert 0.93 <= t <= 0.97
    boot = coverage(lambda v: percentile_bootstrap(v, rng), np.random.default_rng(1), normal)
    assert boot < 0.9  # the old report's interval: too narrow at 5 seeds (~0.83)


def test_corrected_intervals_hold_together():
    """Three functions compared with one reference, none different: all three corrected intervals hold the truth
    together in about 95% of the experiments."""
    rng = np.random.default_rng(2)
    level = corrected_confidence(0.95, 3)
    together = 0
    for _ in range(EXPERIMENTS):
        intervals = [t_interval(rng.normal(0.0, 1.0, SEEDS), level)[1:] for _ in range(3)]
        together += all(low <= 0 <= high for low, high in intervals)
    assert 0.93 <= together / EXPERIMENTS <= 0.99


def test_sign_flip_test_is_exact_and_never_below_its_floor():
    assert sign_flip_pvalue([0.5] * 5) == pytest.approx(2 / 32)  # every flip but two is less extreme
    assert sign_flip_pvalue([0.0, 0.0, 0.0]) == 1.0
    assert sign_flip_pvalue([1.0, -1.0]) == 1.0
    rng = np.random.default_rng(3)  # under the null, a symmetric difference: rejections at 5% stay at or below 5%
    rejections = np.mean([sign_flip_pvalue(rng.normal(0, 1, 10)) <= 0.05 for _ in range(400)])
    assert rejections <= 0.08
    assert sign_flip_pvalue(rng.normal(1.5, 1, 20), resamples=20_000) < 0.01  # Monte Carlo beyond 16 differences


def test_holm_adjusts_in_rank_order_and_keeps_order():
    assert holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]
    assert holm([0.5]) == [0.5]
    adjusted = holm([0.2, math.nan, 0.001])
    assert adjusted[0] == 0.2 and math.isnan(adjusted[1]) and adjusted[2] == 0.002


def test_labels_to_reach_interpolates_on_the_monotone_curve_and_never_extrapolates():
    n, errors = [100, 200, 400, 800], [8.0, 4.0, 5.0, 2.0]  # a noisy bump at 400
    assert labels_to_reach(n, errors, 4.0) == (200.0, None)
    # the monotone curve is 8, 4, 4, 2: 3 lies between 400 (4) and 800 (2), log-log
    assert labels_to_reach(n, errors, 3.0)[0] == pytest.approx(400 * 2 ** (math.log(4 / 3) / math.log(4 / 2)))
    assert labels_to_reach(n, errors, 1.0) == (800.0, "beyond")
    assert labels_to_reach(n, errors, 9.0) == (100.0, "before")
    assert interpolate_log(n, errors, 283) == pytest.approx(4 * (5 / 4) ** (math.log(283 / 200) / math.log(2)))
    assert math.isnan(interpolate_log(n, errors, 1000))


def test_power_law_recovers_a_slope_with_an_interval_that_holds_it():
    n = np.array([250, 500, 1000, 2000] * 3, dtype=float)
    rng = np.random.default_rng(4)
    fits = [power_law(n, 20 * n**-0.3 * np.exp(rng.normal(0, 0.03, len(n)))) for _ in range(400)]
    assert np.mean([abs(alpha - 0.3) for alpha, _, _ in fits]) < 0.02
    assert 0.92 <= np.mean([low <= 0.3 <= high for _, low, high in fits]) <= 0.98
    assert power_law([100, 200], [4.0, 2.0])[0] == pytest.approx(1.0)


def lognormal_quantiles(sigma: float, count: int = 200_000) -> np.ndarray:
    """Per-sample errors whose spread is exactly log-normal (evenly spaced quantiles, no sampling noise)."""
    return np.exp(sigma * stats.norm.ppf((np.arange(count) + 0.5) / count))


@pytest.mark.parametrize(("sigma", "alpha"), [(0.5, 0.24), (1.0, 0.5), (1.5, 0.25)])
def test_the_ceiling_of_log_normal_errors_is_the_closed_form(sigma, alpha):
    assert ceiling(lognormal_quantiles(sigma), alpha) == pytest.approx(math.exp(sigma**2 / (2 * (1 + alpha))), rel=0.01)


def test_the_ceiling_of_even_errors_is_exactly_one_and_ignores_scale():
    assert ceiling(np.full(1000, 3.7), 0.3) == 1.0
    errors = lognormal_quantiles(0.8, 1000)
    assert ceiling(errors, 0.3) == pytest.approx(ceiling(10 * errors, 0.3))
    assert power_mean(np.array([1.0, 4.0]), 0.0) == pytest.approx(2.0)


def test_worst_share():
    assert worst_share([1.0] * 9 + [11.0], 0.1) == pytest.approx(0.55)
    assert worst_share(np.ones(100), 0.2) == pytest.approx(0.2)
