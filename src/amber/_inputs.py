"""Arrays given to a backend as inputs: both backends (the reference interpreter and
libamber) accept and refuse the same ones, and convert them the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import AmberError, DTypeError, LimitError


def input_array(a: np.ndarray, what: str, memory_limit: int | None) -> np.ndarray:
    """``a`` as a C-contiguous array in native byte order (little-endian on every
    platform amber runs on), copied only when it is not one already.

    A masked array is refused (its mask would be dropped by one backend and followed by
    NumPy kernels in the other); a copy larger than ``memory_limit`` is refused before
    it is made (a zero-stride view of 2^31 rows costs nothing until copied)."""
    if isinstance(a, np.ma.MaskedArray):
        raise DTypeError(f"{what} is a masked array, which amber does not take: pass "
                         f"x.filled(value) (or x.data to ignore the mask)")
    if type(a) is not np.ndarray:
        a = np.asarray(a)
    dt = a.dtype.newbyteorder("=") if a.dtype.byteorder not in "=|" else a.dtype
    if dt == a.dtype and a.flags.c_contiguous:
        return a
    need = int(a.size) * dt.itemsize
    if memory_limit and need > memory_limit:
        raise LimitError(f"{what}: converting it to a contiguous {dt.name} array would take "
                         f"{need} bytes, over the memory limit of {memory_limit} bytes "
                         f"(memory_limit)")
    return np.ascontiguousarray(a, dtype=dt)


def gather_args(entry: str, names: Sequence[str], args: Sequence[Any],
                kwargs: Mapping[str, Any]) -> list[Any]:
    """The arguments of a call of entry point ``entry`` (positional, then by name) in the
    order of its input ``names``."""
    if len(args) > len(names):
        raise AmberError(f"{entry}: takes {len(names)} inputs ({', '.join(names)}), got "
                         f"{len(args)}")
    given: dict[str, Any] = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise AmberError(f"{entry}: unknown input {k!r}; inputs are {', '.join(names)}")
        if k in given:
            raise AmberError(f"{entry}: input {k!r} given twice")
        given[k] = v
    missing = [n for n in names if n not in given]
    if missing:
        raise AmberError(f"{entry}: missing input(s) {', '.join(missing)}")
    return [given[n] for n in names]
