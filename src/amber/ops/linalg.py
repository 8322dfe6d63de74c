"""matmul and 2-D convolution. Convolution is a closed family of three primitives:
``conv2d``, and its two transposes ``conv2d_input_grad`` and ``conv2d_weight_grad``;
the VJP of each is written with the other two, so gradients of any order exist.

Layouts (PyTorch's): x (N, C, H, W); w (O, C/groups, KH, KW); y (N, O, OH, OW).
``padding`` is (top, bottom, left, right) zeros; ``stride`` and ``dilation`` are (h, w)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._dtype import FLOATS, NUMERIC
from ..errors import ShapeError
from . import _infer as I
from .registry import Aval, primitive

# ----------------------------------------------------------------------------- matmul


def _matmul_infer(a: Aval, b: Aval) -> Aval:
    I.check_declared("matmul", a, b)
    dt = I.same_dtype("matmul", a, b)
    if a.ndim < 2 or b.ndim < 2:
        raise ShapeError(f"matmul: operands must have rank >= 2, got {I.fmt_shape(a.shape)} "
                         f"and {I.fmt_shape(b.shape)}")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(
            f"matmul: inner dimensions differ: {I.fmt_shape(a.shape)} @ {I.fmt_shape(b.shape)} "
            f"({a.shape[-1]} vs {b.shape[-2]})"
        )
    batch = I.broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
    return Aval(batch + (a.shape[-2], b.shape[-1]), dt)


@primitive("matmul", infer=_matmul_infer, n_inputs=2, dtypes=NUMERIC, accuracy="sum",
           onnx="MatMul")
def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched matrix product of rank >= 2 operands; batch dims broadcast."""
    return np.matmul(a, b)


@matmul.def_vjp
def _(g, out, a, b):
    from .elementwise import unbroadcast

    def mT(t: Any) -> Any:
        return t.transpose(-1, -2)

    # NOTE: a cotangent nobody needs (input without requires_grad) is not computed.
    ga = unbroadcast(g @ mT(b), a.shape) if a.requires_grad else None
    if not b.requires_grad:
        return ga, None
    if b.ndim == 2 and a.ndim > 2:
        # one matrix for every batch element (a linear layer's weight on (B, T, in)): its
        # cotangent is one product over all rows, not a product per batch element summed
        a = a.reshape(-1, a.shape[-1])
        g = g.reshape(-1, g.shape[-1])
    bd = b._data
    if (a.ndim == 2 and b.ndim == 2 and bd is not None and bd.flags.f_contiguous
            and not bd.flags.c_contiguous):
        # b is a transposed view (``x @ w.T``, as in a linear layer): compute its cotangent
        # as (g^T a)^T so it has b's layout and ``w``'s own gradient comes out row-major;
        # a column-major weight gradient makes every later update op stride badly.
        return ga, mT(mT(g) @ a)
    return ga, unbroadcast(mT(a) @ g, b.shape)


# ----------------------------------------------------------------------------- conv2d

_CONV = {"stride": "int[2]", "padding": "int[4]", "dilation": "int[2]", "groups": "int"}


def _out_size(n: Any, k: int, lo: int, hi: int, s: int, d: int) -> Any:
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


def _conv_out_hw(h: Any, w: Any, kh: int, kw: int, stride, padding, dilation) -> tuple:
    return (_out_size(h, kh, padding[0], padding[1], stride[0], dilation[0]),
            _out_size(w, kw, padding[2], padding[3], stride[1], dilation[1]))


