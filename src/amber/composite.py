"""More of amber's op front end, PyTorch's names and semantics, composed from the functions
in ``amber.functional`` (and so differentiated, captured and run by the C runtime for
free): elementwise tests and arithmetic, indexing and scattering, rearranging, scans.

Ops whose output shape depends on the values (``nonzero``, ``unique``, ...) live in
``amber.dynamic``; sorting in ``amber.sorting``; norms in ``amber.linalg``."""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from . import _dtype as D
from . import functional as _F
from .errors import AmberError, ShapeError
from .ops import shape as S
from .tensor import Tensor


def static_size(n: Any, op: str, dim: int) -> int:
    """``n`` as a Python int, or a ShapeError for a symbolic size (capture)."""
    if isinstance(n, (int, np.integer)):
        return int(n)
    raise ShapeError(f"{op}: dim {dim} has the symbolic size {n}; {op} needs a static size "
                     f"there (give that dim a fixed size in am.spec(...))")


def _const(a: np.ndarray) -> Tensor:
    return Tensor._wrap(np.ascontiguousarray(a))


iota = _F._iota  # ``arange(n)`` in int64, a counting ``scan`` for a symbolic size


# ----------------------------------------------------------------------------- elementwise


def isnan(x: Any) -> Tensor:
    """True where ``x`` is NaN (never for integers and booleans)."""
    x = _F._as_tensor(x)
    return _F.ne(x, x) if x.dtype.is_floating else _F.zeros_like(x, D.bool_)


def isinf(x: Any) -> Tensor:
    """True where ``x`` is +inf or -inf."""
    x = _F._as_tensor(x)
    return _F.eq(_F.abs(x), math.inf) if x.dtype.is_floating else _F.zeros_like(x, D.bool_)


def isfinite(x: Any) -> Tensor:
    """True where ``x`` is neither NaN nor infinite."""
    x = _F._as_tensor(x)
    return _F.lt(_F.abs(x), math.inf) if x.dtype.is_floating else _F.ones_like(x, D.bool_)


