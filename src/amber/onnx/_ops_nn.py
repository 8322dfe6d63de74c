"""ONNX neural-network operators: matrix products, convolution, pooling,
normalisation, softmax and reductions, composed from amber primitives."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from .. import _dtype as D
from .. import composite, sorting
from .. import functional as _F
from ..capture.dims import DimExpr
from ..control import scan
from ..linalg import det
from ..ops import elementwise as E
from ..ops import linalg as L
from ..ops import pool as P
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
    return _F.matmul(a, b)


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


@op("Einsum", since=12, notes="explicit and implicit outputs, ellipsis, diagonals")
def _einsum(c: Ctx) -> Tensor:
    xs = c.ts()
    for x in xs:
        need(c, x, D.NUMERIC)
    return _F.einsum(str(c.a("equation")), *xs)


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
    return _F.reshape_exact(x, (x.shape[0], x.shape[1], 1, x.shape[2]))


def _from2d(y: Tensor) -> Tensor:
    return _F.reshape_exact(y, (y.shape[0], y.shape[1], y.shape[3]))


@op("Conv", notes="1-D, 2-D and 3-D (as 2-D convolutions over depth offsets), groups, "
                  "dilations, pads, auto_pad; float")
def _conv(c: Ctx) -> Tensor:
    x, w = c.t(0), c.t(1)
    need(c, x, D.FLOATS)
    nd = x.ndim - 2
    if nd not in (1, 2, 3):
        raise c.unsupported(f"{nd}-D convolution (amber has 1-D, 2-D and 3-D)")
    k = [int(d) for d in w.shape[2:]]
    st, dl, lo, hi = _spatial(c, x, k)
    if nd == 3:
        y = _conv3d(x, w, st, dl, lo, hi, int(c.a("group", 1)))
        if c.has(2):
            y = E.add(y, _F.reshape_exact(c.t(2), (1, y.shape[1], 1, 1, 1)))
        return y
    if nd == 1:
        x, w = _to2d(x), _to2d(w)
        st, dl, lo, hi = [1] + st, [1] + dl, [0] + lo, [0] + hi
    y = L.conv2d(x, w, stride=tuple(st), padding=(lo[0], hi[0], lo[1], hi[1]),
                 dilation=tuple(dl), groups=int(c.a("group", 1)))
    if c.has(2):
        y = E.add(y, _F.reshape_exact(c.t(2), (1, y.shape[1], 1, 1)))
    return _from2d(y) if nd == 1 else y


def _conv3d(x: Tensor, w: Tensor, st: list[int], dl: list[int], lo: list[Any],
            hi: list[Any], groups: int) -> Tensor:
    """(N, C, D, H, W) * (M, C/g, kd, kh, kw): one 2-D convolution per depth offset of
    the kernel, over every output depth at once (depth folded into the batch), summed."""
    if lo[0] or hi[0]:
        x = S.pad(x, lo=(0, 0, lo[0], 0, 0), hi=(0, 0, hi[0], 0, 0), interior=(0,) * 5,
                  value=0.0)
    n, ch, depth = x.shape[0], x.shape[1], x.shape[2]
    kd = int(w.shape[2])
    out_d = (depth - (kd - 1) * dl[0] - 1) // st[0] + 1
    total: Tensor | None = None
    for i in range(kd):
        start = i * dl[0]
        xs = S.slice_(x, starts=(0, 0, start, 0, 0),
                      stops=(n, ch, start + (out_d - 1) * st[0] + 1, x.shape[3], x.shape[4]),
                      steps=(1, 1, st[0], 1, 1))
        xs = _F.reshape_exact(S.transpose(xs, perm=(0, 2, 1, 3, 4)),
                             (n * out_d, ch, x.shape[3], x.shape[4]))
        wi = _F.reshape_exact(S.slice_(w, starts=(0, 0, i, 0, 0),
                                      stops=(w.shape[0], w.shape[1], i + 1, w.shape[3],
                                             w.shape[4]), steps=(1,) * 5),
                             (w.shape[0], w.shape[1], w.shape[3], w.shape[4]))
        y = L.conv2d(xs, wi, stride=(st[1], st[2]), padding=(lo[1], hi[1], lo[2], hi[2]),
                     dilation=(dl[1], dl[2]), groups=groups)
        total = y if total is None else E.add(total, y)
    assert total is not None
    y5 = _F.reshape_exact(total, (n, out_d, total.shape[1], total.shape[2], total.shape[3]))
    return S.transpose(y5, perm=(0, 2, 1, 3, 4))


@op("ConvTranspose", notes="1-D, 2-D and 3-D (2-D ones placed over the depth), groups, "
                           "dilations, pads, output_padding, output_shape (also beyond the "
                           "full output: zeros), auto_pad; float")
def _conv_transpose(c: Ctx) -> Tensor:
    x, w = c.t(0), c.t(1)
    need(c, x, D.FLOATS)
    nd = x.ndim - 2
    if nd not in (1, 2, 3):
        raise c.unsupported(f"{nd}-D transposed convolution (amber has 1-D, 2-D and 3-D)")
    k = [int(d) for d in w.shape[2:]]
    ks = c.a("kernel_shape")
    if ks is not None and [int(v) for v in ks] != k:
        raise c.unsupported(f"kernel_shape {list(ks)} differs from the weight's {k}")
    strides = list(c.a("strides", [1] * nd))
    dil = list(c.a("dilations", [1] * nd))
    opad = list(c.a("output_padding", [0] * nd))
    if any(not isinstance(p, DimExpr) and p >= s for p, s in zip(opad, strides)):
        raise c.unsupported("output_padding must be smaller than the stride")
    full = [strides[j] * (x.shape[2 + j] - 1) + opad[j] + (k[j] - 1) * dil[j] + 1
            for j in range(nd)]
    lo, hi = _transpose_pads(c, x, nd, strides, full)
    crop_lo, crop_hi = [max(p, 0) for p in lo], [max(p, 0) for p in hi]
    out = [full[j] - crop_lo[j] - crop_hi[j] for j in range(nd)]
    groups = int(c.a("group", 1))
    if nd == 3:
        y = _conv_transpose3d(x, w, strides, dil, crop_lo, out, groups)
    else:
        xx, ww = (x, w) if nd == 2 else (_to2d(x), _to2d(w))
        st, dl, cl, ch, o = (strides, dil, crop_lo, crop_hi, out) if nd == 2 else \
            ([1] + strides, [1] + dil, [0] + crop_lo, [0] + crop_hi, [1] + out)
        y = L.conv2d_input_grad(xx, ww, input_hw=tuple(o), stride=tuple(st),
                                padding=(cl[0], ch[0], cl[1], ch[1]), dilation=tuple(dl),
                                groups=groups)
        y = y if nd == 2 else _from2d(y)
    grow_lo, grow_hi = [max(-p, 0) for p in lo], [max(-p, 0) for p in hi]
    if any(grow_lo) or any(grow_hi):  # an output_shape beyond the full output: zeros
        flat = (0,) * (nd + 2)
        y = S.pad(y, lo=(0, 0, *grow_lo), hi=(0, 0, *grow_hi), interior=flat, value=0.0)
    if c.has(2):
        y = E.add(y, _F.reshape_exact(c.t(2), (1, y.shape[1]) + (1,) * nd))
    return y


def _transpose_pads(c: Ctx, x: Tensor, nd: int, strides: list[int], full: list[Any]
                    ) -> tuple[list[Any], list[Any]]:
    """Begin and end crops of the full transposed output (negative: zeros added)."""
    pads = list(c.a("pads", [0] * (2 * nd)))
    out_shape = c.a("output_shape")
    auto = c.a("auto_pad", "NOTSET")
    if out_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
        want = list(out_shape)[-nd:] if out_shape is not None else \
            [x.shape[2 + j] * strides[j] for j in range(nd)]
        pads = [0] * (2 * nd)
        for j in range(nd):
            total = full[j] - want[j]
            if isinstance(total, DimExpr):
                raise c.unsupported("output_shape/auto_pad SAME on a symbolic dim")
            small, big = total // 2, total - total // 2
            if auto == "SAME_UPPER":
                pads[j], pads[j + nd] = small, big
            else:  # SAME_LOWER, and output_shape without auto_pad (as the reference)
                pads[j], pads[j + nd] = big, small
    return pads[:nd], pads[nd:]


def _conv_transpose3d(x: Tensor, w: Tensor, st: list[int], dl: list[int], lo: list[Any],
                      out: list[Any], groups: int) -> Tensor:
    """(N, C, D, H, W) transposed by (C, M/g, kd, kh, kw): per depth offset of the kernel,
    a 2-D transposed convolution of every input depth at once, placed in the output depth
    at stride st[0] (interior padding), summed; then the begin crop lo and size out."""
    n, ch, depth = x.shape[0], x.shape[1], x.shape[2]
    kd = int(w.shape[2])
    planes = _F.reshape_exact(S.transpose(x, perm=(0, 2, 1, 3, 4)),
                             (n * depth, ch, x.shape[3], x.shape[4]))
    full_d = st[0] * (depth - 1) + (kd - 1) * dl[0] + 1
    total: Tensor | None = None
    for i in range(kd):
        wi = _F.reshape_exact(S.slice_(w, starts=(0, 0, i, 0, 0),
                                      stops=(w.shape[0], w.shape[1], i + 1, w.shape[3],
                                             w.shape[4]), steps=(1,) * 5),
                             (w.shape[0], w.shape[1], w.shape[3], w.shape[4]))
        y = L.conv2d_input_grad(planes, wi, input_hw=(out[1], out[2]), stride=(st[1], st[2]),
                                padding=(lo[1], 0, lo[2], 0), dilation=(dl[1], dl[2]),
                                groups=groups)
        y = S.transpose(_F.reshape_exact(y, (n, depth, y.shape[1], out[1], out[2])),
                        perm=(0, 2, 1, 3, 4))  # (N, M, D, H', W')
        start = i * dl[0]
        y = S.pad(y, lo=(0, 0, start, 0, 0), hi=(0, 0, full_d - start - ((depth - 1) * st[0] + 1),
                  0, 0), interior=(0, 0, st[0] - 1, 0, 0), value=0.0)
        total = y if total is None else E.add(total, y)
    assert total is not None
    return S.slice_(total, starts=(0, 0, lo[0], 0, 0),
                    stops=(n, total.shape[1], lo[0] + out[0], out[1], out[2]), steps=(1,) * 5)


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
    """Every kernel offset's strided view of the padded (N, C, *spatial) input."""
    nd = len(k)
    st, dl, lo, hi = _spatial(c, x, k)
    ceil = bool(c.a("ceil_mode", 0))
    outs = [_pool_out(c, x.shape[2 + j], k[j], st[j], dl[j], lo[j], hi[j], ceil)
            for j in range(nd)]
    need_ = [(outs[j] - 1) * st[j] + (k[j] - 1) * dl[j] + 1 for j in range(nd)]
    extra = [need_[j] - x.shape[2 + j] - lo[j] - hi[j] for j in range(nd)]
    extra = [0 if isinstance(e, DimExpr) or e < 0 else e for e in extra]
    flat = (0,) * (nd + 2)
    if any(lo) or any(hi):
        x = S.pad(x, lo=(0, 0, *lo), hi=(0, 0, *hi), interior=flat, value=value)
    if any(extra):
        x = S.pad(x, lo=flat, hi=(0, 0, *extra), interior=flat,
                  value=value if extra_value is None else extra_value)
    views = []
    for offsets in itertools.product(*(range(kj) for kj in k)):
        starts = [o * d for o, d in zip(offsets, dl, strict=True)]
        views.append(S.slice_(
            x, starts=(0, 0, *starts),
            stops=(x.shape[0], x.shape[1],
                   *(s + (outs[j] - 1) * st[j] + 1 for j, s in enumerate(starts))),
            steps=(1, 1, *st)))
    return views, outs


