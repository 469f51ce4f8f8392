"""The labelling service on a local Ray, with simulators that misbehave on chosen ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from raysurr.config import LabelingConfig, ResourcesConfig, SimulatorConfig
from raysurr.data.labels import LabelStore
from raysurr.distributed.labeling import Labeler
from raysurr.errors import SimulationError
from tests.conftest import REPO

pytestmark = pytest.mark.timeout(240)

PLUGINS = ("tests.labeling_sims",)
RESOURCES = ResourcesConfig(simulators=2)


def misbehaving(**options) -> SimulatorConfig:
    return SimulatorConfig(name="misbehaving", options=options)


def stored(store: LabelStore) -> tuple[list[int], dict[int, str]]:
    ids = store.labels.read(["sample_id"]).column(0).to_pylist() if store.labels.parts() else []
    failures = store.read_failures().to_pylist()
    return ids, {row["sample_id"]: row["reason"] for row in failures}


def test_every_good_id_once_every_bad_id_recorded(ray_local, tmp_path):
    ids = np.arange(40)
    bad = {"raise_on": [3, 17], "nan_on": [5, 22], "hang_on": [9], "die_on": [13, 30]}
    config = LabelingConfig(chunk_size=8, timeout_s=4.0, retries={"exception": 0, "timeout": 0, "crash": 1},
                            backoff_s=0.1)  # room for a loaded machine # fmt: skip
    labeler = Labeler(misbehaving(**bad), PLUGINS, config, RESOURCES)
    store = LabelStore(tmp_path / "labels", tmp_path / "failures")
    counts = labeler.label(ids, ids[:, None].astype(float), store)
    labeler.close()
    labeled, failures = stored(store)
    expected_bad = {3: "exception", 17: "exception", 5: "non_finite", 22: "non_finite", 9: "timeout",
                    13: "crash", 30: "crash"}  # fmt: skip
    assert failures == expected_bad
    assert sorted(labeled) == sorted(set(range(40)) - set(expected_bad))  # each good id exactly once
    assert {k: counts[k] for k in ("labeled", "failed", "skipped")} == {"labeled": 33, "failed": 7, "skipped": 0}
    # Each crashing id was retried once (its record's second attempt) and nothing else failed for good. On a loaded
    # machine an innocent sample sometimes gets one crash retry as well (retried 3 or 4, now and then in full runs).
    attempts = {row["sample_id"]: row["attempts"] for row in store.read_failures().to_pylist()}
    assert attempts[13] == attempts[30] == 2 and counts["retried"] >= 2
    assert labeler.replaced >= 3  # the hung actor and each crash


def test_failure_records_carry_provenance(ray_local, tmp_path):
    labeler = Labeler(misbehaving(raise_on=[1]), PLUGINS, LabelingConfig(chunk_size=4), RESOURCES)
    store = LabelStore(tmp_path / "l", tmp_path / "f")
    labeler.label(np.arange(4), np.arange(4.0)[:, None], store)
    labeler.close()
    (record,) = store.read_failures().to_pylist()
    assert record["reason"] == "exception" and record["error_type"] == "RuntimeError"
    assert record["message"] == "cannot simulate x=1" and record["node"] and record["actor"]
    table = store.labels.read()
    assert set(table.column_names) >= {"fidelity", "wall_s", "attempts", "node", "actor", "labeled_at"}
    values = table.sort_by("sample_id").column("target").combine_chunks().to_numpy_ndarray()
    assert [float(v.max()) for v in values] == [0.0, 2.0, 3.0]


def test_restart_over_a_half_written_store_simulates_nothing_stored(ray_local, tmp_path):
    ids = np.arange(24)
    params = ids[:, None].astype(float)
    store = LabelStore(tmp_path / "labels", tmp_path / "failures")
    first = Labeler(misbehaving(), PLUGINS, LabelingConfig(chunk_size=4), RESOURCES)
    first.label(ids[:12], params[:12], store)
    first.close()
    (tmp_path / "labels" / ".part-000099.parquet.dead.tmp").write_bytes(b"interrupted write")
    # The second labeller's simulator kills its process on every id the store holds already:
    # any re-simulation would show up as a crash record.
    second = Labeler(misbehaving(die_on=list(range(12))), PLUGINS, LabelingConfig(chunk_size=4), RESOURCES)
    counts = second.label(ids, params, store)
    second.close()
    labeled, failures = stored(store)
    assert counts == {"labeled": 12, "failed": 0, "skipped": 12, "retried": 0}
    assert failures == {} and sorted(labeled) == list(range(24))
    assert second.replaced == 0
    assert all(pq.read_table(p).num_rows for p in store.labels.parts())


def test_simulator_that_cannot_be_built_fails_fast(ray_local):
    with pytest.raises(SimulationError, match="simulator actors could not start: .*unknown option 'bogus'"):
        Labeler(misbehaving(bogus=1), PLUGINS, LabelingConfig(), RESOURCES)


def test_transient_failures_are_retried_until_they_succeed(ray_local, tmp_path):
    """Samples that raise on their first two runs are labelled on the third; deterministic ones are not retried."""
    flaky = [2, 7, 11]
    sim = misbehaving(flaky_on=flaky, flaky_times=2, flaky_dir=str(tmp_path), nan_on=[5], raise_on=[9])
    config = LabelingConfig(chunk_size=4, retries={"exception": 2}, backoff_s=0.05)
    labeler = Labeler(sim, PLUGINS, config, RESOURCES)
    store = LabelStore(tmp_path / "labels", tmp_path / "failures")
    counts = labeler.label(np.arange(16), np.arange(16.0)[:, None], store)
    labeler.close()
    labeled, failures = stored(store)
    assert failures == {5: "non_finite", 9: "exception"}
    assert sorted(labeled) == sorted(set(range(16)) - {5, 9})
    table = store.labels.read().sort_by("sample_id").to_pydict()
    attempts = dict(zip(table["sample_id"], table["attempts"], strict=True))
    # 2 and 7 fail in their chunk and alone, then succeed on the first retry; 11 never ran in its chunk
    # (9 raised first), so it needs two retries. Samples beside them ran twice; a clean chunk once.
    assert {i: attempts[i] for i in flaky} == {2: 3, 7: 3, 11: 4}
    assert attempts[0] == attempts[4] == attempts[8] == 2 and attempts[12] == 1
    (record,) = [r for r in store.read_failures().to_pylist() if r["sample_id"] == 9]
    assert record["attempts"] == 4  # its chunk, alone, and two retries
    assert counts["retried"] == 1 + 1 + 2 + 2


def test_timeouts_and_crashes_are_retried_and_recorded_where_they_happened(ray_local, tmp_path):
    sim = misbehaving(hang_on=[3], die_on=[6])
    config = LabelingConfig(chunk_size=8, timeout_s=4.0, retries={"timeout": 1, "crash": 2}, backoff_s=0.05)
    labeler = Labeler(sim, PLUGINS, config, RESOURCES)
    store = LabelStore(tmp_path / "labels", tmp_path / "failures")
    counts = labeler.label(np.arange(8), np.arange(8.0)[:, None], store)
    labeler.close()
    records = {r["sample_id"]: r for r in store.read_failures().to_pylist()}
    assert {i: r["reason"] for i, r in records.items()} == {3: "timeout", 6: "crash"}
    assert records[3]["attempts"] == 2 and records[6]["attempts"] == 3  # one and two retries
    assert all(r["node"] and r["actor"] for r in records.values())
    # With a timeout each call holds one sample: the hang cost one timeout, not a chunk of eight's worth.
    assert records[3]["wall_s"] < 3 * config.timeout_s
    assert counts["labeled"] == 6 and counts["retried"] >= 3  # more if a loaded machine slows a good sample past 4 s


def test_fault_injection_suite_loses_and_duplicates_nothing():
    """benchmarks/faults.py --quick: raising, NaN, Inf, hanging, dying and flaky samples on a fresh local Ray."""
    result = subprocess.run([sys.executable, "benchmarks/faults.py", "--quick"], cwd=REPO, capture_output=True,
                            text=True, timeout=280, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    per_fault = {r["fault"]: r for r in records if r["bench"] == "faults"}
    (total,) = [r for r in records if r["bench"] == "faults_total"]
    assert total["lost"] == 0 and total["duplicated"] == 0
    assert total["labelled"] + total["failed"] == total["samples"]
    assert (
        per_fault["flaky"]["labelled"] == per_fault["flaky"]["retried_and_recovered"] == per_fault["flaky"]["injected"]
    )
    assert all(r["wrong_reason"] == 0 for r in per_fault.values())
    assert all(r["failed"] == r["injected"] for kind, r in per_fault.items() if kind != "flaky")
