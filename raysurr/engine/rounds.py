"""One round's numbers as one type: what `state.json` keeps per round and `rounds.csv` shows per row.

The metric names come from `raysurr.models.losses` (`error_metrics`, `SKILLS`, `SPREAD`); the region names in
them from the simulator (`AbstractSimulator.regions`: diffusion2d's are source and field).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raysurr.data.store import write_text
from raysurr.models.losses import SKILLS, SPREAD, error_metrics

TIMINGS = ("label_s", "train_s", "score_s", "eval_s", "round_s", "elapsed_s", "utilisation")


def round_columns(regions: Sequence[str]) -> list[str]:
    """rounds.csv's columns for a simulator with these region names."""
    test = [f"test_{name}" for name in (*error_metrics(regions), *SKILLS, *SPREAD)]
    return ["round", "n_labeled", "n_failed", "val_wmae", *test, *TIMINGS, "random_fallback"]


@dataclass
class RoundRecord:
    """A round (async: a checkpoint): the labels its model trained on, its errors, each phase's seconds."""

    round: int
    n_labeled: int
    n_failed: int
    label_s: float = 0.0
    train_s: float = 0.0
    eval_s: float = 0.0
    score_s: float = 0.0
    val_wmae: float = math.nan
    test: dict[str, float] = field(default_factory=dict)  # the test set's error metrics and skills, by name
    elapsed_s: float | None = None  # the loop's wall time when the row was finished
    utilisation: float | None = None  # busy fraction of the simulator pool since the previous row
    busy_s: float = 0.0  # actor-seconds the mean simulator actor was busy labelling for this round
    random_fallback: bool = False  # the model's selection was made at random: its scores were all the same

    @property
    def round_s(self) -> float:
        return self.label_s + self.train_s + self.eval_s + self.score_s

    @property
    def test_wmae(self) -> float:
        return self.test.get("wmae", math.nan)

    def row(self) -> dict[str, Any]:
        """The rounds.csv row: `test_` before each test metric."""
        timings = {"label_s": self.label_s, "train_s": self.train_s, "score_s": self.score_s, "eval_s": self.eval_s,
                   "round_s": self.round_s, "elapsed_s": self.elapsed_s, "utilisation": self.utilisation}  # fmt: skip
        return {"round": self.round, "n_labeled": self.n_labeled, "n_failed": self.n_failed, "val_wmae": self.val_wmae,
                **{f"test_{k}": v for k, v in self.test.items()}, **timings,
                "random_fallback": int(self.random_fallback)}  # fmt: skip

    def summary(self, regions: Sequence[str], unit: str = "round") -> str:
        """The round's (`unit`'s) progress line; it says so when the model is no better than a trivial one."""
        inside, outside = (self.test.get(f"mae_{region}", math.nan) for region in regions)
        zero, mean = self.test.get("wmae_skill_zero", math.nan), self.test.get("wmae_skill_mean", math.nan)
        worse = [name for name, skill in (("zero", zero), ("the mean field", mean)) if skill <= 0]
        flag = f" | WORSE than predicting {' and '.join(worse)}" if worse else ""
        return (f"{unit} {self.round}: {self.n_labeled} labelled ({self.n_failed} failed) | val wMAE "
                f"{self.val_wmae:.4g} | test wMAE {self.test_wmae:.4g} ({regions[0]} {inside:.3g}, {regions[1]} "
                f"{outside:.3g}; skill vs zero {zero:.2f}, vs mean {mean:.2f}){flag} | label {self.label_s:.0f}s "
                f"train {self.train_s:.0f}s eval {self.eval_s:.0f}s score {self.score_s:.0f}s")  # fmt: skip


def kept_metrics(evaluation: dict[str, float], regions: Sequence[str]) -> dict[str, float]:
    """The numbers a round keeps from an evaluation of the test set."""
    return {name: evaluation[name] for name in (*error_metrics(regions), *SKILLS, *SPREAD)}


def read_rounds(path: Path) -> list[dict[str, float]]:
    """rounds.csv's rows with numbers parsed (an empty cell: NaN)."""
    with path.open(newline="") as handle:
        return [
            {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in csv.DictReader(handle)
        ]


def write_rounds(path: Path, records: Sequence[RoundRecord], regions: Sequence[str]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=round_columns(regions), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(record.row() for record in records)
    write_text(path, text.getvalue())
