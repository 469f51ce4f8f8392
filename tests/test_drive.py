"""`python -m raysurr.drive` end to end on a local Ray: outputs, resume after SIGKILL, config errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

import raysurr
from raysurr.acquisition import k_center
from raysurr.acquisition.base import latent_features
from raysurr.commands.drive import main
from raysurr.config import Config
from raysurr.errors import ConfigError, RegistryError
from raysurr.simulators import build_simulator
from tests.conftest import REPO, assert_mlflow_has_every_round, run_command

pytestmark = pytest.mark.timeout(600)

QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
TINY = ["simulator.grid=32", "simulator.solver=transient", "pool.size=64", "pool.initial=16", "pool.val=16",
        "pool.test=16", "loop.batch_size=8",
        "loop.rounds=2", "training.epochs=2", "training.batch_size=8", "model.base_channels=2", "model.depth=3",
        "resources.cpus_per_train_worker=1", "resources.score_actors=1", "labeling.chunk_size=4"]  # fmt: skip
SETS = [arg for item in TINY for arg in ("--set", item)]
TRACKED = [*SETS, "--set", "tracking.mlflow=true"]  # the reference run and the killed one log to MLflow


def labeled_ids(run: Path) -> list[int]:
    return sorted(pq.read_table(run / "labels", columns=["sample_id"]).column(0).to_pylist())


@pytest.fixture(scope="module")
def reference(ray_local, tmp_path_factory):
    """An uninterrupted run of the quickstart config at a tiny scale."""
    run = tmp_path_factory.mktemp("drive") / "reference"
    assert main(["--config", QUICKSTART, "--run-dir", str(run), *TRACKED]) == 0
    return run


def test_rounds_csv_and_outputs(reference):
    with (reference / "rounds.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["round"]) for r in rows] == [0, 1]
    assert [int(r["n_labeled"]) for r in rows] == [16, 24]  # grows by B each round
    assert list(rows[0]) == ["round", "n_labeled", "n_failed", "val_wmae", "test_wmae", "test_mae_all",
                             "test_mae_source", "test_mae_field", "test_wmae_skill_zero", "test_wmae_skill_mean",
                             "test_mae_skill_zero", "test_mae_skill_mean", "test_wmae_p95", "test_wmae_top10_share",
                             "label_s", "train_s", "score_s", "eval_s", "round_s", "elapsed_s",
                             "utilisation", "random_fallback"]  # fmt: skip
    for row in rows:  # each skill is 1 - error / the trivial model's error, the latter measured on the same set
        assert -100 < float(row["test_wmae_skill_zero"]) < 1 and -100 < float(row["test_mae_skill_mean"]) < 1
    assert all(float(r["test_wmae"]) > 0 and float(r["round_s"]) > 0 for r in rows)
    ids = labeled_ids(reference)
    assert len(ids) == len(set(ids)) == 24  # no id labelled twice
    for round_idx in range(2):
        model = raysurr.load_surrogate(reference / "checkpoints" / f"round_{round_idx:03d}")
        assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    for name in ["learning_curve.png", "predictions.png", "config.yaml"]:
        assert (reference / name).stat().st_size > 0
    assert json.loads((reference / "state.json").read_text())["stopped"] == "2 rounds done"
    predictor = raysurr.load(reference)  # the last finished round's model, as model/ leads to it
    assert predictor.source == reference / "checkpoints" / "round_001" and predictor.labels == 24
    assert (reference / "model").resolve() == predictor.source.resolve()
    assert predictor.metrics["test_wmae"] == pytest.approx(float(rows[-1]["test_wmae"]))
    assert raysurr.load(reference, round=0).source.name == "round_000" and raysurr.load(reference, round=0).labels == 16
    params = predictor.renderer.sample(3, np.random.default_rng(0))
    with warnings.catch_warnings():  # a tiny run's 24 labels cover little: the equality is the point here
        warnings.simplefilter("ignore", raysurr.ExtrapolationWarning)
        fields = predictor.predict(params)
    with torch.no_grad():
        expected = raysurr.load_surrogate(predictor.source)(torch.tensor(predictor.renderer.render(params))).numpy()
    np.testing.assert_allclose(fields, expected, rtol=1e-5, atol=1e-6)


def test_a_fourier_neural_operator_runs_the_loop_with_core_set_and_warm_starts(ray_local, tmp_path):
    """fno through drive: trained (with the physics term on unlabelled inputs), evaluated, its features score the
    pool (Core-Set), fine-tuned each round."""
    run = tmp_path / "fno"
    fno = [
        "model.name=fno",
        "model.modes=4",
        "model.depth=2",
        "acquisition.name=coreset",
        "training.reinit=false",
        "training.physics_weight=0.1",
    ]
    assert main(["--config", QUICKSTART, "--run-dir", str(run), *SETS, *[a for s in fno for a in ("--set", s)]]) == 0
    with (run / "rounds.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["n_labeled"]) for r in rows] == [16, 24] and all(float(r["test_wmae"]) > 0 for r in rows)
    from raysurr.models.checkpoint import read_checkpoint

    first, second = (read_checkpoint(run / "checkpoints" / f"round_{r:03d}")[0] for r in (0, 1))
    assert second.name == "fno" and raysurr.load_surrogate(run / "checkpoints" / "round_001").features(
        torch.zeros(2, 1, 32, 32)).shape == (2, 2)  # fmt: skip
    assert (second.inputs, second.transform) == (first.inputs, first.transform)  # fine-tuned at round 0's scale
    assert second.meta["augmented"] == ["flip_rows", "flip_cols", "transpose"]  # diffusion2d declares them
    history = json.loads((run / "checkpoints" / "round_001" / "history.json").read_text())
    assert all(epoch["train_residual"] > 0 for epoch in history)  # the physics term ran on the workers
    # Core-Set's round-1 selection against k-centre on round 0's features computed here.
    ids, params, selections = in_process_candidates(run)
    simulator = build_simulator(Config.from_dict(yaml.safe_load((run / "config.yaml").read_text())).simulator)
    with torch.no_grad():  # the default features: the output layer's input, count-sketched
        model = raysurr.load_surrogate(run / "checkpoints" / "round_000")
        features = latent_features(model, torch.tensor(simulator.render(params)), "last_layer", 512).double().numpy()
    labelled, candidates = np.isin(ids, selections[0]), np.setdiff1d(ids, selections[0])
    picks = k_center(features[~labelled], features[labelled], 8, np.random.default_rng())
    assert sorted(candidates[picks].tolist()) == selections[1]


def _wait_for(run: Path, phase: str, round_idx: int, running) -> bool:
    """Wait until the run is in `phase` of `round_idx` (in `label`: once some labels are stored, so that the store
    is half written); False if `running()` turns False first."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if not running():
            return False
        try:
            current = json.loads((run / "state.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            current = {}
        started = phase != "label" or any((run / "labels").glob("part-*.parquet"))
        if current.get("phase") == phase and current.get("round") == round_idx and started:
            return True
        time.sleep(0.05)
    raise AssertionError(f"the run never reached {phase} of round {round_idx}")


def _kill_when(proc: subprocess.Popen, run: Path, phase: str, round_idx: int, delay: float) -> bool:
    """SIGKILL the run's whole process tree (the command and its own Ray) once it is in `phase` of `round_idx`;
    False if the run finished first."""
    if not _wait_for(run, phase, round_idx, lambda: proc.poll() is None):
        return False
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def _kill_driver_when(run: Path, phase: str, round_idx: int, delay: float) -> bool:
    """Resume the run on this process's Ray and kill its driver actor (its process, as SIGKILL does, with the tasks
    it owns) once it is in `phase` of `round_idx`; False if the run finished first."""
    import ray
    from ray.exceptions import RayActorError

    from raysurr.config import load_config
    from raysurr.engine.launch import start_driver

    driver = start_driver(run, load_config(run / "config.yaml"))
    result = driver.run.remote()
    if not _wait_for(run, phase, round_idx, lambda: not ray.wait([result], timeout=0)[0]):
        ray.kill(driver)
        return False
    time.sleep(delay)
    ray.kill(driver, no_restart=True)
    with pytest.raises(RayActorError):
        ray.get(result)
    return True


def in_process_candidates(run: Path) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """The run's pool (ids, parameters), read from its folder, and its selections."""
    table = pq.read_table(run / "pool").sort_by("sample_id")
    simulator = build_simulator(Config.from_dict(yaml.safe_load((run / "config.yaml").read_text())).simulator)
    params = np.column_stack([table.column(name).to_numpy() for name in simulator.parameter_names])
    return table.column("sample_id").to_numpy(), params, json.loads((run / "state.json").read_text())["selections"]


def test_the_runs_tod_selection_is_what_an_in_process_computation_selects(reference):
    """Round 1's selection (scored on Ray Data, selected by the driver) against TOD's formula computed here
    from the checkpoints on disk: ½ Σ (f_0(x) - f_untrained(x))², the top 8 of the unlabelled."""
    ids, params, selections = in_process_candidates(reference)
    simulator = build_simulator(Config.from_dict(yaml.safe_load((reference / "config.yaml").read_text())).simulator)
    unlabelled = ~np.isin(ids, selections[0])
    candidates, x = ids[unlabelled], torch.tensor(simulator.render(params[unlabelled]))
    current, previous = (raysurr.load_surrogate(reference / "checkpoints" / n) for n in ("round_000", "untrained"))
    with torch.no_grad():
        scores = (0.5 * (current(x) - previous(x)) ** 2).flatten(1).sum(1).double().numpy()
    eighth = np.sort(scores)[::-1][7]
    chosen = scores[np.isin(candidates, selections[1])]
    assert len(selections[1]) == len(chosen) == 8
    # The top 8, up to float32 rounding between batchings (2e-7 of the score: a tiny run's scores sit within
    # 1e-4 of each other, so this admits the runner-up at most).
    assert (chosen >= eighth - 2e-7 * abs(eighth)).all()


def test_resume_after_sigkill_in_each_phase_selects_the_same(reference):
    """Killed in label (a SIGKILL of the command's whole process tree, its own Ray with it), then in train and in
    score (the driver actor's process killed on this process's Ray, as a lost node would), resumed each time."""
    run = reference.parent / "killed"
    env = {**os.environ, "RAYSURR_DASHBOARD": "0", "PYTHONPATH": str(REPO), "RAY_ADDRESS": ""}
    first = ["-m", "raysurr.drive", "--config", QUICKSTART, "--run-dir", str(run), *TRACKED]
    resume = ["-m", "raysurr.drive", "--resume", str(run)]
    with (reference.parent / "killed.err").open("w") as err:
        proc = subprocess.Popen([sys.executable, *first], cwd=REPO, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    assert _kill_when(proc, run, "label", 0, 0.0), (reference.parent / "killed.err").read_text()[-3000:]  # no Ray?
    assert _kill_driver_when(run, "train", 0, 4.0) and _kill_driver_when(run, "score", 0, 1.0)
    assert main(resume[2:]) == 0  # in this process's Ray, where the last driver was killed
    assert labeled_ids(run) == labeled_ids(reference)
    assert raysurr.load(run).source.name == "round_001"  # after the resumes: the last finished round
    with (run / "rounds.csv").open() as handle:
        assert [int(r["n_labeled"]) for r in csv.DictReader(handle)] == [16, 24]
    store, run_id = mlflow_run(run)  # one MLflow run throughout, each round logged once
    runs = store.search_runs([store.get_run(run_id).info.experiment_id], "attributes.run_name = 'killed'")
    assert [r.info.run_id for r in runs] == [run_id] and runs[0].info.status == "FINISHED"
    assert [(m.step, m.value) for m in store.get_metric_history(run_id, "round")] == [(16, 0.0), (24, 1.0)]


def mlflow_run(run: Path):
    """The MLflow client of the store beside `run`, and `run`'s MLflow run id."""
    mlflow = pytest.importorskip("mlflow")
    store = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run.parent / 'mlflow.db'}")
    return store, json.loads((run / "mlflow.json").read_text())["run_id"]


def test_the_run_is_an_mlflow_run_with_a_step_per_round(reference):
    store, run_id = mlflow_run(reference)
    run = store.get_run(run_id)
    assert_mlflow_has_every_round(reference)
    assert run.info.status == "FINISHED" and run.info.run_name == "reference"
    assert run.data.params["simulator.grid"] == "32" and run.data.params["acquisition.name"] == "tod"
    artifacts = {a.path for a in store.list_artifacts(run_id)}
    assert {"rounds.csv", "learning_curve.png", "predictions.png", "config.yaml", "checkpoint"} <= artifacts
    assert {a.path for a in store.list_artifacts(run_id, "checkpoint")} >= {"checkpoint/surrogate.pt"}
    assert store.get_experiment(run.info.experiment_id).name == "quickstart"
    # the final model as an MLflow pyfunc model: a parameter table in, the Predictor's fields out
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(store.tracking_uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    predictor = raysurr.load(reference)
    params = np.array([[lo for lo, _ in predictor.ranges.values()], [hi for _, hi in predictor.ranges.values()]])
    table = pd.DataFrame(params, columns=list(predictor.parameter_names))
    np.testing.assert_allclose(model.predict(table), predictor.predict(params), rtol=1e-6)
    assert [spec.name for spec in model.metadata.signature.inputs] == list(predictor.parameter_names)


def test_config_errors_are_one_line(tmp_path):
    result = run_command("-m", "raysurr.drive", "--config", QUICKSTART, "--set", "acquisition.name=bald",
                         "--run-dir", str(tmp_path / "r"))  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "raysurr.drive: error: unknown acquisition function 'bald'; registered: coreset, diversity, ensemble, "
        "entropy, estimated_error, hybrid, lcmd, oracle, pre, random, stochastic, tod"
    ]


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--set", "model.name=resnet"], RegistryError, "unknown model 'resnet'"),
        (["--set", "loop.batch_size=0"], ConfigError, "loop.batch_size must be > 0"),
        (["--set", "pool.initial=9999"], ConfigError, "pool.initial must be <= pool.size"),
        (
            ["--set", "acquisition.name=stochastic", "--set", "acquisition.inner={name: random}"],
            ConfigError,
            "acquisition stochastic re-ranks scores, but 'random' does not score",
        ),
    ],
)
def test_bad_config_fails_before_any_work(tmp_path, args, error, message):
    with pytest.raises(error, match=message):
        main(["--config", QUICKSTART, "--run-dir", str(tmp_path / "r"), *args])
    assert not (tmp_path / "r").exists()  # nothing left behind that would block the corrected command


