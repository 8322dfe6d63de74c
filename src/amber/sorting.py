"""Sorting: ``sort``, ``argsort``, ``topk``, composed from amber primitives.

The order is found by a bitonic sorting network over the static size of the sorted dim
(padded to a power of two): O(n log² n) compare-exchanges, each a few elementwise ops
on the whole tensor, so it captures and runs in the C runtime like any other
composition. Every comparison breaks ties by the original position, so the sort is
stable (equal values keep their order) in every backend. NaN sorts as the largest
value, as in PyTorch. The values are then gathered at the found indices, which carries
the gradient.

Eagerly, the indices come from NumPy's stable argsort (``topk``: ``np.partition``)
instead: the order is total, so both give the same indices (tests/test_composite.py runs
the network and the selection against it), and eager code does not pay the network's
O(n log² n) element operations."""

from __future__ import annotations

import builtins
import math
from collections import namedtuple
from typing import Any

import numpy as np

from . import _dtype as D
from . import functional as _F
from .composite import gather, static_size
from .errors import AmberError
from .ops import registry
from .tensor import Tensor

SortResult = namedtuple("SortResult", ["values", "indices"])


def _before(av: Tensor, ai: Tensor, bv: Tensor, bi: Tensor, descending: bool) -> Tensor:
    """True where element a sorts before element b: (ascending) numbers before NaN or
    (descending) NaN before numbers, then by value, then by position."""
    vlt = _F.gt(av, bv) if descending else _F.lt(av, bv)
    same = _F.eq(av, bv)
    if av.dtype.is_floating:
        a_nan, b_nan = _F.ne(av, av), _F.ne(bv, bv)
        nan_first = _F.logical_and(a_nan, _F.logical_not(b_nan)) if descending \
            else _F.logical_and(_F.logical_not(a_nan), b_nan)
        vlt = _F.logical_or(vlt, nan_first)
        same = _F.logical_or(same, _F.logical_and(a_nan, b_nan))
    return _F.logical_or(vlt, _F.logical_and(same, _F.lt(ai, bi)))


def _pad_value(dtype: D.DType, descending: bool) -> Any:
    """A value that sorts at or after every other: with the padding's positions (>= n),
    ties with real elements put the padding last."""
    if dtype.is_floating:
        return -math.inf if descending else math.nan
    info = np.iinfo(dtype.np)  # type: ignore[type-var]
    return int(info.min) if descending else int(info.max)


def _network(v: Tensor, n: int, descending: bool) -> Tensor:
    """Indices (int64) that sort the last dim of ``v`` (size n)."""
    p = 1
    while p < n:
        p *= 2
    lead = tuple(v.shape[:-1])
    idx = _F.broadcast_to(Tensor._wrap(np.arange(p, dtype=np.int64)), lead + (p,))
    if p > n:
        pad = _F.broadcast_to(_F.scalar(_pad_value(v.dtype, descending), v.dtype),
                             lead + (p - n,))
        v = _F.cat([v, pad], -1)
    k = 2
    while k <= p:
        j = k // 2
        while j >= 1:
            v, idx = _stage(v, idx, p, k, j, descending)
            j //= 2
        k *= 2
    return _F.narrow(idx, -1, 0, n)


def _stage(v: Tensor, idx: Tensor, p: int, k: int, j: int,
           descending: bool) -> tuple[Tensor, Tensor]:
    """One compare-exchange stage: element ``i`` pairs with ``i ^ j``; pairs in blocks
    with ``i & k == 0`` are put in order, the others in reverse order."""
    lead = tuple(v.shape[:-1])
    blocks = p // (2 * j)
    shape = lead + (blocks, 2, j)
    v3, i3 = _F.reshape_exact(v, shape), _F.reshape_exact(idx, shape)
    lo_v, hi_v = _F.narrow(v3, -2, 0, 1), _F.narrow(v3, -2, 1, 1)
    lo_i, hi_i = _F.narrow(i3, -2, 0, 1), _F.narrow(i3, -2, 1, 1)
    # block b covers positions [2jb, 2j(b+1)); its direction bit is (2jb & k)
    flip = Tensor._wrap(((np.arange(blocks) * 2 * j) & k != 0).reshape(blocks, 1, 1))
    swap = _F.ne(_before(hi_v, hi_i, lo_v, lo_i, descending), flip)
    new_v = _F.cat([_F.where(swap, hi_v, lo_v), _F.where(swap, lo_v, hi_v)], -2)
    new_i = _F.cat([_F.where(swap, hi_i, lo_i), _F.where(swap, lo_i, hi_i)], -2)
    return _F.reshape_exact(new_v, lead + (p,)), _F.reshape_exact(new_i, lead + (p,))


