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
    vectors = np.asarray(vectors, dtype=np.float64)
    if centres is None or len(centres) == 0:
        first = int(rng.integers(len(vectors)))
        distance, picks = np.linalg.norm(vectors - vectors[first], axis=1), [first]
    else:
        distance, picks = np.full(len(vectors), np.inf), []
        for start in range(0, len(centres), 1024):  # bounded memory: [N, 1024] at a time
            block = np.asarray(centres[start : start + 1024], dtype=np.float64)
            squared = (vectors**2).sum(1)[:, None] - 2 * vectors @ block.T + (block**2).sum(1)[None, :]
            distance = np.minimum(distance, np.sqrt(np.maximum(squared, 0.0)).min(axis=1))
    while len(picks) < k:
        pick = int(np.argmax(distance))
        picks.append(pick)
        distance = np.minimum(distance, np.linalg.norm(vectors - vectors[pick], axis=1))
    return np.array(picks, dtype=np.int64)


def mc_dropout(model: nn.Module) -> nn.Module:
    """Put `model` in eval mode except its dropout layers (for MC-dropout passes)."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.train()
    return model
