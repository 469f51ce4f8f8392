"""`python -m raysurr.tune` on a local Ray: ASHA stops weak trials, resume after SIGKILL, best.yaml drives a run."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from raysurr.commands.tune import main
from raysurr.config import Config, load_config
from raysurr.engine.sweep import check_space
from raysurr.errors import ConfigError
from tests.conftest import REPO, last_line, run_command

pytestmark = pytest.mark.timeout(600)

TINY = {
    "name": "tiny",
    "simulator": {"name": "diffusion2d", "grid": 32},
    "pool": {"size": 64, "initial": 16, "val": 16, "test": 16},
    "model": {"name": "unet", "base_channels": 2, "depth": 2},
    "training": {"epochs": 3, "lr": 3.0e-3, "batch_size": 8},
    "loop": {"batch_size": 8, "rounds": 1},
    "labeling": {"chunk_size": 8},
    "resources": {"cpus_per_train_worker": 1, "score_actors": 1},
    "sweep": {
        "trials": 1,
        "grace_period": 1,
        # Two good learning rates first, then two that cannot learn: run one at a time (as the resumed
        # sweep does), the weak ones reach the first rung after the good ones, so ASHA must stop them.
        # (One model family: an autoencoder after one epoch can score worse than an untrained U-Net.)
        "space": {"model.name": {"choice": ["unet"]}, "training.lr": {"grid": [1e-2, 3e-3, 1e-9, 1e-9]}},
    },
}


def write_config(folder: Path, **sweep) -> Path:
    data = {**TINY, "sweep": {**TINY["sweep"], **sweep}}
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def read_trials(folder: Path) -> list[dict[str, str]]:
    with (folder / "trials.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def resumed_sweep(tmp_path_factory):
    """A two_sizes sweep killed (SIGKILL, whole process tree) once a trial has checkpointed, then resumed."""
    root = tmp_path_factory.mktemp("tune")
    config, out = write_config(root, objective="two_sizes", max_concurrent=1), root / "sweep"
    env = {**os.environ, "RAYSURR_DASHBOARD": "0", "PYTHONPATH": str(REPO)}
    with (root / "first.err").open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "raysurr.tune", "--config", str(config), "--out", str(out)],
                                cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=err)  # fmt: skip
    deadline, killed = time.monotonic() + 300, False
    while time.monotonic() < deadline and proc.poll() is None:
        if any(out.glob("tune/*/checkpoint_*")):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = True
            break
        time.sleep(0.05)
    assert killed, (
        f"the sweep ended (or never checkpointed) before it could be killed: {(root / 'first.err').read_text()[-3000:]}"
    )
    assert not (out / "trials.csv").exists()
    result = run_command("-m", "raysurr.tune", "--resume", str(out), env={"PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_resumed_sweep_finishes_every_trial_and_asha_stops_the_weak(resumed_sweep):
    out, result = resumed_sweep
    rows = read_trials(out)
    assert len(rows) == 4
    assert {r["ended"] for r in rows} <= {"finished", "asha", "patience"}
    stopped = [r for r in rows if r["ended"] == "asha"]
    assert stopped and all(int(r["epochs"]) < 3 for r in stopped)
    assert any(r["ended"] == "finished" and int(r["epochs"]) == 3 for r in rows)
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores)  # best first
    for row in rows:  # two_sizes: the score is the geometric mean of the two sizes' errors
        small, large = float(row["val_wmae_small"]), float(row["val_wmae_large"])
        assert float(row["score"]) == pytest.approx((small * large) ** 0.5)
        assert float(row["gain"]) == pytest.approx(small / large)
    assert "training sizes [16, 32]" in result.stderr  # initial set and twice it
    reported = [int(line.split("_")[1].split()[0]) for line in result.stderr.splitlines() if " epoch " in line]
    assert reported == sorted(reported), "sweep.max_concurrent=1 ran trials side by side"
    assert "(4/4 trials ended)" in result.stderr
    assert (out / "sweep.png").stat().st_size > 0


def test_best_yaml_holds_the_winner_and_lays_over_a_run_config(resumed_sweep, tmp_path):
    """best.yaml laid over a run's config, as `raysurr drive --config run.yaml --config best.yaml` reads it (the
    resolved config printed by `raysurr config`, without running: the drive's own tests run such configs)."""
    out, _ = resumed_sweep
    best, winner = yaml.safe_load((out / "best.yaml").read_text()), read_trials(out)[0]
    assert set(best) == {"model", "training"}
    assert best["model"]["name"] == winner["model.name"]
    assert best["training"]["lr"] == pytest.approx(float(winner["training.lr"]))
    run_config = write_config(tmp_path)
    config = load_config([run_config, out / "best.yaml"])
    assert config.model.name == winner["model.name"] and config.pool.initial == 16  # the run's other sections stay
    result = run_command("-m", "raysurr", "config", "--config", str(run_config), "--config", str(out / "best.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = yaml.safe_load(result.stdout)
    assert {k: v for k, v in resolved["model"].items() if k in best["model"]} == best["model"]
    assert resolved["training"]["lr"] == best["training"]["lr"] and resolved["pool"]["initial"] == 16


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"model.name": {"choice": ["unet", "transformer9"]}}, "unknown model 'transformer9'"),
        ({"training.lr": {"loguniform": [1e-3, 1e-3]}}, "range [0.001, 0.001] is empty"),
        ({"model.base_channels": {"choice": []}}, "choice needs a non-empty list"),
        ({"model.dropout": {"uniform": [0.1, 1.5]}}, "a trial with model.name='unet', model.dropout=1.5 is invalid"),
        ({"model.kernel": {"choice": [3]}}, "unknown option 'kernel'"),
        ({"loop.rounds": {"choice": [3]}}, "must name a key of model or training"),
    ],
)
def test_bad_search_spaces_fail_before_any_trial(tmp_path, space, message):
    config = write_config(tmp_path, space=space)
    with pytest.raises(ConfigError) as error:
        main(["--config", str(config), "--out", str(tmp_path / "out")])
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists()  # a mistake leaves no folder behind


