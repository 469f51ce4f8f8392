"""Acquisition functions: scores, selection rules, wrappers, errors. No Ray."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from raysurr.acquisition import ACQUISITIONS, Candidates, build_acquisition, k_center
from raysurr.config import AcquisitionConfig
from raysurr.errors import ConfigError, RegistryError
from raysurr.models import UNet

X = torch.rand(6, 1, 16, 16)


def unet(seed: int, dropout: float = 0.4) -> UNet:
    torch.manual_seed(seed)
    return UNet(base_channels=2, depth=2, dropout=dropout)


def pool(n: int = 30, seed: int = 0) -> Candidates:
    rng = np.random.default_rng(seed)
    return Candidates(ids=np.arange(100, 100 + n), scores=rng.uniform(0.1, 1.0, n), vectors=rng.normal(size=(n, 3)),
                      labeled_vectors=rng.normal(size=(4, 3)))  # fmt: skip


@pytest.mark.parametrize("name", ACQUISITIONS.names())
def test_scores_are_finite_with_one_per_sample(name):
    acq = build_acquisition({"name": name})
    models = [unet(seed) for seed in range(max(acq.models, 1))]
    scores = acq.score_batch(models, X)
    if scores is not None:
        assert scores.shape == (6,) and torch.isfinite(scores).all() and (scores >= 0).all()


@pytest.mark.parametrize("name", ACQUISITIONS.names())
def test_select_returns_k_unique_candidate_ids_deterministically(name):
    acq, candidates = build_acquisition({"name": name}), pool()
    picks = acq.select(candidates, 7, np.random.default_rng(3))
    assert len(picks) == 7 and len(set(picks.tolist())) == 7
    assert set(picks.tolist()) <= set(candidates.ids.tolist())  # never an id outside the unlabelled pool
    assert np.array_equal(picks, acq.select(candidates, 7, np.random.default_rng(3)))


def test_top_k_takes_the_highest_scores():
    candidates = Candidates(ids=np.array([5, 6, 7, 8]), scores=np.array([0.1, 0.9, 0.5, 0.7]))
    assert build_acquisition({"name": "entropy"}).select(candidates, 2, np.random.default_rng()).tolist() == [6, 8]


def test_tod_is_zero_for_identical_models_and_positive_otherwise():
    tod = build_acquisition({"name": "tod"})
    assert torch.equal(tod.score_batch([unet(1), unet(1)], X), torch.zeros(6))
    assert (tod.score_batch([unet(1), unet(2)], X) > 0).all()
    a, b = unet(1).eval(), unet(2).eval()
    with torch.no_grad():
        expected = 0.5 * ((a(X) - b(X)) ** 2).sum(dim=(1, 2, 3))
    assert torch.allclose(tod.score_batch([a, b], X), expected)


def test_entropy_is_zero_without_dropout_and_positive_with_it():
    entropy = build_acquisition({"name": "entropy", "passes": 4})
    assert torch.equal(entropy.score_batch([unet(0, dropout=0.0)], X), torch.zeros(6))
    model = unet(0, dropout=0.4)
    assert (entropy.score_batch([model], X) > 0).all()
    assert not model.training  # the model is left in eval mode


def test_ensemble_variance():
    ensemble = build_acquisition({"name": "ensemble", "members": 3})
    assert ensemble.models == 3
    assert torch.equal(ensemble.score_batch([unet(1)] * 3, X), torch.zeros(6))


def test_diversity_picks_the_known_farthest_point():
    vectors = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0], [0.5, 0.5], [-3.0, 0.0]])
    candidates = Candidates(ids=np.arange(5) + 10, vectors=vectors, labeled_vectors=np.array([[0.0, 0.1]]))
    div = build_acquisition({"name": "diversity"})
    assert div.select(candidates, 1, np.random.default_rng()).tolist() == [12]
    assert div.select(candidates, 2, np.random.default_rng()).tolist() == [12, 14]  # then farthest from both


def test_k_center_without_centres_covers_clusters():
    rng = np.random.default_rng(0)
    clusters = np.concatenate([rng.normal(c, 0.01, size=(20, 2)) for c in [(0, 0), (5, 0), (0, 5)]])
    picks = k_center(clusters, None, 3, rng)
    assert sorted(p // 20 for p in picks) == [0, 1, 2]


def test_stochastic_wrapper_frequencies_follow_score_power_beta():
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    candidates = Candidates(ids=np.arange(4), scores=scores)
    acq = build_acquisition({"name": "stochastic", "beta": 2.0, "inner": {"name": "entropy"}})
    rng = np.random.default_rng(12345)
    draws = np.array([acq.select(candidates, 1, rng)[0] for _ in range(8000)])
    counts = np.bincount(draws, minlength=4)
    expected = scores**2 / (scores**2).sum() * len(draws)
    assert stats.chisquare(counts, expected).pvalue > 0.001
    uniform = build_acquisition({"name": "stochastic", "beta": 0.0})
    flat = np.bincount([uniform.select(candidates, 1, rng)[0] for _ in range(4000)], minlength=4)
    assert stats.chisquare(flat).pvalue > 0.001


def test_hybrid_diversifies_a_shortlist():
    scores = np.array([0.9, 0.89, 0.88, 0.1, 0.05])
    vectors = np.array([[0.0, 0.0], [0.01, 0.0], [5.0, 5.0], [9.0, 9.0], [-9.0, 0.0]])
    candidates = Candidates(ids=np.arange(5), scores=scores, vectors=vectors, labeled_vectors=np.array([[0.0, 0.0]]))
    acq = build_acquisition({"name": "hybrid", "shortlist": 1.5, "inner": {"name": "tod"}})
    assert acq.models == 2
    assert sorted(acq.select(candidates, 2, np.random.default_rng()).tolist()) == [1, 2]  # not 0, the duplicate


@pytest.mark.parametrize(
    ("section", "error", "message"),
    [
        ({"name": "bald"}, RegistryError, "unknown acquisition function 'bald'; registered: coreset, diversity"),
        ({"name": "entropy", "passes": 1}, ConfigError, "acquisition.passes must be >= 2"),
        ({"name": "entropy", "tpasses": 3}, ConfigError, "unknown option 'tpasses'; allowed: passes, w2"),
        ({"name": "stochastic", "beta": -1}, ConfigError, "acquisition.beta must be >= 0"),
        ({"name": "stochastic", "inner": {"name": "nope"}}, RegistryError, "unknown acquisition function 'nope'"),
        ({"name": "ensemble", "members": 1}, ConfigError, "acquisition.members must be >= 2"),
    ],
)
def test_bad_names_and_options(section, error, message):
    with pytest.raises(error, match=message):
        build_acquisition(AcquisitionConfig.from_dict(section))


@pytest.mark.parametrize("k", [0, 31])
def test_k_outside_the_pool_is_refused(k):
    with pytest.raises(ConfigError, match=f"cannot select {k} samples from a pool of 30"):
        build_acquisition({"name": "random"}).select(pool(), k, np.random.default_rng())
