"""ONNX shape and data-movement operators. Shapes, axes and sizes given as tensors must
be known while importing (constants, initializers, or shape data computed from the
inputs' static and symbolic dims)."""

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
from ._graph import Ctx, Sym, as_object, objarr, op, sym_op, sym_or_tensor
from ._ops_elementwise import onnx_dtype, sc

BIG = 2**62


def axis(c: Ctx, a: int, rank: int) -> int:
    if not -rank <= a < max(rank, 1):
        raise c.unsupported(f"axis {a} is out of range for rank {rank}")
    return a % rank if rank else 0


def axes_of(c: Ctx, rank: int, attr: str = "axes", since_input: int = 13, i: int = 1
            ) -> list[int] | None:
    """Axes from the attribute (older opsets) or input ``i``; None when not given."""
    if c.opset >= since_input:
        if not c.has(i):
            return None
        vals = c.ints(i)
    else:
        vals = c.a(attr)
        if vals is None:
            return None
    return sorted(axis(c, int(a), rank) for a in vals)


# ----------------------------------------------------------------------------- shape data


@op("Shape", notes="start and end (opset 15)")
def _shape(c: Ctx) -> Any:
    v = c.v(0)
    shape = list(v.shape)  # type: ignore[union-attr]
    n = len(shape)
    start, end = c.a("start", 0), c.a("end", n)
    start = min(max(start + n if start < 0 else start, 0), n)
    end = min(max(end + n if end < 0 else end, 0), n)
    return sym_or_tensor(objarr(shape[start:end]))


@op("Size")
def _size(c: Ctx) -> Any:
    n: Any = 1
    for d in c.v(0).shape:  # type: ignore[union-attr]
        n = n * d
    return sym_or_tensor(objarr([n], ()))


@op("Constant", notes="value, value_float(s), value_int(s); no sparse or string values")
def _constant(c: Ctx) -> Tensor:
    import onnx.numpy_helper as nh

    if "value" in c.attrs:
        from .importer import check_array

        return Tensor._wrap(check_array(c, nh.to_array(c.a("value"))))
    for k, dt in [("value_float", np.float32), ("value_floats", np.float32),
                  ("value_int", np.int64), ("value_ints", np.int64)]:
        if k in c.attrs:
            return Tensor._wrap(np.array(c.a(k), dtype=dt))
    raise c.unsupported(f"Constant with {', '.join(c.attrs) or 'no value'} is not supported")


@op("ConstantOfShape", since=9)
def _constant_of_shape(c: Ctx) -> Tensor:
    import onnx.numpy_helper as nh

    shape = tuple(c.ints(0))
    val = np.zeros(1, np.float32)
    if "value" in c.attrs:
        from .importer import check_array

        val = check_array(c, nh.to_array(c.a("value")))
    return S.broadcast_to(Tensor._wrap(val.reshape(())), shape=shape)


@op("Range", since=11, notes="start, limit and delta known while importing; a symbolic "
                             "length is counted by a scan")
def _range(c: Ctx) -> Any:
    start, limit, delta = (np.asarray(c.s(i)).reshape(()).item() for i in range(3))
    dt = c.v(0).dtype  # type: ignore[union-attr]
    if not any(isinstance(v, DimExpr) for v in (start, limit, delta)):
        return Tensor._wrap(np.arange(start, limit, delta).astype(dt.np))
    if isinstance(delta, DimExpr) or not isinstance(delta, int) or delta <= 0 or \
            not dt.is_integer:
        raise c.unsupported("Range with symbolic bounds needs an integer start and limit and "
                            "a positive static delta")
    n = (limit - start + delta - 1) // delta
    return E.add(E.mul(sym_arange(n, dt), sc(delta, dt)), _F.scalar(start, dt))


def sym_arange(n: Any, dt: D.DType) -> Tensor:
    """0, 1, ..., n - 1 for a symbolic ``n`` (a scan counting its steps)."""
    from ..control import scan

    xs = S.broadcast_to(sc(0, dt), shape=(n,))
    _, ys = scan(lambda k, _x: (E.add(k, sc(1, dt)), k), sc(0, dt), xs)
    return ys  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- reshape


def _target_shape(c: Ctx, x: Any, shape: list[Any], allowzero: bool) -> tuple:
    out = []
    for k, d in enumerate(shape):
        if not isinstance(d, DimExpr) and d == 0 and not allowzero:
            if k >= len(x.shape):
                raise c.unsupported(f"shape {shape} copies dim {k} of a rank-{len(x.shape)} "
                                    f"input")
            d = x.shape[k]
        out.append(d)
    if sum(1 for d in out if not isinstance(d, DimExpr) and d == -1) > 1:
        raise c.unsupported(f"shape {shape} has more than one -1")
    if any(not isinstance(d, DimExpr) and d == -1 for d in out):
        known: Any = 1
        for d in out:
            if isinstance(d, DimExpr) or d != -1:
                known = known * d
        total: Any = 1
        for d in x.shape:
            total = total * d
        rest = total // known
        out = [rest if not isinstance(d, DimExpr) and d == -1 else d for d in out]
    return tuple(out)


