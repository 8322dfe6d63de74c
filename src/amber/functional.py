"""amber's op front end: PyTorch-style functions over tensors and Python scalars.

These functions normalise arguments (dtype promotion, scalar lifting, ``dim``/``keepdim``,
``-1`` in shapes) and call primitives; composite ops (softmax, layer_norm, gelu, ...)
are written here from primitives, so they are differentiated and captured for free."""

from __future__ import annotations

import builtins
import math
import string
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _dtype as D
from .errors import AmberError, ShapeError
from .ops import elementwise as E
from .ops import linalg as L
from .ops import reduce as R
from .ops import shape as S
from .tensor import Tensor

Number = int | float | bool

# ----------------------------------------------------------------------------- lifting


def scalar(value: Any, dtype: D.DType) -> Tensor:
    """A 0-d constant tensor (a symbolic size under capture becomes a ``dim_value`` node,
    so it is computed at run time rather than baked in)."""
    if getattr(value, "_amber_symbolic_int", False):
        from .capture.trace import symbolic_scalar

        return symbolic_scalar(value, dtype)
    try:
        return Tensor._wrap(np.array(value, dtype=dtype.np))
    except OverflowError:
        raise D.DTypeError(
            f"the Python number {value} does not fit in {dtype.name}; convert the tensor "
            f"first, e.g. .to(am.int64)"
        ) from None


def _as_tensor(x: Any) -> Tensor:
    if isinstance(x, Tensor):
        return x
    from .creation import tensor

    return tensor(x)


def cast(x: Tensor, dtype: Any) -> Tensor:
    """Convert ``x`` to ``dtype`` (no-op if it already has it)."""
    dt = D.as_dtype(dtype)
    x = _as_tensor(x)
    return x if x.dtype is dt else E.cast(x, dtype=dt.name)


def _operands(a: Any, b: Any, arith: bool = False) -> tuple[Tensor, Tensor]:
    """Lift scalars and promote dtypes; with ``arith``, bool computes as int64. A NumPy
    array operand counts as a tensor (``ndarray + Tensor`` lands here via ``__radd__``)."""
    if isinstance(a, np.ndarray):
        a = _as_tensor(a)
    if isinstance(b, np.ndarray):
        b = _as_tensor(b)
    da = db = None  # dtypes of the tensor operands (None for a Python scalar)
    if isinstance(a, Tensor):
        da = a.dtype
        if isinstance(b, Tensor):
            db = b.dtype
            dt = da if da is db else D.promote(da, db)
        else:
            dt = D.promote_scalar(da, b)
    elif isinstance(b, Tensor):
        db = b.dtype
        dt = D.promote_scalar(db, a)
    else:
        a, b = _as_tensor(a), _as_tensor(b)
        da, db = a.dtype, b.dtype
        dt = D.promote(da, db)
    if arith and dt is D.bool_:
        dt = D.int64
    return (a if da is dt else _lift(a, dt)), (b if db is dt else _lift(b, dt))


def _lift(x: Any, dt: D.DType) -> Tensor:
    if isinstance(x, Tensor):
        return x if x.dtype is dt else E.cast(x, dtype=dt.name)
    if isinstance(x, np.ndarray):
        return cast(_as_tensor(x), dt)
    return scalar(x, dt)


def _arith(prim: Any, a: Any, b: Any) -> Tensor:
    return prim(*_operands(a, b, arith=True))


# NOTE: each arithmetic function first tries the common case, two concrete tensors of one
# float dtype, which needs no promotion: the primitive's apply straight away.


def add(a: Any, b: Any, alpha: Any = 1) -> Tensor:
    if isinstance(a, Tensor) and isinstance(b, Tensor) and alpha == 1:
        xa, xb = a._data, b._data
        if xa is not None and xb is not None and xa.dtype == xb.dtype and xa.dtype.kind == "f":
            return _add2(a, b)
    return _arith(E.add, a, b if alpha == 1 else mul(b, alpha))


def sub(a: Any, b: Any, alpha: Any = 1) -> Tensor:
    if isinstance(a, Tensor) and isinstance(b, Tensor) and alpha == 1:
        xa, xb = a._data, b._data
        if xa is not None and xb is not None and xa.dtype == xb.dtype and xa.dtype.kind == "f":
            return _sub2(a, b)
    return _arith(E.sub, a, b if alpha == 1 else mul(b, alpha))


def mul(a: Any, b: Any) -> Tensor:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        xa, xb = a._data, b._data
        if xa is not None and xb is not None and xa.dtype == xb.dtype and xa.dtype.kind == "f":
            return _mul2(a, b)
    return _arith(E.mul, a, b)


_add2, _sub2, _mul2 = E.add.apply, E.sub.apply, E.mul.apply


def div(a: Any, b: Any, rounding_mode: str | None = None) -> Tensor:
    """True division (integers are converted to the default float), as ``torch.div``;
    ``rounding_mode="floor"`` floors and keeps integer dtypes."""
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode is not None:
        raise AmberError(f"div: rounding_mode {rounding_mode!r} is not supported (None, 'floor')")
    x, y = _operands(a, b, arith=True)
    if not x.dtype.is_floating:
        x, y = cast(x, D.default_float()), cast(y, D.default_float())
    return E.div(x, y)


