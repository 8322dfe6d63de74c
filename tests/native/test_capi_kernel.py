"""The single-kernel API (amber.h, "Single kernels"): a primitive run on caller memory
outside any model, with the same checks as a session: unknown ops, strict attributes,
inputs the op refuses and an output that does not match the result are errors, never a
write out of bounds."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import pytest

from amber.ops import REGISTRY
from helpers.capi import Tensor, from_numpy, load, status_name


@pytest.fixture(scope="module")
def lib(runtime_build: Path) -> ctypes.CDLL:
    return load(runtime_build)


@pytest.fixture()
def ctx(lib: ctypes.CDLL):
    c = ctypes.c_void_p()
    assert lib.amber_kernel_context_create(2, ctypes.byref(c)) == 0
    yield c
    lib.amber_kernel_context_free(c)


def _prepare(lib: ctypes.CDLL, ctx, op: str, attrs: dict | str | None = None):
    k = ctypes.c_void_p()
    text = attrs if isinstance(attrs, str) or attrs is None else json.dumps(attrs)
    st = lib.amber_kernel_prepare(ctx, op.encode(), text.encode() if text else None,
                                  ctypes.byref(k))
    return st, k


def _run(lib: ctypes.CDLL, ctx, k, xs: list[np.ndarray], out: np.ndarray | None) -> tuple:
    ins = (Tensor * max(1, len(xs)))(*[from_numpy(x) for x in xs])
    t = from_numpy(out) if out is not None else Tensor()
    if out is None:
        t.data = None
    return lib.amber_kernel_run(ctx, k, ins, len(xs), ctypes.byref(t)), t


def test_runs_ops_like_the_reference(lib: ctypes.CDLL, ctx) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    attrs = {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}
    st, k = _prepare(lib, ctx, "conv2d", attrs)
    assert st == 0
    st, t = _run(lib, ctx, k, [x, w], None)  # the question: what is the result?
    assert st == 0 and t.dtype == 0 and [t.shape[i] for i in range(t.rank)] == [2, 4, 6, 6]
    out = np.full((2, 4, 6, 6), np.nan, np.float32)
    assert _run(lib, ctx, k, [x, w], out)[0] == 0
    want = REGISTRY["conv2d"].impl(x, w, stride=(1, 1), padding=(1, 1, 1, 1),
                                   dilation=(1, 1), groups=1)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    lib.amber_kernel_free(k)
    st, k = _prepare(lib, ctx, "exp", "")
    y = np.empty((2, 3, 6, 6), np.float32)
    assert st == 0 and _run(lib, ctx, k, [x], y)[0] == 0
    np.testing.assert_allclose(y, np.exp(x), rtol=1e-6)
    lib.amber_kernel_free(k)


def test_errors(lib: ctypes.CDLL, ctx) -> None:
    st, _ = _prepare(lib, ctx, "no_such_op")
    assert status_name(lib, st) == "AMBER_ERR_NOT_FOUND"
    assert b"no_such_op" in lib.amber_kernel_context_error(ctx)
    st, _ = _prepare(lib, ctx, "sum", {"axes": [0]})  # keepdims missing
    assert status_name(lib, st) == "AMBER_ERR_FORMAT"
    st, _ = _prepare(lib, ctx, "sum", '{"axes": [0], "keepdims": tru')
    assert status_name(lib, st) == "AMBER_ERR_FORMAT"
    st, k = _prepare(lib, ctx, "matmul")
    assert st == 0
    a, b = np.ones((2, 3), np.float32), np.ones((4, 5), np.float32)
    st, _ = _run(lib, ctx, k, [a, b], np.empty((2, 5), np.float32))
    assert status_name(lib, st) == "AMBER_ERR_SHAPE"
    assert b"matmul" in lib.amber_kernel_context_error(ctx)
    b = np.ones((3, 5), np.float32)
    for wrong in (np.empty((2, 4), np.float32), np.empty((2, 5), np.float64),
                  np.empty((10,), np.float32)):
        st, _ = _run(lib, ctx, k, [a, b], wrong)
        assert status_name(lib, st) == "AMBER_ERR_SHAPE"
        assert b"output" in lib.amber_kernel_context_error(ctx)
    st, _ = _run(lib, ctx, k, [a], np.empty((2, 5), np.float32))
    assert status_name(lib, st) == "AMBER_ERR_INVALID_ARGUMENT"
    st, _ = _run(lib, ctx, k, [a.astype(bool), b.astype(bool)], np.empty((2, 5), bool))
    assert status_name(lib, st) == "AMBER_ERR_DTYPE"
    lib.amber_kernel_free(k)


def test_context_threads_and_null_arguments(lib: ctypes.CDLL) -> None:
    c = ctypes.c_void_p()
    assert lib.amber_kernel_context_create(0, ctypes.byref(c)) == 0
    assert lib.amber_kernel_context_threads(c) >= 1
    lib.amber_kernel_context_free(c)
    assert status_name(lib, lib.amber_kernel_context_create(-1, ctypes.byref(c))) \
        == "AMBER_ERR_INVALID_ARGUMENT"
    assert lib.amber_kernel_context_create(3, ctypes.byref(c)) == 0
    assert lib.amber_kernel_context_threads(c) == 3
    assert lib.amber_kernel_run(c, None, None, 0, None) != 0
    lib.amber_kernel_context_free(c)
    lib.amber_kernel_context_free(None)
    lib.amber_kernel_free(None)


def test_strided_inputs(lib: ctypes.CDLL, ctx) -> None:
    fn = lib.amber_kernel_run_strided
    w = np.arange(12, dtype=np.float32).reshape(4, 3)  # used as w.T: (3, 4), strides (1, 3)
    x = np.ones((2, 3), np.float32)
    out = np.zeros((2, 4), np.float32)
    ins = (Tensor * 2)(from_numpy(x), from_numpy(w))
    ins[1].shape[0], ins[1].shape[1] = 3, 4
    wt_strides = (ctypes.c_int64 * 2)(1, 3)
    strides = (ctypes.c_void_p * 2)(None, ctypes.addressof(wt_strides))
    t = from_numpy(out)
    st, k = _prepare(lib, ctx, "matmul")
    assert fn(ctx, k, ins, strides, 2, ctypes.byref(t)) == 0
    np.testing.assert_array_equal(out, x @ w.T)
    bad = (ctypes.c_int64 * 2)(-1, 3)
    strides[1] = ctypes.addressof(bad)
    assert status_name(lib, fn(ctx, k, ins, strides, 2, ctypes.byref(t))) \
        == "AMBER_ERR_INVALID_ARGUMENT"
    assert b"negative stride" in lib.amber_kernel_context_error(ctx)
    lib.amber_kernel_free(k)
    # an elementwise op reads the transposed view as it is
    st, k = _prepare(lib, ctx, "exp")
    strides = (ctypes.c_void_p * 1)(ctypes.addressof(wt_strides))
    got = np.zeros((3, 4), np.float32)
    t = from_numpy(got)
    assert fn(ctx, k, (Tensor * 1)(ins[1]), strides, 1, ctypes.byref(t)) == 0
    want = np.zeros((3, 4), np.float32)
    wt = np.ascontiguousarray(w.T)
    assert lib.amber_kernel_run(ctx, k, (Tensor * 1)(from_numpy(wt)), 1,
                                ctypes.byref(from_numpy(want))) == 0
    np.testing.assert_array_equal(got, want)
    lib.amber_kernel_free(k)
    st, k = _prepare(lib, ctx, "sum", {"axes": [0], "keepdims": False})
    assert status_name(lib, fn(ctx, k, (Tensor * 1)(ins[1]), strides, 1, ctypes.byref(t))) \
        == "AMBER_ERR_INVALID_ARGUMENT"
    assert b"elementwise ops only" in lib.amber_kernel_context_error(ctx)
    lib.amber_kernel_free(k)
