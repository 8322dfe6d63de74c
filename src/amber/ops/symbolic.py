"""``dim_value``: the value of a (possibly symbolic) dimension as an int64 scalar.

Capture emits it when a symbolic size is used in tensor arithmetic (``x / x.shape[0]``,
``mean`` over a symbolic dim), so the size is computed at run time instead of being
baked into a constant. Runtimes evaluate the ``value`` attribute (an int or a dim
expression over the function's symbols, see docs/format.md) and return it."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._dtype import int64
from .registry import Aval, primitive


def _dim_value_infer(*, value: Any) -> Aval:
    return Aval((), int64)


@primitive("dim_value", infer=_dim_value_infer, attrs={"value": "dim"}, n_inputs=0,
           dtypes=(), doc_dtypes="—", doc_out="int64")
def dim_value(*, value: int) -> np.ndarray:
    """The integer ``value`` (a dim expression, evaluated with the function's symbolic
    sizes bound) as a 0-d int64 tensor. No inputs; no gradient."""
    return np.array(value, dtype=np.int64)
