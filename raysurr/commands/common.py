"""What every `python -m raysurr.*` command shares: config arguments, output folders, one-line errors."""

from __future__ import annotations

import argparse
import contextvars
import os
import stat
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from raysurr.config import Config, SimulatorConfig, apply_overrides, flat_keys, load_config, merge, read_yaml
from raysurr.data.dataset import DatasetInfo
from raysurr.data.lock import LOCK_NAME, FolderLock
from raysurr.engine.plan import plan_of
from raysurr.errors import ConfigError, RaysurrError, RegistryError, RunFailed
from raysurr.progress import say
from raysurr.simulators import build_simulator

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


def announce(config: Config, runs: int = 1) -> None:
    """Say, once every check has passed and before any work, what the run (each of `runs`) will ask of the
    simulator and the trainer."""
    say(plan_of(config).line() + (f"; {runs} runs" if runs > 1 else ""))


def refuse_physics_term(config: Config, command: str) -> None:
    """`training.physics_weight` learns from a run's unlabelled pool, which `train` and `tune` do not have."""
    if config.training.physics_weight:
        raise ConfigError(f"training.physics_weight learns from an active-learning run's unlabelled pool, which "
                          f"raysurr {command} does not have; set training.physics_weight=0")  # fmt: skip


def output_folder(given: Path | None, default_name: str, kind: str) -> Path:
    """The folder a new job will write: `given`, or runs/NAME-TIME. Checked now, created by `claim_new_folder`.

    A file, or a non-empty folder, is refused (the command's --resume continues a folder).
    """
    folder = given or Path("runs") / f"{default_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{kind} folder {str(folder)!r} is a file; choose another path")
    if _has_content(folder):
        raise ConfigError(f"{kind} folder {str(folder)!r} is not empty; continue it with --resume {folder}")
    return folder


def claim_new_folder(folder: Path, kind: str) -> FolderLock:
    """Create `folder` and lock it for this process; call it once every check has passed."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(folder, f"{kind} folder").acquire()
    if _has_content(folder):  # another command claimed it between the check and the lock
        lock.release()
        raise ConfigError(f"{kind} folder {str(folder)!r} is not empty; continue it with --resume {folder}")
    return lock


def claim_folder(folder: Path, kind: str, marker: str = "config.yaml") -> FolderLock:
    """Lock an existing folder to resume it, after checking it is one and that it is safe to run.

    A folder to resume is code (its config imports plugins and may run a command): one owned by
    another user, or writable by others, is refused.
    """
    if not (folder / marker).is_file():
        raise ConfigError(f"{str(folder)!r} is not a {kind} folder (no {marker})")
    for path in (folder, folder / marker):
        info = path.stat()
        if info.st_uid != os.getuid():
            raise ConfigError(f"{str(path)!r} belongs to another user; resuming it would run their plugins and "
                              "commands as you. Copy the folder and resume the copy")  # fmt: skip
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(f"{str(path)!r} is writable by other users, who could make it run code as you; "
                              f"remove their write access (chmod go-w {path}) and try again")  # fmt: skip
    return FolderLock(folder, f"{kind} folder").acquire()


def _has_content(folder: Path) -> bool:
    return folder.is_dir() and any(p.name != LOCK_NAME for p in folder.iterdir())


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


def remote_error(exc: BaseException, log: Path) -> RaysurrError:
    """The one-line error for an exception raised inside a Ray actor or task; its traceback goes to `log`.

    A RaysurrError raised remotely keeps its message and exit status; anything else is a RunFailed
    that names the log (and --debug prints the traceback).
    """
    cause = getattr(exc, "cause", None)
    with log.open("a") as handle:
        handle.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{exc}\n")
    if isinstance(cause, RaysurrError):
        error = RaysurrError(one_line(cause))
        error.exit_code = cause.exit_code
    else:
        what = f"{type(cause).__name__}: {one_line(cause)}" if cause is not None else _last_line(exc)
        error = RunFailed(f"the run failed inside Ray ({what[:400]}); the traceback is in {log}, --debug prints it")
    error.detail = str(exc)
    return error


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def one_line(exc: BaseException) -> str:
    return " | ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


# What `--resume --set` may change: how long the run goes on and how it uses the cluster, never what
# the rounds already run mean (the seed, the model, the acquisition function, the simulator, ...).
RESUMABLE = ("loop.rounds", "loop.label_budget", "loop.target_val_wmae", "loop.target_test_wmae", "resources.",
             "labeling.", "tracking.")  # fmt: skip


def resume_changes(stored: Config, config: Config, also: tuple[str, ...] = ()) -> list[tuple[str, object, object]]:
    """The (key, old, new) that `--set` changes on resume; ConfigError if one may not change.

    Args:
        also: keys (or `section.` prefixes) the caller allows besides `RESUMABLE`.
    """
    allowed = (*RESUMABLE, *also)
    old, new = flat_keys(stored.to_dict()), flat_keys(config.to_dict())
    changes = [(key, old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys())
               if old.get(key) != new.get(key)]  # fmt: skip
    for key, before, after in changes:
        if not key.startswith(allowed):
            raise ConfigError(f"--resume cannot change {key} ({before!r} -> {after!r}): the rounds already run would "
                              f"no longer match the config; start a new run instead. On resume only "
                              f"{', '.join(k.rstrip('.') + ('.*' if k.endswith('.') else '') for k in allowed)} "
                              "may change")  # fmt: skip
    return changes


def dataset_simulator(info: DatasetInfo) -> SimulatorConfig:
    """The simulator that labelled a dataset, checked to be buildable here (its plugin loaded)."""
    section = SimulatorConfig.from_dict(info.simulator)
    try:
        build_simulator(section)
    except RegistryError:
        raise ConfigError(f"the dataset {str(info.root)!r} was labelled by simulator {section.name!r}, which is not "
                          "registered here; load its plugin with --set 'plugins=[your_module]'") from None  # fmt: skip
    return section