true_divide = divide = div


def floor_divide(a: Any, b: Any) -> Tensor:
    """Floor division; integer division by zero gives 0 (see docs/opset.md)."""
    x, y = _operands(a, b, arith=True)
    q = E.div(x, y)
    return q if not q.dtype.is_floating else floor(q)


def remainder(a: Any, b: Any) -> Tensor:
    """``a - floor_divide(a, b) * b``: the remainder with the sign of the divisor (Python's
    ``%``, ``torch.remainder``)."""
    x, y = _operands(a, b, arith=True)
    return x - floor_divide(x, y) * y


def floor(x: Any) -> Tensor:
    """Round toward -inf (integers pass through unchanged)."""
    x = _as_tensor(x)
    return E.floor(x) if x.dtype.is_floating else x


def ceil(x: Any) -> Tensor:
    """Round toward +inf."""
    return -floor(-_as_tensor(x))


def trunc(x: Any) -> Tensor:
    """Round toward zero (integers pass through unchanged)."""
    x = _as_tensor(x)
    if not x.dtype.is_floating:
        return x
    return where(x < 0, ceil(x), floor(x))


def round(x: Any, *, decimals: int = 0) -> Tensor:
    """Round to the nearest integer, halves to even (as torch.round); with ``decimals``
    round ``x * 10**decimals`` and scale back. Integers pass through unchanged."""
    x = _as_tensor(x)
    if not x.dtype.is_floating:
        return x
    if decimals:
        scale = 10.0 ** decimals
        return round(x * scale) / scale
    return E.round_(x)


def pow(a: Any, b: Any) -> Tensor:
    """``a ** b``. Integer tensors raised to a non-negative Python int stay integers."""
    if isinstance(a, Tensor) and not a.dtype.is_floating and isinstance(b, int) \
            and not isinstance(b, bool) and b >= 0:
        return _int_pow(cast(a, D.int64) if a.dtype is D.bool_ else a, b)
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if b == 1:
            return a if a.dtype.is_floating else cast(a, D.default_float())
        if b == 2 and a.dtype.is_floating:
            return a * a
    x, y = _operands(a, b, arith=True)
    if not x.dtype.is_floating:
        x, y = cast(x, D.default_float()), cast(y, D.default_float())
    return E.pow_(x, y)


def _int_pow(x: Tensor, n: int) -> Tensor:
    result: Tensor = ones_like(x)
    base = x
    while n:
        if n & 1:
            result = result * base
        n >>= 1
        if n:
            base = base * base
    return result


def _binary_any(prim: Any) -> Any:
    def fn(a: Any, b: Any) -> Tensor:
        return prim(*_operands(a, b))

    fn.__name__ = prim.name
    fn.__doc__ = prim.doc
    return fn


maximum = _binary_any(E.maximum)
minimum = _binary_any(E.minimum)
eq = _binary_any(E.eq)
ne = _binary_any(E.ne)
lt = _binary_any(E.lt)
le = _binary_any(E.le)
gt = _binary_any(E.gt)
ge = _binary_any(E.ge)
less, less_equal, greater, greater_equal, equal, not_equal = lt, le, gt, ge, eq, ne


def _to_bool(x: Any) -> Tensor:
    return cast(_as_tensor(x), D.bool_)


def logical_and(a: Any, b: Any) -> Tensor:
    return E.logical_and(_to_bool(a), _to_bool(b))


def logical_or(a: Any, b: Any) -> Tensor:
    return E.logical_or(_to_bool(a), _to_bool(b))


def logical_not(a: Any) -> Tensor:
    return E.logical_not(_to_bool(a))


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """Elements of ``a`` where ``cond`` else ``b`` (all broadcast together)."""
    x, y = _operands(a, b)
    return E.where(_to_bool(cond), x, y)


def masked_fill(x: Tensor, mask: Tensor, value: Any) -> Tensor:
    return where(mask, value, x)


# ----------------------------------------------------------------------------- unary


def _float_unary(prim: Any) -> Any:
    apply = prim.apply

    def fn(x: Any) -> Tensor:
        if isinstance(x, Tensor) and x._data is not None and x._data.dtype.kind == "f":
            return apply(x)  # the common case, without looking the dtype up
        x = _as_tensor(x)
        return prim(x if x.dtype.is_floating else cast(x, D.default_float()))

    fn.__name__ = prim.name
    fn.__doc__ = prim.doc
    return fn


exp = _float_unary(E.exp)
log = _float_unary(E.log)
sqrt = _float_unary(E.sqrt)
tanh = _float_unary(E.tanh)
sigmoid = _float_unary(E.sigmoid)
sin = _float_unary(E.sin)
cos = _float_unary(E.cos)
erf = _float_unary(E.erf)


def _numeric(x: Any) -> Tensor:
    x = _as_tensor(x)
    return cast(x, D.int64) if x.dtype is D.bool_ else x