@op("Reshape", notes="shape known while importing (may hold symbolic dims); allowzero")
def _reshape(c: Ctx) -> Any:
    x = c.v(0)
    want = [int(d) for d in c.a("shape")] if c.opset < 5 else c.ints(1)
    shape = _target_shape(c, x, want, bool(c.a("allowzero", 0)))
    if isinstance(x, Sym):
        return Sym(x.arr.reshape(tuple(int(d) for d in shape)))
    return _F.reshape_exact(c.t(0), shape)


@op("Flatten")
def _flatten(c: Ctx) -> Tensor:
    x = c.t(0)
    a = c.a("axis", 1)
    a = a + x.ndim if a < 0 else a
    lead: Any = 1
    for d in x.shape[:a]:
        lead = lead * d
    rest: Any = 1
    for d in x.shape[a:]:
        rest = rest * d
    return _F.reshape_exact(x, (lead, rest))


@op("Transpose")
def _transpose(c: Ctx) -> Tensor:
    x = c.t(0)
    perm = c.a("perm")
    perm = list(range(x.ndim - 1, -1, -1)) if perm is None else [int(p) for p in perm]
    return S.transpose(x, perm=tuple(perm))


@op("Squeeze", notes="axes as attribute (opset < 13) or input")
def _squeeze(c: Ctx) -> Any:
    x = c.v(0)
    shape = list(x.shape)  # type: ignore[union-attr]
    ax = axes_of(c, len(shape))
    if ax is None:
        ax = [i for i, d in enumerate(shape) if not isinstance(d, DimExpr) and d == 1]
    new = tuple(d for i, d in enumerate(shape) if i not in ax)
    if isinstance(x, Sym):
        return Sym(x.arr.reshape(tuple(int(d) for d in new)))
    return _F.reshape_exact(c.t(0), new)


@op("Unsqueeze", notes="axes as attribute (opset < 13) or input")
def _unsqueeze(c: Ctx) -> Any:
    x = c.v(0)
    shape = list(x.shape)  # type: ignore[union-attr]
    raw = c.ints(1) if c.opset >= 13 else list(c.a("axes"))
    r = len(shape) + len(raw)
    ax = sorted(axis(c, int(a), r) for a in raw)
    for a in ax:
        shape.insert(a, 1)
    if isinstance(x, Sym):
        return Sym(x.arr.reshape(tuple(int(d) for d in shape)))
    return _F.reshape_exact(c.t(0), tuple(shape))


@op("Concat")
def _concat(c: Ctx) -> Tensor:
    xs = c.ts()
    return S.concat(*xs, axis=axis(c, c.a("axis", 1), xs[0].ndim))


@sym_op("Concat")
def _sym_concat(c: Ctx) -> Any:
    vals = [as_object(c.v(i)) for i in range(c.n_in) if c.has(i)]  # type: ignore[arg-type]
    return sym_or_tensor(np.concatenate(vals, axis=axis(c, c.a("axis"), vals[0].ndim)))


def _bound(v: Any, n: Any, step: int) -> Any:
    """ONNX Slice's clamping of a start or end to [0, n] (or [-1, n-1] going down)."""
    if isinstance(v, DimExpr) or isinstance(n, DimExpr):
        if isinstance(v, int) and v >= BIG:
            return n
        if isinstance(v, int) and v <= -BIG:
            return 0 if step > 0 else -1
        return n + v if isinstance(v, int) and v < 0 else v
    if v < 0:
        v += n
    return min(max(v, 0), n) if step > 0 else min(max(v, -1), n - 1)


@op("Slice", notes="starts/ends/axes/steps as attributes (opset < 10) or inputs known "
                   "while importing; negative steps on static dims")
