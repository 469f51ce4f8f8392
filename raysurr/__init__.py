"""raysurr: Ray-distributed active learning of deep-learning surrogates for scientific simulators."""

from raysurr.errors import ConfigError, ParameterError, RaysurrError, SimulationError
from raysurr.simulators import AbstractSimulator, Parameter, Simulation, register_simulator

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that `import raysurr` stays light (no torch) for the pure core and simulator actors.
    if name == "load_surrogate":
        from raysurr.models.checkpoint import load_surrogate

        return load_surrogate
    if name in ("run", "experiment", "sweep"):
        from raysurr import api

        return getattr(api, name)
    if name in ("load", "Predictor", "ExtrapolationWarning"):
        from raysurr import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'raysurr' has no attribute {name!r}")


__all__ = [
    "AbstractSimulator",
    "ConfigError",
    "ExtrapolationWarning",
    "Parameter",
    "ParameterError",
    "Predictor",
    "RaysurrError",
    "Simulation",
    "SimulationError",
    "__version__",
    "experiment",
    "load",
    "load_surrogate",
    "register_simulator",
    "run",
    "sweep",
]
