"""Simulators that misbehave on chosen sample ids, for the labelling tests (a plugin module)."""

from __future__ import annotations

import os
import time

import numpy as np

from raysurr import AbstractSimulator, Parameter, Simulation, register_simulator


@register_simulator("misbehaving")
class Misbehaving(AbstractSimulator):
    """Output = x everywhere; raises, returns NaN, hangs or kills its process for chosen x."""

    input_shape = output_shape = (1, 4, 4)
    parameters = (Parameter("x", 0, 10_000, integer=True),)

    def __init__(self, raise_on=(), nan_on=(), hang_on=(), die_on=(), hang_s: float = 600.0) -> None:
        self.raise_on, self.nan_on, self.hang_on, self.die_on = set(raise_on), set(nan_on), set(hang_on), set(die_on)
        self.hang_s = hang_s

    def render(self, params):
        return np.broadcast_to(params[:, :1, None, None] / 10_000, (len(params), 1, 4, 4)).astype(np.float32)

    def simulate(self, params):
        xs = [int(x) for x in params[:, 0]]
        for x in xs:
            if x in self.die_on:
                os._exit(3)  # the process dies, as a segfaulting external code would
            if x in self.hang_on:
                time.sleep(self.hang_s)  # a hung simulator: nothing returns until the timeout kills it
            if x in self.raise_on:
                raise RuntimeError(f"cannot simulate x={x}")
        outputs = np.broadcast_to(params[:, :1, None, None], (len(params), 1, 4, 4)).astype(np.float32).copy()
        outputs[[i for i, x in enumerate(xs) if x in self.nan_on]] = np.nan
        return Simulation(outputs=outputs)
