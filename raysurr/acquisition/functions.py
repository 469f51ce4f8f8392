"""The acquisition functions: the study's four and the wider state of the art."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from raysurr.acquisition.base import (
    FEATURES,
    AbstractAcquisition,
    Candidates,
    Needs,
    check_k,
    k_center,
    largest_cluster_max_distance,
    latent_features,
    register_acquisition,
    shortlist_k_center,
    top_k,
)
from raysurr.errors import ConfigError
from raysurr.models.layers import mc_dropout
from raysurr.models.losses import per_sample_weighted_mae, source_weight


@register_acquisition("random")
class Random(AbstractAcquisition):
    """Uniform choice of k candidates (the baseline)."""

    def select(self, candidates: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
        check_k(candidates, k)
        return rng.choice(candidates.ids, size=k, replace=False)


class AbstractTopK(AbstractAcquisition):
    """Scores every candidate and takes the k highest."""

    def select(self, candidates: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
        return top_k(candidates, k, rng)


@register_acquisition("entropy")
class Entropy(AbstractTopK):
    """MC-dropout variance weighted towards sources: mean of (1 + w2·tanh(|ȳ|))·(ŷ_t − ȳ)² (the study's).

    Args:
        passes: T forward passes with only the dropout layers active, run as one batched forward.
        w2: weight of the source term.
    """

    needs = Needs(members=1, scores=True)

    def __init__(self, passes: int = 3, w2: float = 2000.0) -> None:
        if passes < 2:
            raise ConfigError(f"acquisition.passes must be >= 2 for a variance, got {passes}")
        self.passes, self.w2 = passes, w2

    @torch.no_grad()
    def score_batch(self, models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        model = mc_dropout(models[0])
        outputs = model(x.repeat(self.passes, *([1] * (x.dim() - 1)))).unflatten(0, (self.passes, len(x)))
        model.eval()
        # about the first pass: identical passes (dropout off) give exactly 0, where the mean's rounding would not
        shifted = outputs - outputs[:1]
        variance = ((shifted**2).mean(0) - shifted.mean(0) ** 2).clamp_min(0)
        return (source_weight(outputs.mean(0), 1.0, self.w2) * variance).flatten(1).mean(1)


@register_acquisition("tod")
class TOD(AbstractTopK):
    """Temporal output discrepancy: ½ Σ (f_r(x) − f_{r−1}(x))² between this round's model and the last's."""

    needs = Needs(members=1, previous=True, scores=True)

    @torch.no_grad()
    def score_batch(self, models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        current, previous = models[0].eval(), models[1].eval()
        return 0.5 * ((current(x) - previous(x)) ** 2).flatten(1).sum(1)


@register_acquisition("ensemble")
class Ensemble(AbstractTopK):
    """Variance across K models trained each round from their own seeds, averaged over pixels (top-k).

    Args:
        members: K, the models trained every round (each warm-started from its own last-round model).
    """

    def __init__(self, members: int = 2) -> None:
        if members < 2:
            raise ConfigError(f"acquisition.members must be >= 2 for a variance, got {members}")
        self.needs = Needs(members=members, scores=True)

    @torch.no_grad()
    def score_batch(self, models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        outputs = torch.stack([m.eval()(x) for m in models])
        return outputs.var(0, unbiased=False).flatten(1).mean(1)


@register_acquisition("diversity")
class Diversity(AbstractAcquisition):
    """Greedy k-centre in the simulator's parameter embedding, starting from the labelled set (the study's)."""

    needs = Needs(vectors="embedding")

    def select(self, candidates: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
        check_k(candidates, k)
        return candidates.ids[k_center(candidates.vectors, candidates.labeled_vectors, k, rng)]


class AbstractFeatureSelection(AbstractAcquisition):
    """Selects on the first model's latent features of the candidates and of the labelled set.

    Args:
        features: `last_layer` (default; the map the output layer reads, count-sketched to `dims` numbers: the
            last-layer gradient features of Holzmüller et al. and AL4PDE) or `bottleneck` (the model's
            `features`, e.g. the U-Net's bottleneck averaged over space).
        dims: the sketch's size for `last_layer`.
    """

    needs = Needs(members=1, vectors="features")

    def __init__(self, features: str = "last_layer", dims: int = 512) -> None:
        if features not in FEATURES:
            raise ConfigError(f"acquisition.features must be one of {', '.join(FEATURES)}, got {features!r}")
        if not isinstance(dims, int) or dims < 1:
            raise ConfigError(f"acquisition.dims must be an integer >= 1, got {dims!r}")
        self.features, self.dims = features, dims

    def features_batch(self, models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        return latent_features(models[0], x, self.features, self.dims)


@register_acquisition("coreset")
class Coreset(AbstractFeatureSelection):
    """Core-Set: greedy k-centre on the model's latent features, starting from the labelled set."""

    def select(self, candidates: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
        check_k(candidates, k)
        return candidates.ids[k_center(candidates.vectors, candidates.labeled_vectors, k, rng)]


@register_acquisition("pre")
class PhysicsResidual(AbstractTopK):
    """Physics residual error: the mean squared residual of the governing equations on the model's
    prediction, from the simulator's `residual` (arXiv 2605.21348). No labels, no MC passes: one
    forward pass per candidate. Needs a simulator that has a residual (diffusion2d does)."""

    needs = Needs(members=1, scores=True, residual=True)

    def bind(self, simulator: Any) -> None:
        if getattr(simulator, "residual", None) is None:
            name = getattr(type(simulator), "registered_name", type(simulator).__name__)
            raise ConfigError(f"acquisition pre scores with the simulator's residual, and simulator {name!r} "
                              "has none; give it one (docs/simulators.md) or choose another function")  # fmt: skip
        self.residual = simulator.residual

    @torch.no_grad()
    def score_batch(self, models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        return (self.residual(x, models[0].eval()(x)) ** 2).flatten(1).mean(1)


@register_acquisition("lcmd")
class LCMD(AbstractFeatureSelection):
    """Largest-cluster maximum distance on the model's latent features, from the labelled set (AL4PDE's
    best feature-space method): the farthest member of the cluster with the largest summed squared
    distance to its centre, k times."""

    def select(self, candidates: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
        check_k(candidates, k)
        return candidates.ids[largest_cluster_max_distance(candidates.vectors, candidates.labeled_vectors, k)]


@register_acquisition("estimated_error")
class EstimatedError(AbstractTopK):
    """The model's weighted MAE on each candidate, estimated from the residual of the governing equations on its
    prediction: the simulator's `error_estimate` (diffusion2d: a few Jacobi sweeps of the residual through the
    operator) turns the residual into an error field, weighted as the test metric weighs it. One forward pass,
    no labels. Wrap it in `stochastic` to sample in proportion to the estimate (docs/acquisition.md).

    Args:
        effort: how much work the estimate may do (diffusion2d: the sweeps).
        w, w2: the weighted MAE's weights (the training loss's by default).
    """

    needs = Needs(members=1, scores=True, residual=True)

    def __init__(self, effort: int = 60, w: float = 1.0, w2: float = 2000.0) -> None:
        if not isinstance(effort, int) or effort < 1:
            raise ConfigError(f"acquisition.effort must be an integer >= 1, got {effort!r}")
        self.effort, self.w, self.w2 = effort, w, w2

    def bind(self, simulator: Any) -> None:
        if getattr(simulator, "error_estimate", None) is None:
            name = getattr(type(simulator), "registered_name", type(simulator).__name__)
            raise ConfigError(f"acquisition estimated_error needs the simulator's error_estimate, and simulator "
                              f"{name!r} has none; give it one (docs/simulators.md) or choose another "
                              "function")  # fmt: skip
        self.estimate = simulator.error_estimate

    @torch.no_grad()
    def score_batch(self, models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        pred = models[0].eval()(x)
        scaled = metric_scale(models[0])
        error = scaled(pred) - scaled(pred - self.estimate(x, pred, self.effort))
        # weighted as the metric weighs the truth, by the prediction: the truth is what is unknown
        return (source_weight(scaled(pred), self.w, self.w2) * error.abs()).flatten(1).mean(1)


@register_acquisition("oracle")
class Oracle(AbstractAcquisition):
    """Hindsight: the simulator labels every candidate, and the model's true weighted MAE on each is its score.

    No real campaign can do this (it spends a simulator run on every candidate, every round): it is the bound a
    benchmark measures the other functions against. Selection takes the k-centre (in the simulator's embedding,
    from the labelled set) of the `shortlist`·k largest errors, so that a batch is not one cluster; wrapped in
    `stochastic` it samples in proportion to the error instead.

    Args:
        shortlist: the candidates k-centre chooses among, as a multiple of k (1: the k largest errors).
        w, w2: the weighted MAE's weights (the training loss's by default).
    """

    needs = Needs(members=1, scores=True, vectors="embedding", truth=True)

    def __init__(self, shortlist: float = 4.0, w: float = 1.0, w2: float = 2000.0) -> None:
        if shortlist < 1:
            raise ConfigError(f"acquisition.shortlist must be >= 1, got {shortlist}")
        self.shortlist, self.w, self.w2 = shortlist, w, w2

    @torch.no_grad()
    def score_batch(self, models: Sequence[nn.Module], x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        scaled = metric_scale(models[0])
        return per_sample_weighted_mae(scaled(models[0].eval()(x)), scaled(targets), self.w, self.w2)

    def select(self, candidates: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
        return shortlist_k_center(candidates, k, self.shortlist, rng)


def metric_scale(model: nn.Module):
    """The scaling the test metric applies to a surrogate's outputs (its validation targets' scale); none for a
    bare network."""
    metric = getattr(model, "metric", None)
    return metric.forward if metric is not None else (lambda t: t)


@register_acquisition("stochastic")
class StochasticBatch(AbstractAcquisition):
    """Wraps a scoring function: samples k without replacement with probability ∝ score^β.

    Avoids the redundant batches that top-k picks from one high-scoring region. Uses the Gumbel
    top-k trick, which is exactly sequential sampling without replacement.

    Args:
        inner: the wrapped function's section, e.g. `{name: entropy, passes: 3}`.
        beta: sharpness; 0 is uniform, large values approach top-k.
    """

    def __init__(self, inner: Mapping[str, Any] | None = None, beta: float = 1.0) -> None:
        if beta < 0:
            raise ConfigError(f"acquisition.beta must be >= 0, got {beta}")
        self.inner = wrapped(inner, "stochastic")
        self.needs, self.beta = self.inner.needs, beta

    def bind(self, simulator: Any) -> None:
        self.inner.bind(simulator)

    def score_batch(self, models, x, **targets):
        return self.inner.score_batch(models, x, **targets)

    def select(self, candidates: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
        check_k(candidates, k)
        scores = np.maximum(np.asarray(candidates.scores, dtype=np.float64), 1e-300)
        keys = self.beta * np.log(scores) + rng.gumbel(size=len(scores))
        return candidates.ids[np.argsort(-keys, kind="stable")[:k]]


@register_acquisition("hybrid")
class Hybrid(AbstractAcquisition):
    """Wraps a scoring function: shortlist the top `shortlist`·k by score, then k-centre within it.

    Args:
        inner: the wrapped function's section (default entropy).
        shortlist: shortlist size as a multiple of k.
    """

    def __init__(self, inner: Mapping[str, Any] | None = None, shortlist: float = 4.0) -> None:
        if shortlist < 1:
            raise ConfigError(f"acquisition.shortlist must be >= 1, got {shortlist}")
        self.inner = wrapped(inner, "hybrid")
        self.needs, self.shortlist = replace(self.inner.needs, vectors="embedding"), shortlist

    def bind(self, simulator: Any) -> None:
        self.inner.bind(simulator)

    def score_batch(self, models, x, **targets):
        return self.inner.score_batch(models, x, **targets)

    def select(self, candidates: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
        return shortlist_k_center(candidates, k, self.shortlist, rng)


def wrapped(inner: Mapping[str, Any] | None, wrapper: str) -> AbstractAcquisition:
    """The function a wrapper holds (default entropy); refused at config time unless it scores."""
    from raysurr.acquisition import build_acquisition  # the package imports this module: a cycle at import time

    function = build_acquisition(inner or {"name": "entropy"})
    if not function.needs.scores:
        name = (inner or {}).get("name")
        raise ConfigError(f"acquisition {wrapper} re-ranks scores, but {name!r} does not score; wrap a function "
                          f"that does (entropy, tod, ensemble, ...)")  # fmt: skip
    return function
