"""``am.finfo`` / ``am.iinfo``: numerical limits of amber's dtypes, with PyTorch's
attribute names."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from . import _dtype as D
from .errors import DTypeError


class finfo:
    """Limits of a floating dtype (default: the default float dtype): ``bits``,
    ``eps`` (1.0's distance to the next value), ``max``, ``min`` (most negative),
    ``tiny`` = ``smallest_normal``, ``resolution`` (10**-precision) and ``dtype`` (its
    name)."""

    def __init__(self, type: Any = None) -> None:
        dt = D.default_float() if type is None else D.as_dtype(type)
        if not dt.is_floating:
            raise DTypeError(f"am.finfo() requires a floating point dtype, got {dt.name}; "
                             f"use am.iinfo for integers")
        fi = ml_dtypes.finfo(dt.np)  # NumPy's finfo does not know bfloat16
        self.bits: int = int(fi.bits)
        self.eps: float = float(fi.eps)
        self.max: float = float(fi.max)
        self.min: float = float(fi.min)
        self.tiny: float = float(fi.smallest_normal)
        self.smallest_normal: float = self.tiny
        self.resolution: float = 10.0 ** -int(fi.precision)
        self.dtype: str = dt.name

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution}, min={self.min}, max={self.max}, "
                f"eps={self.eps}, smallest_normal={self.smallest_normal}, "
                f"tiny={self.tiny}, dtype={self.dtype})")


class iinfo:
    """Limits of an integer dtype: ``bits``, ``max``, ``min``, ``dtype``."""

    def __init__(self, type: Any) -> None:
        dt = D.as_dtype(type)
        if not dt.is_integer:
            raise DTypeError(f"am.iinfo() requires an integer dtype, got {dt.name}"
                             + ("; use am.finfo for floating dtypes" if dt.is_floating else ""))
        ii = np.iinfo(dt.np)  # type: ignore[type-var]
        self.bits, self.max, self.min = int(ii.bits), int(ii.max), int(ii.min)
        self.dtype: str = dt.name

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"


__all__ = ["finfo", "iinfo"]
