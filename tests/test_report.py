"""The experiment report's arithmetic on hand-made learning curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raysurr.engine.report import (
    area_under_curve,
    bootstrap_interval,
    error_at,
    labels_needed,
    paired,
    savings,
    verdict,
    write_report,
)


def rows_for(model: str, acquisition: str, seed: int, errors: list[float]) -> list[dict]:
    return [{"model": model, "acquisition": acquisition, "seed": seed, "n_labeled": 100 * (i + 1), "test_wmae": e,
             "test_mae_source": e / 10, "test_mae_field": e / 100, "test_wmae_skill_zero": 1 - e / 8,
             "test_wmae_skill_mean": 1 - e / 6, "test_wmae_p95": 3 * e, "test_wmae_top10_share": 0.3}
            for i, e in enumerate(errors)]  # fmt: skip


ROWS = (
    rows_for("unet", "random", 0, [10, 8, 6, 5])  # full budget 400 labels, target 5
    + rows_for("unet", "random", 1, [10, 8, 7, 6])  # target 6
    + rows_for("unet", "tod", 0, [10, 6, 5, 4])  # reaches 5 at 300: saving 400/300
    + rows_for("unet", "tod", 1, [10, 6, 4, 3])  # reaches 6 at 200: saving 2
    + rows_for("unet", "entropy", 0, [10, 9, 8, 7])  # never reaches 5
    + rows_for("unet", "entropy", 1, [10, 9, 6, 6])  # reaches 6 at 300
)


def test_labels_needed_and_error_at_a_budget():
    run = rows_for("m", "a", 0, [10, 6, 5, 4])
    assert labels_needed(run, 5) == 300 and labels_needed(run, 3.9) is None
    noisy = rows_for("m", "a", 0, [10, 5, 7, 6])
    assert labels_needed(noisy, 5) == 200 and labels_needed(noisy, 6) == 200  # the best so far, not the last
    assert error_at(run, 250) == 6 and error_at(run, 400) == 4 and math.isnan(error_at(run, 50))
    assert math.isnan(error_at(run, 800))  # the run stopped at 400 labels: no error to report at 800


def test_savings_against_the_reference_per_seed():
    table = {item["acquisition"]: item for item in savings(ROWS, "random")}
    assert table["random"]["saving"] == (1.0, 0.0) and table["random"]["reached"] == 2
    mean, spread = table["tod"]["saving"]
    assert mean == pytest.approx((400 / 300 + 2) / 2) and spread == pytest.approx(math.dist([400 / 300], [2]) / 2**0.5)
    assert table["tod"]["labels_needed"][0] == pytest.approx(250)
    assert table["entropy"]["reached"] == 1 and table["entropy"]["seeds"] == 2
    assert table["entropy"]["saving"][0] == pytest.approx(400 / 300)


def test_report_and_figures_are_written(tmp_path):
    path = write_report(ROWS, tmp_path, "random", budgets=[200, 400])
    text = path.read_text()
    assert "| unet | tod | 2/2 | 250 ± 71 | 1.67 ± 0.47 |" in text
    assert "| unet | entropy | 1/2 | 300 ± 0 | 1.33 ± 0.00 |" in text
    assert "| unet | random | 8 ± 0 | 5.5 ± 0.7071 |" in text  # fixed budgets: mean ± std over seeds
    assert (tmp_path / "learning_curve-unet.png").stat().st_size > 0
    # final errors: random 5, 6; tod 4, 3; entropy 7, 6 -> skill vs zero 1 - e/8, vs the mean field 1 - e/6
    assert "| unet | tod | 0.56 ± 0.09 | 0.42 ± 0.12 | — | — |" in text
    assert "**Not better than a trivial model:** unet/entropy (wMAE vs mean field)." in text


def test_a_noisy_reference_saves_nothing_against_itself():
    """The old report had `random` needing 2.6-4x fewer labels than itself: a noisy curve dipped below its
    own final value early. On the best-so-far curve the reference's saving is 1 by construction."""
    rows = rows_for("unet", "random", 0, [10, 5, 7, 6]) + rows_for("unet", "random", 1, [9, 8, 4, 6])
    rows += rows_for("unet", "tod", 0, [5, 5, 5, 5]) + rows_for("unet", "tod", 1, [9, 4, 4, 4])
    table = {item["acquisition"]: item for item in savings(rows, "random")}
    assert table["random"]["saving"] == (1.0, 0.0)
    assert table["tod"]["saving"][0] == pytest.approx((200 / 100 + 300 / 200) / 2)  # targets 5 and 4


def test_area_under_the_curve_is_the_mean_error_over_log_labels():
    run = rows_for("m", "a", 0, [10, 8, 6, 5])
    x, y = np.log([100, 200, 300, 400]), np.array([10, 8, 6, 5])
    expected = sum((y[i] + y[i + 1]) / 2 * (x[i + 1] - x[i]) for i in range(3)) / (x[-1] - x[0])
    assert area_under_curve(run) == pytest.approx(expected)
    assert area_under_curve(rows_for("m", "a", 0, [7, 7, 7])) == pytest.approx(7)


def test_bootstrap_interval_and_verdicts():
    low, high = bootstrap_interval([-1.0, -3.0])
    assert (low, high) == (-3.0, -1.0)  # resampled means of two values: -3, -2 or -1
    rng = np.random.default_rng(0)
    values = rng.normal(0.5, 1.0, size=40)
    low, high = bootstrap_interval(values)
    half = 1.96 * values.std(ddof=1) / np.sqrt(40)  # the normal approximation, for a sample this size
    assert low == pytest.approx(values.mean() - half, abs=0.1) and high == pytest.approx(values.mean() + half, abs=0.1)
    assert (
        verdict((-3.0, -1.0)) == "lower" and verdict((0.5, 2.0)) == "higher" and verdict((-1.0, 1.0)) == "cannot tell"
    )
    assert verdict(bootstrap_interval([1.0])) == "too few seeds"


def test_paired_differences_per_seed():
    table = {item["acquisition"]: item for item in paired(ROWS, "random")}
    assert set(table) == {"tod", "entropy"}
    mean, interval = table["tod"]["final"]  # 4 - 5 and 3 - 6
    assert mean == -2 and interval == (-3.0, -1.0) and verdict(interval) == "lower"
    assert table["tod"]["relative"] == pytest.approx((-1 / 5 - 3 / 6) / 2)
    mean, interval = table["entropy"]["final"]  # 7 - 5 and 6 - 6
    assert mean == 1 and verdict(interval) == "cannot tell"
    area = table["tod"]["area"][0]
    expected = np.mean([area_under_curve(rows_for("u", "t", 0, a)) - area_under_curve(rows_for("u", "r", 0, b))
                        for a, b in [([10, 6, 5, 4], [10, 8, 6, 5]), ([10, 6, 4, 3], [10, 8, 7, 6])]])  # fmt: skip
    assert area == pytest.approx(expected)


def test_report_flags_errors_that_leave_acquisition_nothing_to_find(tmp_path):
    even = [dict(row, test_wmae_top10_share=0.12) for row in ROWS]
    text = write_report(even, tmp_path, "random", budgets=[400]).read_text()
    assert "unet: `random`'s final errors are nearly even over the test samples (the worst 10% hold 12%" in text
    text = write_report(ROWS, tmp_path, "random", budgets=[400]).read_text()
    assert "nearly even" not in text and "| unet | tod | 10.5 ± 2.121 | 0.30 ± 0.00 |" in text
    assert "| unet | tod | 2 | -2 [-3, -1] | -35% | lower |" in text
