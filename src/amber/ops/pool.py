"""2-D pooling: ``max_pool2d`` and ``avg_pool2d`` with their transposes ``max_pool2d_grad``
and ``avg_pool2d_grad`` (opset 4).

Layout (PyTorch's): x (N, C, H, W); y (N, C, OH, OW). ``padding`` is (top, bottom, left,
right); ``stride`` and ``dilation`` are (h, w). Windows start at ``i*sh - top``; with
``ceil_mode`` the output size rounds up, but a window never starts past the input and its
top/left padding. Every window holds at least one input element (padding at most half the
dilated kernel), so neither op has an empty window."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._dtype import FLOATS
from ..errors import ShapeError
from . import _infer as I
from .registry import Aval, no_grad, primitive

_MAX = {"kernel_hw": "int[2]", "stride": "int[2]", "padding": "int[4]", "dilation": "int[2]",
        "ceil_mode": "bool"}
_AVG = {"kernel_hw": "int[2]", "stride": "int[2]", "padding": "int[4]", "ceil_mode": "bool",
        "count_include_pad": "bool"}


def out_size(n: Any, k: int, lo: int, hi: int, s: int, d: int, ceil_mode: bool) -> Any:
    """Output length of one spatial dim (symbolic ``n`` only without ``ceil_mode``)."""
    span = n + lo + hi - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    if not isinstance(n, int):
        raise ShapeError("pooling with ceil_mode needs static spatial sizes, got a symbolic "
                         f"size {n}; use ceil_mode=False or pad explicitly")
    if span < 0:
        return 0  # the window does not fit
    out = -(-span // s) + 1
    if (out - 1) * s >= n + lo:  # the last window must start inside the input or top pad
        out -= 1
    return out


def _check(op: str, x: Aval, kernel_hw, stride, padding, dilation, ceil_mode) -> tuple:
    I.check_declared(op, x)
    if x.ndim != 4:
        raise ShapeError(f"{op}: input must be (N, C, H, W), got {I.fmt_shape(x.shape)}")
    if min(kernel_hw) < 1 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ShapeError(f"{op}: kernel_hw, stride and dilation must be >= 1 and padding >= 0 "
                         f"(kernel_hw={tuple(kernel_hw)}, stride={tuple(stride)}, "
                         f"dilation={tuple(dilation)}, padding={tuple(padding)})")
    ext = [dilation[i] * (kernel_hw[i] - 1) + 1 for i in (0, 1)]
    if max(padding[0], padding[1]) > ext[0] // 2 or max(padding[2], padding[3]) > ext[1] // 2:
        raise ShapeError(f"{op}: padding {tuple(padding)} must be at most half of the "
                         f"(dilated) kernel {tuple(ext)}")
    n, c, h, w = x.shape
    oh = out_size(h, kernel_hw[0], padding[0], padding[1], stride[0], dilation[0], ceil_mode)
    ow = out_size(w, kernel_hw[1], padding[2], padding[3], stride[1], dilation[1], ceil_mode)
    if (isinstance(oh, int) and oh < 1) or (isinstance(ow, int) and ow < 1):
        raise ShapeError(f"{op}: kernel {tuple(kernel_hw)} (dilation {tuple(dilation)}) is "
                         f"larger than the padded input {I.fmt_shape(x.shape)}")
    return n, c, oh, ow


def _windows(x: np.ndarray, kernel_hw, stride, padding, dilation, out_hw, value: float
             ) -> np.ndarray:
    """(N, C, H, W) -> (N, C, OH, OW, KH*KW) copy of the windows, padding = ``value``."""
    (kh, kw), (oh, ow) = kernel_hw, out_hw
    need_h = (oh - 1) * stride[0] + dilation[0] * (kh - 1) + 1
    need_w = (ow - 1) * stride[1] + dilation[1] * (kw - 1) + 1
    hi_h = max(need_h - x.shape[2] - padding[0], 0)
    hi_w = max(need_w - x.shape[3] - padding[2], 0)
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0], hi_h), (padding[2], hi_w)),
                constant_values=value)
    win = np.lib.stride_tricks.sliding_window_view(xp, (need_h - (oh - 1) * stride[0],
                                                        need_w - (ow - 1) * stride[1]),
                                                   axis=(2, 3))
    win = win[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]][:, :, :oh, :ow]
    return win.reshape(win.shape[:4] + (kh * kw,))


def _first_max(win: np.ndarray) -> np.ndarray:
    """Index of each window's first element that equals its maximum or is NaN."""
    m = win.max(axis=-1, keepdims=True)
    return np.argmax((win == m) | (win != win), axis=-1)


