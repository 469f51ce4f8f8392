"""`python -m raysurr.experiment` end to end: a tiny grid on a local Ray, shared sets, summary and report."""

from __future__ import annotations

import csv
import json
import re

import pyarrow.parquet as pq
import pytest
import yaml

from raysurr.commands.experiment import main
from raysurr.errors import ConfigError
from tests.conftest import REPO, last_line, run_command

pytestmark = pytest.mark.timeout(600)

TINY = {
    "name": "tinyx",
    "simulator": {"name": "diffusion2d", "grid": 32},
    "pool": {"size": 64, "initial": 16, "val": 16, "test": 16},
    "training": {"epochs": 2, "lr": 3.0e-3, "batch_size": 8},
    "loop": {"batch_size": 8, "rounds": 1},  # one round per run: the grid runner is under test, not the loop
    "labeling": {"chunk_size": 8},
    "resources": {"simulators": 1, "cpus_per_train_worker": 1, "score_actors": 1},
    "experiment": {
        "models": {"unet-tiny": {"name": "unet", "base_channels": 2, "depth": 2}},
        "acquisitions": {"random": {}, "diversity": {}},
        "seeds": [0, 1],
        "parallel": 2,
    },
}


def write(folder, data) -> str:
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def initial_ids(run) -> list[int]:
    labels = pq.read_table(run / "labels", columns=["sample_id"]).column(0).to_pylist()
    return sorted(labels)[:16] if labels else []