def neg(x: Any) -> Tensor:
    return E.neg(_numeric(x))


def abs(x: Any) -> Tensor:
    return E.abs_(_numeric(x))


def sign(x: Any) -> Tensor:
    return E.sign(_numeric(x))


def square(x: Tensor) -> Tensor:
    return x * x


def rsqrt(x: Tensor) -> Tensor:
    return 1.0 / sqrt(x)


def relu(x: Tensor) -> Tensor:
    """max(x, 0); the gradient at 0 is 0 and NaN stays NaN (as in PyTorch)."""
    if isinstance(x, Tensor) and x._data is not None and x._data.dtype.kind == "f":
        return E.relu_eager(x)
    if isinstance(x, Tensor) and x.dtype is not D.bool_:
        # where(x <= 0, 0, x) with the zero lifted once (same primitives, less dispatch)
        zero = scalar(0, x.dtype)
        return E.where(E.le(x, zero), zero, x)
    return where(x <= 0, 0, x)


def clamp(x: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """Limit to [min, max]; NaN stays NaN. Either bound may be None or a tensor."""
    if min is None and max is None:
        raise AmberError("clamp: at least one of min and max must be given")
    if min is not None:
        x = maximum(x, min)
    if max is not None:
        x = minimum(x, max)
    return x


clip = clamp


# ----------------------------------------------------------------------------- shapes


def _norm_dim(dim: int, ndim: int, op: str) -> int:
    n = builtins.max(ndim, 1)  # a 0-d tensor accepts dim 0 and -1, as in PyTorch
    if not -n <= dim < n:
        raise ShapeError(f"{op}: dim {dim} is out of range for a tensor of rank {ndim}")
    return dim % ndim if ndim else 0


def _norm_dims(dim: Any, ndim: int, op: str) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    if ndim == 0:  # dims 0 / -1 of a 0-d tensor: nothing to reduce
        for d in dims:
            _norm_dim(d, 0, op)
        return ()
    out = tuple(sorted(_norm_dim(d, ndim, op) for d in dims))
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: dim {dim} repeats a dimension")
    return out


def _shape_arg(shape: Sequence[Any]) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape_exact(x: Tensor, shape: tuple) -> Tensor:
    return x if tuple(x.shape) == tuple(shape) else S.reshape(x, shape=tuple(shape))


def reshape(x: Tensor, *shape: Any) -> Tensor:
    """New shape with the same elements; one dim may be -1 (inferred)."""
    shape = _shape_arg(shape)
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape: only one dim may be -1, got {shape}")
    if -1 in shape:
        known: Any = 1
        for d in shape:
            if d != -1:
                known = known * d
        total = x.numel()
        if known == 0 or total % known:
            raise ShapeError(f"reshape: cannot reshape {tuple(x.shape)} to {shape}")
        shape = tuple(total // known if d == -1 else d for d in shape)
    return reshape_exact(x, shape)


view = reshape


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if x.ndim == 0:
        return reshape(x, 1)
    s = _norm_dim(start_dim, x.ndim, "flatten")
    e = _norm_dim(end_dim, x.ndim, "flatten")
    n: Any = 1
    for d in x.shape[s:e + 1]:
        n = n * d
    return reshape_exact(x, tuple(x.shape[:s]) + (n,) + tuple(x.shape[e + 1:]))


def permute(x: Tensor, *dims: Any) -> Tensor:
    perm = tuple(_norm_dim(d, x.ndim, "permute") for d in _shape_arg(dims))
    if perm == tuple(range(x.ndim)):
        return x
    return S.transpose(x, perm=perm)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    perm = list(range(x.ndim))
    a, b = _norm_dim(dim0, x.ndim, "transpose"), _norm_dim(dim1, x.ndim, "transpose")
    perm[a], perm[b] = perm[b], perm[a]
    return permute(x, perm)


def t(x: Tensor) -> Tensor:
    if x.ndim > 2:
        raise ShapeError(f"t: expects a tensor of rank <= 2, got {tuple(x.shape)}")
    return x if x.ndim < 2 else transpose(x, 0, 1)


def squeeze(x: Tensor, dim: Any = None) -> Tensor:
    if dim is None:
        dims = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        dims = tuple(d for d in _norm_dims(dim, x.ndim, "squeeze") if x.shape[d] == 1)
    return reshape_exact(x, tuple(d for i, d in enumerate(x.shape) if i not in dims))


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    d = _norm_dim(dim, x.ndim + 1, "unsqueeze")
    shape = list(x.shape)
    shape.insert(d, 1)
    return reshape_exact(x, tuple(shape))


def broadcast_to(x: Any, shape: Sequence[Any]) -> Tensor:
    x = _as_tensor(x)
    shape = tuple(shape)
    return x if tuple(x.shape) == shape else S.broadcast_to(x, shape=shape)


def expand(x: Tensor, *sizes: Any) -> Tensor:
    """Broadcast to ``sizes``; -1 keeps a dim (as torch.Tensor.expand)."""
    sizes = _shape_arg(sizes)
    lead = len(sizes) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    return broadcast_to(x, shape)


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    return broadcast_to(x, other.shape)


def broadcast_tensors(*xs: Tensor) -> list[Tensor]:
    from .ops._infer import broadcast_shapes

    shape = broadcast_shapes("broadcast_tensors", *(x.shape for x in xs))
    return [broadcast_to(x, shape) for x in xs]


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along ``dim`` (dtypes are promoted to a common one)."""
    grown = getattr(tensors, "_amber_cat", None)
    if grown is not None:  # a list that grew in a captured loop (capture/ag_runtime.py)
        return grown(dim)
    ts = [_as_tensor(t) for t in tensors]
    if not ts:
        raise ShapeError("cat: expects a non-empty sequence of tensors")
    dt = ts[0].dtype
    for t_ in ts[1:]:
        dt = D.promote(dt, t_.dtype)
    ts = [cast(t_, dt) for t_ in ts]
    axis = _norm_dim(dim, ts[0].ndim, "cat")
    return ts[0] if len(ts) == 1 else S.concat(*ts, axis=axis)


concat = concatenate = cat


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    grown = getattr(tensors, "_amber_stack", None)
    if grown is not None:  # a list that grew in a captured loop (capture/ag_runtime.py)
        return grown(dim)
    ts = [_as_tensor(t) for t in tensors]
    if not ts:
        raise ShapeError("stack: expects a non-empty sequence of tensors")
    for t_ in ts[1:]:
        if tuple(t_.shape) != tuple(ts[0].shape):
            raise ShapeError(
                f"stack: all tensors must have one shape, got "
                f"{', '.join(str(tuple(x.shape)) for x in ts)}"
            )
    d = _norm_dim(dim, ts[0].ndim + 1, "stack")
    return cat([unsqueeze(t_, d) for t_ in ts], d)


def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    d = _norm_dim(dim, x.ndim, "narrow")
    starts, stops = [0] * x.ndim, list(x.shape)
    starts[d], stops[d] = start, start + length
    return S.slice_(x, starts=tuple(starts), stops=tuple(stops), steps=(1,) * x.ndim)


def split(x: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    d = _norm_dim(dim, x.ndim, "split")
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        k = split_size_or_sections
        if k <= 0 and n:
            raise ShapeError(f"split: split_size must be positive, got {k}")
        sizes = [builtins.min(k, n - i) for i in range(0, n, k)] if n else [0]
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ShapeError(f"split: sizes {sizes} do not sum to dim {d} of size {n}")
    if x._data is not None and len(sizes) > 1 and builtins.all(type(s) is int for s in sizes):
        from .control import split_eager

        return tuple(split_eager(x, d, sizes))  # one tape entry for all the pieces
    out, start = [], 0
    for s in sizes:
        out.append(narrow(x, d, start, s))
        start += s
    return tuple(out)


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    n = x.shape[_norm_dim(dim, x.ndim, "chunk")]
    if chunks <= 0:
        raise ShapeError(f"chunk: chunks must be positive, got {chunks}")
    if n == 0:  # as in PyTorch: `chunks` empty pieces
        return split(x, 0, dim) * chunks
    return split(x, -(-n // chunks), dim)


def repeat(x: Tensor, *sizes: Any) -> Tensor:
    """Tile ``x`` ``sizes[i]`` times along each dim (torch.Tensor.repeat)."""
    sizes = _shape_arg(sizes)
    x = reshape_exact(x, (1,) * (len(sizes) - x.ndim) + tuple(x.shape))
    inter = []
    for s, d in zip(sizes, x.shape, strict=True):
        inter += [s, d]
    y = broadcast_to(reshape_exact(x, tuple(v for d in x.shape for v in (1, d))), tuple(inter))
    return reshape_exact(y, tuple(s * d for s, d in zip(sizes, x.shape, strict=True)))


def _checked_index(op: str, index: Tensor, n: Any, d: int) -> Tensor:
    """``index`` as int64 with negative entries counted from the end; when its values are
    known (eager), an entry outside [-n, n) raises OutOfRangeError."""
    from .errors import OutOfRangeError

    a = index._data
    if a is not None and a.size and isinstance(n, (int, np.integer)):
        bad = (a < -n) | (a >= n)
        if bad.any():
            raise OutOfRangeError(f"{op}: index {a[bad].flat[0]} is out of range for dim {d} "
                                  f"of size {n}")
    pos = cast(index, D.int64)
    return where(pos < 0, pos + n, pos)


def _flat_positions(op: str, shape: tuple, index: Tensor, d: int) -> Tensor:
    """Flat positions into a tensor of ``shape`` for every element of ``index`` (whose
    entries address dim ``d``; every other coordinate is the element's own)."""
    if index.ndim != len(shape):
        raise ShapeError(f"{op}: index rank {index.ndim} differs from input rank {len(shape)}")
    if index.dtype not in (D.int32, D.int64):
        raise D.DTypeError(f"{op}: index must be int64 or int32, got {index.dtype.name}")
    for ax in range(len(shape)):
        if ax != d and index.shape[ax] > shape[ax]:
            raise ShapeError(f"{op}: index shape {tuple(index.shape)} exceeds the input shape "
                             f"{tuple(shape)} in dim {ax}")
    pos = _checked_index(op, index, shape[d], d)
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc = acc * s
    strides.reverse()
    flat: Any = pos * strides[d]
    for ax in range(len(shape)):
        if ax != d:
            k = index.shape[ax]
            view = tuple(k if i == ax else 1 for i in range(len(shape)))
            flat = flat + reshape_exact(_iota(k), view) * strides[ax]
    return flat


def gather(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """``out[i][j] = x[i][index[i][j]]`` for ``dim=1`` (likewise for other dims), as
    torch.gather: ``index`` has ``x``'s rank and may be smaller outside ``dim``; negative
    entries count from the end."""
    x, index = _as_tensor(x), _as_tensor(index)
    d = _norm_dim(dim, x.ndim, "gather")
    flat = _flat_positions("gather", tuple(x.shape), index, d)
    return S.take(reshape_exact(x, (x.numel(),)), flat, axis=0)


# ----------------------------------------------------------------------------- reductions

# the attributes of a sum over every dim of a rank-n tensor (shared by their tape nodes,
# which never change them), without and with keepdims
_ALL_AXES = [({"axes": tuple(range(n)), "keepdims": False},
              {"axes": tuple(range(n)), "keepdims": True}) for n in range(65)]
_sum_apply = R.reduce_sum.apply


def sum(x: Any, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    """Sum over ``dim`` (all dims if None). Integers and booleans accumulate in int64
    unless ``dtype`` is given, as in PyTorch."""
    if dim is None and dtype is None and isinstance(x, Tensor) and x._data is not None \
            and x._data.dtype.kind == "f":  # the common case, without normalising
        return _sum_apply(x, None, _ALL_AXES[x._data.ndim][1 if keepdim else 0])
    x = _numeric(x)
    if dtype is not None:
        x = cast(x, dtype)
    elif x.dtype.is_integer and x.dtype is not D.int64:
        x = cast(x, D.int64)
    axes = _norm_dims(dim, x.ndim, "sum")
    if not axes and not keepdim and dim is not None:
        return x
    return R.reduce_sum(x, axes=axes, keepdims=keepdim)


def _count(x: Tensor, axes: tuple[int, ...]) -> Any:
    n: Any = 1
    for a in axes:
        n = n * x.shape[a]
    return n


def mean(x: Any, dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
    x = _as_tensor(x)
    if dtype is not None:
        x = cast(x, dtype)
    if not x.dtype.is_floating:
        raise D.DTypeError(f"mean: needs a floating dtype, got {x.dtype.name}; "
                           f"pass dtype=am.float32 or call .float()")
    axes = _norm_dims(dim, x.ndim, "mean")
    return R.reduce_sum(x, axes=axes, keepdims=keepdim) / _count(x, axes)


def var(x: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False,
        *, correction: int | None = None) -> Tensor:
    """Variance with Bessel's correction by default (``correction=1``), as torch.var."""
    if correction is None:
        correction = 0 if unbiased is False else 1
    axes = _norm_dims(dim, x.ndim, "var")
    d = x - mean(x, axes, keepdim=True)
    return sum(d * d, axes, keepdim=keepdim) / builtins.max(_count(x, axes) - correction, 0)


def std(x: Tensor, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False,
        *, correction: int | None = None) -> Tensor:
    return sqrt(var(x, dim, unbiased, keepdim, correction=correction))


MinMax = namedtuple("MinMax", ["values", "indices"])


def _extremum(prim: Any, argprim: Any, x: Tensor, dim: Any, keepdim: bool, other: Any) -> Any:
    if isinstance(dim, Tensor) or other is not None:
        return (maximum if prim is R.reduce_max else minimum)(x, dim if other is None else other)
    if dim is None:
        return prim(x, axes=tuple(range(x.ndim)), keepdims=False)
    d = _norm_dim(dim, x.ndim, prim.name)
    return MinMax(prim(x, axes=(d,), keepdims=keepdim), argprim(x, axis=d, keepdims=keepdim))


def max(x: Tensor, dim: Any = None, keepdim: bool = False, *, other: Any = None) -> Any:
    """``max(x)`` -> 0-d tensor; ``max(x, dim)`` -> (values, indices); ``max(x, y)`` ->
    elementwise maximum, as in PyTorch."""
    return _extremum(R.reduce_max, R.argmax, x, dim, keepdim, other)


def min(x: Tensor, dim: Any = None, keepdim: bool = False, *, other: Any = None) -> Any:
    return _extremum(R.reduce_min, R.argmin, x, dim, keepdim, other)


def amax(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return R.reduce_max(x, axes=_norm_dims(dim, x.ndim, "amax"), keepdims=keepdim)


def amin(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return R.reduce_min(x, axes=_norm_dims(dim, x.ndim, "amin"), keepdims=keepdim)


def _arg(prim: Any, x: Tensor, dim: Any, keepdim: bool) -> Tensor:
    x = _numeric(x)
    if dim is None:
        return prim(reshape_exact(x, (x.numel(),)), axis=0, keepdims=False)
    return prim(x, axis=_norm_dim(dim, x.ndim, prim.name), keepdims=keepdim)


def argmax(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _arg(R.argmax, x, dim, keepdim)


def argmin(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    return _arg(R.argmin, x, dim, keepdim)


def any(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """True if any element is non-zero (False for an empty reduction)."""
    return sum(cast(_to_bool(x), D.int64), dim, keepdim) > 0


def all(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """True if every element is non-zero (True for an empty reduction)."""
    return sum(cast(logical_not(x), D.int64), dim, keepdim) == 0


def prod(x: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """Product, computed as exp(sum(log|x|)) with sign and zero handling (floats).

    A slice holding zeros gives (product of its non-zero elements) * 0, so NaN and inf
    propagate as in IEEE arithmetic; with exactly one zero, that element's gradient is
    the product of the others (as in PyTorch), otherwise gradients there are 0."""
    x = _as_tensor(x)
    if not x.dtype.is_floating:
        raise D.DTypeError("prod: supports floating dtypes only")
    zero = x == 0
    mag = exp(sum(log(where(zero, 1.0, abs(x))), dim, keepdim))
    negs = sum(cast(x < 0, D.int64), dim, keepdim)
    sgn = where(floor_divide(negs, 2) * 2 == negs, 1.0, -1.0)
    nonzero = mag * cast(sgn, x.dtype)  # product of the non-zero elements
    nzeros = sum(cast(zero, D.int64), dim, keepdim)
    # the zeros' sum is 0; multiplying by it routes d(prod)/d(zero element) to that element
    zsum = sum(where(zero, x, 0.0), dim, keepdim)
    return where(nzeros == 0, nonzero, nonzero * where(nzeros == 1, zsum, 0.0))


def logsumexp(x: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    axes = _norm_dims(dim, x.ndim, "logsumexp")
    m = R.reduce_max(x, axes=axes, keepdims=True).detach()
    m = where(abs(m) == math.inf, 0.0, m)
    out = log(R.reduce_sum(exp(x - m), axes=axes, keepdims=True)) + m
    return out if keepdim else squeeze(out, axes)


# ----------------------------------------------------------------------------- linear algebra


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with torch.matmul's rules for 1-D operands and batch broadcasting."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):  # the common case: no promotion
        xa, xb = a._data, b._data
        if xa is not None and xb is not None:
            if xa.ndim >= 2 and xb.ndim >= 2 and xa.dtype == xb.dtype and xa.dtype.kind == "f":
                return _matmul_apply(a, b)
        else:
            da = a.dtype
            if da is b.dtype and da.is_floating and a.ndim >= 2 and b.ndim >= 2:
                return L.matmul(a, b)
    x, y = _operands(a, b, arith=True)
    if x.ndim == 0 or y.ndim == 0:
        raise ShapeError("matmul: both operands must have at least one dimension")
    squeeze_a, squeeze_b = x.ndim == 1, y.ndim == 1
    if squeeze_a:
        x = unsqueeze(x, 0)
    if squeeze_b:
        y = unsqueeze(y, 1)
    out = L.matmul(x, y)
    if squeeze_a:
        out = squeeze(out, -2)
    if squeeze_b:
        out = squeeze(out, -1)
    return out


mm = bmm = matmul
_matmul_apply = L.matmul.apply


def dot(a: Tensor, b: Tensor) -> Tensor:
    return sum(a * b)


def outer(a: Tensor, b: Tensor) -> Tensor:
    return unsqueeze(a, 1) * unsqueeze(b, 0)


def einsum_linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    y = matmul(x, transpose(w, 0, 1) if w.ndim == 2 else w)
    return y if b is None else y + b


# ----------------------------------------------------------------------------- composites

def softmax(x: Tensor, dim: int, dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, shifted by the (constant) maximum for stability."""
    if dtype is not None:
        x = cast(x, dtype)
    x = _float(x)
    d = _norm_dim(dim, x.ndim, "softmax")
    e = exp(x - R.reduce_max(x, axes=(d,), keepdims=True).detach())
    return e / R.reduce_sum(e, axes=(d,), keepdims=True)


def log_softmax(x: Tensor, dim: int, dtype: Any = None) -> Tensor:
    if dtype is not None:
        x = cast(x, dtype)
    x = _float(x)
    d = _norm_dim(dim, x.ndim, "log_softmax")
    s = x - R.reduce_max(x, axes=(d,), keepdims=True).detach()
    return s - log(R.reduce_sum(exp(s), axes=(d,), keepdims=True))


def _float(x: Any) -> Tensor:
    x = _as_tensor(x)
    return x if x.dtype.is_floating else cast(x, D.default_float())


def clone(x: Tensor) -> Tensor:
    """A copy with the same values, differentiable (a same-dtype cast)."""
    return E.cast(x, dtype=x.dtype.name)


def zeros_like(x: Tensor, dtype: Any = None) -> Tensor:
    """Zeros of ``x``'s shape, built from ops (so it also works on symbolic shapes)."""
    return broadcast_to(scalar(0, x.dtype if dtype is None else D.as_dtype(dtype)), x.shape)


def ones_like(x: Tensor, dtype: Any = None) -> Tensor:
    return broadcast_to(scalar(1, x.dtype if dtype is None else D.as_dtype(dtype)), x.shape)


def full_like(x: Tensor, value: Any, dtype: Any = None) -> Tensor:
    return broadcast_to(scalar(value, x.dtype if dtype is None else D.as_dtype(dtype)),
                        x.shape)


# ----------------------------------------------------------------------------- structure


def _iota(n: Any, dtype: D.DType = D.int64) -> Tensor:
    """``arange(n)`` as a tensor; for a symbolic size (capture) it is a ``scan`` that counts,
    so the result keeps the symbolic length."""
    if isinstance(n, (int, np.integer)):
        return Tensor._wrap(np.arange(int(n), dtype=dtype.np))
    from .control import scan

    one = scalar(1, dtype)
    _, ys = scan(lambda c, x: (c + x, c), scalar(0, dtype), broadcast_to(one, (n,)))
    return ys  # type: ignore[no-any-return]


def _band(x: Tensor, diagonal: int, upper: bool, op: str) -> Tensor:
    if x.ndim < 2:
        raise ShapeError(f"{op}: expects a tensor of rank >= 2, got {tuple(x.shape)}")
    rows = unsqueeze(_iota(x.shape[-2]), 1)
    cols = unsqueeze(_iota(x.shape[-1]), 0)
    keep = (cols - rows >= diagonal) if upper else (cols - rows <= diagonal)
    return where(keep, x, zeros_like(x) if x.dtype is not D.bool_ else scalar(False, D.bool_))


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (elements with ``col - row >= diagonal``);
    the rest is zero (False for bool)."""
    return _band(_as_tensor(x), int(diagonal), True, "triu")


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (elements with ``col - row <= diagonal``);
    the rest is zero (False for bool)."""
    return _band(_as_tensor(x), int(diagonal), False, "tril")


def flip(x: Tensor, *dims: Any) -> Tensor:
    """Reverse the order of elements along ``dims`` (an int, a sequence, or several ints
    as in ``x.flip(0, 1)``); the flipped dims must have static sizes."""
    x = _as_tensor(x)
    for d in _norm_dims(_shape_arg(dims), x.ndim, "flip"):
        n = x.shape[d]
        if not isinstance(n, (int, np.integer)):
            raise ShapeError(f"flip: dim {d} has the symbolic size {n}; flip needs a static "
                             f"size (use am.scan(..., reverse=True) to run backwards)")
        if n > 1:
            x = S.take(x, Tensor._wrap(np.arange(n - 1, -1, -1, dtype=np.int64)), axis=d)
    return x


def _einsum_ellipsis(ins: list[str], rhs: str | None, operands: Sequence[Tensor]
                     ) -> tuple[list[str], str | None]:
    """Name the dims an ellipsis stands for with unused letters, right-aligned across the
    operands (NumPy's broadcasting); ``None`` for an implicit output."""
    free = [c for c in string.ascii_letters if c not in "".join(ins)]
    counts = []
    for spec, x in zip(ins, operands, strict=True):
        if spec.count("...") > 1 or spec.replace("...", "").count(".") or \
                ("." in spec and "..." not in spec):
            raise ShapeError(f"einsum: malformed ellipsis in subscripts {spec!r}")
        counts.append(x.ndim - (len(spec) - 3) if "..." in spec else 0)
    if builtins.any(k < 0 for k in counts):
        raise ShapeError("einsum: an operand has fewer dims than its subscripts name")
    width = builtins.max(counts, default=0)
    letters = "".join(free[:width])
    ins = [spec.replace("...", letters[width - k:]) for spec, k in zip(ins, counts,
                                                                       strict=True)]
    if rhs is not None:
        if rhs.count("...") > 1 or rhs.replace("...", "").count("."):
            raise ShapeError(f"einsum: malformed ellipsis in output subscripts {rhs!r}")
        if width and "..." not in rhs:
            raise ShapeError(f"einsum: the operands' ellipsis dims need '...' in the output "
                             f"subscripts {rhs!r} (as in NumPy)")
        return ins, rhs.replace("...", letters)
    single: dict[str, int] = {}
    for c in "".join(ins):
        single[c] = single.get(c, 0) + 1
    return ins, letters + "".join(sorted(c for c, k in single.items()
                                         if k == 1 and c not in letters))


def _einsum_parse(equation: str, operands: Sequence[Tensor]) -> tuple[list[str], str]:
    eq = equation.replace(" ", "")
    lhs, arrow, rhs_text = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(operands):
        raise ShapeError(f"einsum: {equation!r} names {len(ins)} operands, got {len(operands)}")
    rhs: str | None = rhs_text if arrow else None
    if "." in eq:
        ins, rhs = _einsum_ellipsis(ins, rhs, operands)
    for spec, x in zip(ins, operands, strict=True):
        if not (spec.isalpha() or spec == "") or len(spec) != x.ndim:
            raise ShapeError(f"einsum: subscripts {spec!r} do not fit an operand of shape "
                             f"{tuple(x.shape)}")
    if rhs is None:
        counts: dict[str, int] = {}
        for c in "".join(ins):
            counts[c] = counts.get(c, 0) + 1
        rhs = "".join(sorted(c for c, k in counts.items() if k == 1))
    if len(set(rhs)) != len(rhs) or builtins.any(c not in "".join(ins) for c in rhs):
        raise ShapeError(f"einsum: output subscripts {rhs!r} must be distinct input subscripts")
    return ins, rhs


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation (``'bij,bjk->bik'``): each operand is aligned to one index order,
    the operands are multiplied with broadcasting and the indices missing from the output
    are summed. A repeated index within one operand takes its diagonal."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    xs = [_as_tensor(x) for x in operands]
    ins, rhs = _einsum_parse(equation, xs)
    if len(xs) == 2 and _einsum_pairable(ins, xs):
        return _einsum_pair(ins[0], ins[1], rhs, xs[0], xs[1])
    letters = list(rhs) + sorted(set("".join(ins)) - set(rhs))
    sizes: dict[str, Any] = {}
    aligned = []
    for spec, x in zip(ins, xs, strict=True):
        for c, n in zip(spec, x.shape, strict=True):
            if c in sizes and sizes[c] != n and n != 1 and sizes[c] != 1:
                raise ShapeError(f"einsum: index {c!r} has sizes {sizes[c]} and {n}")
            sizes[c] = n if c not in sizes or sizes[c] == 1 else sizes[c]
        for c in {c for c in spec if spec.count(c) > 1}:  # diagonal of a repeated index
            i, j = spec.index(c), spec.index(c, spec.index(c) + 1)
            n = x.shape[i]
            eye_ = Tensor._wrap(np.eye(n, dtype=bool).reshape(
                [n if k in (i, j) else 1 for k in range(x.ndim)]))
            x = sum(where(eye_, x, zeros_like(x)), j)
            spec = spec[:j] + spec[j + 1:]
        present = [c for c in letters if c in spec]
        x = permute(x, [spec.index(c) for c in present])
        aligned.append(reshape_exact(x, tuple(x.shape[present.index(c)] if c in present else 1
                                              for c in letters)))
    prod_ = aligned[0]
    for x in aligned[1:]:
        prod_ = prod_ * x
    summed = tuple(range(len(rhs), len(letters)))
    return sum(prod_, summed) if summed else prod_


def _einsum_pairable(ins: list[str], xs: list[Tensor]) -> bool:
    """Two operands without repeated or broadcast indices: one batched matrix product."""
    a, b = ins
    if len(set(a)) != len(a) or len(set(b)) != len(b):
        return False
    sa = dict(zip(a, xs[0].shape, strict=True))
    return builtins.all(sa[c] == n for c, n in zip(b, xs[1].shape, strict=True) if c in sa)


def _einsum_pair(a: str, b: str, rhs: str, x: Tensor, y: Tensor) -> Tensor:
    """``einsum`` of two operands as permute, reshape and one ``matmul`` (no intermediate
    holding every index at once)."""
    only_a = [c for c in a if c not in b and c not in rhs]
    only_b = [c for c in b if c not in a and c not in rhs]
    if only_a:  # indices summed within one operand
        x = sum(x, tuple(a.index(c) for c in only_a))
        a = "".join(c for c in a if c not in only_a)
    if only_b:
        y = sum(y, tuple(b.index(c) for c in only_b))
        b = "".join(c for c in b if c not in only_b)
    batch = [c for c in rhs if c in a and c in b]
    left = [c for c in rhs if c in a and c not in b]
    right = [c for c in rhs if c in b and c not in a]
    contr = [c for c in a if c in b and c not in rhs]
    size = {**dict(zip(a, x.shape, strict=True)), **dict(zip(b, y.shape, strict=True))}

    def prod_(cs: list[str]) -> Any:
        n: Any = 1
        for c in cs:
            n = n * size[c]
        return n

    xa = permute(x, [a.index(c) for c in batch + left + contr])
    yb = permute(y, [b.index(c) for c in batch + contr + right])
    bshape = tuple(size[c] for c in batch)
    xa = reshape_exact(xa, bshape + (prod_(left), prod_(contr)))
    yb = reshape_exact(yb, bshape + (prod_(contr), prod_(right)))
    if x.dtype is not y.dtype:
        dt = D.promote(x.dtype, y.dtype)
        xa, yb = cast(xa, dt), cast(yb, dt)
    out = reshape_exact(L.matmul(xa, yb), bshape + tuple(size[c] for c in left + right))
    order = batch + left + right
    return permute(out, [order.index(c) for c in rhs])
