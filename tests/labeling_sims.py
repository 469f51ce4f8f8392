"""Simulators that misbehave on chosen sample ids, for the labelling tests (a plugin module)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from raysurr import AbstractSimulator, Parameter, Simulation, register_simulator
from raysurr.simulators.diffusion2d import Diffusion2D


@register_simulator("misbehaving")
class Misbehaving(AbstractSimulator):
    """Output = x everywhere; raises, returns NaN or Inf, hangs or kills its process for chosen x, or raises
    on the first `flaky_times` runs of chosen x (counted in files under `flaky_dir`, shared by the actors)."""

    input_shape = output_shape = (1, 4, 4)
    parameters = (Parameter("x", 0, 10_000, integer=True),)

    def __init__(self, raise_on=(), nan_on=(), inf_on=(), hang_on=(), die_on=(), hang_s: float = 600.0, flaky_on=(),
                 flaky_times: int = 1, flaky_dir: str = "", raise_above: int | None = None) -> None:  # fmt: skip
        self.raise_on, self.nan_on, self.hang_on, self.die_on = set(raise_on), set(nan_on), set(hang_on), set(die_on)
        self.inf_on, self.flaky_on = set(inf_on), set(flaky_on)
        self.flaky_times, self.flaky_dir = flaky_times, flaky_dir
        self.hang_s, self.raise_above = hang_s, raise_above

    def _flaky(self, x: int) -> bool:
        """True for the first `flaky_times` runs of x (each run leaves a file behind)."""
        folder = Path(self.flaky_dir)
        runs = len(list(folder.glob(f"{x}-*")))
        (folder / f"{x}-{runs}-{os.getpid()}-{time.monotonic_ns()}").touch()
        return runs < self.flaky_times

    def render(self, params):
        return np.broadcast_to(params[:, :1, None, None] / 10_000, (len(params), 1, 4, 4)).astype(np.float32)

    def simulate(self, params):
        xs = [int(x) for x in params[:, 0]]
        for x in xs:
            if x in self.die_on:
                os._exit(3)  # the process dies, as a segfaulting external code would
            if x in self.hang_on:
                time.sleep(self.hang_s)  # a hung simulator: nothing returns until the timeout kills it
            if x in self.raise_on or (self.raise_above is not None and x > self.raise_above):
                raise RuntimeError(f"cannot simulate x={x}")
            if x in self.flaky_on and self._flaky(x):
                raise OSError(f"transient failure on x={x}")
        outputs = np.broadcast_to(params[:, :1, None, None], (len(params), 1, 4, 4)).astype(np.float32).copy()
        outputs[[i for i, x in enumerate(xs) if x in self.nan_on]] = np.nan
        outputs[[i for i, x in enumerate(xs) if x in self.inf_on]] = np.inf
        return Simulation(outputs=outputs)


@register_simulator("logged_diffusion2d")
class LoggedDiffusion(Diffusion2D):
    """diffusion2d that appends every parameter set it simulates to `log` (one line each, one write per call,
    O_APPEND: whole lines from every actor), so a test can count how often each sample was simulated."""

    def __init__(self, log: str = "", **options) -> None:
        super().__init__(**options)
        self.log = log

    def simulate(self, params):
        result = super().simulate(params)
        lines = "".join(" ".join(repr(float(v)) for v in row) + "\n" for row in np.asarray(params))
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
        return result
