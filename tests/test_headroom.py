"""`raysurr headroom` end to end on a local Ray: the paired random/oracle runs, headroom.json, the oracle's picks."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

import raysurr
from raysurr.commands import run_command
from raysurr.commands.headroom import main
from raysurr.config import Config
from raysurr.engine.headroom import default_sizes, plan, verdict
from raysurr.errors import ConfigError
from raysurr.models.losses import per_sample_weighted_mae
from raysurr.simulators import build_simulator

pytestmark = pytest.mark.timeout(600)

TINY = {"name": "tiny", "simulator": {"name": "diffusion2d", "grid": 16, "radius": 2},
        "pool": {"size": 200, "initial": 10, "val": 20, "test": 30},
        "model": {"name": "unet", "base_channels": 4, "depth": 2, "dropout": 0.0},
        "training": {"epochs": 4, "lr": 3.0e-3, "batch_size": 8, "schedule": "cosine"},
        "loop": {"label_budget": 96}, "labeling": {"chunk_size": 16},
        "resources": {"train_workers": 1, "cpus_per_train_worker": 1, "score_actors": 1, "simulators": 1}}  # fmt: skip


@pytest.fixture(scope="module")
def measured(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("headroom")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    out = root / "out"
    # the k-centre oracle, whose picks the test below can check exactly (the default samples in proportion)
    assert main(["--config", str(root / "tiny.yaml"), "--out", str(out), "--oracle", "{name: oracle}"]) == 0
    return out


def test_headroom_json_holds_the_curve_the_ceiling_and_the_oracles_saving(measured):
    result = json.loads((measured / "headroom.json").read_text())
    assert result["sizes"] == [12, 24, 48]  # 1/8, 1/4 and 1/2 of the label budget
    assert set(result["random_wmae"]) == {"12", "24", "48"} and all(v > 0 for v in result["random_wmae"].values())
    for key in ("alpha", "worst10_share", "worst20_share", "oracle_saving", "oracle_p95_ratio"):
        assert isinstance(result[key], float), key
    assert 0.1 <= result["worst10_share"] <= result["worst20_share"] <= 1
    assert math.isnan(result["ceiling"]) or result["ceiling"] >= 1  # no allocation does worse than uniform
    assert result["verdict"] == verdict(result) and result["verdict"] in (measured / "headroom.md").read_text()
    assert (measured / "report.md").exists() and (measured / "summary.csv").exists()


def test_the_oracle_selected_among_the_largest_true_errors_of_its_model(measured):
    """Round 0's oracle picks (k-centre among the 4k worst) against the true errors computed here."""
    run = measured / "runs" / "unet-oracle-s0"
    config = Config.from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    simulator = build_simulator(config.simulator)
    table = pq.read_table(run / "pool").sort_by("sample_id")
    ids = table.column("sample_id").to_numpy()
    params = np.column_stack([table.column(name).to_numpy() for name in simulator.parameter_names])
    selections = json.loads((run / "state.json").read_text())["selections"]
    free = ~np.isin(ids, selections[0])
    model = raysurr.load_surrogate(run / "checkpoints" / "round_000")
    with torch.no_grad():
        pred = model(torch.tensor(simulator.render(params[free])))
        errors = per_sample_weighted_mae(pred, torch.tensor(simulator.simulate(params[free]).outputs)).numpy()
    shortlist = set(ids[free][np.argsort(-errors)[: 4 * len(selections[1])]].tolist())
    assert len(selections[1]) == 12 and set(selections[1]) <= shortlist
    assert np.mean(errors[np.isin(ids[free], selections[1])]) > np.mean(errors)  # worse than a random pick
    for name in ("random", "oracle"):  # every round's per-sample errors beside its checkpoint
        assert (measured / "runs" / f"unet-{name}-s0" / "checkpoints" / "round_002" / "errors.csv").exists()


def test_bad_sizes_and_pools_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    for sizes, message in (("12,6,24", "--sizes must be 3 or more increasing label counts, got [12, 6, 24]"),
                           ("10,20,300", "the largest size (300) must be below pool.size (200)"),
                           ("a,b", "is not a comma-separated list of label counts")):  # fmt: skip
        status = run_command("headroom", ["--config", str(tmp_path / "tiny.yaml"), "--sizes", sizes,
                                          "--out", str(tmp_path / "out")])  # fmt: skip
        err = capsys.readouterr().err
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_the_default_oracle_samples_in_proportion_to_the_true_error():
    from raysurr.acquisition import build_acquisition
    from raysurr.commands.headroom import ORACLE

    oracle = build_acquisition(ORACLE)
    assert oracle.needs.truth and type(oracle).__name__ == "StochasticBatch" and oracle.beta == 1.0


def test_default_sizes_and_the_plan():
    config = Config.from_dict(TINY)
    assert default_sizes(config) == (12, 24, 48)
    planned = plan(config, (12, 24, 48), seeds=3, oracle={"name": "oracle"})
    assert planned.loop.sizes == (12, 24, 48) and planned.pool.initial == 12 and planned.training.reinit
    assert planned.experiment.seeds == (0, 1, 2) and list(planned.experiment.acquisitions) == ["random", "oracle"]
    with pytest.raises(ConfigError, match="too small to measure a learning curve"):
        default_sizes(Config.from_dict({**TINY, "loop": {"label_budget": 4}}))
