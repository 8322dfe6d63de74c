"""Shape and data-movement primitives: reshape, transpose, broadcast_to, slice, pad,
concat, take (gather) and scatter_add. Attributes are fully normalised (no -1 in
shapes, non-negative axes and bounds) by the front end."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._dtype import DTYPES, INTS, NUMERIC
from ..errors import OutOfRangeError, ShapeError
from . import _infer as I
from .registry import Aval, primitive


def _numel(shape: tuple) -> Any:
    return math.prod(shape)


# ----------------------------------------------------------------------------- reshape

def _reshape_infer(x: Aval, *, shape: tuple) -> Aval:
    shape = tuple(shape)
    for d in shape:
        if isinstance(d, int) and d < 0:
            raise ShapeError(f"reshape: target shape {I.fmt_shape(shape)} has a negative dim")
    if _numel(x.shape) != _numel(shape):
        raise ShapeError(
            f"reshape: cannot reshape {I.fmt_shape(x.shape)} ({_numel(x.shape)} elements) "
            f"to {I.fmt_shape(shape)} ({_numel(shape)} elements)"
        )
    return Aval(shape, x.dtype)


@primitive("reshape", infer=_reshape_infer, attrs={"shape": "dim[]"}, dtypes=DTYPES,
           any_dtype=True)
def reshape(x: np.ndarray, *, shape: tuple) -> np.ndarray:
    """Same elements in row-major order, new shape (same element count)."""
    return np.asarray(x).reshape(tuple(shape))


@reshape.def_vjp
def _(g, out, x, *, shape):
    return (reshape(g, shape=tuple(x.shape)),)


# ----------------------------------------------------------------------------- transpose

def _transpose_infer(x: Aval, *, perm: tuple[int, ...]) -> Aval:
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(
            f"transpose: perm {tuple(perm)} is not a permutation of the {x.ndim} dims of "
            f"{I.fmt_shape(x.shape)}"
        )
    return Aval(tuple(x.shape[p] for p in perm), x.dtype)


@primitive("transpose", infer=_transpose_infer, attrs={"perm": "int[]"}, dtypes=DTYPES,
           any_dtype=True)
def transpose(x: np.ndarray, *, perm: tuple[int, ...]) -> np.ndarray:
    """Permute dimensions: output dim i is input dim perm[i]."""
    return np.asarray(x).transpose(tuple(perm))


@transpose.def_vjp
def _(g, out, x, *, perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return (transpose(g, perm=tuple(inv)),)


# ----------------------------------------------------------------------------- broadcast_to

def _broadcast_infer(x: Aval, *, shape: tuple) -> Aval:
    shape = tuple(shape)
    ok = len(shape) >= x.ndim and all(
        d == 1 or d == t for d, t in zip(x.shape, shape[len(shape) - x.ndim:], strict=True)
    )
    if not ok:
        raise ShapeError(
            f"broadcast_to: cannot broadcast {I.fmt_shape(x.shape)} to {I.fmt_shape(shape)}"
        )
    return Aval(shape, x.dtype)


@primitive("broadcast_to", infer=_broadcast_infer, attrs={"shape": "dim[]"},
           dtypes=DTYPES, any_dtype=True)
def broadcast_to(x: np.ndarray, *, shape: tuple) -> np.ndarray:
    """Repeat size-1 (and missing leading) dims to ``shape`` (NumPy rules)."""
    shape = tuple(shape)
    if math.prod(shape) <= _SMALL_BROADCAST and x.ndim <= len(shape):
        # np.broadcast_to costs ~3 us of Python; for a small result a (read-only, like
        # the view) filled copy is several times cheaper. Shapes that do not broadcast
        # fail in the assignment, as they would in np.broadcast_to.
        out = np.empty(shape, dtype=x.dtype)
        out[...] = x
        out.flags.writeable = False
        return out
    return np.broadcast_to(x, shape)


_SMALL_BROADCAST = 4096  # elements


@broadcast_to.def_vjp
def _(g, out, x, *, shape):
    from .elementwise import unbroadcast

    return (unbroadcast(g, tuple(x.shape)),)


# ----------------------------------------------------------------------------- slice, pad

def _slice_len(start: int, stop: int, step: int) -> int:
    # NOTE: written with `<` rather than max() so symbolic sizes (capture) stay exact.
    n = (stop - start + step - 1) // step
    return 0 if n < 0 else n


def _slice_infer(x: Aval, *, starts: tuple, stops: tuple, steps: tuple) -> Aval:
    if not len(starts) == len(stops) == len(steps) == x.ndim:
        raise ShapeError(f"slice: need one start/stop/step per dim of {I.fmt_shape(x.shape)}")
    out = []
    for d, (a, b, s, n) in enumerate(zip(starts, stops, steps, x.shape, strict=True)):
        if s < 1 or a < 0 or b < a or (isinstance(n, int) and b > n):
            raise ShapeError(
                f"slice: bounds {a}:{b}:{s} are invalid for dim {d} of size {n} "
                f"(need 0 <= start <= stop <= size, step >= 1)"
            )
        out.append(_slice_len(a, b, s))
    return Aval(tuple(out), x.dtype)


_SLICE = {"starts": "int[]", "stops": "int[]", "steps": "int[]"}


@primitive("slice", infer=_slice_infer, attrs=_SLICE, dtypes=DTYPES, any_dtype=True)
def slice_(x: np.ndarray, *, starts: tuple, stops: tuple, steps: tuple) -> np.ndarray:
    """x[starts[i]:stops[i]:steps[i]] on every dim (0 <= start <= stop <= size, step >= 1)."""
    return x[tuple(slice(a, b, s) for a, b, s in zip(starts, stops, steps, strict=True))]


@slice_.def_vjp
def _(g, out, x, *, starts, stops, steps):
    lo, hi, interior = [], [], []
    for a, b, s, n in zip(starts, stops, steps, x.shape, strict=True):
        k = _slice_len(a, b, s)
        lo.append(a)
        interior.append(s - 1)
        used = a + k if s == 1 else (a + (k - 1) * s + 1 if k else a)
        hi.append(n - used)
    return (pad(g, lo=tuple(lo), hi=tuple(hi), interior=tuple(interior), value=0.0),)


def _padded(n: Any, lo: int, hi: int, interior: int) -> Any:
    if interior == 0:
        return lo + hi + n  # no test of n == 0, so symbolic sizes stay exact
    return lo + hi + (n + (n - 1) * interior if n != 0 else 0)


def _pad_infer(x: Aval, *, lo: tuple, hi: tuple, interior: tuple, value: float) -> Aval:
    if not len(lo) == len(hi) == len(interior) == x.ndim:
        raise ShapeError(f"pad: need one lo/hi/interior per dim of {I.fmt_shape(x.shape)}")
    if any(v < 0 for v in (*lo, *hi, *interior)):
        raise ShapeError(f"pad: amounts must be non-negative (lo={lo}, hi={hi})")
    out = tuple(_padded(n, a, b, i) for a, b, i, n in zip(lo, hi, interior, x.shape, strict=True))
    return Aval(out, x.dtype)


@primitive("pad", infer=_pad_infer,
           attrs={"lo": "int[]", "hi": "int[]", "interior": "int[]", "value": "float"},
           dtypes=DTYPES, any_dtype=True)
def pad(x: np.ndarray, *, lo: tuple, hi: tuple, interior: tuple, value: float) -> np.ndarray:
    """Insert ``lo``/``hi`` elements of ``value`` before/after each dim and ``interior``
    elements between neighbours (``value`` is a float64 converted to x's dtype by the rules
    of ``cast``: truncation, NaN -> 0, saturation)."""
    from .._dtype import from_numpy_dtype
    from .elementwise import cast

    shape = tuple(_padded(n, a, b, i) for a, b, i, n in zip(lo, hi, interior, x.shape, strict=True))
    fill = cast.impl(np.array(float(value), dtype=np.float64),
                     dtype=from_numpy_dtype(x.dtype).name)
    out = np.full(shape, fill, dtype=x.dtype)
    out[tuple(slice(a, a + (n - 1) * (i + 1) + 1 if n else a, i + 1)
              for a, i, n in zip(lo, interior, x.shape, strict=True))] = x
    return out


@pad.def_vjp
def _(g, out, x, *, lo, hi, interior, value):
    stops = tuple(a + n if i == 0 else (a + (n - 1) * (i + 1) + 1 if n else a)
                  for a, i, n in zip(lo, interior, x.shape, strict=True))
    return (slice_(g, starts=tuple(lo), stops=stops, steps=tuple(i + 1 for i in interior)),)


# ----------------------------------------------------------------------------- concat

def _concat_infer(*xs: Aval, axis: int) -> Aval:
    if not xs:
        raise ShapeError("concat: needs at least one tensor")
    dt = I.same_dtype("concat", *xs)
    first = xs[0]
    I.check_axis("concat", axis, first.ndim)
    total: Any = 0
    for x in xs:
        if x.ndim != first.ndim or any(
            a != b for i, (a, b) in enumerate(zip(x.shape, first.shape, strict=True)) if i != axis
        ):
            raise ShapeError(
                f"concat: shapes {', '.join(I.fmt_shape(x.shape) for x in xs)} differ outside "
                f"axis {axis}"
            )
        total = total + x.shape[axis]
    shape = list(first.shape)
    shape[axis] = total
    return Aval(tuple(shape), dt)


@primitive("concat", infer=_concat_infer, attrs={"axis": "int"}, n_inputs=None,
           dtypes=DTYPES, any_dtype=True)
def concat(*xs: np.ndarray, axis: int) -> np.ndarray:
    """Join tensors of one dtype along ``axis``; other dims must agree."""
    return np.concatenate(xs, axis=axis)


@concat.def_vjp
def _(g, out, *xs, axis):
    res = []
    start = 0
    for x in xs:
        n = x.shape[axis]
        starts = [0] * g.ndim
        stops = list(g.shape)
        starts[axis], stops[axis] = start, start + n
        res.append(slice_(g, starts=tuple(starts), stops=tuple(stops), steps=(1,) * g.ndim))
        start += n
    return tuple(res)


# ----------------------------------------------------------------------------- take, scatter_add

def _take_infer(x: Aval, idx: Aval, *, axis: int) -> Aval:
    I.check_declared("take", x)
    I.check_dtypes("take (index)", INTS, idx)
    I.check_axis("take", axis, x.ndim)
    return Aval(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype)


def _check_index(op: str, idx: np.ndarray, n: int) -> np.ndarray:
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < -n) | (idx >= n)].flat[0]
        raise OutOfRangeError(f"{op}: index {bad} is out of range for a dimension of size {n}")
    return np.where(idx < 0, idx + n, idx)


@primitive("take", infer=_take_infer, attrs={"axis": "int"}, n_inputs=2, dtypes=DTYPES,
           doc_dtypes="x any; idx int", any_dtype=True)
def take(x: np.ndarray, idx: np.ndarray, *, axis: int) -> np.ndarray:
    """Gather along ``axis``: out[..., j..., ...] = x[..., idx[j...], ...]. Negative
    indices count from the end; an index outside [-n, n) is an error."""
    return np.take(x, _check_index("take", idx, x.shape[axis]), axis=axis)


@take.def_vjp
def _(g, out, x, idx, *, axis):
    from .. import functional as _F

    return scatter_add(_F.zeros_like(x), idx, g, axis=axis), None


def _scatter_infer(base: Aval, idx: Aval, src: Aval, *, axis: int) -> Aval:
    I.check_declared("scatter_add", base)
    I.check_dtypes("scatter_add (index)", INTS, idx)
    I.same_dtype("scatter_add", base, src)
    I.check_axis("scatter_add", axis, base.ndim)
    want = base.shape[:axis] + idx.shape + base.shape[axis + 1:]
    if tuple(src.shape) != tuple(want):
        raise ShapeError(
            f"scatter_add: src shape {I.fmt_shape(src.shape)} should be {I.fmt_shape(want)} "
            f"for base {I.fmt_shape(base.shape)}, index {I.fmt_shape(idx.shape)}, axis {axis}"
        )
    return base


@primitive("scatter_add", infer=_scatter_infer, attrs={"axis": "int"}, n_inputs=3,
           dtypes=NUMERIC, accuracy="sum", doc_dtypes="base, src numeric; idx int")
def scatter_add(base: np.ndarray, idx: np.ndarray, src: np.ndarray, *, axis: int) -> np.ndarray:
    """Copy of ``base`` with ``src`` added at ``idx`` along ``axis`` (repeated indices
    accumulate): the transpose of ``take``."""
    n = base.shape[axis]
    idx = _check_index("scatter_add", idx, n)
    out = np.array(base, copy=True)
    moved = np.moveaxis(out, axis, 0)
    src_m = np.moveaxis(src.reshape(base.shape[:axis] + (idx.size,) + base.shape[axis + 1:]),
                        axis, 0)
    np.add.at(moved, idx.reshape(-1), src_m)
    return out


@scatter_add.def_vjp
def _(g, out, base, idx, src, *, axis):
    return g, None, take(g, idx, axis=axis)
