"""Shared shape/dtype inference rules for primitive definitions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._dtype import DType, bool_
from ..errors import DTypeError, ShapeError
from . import _table
from .registry import Aval, Shape


def fmt_shape(shape: Sequence[Any]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def broadcast_shapes(op: str, *shapes: Shape) -> Shape:
    """NumPy broadcasting: align trailing dims; each pair equal or one of them 1."""
    ndim = max(len(s) for s in shapes)
    out: list[Any] = []
    for i in range(-ndim, 0):
        dim: Any = 1
        for s in shapes:
            if -i > len(s):
                continue
            d = s[i]
            if d == 1:
                continue
            if dim == 1:
                dim = d
            elif d != dim:
                raise ShapeError(
                    f"{op}: shapes {' and '.join(fmt_shape(s) for s in shapes)} cannot be "
                    f"broadcast (dimension {i}: {dim} vs {d}); dims must be equal or 1"
                )
        out.append(dim)
    return tuple(out)


def check_dtypes(op: str, allowed: Sequence[DType], *avals: Aval) -> None:
    for a in avals:
        if a.dtype not in allowed:
            names = ", ".join(d.name for d in allowed)
            raise DTypeError(f"{op}: dtype {a.dtype.name} is not supported (expects {names})")


def check_declared(op: str, *avals: Aval) -> None:
    """Check operands against the dtypes primitive ``op`` declares (its ``dtypes=``)."""
    check_dtypes(op, _table.REGISTRY[op].dtypes, *avals)


def same_dtype(op: str, *avals: Aval) -> DType:
    first = avals[0].dtype
    for a in avals[1:]:
        if a.dtype is not first:
            raise DTypeError(
                f"{op}: operands have different dtypes "
                f"({', '.join(x.dtype.name for x in avals)}); cast one with .to(dtype)"
            )
    return first


def unary(op: str, allowed: Sequence[DType], result: DType | None = None) -> Any:
    def rule(x: Aval) -> Aval:
        check_dtypes(op, allowed, x)
        return x if result is None else Aval(x.shape, result)

    rule.rule = "unary"  # type: ignore[attr-defined]
    return rule


def binary(op: str, allowed: Sequence[DType], result: DType | None = None) -> Any:
    def rule(x: Aval, y: Aval) -> Aval:
        check_dtypes(op, allowed, x, y)
        dt = same_dtype(op, x, y)
        return Aval(broadcast_shapes(op, x.shape, y.shape), result or dt)

    rule.rule = "binary" if result is None else "compare"  # type: ignore[attr-defined]
    return rule


def compare(op: str, allowed: Sequence[DType]) -> Any:
    return binary(op, allowed, bool_)


def check_axis(op: str, axis: int, ndim: int) -> None:
    if not 0 <= axis < ndim:
        raise ShapeError(f"{op}: axis {axis} is out of range for a tensor of rank {ndim}")
