"""What every `python -m raysurr.*` command shares: config arguments and one-line errors."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from raysurr.config import Config, load_config
from raysurr.errors import ConfigError, RaysurrError


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        action="append",
        help="YAML config (default: built-in defaults); repeat to lay files over each other, each later file "
        "replacing the sections it names (e.g. a sweep's best.yaml)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="SECTION.KEY=VALUE",
        action="append",
        default=[],
        help="override a config key, value parsed as YAML (repeatable), e.g. --set simulator.grid=64",
    )


def add_address_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="join a running Ray cluster ('auto' or an address); default: start a local Ray",
    )


def config_from_args(args: argparse.Namespace, extra: Sequence[str] = ()) -> Config:
    """The config a command runs with: file, then --set overrides, then the command's own flags."""
    return load_config(args.config, [*args.overrides, *extra])


def new_output_folder(given: Path | None, default_name: str, kind: str, config: Config) -> Path:
    """A command's fresh output folder with the resolved config in it: `given`, or runs/NAME-TIME.

    A non-empty folder is refused (the command's --resume continues it).
    """
    folder = given or Path("runs") / f"{default_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{kind} folder {str(folder)!r} is not empty; continue it with --resume {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    write_resolved_config(config, folder)
    return folder


def write_resolved_config(config: Config, directory: Path) -> Path:
    path = directory / "config.yaml"
    path.write_text(config.to_yaml())
    return path


def run(main: Callable[[Sequence[str] | None], int], prog: str) -> None:
    """Run a command's main; a RaysurrError becomes one line on stderr and exit status 2."""
    try:
        code = main(None)
    except RaysurrError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code)
