"""Pool scoring on Ray Data equals in-process scoring; labelled candidates are never scored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raysurr.config import AcquisitionConfig, ResourcesConfig, SimulatorConfig
from raysurr.data.store import parameters_table, write_table
from raysurr.distributed.scoring import PoolScorer, ScoreRequest, pool_dataset, score_pool
from raysurr.models.checkpoint import SurrogateSpec, load_surrogate, save_surrogate
from raysurr.simulators import build_simulator

pytestmark = pytest.mark.timeout(240)

SIMULATOR = SimulatorConfig(options={"grid": 24})


@pytest.fixture(scope="module")
def setup(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    sim = build_simulator(SIMULATOR)
    ids = np.arange(1000, 1200)
    params = sim.sample(len(ids), np.random.default_rng(0))
    (root / "pool").mkdir()
    for i in range(0, 200, 50):  # several parts: blocks for both actors
        write_table(parameters_table(sim, ids[i : i + 50], params[i : i + 50]), root / "pool" / f"part-{i:03d}.parquet")
    spec = SurrogateSpec("unet", {"in_channels": 1, "out_channels": 1, "base_channels": 3, "depth": 3})
    checkpoints = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        checkpoints.append(str(save_surrogate(spec.build(), spec, root / f"ck{seed}")))
    return root, ids, params, checkpoints


def named(base: dict, acquisition: str) -> ScoreRequest:
    return ScoreRequest(**base, acquisition=AcquisitionConfig(name=acquisition))


def in_process(scorer_kwargs: dict, ids: np.ndarray, params: np.ndarray) -> dict:
    scorer = PoolScorer(**scorer_kwargs)
    batch = {"sample_id": ids, **{name: params[:, j] for j, name in enumerate(scorer.simulator.parameter_names)}}
    return scorer(batch)


def test_ray_data_scores_equal_in_process_scores(setup):
    root, ids, params, checkpoints = setup
    exclude = ids[::7]
    kwargs = {"acquisition": AcquisitionConfig(name="tod"), "checkpoints": checkpoints, "simulator": SIMULATOR,
              "exclude": exclude}  # fmt: skip
    resources = ResourcesConfig(score_actors=2)
    scored = score_pool(root / "pool", ScoreRequest(**kwargs), resources)
    expected = in_process(kwargs, ids, params)
    pool = pool_dataset(root / "pool", resources)  # read once, scored every round
    for _ in range(2):
        again = score_pool(pool, ScoreRequest(**kwargs), resources)
        assert all(np.array_equal(again[key], scored[key]) for key in ("sample_id", "score"))
    assert not set(scored["sample_id"].tolist()) & set(exclude.tolist())
    assert np.array_equal(scored["sample_id"], expected["sample_id"])
    assert len(scored["sample_id"]) == 200 - len(exclude)
    np.testing.assert_allclose(scored["score"], expected["score"], rtol=1e-6, atol=1e-9)
    assert (scored["score"] > 0).all()


def test_entropy_and_coreset_through_ray(setup):
    """Core-Set's vectors from Ray Data equal the same features computed in this process (sorted by id both)."""
    root, ids, params, checkpoints = setup
    base = {"checkpoints": checkpoints[:1], "simulator": SIMULATOR}
    entropy = score_pool(
        root / "pool", ScoreRequest(**{**base, "acquisition": AcquisitionConfig(name="entropy")}), ResourcesConfig()
    )
    assert entropy["score"].shape == (200,) and np.isfinite(entropy["score"]).all() and (entropy["score"] > 0).all()
    coreset = score_pool(
        root / "pool", ScoreRequest(**{**base, "acquisition": AcquisitionConfig(name="coreset")}), ResourcesConfig()
    )
    assert coreset["vector"].shape == (200, 512)  # the output layer's input, count-sketched to 512 numbers
    here = in_process({**base, "acquisition": AcquisitionConfig(name="coreset")}, ids, params)
    assert np.array_equal(coreset["sample_id"], here["sample_id"])
    np.testing.assert_allclose(coreset["vector"], here["vector"], rtol=1e-5, atol=1e-6)  # the same sketch everywhere
    section = AcquisitionConfig(name="coreset", options={"features": "bottleneck"})
    bottleneck = score_pool(root / "pool", ScoreRequest(**{**base, "acquisition": section}), ResourcesConfig())
    assert bottleneck["vector"].shape == (200, 12)  # base_channels 3, depth 3: 12 bottleneck channels


def write_samples(folder, ids: np.ndarray) -> None:
    from raysurr.data.store import PartStore, samples_table

    sim = build_simulator(SIMULATOR)
    params = sim.sample(len(ids), np.random.default_rng(int(ids[0])))
    PartStore(folder).write(samples_table(sim, ids, params, sim.render(params), sim.simulate(params), {}))


def test_evaluating_splits_in_one_pass_equals_one_pass_each(setup):
    from raysurr.config import Config
    from raysurr.distributed.scoring import evaluate, evaluate_splits, read_samples, read_splits

    root, _, _, checkpoints = setup
    write_samples(root / "val", np.arange(0, 40))
    write_samples(root / "test", np.arange(40, 70))
    resources = ResourcesConfig(score_actors=1)
    config = Config(simulator=SIMULATOR, resources=resources)
    together = evaluate_splits(checkpoints[0], {"val": root / "val", "test": root / "test"}, config)
    for name, n in [("val", 40), ("test", 30)]:
        alone = evaluate(checkpoints[0], read_samples(root / name), config)
        assert together[name]["n"] == alone["n"] == n
        for metric in ("wmae", "mae_all", "mae_source", "mae_field"):
            assert together[name][metric] == pytest.approx(alone[metric], rel=1e-6)
    # Read once, evaluated again (as the driver does every round), with another model: the same as from the folders.
    splits = read_splits({"val": root / "val", "test": root / "test"}, resources)
    for checkpoint in checkpoints:
        again = evaluate_splits(checkpoint, splits, config)
        from_folders = evaluate_splits(checkpoint, {"val": root / "val", "test": root / "test"}, config)
        for name in ("val", "test"):  # checkpoints made without training have no mean target: NaN skill
            assert again[name] == pytest.approx(from_folders[name], nan_ok=True)
    assert again["val"]["wmae"] != together["val"]["wmae"]
    with pytest.raises(ValueError, match="share sample ids"):
        evaluate_splits(checkpoints[0], {"a": root / "val", "b": root / "val"}, config)


