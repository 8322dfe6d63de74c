"""Shared checks for the ONNX export tests: run a program's entry point in the reference
interpreter and in ONNX Runtime, and compare with docs/opset.md's tolerance classes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import amber as am
from amber.capture.ir import Program

FLOATS = ("float32", "float64")
INTS = ("int32", "int64")
NUMERIC = FLOATS + INTS
ALL = NUMERIC + ("bool",)


def session(model: Any) -> Any:
    """An ONNX Runtime CPU session for a ModelProto, single-threaded and deterministic."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def run_onnx(program: Program, inputs: Sequence[np.ndarray], entry: str = "forward",
             opset: int | None = None) -> list[np.ndarray]:
    """Export ``program`` to ONNX and run it in ONNX Runtime on ``inputs``."""
    kw = {} if opset is None else {"opset": opset}
    model = am.onnx.export(program, None, entry=entry, **kw)
    ep = program.entry(entry)
    feeds = {p.name: np.asarray(a) for p, a in zip(ep.inputs, inputs)}
    return session(model).run(None, feeds)


def ulp(ref: np.ndarray) -> np.ndarray:
    """docs/opset.md section 5: ulp(v) = 2^(e-p+1), e not below the smallest normal
    exponent."""
    fi = np.finfo(ref.dtype)
    a = np.abs(ref.astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.floor(np.log2(np.where((a > 0) & np.isfinite(a), a, 1.0)))
    e = np.maximum(e, fi.minexp)
    return np.ldexp(1.0, (e - fi.nmant).astype(np.int64))


def assert_exact(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    """Bit-exact up to NaN payloads (and the sign of zeros, which compare equal)."""
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{what}: got {got.dtype}{got.shape}, want {want.dtype}{want.shape}"
    if want.dtype.kind == "f":
        ok = (got == want) | (np.isnan(got) & np.isnan(want))
    else:
        ok = got == want
    assert np.all(ok), f"{what}: mismatch at {np.argwhere(~ok)[:5].tolist()}: " \
        f"got {got[~ok][:5]}, want {want[~ok][:5]}"


def assert_ulp(got: np.ndarray, want: np.ndarray, n_ulp: float = 4.0, what: str = "") -> None:
    """Within ``n_ulp`` ULP of the reference; special values (NaN, infinities) exact."""
    assert got.dtype == want.dtype and got.shape == want.shape, what
    g, w = got.astype(np.float64), want.astype(np.float64)
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    with np.errstate(invalid="ignore"):
        close = np.isfinite(g) & np.isfinite(w) & (np.abs(g - w) <= n_ulp * ulp(want))
    ok = same | close
    assert np.all(ok), f"{what}: beyond {n_ulp} ULP at {np.argwhere(~ok)[:5].tolist()}: " \
        f"got {got[~ok][:5]}, want {want[~ok][:5]}"


def assert_sum_bound(got: np.ndarray, want: np.ndarray, abs_sum: np.ndarray, n: int,
                     what: str = "") -> None:
    """|got - want| <= 2 * (2 n u) * sum|t_k| (both results obey the bound, so their
    difference obeys twice it); NaN and infinities exact."""
    assert got.dtype == want.dtype and got.shape == want.shape, what
    u = 2.0 ** -24 if want.dtype == np.float32 else 2.0 ** -53
    g, w = got.astype(np.float64), want.astype(np.float64)
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    bound = 2 * (2 * max(n, 1) * u) * abs_sum.astype(np.float64)
    with np.errstate(invalid="ignore"):
        close = np.isfinite(g) & np.isfinite(w) & (np.abs(g - w) <= bound)
    ok = same | close
    assert np.all(ok), f"{what}: beyond the sum bound at {np.argwhere(~ok)[:5].tolist()}"


def values(rng: np.random.Generator, dtype: str, shape: Sequence[int], *,
           special: bool = True, low: float = -10.0, high: float = 10.0) -> np.ndarray:
    """Random values of ``dtype``; with ``special``, a few NaN/inf/-0 (floats) or
    INT_MIN/INT_MAX/0/-1 (ints) sprinkled in."""
    shape = tuple(shape)
    if dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype in FLOATS:
        a = np.asarray(rng.uniform(low, high, shape) * 10.0 ** rng.uniform(-3, 1, shape),
                       dtype=dtype)
        if special and a.size >= 4:
            flat = a.reshape(-1)
            pool = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1.0, -1.0], dtype=dtype)
            pick = rng.choice(flat.size, size=max(1, flat.size // 6), replace=False)
            flat[pick] = rng.choice(pool, size=pick.size)
        return a
    info = np.iinfo(dtype)
    a = np.asarray(rng.integers(-50, 50, shape, dtype=dtype))
    if special and a.size >= 4:
        flat = a.reshape(-1)
        pool = np.array([info.min, info.max, 0, -1, 1], dtype=dtype)
        pick = rng.choice(flat.size, size=max(1, flat.size // 6), replace=False)
        flat[pick] = rng.choice(pool, size=pick.size)
    return a


def export_fn(fn: Callable[..., Any], args: Sequence[Any]) -> Program:
    """Capture ``fn`` on example arrays or specs (no proof: the tests compare runtimes)."""
    return am.export(fn, *args, check=False)