def _positions(shape: tuple, kernel_hw, stride, padding, dilation, out_hw) -> tuple:
    """Row and column (in the unpadded input) of every window element, (OH, OW, KH*KW)."""
    (kh, kw), (oh, ow) = kernel_hw, out_hw
    p, q = np.divmod(np.arange(kh * kw), kw)
    r = np.arange(oh)[:, None, None] * stride[0] + p[None, None, :] * dilation[0] - padding[0]
    c = np.arange(ow)[None, :, None] * stride[1] + q[None, None, :] * dilation[1] - padding[2]
    return np.broadcast_to(r, (oh, ow, kh * kw)), np.broadcast_to(c, (oh, ow, kh * kw))


# ----------------------------------------------------------------------------- max


def _max_infer(x: Aval, *, kernel_hw, stride, padding, dilation, ceil_mode) -> Aval:
    return Aval(_check("max_pool2d", x, kernel_hw, stride, padding, dilation, ceil_mode),
                x.dtype)


@primitive("max_pool2d", infer=_max_infer, attrs=_MAX, n_inputs=1, dtypes=FLOATS, since=4,
           c=("infer_pool2d", "k_max_pool2d"))
def max_pool2d(x: np.ndarray, *, kernel_hw, stride, padding, dilation, ceil_mode) -> np.ndarray:
    """y[n, c, i, j] = max over the window's elements x[n, c, i*sh + p*dh - top,
    j*sw + q*dw - left] (padding counts as -inf); NaN if any of them is NaN."""
    oh, ow = _check("max_pool2d", Aval(x.shape, _dt(x)), kernel_hw, stride, padding, dilation,
                    ceil_mode)[2:]
    win = _windows(x, kernel_hw, stride, padding, dilation, (oh, ow), -np.inf)
    return np.ascontiguousarray(win.max(axis=-1), dtype=x.dtype)


@max_pool2d.def_vjp
def _(g, out, x, **attrs):
    return (max_pool2d_grad(x, g, **attrs),)


def _max_grad_infer(x: Aval, g: Aval, *, kernel_hw, stride, padding, dilation,
                    ceil_mode) -> Aval:
    I.check_declared("max_pool2d_grad", x, g)
    I.same_dtype("max_pool2d_grad", x, g)
    want = _check("max_pool2d_grad", x, kernel_hw, stride, padding, dilation, ceil_mode)
    if tuple(g.shape) != tuple(want):
        raise ShapeError(f"max_pool2d_grad: g has shape {I.fmt_shape(g.shape)}, expected the "
                         f"pooled shape {I.fmt_shape(want)}")
    return x


@primitive("max_pool2d_grad", infer=_max_grad_infer, attrs=_MAX, n_inputs=2, dtypes=FLOATS,
           accuracy="sum", since=4, c=("infer_pool2d", "k_max_pool2d_grad"))
def max_pool2d_grad(x: np.ndarray, g: np.ndarray, *, kernel_hw, stride, padding, dilation,
                    ceil_mode) -> np.ndarray:
    """The gradient of max_pool2d: each g[n, c, i, j] is added to the x element at the
    window's first position (row major, padding included) holding its maximum or a NaN;
    nothing when that position is padding. Windows add in row-major order."""
    oh, ow = g.shape[2], g.shape[3]
    win = _windows(x, kernel_hw, stride, padding, dilation, (oh, ow), -np.inf)
    arg = _first_max(win)  # (N, C, OH, OW)
    rows, cols = _positions(x.shape, kernel_hw, stride, padding, dilation, (oh, ow))
    r = np.take_along_axis(np.broadcast_to(rows, arg.shape + rows.shape[-1:]),
                           arg[..., None], -1)[..., 0]
    c = np.take_along_axis(np.broadcast_to(cols, arg.shape + cols.shape[-1:]),
                           arg[..., None], -1)[..., 0]
    n, ch, h, w = x.shape
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    plane = (np.arange(n * ch).reshape(n, ch, 1, 1) * (h * w))
    flat = np.where(inside, plane + r * w + c, n * ch * h * w)  # out of range -> spill slot
    dx = np.zeros(n * ch * h * w + 1, dtype=x.dtype)
    np.add.at(dx, flat.reshape(-1), g.reshape(-1))  # sequential: windows in row-major order
    return dx[:-1].reshape(x.shape)


