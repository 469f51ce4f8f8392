"""The initial design: which candidates are labelled before any model exists. Pure numpy/scipy.

With few labels, a model-based acquisition function selects with a poor model, and random samples leave
gaps; a space-filling or typical start is the known remedy (TypiClust, 2022). The design lives in the
candidates' quantile space: each parameter replaced by its rank among the candidates, scaled to [0, 1], so
that it follows the distribution the simulator samples from (log-uniform, integer, constant parameters
alike) instead of the declared ranges.

`lhs` and `sobol` place points in that space and take the nearest free candidate to each: with a few
parameters they stratify every one of them, but with many (diffusion2d has 6 to 13) the nearest candidate
is far from its point and little of the stratification survives (`tests/acquisition/test_design.py`
measures both). `kmeans` takes the candidate nearest each of k-means' centres over the pool: the most
typical candidates, which cover the pool best in any dimension (12% less mean distance from a candidate to
its nearest design point than random at 7 parameters and 100 points).
"""

from __future__ import annotations

import warnings

import numpy as np

from raysurr.config import DESIGNS


def initial_design(params: np.ndarray, size: int, design: str, rng: np.random.Generator) -> np.ndarray:
    """`size` distinct candidate indices: drawn at random, or the candidates nearest a Latin hypercube (`lhs`), a
    scrambled Sobol sequence (`sobol`) or k-means' centres over the pool (`kmeans`) in the candidates' quantile
    space.

    Args:
        params: [N, P] the candidates' parameter sets.

    Returns:
        [size] sorted int64 indices into `params`.

    Example:
        >>> grid = np.stack(np.meshgrid(np.arange(10.0), np.arange(10.0)), -1).reshape(-1, 2)
        >>> picks = initial_design(grid, 10, "lhs", np.random.default_rng(0))
        >>> len(np.unique(grid[picks, 0])) >= 8  # spread over the first parameter, as a Latin hypercube is
        True
    """
    if design not in DESIGNS:
        raise ValueError(f"unknown initial design {design!r}; designs: {', '.join(DESIGNS)}")
    count = len(params)
    size = min(size, count)
    if size <= 0:
        return np.empty(0, dtype=np.int64)
    if design == "random" or params.shape[1] == 0:
        return np.sort(rng.choice(count, size=size, replace=False))
    from scipy.cluster.vq import kmeans2  # here: scipy.stats costs every importer ~1 s, and most runs draw at random
    from scipy.stats import qmc

    space = quantiles(params)
    seed = int(rng.integers(2**32))
    if design == "lhs":
        points = qmc.LatinHypercube(d=space.shape[1], seed=seed).random(size)
    elif design == "sobol":
        points = qmc.Sobol(d=space.shape[1], seed=seed).random_base2(int(np.ceil(np.log2(max(size, 2)))))[:size]
    else:
        with warnings.catch_warnings():  # an empty cluster keeps its centre: a point like any other
            warnings.simplefilter("ignore", UserWarning)
            points, _ = kmeans2(space, size, seed=seed, minit="++")
    return np.sort(nearest_unused(space, points))


def quantiles(params: np.ndarray) -> np.ndarray:
    """[N, P] each column's mid-ranks scaled to [0, 1] (a constant column: 0.5 everywhere)."""
    from scipy import stats

    count = len(params)
    ranks = stats.rankdata(params, axis=0, method="average")
    return (ranks - 0.5) / count


def nearest_unused(space: np.ndarray, points: np.ndarray) -> np.ndarray:
    """For each point in turn, the index of the nearest row of `space` that no earlier point took: [len(points)]."""
    taken = np.zeros(len(space), dtype=bool)
    picks = np.empty(len(points), dtype=np.int64)
    norms = np.einsum("ij,ij->i", space, space)
    for i, point in enumerate(points):
        distance = norms - 2.0 * space @ point
        distance[taken] = np.inf
        picks[i] = int(np.argmin(distance))
        taken[picks[i]] = True
    return picks
