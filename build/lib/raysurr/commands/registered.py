"""`raysurr list`: every registered simulator, solver, model and acquisition function, one line each.

Example:
    raysurr list
    raysurr list --config my.yaml   # includes the config's plugins
"""

from __future__ import annotations

from collections.abc import Sequence

from raysurr.acquisition import ACQUISITIONS
from raysurr.commands.common import Parser, add_config_arguments, config_from_args
from raysurr.models import MODELS
from raysurr.registry import Registry
from raysurr.simulators import SIMULATORS
from raysurr.simulators.diffusion2d import SOLVERS


def registries() -> dict[str, Registry]:
    """Every registry users can pick from by name, in the order `list` prints them."""
    return {
        "simulators": SIMULATORS,
        "diffusion2d solvers": SOLVERS,
        "models": MODELS,
        "acquisition functions": ACQUISITIONS,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="raysurr list", description=__doc__.split("\n")[0])
    add_config_arguments(parser)
    config_from_args(parser.parse_args(argv))  # imports the config's plugins so that they show up
    for title, registry in registries().items():
        print(f"{title}:")
        for name in registry:
            print(f"  {name:<14} {registry.summary(name)}")
    return 0
