"""What raysurr tells the user while it works, all on stderr (stdout is for a command's result):
`say` for one line, `Progress` for a long phase (rewritten in place on a terminal, a line every few
seconds otherwise). Inside Ray actors and tasks, Ray forwards both to the command's terminal.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def say(message: str) -> None:
    """One progress line on stderr, flushed at once."""
    print(message, file=sys.stderr, flush=True)


class Progress:
    """Counts done/failed items of a phase and reports rate and what is in flight.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> p = Progress("label", total=4, stream=out, interval_s=0)
        >>> p.update(done=4)
        >>> p.close()
        >>> "label 4/4 (0 failed, 0 in flight)" in out.getvalue()
        True
        >>> out = io.StringIO()
        >>> Progress("score", total=2, stream=out, failures=False).close()
        >>> out.getvalue().startswith("score 0/2 0.0 samples/s")
        True
    """

    def __init__(
        self, phase: str, total: int, stream: TextIO | None = None, interval_s: float = 5.0, failures: bool = True
    ) -> None:
        self.phase, self.total, self.failures = phase, total, failures  # failures: also report failed and in flight
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        self.done = self.failed = self.in_flight = 0
        self.start = self._last = time.monotonic()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, done: int = 0, failed: int = 0, in_flight: int | None = None) -> None:
        self.done += done
        self.failed += failed
        if in_flight is not None:
            self.in_flight = in_flight
        now = time.monotonic()
        if now - self._last >= (0.2 if self._tty else self.interval_s):
            self._last = now
            self._write(end="\r" if self._tty else "\n")

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = (self.done + self.failed) / elapsed if elapsed > 0 else 0.0
        detail = f" ({self.failed} failed, {self.in_flight} in flight)" if self.failures else ""
        return f"{self.phase} {self.done + self.failed}/{self.total}{detail} {rate:.1f} samples/s {elapsed:.1f}s"

    def close(self) -> None:
        self.in_flight = 0
        self._write(end="\n")

    def _write(self, end: str) -> None:
        self.stream.write(self.line().ljust(79 if self._tty else 0) + end)
        self.stream.flush()
