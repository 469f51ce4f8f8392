"""What every `python -m raysurr.*` command shares: config arguments, output folders, one-line errors."""

from __future__ import annotations

import argparse
import contextvars
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from raysurr.config import Config, apply_overrides, flat_keys, load_config, merge, read_yaml
from raysurr.engine.folders import one_line
from raysurr.errors import ConfigError, RaysurrError

# The name a command was run by when that is not its `python -m` name (`raysurr drive`): usage lines show it.
INVOKED_AS: contextvars.ContextVar[str | None] = contextvars.ContextVar("invoked_as", default=None)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are raysurr's one line and exit status 2 (not usage plus a line)."""

    def __init__(self, prog: str, **kwargs) -> None:
        super().__init__(prog=INVOKED_AS.get() or prog, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see {self.prog} --help)")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        action="append",
        help="YAML config (default: built-in defaults); repeat to lay files over each other, key by key (a section "
        "that names another model, simulator or acquisition function replaces the old one whole)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="SECTION.KEY=VALUE",
        action="append",
        default=[],
        help="override a config key, value parsed as YAML (repeatable), e.g. --set simulator.grid=64",
    )
    parser.add_argument("--debug", action="store_true", help="print the full traceback of an error raised inside Ray")


def add_address_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="join a running Ray cluster ('auto' or an address); default: start a local Ray",
    )


def config_from_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> Config:
    """The config a command runs with: file, then --set overrides, then the command's own flags."""
    return load_config(args.config, [*args.overrides, *extra])


def given_keys(args: argparse.Namespace) -> set[str]:
    """The dotted keys the user set in the --config files and --set overrides (not the defaults)."""
    data: dict = {}
    for path in args.config or []:
        data = merge(data, read_yaml(path))
    return set(flat_keys(apply_overrides(data, args.overrides)))


def invoke(main: Callable[[Sequence[str] | None], int], prog: str, argv: Sequence[str] | None = None) -> int:
    """Run a command's main and return its exit status; a RaysurrError becomes one line on stderr.

    The status is the error's `exit_code` (2 for the user's input); with --debug, a remote
    traceback the error carries follows its line.
    """
    try:
        return main(argv)
    except RaysurrError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        if exc.detail and "--debug" in (sys.argv[1:] if argv is None else argv):
            print(exc.detail, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
