"""`python -m raysurr list`: everything registered, one line each.

Example:
    python -m raysurr list
    python -m raysurr list --config my.yaml   # includes the config's plugins
"""

from __future__ import annotations

from collections.abc import Sequence

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
    args = parser.parse_args(argv)
    config_from_args(args)  # imports the config's plugins so that they show up
    for title, registry in registries().items():
        print(f"{title}:")
        for name in registry:
            print(f"  {name:<14} {registry.summary(name)}")
    return 0


if __name__ == "__main__":
    run(main, "raysurr")