def _check_conv(op: str, x_shape: tuple, w_shape: tuple, stride, padding, dilation,
                groups: int) -> tuple:
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ShapeError(f"{op}: input must be (N, C, H, W) and weight (O, C/groups, KH, KW), "
                         f"got {I.fmt_shape(x_shape)} and {I.fmt_shape(w_shape)}")
    if groups < 1 or min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ShapeError(f"{op}: need groups, stride, dilation >= 1 and padding >= 0")
    n, c, h, w = x_shape
    o, cg, kh, kw = w_shape
    if c != cg * groups or o % groups:
        raise ShapeError(
            f"{op}: input {I.fmt_shape(x_shape)} and weight {I.fmt_shape(w_shape)} disagree "
            f"for groups={groups}: need C == weight.shape[1] * groups and O divisible by groups"
        )
    oh, ow = _conv_out_hw(h, w, kh, kw, stride, padding, dilation)
    if (isinstance(oh, int) and oh < 1) or (isinstance(ow, int) and ow < 1):
        raise ShapeError(f"{op}: kernel {kh}x{kw} (dilation {tuple(dilation)}) is larger than "
                         f"the padded input {I.fmt_shape(x_shape)}")
    return n, o, oh, ow


def _conv_infer(x: Aval, w: Aval, *, stride, padding, dilation, groups) -> Aval:
    I.check_declared("conv2d", x, w)
    dt = I.same_dtype("conv2d", x, w)
    return Aval(_check_conv("conv2d", x.shape, w.shape, stride, padding, dilation, groups), dt)


