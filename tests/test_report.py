"""The experiment report's arithmetic on hand-made learning curves."""

from __future__ import annotations

import math

import pytest

from raysurr.engine.report import error_at, labels_needed, savings, write_report


def rows_for(model: str, acquisition: str, seed: int, errors: list[float]) -> list[dict]:
    return [{"model": model, "acquisition": acquisition, "seed": seed, "n_labeled": 100 * (i + 1), "test_wmae": e,
             "test_mae_source": e / 10, "test_mae_field": e / 100, "test_wmae_skill_zero": 1 - e / 8,
             "test_wmae_skill_mean": 1 - e / 6} for i, e in enumerate(errors)]  # fmt: skip


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
