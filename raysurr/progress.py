"""What raysurr tells the user while it works, all on stderr (stdout is for a command's result):
`say` for one line, `Progress` for a long phase: a tqdm bar with rate and ETA when the command's
output is a terminal, a plain line every few seconds otherwise (a log file, CI).

Inside Ray actors and tasks, Ray forwards lines to the command's terminal and draws bars there
(`ray.experimental.tqdm_ray`); `RAYSURR_PROGRESS` (`bars` or `lines`), which `distributed.runtime.connect`
passes to every worker, says which the command's output wants.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

MODE = "RAYSURR_PROGRESS"


def say(message: str) -> None:
    """One progress line on stderr, flushed at once."""
    print(message, file=sys.stderr, flush=True)


def bars_wanted(stream: TextIO | None = None) -> bool:
    """Bars, not lines: `RAYSURR_PROGRESS` if set, else whether `stream` (default stderr) is a terminal."""
    mode = os.environ.get(MODE, "")
    if mode in ("bars", "lines"):
        return mode == "bars"
    stream = stream if stream is not None else sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """Counts done/failed items of a phase and reports rate and what is in flight.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> p = Progress("label", total=4, stream=out, interval_s=0, bars=False)
        >>> p.update(done=4)
        >>> p.close()
        >>> out.getvalue().count("label 4/4 (0 failed, 0 in flight)")
        1
        >>> out = io.StringIO()
        >>> Progress("score", total=2, stream=out, failures=False, bars=False).close()
        >>> out.getvalue().startswith("score 0/2 0.0 samples/s")
        True
        >>> out = io.StringIO()
        >>> epochs = Progress("epoch", total=2, stream=out, failures=False, bars=False)
        >>> epochs.step("val_wmae 3.2")
        >>> out.getvalue()
        'epoch 1/2 val_wmae 3.2\\n'
    """

    def __init__(self, phase: str, total: int, stream: TextIO | None = None, interval_s: float = 5.0,
                 failures: bool = True, unit: str = "samples", bars: bool | None = None) -> None:  # fmt: skip
        self.phase, self.total, self.failures, self.unit = phase, total, failures, unit  # failures: report them
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        self.done = self.failed = self.in_flight = 0
        self.start = self._last = time.monotonic()
        self._shown: tuple[int, int] | None = None  # (done, failed) of the last line written
        bars = bars_wanted(self.stream) if bars is None else bars
        self._bar = _bar(phase, total, unit, self.stream) if bars else None

    def update(self, done: int = 0, failed: int = 0, in_flight: int | None = None) -> None:
        self.done += done
        self.failed += failed
        if in_flight is not None:
            self.in_flight = in_flight
        if self._bar is not None:
            if self.failures:
                self._bar.set_description(f"{self.phase} ({self.failed} failed, {self.in_flight} in flight)")
            self._bar.update(done + failed)
            return
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            self._write(self.line())

    def step(self, text: str) -> None:
        """One item done, described by `text` (an epoch's losses): the bar shows it, or one line says it."""
        self.done += 1
        if self._bar is not None:
            if self._bar.total != self.total:  # re-planned (a time budget)
                self._bar.total = self.total
            self._bar.set_description(f"{self.phase} {text}")
            self._bar.update(1)
        else:
            self._write(f"{self.phase} {self.done}/{self.total} {text}")

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = (self.done + self.failed) / elapsed if elapsed > 0 else 0.0
        detail = f" ({self.failed} failed, {self.in_flight} in flight)" if self.failures else ""
        return f"{self.phase} {self.done + self.failed}/{self.total}{detail} {rate:.1f} {self.unit}/s {elapsed:.1f}s"

    def close(self) -> None:
        self.in_flight = 0
        if self._bar is not None:
            self._bar.close()
        elif self._shown != (self.done, self.failed):  # the last line already says it all
            self._write(self.line())

    def _write(self, text: str) -> None:
        self._shown = (self.done, self.failed)
        self.stream.write(text + "\n")
        self.stream.flush()


def _bar(phase: str, total: int, unit: str, stream: TextIO) -> Any:
    """A tqdm bar: drawn by the command's terminal when this process is a Ray worker, else on `stream`."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        from ray.experimental.tqdm_ray import tqdm as ray_tqdm

        return ray_tqdm(desc=phase, total=total, unit=unit)
    from tqdm import tqdm

    return tqdm(desc=phase, total=total, unit=unit, file=stream, dynamic_ncols=True)