def _slice(c: Ctx) -> Any:
    x = c.v(0)
    shape = list(x.shape)  # type: ignore[union-attr]
    if c.opset < 10:
        starts, ends = list(c.a("starts")), list(c.a("ends"))
        axes = c.a("axes")
        axes = list(range(len(starts))) if axes is None else list(axes)
        steps = [1] * len(starts)
    else:
        starts, ends = c.ints(1), c.ints(2)
        axes = c.ints(3) if c.has(3) else list(range(len(starts)))
        steps = c.ints(4) if c.has(4) else [1] * len(starts)
    lo: list[Any] = [0] * len(shape)
    hi: list[Any] = list(shape)
    st: list[int] = [1] * len(shape)
    for a, b, e, s in zip(axes, starts, ends, steps):
        a = axis(c, int(a), len(shape))
        s = int(s)
        if s == 0:
            raise c.unsupported("Slice with step 0")
        lo[a], hi[a], st[a] = _bound(b, shape[a], s), _bound(e, shape[a], s), s
    if isinstance(x, Sym):
        idx = tuple(slice(lo[k], hi[k] if st[k] > 0 or hi[k] >= 0 else None, st[k])
                    for k in range(len(shape)))
        return sym_or_tensor(x.arr[idx])
    t = c.t(0)
    rev = []
    for k in range(len(shape)):
        if st[k] < 0:
            n = shape[k]
            if isinstance(n, DimExpr) or isinstance(lo[k], DimExpr):
                raise c.unsupported("Slice with a negative step on a symbolic dim")
            picked = list(range(n))[slice(lo[k], hi[k] if hi[k] >= 0 else None, st[k])]
            rev.append((k, picked))
            lo[k], hi[k], st[k] = 0, n, 1
    for k in range(len(shape)):
        if not isinstance(hi[k], DimExpr) and not isinstance(lo[k], DimExpr) and hi[k] < lo[k]:
            hi[k] = lo[k]
    guards = []
    for k in range(len(shape)):
        if isinstance(hi[k], DimExpr) and not isinstance(shape[k], DimExpr):
            if isinstance(lo[k], DimExpr):
                raise c.unsupported("Slice of a static dim from a symbolic start")
            t, g = _extend(t, k, hi[k])
            guards.append(g)
    y = S.slice_(t, starts=tuple(lo), stops=tuple(hi), steps=tuple(st))
    for g in guards:
        y = E.logical_or(y, g) if y.dtype is D.bool_ else E.add(y, g)
    for k, picked in rev:
        y = S.take(y, Tensor._wrap(np.array(picked, dtype=np.int64)), axis=k)
    return y


def _extend(t: Tensor, k: int, stop: DimExpr) -> tuple[Tensor, Tensor]:
    """``t`` padded along static dim ``k`` by ``stop`` elements, so a slice up to the
    symbolic ``stop`` type-checks, and a guard (a zero to add to the slice) that fails
    at run time when ``stop`` exceeds the dim: ONNX would clamp the slice there and its
    result would then differ in size, so amber stops instead of computing on padding."""
    from ..capture.trace import symbolic_scalar

    n = int(t.shape[k])
    lo = [0] * t.ndim
    hi: list[Any] = [0] * t.ndim
    hi[k] = stop
    padded = S.pad(t, lo=tuple(lo), hi=tuple(hi), interior=(0,) * t.ndim, value=0.0)
    table = Tensor._wrap(np.zeros(n + 1, dtype=t.dtype.np))
    guard = S.take(table, symbolic_scalar(stop, D.int64), axis=0)  # out of range past n
    return padded, guard


sym_op("Slice")(lambda c: _slice(c))


