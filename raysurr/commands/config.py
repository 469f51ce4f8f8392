"""`raysurr config`: the resolved configuration of --config files and --set overrides, without running anything.

Example:
    raysurr config --config configs/quickstart.yaml --config extra.yaml --set training.epochs=20

Prints the YAML every command would run with (the files merged key by key, the overrides applied, every default
filled in), as the run folder's config.yaml would hold it. Errors are the commands' own one-line errors.
"""

from __future__ import annotations

from collections.abc import Sequence

from raysurr.commands.common import Parser, add_config_arguments, config_from_args


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="raysurr config", description=__doc__.split("\n")[0])
    add_config_arguments(parser)
    print(config_from_args(parser.parse_args(argv)).to_yaml(), end="")
    return 0
