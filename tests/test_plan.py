"""A run's plan, told before any work, and the refusal of a plugin's run at the study's full default scale."""

from __future__ import annotations

import sys

import pytest
import yaml

from raysurr.commands import run_command
from raysurr.config import Config, load_config
from raysurr.engine.plan import check_scale, duration, plan_of
from raysurr.engine.rounds import RoundRecord
from raysurr.errors import ConfigError
from tests.simulators.test_interface import documented_plugin


def test_the_plan_counts_every_simulator_run():
    config = Config.from_dict({"pool": {"size": 1500, "initial": 50, "val": 150, "test": 150},
                               "loop": {"batch_size": 200, "rounds": 3}, "training": {"epochs": 8}})  # fmt: skip
    plan = plan_of(config)
    assert (plan.labels, plan.rounds, plan.simulator_runs) == (450, 3, 750)
    assert plan.line().startswith("plan: 450 labels (50 initial + 200 a round x 2 rounds) + 150 validation + 150 test "
                                  "= 750 simulator runs; 3 rounds of 8 epochs (unet), each from scratch")  # fmt: skip
    loop = {"batch_size": 200, "label_budget": 300}
    budget = plan_of(Config.from_dict({"pool": {"size": 1500, "initial": 50}, "loop": loop}))
    assert budget.added == (200, 50)  # the budget cuts the last round
    sizes = plan_of(Config.from_dict({"pool": {"initial": 125}, "loop": {"sizes": [125, 250, 500]},
                                      "acquisition": {"name": "oracle"}}))  # fmt: skip
    assert sizes.added == (125, 250) and sizes.hindsight == (16000 - 125) + (16000 - 250)  # the oracle's scoring


def test_the_time_left_scales_training_with_the_steps_of_each_round():
    plan = plan_of(Config.from_dict({"pool": {"initial": 100}, "loop": {"sizes": [100, 200, 400]},
                                     "training": {"epochs": 10, "batch_size": 10}}))  # fmt: skip
    first = RoundRecord(0, 100, 0, label_s=10.0, train_s=100.0, eval_s=1.0, score_s=2.0)
    # labels: 0.1 s each; training: 100 s for 100 steps -> 200 and 400 steps; eval + score 3 s a round
    assert plan.seconds_left(first, batch_size=10) == pytest.approx((10 + 200 + 3) + (20 + 400 + 3))
    assert duration(42) == "42 s" and duration(3600) == "60 min"


@pytest.fixture
def plume(tmp_path, monkeypatch):
    (tmp_path / "my_simulators.py").write_text(documented_plugin())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("my_simulators", None)


def test_a_plugins_run_at_default_sizes_is_refused_naming_the_keys(plume, capsys):
    (plume / "big.yaml").write_text(yaml.safe_dump({"plugins": ["my_simulators"], "simulator": {"name": "plume"},
                                                    "pool": {"size": 3000}}))  # fmt: skip
    status = run_command("drive", ["--config", str(plume / "big.yaml"), "--run-dir", str(plume / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and not (plume / "run").exists(), err
    assert (
        "this run would call simulator 'plume' 11,000 times at default sizes (the study's full scale); set "
        "pool.initial, pool.val, pool.test, loop.batch_size, loop.rounds"
    ) in err[0]  # not pool.size: it was set
    big = load_config(overrides=["plugins=[my_simulators]", "simulator.name=plume"])
    with pytest.raises(ConfigError, match="'plume' 23,000 times"):
        check_scale(big, given={"simulator.name", "plugins"})
    check_scale(big, given={"pool.size", "pool.initial", "pool.val", "pool.test", "loop.batch_size", "loop.rounds"})
    check_scale(Config(), given=set())  # the built-in problem's defaults are a choice, not an accident