@max_pool2d_grad.def_vjp
def _(a, out, x, g, *, kernel_hw, stride, padding, dilation, ceil_mode):
    # d/dx is zero almost everywhere; d/dg gathers the cotangent at each window's argmax.
    return None, max_pool2d_gather(x, a, kernel_hw, stride, padding, dilation,
                                   (g.shape[2], g.shape[3]))


def window_views(x: Any, kernel_hw, stride, padding, dilation, out_hw, value: float
                 ) -> tuple[list[Any], list[tuple[int, int]]]:
    """The KH*KW strided views (N, C, OH, OW) of the padded tensor x, one per kernel
    position (row major), and each position's offset into the unpadded input."""
    from .shape import pad, slice_

    (kh, kw), (oh, ow) = kernel_hw, out_hw
    need_h = (oh - 1) * stride[0] + dilation[0] * (kh - 1) + 1
    need_w = (ow - 1) * stride[1] + dilation[1] * (kw - 1) + 1
    h, w = x.shape[-2], x.shape[-1]
    hi_h, hi_w = max(need_h - h - padding[0], 0), max(need_w - w - padding[2], 0)
    lead = x.ndim - 2
    if padding[0] or padding[2] or hi_h or hi_w:
        x = pad(x, lo=(0,) * lead + (padding[0], padding[2]), hi=(0,) * lead + (hi_h, hi_w),
                interior=(0,) * x.ndim, value=value)
    views, offsets = [], []
    for i in range(kh):
        for j in range(kw):
            r, c = i * dilation[0], j * dilation[1]
            views.append(slice_(
                x, starts=(0,) * lead + (r, c),
                stops=tuple(x.shape[:lead]) + (r + (oh - 1) * stride[0] + 1,
                                               c + (ow - 1) * stride[1] + 1),
                steps=(1,) * lead + tuple(stride)))
            offsets.append((r - padding[0], c - padding[2]))
    return views, offsets


def first_max_hits(views: list[Any]) -> list[Any]:
    """Per view but the last: where it holds its window's first maximum or a NaN (read
    with ``where`` from the last view backwards, they select the first such view)."""
    from .elementwise import eq, logical_or, maximum, ne

    with no_grad():
        m = views[0]
        for v in views[1:]:
            m = maximum(m, v)
        return [logical_or(eq(v, m), ne(v, v)) for v in views[:-1]]


def max_pool2d_gather(x: Any, a: Any, kernel_hw, stride, padding, dilation, out_hw) -> Any:
    """a[n, c] read at the first maximum of each of x's windows (0 where that is padding):
    the transpose of max_pool2d_grad in g, written with primitives."""
    from .elementwise import where

    hits = first_max_hits(window_views(x, kernel_hw, stride, padding, dilation, out_hw,
                                       -np.inf)[0])
    views = window_views(a, kernel_hw, stride, padding, dilation, out_hw, 0.0)[0]
    out = views[-1]
    for v, hit in zip(reversed(views[:-1]), reversed(hits)):
        out = where(hit, v, out)
    return out


# ----------------------------------------------------------------------------- avg


def _avg_infer(x: Aval, *, kernel_hw, stride, padding, ceil_mode, count_include_pad) -> Aval:
    return Aval(_check("avg_pool2d", x, kernel_hw, stride, padding, (1, 1), ceil_mode),
                x.dtype)


def _divisors(hw: tuple, kernel_hw, stride, padding, out_hw, count_include_pad: bool
              ) -> np.ndarray:
    """(OH, OW) float64 divisor of each window: its elements inside the input, or with
    count_include_pad inside the padded input (windows clipped at its bottom/right)."""
    def one(n_out: int, n: int, k: int, s: int, lo: int, hi: int) -> np.ndarray:
        start = np.arange(n_out) * s - lo
        end = np.minimum(start + k, n + hi)
        if count_include_pad:
            return (end - start).astype(np.float64)
        return (np.minimum(end, n) - np.maximum(start, 0)).astype(np.float64)

    return np.outer(one(out_hw[0], hw[0], kernel_hw[0], stride[0], padding[0], padding[1]),
                    one(out_hw[1], hw[1], kernel_hw[1], stride[1], padding[2], padding[3]))