@op("Split", notes="split sizes as attribute (opset < 13) or input; num_outputs (18)")
def _split(c: Ctx) -> list[Tensor]:
    x = c.t(0)
    a = axis(c, c.a("axis", 0), x.ndim)
    n = x.shape[a]
    if c.opset >= 13 and c.has(1):
        sizes = c.ints(1)
    elif c.opset < 13 and c.a("split") is not None:
        sizes = list(c.a("split"))
    else:
        k = c.a("num_outputs", len(c.node.output))
        if isinstance(n, DimExpr):
            if k != 1:
                raise c.unsupported("Split of a symbolic dim into equal parts")
            sizes = [n]
        else:
            each = -(-n // k)
            sizes = [min(each, n - i * each) for i in range(k)]
    outs, start = [], 0
    for s in sizes:
        lo = [0] * x.ndim
        hi = list(x.shape)
        lo[a], hi[a] = start, start + s
        outs.append(S.slice_(x, starts=tuple(lo), stops=tuple(hi), steps=(1,) * x.ndim))
        start = start + s
    return outs


# ----------------------------------------------------------------------------- gather


@op("Gather", notes="negative indices count from the end")
def _gather(c: Ctx) -> Tensor:
    x, idx = c.t(0), c.t(1)
    return S.take(x, idx, axis=axis(c, c.a("axis", 0), x.ndim))


@sym_op("Gather")
def _sym_gather(c: Ctx) -> Any:
    x = c.v(0)
    idx = c.v(1)
    if not isinstance(x, Sym) or isinstance(idx, Sym) or idx._data is None:  # type: ignore
        return None
    a = axis(c, c.a("axis", 0), x.ndim)
    return sym_or_tensor(np.take(x.arr, idx._data, axis=a))  # type: ignore[union-attr]


@op("GatherElements", since=11)
def _gather_elements(c: Ctx) -> Tensor:
    x, idx = c.t(0), c.t(1)
    a = axis(c, c.a("axis", 0), x.ndim)
    n = x.shape[a]
    idx = E.where(E.lt(idx, sc(0, idx.dtype)), E.add(idx, _F.scalar(n, idx.dtype)), idx)
    return _F.gather(x, a, idx)


@op("GatherND", since=11, notes="batch_dims (12)")
def _gather_nd(c: Ctx) -> Tensor:
    x, idx = c.t(0), _F.cast(c.t(1), D.int64)
    b = c.a("batch_dims", 0)
    k = idx.shape[-1]
    if isinstance(k, DimExpr):
        raise c.unsupported("GatherND with a symbolic index depth")
    bshape = tuple(x.shape[:b])
    nb: Any = 1
    for d in bshape:
        nb = nb * d
    inner = tuple(x.shape[b:b + k])
    rest = tuple(x.shape[b + k:])
    # flatten x to [nb * prod(inner), *rest] and compute flat row indices
    rows: Any = 1
    for d in inner:
        rows = rows * d
    xf = _F.reshape_exact(x, (nb * rows, *rest))
    flat = None
    stride: Any = 1
    for j in range(k - 1, -1, -1):
        comp = S.slice_(idx, starts=(0,) * (idx.ndim - 1) + (j,),
                        stops=tuple(idx.shape[:-1]) + (j + 1,), steps=(1,) * idx.ndim)
        comp = _F.reshape_exact(comp, tuple(idx.shape[:-1]))
        n = inner[j]
        comp = E.where(E.lt(comp, sc(0, D.int64)), E.add(comp, _F.scalar(n, D.int64)), comp)
        term = E.mul(comp, _F.scalar(stride, D.int64))
        flat = term if flat is None else E.add(flat, term)
        stride = stride * n
    if flat is None:
        flat = S.broadcast_to(sc(0, D.int64), shape=tuple(idx.shape[:-1]))
    if b:
        off = Tensor._wrap((np.arange(int(nb)) * int(rows)).astype(np.int64)) \
            if not isinstance(nb, DimExpr) and not isinstance(rows, DimExpr) else None
        if off is None:
            raise c.unsupported("GatherND with batch_dims over symbolic dims")
        off = _F.reshape_exact(off, bshape + (1,) * (idx.ndim - 1 - b))
        flat = E.add(flat, off)
    return S.take(xf, flat, axis=0)


def _flat_positions(c: Ctx, shape: tuple, idx: Tensor, a: int) -> Tensor:
    """Flat positions in a tensor of ``shape`` of ``idx`` along axis ``a`` (index shape
    positions elsewhere), for the ScatterElements family."""
    n = shape[a]
    idx = _F.cast(idx, D.int64)
    idx = E.where(E.lt(idx, sc(0, D.int64)), E.add(idx, _F.scalar(n, D.int64)), idx)
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc = acc * s
    strides.reverse()
    flat = None
    for k in range(len(shape)):
        if k == a:
            pos = idx
        else:
            m = idx.shape[k]
            if isinstance(m, DimExpr):
                raise c.unsupported("scatter with a symbolic index shape")
            sh = [1] * len(shape)
            sh[k] = m
            pos = Tensor._wrap(np.arange(m, dtype=np.int64).reshape(sh))
        term = E.mul(pos, _F.scalar(strides[k], D.int64))
        flat = term if flat is None else E.add(flat, term)
    assert flat is not None
    return S.broadcast_to(flat, shape=tuple(idx.shape)) if tuple(flat.shape) != tuple(
        idx.shape) else flat


def _scatter(c: Ctx, x: Tensor, flat: Tensor, upd: Tensor) -> Tensor:
    red = c.a("reduction", "none")
    if not x.dtype in D.NUMERIC:  # noqa: E713
        raise c.unsupported(f"scatter into {x.dtype.name} data")
    total: Any = 1
    for d in x.shape:
        total = total * d
    xf = _F.reshape_exact(x, (total,))
    m: Any = 1
    for d in flat.shape:
        m = m * d
    fi = _F.reshape_exact(flat, (m,))
    uf = _F.reshape_exact(upd, tuple(fi.shape))
    if red == "add":
        out = S.scatter_add(xf, fi, uf, axis=0)
    elif red == "none":
        # NOTE: ONNX requires distinct indices here, so a sum places each update once.
        ones = S.broadcast_to(sc(1, D.int64), shape=tuple(fi.shape))
        hit = S.scatter_add(S.broadcast_to(sc(0, D.int64), shape=(total,)), fi, ones, axis=0)
        placed = S.scatter_add(S.broadcast_to(sc(0, x.dtype), shape=(total,)), fi, uf, axis=0)
        out = E.where(E.gt(hit, sc(0, D.int64)), placed, xf)
    elif red in ("max", "min", "mul"):
        out = _scatter_reduce(c, red, xf, fi, uf, total)
    else:
        raise c.unsupported(f"reduction {red!r} is not supported")
    return _F.reshape_exact(out, tuple(x.shape))


_ONE_HOT_LIMIT = 1 << 24  # updates x positions compared at once
_MUL_LIMIT = 256  # updates multiplied in one unrolled sequence


def _scatter_reduce(c: Ctx, red: str, xf: Tensor, fi: Tensor, uf: Tensor, total: Any
                    ) -> Tensor:
    """Scatter with max, min or mul: every update compared with every position (a one-hot
    (updates, positions) mask), each position reduced over the updates that name it."""
    n = fi.shape[0]
    if isinstance(n, DimExpr) or isinstance(total, DimExpr) or n * total > _ONE_HOT_LIMIT:
        raise c.unsupported(f"reduction {red!r} over {n} updates into {total} positions "
                            f"(amber composes it from a one-hot mask of at most "
                            f"{_ONE_HOT_LIMIT} entries, with static sizes)")
    pos = Tensor._wrap(np.arange(total, dtype=np.int64).reshape(1, total))
    hit = E.eq(_F.reshape_exact(fi, (n, 1)), pos)  # (updates, positions)
    vals = S.broadcast_to(_F.reshape_exact(uf, (n, 1)), shape=(n, total))
    dt = xf.dtype
    if red == "mul":
        if n > _MUL_LIMIT:
            raise c.unsupported(f"reduction 'mul' over {n} updates (amber multiplies at "
                                f"most {_MUL_LIMIT} in sequence)")
        prod = xf
        for j in range(n):  # NOTE: no product reduction primitive; n small by the limit
            row = _F.reshape_exact(S.slice_(vals, starts=(j, 0), stops=(j + 1, total),
                                           steps=(1, 1)), (total,))
            mask = _F.reshape_exact(S.slice_(hit, starts=(j, 0), stops=(j + 1, total),
                                            steps=(1, 1)), (total,))
            prod = E.where(mask, E.mul(prod, row), prod)
        return prod
    if dt.is_floating:
        neutral = sc(-np.inf if red == "max" else np.inf, dt)
    else:
        info = np.iinfo(dt.np)  # type: ignore[type-var]
        neutral = sc(info.min if red == "max" else info.max, dt)
    masked = E.where(hit, vals, S.broadcast_to(neutral, shape=(n, total)))
    reduce = R.reduce_max if red == "max" else R.reduce_min
    best = reduce(masked, axes=(0,), keepdims=False)
    named = R.reduce_max(_F.cast(hit, D.int32), axes=(0,), keepdims=False)
    combine = E.maximum if red == "max" else E.minimum
    return E.where(E.gt(named, sc(0, D.int32)), combine(xf, best), xf)


@op("Scatter", since=9, notes="as ScatterElements (Scatter's name before opset 11)")
@op("ScatterElements", since=11, notes="reduction none (distinct indices), add, max, min, "
                                      "mul")
def _scatter_elements(c: Ctx) -> Tensor:
    x, idx, upd = c.t(0), c.t(1), c.t(2)
    a = axis(c, c.a("axis", 0), x.ndim)
    return _scatter(c, x, _flat_positions(c, tuple(x.shape), idx, a), upd)


@op("ScatterND", since=11, notes="reduction none (distinct indices), add, max, min, mul")
def _scatter_nd(c: Ctx) -> Tensor:
    x, idx, upd = c.t(0), _F.cast(c.t(1), D.int64), c.t(2)
    k = idx.shape[-1]
    if isinstance(k, DimExpr) or any(isinstance(d, DimExpr) for d in x.shape):
        raise c.unsupported("ScatterND on symbolic shapes")
    shape = tuple(int(d) for d in x.shape)
    rows = int(np.prod(shape[:k]))
    rest = shape[k:]
    flat = None
    stride = 1
    for j in range(k - 1, -1, -1):
        comp = S.slice_(idx, starts=(0,) * (idx.ndim - 1) + (j,),
                        stops=tuple(idx.shape[:-1]) + (j + 1,), steps=(1,) * idx.ndim)
        comp = _F.reshape_exact(comp, tuple(idx.shape[:-1]))
        comp = E.where(E.lt(comp, sc(0, D.int64)), E.add(comp, sc(shape[j], D.int64)), comp)
        term = E.mul(comp, sc(stride, D.int64))
        flat = term if flat is None else E.add(flat, term)
        stride *= shape[j]
    assert flat is not None
    inner = int(np.prod(rest)) if rest else 1
    pos = E.add(E.mul(_F.reshape_exact(flat, tuple(flat.shape) + (1,)), sc(inner, D.int64)),
                Tensor._wrap(np.arange(inner, dtype=np.int64)))
    xr = _F.reshape_exact(x, (rows * inner,))
    out = _scatter(c, xr, pos, _F.reshape_exact(upd, tuple(pos.shape)))
    return _F.reshape_exact(out, shape)


# ----------------------------------------------------------------------------- broadcast


@op("Expand", since=8)
def _expand(c: Ctx) -> Tensor:
    x = c.t(0)
    want = c.ints(1)
    r = max(len(want), x.ndim)
    xs = [1] * (r - x.ndim) + list(x.shape)
    ws = [1] * (r - len(want)) + list(want)
    out = []
    for a, b in zip(xs, ws):
        if not isinstance(b, DimExpr) and b == 1:
            out.append(a)
        else:
            out.append(b)
    if r > x.ndim:
        x = _F.reshape_exact(x, tuple(xs))
    return S.broadcast_to(x, shape=tuple(out)) if tuple(out) != tuple(x.shape) else x


@op("Tile", notes="repeats known while importing")
def _tile(c: Ctx) -> Tensor:
    x = c.t(0)
    reps = c.ints(1)
    return _F.repeat(x, *reps)


@op("Pad", notes="constant, reflect and edge modes; pads (and axes, 18) known while "
                 "importing")
def _pad(c: Ctx) -> Tensor:
    x = c.t(0)
    r = x.ndim
    if c.opset < 11:
        pads, value = list(c.a("pads", c.a("paddings"))), c.a("value", 0.0)
        axes = list(range(r))
    else:
        pads = c.ints(1)
        value = 0.0
        if c.has(2):
            value = np.asarray(c.s(2)).reshape(-1)[0].item()
        axes = [axis(c, a, r) for a in c.ints(3)] if c.has(3) else list(range(r))
    k = len(axes)
    lo, hi = [0] * r, [0] * r
    for j, a in enumerate(axes):
        lo[a], hi[a] = int(pads[j]), int(pads[j + k])
    mode = c.a("mode", "constant")
    flat = []
    for a in range(r - 1, -1, -1):
        flat += [lo[a], hi[a]]
    tmode = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
             "wrap": "circular"}.get(mode)
    if tmode is None:
        raise c.unsupported(f"pad mode {mode!r}")
    if tmode == "constant":
        if not x.dtype.is_floating and value != int(value):
            raise c.unsupported("a non-integer pad value for integer data")
        if x.dtype is D.bool_:
            raise c.unsupported("Pad of bool data")
        return _nn_pad(x, flat, "constant", float(value))
    return _nn_pad(x, flat, tmode, None)