def _pool_input(c: Ctx, dtypes: Any = D.FLOATS) -> tuple[Tensor, list[int], bool]:
    x = c.t(0)
    need(c, x, dtypes)
    k = list(c.a("kernel_shape"))
    if len(k) == 1 and x.ndim == 3:
        return _to2d(x), [1, k[0]], True
    if len(k) not in (2, 3) or x.ndim != len(k) + 2:
        raise c.unsupported(f"{len(k)}-D pooling (amber has 1-D, 2-D and 3-D)")
    return x, k, False


def _with_1d(c: Ctx, names: tuple[str, ...]) -> None:
    for nm in names:
        v = c.attrs.get(nm)
        if v is not None:
            v = list(v)
            nd = len(v) // 2 if nm == "pads" else len(v)
            if nd == 1:
                c.attrs[nm] = [0, v[0], 0, v[1]] if nm == "pads" else [1, v[0]]


@op("MaxPool", notes="1-D, 2-D (amber's max_pool2d where it fits) and 3-D, pads, strides, "
                     "dilations (10), ceil_mode (10); the Indices output (8; both storage "
                     "orders) for 2-D")
def _maxpool(c: Ctx) -> Any:
    want_indices = len(c.node.output) > 1 and bool(c.node.output[1])
    order = int(c.a("storage_order", 0))
    if order and not want_indices:
        raise c.unsupported("storage_order = 1 without the Indices output")
    x, k, one = _pool_input(c, D.NUMERIC)  # int8/uint8 (opset 12): padding is INT_MIN
    if one:
        _with_1d(c, ("strides", "dilations", "pads"))
    fast = None if want_indices else _pool_primitive(c, x, k, "max")
    if fast is not None:
        return _from2d(fast) if one else fast
    views, outs = _windows(c, x, k, -math.inf)
    m = views[0]
    for v in views[1:]:
        m = E.maximum(m, v)
    if not want_indices:
        return _from2d(m) if one else m
    if one or len(k) != 2:
        raise c.unsupported("the Indices output of a MaxPool that is not 2-D")
    return m, _argmax_indices(c, x, k, views, outs, order)


