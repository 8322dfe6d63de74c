"""Reduction primitives. ``axes`` are sorted, distinct and non-negative (the front end
normalises PyTorch's ``dim``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._dtype import DTYPES, NUMERIC, int64
from ..errors import ShapeError
from . import _infer as I
from .registry import Aval, primitive


def _reduced_shape(op: str, x: Aval, axes: tuple[int, ...], keepdims: bool) -> tuple:
    for a in axes:
        I.check_axis(op, a, x.ndim)
    if len(set(axes)) != len(axes):
        raise ShapeError(f"{op}: axes {axes} repeat a dimension")
    if list(axes) != sorted(axes):
        raise ShapeError(f"{op}: axes {axes} must be sorted (normalised attribute)")
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    return tuple(d for i, d in enumerate(x.shape) if i not in axes)


def _reduce_infer(op: str, allowed: tuple, *, empty_ok: bool) -> Any:
    def rule(x: Aval, *, axes: tuple[int, ...], keepdims: bool) -> Aval:
        I.check_dtypes(op, allowed, x)
        shape = _reduced_shape(op, x, tuple(axes), keepdims)
        if not empty_ok:
            for a in axes:
                if x.shape[a] == 0:
                    raise ShapeError(
                        f"{op}: cannot reduce an empty dimension (axis {a} of shape "
                        f"{I.fmt_shape(x.shape)}) - the result has no identity"
                    )
        return Aval(shape, x.dtype)

    return rule


_AX = {"axes": "int[]", "keepdims": "bool"}


def _reduction(name: str, dtypes: tuple, *, empty_ok: bool, accuracy: str = "exact") -> Any:
    return primitive(name, infer=_reduce_infer(name, dtypes, empty_ok=empty_ok), attrs=_AX,
                     dtypes=dtypes, accuracy=accuracy, c=("infer_reduce", "k_reduce"))


def _keepdims_shape(x: Any, axes: tuple[int, ...]) -> tuple:
    return tuple(1 if i in axes else d for i, d in enumerate(x.shape))


@_reduction("sum", NUMERIC, empty_ok=True, accuracy="sum")
def reduce_sum(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Sum over ``axes`` in the input dtype (integers wrap); an empty reduction is 0."""
    # np.add.reduce is what np.sum calls, minus about 1.5 us of Python dispatch
    return np.asarray(np.add.reduce(x, axis=tuple(axes), keepdims=keepdims, dtype=x.dtype))  # type: ignore[call-overload]


@reduce_sum.def_vjp
def _(g, out, x, *, axes, keepdims):
    from .. import functional as _F

    if not keepdims and tuple(axes) != tuple(range(len(axes))):
        # (reducing leading dims only, e.g. a full sum, needs no reshape: broadcasting
        # prepends the missing dims)
        g = _F.reshape_exact(g, _keepdims_shape(x, axes))
    return (_F.broadcast_to(g, x.shape),)


def _check_nonempty(op: str, x: np.ndarray, axes: tuple[int, ...]) -> None:
    for a in axes:
        if x.shape[a] == 0:
            raise ShapeError(f"{op}: cannot reduce an empty dimension (axis {a})")


@_reduction("max", DTYPES, empty_ok=False)
def reduce_max(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Maximum over ``axes``; NaN if any reduced element is NaN; error on an empty axis."""
    _check_nonempty("max", x, axes)
    return np.asarray(np.maximum.reduce(x, axis=tuple(axes), keepdims=keepdims))  # type: ignore[call-overload]


@_reduction("min", DTYPES, empty_ok=False)
def reduce_min(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Minimum over ``axes``; NaN if any reduced element is NaN; error on an empty axis."""
    _check_nonempty("min", x, axes)
    return np.asarray(np.minimum.reduce(x, axis=tuple(axes), keepdims=keepdims))  # type: ignore[call-overload]


def _extremum_vjp(g, out, x, *, axes, keepdims):
    from .. import functional as _F

    shape = _keepdims_shape(x, axes)
    if not keepdims:
        g = _F.reshape_exact(g, shape)
        out = _F.reshape_exact(out, shape)
    # Ties share the gradient evenly (as torch.amax does).
    hit = _F.where(x == out, _F.ones_like(x), _F.zeros_like(x))
    count = reduce_sum(hit, axes=axes, keepdims=True)
    return (g * hit / count,)


reduce_max.def_vjp(_extremum_vjp)
reduce_min.def_vjp(_extremum_vjp)


def _arg_infer(op: str, allowed: tuple) -> Any:
    def rule(x: Aval, *, axis: int, keepdims: bool) -> Aval:
        I.check_dtypes(op, allowed, x)
        I.check_axis(op, axis, x.ndim)
        if x.shape[axis] == 0:
            raise ShapeError(f"{op}: cannot reduce an empty dimension (axis {axis})")
        shape = _reduced_shape(op, x, (axis,), keepdims)
        return Aval(shape, int64)

    return rule


_ARG = {"axis": "int", "keepdims": "bool"}


def _arg_reduction(name: str) -> Any:
    return primitive(name, infer=_arg_infer(name, DTYPES), attrs=_ARG, dtypes=DTYPES,
                     c=("infer_arg", "k_arg"), doc_out="int64")


@_arg_reduction("argmax")
def argmax(x: np.ndarray, *, axis: int, keepdims: bool) -> np.ndarray:
    """Index (int64) of the first maximum along ``axis``; the first NaN counts as maximum
    (bool: False < True); error on an empty axis."""
    _check_nonempty("argmax", x, (axis,))
    return np.asarray(np.argmax(x, axis=axis, keepdims=keepdims)).astype(np.int64)


@_arg_reduction("argmin")
def argmin(x: np.ndarray, *, axis: int, keepdims: bool) -> np.ndarray:
    """Index (int64) of the first minimum along ``axis``; the first NaN counts as minimum
    (bool: False < True); error on an empty axis."""
    _check_nonempty("argmin", x, (axis,))
    return np.asarray(np.argmin(x, axis=axis, keepdims=keepdims)).astype(np.int64)
