"""``amber.nn``: layers, losses and containers with PyTorch's names, parameter names and
layouts, so a PyTorch ``state_dict`` (converted to NumPy) loads into the amber model."""

from . import functional, init, modules, parallel, utils
from .modules import *  # noqa: F403  (the layers: modules.__all__ is their one list)
from .parameter import Parameter

__all__ = ["Parameter", "functional", "init", "parallel", "utils"]
__all__ += modules.__all__
