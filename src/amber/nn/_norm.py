"""Group, instance and RMS normalisation, and vector norms (``F.normalize``,
``F.cosine_similarity``, ``F.pairwise_distance``), composed from primitives."""

from __future__ import annotations

import math
from typing import Any

import ml_dtypes
import numpy as np

from .. import _dtype as D
from .. import functional as _F
from ..errors import AmberError, ShapeError
from ..ops import reduce as R
from ..ops.registry import Aval, Node, Primitive, is_grad_enabled, no_grad
from ..tensor import Tensor, _wrap_array
from .functional import _BN_CAPTURE, _capture_refused


def _floating(x: Tensor) -> Tensor:
    return x if x.dtype.is_floating else _F.cast(x, D.default_float())


def _moments(x: Tensor, axes: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Mean and biased variance over ``axes`` (kept as size-1 dims)."""
    count: Any = 1
    for a in axes:
        count = count * x.shape[a]
    mu = R.reduce_sum(x, axes=axes, keepdims=True) / count
    xc = x - mu
    return mu, R.reduce_sum(xc * xc, axes=axes, keepdims=True) / count


def _affine(y: Tensor, weight: Tensor | None, bias: Tensor | None, c: Any, op: str) -> Tensor:
    bshape = (1, c) + (1,) * (y.ndim - 2)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ShapeError(f"{op}: {name} has shape {tuple(t.shape)}, expected ({c},)")
    if weight is not None:
        y = y * _F.reshape(weight, bshape)
    if bias is not None:
        y = y + _F.reshape(bias, bshape)
    return y


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise (N, C, ...) input over each group of ``C / num_groups`` channels and all
    spatial positions (biased variance), then apply the per-channel affine transform."""
    if input.ndim < 2:
        raise ShapeError(f"group_norm: expects (N, C, ...) input, got {tuple(input.shape)}")
    n, c = input.shape[0], input.shape[1]
    if num_groups < 1 or c % num_groups:
        raise ShapeError(f"group_norm: num_channels ({c}) must be divisible by num_groups "
                         f"({num_groups})")
    x = _floating(input)
    g = _F.reshape(x, (n, num_groups, c // num_groups) + tuple(x.shape[2:]))
    mu, var = _moments(g, tuple(range(2, g.ndim)))
    y = _F.reshape((g - mu) * _F.rsqrt(var + eps), tuple(x.shape))
    return _affine(y, weight, bias, c, "group_norm")


def instance_norm(input: Tensor, running_mean: Tensor | None = None,
                  running_var: Tensor | None = None, weight: Tensor | None = None,
                  bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of each sample of (N, C, ...) input over its spatial
    positions. With running statistics and ``use_input_stats`` they are updated with the
    batch average of the instance statistics (unbiased variance); without
    ``use_input_stats`` the running statistics normalise instead."""
    if input.ndim < 3:
        raise ShapeError(f"instance_norm: expects (N, C, L...) input, got {tuple(input.shape)}")
    x = _floating(input)
    c = x.shape[1]
    bshape = (1, c) + (1,) * (x.ndim - 2)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ShapeError("instance_norm: use_input_stats=False needs running_mean and "
                             "running_var")
        y = (x - _F.reshape(running_mean, bshape)) * _F.reshape(_F.rsqrt(running_var + eps),
                                                               bshape)
        return _affine(y, weight, bias, c, "instance_norm")
    axes = tuple(range(2, x.ndim))
    mu, var = _moments(x, axes)
    if running_mean is not None and running_var is not None:
        if x._data is None or running_mean._data is None:
            raise _capture_refused(_BN_CAPTURE)
        count = math.prod(x.shape[2:])
        with no_grad():
            bm = _F.mean(_F.reshape(mu.detach(), (x.shape[0], c)), 0)
            bv = _F.mean(_F.reshape(var.detach(), (x.shape[0], c)), 0) * (
                count / max(count - 1, 1))
            running_mean.copy_(running_mean * (1.0 - momentum) + bm * momentum)
            running_var.copy_(running_var * (1.0 - momentum) + bv * momentum)
    return _affine((x - mu) * _F.rsqrt(var + eps), weight, bias, c, "instance_norm")


def rms_norm(input: Tensor, normalized_shape: Any, weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """``x / sqrt(mean(x**2) + eps) * weight`` over the trailing ``normalized_shape`` dims;
    ``eps=None`` is the machine epsilon of the input's dtype (as PyTorch)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or input.ndim < k or tuple(input.shape[input.ndim - k:]) != shape:
        raise ShapeError(f"rms_norm: input {tuple(input.shape)} does not end in "
                         f"normalized_shape {shape}")
    if weight is not None and tuple(weight.shape) != shape:
        raise ShapeError(f"rms_norm: weight has shape {tuple(weight.shape)}, expected {shape}")
    x = _floating(input)
    if eps is None:
        eps = float(ml_dtypes.finfo(x.dtype.np).eps)
    axes = tuple(range(x.ndim - k, x.ndim))
    ms = R.reduce_sum(x * x, axes=axes, keepdims=True) / float(math.prod(shape))
    y = x * _F.rsqrt(ms + eps)
    return y if weight is None else y * weight


def _norm(x: Tensor, p: float, dim: int, keepdim: bool) -> Tensor:
    """The p-norm along ``dim`` with a gradient of 0 (not NaN) at the zero vector."""
    if p == math.inf:
        return _F.amax(_F.abs(x), dim, keepdim)
    if p == 2:
        s = _F.sum(x * x, dim, keepdim)
        pos = s > 0
        return _F.where(pos, _F.sqrt(_F.where(pos, s, 1.0)), 0.0)
    if p == 1:
        return _F.sum(_F.abs(x), dim, keepdim)
    s = _F.sum(_F.pow(_F.abs(x), float(p)), dim, keepdim)
    pos = s > 0
    return _F.where(pos, _F.pow(_F.where(pos, s, 1.0), 1.0 / p), 0.0)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12,
              out: Any = None) -> Tensor:
    """``x / max(||x||_p, eps)`` along ``dim``."""
    x = _floating(input)
    return x / _F.maximum(_norm(x, p, dim, True), eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Cosine of the angle between ``x1`` and ``x2`` along ``dim`` (broadcast together);
    each norm is clamped to at least ``eps``."""
    a, b = _F.broadcast_tensors(_floating(x1), _floating(x2))
    na = _F.maximum(_norm(a, 2, dim, True), eps)
    nb = _F.maximum(_norm(b, 2, dim, True), eps)
    return _F.sum((a / na) * (b / nb), dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Tensor:
    """``||x1 - x2 + eps||_p`` along the last dim."""
    d = _floating(x1) - _floating(x2) + eps
    return _norm(d, p, -1, keepdim)


# ----------------------------------------------------------------------------- batch norm
# Batch norm in training mode with running statistics, in a few array passes. That form
# updates its running statistics in place, so it is never captured (``batch_norm``
# refuses it under capture): it only ever runs eagerly. Written out from primitives it is
# some twenty ops forward and thirty backward on the full activation; here the forward is
# five passes and one tape entry whose VJP is five more (PyTorch's fused formula). Under
# ``create_graph`` the VJP is written in amber ops instead, so higher-order gradients stay
# exact.

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def batch_norm_train_applies(input: Tensor, weight: Tensor | None, bias: Tensor | None) -> bool:
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


def _no_bn_kernel(*args: Any, **kwargs: Any) -> np.ndarray:
    raise AmberError("batch norm's training tape entry has no kernel of its own")


def _no_bn_infer(*args: Any, **kwargs: Any) -> Aval:
    raise AmberError("batch norm's training tape entry has no standalone type rule")


# NOTE: a tape entry, not a registered primitive: it never reaches a captured program.
_BN_TRAIN = Primitive("batch_norm_train", _no_bn_kernel, _no_bn_infer, {}, None)
_BN_TRAIN.def_vjp(_vjp)
