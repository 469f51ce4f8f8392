"""The acquisition interface. Pure numpy/torch: no Ray.

An acquisition function has two halves. `score_batch` runs where the models are (a Ray Data actor
or this process) and turns a batch of network inputs into one score per sample. `select` runs in
the driver on small per-sample arrays only (ids, scores, embedding vectors) and returns the ids to
label next. Wrappers (`stochastic`, `hybrid`) compose by holding an inner function.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

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


class AbstractAcquisition(abc.ABC):
    """Base of every acquisition function; register with `@register_acquisition("name")`."""

    models: int = 0  # models `score_batch` needs: 0 none, 1 current, 2 current and previous round's
    vectors: str | None = None  # None, "embedding" (the simulator's) or "features" (the model's latent)

    def score_batch(self, models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor | None:
        """x: [b, C, H, W] -> scores [b] (higher: more worth labelling), or None if unused."""
        return None

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


def top_k(candidates: Candidates, k: int) -> np.ndarray:
    """Ids of the k highest scores; ties broken by position, so the result is deterministic."""
    check_k(candidates, k)
    order = np.argsort(-np.asarray(candidates.scores, dtype=np.float64), kind="stable")
    return candidates.ids[order[:k]]


def k_center(vectors: np.ndarray, centres: np.ndarray | None, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy farthest-first selection: each pick is the vector farthest from every centre so far.

    Args:
        vectors: [N, E] candidates; centres: [L, E] already chosen (the labelled set), or None.

    Returns:
        [k] indices into `vectors`. Without centres the first pick is random.
    """
    vectors = np.asarray(vectors, dtype=np.float32)  # float32 halves the memory traffic of each greedy step
    norms = (vectors**2).sum(1)

    def squared_to(points: np.ndarray) -> np.ndarray:  # [N] squared distance to the nearest of points [P, E]
        rows = max(1, 2**22 // len(points))  # bounded memory: at most 4 M distances at a time
        out = np.empty(len(vectors), dtype=np.float32)
        for r in range(0, len(vectors), rows):
            block = norms[r : r + rows, None] - 2 * vectors[r : r + rows] @ points.T + (points**2).sum(1)[None, :]
            out[r : r + rows] = block.min(axis=1)
        return np.maximum(out, 0.0)

    if centres is None or len(centres) == 0:
        picks = [int(rng.integers(len(vectors)))]
        distance = squared_to(vectors[picks])
    else:
        distance, picks = squared_to(np.asarray(centres, dtype=np.float32)), []
    while len(picks) < k:
        pick = int(np.argmax(distance))
        picks.append(pick)
        step = vectors @ vectors[pick]
        step *= -2
        step += norms
        step += norms[pick]
        np.minimum(distance, step, out=distance)
    return np.array(picks, dtype=np.int64)
