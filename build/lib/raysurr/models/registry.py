"""The model registry (kept apart so that model modules can register without import cycles)."""

from __future__ import annotations

from torch import nn

from raysurr.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")
register_model = MODELS.register
