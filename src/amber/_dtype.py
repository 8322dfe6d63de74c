"""Data types. amber has five: float32 (default), float64, int32, int64 and bool."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DTypeError


class DType:
    """An amber data type. Compare with ``is`` or ``==``; ``str(dt)`` is its name."""

    __slots__ = ("name", "np", "is_floating", "is_integer", "itemsize", "_rank")

    def __init__(self, name: str, np_dtype: type, kind: str, rank: int) -> None:
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_floating = kind == "f"
        self.is_integer = kind == "i"
        self.itemsize = self.np.itemsize
        self._rank = rank  # position in the promotion lattice

    def __repr__(self) -> str:
        return f"amber.{self.name}"

    __str__ = __repr__

    def __reduce__(self) -> str:
        return self.name


float32 = DType("float32", np.float32, "f", 3)
float64 = DType("float64", np.float64, "f", 4)
int32 = DType("int32", np.int32, "i", 1)
int64 = DType("int64", np.int64, "i", 2)
bool_ = DType("bool", np.bool_, "b", 0)

DTYPES: tuple[DType, ...] = (float32, float64, int32, int64, bool_)
FLOATS: tuple[DType, ...] = (float32, float64)
INTS: tuple[DType, ...] = (int32, int64)
NUMERIC: tuple[DType, ...] = (float32, float64, int32, int64)
BOOLS: tuple[DType, ...] = (bool_,)
_BY_NAME = {d.name: d for d in DTYPES}
_BY_NP = {d.np: d for d in DTYPES}
_ALIASES = {"float": float32, "double": float64, "int": int64, "long": int64, "bool_": bool_}

_default_float = float32


def default_float() -> DType:
    return _default_float


def as_dtype(x: Any) -> DType:
    """Normalise ``x`` (DType, name, NumPy dtype, Python type) to a DType."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str):
        d = _BY_NAME.get(x) or _ALIASES.get(x)
        if d is None:
            raise DTypeError(f"unknown dtype {x!r}; amber has {', '.join(_BY_NAME)}")
        return d
    if x is float:
        return _default_float
    if x is int:
        return int64
    if x is bool:
        return bool_
    try:
        npd = np.dtype(x)
    except TypeError:
        npd = None
    if npd is not None and npd in _BY_NP:
        return _BY_NP[npd]
    raise DTypeError(f"dtype {x!r} is not supported; amber has {', '.join(_BY_NAME)}")


def from_numpy_dtype(npd: np.dtype) -> DType:
    d = _BY_NP.get(npd)
    if d is None:
        raise DTypeError(
            f"NumPy dtype {npd} has no amber equivalent; convert with .astype() to one of "
            f"{', '.join(_BY_NAME)}"
        )
    return d


def promote(a: DType, b: DType) -> DType:
    """Result dtype of a binary op on two tensors: bool < int32 < int64 < float32 < float64."""
    return a if a._rank >= b._rank else b


def promote_scalar(t: DType, scalar: Any) -> DType:
    """Python scalars are 'weak': they take the tensor's dtype unless their kind is higher
    (a float scalar with an integer or bool tensor gives the default float dtype)."""
    if isinstance(scalar, bool):
        return t
    if isinstance(scalar, int):
        return int64 if t is bool_ else t
    if isinstance(scalar, float):
        return t if t.is_floating else _default_float
    if getattr(scalar, "_amber_symbolic_int", False):  # a symbolic size under capture
        return int64 if t is bool_ else t
    raise DTypeError(f"cannot combine a tensor with a {type(scalar).__name__}")


def scalar_dtype(value: Any) -> DType:
    """Dtype amber infers for a Python scalar or nested list."""
    if isinstance(value, bool):
        return bool_
    if isinstance(value, int):
        return int64
    return _default_float
