"""The initial design: random, or space-filling in the candidates' quantile space, snapped to distinct candidates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from raysurr.acquisition.design import initial_design, quantiles
from raysurr.simulators import Diffusion2D


@pytest.mark.parametrize("design", ["random", "lhs", "sobol", "kmeans"])
def test_a_design_is_size_distinct_candidates_deterministic_per_seed(design):
    params = Diffusion2D(grid=32, decay_length=[0.5, 64]).sample(3000, np.random.default_rng(0))
    picks = initial_design(params, 100, design, np.random.default_rng(1))
    assert len(picks) == len(set(picks.tolist())) == 100 and picks.min() >= 0 and picks.max() < 3000
    assert np.array_equal(picks, initial_design(params, 100, design, np.random.default_rng(1)))
    assert list(picks) == sorted(picks)


def coverage(space: np.ndarray, design: str, size: int = 100, seeds: int = 5) -> float:
    """The mean distance from a candidate to its nearest design point (lower: the design covers the pool better)."""
    params = space
    return float(np.mean([cKDTree(space[initial_design(params, size, design, np.random.default_rng(s))])
                          .query(space)[0].mean() for s in range(seeds)]))  # fmt: skip


def marginal_unevenness(space: np.ndarray, design: str, size: int = 100, seeds: int = 5) -> float:
    """How far the design's points are from ten per tenth of each parameter's range (0: perfectly stratified)."""
    spread = []
    for s in range(seeds):
        picks = initial_design(space, size, design, np.random.default_rng(s))
        spread += [np.histogram(space[picks, j], bins=10, range=(0, 1))[0].std() for j in range(space.shape[1])]
    return float(np.mean(spread))


def test_with_few_parameters_lhs_and_sobol_stratify_and_cover():
    space = np.random.default_rng(0).uniform(size=(10000, 2))
    random = marginal_unevenness(space, "random"), coverage(space, "random")
    for design in ("lhs", "sobol"):
        assert marginal_unevenness(space, design) < 0.5 * random[0], design
        assert coverage(space, design) < 0.95 * random[1], design


def test_with_many_parameters_kmeans_covers_the_pool_best():
    """diffusion2d with decay lengths (7 parameters; quantiles follow the log-uniform lengths and integer centres):
    snapping to the nearest of 5,000 candidates leaves little of a Latin hypercube, k-means' typical ones cover."""
    space = quantiles(Diffusion2D(grid=32, decay_length=[0.5, 64]).sample(5000, np.random.default_rng(0)))
    random = coverage(space, "random")
    assert coverage(space, "kmeans") < 0.92 * random
    assert coverage(space, "sobol") < 1.02 * random and coverage(space, "lhs") < 1.02 * random  # at least no worse


def test_constant_and_small_pools():
    params = np.column_stack([np.arange(10.0), np.ones(10)])  # a constant column: no information, no harm
    assert sorted(initial_design(params, 10, "lhs", np.random.default_rng(0)).tolist()) == list(range(10))
    assert len(initial_design(params, 50, "sobol", np.random.default_rng(0))) == 10  # never more than the pool
    with pytest.raises(ValueError, match="unknown initial design 'grid'"):
        initial_design(params, 3, "grid", np.random.default_rng(0))
