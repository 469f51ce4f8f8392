"""raysurr: Ray-distributed active learning of deep-learning surrogates for scientific simulators."""

from raysurr.errors import ConfigError, ParameterError, RaysurrError, SimulationError
from raysurr.simulators import AbstractSimulator, Parameter, Simulation, register_simulator

__version__ = "0.1.0"

__all__ = [
    "AbstractSimulator",
    "ConfigError",
    "Parameter",
    "ParameterError",
    "RaysurrError",
    "Simulation",
    "SimulationError",
    "__version__",
    "register_simulator",
]