@pytest.fixture(scope="module")
def experiment(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    out = root / "out"
    assert main(["--config", write(root, {**TINY, "tracking": {"mlflow": True}}), "--out", str(out)]) == 0
    return out


def test_every_run_finishes_and_the_summary_has_a_row_per_run_and_round(experiment):
    with (experiment / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    keys = {(r["model"], r["acquisition"], r["seed"]) for r in rows}
    assert keys == {("unet-tiny", a, s) for a in ("random", "diversity") for s in ("0", "1")}
    assert len(rows) == 4 and {r["n_labeled"] for r in rows} == {"16"}
    assert list(rows[0])[:5] == ["model", "acquisition", "seed", "run", "round"]


def test_runs_share_evaluation_sets_and_per_seed_initial_sets(experiment):
    runs = experiment / "runs"
    caches = list((experiment / ".eval-cache").iterdir())
    assert len(caches) == 1  # one validation/test set for all four runs
    for seed in (0, 1):
        first = pq.read_table(runs / f"unet-tiny-random-s{seed}" / "pool").sort_by("sample_id")
        second = pq.read_table(runs / f"unet-tiny-diversity-s{seed}" / "pool").sort_by("sample_id")
        assert first.equals(second)  # same candidates for both functions of a seed
    rounds0 = {}
    for run in runs.iterdir():
        with (run / "rounds.csv").open() as handle:
            rounds0[run.name] = next(csv.DictReader(handle))["test_wmae"]
    # round 0 trains on the same initial set with the same seed: the same error for both functions
    assert rounds0["unet-tiny-random-s0"] == rounds0["unet-tiny-diversity-s0"]
    assert rounds0["unet-tiny-random-s0"] != rounds0["unet-tiny-random-s1"]


def test_report_and_figures(experiment):
    report = (experiment / "report.md").read_text()
    # one round: both functions trained on the same initial set with the same seed, so the same error
    assert "| unet-tiny | diversity | 16 | 2 | 1.00x [1.00, 1.00] | cannot tell | 1 |" in report
    assert "| model | acquisition | 16 labels |" in report
    assert "| unet-tiny | diversity | 2 | 1.00 [1.00, 1.00] | cannot tell | 1 |" in report  # paired with random
    assert (experiment / "learning_curve-unet-tiny.png").stat().st_size > 0


def test_the_grid_is_a_parent_mlflow_run_with_a_child_per_run(experiment):
    mlflow = pytest.importorskip("mlflow")
    store = mlflow.MlflowClient(tracking_uri=f"sqlite:///{experiment.parent / 'mlflow.db'}")
    parent_id = json.loads((experiment / "mlflow.json").read_text())["run_id"]
    parent = store.get_run(parent_id)
    assert parent.info.run_name == "out" and parent.info.status == "FINISHED"
    artifacts = {a.path for a in store.list_artifacts(parent_id)}
    assert {"report.md", "summary.csv", "learning_curve-unet-tiny.png"} <= artifacts
    children = store.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(c.info.run_name for c in children) == sorted(p.name for p in (experiment / "runs").iterdir())
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    assert all(c.data.metrics["n_labeled"] == 16 and "test_wmae" in c.data.metrics for c in children)
    assert store.get_experiment(parent.info.experiment_id).name == "tinyx"


def test_resume_keeps_finished_runs_and_report_rewrites(experiment, capsys):
    before = (experiment / "summary.csv").read_text()
    assert main(["--resume", str(experiment)]) == 0
    assert "4 runs already finished; 0 to go" in capsys.readouterr().err
    (experiment / "report.md").unlink()
    assert main(["--report", str(experiment)]) == 0
    assert (experiment / "report.md").exists() and (experiment / "summary.csv").read_text() == before


def test_bad_grids_fail_before_any_run(tmp_path):
    bad_model = {**TINY, "experiment": {**TINY["experiment"], "models": {"x": {"name": "nope"}}}}
    with pytest.raises(Exception, match="unknown model 'nope'"):
        main(["--config", write(tmp_path, bad_model), "--out", str(tmp_path / "a")])
    assert not (tmp_path / "a").exists()  # a mistake leaves no folder behind
    no_functions = {**TINY, "experiment": {**TINY["experiment"], "acquisitions": {}}}
    with pytest.raises(ConfigError, match="experiment.acquisitions is empty"):
        main(["--config", write(tmp_path, no_functions), "--out", str(tmp_path / "b")])
    bad_reference = {**TINY, "experiment": {**TINY["experiment"], "reference": "tod"}}
    result = run_command("-m", "raysurr.experiment", "--config", write(tmp_path, bad_reference))
    assert result.returncode == 2
    assert last_line(result.stderr) == (
        "raysurr.experiment: error: experiment.reference must be one of the acquisitions (random, diversity), got 'tod'"
    )


def test_the_reference_runs_on_past_the_others_to_its_own_budget():
    from raysurr.config import Config
    from raysurr.engine.experiment import check_reference_budget, plan

    grid = {**TINY, "pool": {**TINY["pool"], "size": 400},
            "loop": {"sizes": [16, 32, 64]}, "experiment": {**TINY["experiment"], "reference_budget": 200}}  # fmt: skip
    runs = plan(Config.from_dict(grid))
    assert runs[("unet-tiny", "random", 0)].loop.sizes == (16, 32, 64, 128, 200)  # on at the last ratio, to 200
    assert runs[("unet-tiny", "diversity", 0)].loop.sizes == (16, 32, 64)
    batches = {**TINY, "pool": {**TINY["pool"], "size": 400}, "loop": {"batch_size": 8, "rounds": 2},
               "experiment": {**TINY["experiment"], "reference_budget": 40}}  # fmt: skip
    reference = plan(Config.from_dict(batches))[("unet-tiny", "random", 1)].loop
    assert (reference.label_budget, reference.rounds) == (40, 4)  # 16 + 3 x 8 labels: 4 rounds
    with pytest.raises(ConfigError, match=r"experiment.reference_budget \(48\) .* past the others' last label count"):
        check_reference_budget(Config.from_dict({**grid, "experiment": {**grid["experiment"], "reference_budget": 48}}))


def test_a_plugin_simulators_grid_reports_its_own_regions_and_a_failing_run_stops_no_other(tmp_path):
    """The guide's plume plugin names its regions stack and air: the summary, the report and the figures take their
    columns from it (they used to ask for diffusion2d's source and field and stop the grid with a KeyError). A model
    that fails in training fails its own runs only: the others finish, and the command exits 2 naming the failed."""
    from tests.simulators.test_interface import documented_plugin

    (tmp_path / "my_simulators.py").write_text(documented_plugin())
    # Beside it, in the command's working directory (its driver actors import plugins from there); in its own
    # process: the plugins' simulator and model must not join this process's registries.
    (tmp_path / "failing_model.py").write_text((REPO / "tests" / "failing_model.py").read_text())
    grid = {**TINY, "name": "plumex", "plugins": ["my_simulators", "failing_model"],
            "simulator": {"name": "plume", "grid": 16}, "pool": {"size": 48, "initial": 8, "val": 8, "test": 8},
            "loop": {"batch_size": 8, "rounds": 2},
            "experiment": {**TINY["experiment"], "acquisitions": {"random": {}, "tod": {}}, "seeds": [0],
                           "models": {**TINY["experiment"]["models"], "broken": {"name": "fails_in_training"}}},
            }  # fmt: skip
    out = tmp_path / "out"
    result = run_command("-m", "raysurr.experiment", "--config", write(tmp_path, grid), "--out", str(out),
                         cwd=tmp_path, env={"PYTHONPATH": f"{tmp_path}:{REPO}"})  # fmt: skip
    assert result.returncode == 2, result.stderr
    (error,) = [line for line in result.stderr.splitlines() if "error:" in line]
    failed = re.fullmatch(r"raysurr.experiment: error: 2 runs failed \((.*)\); .* --resume .*", error)
    assert failed and sorted(failed.group(1).split(", ")) == ["broken-random-s0", "broken-tod-s0"], result.stderr
    with (out / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["run"] for r in rows} == {"unet-tiny-random-s0", "unet-tiny-tod-s0"}
    assert {"test_mae_stack", "test_mae_air"} <= set(rows[0]) and "test_mae_source" not in rows[0]
    assert len(rows) == 4 and (out / "learning_curve-unet-tiny.png").stat().st_size > 0
    assert "| unet-tiny | tod | 16 | 1 |" in (out / "report.md").read_text()