def test_region_errors_follow_the_simulators_region_of_interest(setup):
    from raysurr.distributed.scoring import SampleMetrics

    _, _, _, checkpoints = setup
    sim = build_simulator(SIMULATOR)
    params = sim.sample(6, np.random.default_rng(3))
    x, y = sim.render(params), sim.simulate(params).outputs
    metrics = SampleMetrics(checkpoints[0], 1.0, 2000.0, SIMULATOR)(
        {"sample_id": np.arange(6), "input": x, "target": y}
    )
    with torch.no_grad():
        error = np.abs(load_surrogate(checkpoints[0])(torch.tensor(x)).numpy() - y)[:, 0]
    region = x[:, 0] > 0  # diffusion2d's sources
    assert region.any() and (~region).any()
    pairs = list(zip(error, region, strict=True))
    np.testing.assert_allclose(metrics["mae_source"], [e[r].mean() for e, r in pairs], rtol=1e-5)
    np.testing.assert_allclose(metrics["mae_field"], [e[~r].mean() for e, r in pairs], rtol=1e-5)


def test_read_samples_hands_the_data_to_ray_so_workers_need_no_shared_disk(ray_local, tmp_path):
    import shutil

    from raysurr.distributed.scoring import read_samples
    from raysurr.errors import DatasetError

    write_samples(tmp_path / "a", np.arange(0, 30))
    write_samples(tmp_path / "a", np.arange(30, 50))
    dataset = read_samples(tmp_path / "a", ["sample_id", "input"])
    shutil.rmtree(tmp_path / "a")  # a worker on another node would not see it either
    assert dataset.num_blocks() == 2 and dataset.columns() == ["sample_id", "input"]
    ids = dataset.map_batches(lambda batch: {"sample_id": batch["sample_id"] * 2}).to_pandas()["sample_id"]
    assert sorted(ids) == list(range(0, 100, 2))
    with pytest.raises(DatasetError, match="holds no Parquet files"):
        read_samples(tmp_path)


def test_fno_scores_through_ray_data_as_in_process(setup, tmp_path):
    """A Fourier neural operator through the scoring pipeline: TOD equal to in-process, Core-Set vectors."""
    root, ids, params, _ = setup
    spec = SurrogateSpec("fno", {"in_channels": 1, "out_channels": 1, "base_channels": 4, "depth": 2, "modes": 4,
                                 "dropout": 0.2})  # fmt: skip
    checkpoints = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        checkpoints.append(str(save_surrogate(spec.build(), spec, tmp_path / f"fno{seed}")))
    kwargs = {"acquisition": AcquisitionConfig(name="tod"), "checkpoints": checkpoints, "simulator": SIMULATOR}
    scored = score_pool(root / "pool", ScoreRequest(**kwargs), ResourcesConfig(score_actors=2))
    np.testing.assert_allclose(scored["score"], in_process(kwargs, ids, params)["score"], rtol=1e-5, atol=1e-9)
    base = {"checkpoints": checkpoints[:1], "simulator": SIMULATOR}
    coreset = score_pool(
        root / "pool", ScoreRequest(**{**base, "acquisition": AcquisitionConfig(name="coreset")}), ResourcesConfig()
    )
    assert coreset["vector"].shape == (200, 512)
    entropy = score_pool(
        root / "pool", ScoreRequest(**{**base, "acquisition": AcquisitionConfig(name="entropy")}), ResourcesConfig()
    )
    # its channel dropout makes most samples' MC passes differ; where every pass dropped the same channels, exactly 0
    assert (entropy["score"] >= 0).all() and (entropy["score"] > 0).mean() > 0.5


def test_evaluation_weighs_errors_with_the_configured_loss_weights(setup):
    """loss_w and loss_w2 from the config, not their defaults, on the way into the evaluation workers."""
    from raysurr.config import Config, TrainingConfig
    from raysurr.distributed.scoring import evaluate, read_samples

    root, _, _, checkpoints = setup
    ids = np.arange(300, 320)
    write_samples(root / "weights", ids)
    sim = build_simulator(SIMULATOR)
    params = sim.sample(len(ids), np.random.default_rng(int(ids[0])))  # the samples write_samples made
    x, y = torch.tensor(sim.render(params)), torch.tensor(sim.simulate(params).outputs)
    with torch.no_grad():
        pred = load_surrogate(checkpoints[0])(x).double().numpy()
    target = y.double().numpy()
    for w, w2 in [(3.0, 7.0), (1.0, 2000.0)]:
        config = Config(simulator=SIMULATOR, resources=ResourcesConfig(score_actors=1),
                        training=TrainingConfig(loss_w=w, loss_w2=w2))  # fmt: skip
        expected = ((1 + w2 * np.tanh(w * np.abs(target))) * np.abs(pred - target)).mean()
        assert evaluate(checkpoints[0], read_samples(root / "weights"), config)["wmae"] == pytest.approx(
            expected, rel=1e-5
        )
