"""An OS-level lock on an output folder, so that two commands never write one run, sweep or experiment.

The lock is `flock` on a file in the folder: the kernel releases it when the holding process ends,
however it ends (SIGKILL included), so a stale lock cannot outlive its holder. The file also says
who holds it (host, pid, command, since when) for the one-line refusal a second command gets.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with FolderLock(folder, "run folder"):
    ...     FolderLock(folder, "run folder").acquire()
    Traceback (most recent call last):
    ...
    raysurr.errors.FolderBusyError: run folder ... is in use by pid ...
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from raysurr.errors import FolderBusyError

LOCK_NAME = ".lock"


class FolderLock:
    """An exclusive lock on `folder` (which must exist), held from `acquire` until `release` or exit.

    Args:
        folder: the folder to lock.
        what: the folder's kind in the user's words ("run folder"), for the error.
        name: the lock file's name inside the folder.
    """

    def __init__(self, folder: str | Path, what: str, name: str = LOCK_NAME) -> None:
        self.folder = Path(folder)
        self.what = what
        self.path = self.folder / name
        self._fd: int | None = None

    def acquire(self, wait_s: float = 0.0) -> FolderLock:
        """Take the lock, waiting up to `wait_s` for a holder to end; FolderBusyError if it does not."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise FolderBusyError(
                        f"{self.what} {str(self.folder)!r} is in use by {holder}; wait for that command to end "
                        "(or stop it) and try again"
                    ) from None
                time.sleep(0.2)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                  "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FolderLock:
        return self if self.held else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder["since"])))
        return f"pid {holder['pid']} on host {holder['host']} since {since} ({holder.get('command', '?')})"
    except (ValueError, KeyError, TypeError):
        return "another process (its lock file does not say which)"