def _windows(x: np.ndarray, kh: int, kw: int, oh: int, ow: int, stride, padding,
             dilation) -> np.ndarray:
    """(N, C, H, W) -> (N, C, OH, OW, KH, KW) view of the zero-padded input."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[1]), (padding[2], padding[3])))
    eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (eh, ew), axis=(2, 3))
    win = win[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]
    return win[:, :, :oh, :ow]


@primitive("conv2d", infer=_conv_infer, attrs=_CONV, n_inputs=2, dtypes=FLOATS,
           accuracy="sum")
def conv2d(x: np.ndarray, w: np.ndarray, *, stride, padding, dilation, groups) -> np.ndarray:
    """Cross-correlation: y[n, o, i, j] = sum_{c, p, q} x_pad[n, g*Cg + c, i*sh + p*dh,
    j*sw + q*dw] * w[o, c, p, q], where g = o // (O / groups)."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = _conv_out_hw(h, wd, kh, kw, stride, padding, dilation)
    win = _windows(x, kh, kw, oh, ow, stride, padding, dilation)
    win = win.reshape(n, groups, cg, oh, ow, kh, kw)
    wg = w.reshape(groups, o // groups, cg, kh, kw)
    y = np.einsum("ngchwpq,gocpq->ngohw", win, wg, optimize=True)
    return np.ascontiguousarray(y.reshape(n, o, oh, ow), dtype=x.dtype)


@conv2d.def_vjp
def _(g, out, x, w, *, stride, padding, dilation, groups):
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    dx = (conv2d_input_grad(g, w, input_hw=(x.shape[2], x.shape[3]), **kw_)
          if x.requires_grad else None)
    dw = (conv2d_weight_grad(x, g, kernel_hw=(w.shape[2], w.shape[3]), **kw_)
          if w.requires_grad else None)
    return dx, dw


def _input_grad_infer(g: Aval, w: Aval, *, input_hw, stride, padding, dilation, groups) -> Aval:
    I.check_declared("conv2d_input_grad", g, w)
    dt = I.same_dtype("conv2d_input_grad", g, w)
    x_shape = (g.shape[0], w.shape[1] * groups, input_hw[0], input_hw[1])
    want = _check_conv("conv2d_input_grad", x_shape, w.shape, stride, padding, dilation, groups)
    if tuple(g.shape) != tuple(want):
        raise ShapeError(f"conv2d_input_grad: g has shape {I.fmt_shape(g.shape)}, expected "
                         f"{I.fmt_shape(want)}")
    return Aval(x_shape, dt)


@primitive("conv2d_input_grad", infer=_input_grad_infer,
           attrs={"input_hw": "int[2]", **_CONV}, n_inputs=2, dtypes=FLOATS,
           accuracy="sum")
def conv2d_input_grad(g: np.ndarray, w: np.ndarray, *, input_hw, stride, padding, dilation,
                      groups) -> np.ndarray:
    """Transpose of conv2d with respect to its input: the x-gradient for output
    cotangent ``g`` (N, O, OH, OW); result (N, C, H, W) with (H, W) = input_hw."""
    n, o, oh, ow = g.shape
    _, cg, kh, kw = w.shape
    h, wd = input_hw
    hp, wp = h + padding[0] + padding[1], wd + padding[2] + padding[3]
    dxp = np.zeros((n, groups, cg, hp, wp), dtype=g.dtype)
    gg = g.reshape(n, groups, o // groups, oh, ow)
    wg = w.reshape(groups, o // groups, cg, kh, kw)
    sh, sw = stride
    for p in range(kh):
        for q in range(kw):
            r0, c0 = p * dilation[0], q * dilation[1]
            contrib = np.einsum("ngohw,goc->ngchw", gg, wg[:, :, :, p, q], optimize=True)
            dxp[:, :, :, r0:r0 + sh * (oh - 1) + 1:sh, c0:c0 + sw * (ow - 1) + 1:sw] += contrib
    dx = dxp[:, :, :, padding[0]:padding[0] + h, padding[2]:padding[2] + wd]
    return np.ascontiguousarray(dx.reshape(n, groups * cg, h, wd))


@conv2d_input_grad.def_vjp
def _(a, out, g, w, *, input_hw, stride, padding, dilation, groups):
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return (conv2d(a, w, **kw_),
            conv2d_weight_grad(a, g, kernel_hw=(w.shape[2], w.shape[3]), **kw_))


def _weight_grad_infer(x: Aval, g: Aval, *, kernel_hw, stride, padding, dilation,
                       groups) -> Aval:
    I.check_declared("conv2d_weight_grad", x, g)
    dt = I.same_dtype("conv2d_weight_grad", x, g)
    if x.ndim != 4 or g.ndim != 4:
        raise ShapeError("conv2d_weight_grad: x and g must be rank 4")
    w_shape = (g.shape[1], x.shape[1] // groups, kernel_hw[0], kernel_hw[1])
    want = _check_conv("conv2d_weight_grad", x.shape, w_shape, stride, padding, dilation, groups)
    if tuple(g.shape) != tuple(want):
        raise ShapeError(f"conv2d_weight_grad: g has shape {I.fmt_shape(g.shape)}, expected "
                         f"{I.fmt_shape(want)}")
    return Aval(w_shape, dt)


@primitive("conv2d_weight_grad", infer=_weight_grad_infer,
           attrs={"kernel_hw": "int[2]", **_CONV}, n_inputs=2, dtypes=FLOATS,
           accuracy="sum")
def conv2d_weight_grad(x: np.ndarray, g: np.ndarray, *, kernel_hw, stride, padding, dilation,
                       groups) -> np.ndarray:
    """Transpose of conv2d with respect to its weight: the w-gradient for input ``x`` and
    output cotangent ``g``; result (O, C/groups, KH, KW) with (KH, KW) = kernel_hw."""
    n, c, h, wd = x.shape
    o, oh, ow = g.shape[1], g.shape[2], g.shape[3]
    kh, kw = kernel_hw
    cg = c // groups
    win = _windows(x, kh, kw, oh, ow, stride, padding, dilation).reshape(
        n, groups, cg, oh, ow, kh, kw)
    gg = g.reshape(n, groups, o // groups, oh, ow)
    dw = np.einsum("ngchwpq,ngohw->gocpq", win, gg, optimize=True)
    return np.ascontiguousarray(dw.reshape(o, cg, kh, kw), dtype=x.dtype)


@conv2d_weight_grad.def_vjp
def _(b, out, x, g, *, kernel_hw, stride, padding, dilation, groups):
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return (conv2d_input_grad(g, b, input_hw=(x.shape[2], x.shape[3]), **kw_),
            conv2d(x, b, **kw_))
