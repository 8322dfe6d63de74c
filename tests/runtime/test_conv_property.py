"""conv2d in C against the NumPy reference over random configurations: batch, channels,
groups (depthwise and grouped included), kernel size, stride, dilation and asymmetric
padding, float32 and float64, with two threads, within the sum bound of docs/opset.md."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_cases import compare

from amber.ops import REGISTRY
from helpers.capi import load, run_kernel


@pytest.fixture(scope="module")
def lib(runtime_build: Path) -> ctypes.CDLL:
    return load(runtime_build)


@pytest.fixture(scope="module")
def ctx(lib: ctypes.CDLL):
    c = ctypes.c_void_p()
    assert lib.amber_kernel_context_create(2, ctypes.byref(c)) == 0
    yield c
    lib.amber_kernel_context_free(c)


@st.composite
def configs(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], dict]:
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.sampled_from([1, 1, 2, 5]))  # 1: one input channel per group
    og = draw(st.integers(1, 14))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    dilation = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    padding = [draw(st.integers(0, 2)) for _ in range(4)]
    # the input at least as large as the dilated window (with padding)
    h = draw(st.integers(max(1, (kh - 1) * dilation[0] + 1 - padding[0] - padding[1]), 20))
    w = draw(st.integers(max(1, (kw - 1) * dilation[1] + 1 - padding[2] - padding[3]), 40))
    n = draw(st.integers(1, 3))
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return (n, groups * cg, h, w), (groups * og, cg, kh, kw), attrs


@settings(max_examples=60, deadline=None)
@given(cfg=configs(), f64=st.booleans(), seed=st.integers(0, 2**16))
def test_conv2d_matches_the_reference(lib: ctypes.CDLL, ctx, cfg, f64: bool, seed: int) -> None:
    xs, ws, attrs = cfg
    dt = np.float64 if f64 else np.float32
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(dt)
    w = rng.standard_normal(ws).astype(dt)
    kw = {"stride": tuple(attrs["stride"]), "padding": tuple(attrs["padding"]),
          "dilation": tuple(attrs["dilation"]), "groups": attrs["groups"]}
    want = np.asarray(REGISTRY["conv2d"].impl(x, w, **kw))
    got = run_kernel(lib, ctx, "conv2d", [x, w], attrs, want.shape)
    compare("conv2d", got, want, f"conv2d({xs}, {ws}, {attrs}, {dt.__name__})", [x, w], kw)