def _pool_primitive(c: Ctx, x: Tensor, k: list[int], kind: str) -> Tensor | None:
    """2-D pooling as amber's max_pool2d / avg_pool2d primitive when its attributes fit
    (padding at most half the dilated kernel; average pooling without dilation); None:
    the window composition handles it."""
    if len(k) != 2 or x.ndim != 4 or not x.dtype.is_floating:
        return None
    st, dl, lo, hi = _spatial(c, x, k)
    pad = (lo[0], hi[0], lo[1], hi[1])
    ext = [dl[i] * (k[i] - 1) + 1 for i in (0, 1)]
    if any(isinstance(v, DimExpr) for v in (*pad, *st, *dl)) or \
            max(pad[0], pad[1]) > ext[0] // 2 or max(pad[2], pad[3]) > ext[1] // 2:
        return None
    ceil = bool(c.a("ceil_mode", 0))
    if kind == "max":
        return P.max_pool2d(x, kernel_hw=tuple(k), stride=tuple(st), padding=pad,
                            dilation=tuple(dl), ceil_mode=ceil)
    if any(d != 1 for d in dl):
        return None
    return P.avg_pool2d(x, kernel_hw=tuple(k), stride=tuple(st), padding=pad,
                        ceil_mode=ceil, count_include_pad=bool(c.a("count_include_pad", 0)))


