"""`raysurr headroom`: how much active learning could save on your problem, before you spend a label budget.

Examples:
    raysurr headroom --config configs/quickstart.yaml --out runs/headroom-quickstart
    raysurr headroom --config my.yaml --sizes 100,200,400,800 --seeds 3 --out runs/headroom
    raysurr headroom --resume runs/headroom            # continue: finished runs are kept

It labels random samples at three or more sizes (default 1/8, 1/4 and 1/2 of the config's label budget),
trains the config's model from scratch at each, and runs a hindsight oracle from the same start (a
function that simulates every candidate to find the model's largest true errors: a bound, not a method;
`--no-oracle` skips it). It writes, besides the runs and the experiment's report.md:

    headroom.json   alpha (random's learning-curve slope) with its interval, worst10_share, worst20_share,
                    ceiling (the most any allocation of labels could save), oracle_saving, and a verdict
    headroom.md     the same as a table

and prints the verdict, e.g. "active learning can save at most ~1.1x labels on this problem ...: random
sampling is near-optimal here". docs/acquisition.md ("Headroom") explains the quantities.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import yaml

from raysurr.commands.common import Parser, add_address_argument, add_config_arguments, config_from_args, given_keys
from raysurr.config import Config, load_config
from raysurr.distributed.runtime import connect
from raysurr.engine import headroom
from raysurr.engine.experiment import run_dir, run_experiment, start_grid
from raysurr.engine.folders import claim_folder
from raysurr.errors import ConfigError
from raysurr.progress import say

# Sampling in proportion to the true error: on the reference problem at 32 cells the k largest errors (k-centre among
# the 4k largest, `oracle`'s own rule) made worse training sets than random ones (test weighted MAE 4.84 against 2.66
# at 250 labels, one seed), as a probe had found for plain top-k; in proportion, the oracle bounds what selection can do
ORACLE = {"name": "stochastic", "inner": {"name": "oracle"}}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m raysurr.headroom", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="headroom folder (default: runs/headroom-NAME-YYYYmmdd-HHMMSS)")
    parser.add_argument("--resume", type=Path, metavar="DIR", help="continue a headroom run; finished runs are kept")
    parser.add_argument("--sizes", type=_sizes, help="random labels to train at, e.g. 100,200,400 (default: 1/8, 1/4 "
                        "and 1/2 of the label budget)")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=1, help="seeds of each run (default 1; 3 give intervals)")
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle (it simulates the whole pool)")
    parser.add_argument("--oracle", type=yaml.safe_load, default=None, metavar="SECTION",
                        help="the oracle's acquisition section (default: {name: stochastic, inner: {name: oracle}}, "
                        "candidates drawn in proportion to the model's true error; {name: oracle}: k-centre among the "
                        "largest errors)")  # fmt: skip
    add_config_arguments(parser)
    add_address_argument(parser)
    return parser.parse_args(argv)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of label counts") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.resume:
        if args.config or args.out or args.sizes:
            raise ConfigError("--resume takes the headroom run's own config.yaml; drop --config, --out and --sizes")
        with claim_folder(args.resume, "headroom"):
            config = load_config(args.resume / "config.yaml", args.overrides)
            connect(args.address)
            return measure(args.resume, config)
    if args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    base = config_from_args(args)
    oracle = None if args.no_oracle else (args.oracle or ORACLE)
    config = headroom.plan(base, args.sizes or headroom.default_sizes(base), args.seeds, oracle)
    return start_grid(config, args.out, "headroom", args.address, measure, given_keys(args) | {"loop.sizes"})


def measure(folder: Path, config: Config) -> int:
    """Run (or finish) the paired experiment, then write and print what it says."""
    sizes = config.loop.sizes
    say(f"headroom: random labels at {', '.join(map(str, sizes))}, {len(config.experiment.seeds)} seed(s)"
        + (", and a hindsight oracle from the same start" if headroom.ORACLE in config.experiment.acquisitions
           else ""))  # fmt: skip
    run_experiment(folder, config)
    result = headroom.analyse(folder, config, run_dir)
    path = headroom.write(folder, result)
    print(f"headroom: {result['verdict']} ({path})")
    return 0
