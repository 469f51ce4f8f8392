"""`python -m raysurr.experiment`: a grid of AL runs (architectures x acquisition functions x seeds) and the report.

Examples:
    python -m raysurr.experiment --config configs/headroom/decay32.yaml --config configs/experiments/screen.yaml \
        --out runs/screen-decay32
    python -m raysurr.experiment --resume runs/screen-decay32     # continue: finished runs are kept
    python -m raysurr.experiment --report runs/screen-decay32     # rewrite report.md from what has finished

Every run is the base config with one model section, one acquisition section and one seed (the
config's `experiment` section). Runs of one seed share the candidate pool and the initial labelled
set; every run shares the validation and test sets (`pool.eval_seed`, cached in `OUT/.eval-cache`).
`experiment.parallel` runs go side by side on the cluster, each an ALDriver actor asking for its
config's resources; each is resumable on its own. After every finished run the command rewrites:

    summary.csv                 per finished run and round: model, acquisition, seed, run, rounds.csv's columns
    report.md                   labels needed to reach random's full-budget error, errors at fixed budgets
    learning_curve-MODEL.png    test weighted, source-region and field MAE against labels, per acquisition function
    runs/MODEL-ACQUISITION-sSEED/   each run's own folder (as python -m raysurr.drive writes it)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from raysurr.commands.common import (
    Parser,
    add_address_argument,
    add_config_arguments,
    config_from_args,
    given_keys,
)
from raysurr.config import Config, load_config
from raysurr.data.store import write_config
from raysurr.distributed.runtime import connect
from raysurr.engine.experiment import (
    check_empty,
    check_grid,
    check_grid_resources,
    run_experiment,
    start_grid,
    summarize,
)
from raysurr.engine.folders import claim_folder, resume_changes
from raysurr.errors import ConfigError
from raysurr.progress import say


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m raysurr.experiment", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="experiment folder (default: runs/experiment-NAME-YYYYmmdd-HHMMSS)")
    parser.add_argument("--resume", type=Path, metavar="DIR", help="continue an experiment; finished runs are kept")
    parser.add_argument("--report", type=Path, metavar="DIR", help="only rewrite an experiment's summary and report")
    add_config_arguments(parser)
    add_address_argument(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        with claim_folder(args.report, "experiment"):
            config = load_config(args.report / "config.yaml")
            summarize(args.report, config)
        say(f"wrote {args.report / 'report.md'}")
        return 0
    if args.resume:
        if args.config or args.out:
            raise ConfigError("--resume takes the experiment's own config.yaml; drop --config and --out")
        with claim_folder(args.resume, "experiment"):
            config = load_config(args.resume / "config.yaml", args.overrides)
            changes = resume_changes(load_config(args.resume / "config.yaml"), config, ("experiment.parallel",))
            check_grid(config)
            connect(args.address)
            check_grid_resources(config)
            if changes:
                write_config(config, args.resume)
            return experiment(args.resume, config)
    config = config_from_args(args)
    check_empty(config)
    return start_grid(config, args.out, "experiment", args.address, experiment, given_keys(args))


def experiment(folder: Path, config: Config) -> int:
    run_experiment(folder, config)  # its last line names the runs, their time and the report
    return 0