def _argmax_indices(c: Ctx, x: Tensor, k: list[int], views: list[Tensor], outs: list[Any],
                    order: int) -> Tensor:
    """The flat input index of each window's first maximum (row-major, or column-major
    within each (n, c) plane with storage_order 1), as ONNX's MaxPool Indices."""
    if any(isinstance(d, DimExpr) for d in (*x.shape, *outs)):
        raise c.unsupported("the Indices output of MaxPool with symbolic sizes")
    n, ch, h, w = (int(d) for d in x.shape)
    st, dl, lo, _ = _spatial(c, x, k)
    oh = np.arange(outs[0]).reshape(-1, 1) * st[0] - lo[0]
    ow = np.arange(outs[1]).reshape(1, -1) * st[1] - lo[1]
    plane = (np.arange(n * ch, dtype=np.int64) * h * w).reshape(n, ch, 1, 1)
    best = views[0]
    index: Tensor | None = None
    for t, (i, j) in enumerate(itertools.product(range(k[0]), range(k[1]))):
        r, q = oh + i * dl[0], ow + j * dl[1]
        flat = (q * h + r) if order else (r * w + q)
        pos = Tensor._wrap(plane + flat.astype(np.int64))
        if index is None:
            index = S.broadcast_to(pos, shape=tuple(views[0].shape))
            continue
        better = E.gt(views[t], best)
        best = E.where(better, views[t], best)
        index = E.where(better, S.broadcast_to(pos, shape=tuple(best.shape)), index)
    assert index is not None
    return index


def _reindex(index: Tensor, old_hw: tuple[int, ...], new_hw: tuple[int, ...]) -> Tensor:
    """Flat (n, c, h, w) positions in planes of old_hw, as positions in planes of new_hw."""
    def i64(v: int) -> Tensor:
        return sc(v, D.int64)

    rows = E.div(index, i64(old_hw[1]))  # (n * C + c) * H + h
    col = E.sub(index, E.mul(rows, i64(old_hw[1])))
    planes = E.div(rows, i64(old_hw[0]))
    row = E.sub(rows, E.mul(planes, i64(old_hw[0])))
    return E.add(E.mul(E.add(E.mul(planes, i64(new_hw[0])), row), i64(new_hw[1])), col)


@op("MaxUnpool", since=9, notes="2-D; indices as MaxPool's Indices output; output_shape "
                                "known while importing")
def _maxunpool(c: Ctx) -> Tensor:
    x, idx = c.t(0), c.t(1)
    need(c, x, D.FLOATS)
    k = [int(v) for v in c.a("kernel_shape")]
    if x.ndim != 4 or len(k) != 2 or any(isinstance(d, DimExpr) for d in x.shape):
        raise c.unsupported("MaxUnpool of a 4-D input of static shape")
    st = list(c.a("strides", [1, 1]))
    pads = list(c.a("pads", [0, 0, 0, 0]))
    default = (int(x.shape[0]), int(x.shape[1])) + tuple(
        (int(x.shape[2 + j]) - 1) * st[j] - pads[j] - pads[j + 2] + k[j] for j in range(2))
    shape = tuple(int(v) for v in c.ints(2)) if c.has(2) else default
    index = _F.reshape_exact(_F.cast(idx, D.int64), (x.numel(),))
    if shape != default:  # the indices count positions of the default shape
        if shape[:2] != default[:2] or shape[2] < default[2] or shape[3] < default[3]:
            raise c.unsupported(f"MaxUnpool output_shape {shape} for unpooled {default}")
        index = _reindex(index, default[2:], shape[2:])
    total = int(np.prod(shape))
    # NOTE: overlapping windows name one position several times with the same value
    flat = composite.scatter(S.broadcast_to(sc(0, x.dtype), shape=(total,)), 0,
                             index, _F.reshape_exact(x, (x.numel(),)))
    return _F.reshape_exact(flat, shape)


