"""Batch norm in training mode with running statistics, in a few array passes.

That form of batch norm updates its running statistics in place, so it is never captured
(``batch_norm`` refuses it under capture): it only ever runs eagerly. Written out from
primitives it is some twenty ops forward and thirty backward on the full activation;
here the forward is five passes and one tape entry whose VJP is five more (PyTorch's
fused formula). Under ``create_graph`` the VJP is written in amber ops instead, so
higher-order gradients stay exact."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as _F
from ..errors import AmberError
from ..ops import reduce as R
from ..ops.registry import Aval, Node, Primitive, is_grad_enabled, no_grad
from ..tensor import Tensor, _wrap_array

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def applies(input: Tensor, weight: Tensor | None, bias: Tensor | None) -> bool:
    """Whether :func:`batch_norm_train` takes this call: concrete float32/float64
    operands of one dtype."""
    d = input._data
    if d is None or d.dtype not in _FLOATS:
        return False
    return all(t is None or (t._data is not None and t._data.dtype == d.dtype)
               for t in (weight, bias))


def batch_norm_train(input: Tensor, running_mean: Tensor, running_var: Tensor,
                     weight: Tensor | None, bias: Tensor | None, momentum: float,
                     eps: float) -> Tensor:
    """``F.batch_norm(..., training=True)`` with running statistics (see there)."""
    d = input._data
    assert d is not None
    n, c = d.shape[0], d.shape[1]
    x = d.reshape(n, c, -1)
    count = n * x.shape[2]
    mean = np.einsum("ncl->c", x) / d.dtype.type(count)
    xc = x - mean[:, None]
    var = np.einsum("ncl,ncl->c", xc, xc) / d.dtype.type(count)
    invstd = d.dtype.type(1) / np.sqrt(var + d.dtype.type(eps))
    w = None if weight is None else weight._data
    scale = invstd if w is None else invstd * w
    y = xc * scale[:, None]
    if bias is not None:
        y += bias._data[:, None]  # type: ignore[index]
    with no_grad():
        unbiased = var * d.dtype.type(count / max(count - 1, 1))
        running_mean.copy_(_wrap_array(running_mean._data * (1.0 - momentum)  # type: ignore[operator]
                                       + mean * momentum))
        running_var.copy_(_wrap_array(running_var._data * (1.0 - momentum)  # type: ignore[operator]
                                      + unbiased * momentum))
    out = _wrap_array(y.reshape(d.shape))
    ins = tuple(t for t in (input, weight, bias) if t is not None)
    if is_grad_enabled() and any(t.requires_grad for t in ins):
        out.requires_grad = True
        out._node = Node(_BN_TRAIN, ins, {
            "has_weight": weight is not None, "has_bias": bias is not None, "eps": eps,
            "saved": (xc, invstd, scale)}, out)
    return out


def _vjp(g: Tensor, out: Tensor, *ins: Tensor, has_weight: bool, has_bias: bool,
         eps: float, saved: tuple[np.ndarray, ...]) -> tuple[Tensor | None, ...]:
    input = ins[0]
    weight = ins[1] if has_weight else None
    if is_grad_enabled():  # create_graph: differentiable all the way down
        grads = _vjp_traced(g, input, weight, eps)
    else:
        grads = _vjp_arrays(g, saved)
    return (grads[0],) + ((grads[1],) if has_weight else ()) + ((grads[2],) if has_bias else ())


def _vjp_arrays(g: Tensor, saved: tuple[np.ndarray, ...]) -> tuple[Tensor, ...]:
    xc, invstd, scale = saved
    gd = g._data
    assert gd is not None
    n, c = gd.shape[0], gd.shape[1]
    g3 = gd.reshape(n, c, -1)
    count = xc.dtype.type(n * g3.shape[2])
    gb = np.einsum("ncl->c", g3)
    gxc = np.einsum("ncl,ncl->c", g3, xc)
    # dx = scale * (g - mean(g) - xc * invstd^2 * mean(g * xc)), per channel coefficients
    a = -(scale * invstd * invstd * gxc) / count
    b = -(scale * gb) / count
    dx = g3 * scale[:, None]
    dx += xc * a[:, None]
    dx += b[:, None]
    return (_wrap_array(dx.reshape(gd.shape)), _wrap_array(gxc * invstd), _wrap_array(gb))


def _vjp_traced(g: Tensor, x: Tensor, weight: Tensor | None, eps: float) -> tuple[Tensor, ...]:
    c = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, c) + (1,) * (x.ndim - 2)
    count = float(x.numel() // c)
    mu = R.reduce_sum(x, axes=axes, keepdims=True) / count
    xc = x - mu
    invstd = _F.rsqrt(R.reduce_sum(xc * xc, axes=axes, keepdims=True) / count + eps)
    gb = R.reduce_sum(g, axes=axes, keepdims=True)
    gxc = R.reduce_sum(g * xc, axes=axes, keepdims=True)
    scale = invstd if weight is None else invstd * _F.reshape(weight, bshape)
    dx = scale * (g - gb / count - xc * (invstd * invstd * gxc) / count)
    return dx, _F.reshape(gxc * invstd, (c,)), _F.reshape(gb, (c,))


def _no_kernel(*args: Any, **kwargs: Any) -> np.ndarray:
    raise AmberError("batch norm's training tape entry has no kernel of its own")


def _no_infer(*args: Any, **kwargs: Any) -> Aval:
    raise AmberError("batch norm's training tape entry has no standalone type rule")


# NOTE: a tape entry, not a registered primitive: it never reaches a captured program.
_BN_TRAIN = Primitive("batch_norm_train", _no_kernel, _no_infer, {}, None)
_BN_TRAIN.def_vjp(_vjp)
