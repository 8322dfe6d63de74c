"""Gradient utilities (``amber.nn.utils``): clipping by norm or value, as
``torch.nn.utils``; sequence padding in ``amber.nn.utils.rnn``."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ... import _dtype as D
from ... import functional as _F
from ...errors import AmberError
from ...ops.registry import no_grad
from ...tensor import Tensor


def _with_grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    """Scale gradients in place so that their joint ``norm_type`` norm is at most
    ``max_norm``; returns the norm before clipping (a 0-d tensor)."""
    params = _with_grads(parameters)
    with no_grad():
        if not params:
            return _F.scalar(0.0, D.default_float())
        grads = [p.grad for p in params]
        assert all(g is not None for g in grads)
        if norm_type == math.inf:
            norms = [_F.amax(_F.abs(g)) for g in grads]  # type: ignore[arg-type]
            total = _F.amax(_F.stack([_F.cast(n, grads[0].dtype) for n in norms]))  # type: ignore[union-attr]
        else:
            parts = [_F.sum(_F.abs(g) ** norm_type) for g in grads]  # type: ignore[arg-type]
            total = _F.sum(_F.stack(parts)) ** (1.0 / norm_type)
        value = float(total.item())
        if error_if_nonfinite and not math.isfinite(value):
            raise AmberError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                             f"gradients is non-finite ({value})")
        coef = max_norm / (value + 1e-6)
        if coef < 1.0:
            for p in params:
                g = p.grad
                assert g is not None
                p.grad = g * coef
    return total


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` in place."""
    with no_grad():
        for p in _with_grads(parameters):
            p.grad = _F.clamp(p.grad, -clip_value, clip_value)  # type: ignore[arg-type]


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated into one 1-d tensor (differentiable,
    as ``torch.nn.utils.parameters_to_vector``)."""
    params = list(parameters)
    if not params:
        raise AmberError("parameters_to_vector: no parameters given")
    return _F.cat([_F.reshape(p, -1) for p in params])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-d ``vec`` into the parameters (their values
    only, as ``p.data = ...``; shapes and dtypes stay the parameters')."""
    if not isinstance(vec, Tensor):
        raise AmberError(f"vector_to_parameters: expected vec of type Tensor, but got "
                         f"{type(vec).__name__}")
    params = list(parameters)
    total = sum(int(p.numel()) for p in params)
    if vec.ndim != 1 or int(vec.shape[0]) != total:
        raise AmberError(f"vector_to_parameters: vec has shape {tuple(vec.shape)}, the "
                         f"parameters hold {total} values; expected shape ({total},)")
    data = vec._concrete("vector_to_parameters")
    off = 0
    for p in params:
        n = int(p.numel())
        p._data = np.array(data[off:off + n].reshape(p.shape), dtype=p.dtype.np)
        off += n


from . import rnn as rnn  # noqa: E402
