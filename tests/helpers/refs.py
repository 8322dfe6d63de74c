"""Independent reference implementations of amber's primitives.

Written element by element with explicit index arithmetic and Python scalar math, so
they share no code path with the NumPy kernels they check (no np.add/np.matmul/
np.take/np.pad/np.einsum/broadcasting in the computation itself)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import ml_dtypes
import numpy as np

Array = np.ndarray


# --------------------------------------------------------------------------- scalars


def is_float(dtype: Any) -> bool:
    """Float dtypes, bfloat16 included (NumPy calls ml_dtypes' bfloat16 kind 'V')."""
    dt = np.dtype(dtype)
    return dt.kind == "f" or dt == np.dtype(ml_dtypes.bfloat16)


STORAGE_FLOATS = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def wrap_int(v: int, dtype: Any) -> int:
    """Two's-complement wrap of a Python int to an integer ``dtype``."""
    bits = np.dtype(dtype).itemsize * 8
    v = int(v) & ((1 << bits) - 1)
    if np.dtype(dtype).kind == "u":
        return v
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def floor_div_int(a: int, b: int, dtype: Any) -> int:
    """amber's integer division: floor; x // 0 == 0; INT_MIN // -1 == INT_MIN."""
    if b == 0:
        return 0
    return wrap_int(int(a) // int(b), dtype)


def broadcast_shape(*shapes: Sequence[int]) -> tuple[int, ...]:
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(nd):
        dims = [s[len(s) - nd + i] for s in shapes if len(s) - nd + i >= 0]
        big = [d for d in dims if d != 1]
        if any(d != big[0] for d in big):
            raise ValueError(f"shapes {shapes} do not broadcast")
        out.append(big[0] if big else 1)
    return tuple(out)


def _source_index(idx: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    lead = len(idx) - len(shape)
    return tuple(0 if d == 1 else idx[lead + k] for k, d in enumerate(shape))


def elementwise(scalar_fn: Callable[..., Any], out_dtype: Any = None) -> Callable[..., Array]:
    """Reference for a broadcasting elementwise op from a scalar function. The scalar
    function receives Python scalars (float, int or bool) and the output dtype."""

    def ref(*xs: Array) -> Array:
        xs = tuple(np.asarray(x) for x in xs)
        shape = broadcast_shape(*(x.shape for x in xs))
        dt = np.dtype(out_dtype) if out_dtype is not None else xs[-1].dtype
        out = np.empty(shape, dtype=dt)
        for idx in np.ndindex(*shape):
            vals = [x[_source_index(idx, x.shape)].item() for x in xs]
            out[idx] = scalar_fn(*vals, dt)
        return out

    return ref


def to_float(dtype: Any, v: float) -> Any:
    """Round a Python float to ``dtype``'s precision (overflow gives inf)."""
    with np.errstate(over="ignore"):
        return np.array(v, dtype=np.float64).astype(dtype)[()]


def cast_scalar(v: Any, src: Any, dst: Any) -> Any:
    """amber's cast of one value from dtype ``src`` to ``dst``."""
    src, dst = np.dtype(src), np.dtype(dst)
    if dst.kind == "b":
        return bool(v != 0) if not (isinstance(v, float) and math.isnan(v)) else True
    if dst.kind in "iu":
        info = np.iinfo(dst)
        if is_float(src):
            if math.isnan(v):
                return 0
            if math.isinf(v):
                return info.max if v > 0 else info.min
            t = math.trunc(v)
            return min(max(t, info.min), info.max)
        return wrap_int(int(v), dst)
    if dst in STORAGE_FLOATS and not is_float(src):  # through float32 (docs/opset.md)
        return to_float(dst, float(np.array(v).astype(np.float32)))
    if dst in STORAGE_FLOATS:
        return to_float(dst, float(np.float32(v)))
    return to_float(dst, float(v))


# --------------------------------------------------------------------------- reductions


def _reduce(x: Array, axes: Sequence[int], keepdims: bool,
            combine: Callable[[list[Any]], Any], dtype: Any) -> Array:
    axes = tuple(axes)
    keep_shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    out = np.empty(keep_shape, dtype=dtype)
    for oidx in np.ndindex(*keep_shape):
        ranges = [range(x.shape[i]) if i in axes else [oidx[i]] for i in range(x.ndim)]
        vals = [x[idx].item() for idx in _product(ranges)]
        out[oidx] = combine(vals)
    if not keepdims:
        out = out.reshape(tuple(d for i, d in enumerate(x.shape) if i not in axes))
    return out


def _product(ranges: list[Any]) -> list[tuple[int, ...]]:
    res: list[tuple[int, ...]] = [()]
    for r in ranges:
        res = [p + (i,) for p in res for i in r]
    return res


def _float_sum(vals: list[float]) -> float:
    """Exactly rounded sum; IEEE rules where an infinity or NaN is present
    (math.fsum raises on inf + -inf, IEEE gives NaN)."""
    if all(math.isfinite(v) for v in vals):
        return math.fsum(vals)
    if any(math.isnan(v) for v in vals) or (math.inf in vals and -math.inf in vals):
        return math.nan
    return math.inf if math.inf in vals else -math.inf


def reduce_sum(x: Array, axes: Sequence[int], keepdims: bool) -> Array:
    if is_float(x.dtype):
        return _reduce(x, axes, keepdims, lambda v: to_float(x.dtype, _float_sum(v)), x.dtype)
    return _reduce(x, axes, keepdims, lambda v: wrap_int(sum(int(a) for a in v), x.dtype),
                   x.dtype)


def _extreme(vals: list[Any], better: Callable[[Any, Any], bool]) -> Any:
    if any(isinstance(v, float) and math.isnan(v) for v in vals):
        return math.nan
    best = vals[0]
    for v in vals[1:]:
        if better(v, best):
            best = v
    return best


def reduce_max(x: Array, axes: Sequence[int], keepdims: bool) -> Array:
    return _reduce(x, axes, keepdims, lambda v: _extreme(v, lambda a, b: a > b), x.dtype)


def reduce_min(x: Array, axes: Sequence[int], keepdims: bool) -> Array:
    return _reduce(x, axes, keepdims, lambda v: _extreme(v, lambda a, b: a < b), x.dtype)


def _arg(vals: list[Any], better: Callable[[Any, Any], bool]) -> int:
    for i, v in enumerate(vals):
        if isinstance(v, float) and math.isnan(v):
            return i
    best = 0
    for i, v in enumerate(vals):
        if better(v, vals[best]):
            best = i
    return best


def argmax(x: Array, axis: int, keepdims: bool) -> Array:
    return _reduce(x, (axis,), keepdims, lambda v: _arg(v, lambda a, b: a > b), np.int64)


def argmin(x: Array, axis: int, keepdims: bool) -> Array:
    return _reduce(x, (axis,), keepdims, lambda v: _arg(v, lambda a, b: a < b), np.int64)


# --------------------------------------------------------------------------- shape ops


def reshape(x: Array, shape: Sequence[int]) -> Array:
    flat = [x[idx] for idx in np.ndindex(*x.shape)]
    out = np.empty(tuple(shape), dtype=x.dtype)
    for k, idx in enumerate(np.ndindex(*out.shape)):
        out[idx] = flat[k]
    return out


def transpose(x: Array, perm: Sequence[int]) -> Array:
    out = np.empty(tuple(x.shape[p] for p in perm), dtype=x.dtype)
    for idx in np.ndindex(*out.shape):
        src = [0] * x.ndim
        for i, p in enumerate(perm):
            src[p] = idx[i]
        out[idx] = x[tuple(src)]
    return out


def broadcast_to(x: Array, shape: Sequence[int]) -> Array:
    out = np.empty(tuple(shape), dtype=x.dtype)
    for idx in np.ndindex(*out.shape):
        out[idx] = x[_source_index(idx, x.shape)]
    return out


def slice_(x: Array, starts: Sequence[int], stops: Sequence[int],
           steps: Sequence[int]) -> Array:
    lens = [max(0, -(-(b - a) // s)) for a, b, s in zip(starts, stops, steps)]
    out = np.empty(tuple(lens), dtype=x.dtype)
    for idx in np.ndindex(*out.shape):
        out[idx] = x[tuple(a + i * s for i, a, s in zip(idx, starts, steps))]
    return out


def pad(x: Array, lo: Sequence[int], hi: Sequence[int], interior: Sequence[int],
        value: float) -> Array:
    shape = tuple(a + b + (n + (n - 1) * i if n else 0)
                  for a, b, i, n in zip(lo, hi, interior, x.shape))
    out = np.empty(shape, dtype=x.dtype)
    for idx in np.ndindex(*shape):
        out[idx] = cast_scalar(value, np.float64, x.dtype)
    for idx in np.ndindex(*x.shape):
        out[tuple(a + k * (i + 1) for k, a, i in zip(idx, lo, interior))] = x[idx]
    return out


def concat(*xs: Array, axis: int) -> Array:
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    out = np.empty(tuple(shape), dtype=xs[0].dtype)
    offset = 0
    for x in xs:
        for idx in np.ndindex(*x.shape):
            dst = list(idx)
            dst[axis] += offset
            out[tuple(dst)] = x[idx]
        offset += x.shape[axis]
    return out


def _check(i: int, n: int) -> int:
    if not -n <= i < n:
        raise IndexError(f"index {i} out of range for size {n}")
    return i + n if i < 0 else i


def take(x: Array, idx: Array, axis: int) -> Array:
    shape = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
    out = np.empty(shape, dtype=x.dtype)
    k = idx.ndim
    for o in np.ndindex(*shape):
        j = _check(int(idx[o[axis:axis + k]]), x.shape[axis])
        out[o] = x[o[:axis] + (j,) + o[axis + k:]]
    return out


def scatter_add(base: Array, idx: Array, src: Array, axis: int) -> Array:
    out = base.copy()
    k = idx.ndim
    for s in np.ndindex(*src.shape):
        j = _check(int(idx[s[axis:axis + k]]), base.shape[axis])
        dst = s[:axis] + (j,) + s[axis + k:]
        v = out[dst].item() + src[s].item()
        out[dst] = wrap_int(v, base.dtype) if base.dtype.kind in "iu" else v
    return out


# --------------------------------------------------------------------------- linalg


def matmul(a: Array, b: Array) -> Array:
    batch = broadcast_shape(a.shape[:-2], b.shape[:-2])
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    out = np.empty(batch + (m, n), dtype=a.dtype)
    for bidx in np.ndindex(*batch):
        ai, bi = _source_index(bidx, a.shape[:-2]), _source_index(bidx, b.shape[:-2])
        for i in range(m):
            for j in range(n):
                terms = [a[ai + (i, p)].item() * b[bi + (p, j)].item() for p in range(k)]
                if is_float(a.dtype):
                    out[bidx + (i, j)] = math.fsum(terms)
                else:
                    out[bidx + (i, j)] = wrap_int(sum(terms), a.dtype)
    return out


def _conv_out(n: int, k: int, lo: int, hi: int, s: int, d: int) -> int:
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


def conv2d(x: Array, w: Array, stride: Sequence[int], padding: Sequence[int],
           dilation: Sequence[int], groups: int) -> Array:
    """Naive loops: y[n,o,i,j] = sum_{c,p,q} x[n, g*Cg+c, i*sh+p*dh-pt, j*sw+q*dw-pl] w[o,c,p,q]."""
    n_, c_, h, wd = x.shape
    o_, cg, kh, kw = w.shape
    oh = _conv_out(h, kh, padding[0], padding[1], stride[0], dilation[0])
    ow = _conv_out(wd, kw, padding[2], padding[3], stride[1], dilation[1])
    og = o_ // groups
    y = np.zeros((n_, o_, oh, ow), dtype=x.dtype)
    for n in range(n_):
        for o in range(o_):
            g = o // og
            for i in range(oh):
                for j in range(ow):
                    terms = []
                    for c in range(cg):
                        for p in range(kh):
                            for q in range(kw):
                                r = i * stride[0] + p * dilation[0] - padding[0]
                                s = j * stride[1] + q * dilation[1] - padding[2]
                                if 0 <= r < h and 0 <= s < wd:
                                    xv = float(x[n, g * cg + c, r, s])
                                    terms.append(xv * float(w[o, c, p, q]))
                    y[n, o, i, j] = math.fsum(terms)
    return y


def conv2d_input_grad(g: Array, w: Array, input_hw: Sequence[int], stride: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int], groups: int) -> Array:
    """Naive scatter loops: dx[n, gC+c, r, s] += g[n,o,i,j] w[o,c,p,q] (the adjoint of conv2d)."""
    n_, o_, oh, ow = g.shape
    _, cg, kh, kw = w.shape
    h, wd = input_hw
    og = o_ // groups
    acc: list[list[list[list[list[float]]]]] = [
        [[[[] for _ in range(wd)] for _ in range(h)] for _ in range(cg * groups)]
        for _ in range(n_)]
    for n in range(n_):
        for o in range(o_):
            gi = o // og
            for i in range(oh):
                for j in range(ow):
                    for c in range(cg):
                        for p in range(kh):
                            for q in range(kw):
                                r = i * stride[0] + p * dilation[0] - padding[0]
                                s = j * stride[1] + q * dilation[1] - padding[2]
                                if 0 <= r < h and 0 <= s < wd:
                                    acc[n][gi * cg + c][r][s].append(
                                        float(g[n, o, i, j]) * float(w[o, c, p, q]))
    dx = np.zeros((n_, cg * groups, h, wd), dtype=g.dtype)
    for idx in np.ndindex(*dx.shape):
        dx[idx] = math.fsum(acc[idx[0]][idx[1]][idx[2]][idx[3]])
    return dx


def conv2d_weight_grad(x: Array, g: Array, kernel_hw: Sequence[int], stride: Sequence[int],
                       padding: Sequence[int], dilation: Sequence[int], groups: int) -> Array:
    """Naive loops: dw[o,c,p,q] = sum_{n,i,j} g[n,o,i,j] x[n, gC+c, i*sh+p*dh-pt, j*sw+q*dw-pl]."""
    n_, c_, h, wd = x.shape
    _, o_, oh, ow = g.shape
    kh, kw = kernel_hw
    cg = c_ // groups
    og = o_ // groups
    dw = np.zeros((o_, cg, kh, kw), dtype=x.dtype)
    for o in range(o_):
        gi = o // og
        for c in range(cg):
            for p in range(kh):
                for q in range(kw):
                    terms = []
                    for n in range(n_):
                        for i in range(oh):
                            for j in range(ow):
                                r = i * stride[0] + p * dilation[0] - padding[0]
                                s = j * stride[1] + q * dilation[1] - padding[2]
                                if 0 <= r < h and 0 <= s < wd:
                                    xv = float(x[n, gi * cg + c, r, s])
                                    terms.append(float(g[n, o, i, j]) * xv)
                    dw[o, c, p, q] = math.fsum(terms)
    return dw


def _pool_geom(h: int, w: int, kernel_hw: Sequence[int], stride: Sequence[int],
               padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool
               ) -> tuple[int, int]:
    def one(n: int, k: int, lo: int, hi: int, s: int, d: int) -> int:
        span = n + lo + hi - d * (k - 1) - 1
        if span < 0:
            return 0
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= n + lo:
            out -= 1
        return out

    return (one(h, kernel_hw[0], padding[0], padding[1], stride[0], dilation[0]),
            one(w, kernel_hw[1], padding[2], padding[3], stride[1], dilation[1]))


def _pool_window(x2: Array, i: int, j: int, kernel_hw: Sequence[int], stride: Sequence[int],
                 padding: Sequence[int], dilation: Sequence[int]) -> list[tuple[int, int, Any]]:
    """(row, col, value) of every window position, row major; value None for padding."""
    h, w = x2.shape
    out = []
    for p in range(kernel_hw[0]):
        for q in range(kernel_hw[1]):
            r = i * stride[0] + p * dilation[0] - padding[0]
            c = j * stride[1] + q * dilation[1] - padding[2]
            out.append((r, c, x2[r, c] if 0 <= r < h and 0 <= c < w else None))
    return out


def _first_max(win: list[tuple[int, int, Any]]) -> int:
    vals = [-math.inf if v is None else float(v) for _, _, v in win]
    if any(math.isnan(v) for v in vals):
        return next(k for k, v in enumerate(vals) if math.isnan(v))
    return vals.index(max(vals))


def max_pool2d(x: Array, kernel_hw: Sequence[int], stride: Sequence[int], padding: Sequence[int],
               dilation: Sequence[int], ceil_mode: bool) -> Array:
    """Naive loops: the maximum of each window (padding -inf), NaN if the window has one."""
    n_, c_, h, w = x.shape
    oh, ow = _pool_geom(h, w, kernel_hw, stride, padding, dilation, ceil_mode)
    y = np.zeros((n_, c_, oh, ow), dtype=x.dtype)
    for n, c, i, j in np.ndindex(n_, c_, oh, ow):
        win = _pool_window(x[n, c], i, j, kernel_hw, stride, padding, dilation)
        k = _first_max(win)
        y[n, c, i, j] = -math.inf if win[k][2] is None else win[k][2]
    return y


def max_pool2d_grad(x: Array, g: Array, kernel_hw: Sequence[int], stride: Sequence[int],
                    padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool) -> Array:
    """Naive loops: g of each window added (in window order) at its first maximum."""
    n_, c_, h, w = x.shape
    dx = np.zeros_like(x)
    for n, c, i, j in np.ndindex(*g.shape):
        win = _pool_window(x[n, c], i, j, kernel_hw, stride, padding, dilation)
        r, s, v = win[_first_max(win)]
        if v is not None:
            dx[n, c, r, s] += g[n, c, i, j]
    return dx


def _avg_divisor(h: int, w: int, i: int, j: int, kernel_hw: Sequence[int],
                 stride: Sequence[int], padding: Sequence[int], count_include_pad: bool) -> int:
    r0, c0 = i * stride[0] - padding[0], j * stride[1] - padding[2]
    r1 = min(r0 + kernel_hw[0], h + padding[1])
    c1 = min(c0 + kernel_hw[1], w + padding[3])
    if not count_include_pad:
        r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
    return (r1 - r0) * (c1 - c0)


def avg_pool2d(x: Array, kernel_hw: Sequence[int], stride: Sequence[int], padding: Sequence[int],
               ceil_mode: bool, count_include_pad: bool) -> Array:
    """Naive loops: the exact sum of each window's input elements over its divisor."""
    n_, c_, h, w = x.shape
    oh, ow = _pool_geom(h, w, kernel_hw, stride, padding, (1, 1), ceil_mode)
    y = np.zeros((n_, c_, oh, ow), dtype=x.dtype)
    for n, c, i, j in np.ndindex(n_, c_, oh, ow):
        win = _pool_window(x[n, c], i, j, kernel_hw, stride, padding, (1, 1))
        total = math.fsum(float(v) for _, _, v in win if v is not None)
        y[n, c, i, j] = total / _avg_divisor(h, w, i, j, kernel_hw, stride, padding,
                                             count_include_pad)
    return y


def avg_pool2d_grad(g: Array, input_hw: Sequence[int], kernel_hw: Sequence[int],
                    stride: Sequence[int], padding: Sequence[int], ceil_mode: bool,
                    count_include_pad: bool) -> Array:
    """Naive scatter loops: g / divisor added to every input element of the window."""
    n_, c_, oh, ow = g.shape
    h, w = input_hw
    acc: dict[tuple[int, ...], list[float]] = {}
    for n, c, i, j in np.ndindex(*g.shape):
        d = _avg_divisor(h, w, i, j, kernel_hw, stride, padding, count_include_pad)
        for r, s, v in _pool_window(np.zeros((h, w)), i, j, kernel_hw, stride, padding,
                                    (1, 1)):
            if v is not None:
                acc.setdefault((n, c, r, s), []).append(float(g[n, c, i, j]) / d)
    dx = np.zeros((n_, c_, h, w), dtype=g.dtype)
    for idx, terms in acc.items():
        dx[idx] = math.fsum(terms)
    return dx
