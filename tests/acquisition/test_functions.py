"""Acquisition functions: scores, selection rules, wrappers, errors. No Ray."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from raysurr.acquisition import (
    ACQUISITIONS,
    Candidates,
    Needs,
    build_acquisition,
    k_center,
    largest_cluster_max_distance,
)
from raysurr.config import AcquisitionConfig
from raysurr.errors import ConfigError, RegistryError
from raysurr.models import UNet
from raysurr.simulators import Diffusion2D

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
    acq.bind(Diffusion2D(grid=16))
    models = [unet(seed) for seed in range(acq.needs.checkpoints)]
    scores = acq.score_batch(models, X, **({"targets": torch.rand(6, 1, 16, 16)} if acq.needs.truth else {}))
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


@pytest.mark.parametrize(
    ("section", "needs"),
    [
        ({"name": "random"}, Needs()),
        ({"name": "diversity"}, Needs(vectors="embedding")),
        ({"name": "entropy"}, Needs(members=1, scores=True)),
        ({"name": "tod"}, Needs(members=1, previous=True, scores=True)),
        ({"name": "ensemble"}, Needs(members=2, scores=True)),  # two models of this round, not TOD's pair
        ({"name": "ensemble", "members": 5}, Needs(members=5, scores=True)),
        ({"name": "coreset"}, Needs(members=1, vectors="features")),
        ({"name": "lcmd"}, Needs(members=1, vectors="features")),
        ({"name": "pre"}, Needs(members=1, scores=True, residual=True)),
        ({"name": "estimated_error"}, Needs(members=1, scores=True, residual=True)),
        ({"name": "oracle"}, Needs(members=1, scores=True, vectors="embedding", truth=True)),
        ({"name": "stochastic", "inner": {"name": "oracle"}}, Needs(1, scores=True, vectors="embedding", truth=True)),
        ({"name": "stochastic", "inner": {"name": "ensemble", "members": 3}}, Needs(members=3, scores=True)),
        (
            {"name": "hybrid", "inner": {"name": "tod"}},
            Needs(members=1, previous=True, scores=True, vectors="embedding"),
        ),
    ],
)
def test_each_function_declares_what_it_needs(section, needs):
    assert build_acquisition(section).needs == needs


def test_needs_refuse_what_cannot_be_handed_over():
    with pytest.raises(ValueError, match="needs members >= 1"):
        Needs(previous=True)
    with pytest.raises(ValueError, match="reads the true outputs"):
        Needs(members=1, truth=True)
    with pytest.raises(ValueError, match="invalid acquisition needs"):
        Needs(members=1, vectors="pixels")


def test_ensemble_variance_over_its_members():
    ensemble = build_acquisition({"name": "ensemble", "members": 3})
    assert torch.equal(ensemble.score_batch([unet(1)] * 3, X), torch.zeros(6))
    members = [unet(seed).eval() for seed in range(3)]
    with torch.no_grad():
        outputs = np.stack([m(X).numpy() for m in members])
    expected = outputs.var(axis=0).reshape(6, -1).mean(axis=1)
    np.testing.assert_allclose(ensemble.score_batch(members, X).numpy(), expected, rtol=1e-5)


def test_entropy_is_the_source_weighted_mc_dropout_variance_in_numpy():
    """(1 + w2 tanh(|mean|)) * variance over T dropout passes, averaged over cells; the passes are drawn as
    the function draws them (one batched forward of T copies), the formula computed here."""
    from raysurr.models.layers import mc_dropout

    model, entropy = unet(0, dropout=0.4), build_acquisition({"name": "entropy", "passes": 5, "w2": 30.0})
    torch.manual_seed(11)
    got = entropy.score_batch([model], X).double().numpy()
    torch.manual_seed(11)
    with torch.no_grad():
        outputs = mc_dropout(model)(X.repeat(5, 1, 1, 1)).unflatten(0, (5, 6)).double().numpy()
    mean, variance = outputs.mean(axis=0), outputs.var(axis=0)
    expected = ((1 + 30.0 * np.tanh(np.abs(mean))) * variance).reshape(6, -1).mean(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert len(set(np.round(expected, 12))) == 6  # six different scores: the passes differ per sample


def test_pre_scores_the_mean_squared_residual_of_the_prediction():
    sim = Diffusion2D(grid=16)
    pre = build_acquisition({"name": "pre"})
    pre.bind(sim)
    model = unet(3)
    x = torch.tensor(sim.render(sim.sample(6, np.random.default_rng(0))))
    with torch.no_grad():
        prediction = model.eval()(x).double().numpy()[:, 0]
    from raysurr.simulators.diffusion2d.physics import DiffusionOperator

    applied, s = DiffusionOperator(16, 1.0, 1 / 400).apply(prediction), x.double().numpy()[:, 0]
    scale = np.maximum((applied * s).sum(axis=(1, 2)) / (s * s).sum(axis=(1, 2)), 1e-3)
    expected = ((applied / scale[:, None, None] - s) ** 2).mean(axis=(1, 2))
    np.testing.assert_allclose(pre.score_batch([model], x).numpy(), expected, rtol=1e-4)
    labels = torch.tensor(sim.simulate(sim.sample(3, np.random.default_rng(1))).outputs)
    exact = type("Exact", (torch.nn.Module,), {"forward": lambda self, inputs: labels})()  # the solver's own fields
    inputs = torch.tensor(sim.render(sim.sample(3, np.random.default_rng(1))))
    assert pre.score_batch([exact], inputs).max() < 1e-8  # a perfect surrogate scores nothing


def test_pre_refuses_a_simulator_without_a_residual():
    class Plain:
        residual = None

    for section in ({"name": "pre"}, {"name": "stochastic", "inner": {"name": "pre"}}):
        with pytest.raises(ConfigError, match="acquisition pre scores with the simulator's residual, and simulator "
                           "'Plain' has none; give it one"):  # fmt: skip
            build_acquisition(section).bind(Plain())


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


def brute_force_k_center(vectors: np.ndarray, centres: np.ndarray | None, k: int, first: int) -> tuple[list, float]:
    """Farthest-first from explicit differences in float64; also the smallest relative gap between the
    farthest and the runner-up over the steps (where it is ~0 the pick is a tie and either is right)."""
    chosen = list(centres) if centres is not None else [vectors[first]]
    picks, gap = ([] if centres is not None else [first]), np.inf
    while len(picks) < k:
        distance = ((vectors[:, None, :] - np.array(chosen)[None]) ** 2).sum(-1).min(1)  # explicit differences
        top = np.sort(distance)[::-1]
        gap = min(gap, (top[0] - top[1]) / top[0] if len(top) > 1 and top[0] > 0 else 0.0)
        picks.append(int(np.argmax(distance)))
        chosen.append(vectors[picks[-1]])
    return picks, gap


@st.composite
def offset_vectors(draw) -> tuple[np.ndarray, np.ndarray | None, int, int]:
    """Candidates and labelled centres sharing an offset up to 1e3 with a spread down to 1e-3, k, a seed."""
    n, dims, labelled = draw(st.integers(2, 25)), draw(st.integers(1, 5)), draw(st.integers(0, 4))
    offset, spread, seed = draw(st.floats(-1e3, 1e3)), draw(st.floats(1e-3, 10.0)), draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    vectors = offset + spread * rng.normal(size=(n, dims))
    centres = offset + spread * rng.normal(size=(labelled, dims)) if labelled else None
    return vectors, centres, int(rng.integers(1, n + 1)), seed


@settings(max_examples=150, deadline=None)
@given(offset_vectors())
def test_k_center_picks_what_an_exact_greedy_picks(case):
    """Vectors sharing an offset far larger than their spread (model features do) are where distances from
    expanded norms go wrong: the selection must equal a float64 greedy on explicit differences."""
    vectors, centres, k, seed = case
    first = int(np.random.default_rng(seed).integers(len(vectors)))  # k_center's first draw without centres
    expected, gap = brute_force_k_center(vectors, centres, k, first)
    assume(gap > 1e-9)  # a tie has two right answers
    assert k_center(vectors, centres, k, np.random.default_rng(seed)).tolist() == expected


def test_k_center_on_features_with_a_common_offset_is_exact():
    """The case that broke the float32 version in 20 of 20 trials: offset 30, spread 0.05."""
    for trial in range(20):
        rng = np.random.default_rng(trial)
        vectors, centres = 30 + 0.05 * rng.normal(size=(200, 16)), 30 + 0.05 * rng.normal(size=(20, 16))
        expected, _ = brute_force_k_center(vectors, centres, 10, first=0)
        assert k_center(vectors, centres, 10, rng).tolist() == expected


def brute_force_lcmd(vectors: np.ndarray, centres: np.ndarray | None, k: int) -> tuple[list, float]:
    """LCMD from its definition, recomputing every cluster from explicit differences at every step;
    also the smallest relative gap between the best and the runner-up of each argmax taken."""
    gaps = []

    def best(values: np.ndarray) -> int:
        top = np.sort(values[np.isfinite(values)])[::-1]
        gaps.append((top[0] - top[1]) / top[0] if len(top) > 1 and top[0] > 0 else (1.0 if len(top) == 1 else 0.0))
        return int(np.argmax(values))

    if centres is not None:
        chosen, picks = list(centres), []
    else:
        first = best(((vectors - vectors.mean(0)) ** 2).sum(1))
        chosen, picks = [vectors[first]], [first]
    while len(picks) < k:
        squared = ((vectors[:, None, :] - np.array(chosen)[None]) ** 2).sum(-1)
        owner, distance = squared.argmin(1), squared.min(1)
        largest = best(np.array([distance[owner == c].sum() for c in range(len(chosen))]))
        within = np.where(owner == largest, distance, -np.inf)
        within[picks] = -np.inf
        picks.append(best(within))
        chosen.append(vectors[picks[-1]])
    return picks, min(gaps, default=1.0)


@settings(max_examples=150, deadline=None)
@given(offset_vectors())
def test_lcmd_picks_what_its_definition_picks(case):
    vectors, centres, k, _ = case
    expected, gap = brute_force_lcmd(vectors, centres, k)
    assume(gap > 1e-9)  # a tie has two right answers
    assert largest_cluster_max_distance(vectors, centres, k).tolist() == expected


def test_lcmd_draws_from_the_widest_cluster_where_k_center_takes_the_farthest_point():
    """One wide cluster around a labelled centre and one far, tight one around another: k-centre takes
    the far cluster's outlier first, LCMD the wide cluster's farthest member."""
    rng = np.random.default_rng(0)
    wide, tight = rng.normal(0, 1.0, size=(200, 2)), rng.normal(0, 0.01, size=(5, 2)) + np.array([50.0, 0.0])
    tight[0] = [56.0, 0.0]  # farther from its centre than any wide point from its own (sum: 36 against ~400)
    vectors, centres = np.concatenate([wide, tight]), np.array([[0.0, 0.0], [50.0, 0.0]])
    assert k_center(vectors, centres, 1, rng).tolist() == [200]
    (pick,) = largest_cluster_max_distance(vectors, centres, 1)
    assert pick < 200 and pick == int(np.argmax((wide**2).sum(1)))
    candidates = Candidates(ids=np.arange(205) + 7, vectors=vectors, labeled_vectors=centres)
    assert build_acquisition({"name": "lcmd"}).select(candidates, 1, rng).tolist() == [pick + 7]


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
        (
            {"name": "stochastic", "inner": {"name": "random"}},
            ConfigError,
            "acquisition stochastic re-ranks scores, but 'random' does not score; wrap a function that does",
        ),
        ({"name": "hybrid", "inner": {"name": "diversity"}}, ConfigError, "but 'diversity' does not score"),
        ({"name": "stochastic", "inner": {"name": "coreset"}}, ConfigError, "but 'coreset' does not score"),
    ],
)
def test_bad_names_and_options(section, error, message):
    with pytest.raises(error, match=message):
        build_acquisition(AcquisitionConfig.from_dict(section))


@pytest.mark.parametrize("k", [0, 31])
def test_k_outside_the_pool_is_refused(k):
    with pytest.raises(ConfigError, match=f"cannot select {k} samples from a pool of 30"):
        build_acquisition({"name": "random"}).select(pool(), k, np.random.default_rng())


def test_the_guides_own_function_runs(monkeypatch):
    """docs/acquisition.md's plugin example registers, declares its needs, scores and selects."""
    import re

    from raysurr.acquisition import base
    from tests.conftest import REPO

    text = (REPO / "docs" / "acquisition.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    monkeypatch.setattr(base.ACQUISITIONS, "_entries", dict(base.ACQUISITIONS._entries))  # leave no trace
    exec(compile(code, "docs/acquisition.md", "exec"), {})
    function = build_acquisition({"name": "max_output"})
    assert function.needs == Needs(members=1, scores=True)
    model = unet(0)
    scores = function.score_batch([model], X)
    with torch.no_grad():
        assert torch.equal(scores, model.eval()(X).flatten(1).amax(1))
    candidates = Candidates(ids=np.arange(6), scores=scores.numpy())
    assert function.select(candidates, 2, np.random.default_rng()).tolist() == np.argsort(-scores.numpy())[:2].tolist()


def test_top_k_breaks_ties_at_random_never_in_pool_order():
    """Equal scores (TOD between identical models) rank nothing: the picks must not be the pool's first ids."""
    candidates = Candidates(ids=np.arange(100, 200), scores=np.zeros(100))
    tod = build_acquisition({"name": "tod"})
    picks = [tod.select(candidates, 10, np.random.default_rng(seed)).tolist() for seed in range(3)]
    assert all(p != list(range(100, 110)) for p in picks) and picks[0] != picks[1]
    assert picks[0] == tod.select(candidates, 10, np.random.default_rng(0)).tolist()  # deterministic per seed
    scores = np.array([1.0, 3.0, 3.0, 2.0])
    assert build_acquisition({"name": "tod"}).select(Candidates(np.arange(4), scores), 2, np.random.default_rng())\
        .tolist() in ([1, 2], [2, 1])  # fmt: skip


@pytest.mark.parametrize("section", [{"name": "diversity"}, {"name": "coreset"}, {"name": "lcmd"},
                                     {"name": "hybrid", "inner": {"name": "tod"}, "shortlist": 1.0},
                                     {"name": "oracle", "shortlist": 1.0}])  # fmt: skip
@pytest.mark.parametrize("centres", [None, np.zeros((3, 4))])
def test_feature_selection_never_repeats_a_candidate_on_duplicates_or_collapsed_features(section, centres):
    """Every candidate the same vector (duplicate candidates, features that collapsed): all remaining distances are
    0, where argmax used to pick index 0 again and again."""
    candidates = Candidates(ids=np.arange(50, 70), scores=np.ones(20), vectors=np.zeros((20, 4)),
                            labeled_vectors=centres)  # fmt: skip
    picks = build_acquisition(section).select(candidates, 12, np.random.default_rng(0))
    assert len(picks) == 12 and len(set(picks.tolist())) == 12
    duplicates = np.repeat(np.random.default_rng(1).normal(size=(4, 4)), 5, axis=0)  # 4 points, 5 copies each
    candidates = Candidates(np.arange(20), np.ones(20), duplicates, centres)
    picks = build_acquisition(section).select(candidates, 20, np.random.default_rng(0))
    assert sorted(picks.tolist()) == list(range(20))
    assert sorted(k_center(duplicates, centres, 20, np.random.default_rng(0)).tolist()) == list(range(20))


def test_oracle_scores_the_true_weighted_mae_and_picks_the_worst():
    model = unet(4, dropout=0.0).eval()
    targets = torch.rand(6, 1, 16, 16)
    oracle = build_acquisition({"name": "oracle", "w2": 50.0})
    with torch.no_grad():
        pred = model(X)
    expected = ((1 + 50.0 * torch.tanh(targets.abs())) * (pred - targets).abs()).flatten(1).mean(1)
    assert torch.allclose(oracle.score_batch([model], X, targets=targets), expected)
    errors = np.array([0.1, 5.0, 0.3, 4.0, 0.2, 3.0])  # known true errors: with a shortlist of k, the k worst
    candidates = Candidates(np.arange(6) + 10, errors, np.random.default_rng(0).normal(size=(6, 2)), np.zeros((1, 2)))
    exact = build_acquisition({"name": "oracle", "shortlist": 1.0})
    assert sorted(exact.select(candidates, 3, np.random.default_rng()).tolist()) == [11, 13, 15]
    clustered = Candidates(np.arange(6), errors, np.array([[0, 0], [5, 5], [0, 0], [5, 5.1], [9, 0], [5.1, 5]]),
                           np.zeros((1, 2)))  # fmt: skip
    diverse = build_acquisition({"name": "oracle", "shortlist": 2.0}).select(clustered, 2, np.random.default_rng())
    assert 1 in diverse or 3 in diverse  # one of the worst cluster, then the far one: not two of one cluster
    assert len({int(i) // 2 for i in diverse}) == 2 or {0, 2} & set(diverse.tolist()) == set()


def test_the_estimated_error_finds_a_perturbed_field_and_is_the_error_with_enough_sweeps():
    sim = Diffusion2D(grid=16, radius=2)
    params = sim.sample(6, np.random.default_rng(0))
    x, y = torch.tensor(sim.render(params)), torch.tensor(sim.simulate(params).outputs)
    noise = torch.tensor([0.0, 0.001, 0.01, 0.02, 0.05, 0.1]).view(-1, 1, 1, 1)
    bump = torch.zeros_like(y)
    bump[..., 5:11, 5:11] = 1.0  # a smooth-ish error the residual sees
    perturbed = y + noise * bump
    exact = sim.error_estimate(x, perturbed, effort=3000)
    assert torch.allclose(exact, noise * bump, atol=2e-3 * noise.max())  # Jacobi converged: the error itself
    function = build_acquisition({"name": "estimated_error", "effort": 30})
    function.bind(sim)
    model = type("Fixed", (torch.nn.Module,), {"forward": lambda self, inputs: perturbed})()
    scores = function.score_batch([model], x).numpy()
    assert scores[0] < 1e-3 * scores[-1] and (np.diff(scores) > 0).all()  # ranks the errors as they are


def test_estimated_error_refuses_a_simulator_without_an_estimate():
    class Plain:
        error_estimate = None

    with pytest.raises(ConfigError, match="needs the simulator's error_estimate, and simulator 'Plain' has none"):
        build_acquisition({"name": "estimated_error"}).bind(Plain())


def test_count_sketch_keeps_norms_and_last_layer_features_are_the_sketched_output_layer_input():
    from raysurr.acquisition import count_sketch
    from raysurr.acquisition.base import latent_features

    values = torch.randn(20, 8192, dtype=torch.float64)
    sketched = count_sketch(values, 512)
    ratio = (sketched**2).sum(1) / (values**2).sum(1)
    assert ratio.mean().item() == pytest.approx(1.0, abs=0.05) and ratio.min() > 0.7
    assert torch.equal(count_sketch(values, 512), sketched)  # the same projection every call
    model = unet(5, dropout=0.0).eval()
    with torch.no_grad():
        hidden = model.last_hidden(X)
        assert torch.allclose(model.head(hidden), model(X))
        assert torch.allclose(latent_features(model, X, "last_layer", 64), count_sketch(hidden.flatten(1), 64))
        assert torch.equal(latent_features(model, X, "bottleneck", 64), model.features(X))
    with pytest.raises(ConfigError, match="acquisition.features must be one of last_layer, bottleneck"):
        build_acquisition({"name": "lcmd", "features": "pixels"})


def test_stochastic_k_picks_follow_sequential_sampling_without_replacement():
    """k = 2 of 5 with probability ∝ score^beta: the Gumbel top-k draws must be distributed as drawing one after the
    other without replacement, whose probability of the pair {i, j} is p_i p_j / (1 - p_i) + p_j p_i / (1 - p_j)."""
    import itertools

    scores = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    beta = 1.5
    p = scores**beta / (scores**beta).sum()
    pairs = list(itertools.combinations(range(5), 2))
    expected = np.array([p[i] * p[j] / (1 - p[i]) + p[j] * p[i] / (1 - p[j]) for i, j in pairs])
    acq = build_acquisition({"name": "stochastic", "beta": beta, "inner": {"name": "entropy"}})
    rng = np.random.default_rng(7)
    candidates = Candidates(ids=np.arange(5), scores=scores)
    draws = [tuple(sorted(acq.select(candidates, 2, rng).tolist())) for _ in range(20000)]
    counts = np.array([draws.count(pair) for pair in pairs])
    assert expected.sum() == pytest.approx(1.0)
    assert stats.chisquare(counts, expected * len(draws)).pvalue > 0.001
