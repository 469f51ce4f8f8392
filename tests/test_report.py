"""The experiment report's arithmetic on hand-made learning curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raysurr.engine.report import Report, area_under_curve, error_at, region_metrics, saving, write_report


def rows_for(model: str, acquisition: str, seed: int, errors: list[float], start: int = 100,
             regions: tuple[str, str] = ("source", "field")) -> list[dict]:  # fmt: skip
    """A run whose labels double from `start`, with these test weighted MAEs."""
    return [{"model": model, "acquisition": acquisition, "seed": seed, "n_labeled": start * 2**i, "test_wmae": e,
             f"test_mae_{regions[0]}": e / 10, f"test_mae_{regions[1]}": e / 100, "test_wmae_skill_zero": 1 - e / 8,
             "test_wmae_skill_mean": 1 - e / 6, "test_wmae_p95": 3 * e, "test_wmae_top10_share": 0.3}
            for i, e in enumerate(errors)]  # fmt: skip


# random: error 8 * (n / 100)^-1 up to 800 labels; tod needs 1.8x fewer labels from 200 on (its error at n is random's
# at 1.8n); entropy is random's twin.
def study(seeds: int = 6, noise: float = 0.02) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(seeds):
        jitter = lambda values: [v * math.exp(rng.normal(0, noise)) for v in values]  # noqa: E731
        rows += rows_for("unet", "random", seed, jitter([8, 4, 2, 1]))
        rows += rows_for("unet", "tod", seed, [8, *jitter([8 / 3.6, 8 / 7.2])])
        rows += rows_for("unet", "entropy", seed, [8, *jitter([4, 2])])
    return rows


def test_a_saving_is_read_off_the_references_curve_of_the_same_seed():
    reference = rows_for("m", "random", 0, [8, 4, 2, 1])
    run = rows_for("m", "tod", 0, [8, 2.8284, 1.5])
    assert saving(run, reference, 200) == (pytest.approx(math.sqrt(2), rel=1e-4), None)  # random: 283 labels for 2.83
    assert saving(run, reference, 400)[0] == pytest.approx(4 / 3)  # 1.5 lies between 400 (2) and 800 (1): 533 labels
    beyond = rows_for("m", "tod", 0, [8, 2, 0.5])
    assert saving(beyond, reference, 400) == (2.0, "beyond")  # below random's whole curve: a bound, not a value
    assert math.isnan(saving(run, reference, 800)[0])  # the run never had 800 labels


def test_savings_have_intervals_and_verdicts_that_hold_at_the_seeds_given():
    report = Report(study(), "random")
    final = report.savings()
    tod, entropy = final[("unet", "tod")], final[("unet", "entropy")]
    assert math.exp(tod["mean"]) == pytest.approx(1.8, rel=0.05) and tod["low"] > 0  # saves 1.8x, interval above 1
    assert tod["seeds"] == 6 and tod["level"] == pytest.approx(1 - 0.05 / 2)  # two functions compared
    assert abs(entropy["mean"]) < 0.1 and entropy["low"] < 0 < entropy["high"]  # cannot tell
    assert tod["p_holm"] == pytest.approx(2 * 2 / 64)  # exact sign-flip floor at 6 seeds, Holm over 2
    assert report.finals == {"unet": 400}  # random goes on to 800; the others stop at 400


def test_the_report_says_cannot_tell_where_the_corrected_interval_holds_no_difference(tmp_path):
    text = write_report(study(), tmp_path, "random").read_text()
    assert "| unet | tod | 400 | 6 | 1.8" in text and "| saves |" in text
    entropy = next(line for line in text.splitlines() if line.startswith("| unet | entropy | 400 | 6 |"))
    assert "cannot tell" in entropy
    assert (tmp_path / "learning_curve-unet.png").stat().st_size > 0
    few = write_report(study(seeds=1), tmp_path, "random").read_text()
    assert "too few seeds" in few


def test_the_oracle_share_is_on_a_log_scale(tmp_path):
    rows = study()
    rng = np.random.default_rng(1)
    for seed in range(6):  # the oracle saves 2.83x: tod (1.8x) has log(1.8) / log(2.83) of its room
        rows += rows_for("unet", "oracle", seed, [8] + [e * math.exp(rng.normal(0, 0.01)) for e in (1.414, 0.707)])
    table = Report(rows, "random", bound="oracle").savings(200)
    share = table[("unet", "tod")]["mean"] / table[("unet", "oracle")]["mean"]
    assert share == pytest.approx(math.log(1.8) / math.log(2.828), abs=0.05)
    text = write_report(rows, tmp_path, "random", bound="oracle").read_text()
    assert "share of oracle" in text and f"| {share:.0%} |" in text


def test_no_share_of_an_oracle_that_shows_no_room(tmp_path):
    """An oracle whose saving is not told apart from none (here ~1.02x on average, its interval holding 1x) gives no
    share: log(1.8) / log(1.02) would only magnify noise."""
    rows = study()
    for seed in range(6):  # errors 15% below or 12% above random's in turn
        factor = (0.85, 1.12)[seed % 2]
        rows += rows_for("unet", "oracle", seed, [8, 4 * factor, 2 * factor])
    table = Report(rows, "random", bound="oracle").savings(200)
    assert table[("unet", "oracle")]["mean"] > 0 and table[("unet", "oracle")]["low"] < 0
    text = write_report(rows, tmp_path, "random", bound="oracle").read_text()
    savings = text[text.index("## Label savings") : text.index("## Paired")]
    shares = [line.split("|")[-2].strip() for line in savings.splitlines() if line.startswith("| unet | tod |")]
    assert shares and set(shares) == {"—"}


def test_paired_ratios_and_areas_per_seed():
    report = Report(study(noise=0.0), "random")
    ratio = report.differences("test_wmae")[("unet", "tod")]
    assert math.exp(ratio["mean"]) == pytest.approx(1 / 1.8) and not math.isnan(ratio["low"])
    area = report.areas()[("unet", "tod")]
    tod, random = rows_for("u", "t", 0, [8, 8 / 3.6, 8 / 7.2]), rows_for("u", "r", 0, [8, 4, 2, 1])
    assert area["mean"] == pytest.approx(area_under_curve(tod) - area_under_curve(random, up_to=400))


def test_area_under_the_curve_is_the_mean_log_error_over_log_labels():
    run = rows_for("m", "a", 0, [10, 8, 6, 5])
    x, y = np.log([100, 200, 400, 800]), np.log([10, 8, 6, 5])
    expected = sum((y[i] + y[i + 1]) / 2 * (x[i + 1] - x[i]) for i in range(3)) / (x[-1] - x[0])
    assert area_under_curve(run) == pytest.approx(expected)
    assert area_under_curve(rows_for("m", "a", 0, [7, 7, 7])) == pytest.approx(math.log(7))


def test_error_at_a_budget():
    run = rows_for("m", "a", 0, [10, 6, 5, 4])
    assert error_at(run, 250) == 6 and error_at(run, 800) == 4 and math.isnan(error_at(run, 50))
    assert math.isnan(error_at(run, 1600))  # the run stopped at 800 labels: no error to report at 1600


def test_a_simulator_with_its_own_regions_gets_its_own_columns(tmp_path):
    rows = [row for seed in range(2) for acquisition in ("random", "tod")
            for row in rows_for("unet", acquisition, seed, [8, 4, 2], regions=("stack", "air"))]  # fmt: skip
    assert list(region_metrics(rows)) == ["test_wmae", "test_wmae_p95", "test_mae_stack", "test_mae_air"]
    assert write_report(rows, tmp_path, "random").stat().st_size > 0


def test_report_flags_errors_that_leave_acquisition_nothing_to_find(tmp_path):
    even = [dict(row, test_wmae_top10_share=0.12) for row in study()]
    text = write_report(even, tmp_path, "random").read_text()
    assert "unet: `random`'s final errors are nearly even over the test samples (the worst 10% hold 12%" in text
    assert "nearly even" not in write_report(study(), tmp_path, "random").read_text()


def test_skill_and_trivial_models(tmp_path):
    rows = study(noise=0.0)
    text = write_report(rows, tmp_path, "random").read_text()
    # at the final budget (400) errors: random 2, tod 1.11, entropy 2 -> skill vs zero 1 - e/8, vs the mean 1 - e/6
    assert "| unet | tod | 0.86 ± 0.00 | 0.81 ± 0.00 | — | — |" in text
    worse = [dict(row, test_wmae_skill_mean=-0.1) if row["acquisition"] == "entropy" else row for row in rows]
    assert "**Not better than a trivial model:** unet/entropy (wMAE vs mean field)." in write_report(
        worse, tmp_path, "random").read_text()  # fmt: skip
