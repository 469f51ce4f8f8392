"""Acquisition functions (pure numpy/torch, no Ray). Importing this package registers the built-in ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raysurr.acquisition.base import (
    ACQUISITIONS,
    AbstractAcquisition,
    Candidates,
    Needs,
    count_sketch,
    k_center,
    largest_cluster_max_distance,
    register_acquisition,
    shortlist_k_center,
)
from raysurr.acquisition.functions import (
    LCMD,
    TOD,
    Coreset,
    Diversity,
    Ensemble,
    Entropy,
    EstimatedError,
    Hybrid,
    Oracle,
    PhysicsResidual,
    Random,
    StochasticBatch,
)
from raysurr.config import AcquisitionConfig


def build_acquisition(config: AcquisitionConfig | Mapping[str, Any]) -> AbstractAcquisition:
    """Build from a config section (or a plain mapping, as wrappers hold their inner function)."""
    if not isinstance(config, AcquisitionConfig):
        config = AcquisitionConfig.from_dict(config)
    return ACQUISITIONS.build(config.name, section="acquisition", **config.options)


__all__ = [
    "ACQUISITIONS",
    "LCMD",
    "TOD",
    "AbstractAcquisition",
    "Candidates",
    "Coreset",
    "Diversity",
    "Ensemble",
    "Entropy",
    "EstimatedError",
    "Hybrid",
    "Needs",
    "Oracle",
    "PhysicsResidual",
    "Random",
    "StochasticBatch",
    "build_acquisition",
    "count_sketch",
    "k_center",
    "largest_cluster_max_distance",
    "register_acquisition",
    "shortlist_k_center",
]
