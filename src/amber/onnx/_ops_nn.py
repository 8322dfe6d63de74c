"""ONNX neural-network operators: matrix products, convolution, pooling,
normalisation, softmax and reductions, composed from amber primitives."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _dtype as D
from .. import functional as F
from ..capture.dims import DimExpr
from ..ops import elementwise as E
from ..ops import linalg as L
from ..ops import reduce as R
from ..ops import shape as S
from ..tensor import Tensor
from ._graph import Ctx, op
from ._ops_elementwise import need, sc
from ._ops_shape import axis

# ----------------------------------------------------------------------------- products


@op("MatMul", notes="numpy matmul rules (1-D operands, batch broadcasting)")
def _matmul(c: Ctx) -> Tensor:
    a, b = c.t(0), c.t(1)
    need(c, a, D.NUMERIC)
    return F.matmul(a, b)


@op("Gemm", notes="alpha, beta, transA, transB; C broadcast")
def _gemm(c: Ctx) -> Tensor:
    a, b = c.t(0), c.t(1)
    need(c, a, D.NUMERIC)
    if c.a("transA", 0):
        a = S.transpose(a, perm=(1, 0))
    if c.a("transB", 0):
        b = S.transpose(b, perm=(1, 0))
    y = L.matmul(a, b)
    alpha, beta = c.a("alpha", 1.0), c.a("beta", 1.0)
    if alpha != 1.0:
        y = E.mul(y, sc(alpha, y.dtype))
    if c.has(2):
        cc = c.t(2)
        if beta != 1.0:
            cc = E.mul(cc, sc(beta, cc.dtype))
        y = E.add(y, cc)
    return y


# ----------------------------------------------------------------------------- windows


def _spatial(c: Ctx, x: Tensor, k: list[int]) -> tuple[list[int], list[int], list[Any],
                                                       list[Any]]:
    """strides, dilations, pads begin, pads end for a conv or pool over x's spatial dims."""
    nd = len(k)
    ks = c.a("kernel_shape")
    if ks is not None and [int(v) for v in ks][-nd:] != [int(v) for v in k] and \
            c.node.op_type in ("Conv", "ConvTranspose"):
        raise c.unsupported(f"kernel_shape {list(ks)} differs from the weight's {k}")
    strides = list(c.a("strides", [1] * nd))
    dil = list(c.a("dilations", [1] * nd))
    pads = list(c.a("pads", [0] * (2 * nd)))
    auto = c.a("auto_pad", "NOTSET")
    lo, hi = pads[:nd], pads[nd:]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        lo, hi = [], []
        for j in range(nd):
            n = x.shape[2 + j]
            if isinstance(n, DimExpr):
                raise c.unsupported("auto_pad SAME on a symbolic spatial dim")
            out = -(-n // strides[j])
            total = max((out - 1) * strides[j] + (k[j] - 1) * dil[j] + 1 - n, 0)
            small, big = total // 2, total - total // 2
            lo.append(small if auto == "SAME_UPPER" else big)
            hi.append(big if auto == "SAME_UPPER" else small)
    elif auto == "VALID":
        lo, hi = [0] * nd, [0] * nd
    elif auto != "NOTSET":
        raise c.unsupported(f"auto_pad {auto!r}")
    return strides, dil, lo, hi


def _to2d(x: Tensor) -> Tensor:
    """(N, C, L) -> (N, C, 1, L)."""
    return F.reshape_exact(x, (x.shape[0], x.shape[1], 1, x.shape[2]))


def _from2d(y: Tensor) -> Tensor:
    return F.reshape_exact(y, (y.shape[0], y.shape[1], y.shape[3]))


@op("Conv", notes="1-D and 2-D, groups, dilations, pads, auto_pad; float")
def _conv(c: Ctx) -> Tensor:
    x, w = c.t(0), c.t(1)
    need(c, x, D.FLOATS)
    nd = x.ndim - 2
    if nd not in (1, 2):
        raise c.unsupported(f"{nd}-D convolution (amber has 1-D and 2-D)")
    k = [int(d) for d in w.shape[2:]]
    st, dl, lo, hi = _spatial(c, x, k)
    if nd == 1:
        x, w = _to2d(x), _to2d(w)
        st, dl, lo, hi = [1] + st, [1] + dl, [0] + lo, [0] + hi
    y = L.conv2d(x, w, stride=tuple(st), padding=(lo[0], hi[0], lo[1], hi[1]),
                 dilation=tuple(dl), groups=int(c.a("group", 1)))
    if c.has(2):
        y = E.add(y, F.reshape_exact(c.t(2), (1, y.shape[1], 1, 1)))
    return _from2d(y) if nd == 1 else y


@op("ConvTranspose", notes="1-D and 2-D, groups, dilations, pads, output_padding, "
                           "output_shape, auto_pad; float")
def _conv_transpose(c: Ctx) -> Tensor:
    x, w = c.t(0), c.t(1)
    need(c, x, D.FLOATS)
    nd = x.ndim - 2
    if nd not in (1, 2):
        raise c.unsupported(f"{nd}-D transposed convolution (amber has 1-D and 2-D)")
    k = [int(d) for d in w.shape[2:]]
    ks = c.a("kernel_shape")
    if ks is not None and [int(v) for v in ks] != k:
        raise c.unsupported(f"kernel_shape {list(ks)} differs from the weight's {k}")
    strides = list(c.a("strides", [1] * nd))
    dil = list(c.a("dilations", [1] * nd))
    opad = list(c.a("output_padding", [0] * nd))
    pads = list(c.a("pads", [0] * (2 * nd)))
    out_shape = c.a("output_shape")
    auto = c.a("auto_pad", "NOTSET")
    full = [strides[j] * (x.shape[2 + j] - 1) + opad[j] + (k[j] - 1) * dil[j] + 1
            for j in range(nd)]
    if out_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        want = list(out_shape)[-nd:] if out_shape is not None else \
            [x.shape[2 + j] * strides[j] for j in range(nd)]
        pads = [0] * (2 * nd)
        for j in range(nd):
            total = full[j] - want[j]
            if isinstance(total, DimExpr):
                raise c.unsupported("output_shape/auto_pad SAME on a symbolic dim")
            if total < 0:
                raise c.unsupported("output_shape larger than the full transposed output")
            small, big = total // 2, total - total // 2
            if auto == "SAME_LOWER":
                pads[j], pads[j + nd] = big, small
            else:
                pads[j], pads[j + nd] = small, big
    lo, hi = pads[:nd], pads[nd:]
    out = [full[j] - lo[j] - hi[j] for j in range(nd)]
    if any(not isinstance(p, DimExpr) and p >= s for p, s in zip(opad, strides)):
        raise c.unsupported("output_padding must be smaller than the stride")
    if nd == 1:
        x, w = _to2d(x), _to2d(w)
        strides, dil, lo, hi, out = [1] + strides, [1] + dil, [0] + lo, [0] + hi, [1] + out
    y = L.conv2d_input_grad(x, w, input_hw=tuple(out), stride=tuple(strides),
                            padding=(lo[0], hi[0], lo[1], hi[1]), dilation=tuple(dil),
                            groups=int(c.a("group", 1)))
    if c.has(2):
        y = E.add(y, F.reshape_exact(c.t(2), (1, y.shape[1], 1, 1)))
    return _from2d(y) if nd == 1 else y


def _pool_out(c: Ctx, n: Any, k: int, s: int, d: int, lo: int, hi: int, ceil: bool) -> Any:
    span = n + lo + hi - ((k - 1) * d + 1)
    if not ceil:
        return span // s + 1
    out = -((-span) // s) + 1
    if isinstance(out, DimExpr):
        raise c.unsupported("ceil_mode on a symbolic spatial dim")
    if (out - 1) * s >= n + lo:  # the last window would start in the end padding
        out -= 1
    return out


def _windows(c: Ctx, x: Tensor, k: list[int], value: float, extra_value: float | None = None
             ) -> tuple[list[Tensor], list[Any]]:
    """Every kernel offset's strided view of the padded (N, C, H, W) input."""
    st, dl, lo, hi = _spatial(c, x, k)
    ceil = bool(c.a("ceil_mode", 0))
    outs = [_pool_out(c, x.shape[2 + j], k[j], st[j], dl[j], lo[j], hi[j], ceil)
            for j in range(2)]
    need_ = [(outs[j] - 1) * st[j] + (k[j] - 1) * dl[j] + 1 for j in range(2)]
    extra = [need_[j] - x.shape[2 + j] - lo[j] - hi[j] for j in range(2)]
    extra = [0 if isinstance(e, DimExpr) or e < 0 else e for e in extra]
    if any(lo) or any(hi):
        x = S.pad(x, lo=(0, 0, lo[0], lo[1]), hi=(0, 0, hi[0], hi[1]), interior=(0,) * 4,
                  value=value)
    if any(extra):
        x = S.pad(x, lo=(0,) * 4, hi=(0, 0, extra[0], extra[1]), interior=(0,) * 4,
                  value=value if extra_value is None else extra_value)
    views = []
    for i in range(k[0]):
        for j in range(k[1]):
            r, q = i * dl[0], j * dl[1]
            views.append(S.slice_(
                x, starts=(0, 0, r, q),
                stops=(x.shape[0], x.shape[1], r + (outs[0] - 1) * st[0] + 1,
                       q + (outs[1] - 1) * st[1] + 1),
                steps=(1, 1, st[0], st[1])))
    return views, outs


def _pool_input(c: Ctx, dtypes: Any = D.FLOATS) -> tuple[Tensor, list[int], bool]:
    x = c.t(0)
    need(c, x, dtypes)
    k = list(c.a("kernel_shape"))
    if len(k) == 1 and x.ndim == 3:
        return _to2d(x), [1, k[0]], True
    if len(k) != 2 or x.ndim != 4:
        raise c.unsupported(f"{len(k)}-D pooling (amber has 1-D and 2-D)")
    return x, k, False


def _with_1d(c: Ctx, names: tuple[str, ...]) -> None:
    for nm in names:
        v = c.attrs.get(nm)
        if v is not None:
            v = list(v)
            nd = len(v) // 2 if nm == "pads" else len(v)
            if nd == 1:
                c.attrs[nm] = [0, v[0], 0, v[1]] if nm == "pads" else [1, v[0]]


@op("MaxPool", notes="1-D and 2-D, pads, strides, dilations (10), ceil_mode (10); the "
                     "Indices output is not supported")
def _maxpool(c: Ctx) -> Tensor:
    if len(c.node.output) > 1 and c.node.output[1]:
        raise c.unsupported("the Indices output of MaxPool")
    if c.a("storage_order", 0):
        raise c.unsupported("storage_order = 1")
    x, k, one = _pool_input(c, D.NUMERIC)  # int8/uint8 (opset 12): padding is INT_MIN
    if one:
        _with_1d(c, ("strides", "dilations", "pads"))
    views, _ = _windows(c, x, k, -math.inf)
    m = views[0]
    for v in views[1:]:
        m = E.maximum(m, v)
    return _from2d(m) if one else m


@op("AveragePool", notes="1-D and 2-D, pads, count_include_pad, ceil_mode (10), "
                         "dilations (19)")
def _avgpool(c: Ctx) -> Tensor:
    x, k, one = _pool_input(c)
    if one:
        _with_1d(c, ("strides", "dilations", "pads"))
    views, _ = _windows(c, x, k, 0.0)
    total = views[0]
    for v in views[1:]:
        total = E.add(total, v)
    # the divisor: how many elements (or padded positions) each window covers
    ones = S.broadcast_to(sc(1, x.dtype), shape=(1, 1, x.shape[2], x.shape[3]))
    inc = bool(c.a("count_include_pad", 0))
    cv, _ = _windows(c, ones, k, 1.0 if inc else 0.0, 0.0)
    cnt = cv[0]
    for v in cv[1:]:
        cnt = E.add(cnt, v)
    y = E.div(total, cnt)
    return _from2d(y) if one else y


@op("LpPool", since=11, notes="1-D and 2-D")
def _lppool(c: Ctx) -> Tensor:
    x, k, one = _pool_input(c)
    if one:
        _with_1d(c, ("strides", "dilations", "pads"))
    p = int(c.a("p", 2))
    if p < 1:
        raise c.unsupported(f"LpPool with p = {p}")
    xp = E.abs_(x) if p == 1 else E.mul(x, x) if p == 2 else \
        E.pow_(E.abs_(x), sc(p, x.dtype))
    views, _ = _windows(c, xp, k, 0.0)
    total = views[0]
    for v in views[1:]:
        total = E.add(total, v)
    y = total if p == 1 else E.sqrt(total) if p == 2 else \
        E.pow_(total, sc(1.0 / p, x.dtype))
    return _from2d(y) if one else y


@op("GlobalAveragePool")
def _gap(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    axes = tuple(range(2, x.ndim))
    return E.div(R.reduce_sum(x, axes=axes, keepdims=True), _count(x, axes))


@op("GlobalMaxPool")
def _gmp(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return R.reduce_max(x, axes=tuple(range(2, x.ndim)), keepdims=True)


def _count(x: Tensor, axes: tuple[int, ...]) -> Tensor:
    n: Any = 1
    for a in axes:
        n = n * x.shape[a]
    return F.scalar(n, x.dtype)


# ----------------------------------------------------------------------------- normalisation


def _bshape(x: Tensor, ch: int = 1) -> tuple:
    return (1, x.shape[ch]) + (1,) * (x.ndim - 2)


@op("BatchNormalization", notes="inference (running statistics); training_mode refused")
def _batchnorm(c: Ctx) -> Tensor:
    if c.a("training_mode", 0) or (c.opset < 14 and len([o for o in c.node.output if o]) > 1):
        raise c.unsupported("BatchNormalization in training mode")
    if c.opset < 9 and not c.a("spatial", 1):
        raise c.unsupported("BatchNormalization with spatial = 0")
    x, scale, b, mean, var = (c.t(i) for i in range(5))
    need(c, x, D.FLOATS)
    eps = c.a("epsilon", 1e-5)
    bs = _bshape(x)
    inv = E.div(scale, E.sqrt(E.add(var, sc(eps, var.dtype))))
    y = E.mul(E.sub(x, F.reshape_exact(mean, bs)), F.reshape_exact(inv, bs))
    return E.add(y, F.reshape_exact(b, bs))


def _moments(x: Tensor, axes: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    n = _count(x, axes)
    mu = E.div(R.reduce_sum(x, axes=axes, keepdims=True), n)
    xc = E.sub(x, mu)
    return mu, E.div(R.reduce_sum(E.mul(xc, xc), axes=axes, keepdims=True), n)


@op("InstanceNormalization")
def _instancenorm(c: Ctx) -> Tensor:
    x, scale, b = c.t(0), c.t(1), c.t(2)
    need(c, x, D.FLOATS)
    mu, var = _moments(x, tuple(range(2, x.ndim)))
    y = E.div(E.sub(x, mu), E.sqrt(E.add(var, sc(c.a("epsilon", 1e-5), x.dtype))))
    bs = _bshape(x)
    return E.add(E.mul(y, F.reshape_exact(scale, bs)), F.reshape_exact(b, bs))


@op("LayerNormalization", since=17, notes="Mean and InvStdDev outputs; stash_type float")
def _layernorm(c: Ctx) -> Any:
    x = c.t(0)
    need(c, x, D.FLOATS)
    a = axis(c, c.a("axis", -1), x.ndim)
    axes = tuple(range(a, x.ndim))
    mu, var = _moments(x, axes)
    inv = E.div(sc(1, x.dtype), E.sqrt(E.add(var, sc(c.a("epsilon", 1e-5), x.dtype))))
    y = E.mul(E.sub(x, mu), inv)
    y = E.mul(y, c.t(1))
    if c.has(2):
        y = E.add(y, c.t(2))
    return y, mu, inv


@op("GroupNormalization", since=18, notes="scale and bias per group (18) or channel (21)")
def _groupnorm(c: Ctx) -> Tensor:
    x, scale, b = c.t(0), c.t(1), c.t(2)
    need(c, x, D.FLOATS)
    g = int(c.a("num_groups"))
    n, ch = x.shape[0], x.shape[1]
    rest = tuple(x.shape[2:])
    xg = F.reshape_exact(x, (n, g, ch // g) + rest)
    mu, var = _moments(xg, tuple(range(2, xg.ndim)))
    y = E.div(E.sub(xg, mu), E.sqrt(E.add(var, sc(c.a("epsilon", 1e-5), x.dtype))))
    if c.opset < 21:
        gs = (1, g) + (1,) * (xg.ndim - 2)
        y = E.add(E.mul(y, F.reshape_exact(scale, gs)), F.reshape_exact(b, gs))
        return F.reshape_exact(y, tuple(x.shape))
    y = F.reshape_exact(y, tuple(x.shape))
    bs = _bshape(x)
    return E.add(E.mul(y, F.reshape_exact(scale, bs)), F.reshape_exact(b, bs))


@op("LRN")
def _lrn(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    size = int(c.a("size"))
    alpha, beta, bias = c.a("alpha", 1e-4), c.a("beta", 0.75), c.a("bias", 1.0)
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = E.mul(x, x)
    r = x.ndim
    padded = S.pad(sq, lo=(0, lo) + (0,) * (r - 2), hi=(0, hi) + (0,) * (r - 2),
                   interior=(0,) * r, value=0.0)
    ch = x.shape[1]
    total = None
    for j in range(size):
        v = S.slice_(padded, starts=(0, j) + (0,) * (r - 2),
                     stops=(x.shape[0], j + ch) + tuple(x.shape[2:]), steps=(1,) * r)
        total = v if total is None else E.add(total, v)
    assert total is not None
    base = E.add(sc(bias, x.dtype), E.mul(total, sc(alpha / size, x.dtype)))
    return E.div(x, E.pow_(base, sc(beta, x.dtype)))


@op("LpNormalization", notes="p = 1 and 2")
def _lpnorm(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    a = axis(c, c.a("axis", -1), x.ndim)
    p = c.a("p", 2)
    if p == 1:
        n = R.reduce_sum(E.abs_(x), axes=(a,), keepdims=True)
    elif p == 2:
        n = E.sqrt(R.reduce_sum(E.mul(x, x), axes=(a,), keepdims=True))
    else:
        raise c.unsupported(f"p = {p}")
    return E.where(E.eq(n, sc(0, x.dtype)), sc(0, x.dtype), E.div(x, n))


@op("MeanVarianceNormalization", since=9)
def _mvn(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    axes = tuple(sorted(axis(c, a, x.ndim) for a in c.a("axes", [0, 2, 3])))
    mu, var = _moments(x, axes)
    return E.div(E.sub(x, mu), E.add(E.sqrt(var), sc(1e-9, x.dtype)))


# ----------------------------------------------------------------------------- softmax


def _coerced(c: Ctx, x: Tensor, default: int) -> tuple[Tensor, int, tuple | None]:
    """Opset < 13 softmaxes work on x flattened to 2-D at ``axis``."""
    a = axis(c, c.a("axis", default), x.ndim)
    if c.opset >= 13:
        return x, a, None
    lead: Any = 1
    for d in x.shape[:a]:
        lead = lead * d
    rest: Any = 1
    for d in x.shape[a:]:
        rest = rest * d
    return F.reshape_exact(x, (lead, rest)), 1, tuple(x.shape)


def _softmax_family(kind: str) -> Any:
    def fn(c: Ctx) -> Tensor:
        x = c.t(0)
        need(c, x, D.FLOATS)
        xx, a, back = _coerced(c, x, -1 if c.opset >= 13 else 1)
        m = R.reduce_max(xx, axes=(a,), keepdims=True)
        s = E.sub(xx, m)
        if kind == "Hardmax":
            first = R.argmax(xx, axis=a, keepdims=True)
            n = xx.shape[a]
            shape = [1] * xx.ndim
            shape[a] = n
            rng = F.reshape_exact(_arange(c, n), tuple(shape))
            y = F.cast(E.eq(rng, first), xx.dtype)
        else:
            e = E.exp(s)
            tot = R.reduce_sum(e, axes=(a,), keepdims=True)
            y = E.div(e, tot) if kind == "Softmax" else E.sub(s, E.log(tot))
        return F.reshape_exact(y, back) if back is not None else y
    return fn


def _arange(c: Ctx, n: Any) -> Tensor:
    if isinstance(n, DimExpr):
        raise c.unsupported("an index range over a symbolic dim")
    return Tensor._wrap(np.arange(n, dtype=np.int64))


for _k in ("Softmax", "LogSoftmax", "Hardmax"):
    op(_k, notes="opset < 13: on the input flattened to 2-D at axis")(_softmax_family(_k))


# ----------------------------------------------------------------------------- reductions


def _reduce_axes(c: Ctx, x: Tensor, since_input: int) -> tuple[int, ...] | None:
    """The axes to reduce; None for 'no reduction' (noop_with_empty_axes)."""
    if c.opset >= since_input:
        vals = c.ints(1) if c.has(1) else []
    else:
        vals = list(c.a("axes", []) or [])
    if not vals:
        return None if c.a("noop_with_empty_axes", 0) else tuple(range(x.ndim))
    return tuple(sorted({axis(c, int(a), x.ndim) for a in vals}))


def _empty_reduction(c: Ctx, kind: str, x: Tensor, axes: tuple[int, ...], keep: bool
                     ) -> Tensor:
    """A reduction over no elements: the operation's identity (ONNX opset 18)."""
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
    dt = x.dtype
    big = {D.bool_: True, D.int32: 2**31 - 1, D.int64: 2**63 - 1}.get(dt, math.inf)
    small = {D.bool_: False, D.int32: -(2**31), D.int64: -(2**63)}.get(dt, -math.inf)
    value: Any = {"ReduceMax": small, "ReduceMin": big, "ReduceLogSumExp": -math.inf,
                  "ReduceLogSum": -math.inf, "ReduceProd": 1, "ReduceMean": math.nan}.get(
        kind, 0)
    if not dt.is_floating and isinstance(value, float):
        raise c.unsupported(f"{kind} over no elements of {dt.name} data")
    return S.broadcast_to(Tensor._wrap(np.array(value, dtype=dt.np)), shape=shape)


def _reduction(kind: str) -> Any:
    def fn(c: Ctx) -> Tensor:
        x = c.t(0)
        since = 13 if kind == "ReduceSum" else 18
        axes = _reduce_axes(c, x, since)
        keep = bool(c.a("keepdims", 1))
        if axes is None:
            return x
        if any(not isinstance(x.shape[a], DimExpr) and x.shape[a] == 0 for a in axes):
            return _empty_reduction(c, kind, x, axes, keep)
        if kind in ("ReduceMax", "ReduceMin"):
            prim = R.reduce_max if kind == "ReduceMax" else R.reduce_min
            return prim(x, axes=axes, keepdims=keep)
        need(c, x, D.NUMERIC)
        if kind == "ReduceProd":
            if not x.dtype.is_floating:
                raise c.unsupported("ReduceProd of integers")
            return F.prod(x, axes, keep)
        if kind in ("ReduceMean", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp"):
            need(c, x, D.FLOATS)
        pre: Any = {"ReduceL1": E.abs_, "ReduceL2": lambda v: E.mul(v, v),
               "ReduceSumSquare": lambda v: E.mul(v, v)}.get(kind)
        if kind == "ReduceLogSumExp":
            m = R.reduce_max(x, axes=axes, keepdims=True)
            m = E.where(E.eq(E.abs_(m), sc(math.inf, x.dtype)), sc(0, x.dtype), m)
            s = R.reduce_sum(E.exp(E.sub(x, m)), axes=axes, keepdims=True)
            y = E.add(E.log(s), m)
            return y if keep else F.reshape_exact(y, tuple(
                d for i, d in enumerate(x.shape) if i not in axes))
        y = R.reduce_sum(pre(x) if pre else x, axes=axes, keepdims=keep)
        if kind == "ReduceMean":
            y = E.div(y, _count(x, axes))
        elif kind == "ReduceL2":
            y = E.sqrt(y)
        elif kind == "ReduceLogSum":
            y = E.log(y)
        return y
    return fn


for _k in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
           "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"):
    op(_k, notes="axes as attribute or input (13 for ReduceSum, 18 for the others); "
                 "noop_with_empty_axes")(_reduction(_k))


def _arg(kind: str) -> Any:
    def fn(c: Ctx) -> Tensor:
        x = c.t(0)
        a = axis(c, c.a("axis", 0), x.ndim)
        keep = bool(c.a("keepdims", 1))
        prim = R.argmax if kind == "ArgMax" else R.argmin
        if not c.a("select_last_index", 0):
            return prim(x, axis=a, keepdims=keep)
        n = x.shape[a]
        if isinstance(n, DimExpr):
            raise c.unsupported("select_last_index on a symbolic dim")
        rev = S.take(x, Tensor._wrap(np.arange(n - 1, -1, -1, dtype=np.int64)), axis=a)
        return E.sub(sc(n - 1, D.int64), prim(rev, axis=a, keepdims=keep))
    return fn


op("ArgMax", notes="select_last_index (12)")(_arg("ArgMax"))
op("ArgMin", notes="select_last_index (12)")(_arg("ArgMin"))


@op("RMSNormalization", since=23, notes="stash_type float")
def _rmsnorm(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    a = axis(c, c.a("axis", -1), x.ndim)
    axes = tuple(range(a, x.ndim))
    ms = E.div(R.reduce_sum(E.mul(x, x), axes=axes, keepdims=True), _count(x, axes))
    y = E.div(x, E.sqrt(E.add(ms, sc(c.a("epsilon", 1e-5), x.dtype))))
    return E.mul(y, c.t(1))


# ----------------------------------------------------------------------------- losses


def _nll(c: Ctx, logp: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
    """ONNX NegativeLogLikelihoodLoss on log-probabilities [N, C, d...]."""
    ncls = logp.shape[1]
    if isinstance(ncls, DimExpr):
        raise c.unsupported("a symbolic number of classes")
    perm = (0,) + tuple(range(2, logp.ndim)) + (1,)
    x = S.transpose(logp, perm=perm) if logp.ndim > 2 else logp  # [N, d..., C]
    hot = E.eq(F.unsqueeze(F.cast(target, D.int64), -1),
               Tensor._wrap(np.arange(ncls, dtype=np.int64)))
    zero = sc(0, x.dtype)
    picked = R.reduce_sum(E.where(hot, x, zero), axes=(x.ndim - 1,), keepdims=False)
    if weight is not None:
        w = R.reduce_sum(E.where(hot, weight, zero), axes=(x.ndim - 1,), keepdims=False)
    else:
        w = F.cast(R.reduce_max(F.cast(hot, D.int32), axes=(x.ndim - 1,), keepdims=False),
                   x.dtype)
    ii = c.a("ignore_index")
    if ii is not None:
        w = E.where(E.eq(F.cast(target, D.int64), sc(ii, D.int64)), zero, w)
    loss = E.neg(E.mul(picked, w))
    red = c.a("reduction", "mean")
    axes = tuple(range(loss.ndim))
    if red == "none":
        return loss
    total = R.reduce_sum(loss, axes=axes, keepdims=False)
    if red == "sum":
        return total
    if red != "mean":
        raise c.unsupported(f"reduction {red!r}")
    return E.div(total, R.reduce_sum(w, axes=axes, keepdims=False))


@op("NegativeLogLikelihoodLoss", since=12, notes="weights, ignore_index, reductions")
def _nll_op(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return _nll(c, x, c.t(1), c.topt(2))


@op("SoftmaxCrossEntropyLoss", since=12, notes="weights, ignore_index, reductions, the "
                                               "log_prob output")
def _sce(c: Ctx) -> Any:
    x = c.t(0)
    need(c, x, D.FLOATS)
    m = R.reduce_max(x, axes=(1,), keepdims=True)
    s = E.sub(x, m)
    logp = E.sub(s, E.log(R.reduce_sum(E.exp(s), axes=(1,), keepdims=True)))
    return _nll(c, logp, c.t(1), c.topt(2)), logp


# ----------------------------------------------------------------------------- attention


def _heads(x: Tensor, n: int) -> Tensor:
    """[B, S, n * d] -> [B, n, S, d]."""
    b, s, hd = x.shape
    return S.transpose(F.reshape_exact(x, (b, s, n, hd // n)), perm=(0, 2, 1, 3))


def _attention_bias(c: Ctx, sq: Any, sk: Any, offset: Any) -> np.ndarray | None:
    """The causal and sliding-window frontier as a bool [Sq, L] mask (None: no limit)."""
    causal = bool(c.a("is_causal", 0))
    left, right = c.a("left_window_size", -1), c.a("right_window_size", -1)
    if not causal and left < 0 and right < 0:
        return None
    if any(isinstance(v, DimExpr) for v in (sq, sk, offset)):
        raise c.unsupported("causal or windowed attention over symbolic lengths")
    p = np.arange(sq)[:, None] + offset
    j = np.arange(sk)[None, :]
    ok = np.ones((sq, sk), bool)
    if causal:
        ok &= j <= p
    if left >= 0:
        ok &= j >= p - left
    if right >= 0:
        ok &= j <= p + right
    return ok


@op("Attention", since=23, notes="MHA, GQA, MQA; 3-D or 4-D inputs; bool or additive "
                                 "mask; causal and sliding windows; past key and value; "
                                 "softcap; fully masked rows give zeros")
def _attention(c: Ctx) -> Any:
    q, k, v = c.t(0), c.t(1), c.t(2)
    need(c, q, D.FLOATS)
    if c.has(6):
        raise c.unsupported("nonpad_kv_seqlen (an external key/value cache)")
    prec = c.a("softmax_precision")
    if prec is not None and prec not in (1, 11):
        raise c.unsupported(f"softmax_precision {prec}")
    three_d = q.ndim == 3
    if three_d:
        q = _heads(q, int(c.a("q_num_heads")))
        k = _heads(k, int(c.a("kv_num_heads")))
        v = _heads(v, int(c.a("kv_num_heads")))
    past = 0
    if c.has(4):
        pk = c.t(4)
        past = pk.shape[2]
        k = S.concat(pk, k, axis=2)
        v = S.concat(c.t(5), v, axis=2)
    present_k, present_v = k, v
    hq, hk = q.shape[1], k.shape[1]
    if hq != hk:
        r = hq // hk
        k, v = (F.reshape_exact(S.broadcast_to(F.unsqueeze(t, 2), shape=(
            t.shape[0], hk, r) + tuple(t.shape[2:])), (t.shape[0], hq) + tuple(t.shape[2:]))
            for t in (k, v))
    d = q.shape[-1]
    scale = c.a("scale")
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    dt = q.dtype
    if prec is not None:
        dt = D.float64 if prec == 11 else D.float32
    s = F.cast(E.mul(L.matmul(q, S.transpose(k, perm=(0, 1, 3, 2))), sc(scale, q.dtype)), dt)
    stages = [s]
    cap = c.a("softcap", 0.0)
    if cap:
        s = E.mul(E.tanh(E.div(s, sc(cap, dt))), sc(cap, dt))
    stages.append(s)
    ninf = sc(-math.inf, dt)
    if c.has(3):
        mask = c.t(3)
        s = E.where(mask, s, ninf) if mask.dtype is D.bool_ else E.add(s, F.cast(mask, dt))
    frontier = _attention_bias(c, q.shape[2], k.shape[2], past)
    if frontier is not None:
        s = E.where(Tensor._wrap(frontier), s, ninf)
    m = R.reduce_max(s, axes=(3,), keepdims=True)
    m = E.where(E.eq(m, ninf), sc(0, dt), m)
    e = E.exp(E.sub(s, m))
    tot = R.reduce_sum(e, axes=(3,), keepdims=True)
    stages.append(s)
    pr = E.where(E.gt(tot, sc(0, dt)), E.div(e, tot), sc(0, dt))
    stages.append(pr)
    y = L.matmul(F.cast(pr, q.dtype), v)
    if three_d:
        b, h, sq, dv = y.shape
        y = F.reshape_exact(S.transpose(y, perm=(0, 2, 1, 3)), (b, sq, h * dv))
    mode = int(c.a("qk_matmul_output_mode", 0))
    if mode not in range(4):
        raise c.unsupported(f"qk_matmul_output_mode {mode}")
    return y, present_k, present_v, F.cast(stages[mode], q.dtype)


@op("TopK", since=1, notes="k known while importing; k rounds of arg-max (ties: the "
                           "lower index first); sorted output")
def _topk(c: Ctx) -> Any:
    x = c.t(0)
    need(c, x, D.NUMERIC)
    k = int(c.a("k")) if c.opset < 10 else int(np.asarray(c.s(1)).reshape(-1)[0])
    a = axis(c, c.a("axis", -1), x.ndim)
    largest = bool(c.a("largest", 1))
    n = x.shape[a]
    if isinstance(n, DimExpr):
        raise c.unsupported("TopK along a symbolic dim")
    if x.dtype is D.int64:
        raise c.unsupported("TopK of int64 data (ranked here in float64, which is exact for "
                            "float and int32 data only)")
    # NOTE: sorted = 0 allows any order; the sorted one is among them
    work = x if x.dtype.is_floating else F.cast(x, D.float64)
    fill = sc(-math.inf if largest else math.inf, work.dtype)
    pick = R.argmax if largest else R.argmin
    shape = [1] * x.ndim
    shape[a] = n
    rng = Tensor._wrap(np.arange(n, dtype=np.int64).reshape(shape))
    vals, idxs = [], []
    for _ in range(k):
        i = pick(work, axis=a, keepdims=True)
        idxs.append(i)
        vals.append(F.gather(x, a, i))
        work = E.where(E.eq(rng, i), fill, work)
    if not idxs:
        raise c.unsupported("TopK with k = 0")
    return S.concat(*vals, axis=a), S.concat(*idxs, axis=a)


def _last(t: Tensor, lo: int, hi: Any, step: int = 1) -> Tensor:
    """t[..., lo:hi:step]."""
    r = t.ndim
    return S.slice_(t, starts=(0,) * (r - 1) + (lo,), stops=tuple(t.shape[:-1]) + (hi,),
                    steps=(1,) * (r - 1) + (step,))


@op("RotaryEmbedding", since=23, notes="3-D or 4-D input, position_ids, partial rotation, "
                                       "interleaved")
def _rotary(c: Ctx) -> Tensor:
    x, cos, sin = c.t(0), c.t(1), c.t(2)
    need(c, x, D.FLOATS)
    shape = tuple(x.shape)
    if x.ndim == 4:
        x = S.transpose(x, perm=(0, 2, 1, 3))  # [B, S, H, D]
    else:
        heads = int(c.a("num_heads", 0) or 0)
        if not heads:
            raise c.unsupported("a 3-D input without num_heads")
        b, s, hid = x.shape
        x = F.reshape_exact(x, (b, s, heads, hid // heads))
    d = x.shape[-1]
    rd = int(c.a("rotary_embedding_dim", 0) or 0) or d
    if c.has(3):
        pos = F.cast(c.t(3), D.int64)
        cos, sin = S.take(cos, pos, axis=0), S.take(sin, pos, axis=0)
    cos, sin = F.unsqueeze(cos, 2), F.unsqueeze(sin, 2)
    xr = _last(x, 0, rd)
    inter = bool(c.a("interleaved", 0))
    x1, x2 = (_last(xr, 0, rd, 2), _last(xr, 1, rd, 2)) if inter else \
        (_last(xr, 0, rd // 2), _last(xr, rd // 2, rd))
    real = E.sub(E.mul(cos, x1), E.mul(sin, x2))
    imag = E.add(E.mul(sin, x1), E.mul(cos, x2))
    if inter:
        pair = S.concat(F.unsqueeze(real, -1), F.unsqueeze(imag, -1), axis=real.ndim)
        rot = F.reshape_exact(pair, tuple(xr.shape))
    else:
        rot = S.concat(real, imag, axis=real.ndim - 1)
    out = S.concat(rot, _last(x, rd, d), axis=rot.ndim - 1) if rd < d else rot
    if len(shape) == 4:
        return S.transpose(out, perm=(0, 2, 1, 3))
    return F.reshape_exact(out, shape)