def stable_order(a: np.ndarray, descending: bool) -> np.ndarray:
    """The order the network computes, for concrete values (eager): a stable argsort of
    the last axis with NaN largest. Descending sorts the reversed row ascending and
    reverses the result, which keeps equal values in their original order."""
    if not descending:
        return np.argsort(a, axis=-1, kind="stable").astype(np.int64)
    n = a.shape[-1]
    rev = np.argsort(a[..., ::-1], axis=-1, kind="stable")
    return np.ascontiguousarray((n - 1 - rev)[..., ::-1]).astype(np.int64)


def topk_order(a: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """``stable_order(a, largest)[..., :k]`` without sorting the whole last axis: the
    k-th value by ``np.partition`` (NaN largest), everything strictly before it, the
    earliest of its ties, then a stable sort of those k."""
    n = a.shape[-1]
    t = np.partition(a, n - k if largest else k - 1, axis=-1)
    t = t[..., n - k if largest else k - 1, None]
    floating = D.is_floating_np(a.dtype)
    a_nan = np.isnan(a) if floating else np.zeros(a.shape, bool)
    t_nan = np.isnan(t) if floating else np.zeros(t.shape, bool)
    with np.errstate(invalid="ignore"):
        if largest:
            better = (a > t) | (a_nan & ~t_nan)
        else:
            better = (a < t) | (~a_nan & t_nan)
        tie = (a == t) | (a_nan & t_nan)
    need = k - better.sum(-1, keepdims=True)
    chosen = better | (tie & (np.cumsum(tie, -1) <= need))
    pos = np.nonzero(chosen.reshape(-1, n))[1].reshape(a.shape[:-1] + (k,))
    vals = np.take_along_axis(a, pos, -1)
    return np.take_along_axis(pos, stable_order(vals, largest), -1).astype(np.int64)


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """Indices (int64) that sort ``x`` along ``dim``; ties keep their original order
    (so ``stable`` is always honoured)."""
    x = _F._as_tensor(x)
    if x.dtype is D.bool_:
        x = _F.cast(x, D.int64)
    if x.ndim == 0:
        return _F.zeros_like(x, D.int64)
    d = _F._norm_dim(dim, x.ndim, "sort")
    n = static_size(x.shape[d], "sort", d)
    xt = _F.transpose(x, d, -1) if d != x.ndim - 1 else x
    if xt._data is not None:
        idx = Tensor._wrap(stable_order(xt._data, descending))
    else:
        with registry.no_grad():
            idx = _network(xt.detach(), n, descending) if n > 1 else _F.zeros_like(xt, D.int64)
    return _F.transpose(idx, d, -1) if d != x.ndim - 1 else idx


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
    """``(values, indices)`` of ``x`` sorted along ``dim`` (ascending unless
    ``descending``); stable, NaN largest; the values carry the gradient."""
    x = _F._as_tensor(x)
    idx = argsort(x, dim, descending)
    if x.ndim == 0:
        return SortResult(x, idx)
    return SortResult(gather(x, dim, idx), idx)


def _select(v: Tensor, n: int, k: int, largest: bool) -> Tensor:
    """Indices of the ``k`` first elements of the last dim of ``v`` in sort order (the
    network's order), by ``k`` rounds of "first extremum among the elements not yet
    taken": O(k·n) work instead of the network's O(n log² n)."""
    is_float = v.dtype.is_floating
    if is_float:
        fill: Any = -math.inf if largest else math.inf
    else:
        info = np.iinfo(v.dtype.np)  # type: ignore[type-var]
        fill = int(info.min) if largest else int(info.max)
    nan = _F.ne(v, v) if is_float else None
    pos = Tensor._wrap(np.arange(n, dtype=np.int64))
    taken = _F.zeros_like(v, D.bool_)
    picks = []
    for _ in range(k):
        if largest:  # an untaken NaN makes the maximum NaN: NaN is the largest value
            m = _F.amax(_F.where(taken, fill, v), -1, keepdim=True)
            cand = _F.eq(v, m)
            if nan is not None:
                cand = _F.logical_or(cand, _F.logical_and(nan, _F.ne(m, m)))
        else:  # the smallest non-NaN value; NaNs once nothing else is left
            skip = taken if nan is None else _F.logical_or(taken, nan)
            m = _F.amin(_F.where(skip, fill, v), -1, keepdim=True)
            cand = _F.logical_and(_F.eq(v, m), _F.logical_not(skip))
            if nan is not None:
                none = _F.logical_not(_F.any(cand, -1, keepdim=True))
                cand = _F.logical_or(cand, _F.logical_and(nan, none))
        cand = _F.logical_and(cand, _F.logical_not(taken))
        i = _F.argmax(_F.cast(cand, D.int64), -1, keepdim=True)  # the first candidate
        picks.append(i)
        taken = _F.logical_or(taken, _F.eq(pos, i))
    return _F.cat(picks, -1)


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
    """``(values, indices)`` of the ``k`` largest (or, with ``largest=False``, smallest)
    elements along ``dim``, in sorted order (also when ``sorted=False``, whose order
    PyTorch leaves unspecified); among equal values the earlier position comes first.
    Captured, a small ``k`` is a selection (``k`` rounds of argmax) rather than the full
    sorting network."""
    x = _F._as_tensor(x)
    d = _F._norm_dim(dim, x.ndim, "topk")
    n = 1 if x.ndim == 0 else static_size(x.shape[d], "topk", d)
    if not 0 <= k <= n:
        raise AmberError(f"topk: k={k} is out of range for a dim of size {n}")
    if x.ndim == 0:
        return sort(x)
    xt = _F.transpose(x, d, -1) if d != x.ndim - 1 else x
    p = 1 << builtins.max(n - 1, 0).bit_length()
    stages = p.bit_length() * (p.bit_length() - 1) // 2
    if xt._data is not None and 0 < k < n and x.dtype is not D.bool_:
        idx = Tensor._wrap(np.ascontiguousarray(topk_order(xt._data, k, largest)))
        idx = _F.transpose(idx, d, -1) if d != x.ndim - 1 else idx
        return SortResult(gather(x, d, idx), idx)
    if xt._data is not None or k == 0 or k >= stages or x.dtype is D.bool_:
        values, indices = sort(x, d, descending=largest)
        return SortResult(_F.narrow(values, d, 0, k), _F.narrow(indices, d, 0, k))
    with registry.no_grad():
        idx = _select(xt.detach(), n, k, largest)
    idx = _F.transpose(idx, d, -1) if d != x.ndim - 1 else idx
    return SortResult(gather(x, d, idx), idx)


def _pick(x: Tensor, d: int, keepdim: bool, pos: Tensor, descending: bool = False) -> Any:
    """(values, indices) at sorted position ``pos`` (shaped like x with dim d of size 1)."""
    values, indices = sort(x, d, descending)
    v, i = gather(values, d, pos), gather(indices, d, pos)
    if not keepdim:
        v, i = _F.squeeze(v, d), _F.squeeze(i, d)
    return SortResult(v, i)


def kthvalue(x: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> Any:
    """``(values, indices)`` of the ``k``-th smallest element (1-based) along ``dim``."""
    x = _F._as_tensor(x)
    if x.ndim == 0:
        return SortResult(x, _F.zeros_like(x, D.int64))
    d = _F._norm_dim(dim, x.ndim, "kthvalue")
    n = static_size(x.shape[d], "kthvalue", d)
    if not 1 <= k <= n:
        raise AmberError(f"kthvalue: k={k} is out of range for a dim of size {n}")
    shape = tuple(1 if i == d else s for i, s in enumerate(x.shape))
    return _pick(x, d, keepdim, _F.broadcast_to(_F.scalar(k - 1, D.int64), shape))


def median(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """The lower median (for an even count, the smaller of the two middle values); NaN if
    the slice holds a NaN. ``median(x)`` is a 0-d tensor; ``median(x, dim)`` gives
    ``(values, indices)``, as torch.median."""
    x = _F._as_tensor(x)
    if dim is None:
        flat = _F.reshape_exact(x, (x.numel(),))
        if flat.shape[0] == 0:
            if not x.dtype.is_floating:
                raise AmberError("median: an empty integer tensor has no median")
            return _F.scalar(math.nan, x.dtype)
        return median(flat, 0).values
    if x.ndim == 0:
        return SortResult(x, _F.zeros_like(x, D.int64))
    d = _F._norm_dim(dim, x.ndim, "median")
    n = static_size(x.shape[d], "median", d)
    mid = _F.broadcast_to(_F.scalar((n - 1) // 2, D.int64),
                         tuple(1 if i == d else s for i, s in enumerate(x.shape)))
    if x.dtype.is_floating:  # the first NaN, which sorts after every number
        nans = _F.sum(_F.cast(_F.ne(x, x), D.int64), d, keepdim=True)
        mid = _F.where(_F.gt(nans, 0), n - nans, mid)
    return _pick(x, d, keepdim, mid)


def msort(x: Tensor) -> Tensor:
    """``sort(x, dim=0).values``."""
    return sort(x, 0).values  # type: ignore[no-any-return]
