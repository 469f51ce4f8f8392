"""A job's folder: where a new one goes, claiming it (one writer), what a resume may change, and the one-line
error for a failure inside Ray that leaves its traceback in the folder's log."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from raysurr.config import Config, flat_keys
from raysurr.data.lock import LOCK_NAME, FolderLock
from raysurr.errors import ConfigError, RaysurrError, RunFailed


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
