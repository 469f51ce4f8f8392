"""`python -m raysurr list | check`: everything registered, one line each; or verify a folder on disk.

Example:
    python -m raysurr list
    python -m raysurr list --config my.yaml   # includes the config's plugins
    python -m raysurr check runs/quickstart-20261123-101500   # a run, experiment, dataset or evaluation cache
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from raysurr.cli import Parser, add_config_arguments, config_from_args, run
from raysurr.registry import Registry


def registries() -> dict[str, Registry]:
    """Every registry users can pick from by name, in the order `list` prints them."""
    from raysurr.acquisition import ACQUISITIONS
    from raysurr.models import MODELS
    from raysurr.simulators import SIMULATORS
    from raysurr.simulators.diffusion2d import SOLVERS

    return {
        "simulators": SIMULATORS,
        "diffusion2d solvers": SOLVERS,
        "models": MODELS,
        "acquisition functions": ACQUISITIONS,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="python -m raysurr", description="raysurr utilities")
    commands = parser.add_subparsers(dest="command", required=True)
    add_config_arguments(commands.add_parser("list", help="print every registered simulator, model, acquisition"))
    checker = commands.add_parser("check", help="verify a run, experiment, dataset or evaluation cache on disk")
    checker.add_argument("folder", type=Path, help="the folder to verify")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check_folder(args.folder)
    config_from_args(args)  # imports the config's plugins so that they show up
    for title, registry in registries().items():
        print(f"{title}:")
        for name in registry:
            print(f"  {name:<14} {registry.summary(name)}")
    return 0


def check_folder(folder: Path) -> int:
    from raysurr.check import check

    results = check(folder)
    for what, problem in results:
        print(f"ok       {what}" if problem is None else f"problem  {what}: {problem}")
    problems = sum(problem is not None for _, problem in results)
    print(f"{len(results)} checks, {problems} problems", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    run(main, "raysurr")