def test_a_sweep_refuses_the_physics_term(tmp_path):
    config = write_config(tmp_path, space={"training.lr": {"choice": [1e-3]}})
    with pytest.raises(ConfigError, match="learns from an active-learning run's unlabelled pool, which raysurr tune"):
        main(["--config", str(config), "--out", str(tmp_path / "out"), "--set", "training.physics_weight=1"])
    assert not (tmp_path / "out").exists()


def test_command_line_errors_are_one_line(tmp_path):
    config = write_config(tmp_path, space={"model.name": {"choice": ["nope"]}})
    result = run_command("-m", "raysurr.tune", "--config", str(config), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert last_line(result.stderr).startswith("raysurr.tune: error: sweep.space.model.name: unknown model 'nope'")
    result = run_command("-m", "raysurr.tune", "--resume", str(tmp_path / "missing"))
    assert result.returncode == 2 and "is not a sweep folder" in last_line(result.stderr)


def test_a_later_config_file_replaces_whole_sections(tmp_path):
    base, over = tmp_path / "base.yaml", tmp_path / "over.yaml"
    base.write_text(yaml.safe_dump({"model": {"name": "unet", "depth": 3}, "training": {"lr": 0.1, "epochs": 7}}))
    over.write_text(yaml.safe_dump({"model": {"name": "autoencoder", "base_channels": 4}}))
    config = load_config([base, over])
    assert config.model.to_dict() == {"name": "autoencoder", "base_channels": 4}  # no unet depth inherited
    assert config.training.lr == 0.1 and config.training.epochs == 7
    assert isinstance(config, Config)


@pytest.mark.parametrize("name", ["sweep-quick.yaml", "sweep-study.yaml"])
def test_shipped_sweep_spaces_pass_the_probe(name):
    config = load_config(REPO / "configs" / name)
    check_space(config)  # every model family at each end of every range builds and maps input to output shape
    assert config.sweep.objective == "two_sizes" and len(config.sweep.space) == 6


def test_a_sweep_trains_fourier_neural_operators_and_logs_each_trial_to_mlflow(ray_local, tmp_path):
    space = {"model.name": {"choice": ["fno"]}, "model.modes": {"choice": [2, 4]}, "training.lr": {"grid": [3e-3]}}
    config = write_config(tmp_path, space=space, objective="val", trials=2)
    assert main(["--config", str(config), "--out", str(tmp_path / "out"), "--set", "tracking.mlflow=true"]) == 0
    rows = read_trials(tmp_path / "out")
    assert len(rows) == 2 and {r["model.name"] for r in rows} == {"fno"}
    assert all(float(r["val_wmae"]) > 0 for r in rows)
    assert yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())["model"]["name"] == "fno"
    mlflow = pytest.importorskip("mlflow")  # Ray Tune's MLflow integration: a run per trial, its draws as parameters
    store = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = store.get_experiment_by_name("tiny")
    runs = store.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.params["model.modes"] for r in runs) == ["2", "4"]
    by_modes = {int(r["model.modes"]): float(r["val_wmae"]) for r in rows}
    for run in runs:  # the last epoch's result, as trials.csv has it
        assert run.data.metrics["val_wmae"] == pytest.approx(by_modes[int(run.data.params["model.modes"])])
    assert experiment.artifact_location.startswith((tmp_path / "mlartifacts").as_uri())
