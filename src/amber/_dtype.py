"""Data types: float32 (default), float64, float16, bfloat16, int64, int32, int16, int8,
uint8 and bool.

float16 and bfloat16 are storage types: every op computes them in float32 and rounds its
result once to the storage type (round to nearest, ties to even); int8, uint8 and int16
arithmetic wraps as in NumPy and PyTorch (docs/opset.md, "Data types")."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from .errors import DTypeError


class DType:
    """An amber data type. Compare with ``is`` or ``==``; ``str(dt)`` is its name."""

    __slots__ = ("name", "np", "is_floating", "is_integer", "is_signed", "itemsize", "_rank")

    def __init__(self, name: str, np_dtype: type, kind: str, rank: int) -> None:
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_floating = kind == "f"
        self.is_integer = kind in "iu"
        self.is_signed = kind in "fi"
        self.itemsize = self.np.itemsize
        self._rank = rank  # position in the promotion lattice

    def __repr__(self) -> str:
        return f"amber.{self.name}"

    __str__ = __repr__

    def __reduce__(self) -> str:
        return self.name


float32 = DType("float32", np.float32, "f", 8)
float64 = DType("float64", np.float64, "f", 9)
float16 = DType("float16", np.float16, "f", 6)
bfloat16 = DType("bfloat16", ml_dtypes.bfloat16, "f", 7)
int32 = DType("int32", np.int32, "i", 4)
int64 = DType("int64", np.int64, "i", 5)
int16 = DType("int16", np.int16, "i", 3)
int8 = DType("int8", np.int8, "i", 2)
uint8 = DType("uint8", np.uint8, "u", 1)
bool_ = DType("bool", np.bool_, "b", 0)

# NOTE: the order of DTYPES is the order of the C runtime's amber_dtype codes (amber.h).
DTYPES: tuple[DType, ...] = (float32, float64, int32, int64, bool_,
                             float16, bfloat16, int8, uint8, int16)
FLOATS: tuple[DType, ...] = (float32, float64, float16, bfloat16)
INTS: tuple[DType, ...] = (int32, int64)
"""Index dtypes (``take``, ``scatter_add``, ``iota``)."""
INTEGERS: tuple[DType, ...] = (int32, int64, int8, uint8, int16)
NUMERIC: tuple[DType, ...] = FLOATS + INTEGERS
BOOLS: tuple[DType, ...] = (bool_,)
ALL: tuple[DType, ...] = DTYPES
COMPUTE: dict[DType, DType] = {float16: float32, bfloat16: float32,
                               int8: int32, uint8: int32, int16: int32}
"""Storage dtypes and the dtype their arithmetic is computed in (opset 5)."""
_BY_NAME = {d.name: d for d in DTYPES}
_BY_NP = {d.np: d for d in DTYPES}
NP_DTYPES: frozenset[np.dtype] = frozenset(_BY_NP)
"""The NumPy dtypes of amber's dtypes."""
_ALIASES = {"float": float32, "double": float64, "half": float16, "int": int64,
            "long": int64, "short": int16, "bool_": bool_}

_default_float = float32


def is_floating_np(npd: np.dtype) -> bool:
    """Whether a NumPy dtype is a float one, bfloat16 included (NumPy calls ml_dtypes'
    bfloat16 kind 'V', so ``dtype.kind == "f"`` misses it)."""
    return npd.kind == "f" or npd == bfloat16.np


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
    """Result dtype of a binary op on two tensors (PyTorch's rule): bool < integers <
    floats; within a kind the wider one; uint8 with int8 gives int16, float16 with
    bfloat16 gives float32."""
    if a is b:
        return a
    if a.is_floating and b.is_floating and {a, b} == {float16, bfloat16}:
        return float32
    if a.is_integer and b.is_integer and a.is_signed != b.is_signed:
        s, u = (a, b) if a.is_signed else (b, a)
        return s if s.itemsize > u.itemsize else int16 if s.itemsize == 1 else s
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
