"""Eager unstacking and splitting with one tape entry for all the pieces.

Reading the pieces of a tensor one by one (``xs[i]`` for every step of a loop, the gates
of an LSTM cell) records a slice per piece, and each slice's VJP pads its cotangent back
to the whole tensor: n pieces cost n full-size pads and n - 1 full-size sums. Here every
piece is an output of one group entry; their cotangents are collected per piece and the
group's VJP stacks (or concatenates) them once. Eager only: captured programs keep the
slices (a loop is a structured node there)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import AmberError
from .ops.registry import Aval, Node, Primitive, is_grad_enabled
from .tensor import Tensor, _wrap_array


class _Pieces:
    """The cotangents the group has received so far, by piece index (tape values add)."""

    __slots__ = ("by_index",)

    def __init__(self, by_index: dict[int, Tensor]) -> None:
        self.by_index = by_index

    def __add__(self, other: _Pieces) -> _Pieces:
        merged = dict(self.by_index)
        for i, g in other.by_index.items():
            merged[i] = merged[i] + g if i in merged else g
        return _Pieces(merged)


def _no_kernel(*args: Any, **kwargs: Any) -> np.ndarray:
    raise AmberError("an unstacking tape entry has no kernel of its own")


def _no_infer(*args: Any, **kwargs: Any) -> Aval:
    raise AmberError("an unstacking tape entry has no standalone type rule")


def _piece_prim(i: int) -> Primitive:
    p = Primitive(f"unstack_piece_{i}", _no_kernel, _no_infer, {}, 1)
    p.def_vjp(lambda g, out, group: (_Pieces({i: g}),))  # type: ignore[arg-type,return-value]
    return p


_PIECES: list[Primitive] = []


def _piece(i: int) -> Primitive:
    while len(_PIECES) <= i:
        _PIECES.append(_piece_prim(len(_PIECES)))
    return _PIECES[i]


def _group_vjp(cots: _Pieces, group: Tensor, x: Tensor, *, axis: int,
               sizes: tuple[int, ...] | None) -> tuple[Tensor]:
    from .creation import zeros
    from .functional import cat, stack

    n = x.shape[axis] if sizes is None else len(sizes)
    parts = [cots.by_index.get(i) for i in range(n)]
    for i, p in enumerate(parts):
        if p is None:
            shape = list(x.shape)
            if sizes is None:
                del shape[axis]
            else:
                shape[axis] = sizes[i]
            parts[i] = zeros(*shape, dtype=x.dtype)
    return (stack(parts, axis) if sizes is None else cat(parts, axis),)  # type: ignore[arg-type]


_GROUP = Primitive("pieces", _no_kernel, _no_infer, {}, 1)
_GROUP.def_vjp(_group_vjp)  # type: ignore[arg-type]


def _recorded(x: Tensor, pieces: list[Tensor], axis: int,
              sizes: tuple[int, ...] | None) -> list[Tensor]:
    if not (x.requires_grad and is_grad_enabled() and x.dtype.is_floating):
        return pieces
    group = object.__new__(Tensor)
    group._data, group.grad, group._aval, group._value = None, None, None, None
    group.requires_grad = True
    group._node = Node(_GROUP, (x,), {"axis": axis, "sizes": sizes}, group)
    for i, p in enumerate(pieces):
        p.requires_grad = True
        p._node = Node(_piece(i), (group,), {}, p)
    return pieces


def unstack_eager(x: Tensor) -> list[Tensor]:
    """``[x[0], x[1], ...]`` for a concrete ``x`` (views of its buffer), recorded for
    autograd as one group when gradients flow."""
    data = x._data
    assert data is not None
    return _recorded(x, [_wrap_array(data[i]) for i in range(data.shape[0])], 0, None)


def split_eager(x: Tensor, axis: int, sizes: list[int]) -> list[Tensor]:
    """The consecutive pieces of ``sizes`` along ``axis`` of a concrete ``x`` (views),
    recorded for autograd as one group when gradients flow."""
    data = x._data
    assert data is not None
    lead = (slice(None),) * axis
    pieces, start = [], 0
    for s in sizes:
        pieces.append(_wrap_array(data[lead + (slice(start, start + s),)]))
        start += s
    return _recorded(x, pieces, axis, tuple(sizes))
