"""ONNX QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear over amber's integer
storage dtypes (int8, uint8, int16, int32): per tensor, per axis and blocked scales,
rounding halves to even and saturating as the operators define."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _dtype as D
from .. import functional as _F
from ..capture.dims import DimExpr
from ..ops import elementwise as E
from ..ops import linalg as L
from ..ops import reduce as R
from ..ops import shape as S
from ..tensor import Tensor
from ._graph import Ctx, op
from ._ops_elementwise import need, onnx_dtype, sc
from ._ops_nn import _spatial
from ._ops_shape import axis

_QUANT = {"int8", "uint8", "int16"}


def _spread(c: Ctx, p: Tensor, x: Tensor) -> Tensor:
    """A scale or zero point made to broadcast against x: per tensor, per axis (1-D along
    ``axis``) or blocked (x's rank, each entry covering ``block_size`` along ``axis``)."""
    if p.ndim == 0 or (p.ndim == 1 and p.shape[0] == 1 and x.ndim != 1):
        return _F.reshape_exact(p, ())
    ax = axis(c, c.a("axis", 1), x.ndim)
    block = int(c.a("block_size", 0))
    if block <= 0:
        if p.ndim != 1:
            raise c.unsupported(f"a {p.ndim}-D scale without block_size")
        shape = [1] * x.ndim
        shape[ax] = p.shape[0]
        return _F.reshape_exact(p, tuple(shape))
    n = x.shape[ax]
    if isinstance(n, DimExpr) or p.ndim != x.ndim:
        raise c.unsupported("blocked quantization of a symbolic dim or with a scale of "
                            "another rank")
    index = Tensor._wrap(np.arange(int(n), dtype=np.int64) // block)
    return S.take(p, index, axis=ax)


def _limits(dt: D.DType) -> tuple[float, float]:
    info = np.iinfo(dt.np)  # type: ignore[type-var]
    return float(info.min), float(info.max)


def quantize(x: Tensor, scale: Tensor, zero: Tensor | None, out: D.DType) -> Tensor:
    """saturate(round_half_even(x / scale) + zero) in ``out``, computed in float32."""
    work = D.float32 if x.dtype is not D.float64 else D.float64
    q = _F.round(E.div(_F.cast(x, work), _F.cast(scale, work)))
    if zero is not None:
        q = E.add(q, _F.cast(zero, work))
    lo, hi = _limits(out)
    return _F.cast(_F.clamp(q, lo, hi), out)


@op("QuantizeLinear", since=10, notes="int8, uint8, int16 outputs; per tensor, per axis "
                                      "(13) and blocked (21) scales; halves to even")
def _quantize_linear(c: Ctx) -> Tensor:
    x, scale = c.t(0), c.t(1)
    need(c, x, D.FLOATS + (D.int32,))
    zero = c.t(2) if c.has(2) else None
    out = zero.dtype if zero is not None else onnx_dtype(c, int(c.a("output_dtype", 0) or 2))
    if out.name not in _QUANT:
        raise c.unsupported(f"QuantizeLinear to {out.name} (amber quantizes to int8, uint8 "
                            f"and int16)")
    c.a("saturate")  # only concerns the float8 types
    c.a("precision")
    return quantize(x, _spread(c, scale, x), None if zero is None else _spread(c, zero, x),
                    out)


@op("DequantizeLinear", since=10, notes="int8, uint8, int16, int32 inputs; per tensor, per "
                                        "axis (13) and blocked (21) scales")
def _dequantize_linear(c: Ctx) -> Tensor:
    x, scale = c.t(0), c.t(1)
    if x.dtype.name not in _QUANT | {"int32"}:
        raise c.unsupported(f"DequantizeLinear of {x.dtype.name}")
    need(c, scale, D.FLOATS, "scale")
    work = D.float32 if scale.dtype is not D.float64 else D.float64
    v = _F.cast(x, work)
    if c.has(2):
        v = E.sub(v, _F.cast(_spread(c, c.t(2), x), work))
    y = E.mul(v, _F.cast(_spread(c, scale, x), work))
    want = int(c.a("output_dtype", 0))
    return _F.cast(y, onnx_dtype(c, want) if want else scale.dtype)


@op("DynamicQuantizeLinear", since=11, notes="uint8, scale and zero point from the data's "
                                             "range (including 0)")
def _dynamic_quantize_linear(c: Ctx) -> Any:
    x = c.t(0)
    need(c, x, (D.float32,))
    axes = tuple(range(x.ndim))
    zero = sc(0.0, D.float32)
    lo = E.minimum(R.reduce_min(x, axes=axes, keepdims=False), zero)
    hi = E.maximum(R.reduce_max(x, axes=axes, keepdims=False), zero)
    scale = E.div(E.sub(hi, lo), sc(255.0, D.float32))
    safe = E.where(E.eq(scale, zero), sc(1.0, D.float32), scale)
    point = _F.cast(_F.clamp(_F.round(E.neg(E.div(lo, safe))), 0.0, 255.0), D.uint8)
    return quantize(x, safe, point, D.uint8), scale, point


def _int8_operands(c: Ctx, *xs: Tensor) -> None:
    for t in xs:
        if t.dtype.name not in ("int8", "uint8"):
            raise c.unsupported(f"{c.node.op_type} of {t.dtype.name} (int8 and uint8)")


def _requantize(c: Ctx, acc: Tensor, scales: tuple[int, int, int], w_scale_per_row: bool,
                zero: int, default: D.DType) -> Tensor:
    """saturate(round(acc * (s_a * s_b / s_y)) + zero), the factor in float32 and the rest
    in float64, as the reference computes it."""
    sa, sb, sy = (_F.cast(c.t(i), D.float32) for i in scales)
    if w_scale_per_row and sb.ndim == 1 and sb.shape[0] != 1:
        sb = _F.reshape_exact(sb, (1, sb.shape[0]) + (1,) * (acc.ndim - 2))
    y = E.mul(acc, _F.cast(E.div(E.mul(sa, sb), sy), D.float64))
    out = c.t(zero).dtype if c.has(zero) else default
    if c.has(zero):
        y = E.add(y, _F.cast(c.t(zero), D.float64))
    lo, hi = _limits(out)
    return _F.cast(_F.round(_F.clamp(y, lo, hi)), out)


@op("QLinearMatMul", since=10, notes="int8 and uint8; the integer product exact (in "
                                     "float64), rescaled as the reference does")
def _qlinear_matmul(c: Ctx) -> Tensor:
    a, b = c.t(0), c.t(3)
    _int8_operands(c, a, b)
    product = _F.matmul(_centred(c, a, 2), _centred(c, b, 5))  # integer sums below 2**53
    return _requantize(c, product, (1, 4, 6), False, 7, a.dtype)


def _centred(c: Ctx, x: Tensor, zero: int, per_row: bool = False) -> Tensor:
    """x - zero point, in float64 (integer values, exact); a 1-D zero point of a weight is
    per output channel (dim 0)."""
    v = _F.cast(x, D.float64)
    if not c.has(zero):
        return v
    z = _F.cast(c.t(zero), D.float64)
    if per_row and z.ndim == 1 and z.shape[0] != 1:
        z = _F.reshape_exact(z, (z.shape[0],) + (1,) * (x.ndim - 1))
    return E.sub(v, z)


@op("MatMulInteger", since=10, notes="int8 and uint8 to int32 (the product exact in "
                                     "float64)")
def _matmul_integer(c: Ctx) -> Tensor:
    a, b = c.t(0), c.t(1)
    _int8_operands(c, a, b)
    return _F.cast(_F.matmul(_centred(c, a, 2), _centred(c, b, 3)), D.int32)


@op("QLinearConv", since=10, notes="2-D, int8 and uint8; the integer convolution exact (in "
                                   "float64), rescaled and rounded as the reference does")
def _qlinear_conv(c: Ctx) -> Tensor:
    x, w = c.t(0), c.t(3)
    if x.ndim != 4 or x.dtype.name not in ("int8", "uint8"):
        raise c.unsupported("QLinearConv of a 4-D int8 or uint8 input")
    k = [int(d) for d in w.shape[2:]]
    st, dl, lo, hi = _spatial(c, x, k)
    acc = L.conv2d(_centred(c, x, 2), _centred(c, w, 5, per_row=True), stride=tuple(st),
                   padding=(lo[0], hi[0], lo[1], hi[1]), dilation=tuple(dl),
                   groups=int(c.a("group", 1)))
    if c.has(8):
        acc = E.add(acc, _F.reshape_exact(_F.cast(c.t(8), D.float64), (1, -1, 1, 1)))
    return _requantize(c, acc, (1, 4, 6), True, 7, x.dtype)


@op("ConvInteger", since=10, notes="2-D, int8 and uint8 to int32 (exact in float64)")
def _conv_integer(c: Ctx) -> Tensor:
    x, w = c.t(0), c.t(1)
    if x.ndim != 4 or x.dtype.name not in ("int8", "uint8"):
        raise c.unsupported("ConvInteger of a 4-D int8 or uint8 input")
    st, dl, lo, hi = _spatial(c, x, [int(d) for d in w.shape[2:]])
    acc = L.conv2d(_centred(c, x, 2), _centred(c, w, 3, per_row=True), stride=tuple(st),
                   padding=(lo[0], hi[0], lo[1], hi[1]), dilation=tuple(dl),
                   groups=int(c.a("group", 1)))
    return _F.cast(acc, D.int32)