def isclose(a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> Tensor:
    """``|a - b| <= atol + rtol * |b|`` elementwise (broadcast), as torch.isclose: equal
    infinities are close, an infinity is close to nothing else, NaN is close to NaN only
    with ``equal_nan``. Integers compare in float64."""
    if rtol < 0 or atol < 0:
        raise AmberError(f"isclose: rtol and atol must be non-negative, got {rtol}, {atol}")
    x, y = _F._operands(a, b)
    if not x.dtype.is_floating:
        x, y = _F.cast(x, D.float64), _F.cast(y, D.float64)
    finite = _F.logical_and(isfinite(x), isfinite(y))
    xf, yf = _F.where(finite, x, 0), _F.where(finite, y, 0)  # no inf - inf (NaN) below
    near = _F.le(_F.abs(xf - yf), atol + rtol * _F.abs(yf))
    out = _F.logical_or(_F.eq(x, y), _F.logical_and(finite, near))
    if equal_nan:
        out = _F.logical_or(out, _F.logical_and(isnan(x), isnan(y)))
    return out


def allclose(a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    """True if every element pair is ``isclose`` (a Python bool, so eager only)."""
    return builtins.bool(_F.all(isclose(a, b, rtol, atol, equal_nan)).item())


def fmod(a: Any, b: Any) -> Tensor:
    """The remainder of truncating division, with the sign of the dividend ``a`` (C's
    ``fmod``, torch.fmod). Integer division by zero gives ``a`` (docs/opset.md: integer
    ``div`` by zero is 0); float division by zero gives NaN, an infinite divisor gives
    ``a``. Floats compute ``a − trunc(a / b)·b``, which is exact only while the quotient
    is small (C's fmod is exact for any quotient)."""
    x, y = _F._operands(a, b, arith=True)
    if not x.dtype.is_floating:  # exact: floor division, then the sign of the dividend
        m = x - _F.floor_divide(x, y) * y
        wrong = _F.logical_and(_F.ne(m, 0), _F.ne(_F.lt(m, 0), _F.lt(x, 0)))
        return _F.where(wrong, m - y, m)
    q = x / y
    r = x - _F.where(_F.lt(q, 0), _F.ceil(q), _F.floor(q)) * y
    # NOTE: x / y may round across an integer; one step of |y| puts r back in range
    ay, sx = _F.abs(y), _F.where(_F.lt(x, 0), -1.0, 1.0)
    r = _F.where(_F.logical_and(_F.ne(r, 0), _F.ne(_F.lt(r, 0), _F.lt(x, 0))), r + sx * ay, r)
    r = _F.where(_F.ge(_F.abs(r), ay), r - sx * ay, r)
    return _F.where(_F.logical_and(isinf(y), isfinite(x)), x, r)


def lerp(input: Any, end: Any, weight: Any) -> Tensor:
    """``input + weight * (end - input)``; for weight >= 0.5 computed as
    ``end - (end - input) * (1 - weight)`` so that weight 1 gives ``end`` exactly."""
    x, e = _F._operands(input, end)
    if not x.dtype.is_floating:
        raise D.DTypeError(f"lerp: needs floating tensors, got {x.dtype.name}")
    w = _F._lift(weight, x.dtype)
    d = e - x
    return _F.where(_F.lt(_F.abs(w), 0.5), x + w * d, e - d * (1.0 - w))


def clamp_min(x: Tensor, min: Any) -> Tensor:
    """``max(x, min)`` (NaN stays NaN)."""
    return _F.clamp(x, min=min)


def clamp_max(x: Tensor, max: Any) -> Tensor:
    """``min(x, max)`` (NaN stays NaN)."""
    return _F.clamp(x, max=max)


# ----------------------------------------------------------------------------- indexing


def index_select(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """The entries of ``x`` at ``index`` (a 1-D or 0-d integer tensor) along ``dim``;
    negative indices count from the end."""
    x, index = _F._as_tensor(x), _F._as_tensor(index)
    if index.ndim > 1:
        raise ShapeError(f"index_select: index must be 1-D, got shape {tuple(index.shape)}")
    if index.dtype not in (D.int32, D.int64):
        raise D.DTypeError(f"index_select: index must be int64 or int32, got {index.dtype.name}")
    d = _F._norm_dim(dim, x.ndim, "index_select")
    if x.ndim == 0:
        return _F.reshape_exact(S.take(_F.reshape_exact(x, (1,)), index, axis=0), ())
    return S.take(x, _F.reshape_exact(index, (index.numel(),)), axis=d)


_flat_positions = _F._flat_positions
gather = _F.gather


def _src_like(op: str, src: Any, index: Tensor, dtype: D.DType) -> Tensor:
    """``src`` (tensor or scalar) cut or broadcast to ``index``'s shape, in ``dtype``."""
    if not isinstance(src, Tensor):
        return _F.broadcast_to(_F.scalar(src, dtype), index.shape)
    if src.ndim != index.ndim:
        raise ShapeError(f"{op}: src rank {src.ndim} differs from index rank {index.ndim}")
    for ax in range(src.ndim):
        if index.shape[ax] > src.shape[ax]:
            raise ShapeError(f"{op}: index shape {tuple(index.shape)} exceeds the src shape "
                             f"{tuple(src.shape)} in dim {ax}")
    if tuple(src.shape) != tuple(index.shape):
        src = S.slice_(src, starts=(0,) * src.ndim, stops=tuple(index.shape),
                       steps=(1,) * src.ndim)
    return _F.cast(src, dtype)


def scatter_add(x: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """A copy of ``x`` with ``src[i][j]`` added at ``[index[i][j]][j]`` (dim 0; likewise for
    other dims), repeated indices accumulating, as torch.scatter_add. ``index`` may be
    smaller than ``src`` and, outside ``dim``, than ``x``."""
    x, index = _F._as_tensor(x), _F._as_tensor(index)
    d = _F._norm_dim(dim, x.ndim, "scatter_add")
    flat = _flat_positions("scatter_add", tuple(x.shape), index, d)
    vals = _src_like("scatter_add", src, index, x.dtype)
    n = index.numel()
    out = S.scatter_add(_F.reshape_exact(x, (x.numel(),)), _F.reshape_exact(flat, (n,)),
                        _F.reshape_exact(vals, (n,)), axis=0)
    return _F.reshape_exact(out, tuple(x.shape))


def scatter(x: Tensor, dim: int, index: Tensor, src: Any = None, *, value: Any = None,
            reduce: str | None = None) -> Tensor:
    """A copy of ``x`` with ``src`` (a tensor, or the scalar ``value``) written at ``index``
    along ``dim``, as torch.scatter. NOTE: where ``index`` names one position several
    times, that position receives the mean of the values written there (PyTorch leaves the
    winner unspecified; both agree when the values agree, e.g. a scalar ``value``).
    ``reduce='add'`` is ``scatter_add``; ``'multiply'`` is not supported."""
    if src is None:
        src = value
    if src is None:
        raise AmberError("scatter: give src (a tensor or a number) or value")
    if reduce == "add":
        x = _F._as_tensor(x)
        return scatter_add(x, dim, index, _src_like("scatter", src, _F._as_tensor(index),
                                                    x.dtype))
    if reduce is not None:
        raise AmberError(f"scatter: reduce={reduce!r} is not supported; use reduce='add' "
                         f"(scatter_add) or write the product with am.where")
    x, index = _F._as_tensor(x), _F._as_tensor(index)
    d = _F._norm_dim(dim, x.ndim, "scatter")
    count_dt = x.dtype if x.dtype.is_floating else D.int64
    ones = _F.ones_like(index, count_dt)
    count = scatter_add(_F.zeros_like(x, count_dt), d, index, ones)
    written = count > 0
    if not isinstance(src, Tensor):
        return _F.where(written, _F.scalar(src, x.dtype), x)
    vals = _src_like("scatter", src, index, count_dt)
    total = scatter_add(_F.zeros_like(x, count_dt), d, index, vals)
    mean = total / _F.where(written, count, 1) if x.dtype.is_floating \
        else _F.floor_divide(total, _F.where(written, count, 1))
    return _F.where(written, _F.cast(mean, x.dtype), x)


def _along(op: str, x: Tensor, dim: int, index: Tensor) -> tuple[int, Tensor]:
    d = _F._norm_dim(dim, x.ndim, op)
    index = _F._as_tensor(index)
    if index.ndim > 1:
        raise ShapeError(f"{op}: index must be 1-D, got shape {tuple(index.shape)}")
    if index.dtype not in (D.int32, D.int64):
        raise D.DTypeError(f"{op}: index must be int64 or int32, got {index.dtype.name}")
    return d, _F.reshape_exact(index, (index.numel(),))


def index_add(x: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha: Any = 1) -> Tensor:
    """A copy of ``x`` with ``alpha * source`` added at the positions ``index`` along
    ``dim`` (repeated indices accumulate), as torch.index_add."""
    x = _F._as_tensor(x)
    d, index = _along("index_add", x, dim, index)
    src = _F.cast(_F._as_tensor(source), x.dtype)
    return S.scatter_add(x, index, src if alpha == 1 else src * alpha, axis=d)


def _rows_written(x: Tensor, d: int, index: Tensor, dtype: D.DType) -> Tensor:
    """How often ``index`` names each position of dim ``d``, shaped to broadcast on x."""
    n = x.shape[d]
    count = S.scatter_add(_F.broadcast_to(_F.scalar(0, dtype), (n,)), index,
                          _F.broadcast_to(_F.scalar(1, dtype), tuple(index.shape)), axis=0)
    return _F.reshape_exact(count, tuple(n if i == d else 1 for i in range(x.ndim)))


def index_fill(x: Tensor, dim: int, index: Tensor, value: Any) -> Tensor:
    """A copy of ``x`` with ``value`` at the positions ``index`` along ``dim``."""
    x = _F._as_tensor(x)
    d, index = _along("index_fill", x, dim, index)
    hit = _rows_written(x, d, index, D.int64) > 0
    return _F.where(hit, _F._lift(value, x.dtype), x)


def index_copy(x: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """A copy of ``x`` with the slices of ``source`` written at the positions ``index``
    along ``dim``. NOTE: a position named several times receives the mean of its slices
    (as ``scatter``; PyTorch leaves it unspecified)."""
    x = _F._as_tensor(x)
    d, index = _along("index_copy", x, dim, index)
    dt = x.dtype if x.dtype.is_floating else D.int64
    count = _rows_written(x, d, index, dt)
    total = S.scatter_add(_F.zeros_like(x, dt), index, _F.cast(_F._as_tensor(source), dt), axis=d)
    hit = count > 0
    safe = _F.where(hit, count, 1)
    mean = total / safe if dt.is_floating else _F.floor_divide(total, safe)
    return _F.where(hit, _F.cast(mean, x.dtype), x)


def take_along_dim(x: Tensor, indices: Tensor, dim: int | None = None) -> Tensor:
    """``gather`` with the dims other than ``dim`` broadcast between ``x`` and ``indices``
    (``dim=None``: both flattened), as torch.take_along_dim."""
    x, indices = _F._as_tensor(x), _F._as_tensor(indices)
    if dim is None:
        return gather(_F.reshape_exact(x, (x.numel(),)), 0,
                      _F.reshape_exact(indices, (indices.numel(),)))
    if x.ndim != indices.ndim:
        raise ShapeError(f"take_along_dim: input rank {x.ndim} and indices rank "
                         f"{indices.ndim} differ")
    d = _F._norm_dim(dim, x.ndim, "take_along_dim")
    from .ops._infer import broadcast_shapes

    rest = broadcast_shapes("take_along_dim", tuple(1 if i == d else s for i, s in
                                                    enumerate(x.shape)),
                            tuple(1 if i == d else s for i, s in enumerate(indices.shape)))
    xs = tuple(x.shape[i] if i == d else rest[i] for i in range(x.ndim))
    js = tuple(indices.shape[i] if i == d else rest[i] for i in range(x.ndim))
    return gather(_F.broadcast_to(x, xs), d, _F.broadcast_to(indices, js))


def searchsorted(sorted_sequence: Tensor, values: Any, *, right: bool = False,
                 side: str | None = None, out_int32: bool = False) -> Tensor:
    """For each value, the index where it would be inserted into the last dim of
    ``sorted_sequence`` to keep it sorted: the first position whose entry is ``>=`` the
    value (``right``: ``>``). NaN counts as the largest value. A 1-D sequence serves every
    value; otherwise its leading dims match ``values``'."""
    b = _F._as_tensor(sorted_sequence)
    if side is not None:
        if side not in ("left", "right"):
            raise AmberError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
        right = side == "right"
    v = _F._as_tensor(values) if isinstance(values, Tensor) else _F.scalar(values, b.dtype)
    b, v = _F.cast(b, D.promote(b.dtype, v.dtype)), _F.cast(v, D.promote(b.dtype, v.dtype))
    if b.ndim == 0:
        raise ShapeError("searchsorted: sorted_sequence must have at least one dim")
    if b.ndim > 1 and tuple(b.shape[:-1]) != tuple(v.shape[:-1]):
        raise ShapeError(f"searchsorted: leading dims of sorted_sequence {tuple(b.shape)} and "
                         f"values {tuple(v.shape)} differ")
    vv = _F.unsqueeze(v, -1)
    bb = b if b.ndim == 1 else _F.unsqueeze(b, -2)
    before = _F.le(bb, vv) if right else _F.lt(bb, vv)
    if v.dtype.is_floating:  # NaN is the largest: every number sorts before it
        before = _F.logical_or(before, _F.logical_and(_F.ne(vv, vv), _F.eq(bb, bb)))
        if right:
            before = _F.logical_or(before, _F.logical_and(_F.ne(vv, vv), _F.ne(bb, bb)))
    out = _F.sum(_F.cast(before, D.int64), -1)
    return _F.cast(out, D.int32) if out_int32 else out


def bucketize(input: Any, boundaries: Tensor, *, out_int32: bool = False,
              right: bool = False) -> Tensor:
    """The bucket of each element: the index ``i`` with ``boundaries[i-1] < x <=
    boundaries[i]`` (``right``: ``boundaries[i-1] <= x < boundaries[i]``)."""
    b = _F._as_tensor(boundaries)
    if b.ndim != 1:
        raise ShapeError(f"bucketize: boundaries must be 1-D, got shape {tuple(b.shape)}")
    return searchsorted(b, input, right=right, out_int32=out_int32)


# ----------------------------------------------------------------------------- rearranging


def roll(x: Tensor, shifts: Any, dims: Any = None) -> Tensor:
    """Rotate elements by ``shifts`` along ``dims`` (elements leaving one end re-enter at the
    other); with ``dims=None`` the flattened tensor is rolled and reshaped back."""
    x = _F._as_tensor(x)
    if dims is None:
        if not isinstance(shifts, int):
            if len(shifts) != 1:
                raise ShapeError(f"roll: {len(shifts)} shifts need as many dims")
            shifts = shifts[0]
        return _F.reshape_exact(roll(_F.reshape_exact(x, (x.numel(),)), shifts, 0),
                               tuple(x.shape))
    sh = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    ds = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(sh) != len(ds):
        raise ShapeError(f"roll: shifts {sh} and dims {ds} differ in length")
    for s, dim in zip(sh, ds, strict=True):
        d = _F._norm_dim(dim, x.ndim, "roll")
        n = x.shape[d]
        if not isinstance(n, (int, np.integer)):  # symbolic: gather at (i - s) mod n
            t = iota(n) - s
            x = S.take(x, t - _F.floor_divide(t, n) * n, axis=d)
            continue
        k = s % n if n else 0
        if k:
            x = _F.cat([_F.narrow(x, d, n - k, k), _F.narrow(x, d, 0, n - k)], d)
    return x


def diag(x: Tensor, diagonal: int = 0) -> Tensor:
    """1-D ``x`` -> a square matrix with ``x`` on diagonal ``diagonal`` (0 main, > 0 above,
    < 0 below), zeros elsewhere; 2-D ``x`` -> that diagonal as a 1-D tensor."""
    x = _F._as_tensor(x)
    k = int(diagonal)
    if x.ndim == 1:
        n = static_size(x.shape[0], "diag", 0)
        m = n + builtins.abs(k)
        v = x if k == 0 else _F.cat([x, _F.broadcast_to(_F.scalar(0, x.dtype),
                                                      (builtins.abs(k),))])
        line = _F.unsqueeze(v, 1) if k >= 0 else _F.unsqueeze(v, 0)
        mask = _const(np.eye(m, m, k, dtype=bool))
        return _F.where(mask, line, _F.scalar(0, x.dtype))
    if x.ndim == 2:
        return diagonal_(x, k)
    raise ShapeError(f"diag: expects a 1-D or 2-D tensor, got shape {tuple(x.shape)}")


def diagonal_(x: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal ``offset`` of the matrices spanned by ``dim1`` and ``dim2``, as a new
    last dim (torch.diagonal)."""
    x = _F._as_tensor(x)
    a, b = _F._norm_dim(dim1, x.ndim, "diagonal"), _F._norm_dim(dim2, x.ndim, "diagonal")
    if a == b:
        raise ShapeError(f"diagonal: dim1 and dim2 are both {a}")
    rest = [i for i in range(x.ndim) if i not in (a, b)]
    y = _F.permute(x, rest + [a, b])
    r = static_size(y.shape[-2], "diagonal", a)
    c = static_size(y.shape[-1], "diagonal", b)
    k = int(offset)
    length = builtins.max(0, builtins.min(r, c - k) if k >= 0 else builtins.min(r + k, c))
    i = np.arange(length, dtype=np.int64)
    pos = (i + builtins.max(-k, 0)) * c + i + builtins.max(k, 0)
    flat = _F.reshape_exact(y, tuple(y.shape[:-2]) + (r * c,))
    return S.take(flat, _const(pos), axis=flat.ndim - 1)


def meshgrid(*tensors: Any, indexing: str = "ij") -> tuple[Tensor, ...]:
    """Coordinate grids from 1-D tensors: output ``i`` repeats ``tensors[i]`` along its own
    dim. ``indexing='xy'`` swaps the first two dims (NumPy's and MATLAB's convention)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise AmberError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    ts = [_F.reshape_exact(_F._as_tensor(t), (_F._as_tensor(t).numel(),)) for t in tensors]
    if not ts:
        raise ShapeError("meshgrid: expects at least one tensor")
    for t in ts[1:]:
        if t.dtype is not ts[0].dtype:
            raise D.DTypeError("meshgrid: all tensors must have the same dtype")
    axes = list(range(len(ts)))
    if indexing == "xy" and len(ts) >= 2:
        axes[0], axes[1] = 1, 0
    shape: list[Any] = [0] * len(ts)
    for t, ax in zip(ts, axes, strict=True):
        shape[ax] = t.shape[0]
    out = []
    for t, ax in zip(ts, axes, strict=True):
        view = tuple(shape[ax] if i == ax else 1 for i in range(len(ts)))
        out.append(_F.broadcast_to(_F.reshape_exact(t, view), tuple(shape)))
    return tuple(out)


def repeat_interleave(x: Tensor, repeats: Any, dim: int | None = None, *,
                      output_size: int | None = None) -> Tensor:
    """Repeat each element ``repeats`` times along ``dim`` (flattened first when ``dim`` is
    None). ``repeats`` is an int, or a 1-D tensor with one count per element (its output
    size depends on the values, so that form runs eagerly only)."""
    x = _F._as_tensor(x)
    if dim is None:
        x, d = _F.reshape_exact(x, (x.numel(),)), 0
    else:
        d = _F._norm_dim(dim, x.ndim, "repeat_interleave")
    if isinstance(repeats, Tensor) and repeats.numel() == 1 and repeats.ndim <= 1 \
            and repeats._data is not None:
        repeats = int(repeats._data.reshape(()))
    if isinstance(repeats, (int, np.integer)):
        r = int(repeats)
        if r < 0:
            raise AmberError(f"repeat_interleave: repeats must be >= 0, got {r}")
        if x.ndim == 0:
            x, d = _F.reshape_exact(x, (1,)), 0
        y = _F.unsqueeze(x, d + 1)
        shape = list(y.shape)
        shape[d + 1] = r
        y = _F.broadcast_to(y, tuple(shape))
        out_shape = list(x.shape)
        out_shape[d] = x.shape[d] * r
        return _F.reshape_exact(y, tuple(out_shape))
    from .dynamic import eager_only

    reps = eager_only(_F._as_tensor(repeats), "am.repeat_interleave with a tensor of repeats",
                      "pass repeats as a Python int, or compute the index with am.arange "
                      "before capture")
    n = static_size(x.shape[d], "repeat_interleave", d)
    if reps.ndim != 1 or reps.shape[0] != n or (reps < 0).any():
        raise ShapeError(f"repeat_interleave: repeats must be {n} non-negative counts, one per "
                         f"element of dim {d}, got shape {reps.shape}")
    return S.take(x, _const(np.repeat(np.arange(n, dtype=np.int64), reps)), axis=d)


# ----------------------------------------------------------------------------- scans


def _scan_static(x: Tensor, d: int, op: str, combine: Any, identity: Any) -> Tensor:
    """Inclusive prefix scan along ``d`` by doubling (Hillis-Steele): log2(n) steps, each
    combining every element with the partial result ``2**k`` places before it. Each
    prefix is thus a balanced tree of partial results (rounding error grows with log n,
    not n)."""
    n = x.shape[d]
    if not isinstance(n, (int, np.integer)):
        return _scan_symbolic(x, d, combine, identity)
    k = 1
    while k < n:
        pad_shape = list(x.shape)
        pad_shape[d] = k
        fill = _F.broadcast_to(_F.scalar(identity, x.dtype), tuple(pad_shape))
        x = combine(x, _F.cat([fill, _F.narrow(x, d, 0, n - k)], d))
        k *= 2
    return x


def _scan_symbolic(x: Tensor, d: int, combine: Any, identity: Any) -> Tensor:
    """The same prefix scan over a symbolic size: an ``am.scan`` carrying the running
    result (sequential, so it rounds like a plain loop)."""
    from .control import scan

    xm = _F.transpose(x, 0, d) if d else x
    init = _F.broadcast_to(_F.scalar(identity, x.dtype), tuple(xm.shape[1:]))

    def step(c: Tensor, xi: Tensor) -> tuple[Tensor, Tensor]:
        c = combine(c, xi)
        return c, c

    _, ys = scan(step, init, xm)
    return _F.transpose(ys, 0, d) if d else ys  # type: ignore[no-any-return]


def _scan_dtype(x: Tensor, dtype: Any) -> Tensor:
    if dtype is not None:
        return _F.cast(x, dtype)
    return _F.cast(x, D.int64) if not x.dtype.is_floating else x


def cumsum(x: Any, dim: int, *, dtype: Any = None) -> Tensor:
    """Running sums along ``dim``: ``out[i] = x[0] + ... + x[i]``. Integers and booleans
    accumulate in int64 unless ``dtype`` is given, as in PyTorch."""
    x = _scan_dtype(_F._as_tensor(x), dtype)
    if x.ndim == 0:
        return x
    return _scan_static(x, _F._norm_dim(dim, x.ndim, "cumsum"), "cumsum", _F.add, 0)


def cumprod(x: Any, dim: int, *, dtype: Any = None) -> Tensor:
    """Running products along ``dim``: ``out[i] = x[0] * ... * x[i]`` (int64 for integers
    and booleans unless ``dtype`` is given). Gradients are exact with zeros present."""
    x = _scan_dtype(_F._as_tensor(x), dtype)
    if x.ndim == 0:
        return x
    return _scan_static(x, _F._norm_dim(dim, x.ndim, "cumprod"), "cumprod", _F.mul, 1)


def _logaddexp(a: Tensor, b: Tensor) -> Tensor:
    m = _F.maximum(a, b).detach()
    m = _F.where(_F.lt(_F.abs(m), math.inf), m, 0.0)  # an infinite shift would give NaN
    return m + _F.log(_F.exp(a - m) + _F.exp(b - m))


def logcumsumexp(x: Any, dim: int) -> Tensor:
    """``log(cumsum(exp(x), dim))`` without overflow: the prefix scan of
    ``logaddexp(a, b) = m + log(exp(a − m) + exp(b − m))``, ``m = max(a, b)``."""
    x = _F._float(x)
    if x.ndim == 0:
        return x
    return _scan_static(x, _F._norm_dim(dim, x.ndim, "logcumsumexp"), "logcumsumexp",
                        _logaddexp, -math.inf)


def _cumext(x: Any, dim: int, op: str, later_wins: Any) -> Any:
    """(values, indices) of the running extremum: the doubling scan of pairs (value,
    position) that keeps the later pair where ``later_wins(later, earlier)`` or the later
    value is NaN (NaN is extreme and sticks, as in PyTorch)."""
    from .sorting import SortResult

    x = _F._as_tensor(x)
    if x.ndim == 0:
        return SortResult(x, _F.zeros_like(x, D.int64))
    d = _F._norm_dim(dim, x.ndim, op)
    n = static_size(x.shape[d], op, d)
    pos = _F.broadcast_to(_F.reshape_exact(iota(n), tuple(n if i == d else 1
                                                        for i in range(x.ndim))), x.shape)
    v, idx = x.detach(), pos
    k = 1
    while k < n:
        ev, ei = _F.narrow(v, d, 0, n - k), _F.narrow(idx, d, 0, n - k)
        lv, li = _F.narrow(v, d, k, n - k), _F.narrow(idx, d, k, n - k)
        win = later_wins(lv, ev)
        if x.dtype.is_floating:
            win = _F.logical_or(win, _F.ne(lv, lv))
        v = _F.cat([_F.narrow(v, d, 0, k), _F.where(win, lv, ev)], d)
        idx = _F.cat([_F.narrow(idx, d, 0, k), _F.where(win, li, ei)], d)
        k *= 2
    return SortResult(gather(x, d, idx), idx)


def cummax(x: Any, dim: int) -> Any:
    """``(values, indices)`` of the running maximum along ``dim``; among equal values the
    latest position, and NaN once seen, as torch.cummax."""
    return _cumext(x, dim, "cummax", _F.ge)


def cummin(x: Any, dim: int) -> Any:
    """``(values, indices)`` of the running minimum along ``dim`` (latest position among
    equal values; NaN once seen), as torch.cummin."""
    return _cumext(x, dim, "cummin", _F.le)


def diff(x: Any, n: int = 1, dim: int = -1, prepend: Any = None, append: Any = None) -> Tensor:
    """The ``n``-th forward difference ``x[i+1] − x[i]`` along ``dim`` (``!=`` for bools),
    after concatenating ``prepend`` and ``append`` there."""
    x = _F._as_tensor(x)
    d = _F._norm_dim(dim, x.ndim, "diff")
    parts = [p for p in (prepend, x, append) if p is not None]
    x = _F.cat([_F._as_tensor(p) for p in parts], d) if len(parts) > 1 else x
    for _ in range(n):
        m = static_size(x.shape[d], "diff", d)
        k = builtins.max(m - 1, 0)
        a, b = _F.narrow(x, d, 1, k), _F.narrow(x, d, 0, k)
        x = _F.ne(a, b) if x.dtype is D.bool_ else a - b
    return x


def count_nonzero(x: Any, dim: Any = None) -> Tensor:
    """The number of non-zero elements (over ``dim``, all if None), int64."""
    x = _F._as_tensor(x)
    return _F.sum(_F.cast(_F.ne(x, 0) if x.dtype is not D.bool_ else x, D.int64), dim)


def bincount(x: Tensor, weights: Tensor | None = None, minlength: int = 0) -> Tensor:
    """Counts (or summed ``weights``) of each value of the non-negative 1-D integer ``x``,
    of length ``max(x) + 1`` or ``minlength`` (eager only: the length depends on the
    values; with a fixed length use ``scatter_add``)."""
    from .dynamic import eager_only

    x = _F._as_tensor(x)
    a = eager_only(x, "am.bincount", "use am.scatter_add(am.zeros(n), 0, x, ones) with a "
                   "fixed number of bins n")
    if x.ndim != 1 or x.dtype not in (D.int32, D.int64, D.bool_) or (a.size and a.min() < 0):
        raise AmberError(f"bincount: expects a 1-D tensor of non-negative integers, got "
                         f"{x.dtype.name}{tuple(x.shape)}")
    size = builtins.max(int(a.max()) + 1 if a.size else 0, minlength)
    src = _F.ones_like(x, D.int64) if weights is None else _F._as_tensor(weights)
    if weights is not None and not src.dtype.is_floating:
        src = _F.cast(src, D.float64)
    base = _F.broadcast_to(_F.scalar(0, src.dtype), (size,))
    return S.scatter_add(base, _F.cast(x, D.int64), src, axis=0)
