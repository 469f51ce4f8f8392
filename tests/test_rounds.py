"""Round records, the run state that holds them, and the metric names that come from the simulator."""

from __future__ import annotations

import csv
import json
import math

import pytest

from raysurr.engine.rounds import RoundRecord, kept_metrics, round_columns, write_rounds
from raysurr.engine.run_folder import STATE_VERSION, RunFolder, RunState
from raysurr.errors import StoreError
from raysurr.models.losses import SKILLS, error_metrics

REGIONS = ("plume", "background")  # a user's simulator names its own regions


def evaluation(wmae: float, zero_skill: float) -> dict[str, float]:
    """What `evaluate` returns: error metrics, the trivial models' errors, skills and n."""
    errors = dict(zip(error_metrics(REGIONS), (wmae, 0.1, 0.3, 0.01), strict=True))
    skills = dict(zip(SKILLS, (zero_skill, 0.5, 0.4, 0.3), strict=True))
    spread = {"wmae_p95": 3 * wmae, "wmae_top10_share": 0.25}
    return {**errors, **skills, **spread, "wmae_zero": 9.0, "mae_all_mean": 0.2, "n": 20}


def record(round_idx: int, wmae: float = 2.0, zero_skill: float = 0.7) -> RoundRecord:
    return RoundRecord(round_idx, 10 * (round_idx + 1), 1, label_s=1.0, train_s=2.0, eval_s=0.5, score_s=0.25,
                       val_wmae=wmae * 1.1, test=kept_metrics(evaluation(wmae, zero_skill), REGIONS))  # fmt: skip


def test_rounds_csv_has_the_simulators_region_names_and_every_round(tmp_path):
    columns = round_columns(REGIONS)
    assert {"test_mae_plume", "test_mae_background"} <= set(columns) and not any("source" in c for c in columns)
    assert round_columns(("source", "field"))[5:8] == ["test_mae_all", "test_mae_source", "test_mae_field"]
    write_rounds(tmp_path / "rounds.csv", [record(0, 3.0), record(1, 2.0)], REGIONS)
    with (tmp_path / "rounds.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == columns and len(rows) == 2
    assert float(rows[1]["test_wmae"]) == 2.0 and float(rows[1]["test_mae_plume"]) == 0.3
    assert float(rows[0]["round_s"]) == pytest.approx(3.75)  # the phases' sum
    assert "wmae_zero" not in rows[0] and "test_n" not in rows[0]  # only what a round keeps


def test_the_summary_line_names_the_regions_and_flags_a_model_worse_than_zero():
    line = record(1, 2.0).summary(REGIONS)
    assert "plume 0.3" in line and "background 0.01" in line and "WORSE" not in line
    assert "WORSE than predicting zero" in record(1, 2.0, zero_skill=-0.2).summary(REGIONS)


def test_state_round_trips_its_records_and_selections(tmp_path):
    state = RunState()
    state.select(0, [3, 1, 2])
    state.record = record(0)
    state.phase = "score"
    state.finish_round()
    state.select(1, [7])
    state.save(tmp_path / "state.json")
    again = RunState.load(tmp_path / "state.json")
    assert again.records == [record(0)] and again.record is None and again.round == 1
    assert again.selections == [[3, 1, 2], [7]] and again.selected_in() == {3: 0, 1: 0, 2: 0, 7: 1}
    again.reopen()  # a finished run resumed further scores its last round again: that round's selection is redone
    again.finish_round()
    again.select(1, [8, 9])
    assert again.selections == [[3, 1, 2], [8, 9]]


def test_a_state_from_another_version_is_refused_in_one_line(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": STATE_VERSION - 1, "round": 0, "phase": "label", "rows": []}))
    with pytest.raises(StoreError, match=rf"has state version {STATE_VERSION - 1}; this raysurr reads {STATE_VERSION}"):
        RunFolder(tmp_path).read_state()


def test_an_unknown_metric_is_nan_in_the_summary_not_an_error():
    bare = RoundRecord(0, 5, 0)
    assert math.isnan(bare.test_wmae) and "test wMAE nan" in bare.summary(REGIONS)
