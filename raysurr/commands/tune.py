"""`python -m raysurr.tune`: sweep surrogate architectures on Ray Tune (ASHA on validation error).

Examples:
    python -m raysurr.tune --config configs/sweep-quick.yaml --out runs/sweep
    python -m raysurr.tune --resume runs/sweep                       # continue an interrupted sweep
    python -m raysurr.drive --config configs/quickstart.yaml --config runs/sweep/best.yaml

The search space, objective and trial resources are the config's `sweep` section (see
raysurr/config.py, SweepConfig). Trials train on `sweep.data` (a `raysurr.dataset` folder with
train and val splits) or, without it, on a set labelled the way the AL run draws its initial set:
`pool.initial` samples (twice that for the `two_sizes` objective) plus `pool.val`, kept in
`OUT/data` for a resumed sweep.

Writes to --out: `trials.csv` (one row per trial: its draws, score, validation errors, epochs run,
how it ended), `best.yaml` (the winner's `model` and `training` sections, to lay over a run's
config), `sweep.png` (each trial's score per epoch) and the resolved `config.yaml`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from raysurr.commands.common import (
    Parser,
    add_address_argument,
    add_config_arguments,
    config_from_args,
)
from raysurr.engine.sweep import new_sweep, resume_sweep
from raysurr.errors import ConfigError
from raysurr.progress import say


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m raysurr.tune", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="sweep folder (default: runs/sweep-NAME-YYYYmmdd-HHMMSS)")
    parser.add_argument("--data", help="a raysurr.dataset folder to train on (sets sweep.data)")
    parser.add_argument("--resume", type=Path, metavar="SWEEP_DIR", help="continue an interrupted sweep")
    add_config_arguments(parser)
    add_address_argument(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.resume:
        if args.config or args.out or args.data:
            raise ConfigError("--resume takes the sweep's own config.yaml; drop --config, --out and --data")
        folder = args.resume
        rows = resume_sweep(folder, args.overrides, args.address)
    else:
        config = config_from_args(args, [f"sweep.data={args.data}"] if args.data else [])
        folder, rows = new_sweep(config, args.out, args.address)
    print_table(rows)
    say(f"best: {folder / 'best.yaml'}")
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = [c for c in rows[0] if c != "trial"]
    print("\t".join(["trial", *columns]))
    for row in rows:
        print("\t".join([row["trial"], *(_cell(row.get(c)) for c in columns)]))


def _cell(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)