def test_resume_and_run_dir_mistakes(tmp_path):
    with pytest.raises(ConfigError, match="is not a run folder"):
        main(["--resume", str(tmp_path)])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("1")
    with pytest.raises(ConfigError, match="is not empty; continue it with --resume"):
        main(["--config", QUICKSTART, "--run-dir", str(tmp_path / "busy")])


def one_per_needs(sections: list[dict]) -> list[dict]:
    """The first section of each distinct `Needs`: where the driver is only plumbing, two functions that need the
    same things take the same path through it."""
    from raysurr.acquisition import build_acquisition

    by_needs: dict = {}
    for section in sections:
        by_needs.setdefault(build_acquisition(section).needs, section)
    return list(by_needs.values())


NEEDS_CASES = one_per_needs(
    [{"name": name} for name in sorted(raysurr.acquisition.ACQUISITIONS.names())]
    + [
        {"name": "ensemble", "members": 3},
        {"name": "stochastic", "inner": {"name": "ensemble", "members": 2}},
        {"name": "hybrid", "inner": {"name": "tod"}},
    ]
)


def plumbed_round(reference: Path, tmp_path: Path, monkeypatch, section: dict, **model):
    """Rounds 0 and 1 of a copy of the reference run with acquisition `section` (and `model` options), training
    replaced by fresh seeded networks and the scorer run in this process, then round 1's selection of 5; what
    training was asked for, what the scorer was handed, the candidates `select` saw, the selection, the record."""
    import shutil

    from raysurr.distributed import scoring
    from raysurr.distributed.training import TrainResult
    from raysurr.engine import work as work_module
    from raysurr.engine.rounds import RoundRecord
    from raysurr.engine.run_folder import RunFolder
    from raysurr.models.checkpoint import SurrogateSpec, save_surrogate

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    shutil.copytree(reference.parent / ".eval-cache", tmp_path / ".eval-cache")
    shutil.rmtree(run / "checkpoints")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["acquisition"] = section
    config["model"].update(model)
    config["training"]["reinit"] = False
    trained, handed, seen = [], [], []

    def train(spec, datasets, resources, out_dir, **_):
        warm = next((p.name for p in sorted((run / "checkpoints").glob("round_*"))
                     if spec.warm_start and (p / "surrogate.pt").read_bytes() == spec.warm_start), None)  # fmt: skip
        trained.append((Path(out_dir).name, spec.seed, warm))
        torch.manual_seed(spec.seed)
        made = SurrogateSpec(spec.model, spec.init)
        save_surrogate(made.build(), made, out_dir)
        return TrainResult(Path(out_dir), [], 0, 1.0, 0.0)

    def score(pool, request, resources):
        handed.append([Path(p).name for p in request.checkpoints])
        table = pq.read_table(run / "pool").sort_by("sample_id").to_pydict()
        return scoring.PoolScorer(**request.__dict__)({name: np.asarray(values) for name, values in table.items()})

    monkeypatch.setattr(work_module, "fit", train)
    monkeypatch.setattr(work_module, "score_pool", score)
    work = work_module.RoundWork(Config.from_dict(config), RunFolder(run))
    work.folder.save_untrained(work.config.model, work.simulator, seed=0)
    select = work.acquisition.select
    work.acquisition.select = lambda candidates, k, rng: seen.append(candidates) or select(candidates, k, rng)
    record = RoundRecord(1, 0, 0)
    work.train(0, record)
    work.train(1, record)
    labeled = np.array(sorted(labeled_ids(run)))
    selection = work.select(1, work.unlabelled(), labeled, 5, record)
    return work, trained, handed, seen, selection, record


