"""The acquisition interface. Pure numpy/torch: no Ray.

An acquisition function has two halves. `score_batch` runs where the models are (a Ray Data actor
or this process) and turns a batch of network inputs into one score per sample. `select` runs in
the driver on small per-sample arrays only (ids, scores, embedding vectors) and returns the ids to
label next. What the two halves need from a round (which models, which vectors) the function
declares as its `needs`; the driver and the scorer read nothing else. Wrappers (`stochastic`,
`hybrid`) compose by holding an inner function.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from raysurr.errors import ConfigError
from raysurr.registry import Registry


@dataclass(frozen=True)
class Candidates:
    """What selection sees about the unlabelled pool.

    Attributes:
        ids: [N] int64 candidate sample ids (never labelled ones).
        scores: [N] float64 from `score_batch`, or None for functions that do not score.
        vectors: [N, E] float64 per-candidate vectors (parameter embedding or model features), or None.
        labeled_vectors: [L, E] the same vectors for the labelled set, or None.
    """

    ids: np.ndarray
    scores: np.ndarray | None = None
    vectors: np.ndarray | None = None
    labeled_vectors: np.ndarray | None = None

    def subset(self, index: np.ndarray) -> Candidates:
        take = lambda a: None if a is None else a[index]  # noqa: E731
        return Candidates(self.ids[index], take(self.scores), take(self.vectors), self.labeled_vectors)


@dataclass(frozen=True)
class Needs:
    """What an acquisition function needs from a round: the driver trains and hands over exactly this.

    Attributes:
        members: this round's models that `score_batch` receives, each trained from its own seed (an
            ensemble's K); 0 when the function computes nothing per sample.
        previous: after the members, the previous round's model (round 0: the untrained one), as TOD needs.
        scores: `score_batch` returns one score per sample (what `stochastic` and `hybrid` wrap).
        vectors: the per-candidate vectors `select` reads: None, "embedding" (the simulator's
            parameter embedding) or "features" (the first member's latent features, labelled set too).
        residual: `score_batch` uses the simulator's `residual` (handed over by `bind`).
        truth: `score_batch` receives the candidates' true outputs as `targets`: the simulator labels the whole
            pool every round, which no real campaign can afford (the hindsight `oracle`, a benchmark's bound).

    Example:
        >>> Needs(members=1, previous=True, scores=True).checkpoints
        2
    """

    members: int = 0
    previous: bool = False
    scores: bool = False
    vectors: Literal["embedding", "features"] | None = None
    residual: bool = False
    truth: bool = False

    def __post_init__(self) -> None:
        if self.members < 0 or self.vectors not in (None, "embedding", "features"):
            raise ValueError(f"invalid acquisition needs: members {self.members}, vectors {self.vectors!r}")
        if self.members == 0 and (self.previous or self.scores or self.residual or self.vectors == "features"):
            raise ValueError("a function that scores, compares rounds or reads features needs members >= 1")
        if self.truth and not self.scores:
            raise ValueError("a function that reads the true outputs (truth) must score")

    @property
    def checkpoints(self) -> int:
        """How many models `score_batch` receives: the members, then the previous round's if asked."""
        return self.members + self.previous


class AbstractAcquisition(abc.ABC):
    """Base of every acquisition function; register with `@register_acquisition("name")`."""

    needs: Needs = Needs()  # nothing: selection from the candidate ids alone

    def bind(self, simulator: Any) -> None:
        """Called with the run's simulator when the config is checked and before scoring: a function
        whose `needs.residual` takes the simulator's residual here, and refuses a simulator without one."""
        if self.needs.residual:
            raise NotImplementedError(f"{type(self).__name__} needs the simulator's residual: override bind")

    def score_batch(self, models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor | None:
        """x: [b, C, H, W] -> scores [b] (higher: more worth labelling), or None if unused. A function whose
        `needs.truth` also receives `targets=`, the candidates' true outputs [b, *output_shape]."""
        return None

    def features_batch(self, models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        """x: [b, C, H, W] -> the selection vectors [b, E] of a function whose `needs.vectors` is "features":
        the first member's latent features (override to choose others)."""
        return models[0].features(x)

    @abc.abstractmethod
    def select(self, candidates: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
        """The k candidate ids to label next: [k] int64, unique."""


ACQUISITIONS: Registry[AbstractAcquisition] = Registry("acquisition function")
register_acquisition = ACQUISITIONS.register


def check_k(candidates: Candidates, k: int) -> None:
    if not 1 <= k <= len(candidates.ids):
        raise ConfigError(
            f"cannot select {k} samples from a pool of {len(candidates.ids)}; k must be in [1, pool size]"
        )


def count_sketch(values: torch.Tensor, dims: int, seed: int = 0) -> torch.Tensor:
    """[n, F] -> [n, dims]: a random projection that keeps inner products in expectation (a count sketch: each
    feature is added, with a random sign, to one of `dims` buckets). The same `seed` and F give the same
    projection in every process, so vectors from different scoring workers compare.

    Example:
        >>> count_sketch(torch.ones(2, 1000), 64).shape
        torch.Size([2, 64])
    """
    width = values.shape[1]
    generator = torch.Generator().manual_seed(seed)
    bucket = torch.randint(dims, (width,), generator=generator).to(values.device)
    sign = (torch.randint(2, (width,), generator=generator) * 2 - 1).to(values.device, values.dtype)
    return values.new_zeros(len(values), dims).index_add_(1, bucket, values * sign)


FEATURES = ("last_layer", "bottleneck")


def latent_features(model: nn.Module, x: torch.Tensor, kind: str, dims: int) -> torch.Tensor:
    """Selection vectors of the model for inputs x: [b, E].

    Args:
        kind: `last_layer` — the map the output layer reads, flattened and count-sketched to `dims` numbers. For
            a 1x1 output layer (the U-Net's) its inner products are those of the per-sample gradients of every
            output with respect to the output layer's weights: the randomly projected last-layer gradient
            features of Holzmüller et al. (2023) and AL4PDE. `bottleneck` — the model's own `features` (the
            U-Net's bottleneck averaged over space).
    """
    if kind == "bottleneck":
        return model.features(x)
    return count_sketch(model.last_hidden(x).flatten(1), dims)


def top_k(candidates: Candidates, k: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Ids of the k highest scores. Ties are broken at random with `rng` (by position without one), so that
    equal scores (a model compared with itself, say) never select in the pool's order."""
    check_k(candidates, k)
    scores = np.asarray(candidates.scores, dtype=np.float64)
    tie_break = rng.permutation(len(scores)) if rng is not None else np.arange(len(scores))
    return candidates.ids[np.lexsort((tie_break, -scores))[:k]]


class _Geometry:
    """Candidate vectors centred on their mean, in float64, and squared distances to points.

    Distances from expanded norms (|a|^2 - 2ab + |b|^2) cancel catastrophically when the vectors share an
    offset much larger than their spread (a model's latent features do): centring keeps them exact, and
    float64 keeps them exact to ~1e-12 of the spread.
    """

    def __init__(self, vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float64)
        self.shift = vectors.mean(axis=0)
        self.vectors = vectors - self.shift
        self.norms = np.einsum("ij,ij->i", self.vectors, self.vectors)

    def to_one(self, index: int) -> np.ndarray:
        """[N] squared distance of every candidate to candidate `index`."""
        step = self.vectors @ self.vectors[index]
        step *= -2
        step += self.norms
        step += self.norms[index]
        step[index] = 0.0  # exactly, whatever the rounding of the two norms
        return np.maximum(step, 0.0, out=step)

    def to_nearest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N] squared distance of every candidate to the nearest of `points` [P, E], and [N] which one."""
        points = np.asarray(points, dtype=np.float64) - self.shift
        point_norms = np.einsum("ij,ij->i", points, points)
        distance, nearest = np.empty(len(self.vectors)), np.empty(len(self.vectors), dtype=np.int64)
        rows = max(1, 2**21 // len(points))  # bounded memory: at most 2 M distances (16 MB) at a time
        for r in range(0, len(self.vectors), rows):
            block = self.norms[r : r + rows, None] - 2 * self.vectors[r : r + rows] @ points.T + point_norms[None, :]
            nearest[r : r + rows] = block.argmin(axis=1)
            distance[r : r + rows] = np.take_along_axis(block, nearest[r : r + rows, None], axis=1)[:, 0]
        return np.maximum(distance, 0.0), nearest


def k_center(vectors: np.ndarray, centres: np.ndarray | None, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy farthest-first selection: each pick is the vector farthest from every centre so far.

    Args:
        vectors: [N, E] candidates; centres: [L, E] already chosen (the labelled set), or None.

    Returns:
        [k] distinct indices into `vectors`. Without centres the first pick is random. Where every candidate left
        is at distance 0 (duplicates, collapsed features) the picks go on in index order, never repeating one.
    """
    check_k(Candidates(np.arange(len(vectors))), k)
    space = _Geometry(vectors)
    if centres is not None and len(centres):
        (distance, _), picks = space.to_nearest(centres), []
    else:
        picks = [int(rng.integers(len(space.vectors)))]
        distance = space.to_one(picks[0])
    distance[picks] = -1.0  # chosen: below every distance (>= 0), so never chosen again
    while len(picks) < k:
        pick = int(np.argmax(distance))
        picks.append(pick)
        np.minimum(distance, space.to_one(pick), out=distance)
        distance[pick] = -1.0
    return np.array(picks, dtype=np.int64)


def shortlist_k_center(candidates: Candidates, k: int, shortlist: float, rng: np.random.Generator) -> np.ndarray:
    """The ids of k candidates by k-centre (from the labelled set, in `vectors`) among the `shortlist`·k with the
    highest scores: high scores, and not one cluster of them."""
    check_k(candidates, k)
    size = min(len(candidates.ids), int(np.ceil(shortlist * k)))
    short = candidates.subset(np.argsort(-np.asarray(candidates.scores), kind="stable")[:size])
    return short.ids[k_center(short.vectors, short.labeled_vectors, k, rng)]


def largest_cluster_max_distance(vectors: np.ndarray, centres: np.ndarray | None, k: int) -> np.ndarray:
    """LCMD (Holzmüller et al., 2023; AL4PDE's best feature-space method): each candidate belongs to its
    nearest centre; the cluster whose squared distances to its centre sum highest is the largest, and
    its farthest member becomes the next centre.

    Args:
        vectors: [N, E] candidates; centres: [L, E] the labelled set, or None.

    Returns:
        [k] indices into `vectors`. Without centres the first pick is the one farthest from their mean.
    """
    space = _Geometry(vectors)
    if centres is not None and len(centres):
        (distance, owner), picks, clusters = space.to_nearest(centres), [], len(centres)
    else:
        picks = [int(np.argmax(space.norms))]
        distance, owner, clusters = space.to_one(picks[0]), np.zeros(len(space.vectors), dtype=np.int64), 1
    chosen = np.zeros(len(space.vectors), dtype=bool)
    chosen[picks] = True
    while len(picks) < k:
        sizes = np.bincount(owner, weights=distance, minlength=clusters)
        in_largest = np.where((owner == np.argmax(sizes)) & ~chosen, distance, -np.inf)
        pick = int(np.argmax(in_largest)) if np.isfinite(in_largest).any() else int(np.argmin(chosen))
        picks.append(pick)
        chosen[pick] = True
        step = space.to_one(pick)
        closer = step < distance
        closer[pick] = True
        distance[closer], owner[closer] = step[closer], clusters
        clusters += 1
    return np.array(picks, dtype=np.int64)