@primitive("avg_pool2d", infer=_avg_infer, attrs=_AVG, n_inputs=1, dtypes=FLOATS,
           accuracy="sum", since=4, c=("infer_pool2d", "k_avg_pool2d"))
def avg_pool2d(x: np.ndarray, *, kernel_hw, stride, padding, ceil_mode,
               count_include_pad) -> np.ndarray:
    """y[n, c, i, j] = (sum of the window's input elements: each row left to right, then
    the row sums top to bottom) / divisor: the
    count of window elements inside the input, or with count_include_pad inside the padded
    input (a ceil_mode window reaching past the bottom/right padding is clipped there)."""
    oh, ow = _check("avg_pool2d", Aval(x.shape, _dt(x)), kernel_hw, stride, padding, (1, 1),
                    ceil_mode)[2:]
    kh, kw = kernel_hw
    win = _windows(x, kernel_hw, stride, padding, (1, 1), (oh, ow), 0.0)
    win = win.reshape(win.shape[:4] + (kh, kw))
    total = None
    for p in range(kh):  # each window row left to right, then the rows top to bottom
        row = win[..., p, 0].copy()
        for q in range(1, kw):
            row += win[..., p, q]
        total = row if total is None else total + row
    div = _divisors(x.shape[2:], kernel_hw, stride, padding, (oh, ow), count_include_pad)
    return np.ascontiguousarray(total / div.astype(x.dtype), dtype=x.dtype)


@avg_pool2d.def_vjp
def _(g, out, x, **attrs):
    return (avg_pool2d_grad(g, input_hw=(x.shape[2], x.shape[3]), **attrs),)


def _avg_grad_infer(g: Aval, *, input_hw, kernel_hw, stride, padding, ceil_mode,
                    count_include_pad) -> Aval:
    I.check_declared("avg_pool2d_grad", g)
    if g.ndim != 4:
        raise ShapeError(f"avg_pool2d_grad: g must be (N, C, OH, OW), got {I.fmt_shape(g.shape)}")
    x = Aval((g.shape[0], g.shape[1], input_hw[0], input_hw[1]), g.dtype)
    want = _check("avg_pool2d_grad", x, kernel_hw, stride, padding, (1, 1), ceil_mode)
    if tuple(g.shape) != tuple(want):
        raise ShapeError(f"avg_pool2d_grad: g has shape {I.fmt_shape(g.shape)}, expected "
                         f"{I.fmt_shape(want)} for input_hw {tuple(input_hw)}")
    return x


@primitive("avg_pool2d_grad", infer=_avg_grad_infer, attrs={"input_hw": "int[2]", **_AVG},
           n_inputs=1, dtypes=FLOATS, accuracy="sum", since=4,
           c=("infer_pool2d", "k_avg_pool2d_grad"))
def avg_pool2d_grad(g: np.ndarray, *, input_hw, kernel_hw, stride, padding, ceil_mode,
                    count_include_pad) -> np.ndarray:
    """The transpose of avg_pool2d: dx[n, c, r, s] = sum over the windows (i, j) holding
    (r, s), in row-major window order, of g[n, c, i, j] / divisor[i, j]."""
    n, c, oh, ow = g.shape
    h, w = input_hw
    kh, kw = kernel_hw
    div = _divisors((h, w), kernel_hw, stride, padding, (oh, ow), count_include_pad)
    gd = g / div.astype(g.dtype)
    need_h = (oh - 1) * stride[0] + kh
    need_w = (ow - 1) * stride[1] + kw
    hp = max(need_h, h + padding[0])
    wp = max(need_w, w + padding[2])
    dxp = np.zeros((n, c, hp, wp), dtype=g.dtype)
    # NOTE: kernel positions in reverse so every element sums its windows in row-major order
    for p in range(kh - 1, -1, -1):
        for q in range(kw - 1, -1, -1):
            dxp[:, :, p:p + stride[0] * (oh - 1) + 1:stride[0],
                q:q + stride[1] * (ow - 1) + 1:stride[1]] += gd
    return np.ascontiguousarray(dxp[:, :, padding[0]:padding[0] + h, padding[2]:padding[2] + w])


@avg_pool2d_grad.def_vjp
def _(a, out, g, *, input_hw, **attrs):
    return (avg_pool2d(a, **attrs),)


def _dt(x: np.ndarray) -> Any:
    from .._dtype import from_numpy_dtype

    return from_numpy_dtype(x.dtype)