@pytest.mark.parametrize("section", NEEDS_CASES, ids=lambda s: json.dumps(s, separators=(",", ":")))
def test_every_acquisition_function_gets_from_the_driver_what_it_declares(reference, tmp_path, monkeypatch, section):
    """Rounds 0 and 1 of the reference run with another function: the driver trains `members` models (own
    seeds, own warm starts), hands the scorer the members and, for TOD, the previous round's model, and
    `select` sees scores and vectors of the declared kind for exactly the unlabelled candidates. Training
    is replaced by fresh seeded networks and the scorer runs in this process: their own tests are elsewhere."""
    from raysurr.acquisition import build_acquisition

    needs = build_acquisition(section).needs
    # with dropout: MC dropout's passes differ (without, entropy scores 0 everywhere: the next test)
    work, trained, handed, seen, selection, _ = plumbed_round(reference, tmp_path, monkeypatch, section, dropout=0.1)
    picks, at_random = selection.ids, selection.at_random

    members = max(1, needs.members)
    names = [f"round_{r:03d}" + (f"_member{m}" if m else "") for r in (0, 1) for m in range(members)]
    assert [name for name, _, _ in trained] == names
    assert len({seed for _, seed, _ in trained}) == 2 * members  # each member its own seed, each round
    assert [warm for _, _, warm in trained] == [None] * members + names[:members]  # each from its own last model
    expected = names[members : members + needs.members] + (["round_000"] if needs.previous else [])
    assert handed == ([expected] if needs.members else [])
    (candidates,) = seen
    labeled = set(labeled_ids(work.folder.root))
    assert set(candidates.ids.tolist()) == set(range(64)) - labeled and len(candidates.ids) == 64 - len(labeled)
    assert (candidates.scores is not None) == bool(needs.members)
    if needs.scores:
        assert np.isfinite(candidates.scores).all() and candidates.scores.max() > 0
    if needs.vectors is None:
        assert candidates.vectors is None and candidates.labeled_vectors is None
    else:
        width = 512 if needs.vectors == "features" else work.simulator.embed(work.params[:1]).shape[1]  # the sketch
        assert candidates.vectors.shape == (len(candidates.ids), width)
        assert candidates.labeled_vectors.shape == (len(labeled), width)
    assert len(picks) == 5 and set(picks) <= set(candidates.ids.tolist()) and not at_random