def _nn_pad(x: Tensor, flat: list[int], mode: str, value: float | None) -> Tensor:
    from ..nn import functional as F

    return F.pad(x, flat, mode=mode, value=value)


# ----------------------------------------------------------------------------- misc layout


@op("DepthToSpace", notes="DCR and CRD modes")
def _depth_to_space(c: Ctx) -> Tensor:
    x = c.t(0)
    b = c.a("blocksize")
    n, ch, h, w = x.shape
    if c.a("mode", "DCR") == "DCR":
        y = _F.reshape_exact(x, (n, b, b, ch // (b * b), h, w))
        y = S.transpose(y, perm=(0, 3, 4, 1, 5, 2))
    else:
        y = _F.reshape_exact(x, (n, ch // (b * b), b, b, h, w))
        y = S.transpose(y, perm=(0, 1, 4, 2, 5, 3))
    return _F.reshape_exact(y, (n, ch // (b * b), h * b, w * b))


@op("SpaceToDepth", notes="DCR and CRD modes")
def _space_to_depth(c: Ctx) -> Tensor:
    x = c.t(0)
    b = c.a("blocksize")
    n, ch, h, w = x.shape
    y = _F.reshape_exact(x, (n, ch, h // b, b, w // b, b))
    mode = c.a("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise c.unsupported(f"mode {mode!r}")
    y = S.transpose(y, perm=(0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4))
    return _F.reshape_exact(y, (n, ch * b * b, h // b, w // b))


@op("EyeLike", since=9)
def _eyelike(c: Ctx) -> Tensor:
    x = c.t(0)
    dt = onnx_dtype(c, c.a("dtype")) if c.a("dtype") is not None else x.dtype
    n, m = x.shape
    if isinstance(n, DimExpr) or isinstance(m, DimExpr):
        raise c.unsupported("EyeLike of a symbolic shape")
    return Tensor._wrap(np.eye(n, m, k=c.a("k", 0), dtype=dt.np))


@op("Trilu", since=14)
def _trilu(c: Ctx) -> Tensor:
    x = c.t(0)
    k = c.ints(1)[0] if c.has(1) else 0
    n, m = x.shape[-2], x.shape[-1]
    if isinstance(n, DimExpr) or isinstance(m, DimExpr):
        raise c.unsupported("Trilu on symbolic dims")
    keep = np.triu(np.ones((n, m), bool), k) if c.a("upper", 1) else \
        np.tril(np.ones((n, m), bool), k)
    zero = Tensor._wrap(np.zeros((), x.dtype.np))
    return E.where(Tensor._wrap(keep), x, zero)


@op("OneHot", since=9, notes="depth known while importing")
def _onehot(c: Ctx) -> Tensor:
    idx = c.t(0)
    depth = int(np.asarray(c.s(1)).reshape(-1)[0])
    values = c.t(2)
    r = idx.ndim + 1
    a = axis(c, c.a("axis", -1), r)
    if idx.dtype.is_floating:
        idx = _F.cast(idx, D.int64)
    idx = E.where(E.lt(idx, sc(0, idx.dtype)), E.add(idx, sc(depth, idx.dtype)), idx)
    shape = [1] * r
    shape[a] = depth
    rng = Tensor._wrap(np.arange(depth, dtype=idx.dtype.np).reshape(shape))
    hot = E.eq(_F.unsqueeze(idx, a), rng)
    off = S.slice_(values, starts=(0,), stops=(1,), steps=(1,))
    on = S.slice_(values, starts=(1,), stops=(2,), steps=(1,))
    return E.where(hot, _F.reshape_exact(on, ()), _F.reshape_exact(off, ()))


@op("CumSum", since=11, notes="axis known while importing; exclusive and reverse; static "
                              "length along the axis")
def _cumsum(c: Ctx) -> Tensor:
    x = c.t(0)
    a = axis(c, int(np.asarray(c.s(1)).reshape(-1)[0]), x.ndim)
    n = x.shape[a]
    if isinstance(n, DimExpr):
        raise c.unsupported("CumSum along a symbolic dim")
    i = np.arange(n)
    tri = (i[:, None] <= i[None, :]) if not c.a("reverse", 0) else (i[:, None] >= i[None, :])
    if c.a("exclusive", 0):
        tri = tri & (i[:, None] != i[None, :])
    perm = [d for d in range(x.ndim) if d != a] + [a]
    inv = list(np.argsort(perm))
    xt = S.transpose(x, perm=tuple(perm)) if a != x.ndim - 1 else x
    if x.dtype is D.bool_:
        raise c.unsupported("CumSum of bool data")
    y = L.matmul(xt if xt.ndim >= 2 else _F.reshape_exact(xt, (1, n)),
                 Tensor._wrap(tri.astype(x.dtype.np)))
    if xt.ndim < 2:
        y = _F.reshape_exact(y, (n,))
    return S.transpose(y, perm=tuple(int(p) for p in inv)) if a != x.ndim - 1 else y


OPS_SHAPE = {"Reshape": _reshape, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze}
sym_op("Reshape", "Squeeze", "Unsqueeze")(lambda c: OPS_SHAPE[c.node.op_type](c))

__all__ = ["axes_of", "axis"]


@op("CumProd", since=26, notes="axis known while importing; exclusive and reverse; a scan "
                               "along the axis (the sequential product)")
def _cumprod(c: Ctx) -> Tensor:
    from ..control import scan

    x = c.t(0)
    if not x.dtype in D.NUMERIC:  # noqa: E713
        raise c.unsupported(f"CumProd of {x.dtype.name} data")
    a = axis(c, int(np.asarray(c.s(1)).reshape(-1)[0]), x.ndim)
    perm = [a] + [d for d in range(x.ndim) if d != a]
    xt = S.transpose(x, perm=tuple(perm)) if a else x
    one = S.broadcast_to(sc(1, x.dtype), shape=tuple(xt.shape[1:]))
    exclusive = bool(c.a("exclusive", 0))

    def step(p: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        n = E.mul(p, v)
        return n, (p if exclusive else n)

    _, ys = scan(step, one, xt, reverse=bool(c.a("reverse", 0)))
    inv = [perm.index(d) for d in range(x.ndim)]
    return S.transpose(ys, perm=tuple(inv)) if a else ys


@op("CenterCropPad", since=18, notes="target shape known while importing; axes")
def _center_crop_pad(c: Ctx) -> Tensor:
    x = c.t(0)
    want = c.ints(1)
    axes = c.a("axes")
    axes = [axis(c, int(v), x.ndim) for v in axes] if axes is not None else \
        list(range(x.ndim))
    for a, n in zip(axes, want):
        have = x.shape[a]
        if isinstance(have, DimExpr) or isinstance(n, DimExpr):
            raise c.unsupported("CenterCropPad of symbolic dims")
        if n < have:
            lo = [0] * x.ndim
            hi = list(x.shape)
            lo[a] = (have - n) // 2
            hi[a] = lo[a] + n
            x = S.slice_(x, starts=tuple(lo), stops=tuple(hi), steps=(1,) * x.ndim)
        elif n > have:
            plo, phi = [0] * x.ndim, [0] * x.ndim
            plo[a] = (n - have) // 2
            phi[a] = n - have - plo[a]
            x = S.pad(x, lo=tuple(plo), hi=tuple(phi), interior=(0,) * x.ndim, value=0.0)
    return x


@op("ReverseSequence", since=10, notes="per-batch lengths as data; static time and batch "
                                       "sizes")
def _reverse_sequence(c: Ctx) -> Tensor:
    x, lens = c.t(0), c.t(1)
    t_ax, b_ax = int(c.a("time_axis", 0)), int(c.a("batch_axis", 1))
    if x.ndim < 2 or {t_ax, b_ax} != {0, 1}:
        raise c.unsupported(f"ReverseSequence with time_axis {t_ax}, batch_axis {b_ax}")
    steps, batch = x.shape[t_ax], x.shape[b_ax]
    if isinstance(steps, DimExpr) or isinstance(batch, DimExpr):
        raise c.unsupported("ReverseSequence over symbolic time or batch sizes")
    t = Tensor._wrap(np.arange(steps, dtype=np.int64).reshape(steps, 1))
    n = _F.reshape_exact(_F.cast(lens, D.int64), (1, batch))
    index = E.where(E.lt(t, n), E.sub(E.sub(n, sc(1, D.int64)), t),
                    S.broadcast_to(t, shape=(steps, batch)))  # (time, batch)
    if t_ax == 1:
        index = S.transpose(index, perm=(1, 0))
    index = _F.reshape_exact(index, tuple(index.shape) + (1,) * (x.ndim - 2))
    return _F.gather(x, t_ax, S.broadcast_to(index, shape=tuple(x.shape)))


@op("Compress", since=9, notes="the condition known while importing (it sets the output "
                               "shape)")
def _compress(c: Ctx) -> Tensor:
    x = c.t(0)
    keep = np.nonzero(np.asarray(c.s(1)).reshape(-1).astype(bool))[0].astype(np.int64)
    ax = c.a("axis")
    if ax is None:
        x = _F.reshape_exact(x, (x.numel(),))
        ax = 0
    ax = axis(c, ax, x.ndim)
    n = x.shape[ax]
    if not isinstance(n, DimExpr) and keep.size and int(keep[-1]) >= int(n):
        raise c.unsupported(f"Compress condition selects position {int(keep[-1])} of a dim "
                            f"of size {n}")
    return S.take(x, Tensor._wrap(keep), axis=ax)


@op("TensorScatter", since=24, notes="linear and circular write positions per batch "
                                     "element")
def _tensor_scatter(c: Ctx) -> Tensor:
    past, upd = c.t(0), c.t(1)
    ax = axis(c, c.a("axis", -2), past.ndim)
    mode = str(c.a("mode", "linear"))
    if mode not in ("linear", "circular") or ax == 0:
        raise c.unsupported(f"TensorScatter mode {mode!r} along axis {ax}")
    size, steps = past.shape[ax], upd.shape[ax]
    if isinstance(size, DimExpr) or isinstance(steps, DimExpr):
        raise c.unsupported("TensorScatter over a symbolic sequence dim")
    batch = past.shape[0]
    start = _F.cast(c.t(2), D.int64) if c.has(2) else \
        S.broadcast_to(sc(0, D.int64), shape=(batch,))
    shape = [1] * past.ndim
    shape[0] = batch
    start = _F.reshape_exact(start, tuple(shape))
    shape[0], shape[ax] = 1, size
    pos = Tensor._wrap(np.arange(size, dtype=np.int64).reshape(shape))
    step = E.sub(pos, start)  # which update step lands on each cache position
    if mode == "circular":
        step = E.sub(step, E.mul(E.div(step, sc(size, D.int64)), sc(size, D.int64)))
    hit = E.logical_and(E.ge(step, sc(0, D.int64)), E.lt(step, sc(steps, D.int64)))
    safe = E.where(hit, step, sc(0, D.int64))
    full = tuple(past.shape)
    picked = _F.gather(upd, ax, S.broadcast_to(safe, shape=full[:ax] + (size,) + full[ax + 1:]))
    return E.where(S.broadcast_to(hit, shape=full), picked, past)


_SHIFT_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64, "uint8": 8}


def _powers(name: str, bits: int) -> np.ndarray:
    """2**k for k < bits in the dtype (the signed top power wraps to the minimum)."""
    top = -(1 << (bits - 1)) if name.startswith("int") else 1 << (bits - 1)
    return np.array([1 << k for k in range(bits - 1)] + [top], dtype=name)


@op("BitShift", since=11, notes="8- to 64-bit integers of amber's dtypes (arithmetic right "
                                "shift for signed; shifts outside [0, bits) give the sign "
                                "fill)")
def _bit_shift(c: Ctx) -> Tensor:
    x, y = c.t(0), c.t(1)
    bits = _SHIFT_BITS.get(x.dtype.name)
    if bits is None or y.dtype is not x.dtype:
        raise c.unsupported(f"BitShift of {x.dtype.name} by {y.dtype.name}")
    signed = x.dtype.name.startswith("int")
    x, y = _F.broadcast_tensors(x, y)
    dt = x.dtype
    zero = sc(0, dt)
    ok = E.lt(y, sc(bits, dt))
    if signed:
        ok = E.logical_and(E.ge(y, zero), ok)
    k = E.where(ok, y, zero)
    power = S.take(Tensor._wrap(_powers(dt.name, bits)), _F.cast(k, D.int64), axis=0)  # 2**k
    if c.a("direction") == "LEFT":
        return E.where(ok, E.mul(x, power), zero)
    if not signed:
        return E.where(ok, E.div(x, power), zero)
    fill = E.where(E.lt(x, zero), sc(-1, dt), zero)  # the sign extension alone
    shifted = E.where(E.eq(k, sc(bits - 1, dt)), fill, E.div(x, power))  # floor division
    return E.where(ok, shifted, fill)
