"""The 2-D steady diffusion problem of the study: physics (pure numpy) and its simulator."""

from raysurr.simulators.diffusion2d.physics import SOLVERS, DiffusionOperator, add_discs, discs
from raysurr.simulators.diffusion2d.simulator import Diffusion2D

__all__ = ["SOLVERS", "Diffusion2D", "DiffusionOperator", "add_discs", "discs"]