def test_scores_that_rank_nothing_select_at_random_and_say_so(reference, tmp_path, monkeypatch):
    """entropy on a model without dropout scores 0 everywhere: the round selects at random, and its record (the row
    of rounds.csv) says so."""
    section = {"name": "entropy"}
    work, *_, seen, selection, record = plumbed_round(reference, tmp_path, monkeypatch, section, dropout=0.0)
    assert selection.at_random and seen == []  # entropy's own ranking was never asked
    assert record.row()["random_fallback"] == 1
    free = work.unlabelled()  # neither labelled nor failed, sorted
    assert len(selection.ids) == 5 and set(selection.ids) <= set(free.tolist())
    assert sorted(selection.ids) != free[:5].tolist()  # drawn, not the pool's order


def test_the_physics_term_gets_unlabelled_candidates_of_the_run(reference, tmp_path, monkeypatch):
    """With training.physics_weight the driver hands training the parameters of unlabelled candidates only,
    the same draw when a round is re-run."""
    import shutil

    from raysurr.distributed.training import TrainResult
    from raysurr.engine import work as work_module
    from raysurr.engine.rounds import RoundRecord
    from raysurr.engine.run_folder import RunFolder

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    shutil.copytree(reference.parent / ".eval-cache", tmp_path / ".eval-cache")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["training"]["physics_weight"] = 0.5
    handed = []

    def train(spec, *args, **kwargs):
        handed.append(spec.physics)
        return TrainResult(Path(args[-1]), [], 0, 1.0, 0.0)

    monkeypatch.setattr(work_module, "fit", train)
    work = work_module.RoundWork(Config.from_dict(config), RunFolder(run))
    work.train(1, RoundRecord(1, 0, 0))
    work.train(1, RoundRecord(1, 0, 0))
    first, again = handed
    labelled = set(labeled_ids(run))
    rows = {tuple(row): i for i, row in enumerate(work.params)}
    ids = {rows[tuple(row)] for row in first.params}
    assert len(ids) == len(first.params) == 64 - len(labelled) and not ids & labelled
    assert np.array_equal(first.params, again.params) and first.simulator == work.config.simulator


