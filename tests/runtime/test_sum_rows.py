"""float32 sums of whole rows (the reduced dims the innermost: a global average pool's
sum over each plane) against the order the runtime sums them in: element i of a
row of 16 or more into partial i % 8 in float64, one chain each from +0, then
((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)) rounded to float32. Rows of every
length 16-41 (a last partial vector of 0 to 7 elements), NaN, infinities and -0.0, planes
of 7x7 and 13x13, at 1 and 2 threads (large sums split over threads by rows)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from helpers.capi import load, run_kernel


@pytest.fixture(scope="module")
def lib(runtime_build: Path) -> ctypes.CDLL:
    return load(runtime_build)


@pytest.fixture(scope="module", params=[1, 2], ids=["1t", "2t"])
def ctx(lib: ctypes.CDLL, request):
    c = ctypes.c_void_p()
    assert lib.amber_kernel_context_create(request.param, ctypes.byref(c)) == 0
    yield c
    lib.amber_kernel_context_free(c)


def _eight_partials(rows: np.ndarray) -> np.ndarray:
    """Each row's sum in the documented order (rows of 16 or more)."""
    x = rows.astype(np.float64)
    zero = np.zeros((len(x), 1))  # (each chain from +0: -0.0 + +0.0 is +0.0)
    p = [np.cumsum(np.concatenate([zero, x[:, j::8]], 1), axis=1)[:, -1] for j in range(8)]
    with np.errstate(over="ignore"):  # (3e38 * 16: inf in float32)
        return (((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]))).astype(
            np.float32)


@pytest.mark.parametrize("shape", [(2, 5, 16), (1, 3, 17), (3, 2, 23), (1, 4, 31),
                                   (2, 3, 40), (1, 2, 41), (2, 1280, 49), (1, 512, 169)],
                         ids=lambda s: "x".join(map(str, s)))
def test_row_sums_take_the_eight_partials(lib: ctypes.CDLL, ctx, shape) -> None:
    rng = np.random.default_rng(shape[-1])
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(np.float32)
    x[0, 0, :3] = [np.nan, np.inf, -0.0]
    x[-1, -1, -1] = -np.inf
    x[0, -1, :] = -0.0  # a row of -0.0 only: +0.0
    if shape[0] > 1:
        x[1, 0, :] = np.float32(3e38)  # overflows float32 only when rounded
    want = _eight_partials(x.reshape(-1, shape[-1])).reshape(shape[:2])
    got = run_kernel(lib, ctx, "sum", [x], {"axes": [2], "keepdims": False}, shape[:2])
    assert got.tobytes() == want.tobytes()
    planes = x.reshape(shape[0], shape[1], 1, shape[2])  # the same rows as (1, n) planes
    got = run_kernel(lib, ctx, "sum", [planes], {"axes": [2, 3], "keepdims": False},
                     shape[:2])
    assert got.tobytes() == want.tobytes()
