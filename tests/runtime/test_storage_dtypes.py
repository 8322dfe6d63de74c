"""float16 and bfloat16 conversions of libamber (cast, and the rounding every op's result
goes through) against NumPy and ml_dtypes on every 16-bit pattern, and on the float32
values that decide rounding: the midpoints between neighbours and their float32
neighbours, overflow thresholds and subnormals."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from amber.ops import ckernels

pytestmark = pytest.mark.skipif(ckernels._load() is None, reason="libamber is not built")

F16, BF16 = np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)
ALL_BITS = np.arange(1 << 16, dtype=np.uint16)


def _cast(x: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    return ckernels.run("cast", {"dtype": name}, (np.ascontiguousarray(x),), x.shape, dtype)


def _same(got: np.ndarray, want: np.ndarray) -> None:
    """Bit for bit, except that a NaN only has to be a NaN of the same sign."""
    g = got.view(np.uint16 if got.itemsize == 2 else np.uint32)
    w = want.view(g.dtype)
    nan = np.isnan(want.astype(np.float32))
    assert np.array_equal(np.isnan(got.astype(np.float32)), nan)
    sign = np.uint32(1) << np.uint32(8 * got.itemsize - 1)
    assert np.array_equal(g[nan] & sign, w[nan] & sign)
    bad = np.flatnonzero((g != w) & ~nan)
    first = bad[:5]
    assert bad.size == 0, f"{bad.size} values differ, first at {first}: {g[first]} vs {w[first]}"


def _deciders(storage: np.dtype) -> np.ndarray:
    """float32 values where rounding to ``storage`` is decided: every storage value,
    every midpoint between two neighbours, and the float32 values next to those."""
    v = ALL_BITS.view(storage).astype(np.float64)
    v = np.sort(v[np.isfinite(v)])
    mids = (v[:-1] + v[1:]) / 2  # exact in float32 (one more bit than the storage type)
    base = np.concatenate([v, mids, [np.inf, -np.inf, np.nan, 1e38, -1e38, 1e-45, 7e4,
                                     65504.0, 65520.0, 65519.996, 3.4e38]]).astype(np.float32)
    up = np.nextafter(base, np.float32(np.inf))
    down = np.nextafter(base, np.float32(-np.inf))
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return np.concatenate([base, up, down, noise])


@pytest.mark.parametrize("storage, name", [(F16, "float16"), (BF16, "bfloat16")])
def test_every_pattern_widens_exactly(storage: np.dtype, name: str) -> None:
    x = ALL_BITS.view(storage)
    got = _cast(x, np.dtype(np.float32), "float32")
    _same(got, x.astype(np.float32))
    # and back: a round trip keeps every pattern, NaN payloads included
    back = _cast(got, storage, name)
    assert np.array_equal(back.view(np.uint16), ALL_BITS)


@pytest.mark.parametrize("storage, name", [(F16, "float16"), (BF16, "bfloat16")])
def test_float32_rounds_to_nearest_even(storage: np.dtype, name: str) -> None:
    x = _deciders(storage)
    _same(_cast(x, storage, name), x.astype(storage))


def test_float16_and_bfloat16_convert_through_float32() -> None:
    h = ALL_BITS.view(F16)
    _same(_cast(h, BF16, "bfloat16"), h.astype(np.float32).astype(BF16))
    b = ALL_BITS.view(BF16)
    _same(_cast(b, F16, "float16"), b.astype(np.float32).astype(F16))


@pytest.mark.parametrize("name", ["int8", "uint8", "int16", "int32"])
@pytest.mark.parametrize("storage", [F16, BF16])
def test_storage_floats_to_integers_saturate(storage: np.dtype, name: str) -> None:
    x = ALL_BITS.view(storage)
    info = np.iinfo(name)
    with np.errstate(invalid="ignore"):
        f = np.trunc(x.astype(np.float64))
    f = np.clip(np.nan_to_num(f, nan=0.0, posinf=info.max, neginf=info.min), info.min, info.max)
    want = f.astype(name)
    np.testing.assert_array_equal(_cast(x, np.dtype(name), name), want)


def test_arithmetic_rounds_once_from_float32() -> None:
    """add and mul of every float16 pattern with a few values: float32 sum/product rounded
    once (exact: float32 has more than 2p+2 bits)."""
    a = ALL_BITS.view(F16)
    for c in (np.float16(1.0), np.float16(-3.140625), np.float16(6.1e-5), np.float16(65504)):
        b = np.full_like(a, c)
        for op, ref in (("add", np.add), ("mul", np.multiply), ("div", np.divide)):
            got = ckernels.run(op, {}, (a, b), a.shape, F16)
            with np.errstate(all="ignore"):
                want = ref(a.astype(np.float32), b.astype(np.float32)).astype(F16)
            _same(got, want)