def test_the_physics_term_needs_a_simulator_with_a_residual(monkeypatch):
    from raysurr.config import TrainingConfig
    from raysurr.engine.launch import check_config
    from raysurr.simulators import Diffusion2D

    monkeypatch.setattr(Diffusion2D, "residual", None)
    with pytest.raises(ConfigError, match="training.physics_weight needs the simulator's residual, and simulator "
                       "'diffusion2d' has none"):  # fmt: skip
        check_config(Config(training=TrainingConfig(physics_weight=1.0)))


def test_tod_compares_with_the_last_model_that_differs_when_a_fine_tune_kept_its_start(ray_local, tmp_path):
    """A warm-started round whose fine-tune never beat its starting weights (here: it diverges at 1e6 x lr) keeps
    them: TOD against that same model would score 0 everywhere and used to select the pool's first ids. It
    compares with the last model that differs instead, here the untrained one."""
    from raysurr.engine.work import same_weights
    from raysurr.models.checkpoint import read_checkpoint

    run = tmp_path / "kept"
    kept = ["training.reinit=false", "training.finetune_lr_factor=1e6", "loop.rounds=3"]
    assert main(["--config", QUICKSTART, "--run-dir", str(run), *SETS, *[a for s in kept for a in ("--set", s)]]) == 0
    weights = [read_checkpoint(run / "checkpoints" / f"round_{r:03d}")[1] for r in range(3)]
    assert same_weights(weights[0], weights[1]) and same_weights(weights[0], weights[2])
    ids, params, selections = in_process_candidates(run)
    simulator = build_simulator(Config.from_dict(yaml.safe_load((run / "config.yaml").read_text())).simulator)
    unlabelled = ~np.isin(ids, selections[0] + selections[1])
    current, untrained = (raysurr.load_surrogate(run / "checkpoints" / n) for n in ("round_001", "untrained"))
    with torch.no_grad():
        x = torch.tensor(simulator.render(params[unlabelled]))
        scores = (0.5 * (current(x) - untrained(x)) ** 2).flatten(1).sum(1).double().numpy()
    chosen = scores[np.isin(ids[unlabelled], selections[2])]
    assert len(chosen) == 8 and (chosen >= np.sort(scores)[::-1][7] * (1 - 2e-7)).all()  # round 1's top 8
    assert selections[2] != sorted(ids[unlabelled][:8].tolist())  # never the pool's order
    with (run / "rounds.csv").open() as handle:
        assert [r["random_fallback"] for r in csv.DictReader(handle)] == ["0", "0", "0"]


