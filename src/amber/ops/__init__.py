"""Primitive ops. Importing this package fills ``REGISTRY``."""

from . import (  # noqa: F401  (registration side effects)
    ckernels,
    elementwise,
    linalg,
    reduce,
    shape,
    symbolic,
)
from .registry import REGISTRY, Aval, Primitive, bind, enable_grad, is_grad_enabled, no_grad

__all__ = ["REGISTRY", "Aval", "Primitive", "bind", "enable_grad", "is_grad_enabled", "no_grad"]