@op("AveragePool", notes="1-D, 2-D (amber's avg_pool2d where it fits) and 3-D, pads, "
                         "count_include_pad, ceil_mode (10), dilations (19)")
def _avgpool(c: Ctx) -> Tensor:
    x, k, one = _pool_input(c)
    if one:
        _with_1d(c, ("strides", "dilations", "pads"))
    fast = _pool_primitive(c, x, k, "avg")
    if fast is not None:
        return _from2d(fast) if one else fast
    views, _ = _windows(c, x, k, 0.0)
    total = views[0]
    for v in views[1:]:
        total = E.add(total, v)
    # the divisor: how many elements (or padded positions) each window covers
    ones = S.broadcast_to(sc(1, x.dtype), shape=(1, 1, *x.shape[2:]))
    inc = bool(c.a("count_include_pad", 0))
    cv, _ = _windows(c, ones, k, 1.0 if inc else 0.0, 0.0)
    cnt = cv[0]
    for v in cv[1:]:
        cnt = E.add(cnt, v)
    y = E.div(total, cnt)
    return _from2d(y) if one else y


@op("LpPool", since=11, notes="1-D, 2-D and 3-D")
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
    return _F.scalar(n, x.dtype)


# ----------------------------------------------------------------------------- normalisation


def _bshape(x: Tensor, ch: int = 1) -> tuple:
    return (1, x.shape[ch]) + (1,) * (x.ndim - 2)


@op("BatchNormalization", notes="inference (running statistics); training_mode (14: the "
                                "batch's statistics and the updated running ones)")
def _batchnorm(c: Ctx) -> Any:
    if c.opset < 14 and len([o for o in c.node.output if o]) > 1:
        raise c.unsupported("BatchNormalization in training mode before opset 14")
    if c.a("training_mode", 0):
        return _batchnorm_training(c)
    if c.opset < 9 and not c.a("spatial", 1):
        raise c.unsupported("BatchNormalization with spatial = 0")
    x, scale, b, mean, var = (c.t(i) for i in range(5))
    need(c, x, D.FLOATS)
    eps = c.a("epsilon", 1e-5)
    bs = _bshape(x)
    # x * alpha + beta: two passes over x, and the form a conv's epilogue takes in
    alpha = E.div(scale, E.sqrt(E.add(var, sc(eps, var.dtype))))
    beta = E.sub(b, E.mul(mean, alpha))
    return E.add(E.mul(x, _F.reshape_exact(alpha, bs)), _F.reshape_exact(beta, bs))