def test_a_run_starts_from_the_users_own_simulations_and_test_set(ray_local, tmp_path):
    """pool.initial_from: 12 labelled samples of the user's join the pool and start the run (4 more drawn to make the
    initial 16); evaluation.test_from: the user's test set replaces the simulated one. A malformed file stops the
    command in one line before anything is written."""
    from raysurr.data.dataset import open_dataset, read_arrays, read_split
    from raysurr.engine.run_folder import evaluation_dir
    from tests.data.test_imported import broken, users_table

    mine, test = users_table(12, seed=5), users_table(20, seed=6)
    pq.write_table(mine, tmp_path / "mine.parquet")
    pq.write_table(test, tmp_path / "test.parquet")
    own = [f"pool.initial_from={tmp_path / 'mine.parquet'}", f"evaluation.test_from={tmp_path / 'test.parquet'}"]
    small = ["simulator.grid=16", "simulator.radius=2", "model.depth=2", *own]
    sets = [*SETS, *[a for s in small for a in ("--set", s)]]
    run = tmp_path / "run"
    assert main(["--config", QUICKSTART, "--run-dir", str(run), *sets]) == 0
    labels = pq.read_table(run / "labels").sort_by("sample_id")
    fidelity = labels.column("fidelity").to_pylist()
    assert fidelity.count("imported") == 12 and len(fidelity) == 16 + 8  # 4 drawn, then a round of 8
    ids, _, selections = in_process_candidates(run)
    assert len(ids) == 64 + 12 and sorted(selections[0])[-12:] == list(range(64, 76))  # brought: joined the pool
    brought = [r for r in labels.to_pylist() if r["fidelity"] == "imported"]
    assert [r["flux1"] for r in brought] == pytest.approx(mine.column("flux1").to_pylist())
    config = Config.from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    cached = read_arrays(read_split(evaluation_dir(config, run), "test"))
    splits = open_dataset(evaluation_dir(config, run)).splits
    assert splits == {"val": 16, "test": 20} and len(cached["sample_id"]) == 20
    np.testing.assert_array_equal(cached["target"], test.column("targets").combine_chunks().to_numpy_ndarray())
    pq.write_table(broken("duplicate"), tmp_path / "bad.parquet")
    bad = [*sets, "--set", f"pool.initial_from={tmp_path / 'bad.parquet'}"]
    with pytest.raises(ConfigError, match=r"pool.initial_from: .*bad.parquet.*rows \[2, 6\] hold the same parameter"):
        main(["--config", QUICKSTART, "--run-dir", str(tmp_path / "never"), *bad])
    assert not (tmp_path / "never").exists()


