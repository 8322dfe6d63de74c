"""``Tensor.__getitem__`` with NumPy/PyTorch semantics, composed from primitives:
basic indexing (ints, slices, None, Ellipsis) becomes one ``slice`` plus a ``reshape``;
integer-tensor indices become one ``take`` on the merged indexed dims; a boolean mask
(eager only: its result shape depends on the data) becomes integer indices."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _dtype as D
from . import functional as _F
from .errors import OutOfRangeError, ShapeError
from .ops import shape as S
from .tensor import Tensor


def _as_index_tensor(k: Any) -> Tensor:
    if isinstance(k, Tensor):
        return k
    arr = np.asarray(k)
    if arr.size == 0 and arr.dtype.kind == "f":  # an empty list: no indices (NumPy rule)
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iub":
        raise ShapeError(f"index arrays must hold integers or booleans, got {arr.dtype}")
    return Tensor._wrap(arr.astype(np.bool_ if arr.dtype.kind == "b" else np.int64))


def _expand(x: Tensor, key: tuple) -> list[tuple[str, Any]]:
    entries: list[tuple[str, Any]] = []
    for k in key:
        if k is None:
            entries.append(("none", None))
        elif k is Ellipsis:
            entries.append(("ellipsis", None))
        elif isinstance(k, slice):
            entries.append(("slice", k))
        elif isinstance(k, (bool, np.bool_)):
            raise ShapeError("indexing with a Python bool is not supported; use a bool tensor")
        elif isinstance(k, (int, np.integer)):
            entries.append(("int", int(k)))
        else:
            t = _as_index_tensor(k)
            if t.dtype is D.bool_:
                # one index per mask dim, with the size that dim must have
                entries.extend(("madv", (i, m)) for i, m in zip(_mask_to_indices(t), t.shape))
            elif t.dtype.is_integer:
                entries.append(("adv", t))
            else:
                raise ShapeError(f"tensors used as indices must be integer or bool, got "
                                 f"{t.dtype.name}")
    used = sum(1 for kind, _ in entries if kind in ("slice", "int", "adv", "madv"))
    n_ell = sum(1 for kind, _ in entries if kind == "ellipsis")
    if n_ell > 1:
        raise ShapeError("an index can only have a single ellipsis ('...')")
    if used > x.ndim:
        raise ShapeError(f"too many indices for a tensor of rank {x.ndim}: {used} given")
    fill = [("slice", slice(None))] * (x.ndim - used)
    if n_ell:
        i = next(j for j, (kind, _) in enumerate(entries) if kind == "ellipsis")
        entries[i:i + 1] = fill
    else:
        entries += fill
    return entries


def _mask_to_indices(mask: Tensor) -> list[Tensor]:
    if mask._data is None:
        from .capture_errors import concrete_value_error

        raise concrete_value_error(
            "boolean-mask indexing (its result size depends on the data; use am.where)")
    if mask.ndim == 0:
        raise ShapeError("indexing with a 0-d bool tensor is not supported")
    return [Tensor._wrap(i.astype(np.int64)) for i in np.nonzero(mask._data)]


_PLAIN = (int, type(None))


def _basic(x: Tensor, key: tuple) -> list[tuple[str, Any]] | None:
    """The entries of a key of Python ints and slices with int (or no) bounds, at most
    one per dim (what ``_expand`` and ``_symbolic_bounds_on_static_dims`` give it, without
    their general cases); None for any other key."""
    if len(key) > x.ndim:
        return None
    entries: list[tuple[str, Any]] = []
    for k in key:
        t = type(k)
        if t is int:
            entries.append(("int", k))
        elif t is slice and type(k.start) in _PLAIN and type(k.stop) in _PLAIN \
                and type(k.step) in _PLAIN:
            entries.append(("slice", k))
        else:
            return None
    entries += [("slice", slice(None))] * (x.ndim - len(key))
    return entries


def getitem(x: Tensor, key: Any) -> Tensor:
    key = key if isinstance(key, tuple) else (key,)
    entries = _basic(x, key)
    if entries is None:
        entries = _expand(x, key)
        x, entries = _symbolic_bounds_on_static_dims(x, entries)
    has_adv = any(kind in ("adv", "madv") for kind, _ in entries)
    if has_adv:  # ints join the advanced indices (NumPy rule)
        entries = [("adv", _F.scalar(v, D.int64)) if kind == "int" else (kind, v)
                   for kind, v in entries]
    starts, stops, steps, out_shape = [], [], [], []
    dim = 0
    adv: list[tuple[int, Tensor, Any]] = []  # (position in out_shape, index, dim size)
    for kind, v in entries:
        if kind == "none":
            out_shape.append(1)
            continue
        n = x.shape[dim]
        if kind == "slice":
            if v.step is not None and v.step <= 0:
                raise ShapeError(f"slice step must be positive, got {v.step}")
            a, b, s = v.indices(n) if isinstance(n, int) else _symbolic_slice(v, n)
            b = a if b < a else b  # (not max(): exact for symbolic sizes)
            starts.append(a)
            stops.append(b)
            steps.append(s)
            out_shape.append(S._slice_len(a, b, s) if isinstance(n, int) or
                             (a, b, s) != (0, n, 1) else n)
        elif kind == "int":
            if isinstance(n, int) and not -n <= v < n:
                raise OutOfRangeError(f"index {v} is out of range for dim {dim} of size {n}")
            i = v % n  # symbolic n: exact when provably in range, else CaptureError
            starts.append(i)
            stops.append(i + 1)
            steps.append(1)
        else:  # adv, or madv (one dim of a bool mask)
            if kind == "madv":
                v, want = v
                if n != want:
                    raise ShapeError(f"boolean index did not match the indexed tensor along "
                                     f"dim {dim}: the tensor has size {n}, the mask {want}")
            starts.append(0)
            stops.append(n)
            steps.append(1)
            adv.append((len(out_shape), v, n))
            out_shape.append(n)
        dim += 1
    y = x
    if any(a != 0 or b != n or s != 1 for a, b, s, n in zip(starts, stops, steps, x.shape,
                                                             strict=True)):
        y = S.slice_(x, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))
    y = _F.reshape_exact(y, tuple(out_shape))
    return _advanced(y, adv) if adv else y


def _symbolic_bounds_on_static_dims(x: Tensor, entries: list[tuple[str, Any]]
                                    ) -> tuple[Tensor, list[tuple[str, Any]]]:
    """``buffer[:, :seq]``: a slice of a static dim with a symbolic bound becomes a
    ``take`` of ``arange(start, stop, step)`` (a symbolic length). NOTE: Python would
    clamp a bound beyond the dim; the exported program raises OutOfRangeError instead
    (the size is only known at run time), so eager and exported never disagree
    silently. Negative symbolic bounds are refused (they could wrap)."""
    from .creation import arange

    dim = 0
    out = list(entries)
    for i, (kind, v) in enumerate(entries):
        if kind == "none":
            continue
        n = x.shape[dim]
        if kind == "slice" and isinstance(n, int) and any(
                getattr(b, "_amber_symbolic_int", False) for b in (v.start, v.stop)):
            step = 1 if v.step is None else v.step
            if not isinstance(step, (int, np.integer)) or step <= 0:
                raise ShapeError(f"slice step must be a positive integer, got {v.step}")
            bounds = [0 if v.start is None else v.start, n if v.stop is None else v.stop]
            for b in bounds:
                symbolic = getattr(b, "_amber_symbolic_int", False)
                if (b < 0) if symbolic else not 0 <= b <= n:
                    from .capture_errors import concrete_value_error

                    raise concrete_value_error(
                        f"slicing dim {dim} (static size {n}) with bounds {v}: a symbolic "
                        f"slice of a static dim needs bounds in [0, {n}]")
            x = S.take(x, arange(bounds[0], bounds[1], int(step)), axis=dim)
            out[i] = ("slice", slice(None))
        dim += 1
    return x, out


def _symbolic_slice(s: slice, n: Any) -> tuple:
    """(start, stop, step) of ``s`` on a symbolic size ``n``: exact when the bounds are
    provably inside [0, n] (``x[1:]``, ``x[:-1]``, ``x[:n // 2]``, ``x[n // 2:]`` for
    ``n = x.shape[0]``), else a CaptureError at the user's line (the clamping NumPy would
    do depends on the runtime size)."""
    step = 1 if s.step is None else s.step

    def bound(v: Any, default: Any) -> Any:
        if v is None:
            return default
        symbolic = getattr(v, "_amber_symbolic_int", False)
        if isinstance(v, Tensor) or not (symbolic or isinstance(v, (int, np.integer))):
            from .capture_errors import concrete_value_error

            raise concrete_value_error(f"slicing a symbolic dimension ({n}) with bounds {s}")
        v = v if symbolic else int(v)
        r = n + v if v < 0 else v
        # clamped as NumPy does; DimExpr comparisons refuse when undecidable
        return 0 if r < 0 else n if r > n else r

    return bound(s.start, 0), bound(s.stop, n), step


def _advanced(y: Tensor, adv: list[tuple[int, Tensor, Any]]) -> Tensor:
    positions = [p for p, _, _ in adv]
    idxs = _F.broadcast_tensors(*(_F.cast(t, D.int64) for _, t, _ in adv))
    sizes = [n for _, _, n in adv]
    for t, n in zip(idxs, sizes, strict=True):
        if t._data is not None and t._data.size and (
                t._data.min() < -n or t._data.max() >= n):
            bad = t._data[(t._data < -n) | (t._data >= n)].flat[0]
            raise OutOfRangeError(f"index {bad} is out of range for a dimension of size {n}")
    consecutive = positions == list(range(positions[0], positions[0] + len(positions)))
    if not consecutive:
        rest = [i for i in range(y.ndim) if i not in positions]
        y = _F.permute(y, positions + rest)
        positions = list(range(len(positions)))
    p = positions[0]
    if len(idxs) == 1:
        return S.take(y, idxs[0], axis=p)
    flat: Tensor | None = None
    stride: Any = 1
    for t, n in zip(reversed(idxs), reversed(sizes), strict=True):
        t = _F.where(t < 0, t + n, t)
        term = t * stride if stride != 1 else t
        flat = term if flat is None else flat + term
        stride = stride * n
    merged = _F.reshape_exact(y, tuple(y.shape[:p]) + (stride,) + tuple(y.shape[p + len(idxs):]))
    assert flat is not None
    return S.take(merged, flat, axis=p)
