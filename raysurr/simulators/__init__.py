"""Simulators (pure: no Ray, no torch). Importing this package registers the built-in ones."""

from raysurr.config import SimulatorConfig
from raysurr.simulators.base import (
    SIMULATORS,
    SYMMETRIES,
    AbstractSimulator,
    Parameter,
    Simulation,
    check_symmetries,
    register_simulator,
    run_simulation,
)
from raysurr.simulators.command import CommandSimulator
from raysurr.simulators.diffusion2d import Diffusion2D


def build_simulator(config: SimulatorConfig) -> AbstractSimulator:
    """Build the simulator a config section names, with its options (and declared symmetries) checked."""
    simulator = SIMULATORS.build(config.name, section="simulator", **config.options)
    check_symmetries(simulator)
    return simulator


def evaluation_section(section: SimulatorConfig) -> SimulatorConfig:
    """The section with the simulator's `evaluation_options` laid over it: how validation, test and hindsight
    labels are made (diffusion2d: the exact solver, no delay)."""
    return SimulatorConfig(section.name, {**section.options, **SIMULATORS.get(section.name).evaluation_options})


__all__ = [
    "SIMULATORS",
    "SYMMETRIES",
    "AbstractSimulator",
    "CommandSimulator",
    "Diffusion2D",
    "Parameter",
    "Simulation",
    "build_simulator",
    "check_symmetries",
    "evaluation_section",
    "register_simulator",
    "run_simulation",
]