def test_raysurr_predict_writes_the_fields_of_a_file_of_parameter_sets_in_its_order(reference, tmp_path, capsys):
    """On Ray Data, two workers: the same fields as Predictor.predict in this process, row for row; bad files are one
    line (exit 2) and leave nothing behind."""
    import pyarrow.csv as pacsv

    from raysurr.commands import run_command
    from raysurr.data.store import tensor_numpy

    predictor = raysurr.load(reference)
    low, high = zip(*predictor.ranges.values(), strict=True)
    params = np.random.default_rng(1).uniform(low, high, size=(300, len(low)))
    names = predictor.parameter_names
    params[:, [names.index(n) for n in names if n.startswith(("row", "col"))]] //= 1  # integer centres
    pacsv.write_csv(pa.table({n: params[:, j] for j, n in enumerate(names)}), tmp_path / "params.csv")
    out = tmp_path / "fields.parquet"
    assert run_command("predict", ["--run", str(reference), "--params", str(tmp_path / "params.csv"), "--out",
                                   str(out), "--batch-size", "64"]) == 0  # fmt: skip
    table = pq.read_table(out)
    assert table.column_names == [*names, "prediction"] and table.num_rows == 300
    np.testing.assert_allclose(np.column_stack([table.column(n) for n in names]), params)  # the file's order
    fields = tensor_numpy(table.column("prediction"))
    np.testing.assert_allclose(fields, predictor.predict(params), rtol=1e-5, atol=1e-6)
    pq.write_table(pa.table({n: params[:5, j] for j, n in enumerate(names[:-1])}), tmp_path / "short.parquet")
    capsys.readouterr()
    cases = (
        (["--params", str(tmp_path / "short.parquet")], "missing ['flux2']"),
        (["--params", str(tmp_path / "params.csv"), "--std"], "it has no spread to give"),
    )
    for args, message in cases:
        assert run_command("predict", ["--run", str(reference), "--out", str(tmp_path / "no.parquet"), *args]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "no.parquet").exists()
    params[0, names.index("flux1")] = 0.0  # inside the simulator's range, below what the tiny run's labels covered
    pacsv.write_csv(pa.table({n: params[:, j] for j, n in enumerate(names)}), tmp_path / "wide.csv")
    args = ["--run", str(reference), "--params", str(tmp_path / "wide.csv"), "--out", str(tmp_path / "no.parquet")]
    assert run_command("predict", [*args, "--strict"]) == 2 and "lies outside" in capsys.readouterr().err
