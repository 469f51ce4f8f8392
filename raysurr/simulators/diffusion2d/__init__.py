"""The 2-D steady diffusion problem of the study: physics (pure numpy) and its simulator."""

from raysurr.simulators.diffusion2d.physics import SOLVERS, DiffusionOperator, discs
from raysurr.simulators.diffusion2d.simulator import Diffusion2D

__all__ = ["SOLVERS", "Diffusion2D", "DiffusionOperator", "discs"]
