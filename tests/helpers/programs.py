"""Programs several test modules exercise."""

from __future__ import annotations

import numpy as np

import amber as am


@am.function
def cond_in_while_in_recursion(n: am.Tensor, x: am.Tensor, w: am.Tensor) -> am.Tensor:
    """A ``cond`` inside a ``while_loop`` inside a recursive graph function: ``n`` levels,
    the loop at level ``n`` running ``n`` steps."""
    def body(c: tuple[am.Tensor, am.Tensor]) -> tuple[am.Tensor, am.Tensor]:
        k, v = c
        v2 = am.cond(v.sum() > 0, lambda: v * 0.5 + w, lambda: v * w - 0.1)
        return k + 1, v2

    def step() -> am.Tensor:
        _, v = am.while_loop(lambda c: c[0] < n, body, (am.tensor(np.int64(0)), x))
        return cond_in_while_in_recursion(n - 1, v.sin(), w)

    return am.cond(n > 0, step, lambda: x * w)