def _batchnorm_training(c: Ctx) -> tuple[Tensor, Tensor, Tensor]:
    """Normalise with the batch's mean and (biased) variance; the running statistics
    move toward them by 1 - momentum."""
    x, scale, b, mean, var = (c.t(i) for i in range(5))
    need(c, x, D.FLOATS)
    eps, momentum = c.a("epsilon", 1e-5), c.a("momentum", 0.9)
    bs = _bshape(x)
    mu, v = _moments(x, (0, *range(2, x.ndim)))
    inv = E.div(_F.reshape_exact(scale, bs), E.sqrt(E.add(v, sc(eps, x.dtype))))
    y = E.add(E.mul(E.sub(x, mu), inv), _F.reshape_exact(b, bs))
    ch = (x.shape[1],)

    def moved(run: Tensor, batch: Tensor) -> Tensor:
        return E.add(E.mul(run, sc(momentum, run.dtype)),
                     E.mul(_F.reshape_exact(batch, ch), sc(1.0 - momentum, run.dtype)))

    return y, moved(mean, mu), moved(var, v)


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
    return E.add(E.mul(y, _F.reshape_exact(scale, bs)), _F.reshape_exact(b, bs))


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
    xg = _F.reshape_exact(x, (n, g, ch // g) + rest)
    mu, var = _moments(xg, tuple(range(2, xg.ndim)))
    y = E.div(E.sub(xg, mu), E.sqrt(E.add(var, sc(c.a("epsilon", 1e-5), x.dtype))))
    if c.opset < 21:
        gs = (1, g) + (1,) * (xg.ndim - 2)
        y = E.add(E.mul(y, _F.reshape_exact(scale, gs)), _F.reshape_exact(b, gs))
        return _F.reshape_exact(y, tuple(x.shape))
    y = _F.reshape_exact(y, tuple(x.shape))
    bs = _bshape(x)
    return E.add(E.mul(y, _F.reshape_exact(scale, bs)), _F.reshape_exact(b, bs))


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
    return _F.reshape_exact(x, (lead, rest)), 1, tuple(x.shape)


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
            rng = _F.reshape_exact(_arange(c, n), tuple(shape))
            y = _F.cast(E.eq(rng, first), xx.dtype)
        else:
            e = E.exp(s)
            tot = R.reduce_sum(e, axes=(a,), keepdims=True)
            y = E.div(e, tot) if kind == "Softmax" else E.sub(s, E.log(tot))
        return _F.reshape_exact(y, back) if back is not None else y
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
            return _F.prod(x, axes, keep)
        if kind in ("ReduceMean", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp"):
            need(c, x, D.FLOATS)
        pre: Any = {"ReduceL1": E.abs_, "ReduceL2": lambda v: E.mul(v, v),
               "ReduceSumSquare": lambda v: E.mul(v, v)}.get(kind)
        if kind == "ReduceLogSumExp":
            m = R.reduce_max(x, axes=axes, keepdims=True)
            m = E.where(E.eq(E.abs_(m), sc(math.inf, x.dtype)), sc(0, x.dtype), m)
            s = R.reduce_sum(E.exp(E.sub(x, m)), axes=axes, keepdims=True)
            y = E.add(E.log(s), m)
            return y if keep else _F.reshape_exact(y, tuple(
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
    hot = E.eq(_F.unsqueeze(_F.cast(target, D.int64), -1),
               Tensor._wrap(np.arange(ncls, dtype=np.int64)))
    zero = sc(0, x.dtype)
    picked = R.reduce_sum(E.where(hot, x, zero), axes=(x.ndim - 1,), keepdims=False)
    if weight is not None:
        w = R.reduce_sum(E.where(hot, weight, zero), axes=(x.ndim - 1,), keepdims=False)
    else:
        w = _F.cast(R.reduce_max(_F.cast(hot, D.int32), axes=(x.ndim - 1,), keepdims=False),
                   x.dtype)
    ii = c.a("ignore_index")
    if ii is not None:
        w = E.where(E.eq(_F.cast(target, D.int64), sc(ii, D.int64)), zero, w)
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
    return S.transpose(_F.reshape_exact(x, (b, s, n, hd // n)), perm=(0, 2, 1, 3))


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


def _cache_mask(c: Ctx, nonpad: Tensor, sq: Any, sk: Any) -> Tensor:
    """An external cache holding nonpad[b] valid keys: a bool [B, 1, Sq, L] mask of the
    keys each query may see (the causal and window frontiers offset per batch by
    nonpad[b] - Sq, as the reference)."""
    if isinstance(sq, DimExpr) or isinstance(sk, DimExpr):
        raise c.unsupported("nonpad_kv_seqlen over symbolic lengths")
    valid = _F.reshape_exact(_F.cast(nonpad, D.int64), (nonpad.numel(), 1, 1, 1))
    i = Tensor._wrap(np.arange(sq, dtype=np.int64).reshape(1, 1, sq, 1))
    j = Tensor._wrap(np.arange(sk, dtype=np.int64).reshape(1, 1, 1, sk))
    ok = E.lt(j, valid)
    frontier = E.add(i, E.sub(valid, sc(sq, D.int64)))  # the query's own position
    left, right = c.a("left_window_size", -1), c.a("right_window_size", -1)
    if c.a("is_causal", 0):
        ok = E.logical_and(ok, E.le(j, frontier))
    if left >= 0:
        ok = E.logical_and(ok, E.ge(j, E.sub(frontier, sc(left, D.int64))))
    if right >= 0:
        ok = E.logical_and(ok, E.le(j, E.add(frontier, sc(right, D.int64))))
    return ok


@op("Attention", since=23, notes="MHA, GQA, MQA; 3-D or 4-D inputs; bool or additive "
                                 "mask; causal and sliding windows; past key and value, or "
                                 "an external cache (nonpad_kv_seqlen); softcap; fully "
                                 "masked rows give zeros")
def _attention(c: Ctx) -> Any:
    q, k, v = c.t(0), c.t(1), c.t(2)
    need(c, q, D.FLOATS)
    if c.has(6) and c.has(4):
        raise c.unsupported("nonpad_kv_seqlen together with past key and value")
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
        k, v = (_F.reshape_exact(S.broadcast_to(_F.unsqueeze(t, 2), shape=(
            t.shape[0], hk, r) + tuple(t.shape[2:])), (t.shape[0], hq) + tuple(t.shape[2:]))
            for t in (k, v))
    d = q.shape[-1]
    scale = c.a("scale")
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    dt = q.dtype
    if prec is not None:
        dt = D.float64 if prec == 11 else D.float32
    s = _F.cast(E.mul(L.matmul(q, S.transpose(k, perm=(0, 1, 3, 2))), sc(scale, q.dtype)), dt)
    stages = [s]
    cap = c.a("softcap", 0.0)
    if cap:
        s = E.mul(E.tanh(E.div(s, sc(cap, dt))), sc(cap, dt))
    stages.append(s)
    ninf = sc(-math.inf, dt)
    if c.has(3):
        mask = c.t(3)
        short = k.shape[2] - mask.shape[-1]
        if isinstance(short, DimExpr) or short < 0:
            raise c.unsupported(f"an attention mask of {mask.shape[-1]} keys for "
                                f"{k.shape[2]} keys")
        if short:  # a shorter mask: the keys beyond it are masked out
            fill = False if mask.dtype is D.bool_ else -math.inf
            flat = (0,) * mask.ndim
            mask = S.pad(mask, lo=flat, hi=flat[:-1] + (short,), interior=flat, value=fill)
        s = E.where(mask, s, ninf) if mask.dtype is D.bool_ else E.add(s, _F.cast(mask, dt))
    if c.has(6):
        s = E.where(_cache_mask(c, c.t(6), q.shape[2], k.shape[2]), s, ninf)
    else:
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
    y = L.matmul(_F.cast(pr, q.dtype), v)
    if three_d:
        b, h, sq, dv = y.shape
        y = _F.reshape_exact(S.transpose(y, perm=(0, 2, 1, 3)), (b, sq, h * dv))
    mode = int(c.a("qk_matmul_output_mode", 0))
    if mode not in range(4):
        raise c.unsupported(f"qk_matmul_output_mode {mode}")
    return y, present_k, present_v, _F.cast(stages[mode], q.dtype)


@op("TopK", since=1, notes="k known while importing; k rounds of arg-max (ties: the "
                           "lower index first); sorted output; int64 compared exactly")
def _topk(c: Ctx) -> Any:
    x = c.t(0)
    need(c, x, D.NUMERIC)
    k = int(c.a("k")) if c.opset < 10 else int(np.asarray(c.s(1)).reshape(-1)[0])
    a = axis(c, c.a("axis", -1), x.ndim)
    largest = bool(c.a("largest", 1))
    n = x.shape[a]
    if isinstance(n, DimExpr):
        raise c.unsupported("TopK along a symbolic dim")
    if x.dtype is D.int64:  # exact: compared as int64 (float64 would round)
        values, indices = sorting.topk(x, k, a, largest)
        return values, indices
    # NOTE: sorted = 0 allows any order; the sorted one is among them
    work = x if x.dtype.is_floating else _F.cast(x, D.float64)
    fill = sc(-math.inf if largest else math.inf, work.dtype)
    pick = R.argmax if largest else R.argmin
    shape = [1] * x.ndim
    shape[a] = n
    rng = Tensor._wrap(np.arange(n, dtype=np.int64).reshape(shape))
    vals, idxs = [], []
    for _ in range(k):
        i = pick(work, axis=a, keepdims=True)
        idxs.append(i)
        vals.append(_F.gather(x, a, i))
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
        x = _F.reshape_exact(x, (b, s, heads, hid // heads))
    d = x.shape[-1]
    rd = int(c.a("rotary_embedding_dim", 0) or 0) or d
    if c.has(3):
        pos = _F.cast(c.t(3), D.int64)
        cos, sin = S.take(cos, pos, axis=0), S.take(sin, pos, axis=0)
    cos, sin = _F.unsqueeze(cos, 2), _F.unsqueeze(sin, 2)
    xr = _last(x, 0, rd)
    inter = bool(c.a("interleaved", 0))
    x1, x2 = (_last(xr, 0, rd, 2), _last(xr, 1, rd, 2)) if inter else \
        (_last(xr, 0, rd // 2), _last(xr, rd // 2, rd))
    real = E.sub(E.mul(cos, x1), E.mul(sin, x2))
    imag = E.add(E.mul(sin, x1), E.mul(cos, x2))
    if inter:
        pair = S.concat(_F.unsqueeze(real, -1), _F.unsqueeze(imag, -1), axis=real.ndim)
        rot = _F.reshape_exact(pair, tuple(xr.shape))
    else:
        rot = S.concat(real, imag, axis=real.ndim - 1)
    out = S.concat(rot, _last(x, rd, d), axis=rot.ndim - 1) if rd < d else rot
    if len(shape) == 4:
        return S.transpose(out, perm=(0, 2, 1, 3))
    return _F.reshape_exact(out, shape)


@op("CausalConvWithState", since=27, notes="depthwise causal 1-D convolution with a carried "
                                         "state; activation none, silu, swish")
def _causal_conv_with_state(c: Ctx) -> Any:
    x, w = c.t(0), c.t(1)
    need(c, x, D.FLOATS)
    act = str(c.a("activation", "none"))
    if act not in ("none", "silu", "swish"):
        raise c.unsupported(f"activation {act!r}")
    if x.ndim != 3 or w.ndim != 3 or isinstance(w.shape[2], DimExpr):
        raise c.unsupported("CausalConvWithState needs (B, C, L) input and a (C, 1, k) "
                            "weight of static k")
    k = int(w.shape[2])
    past = c.t(3) if c.has(3) else S.broadcast_to(
        sc(0, x.dtype), shape=(x.shape[0], x.shape[1], k - 1))
    full = _F.cat([past, x], 2)  # (B, C, k - 1 + L)
    y = L.conv2d(_to2d(full), _to2d(w), stride=(1, 1), padding=(0, 0, 0, 0),
                 dilation=(1, 1), groups=int(x.shape[1]))
    y = _from2d(y)
    if c.has(2):
        y = E.add(y, _F.reshape_exact(c.t(2), (1, y.shape[1], 1)))
    if act != "none":
        y = E.mul(y, E.sigmoid(y))
    n = full.shape[2]
    state = S.slice_(full, starts=(0, 0, n - (k - 1)), stops=tuple(full.shape),
                     steps=(1, 1, 1))
    return y, state


def _time_major(x: Tensor, heads: int) -> Tensor:
    """(B, T, H * D) -> (T, B, H, D)."""
    b, t, hd = x.shape
    return S.transpose(_F.reshape_exact(x, (b, t, heads, hd // heads)), perm=(1, 0, 2, 3))


@op("LinearAttention", since=27, notes="update rules linear, gated, delta, gated_delta; GQA; "
                                      "past and present state; a scan over the tokens")
def _linear_attention(c: Ctx) -> Any:
    q, k, v = c.t(0), c.t(1), c.t(2)
    need(c, q, D.FLOATS)
    hq, hkv = int(c.a("q_num_heads")), int(c.a("kv_num_heads"))
    rule = str(c.a("update_rule", "gated_delta"))
    c.a("chunk_size")  # a tuning hint: no effect on the result
    gating, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if rule not in ("linear", "gated", "delta", "gated_delta") or hq % hkv or \
            gating != c.has(4) or delta != c.has(5) or q.ndim != 3:
        raise c.unsupported(f"LinearAttention update_rule {rule!r} with q_num_heads {hq}, "
                            f"kv_num_heads {hkv} and these inputs")
    out_dt = q.dtype
    if q.dtype.name in ("float16", "bfloat16"):  # as the reference: the recurrence in float32
        q, k, v = (_F.cast(t, D.float32) for t in (q, k, v))
    b, dk, dv = q.shape[0], q.shape[2] // hq, v.shape[2] // hkv
    group = hq // hkv
    scale = float(c.a("scale", 0.0)) or 1.0 / math.sqrt(dk)
    xs: list[Tensor] = [_time_major(q, hq), _time_major(k, hkv), _time_major(v, hkv)]
    if gating:
        xs.append(_time_major(_F.cast(c.t(4), q.dtype), hkv))  # (T, B, Hkv, 1 or dk)
    if delta:
        beta = _F.cast(c.t(5), q.dtype)
        xs.append(S.transpose(_F.reshape_exact(beta, tuple(beta.shape) + (1,)),
                              perm=(1, 0, 2, 3)))  # (T, B, Hkv or 1, 1)
    state_dt = c.t(3).dtype if c.has(3) else out_dt
    state0 = _F.cast(c.t(3), q.dtype) if c.has(3) else S.broadcast_to(
        sc(0, q.dtype), shape=(b, hkv, dk, dv))

    def step(state: Tensor, x: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        qt, kt, vt = x[0], x[1], x[2]
        if gating:
            state = E.mul(state, _F.unsqueeze(E.exp(x[3]), -1))
        if delta:
            got = _F.einsum("bhdm,bhd->bhm", state, kt)
            vt = E.mul(x[-1], E.sub(vt, got))
        state = E.add(state, E.mul(_F.unsqueeze(kt, -1), _F.unsqueeze(vt, -2)))
        read = state if group == 1 else _F.reshape_exact(
            S.broadcast_to(_F.unsqueeze(state, 2), shape=(b, hkv, group, dk, dv)),
            (b, hq, dk, dv))
        return state, E.mul(_F.einsum("bhd,bhdm->bhm", qt, read), sc(scale, q.dtype))

    state, ys = scan(step, state0, tuple(xs))
    out = S.transpose(ys, perm=(1, 0, 2, 3))  # (B, T, Hq, dv)
    out = _F.reshape_exact(out, (b, out.shape[1], hq * dv))
    return _F.cast(out, out_dt), _F.cast(state, state_dt)


@op("Det", since=11, notes="Gaussian elimination with partial pivoting over a static size")
def _det(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    if x.ndim < 2 or isinstance(x.shape[-1], DimExpr):
        raise c.unsupported("Det of matrices of a symbolic size")
    return det(x)
