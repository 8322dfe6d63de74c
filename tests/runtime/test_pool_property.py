"""max_pool2d and avg_pool2d in C against the NumPy reference over random windows: kernel
size, stride, dilation (max), asymmetric padding, ceil_mode and count_include_pad, on
planes wide enough for the vector paths (AVX-512, AVX2 or portable, whichever the CPU
runs) and narrow ones, float32 and float64, with NaN, infinities and signed zeros. Both
are exact against the reference (avg_pool2d sums in its order), and the same bits at one
and two threads."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amber._dtype import from_numpy_dtype
from amber.errors import ShapeError
from amber.ops import REGISTRY, Aval
from amber.ops.registry import abstract_eval
from helpers.capi import load, run_kernel


@pytest.fixture(scope="module")
def lib(runtime_build: Path) -> ctypes.CDLL:
    return load(runtime_build)


@pytest.fixture(scope="module")
def ctxs(lib: ctypes.CDLL):
    """Kernel contexts with one and with two threads."""
    out = []
    for threads in (1, 2):
        c = ctypes.c_void_p()
        assert lib.amber_kernel_context_create(threads, ctypes.byref(c)) == 0
        out.append(c)
    yield out
    for c in out:
        lib.amber_kernel_context_free(c)


@st.composite
def windows(draw: st.DrawFn, avg: bool) -> tuple[tuple[int, ...], dict[str, Any]]:
    k = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (1, 1) if avg else (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    ext = [dil[i] * (k[i] - 1) + 1 for i in (0, 1)]
    pad = tuple(draw(st.integers(0, ext[i // 2] // 2)) for i in range(4))
    xs = (draw(st.integers(1, 2)), draw(st.integers(1, 3)),
          draw(st.integers(max(1, ext[0] - pad[0] - pad[1]), 12)),
          draw(st.sampled_from([1, 3, 7, 16, 17, 31, 40, 67])))
    attrs: dict[str, Any] = {"kernel_hw": k, "stride": stride, "padding": pad,
                             "ceil_mode": draw(st.booleans())}
    if avg:
        attrs["count_include_pad"] = draw(st.booleans())
    else:
        attrs["dilation"] = dil
    return xs, attrs


def _values(rng: np.random.Generator, shape: tuple[int, ...], dt: type) -> np.ndarray:
    x = rng.standard_normal(shape)
    k = rng.random(shape)
    x[k < 0.03] = np.nan
    x[(k >= 0.03) & (k < 0.05)] = np.inf
    x[(k >= 0.05) & (k < 0.07)] = -np.inf
    x[(k >= 0.07) & (k < 0.1)] = -0.0
    return x.astype(dt)


def _check(lib: ctypes.CDLL, ctxs: list, op: str, x: np.ndarray, attrs: dict) -> None:
    try:
        y = abstract_eval(REGISTRY[op], [Aval(x.shape, from_numpy_dtype(x.dtype))], attrs)
    except ShapeError:
        return  # the window does not fit the (ceil_mode) input: no output to compare
    with np.errstate(invalid="ignore"):  # inf - inf in the reference's NaN windows
        want = np.asarray(REGISTRY[op].impl(x, **attrs))
    assert want.shape == tuple(y.shape)
    one, two = (run_kernel(lib, c, op, [x], attrs, want.shape) for c in ctxs)
    where = f"{op}({x.shape}, {x.dtype}, {attrs})"
    np.testing.assert_array_equal(one, want, err_msg=where)  # NaN == NaN, -0.0 == 0.0
    assert one.tobytes() == two.tobytes(), f"{where}: 1 and 2 threads differ"


@settings(max_examples=160, deadline=None)
@given(data=st.data(), op=st.sampled_from(["max_pool2d", "avg_pool2d"]), f64=st.booleans(),
       seed=st.integers(0, 2**16))
def test_pools_match_the_reference(lib: ctypes.CDLL, ctxs, data: st.DataObject, op: str,
                                   f64: bool, seed: int) -> None:
    xs, attrs = data.draw(windows(op == "avg_pool2d"))
    x = _values(np.random.default_rng(seed), xs, np.float64 if f64 else np.float32)
    _check(lib, ctxs, op, x, attrs)


@pytest.mark.parametrize("op, attrs", [
    ("max_pool2d", {"kernel_hw": (3, 3), "stride": (2, 2), "padding": (1, 1, 1, 1),
                    "dilation": (1, 1), "ceil_mode": False}),
    ("max_pool2d", {"kernel_hw": (3, 3), "stride": (2, 2), "padding": (0, 0, 0, 0),
                    "dilation": (1, 1), "ceil_mode": True}),
    ("max_pool2d", {"kernel_hw": (2, 2), "stride": (2, 2), "padding": (0, 0, 0, 0),
                    "dilation": (1, 1), "ceil_mode": False}),
    ("avg_pool2d", {"kernel_hw": (3, 3), "stride": (1, 1), "padding": (1, 1, 1, 1),
                    "ceil_mode": False, "count_include_pad": False}),
    ("avg_pool2d", {"kernel_hw": (3, 3), "stride": (2, 2), "padding": (0, 1, 0, 1),
                    "ceil_mode": True, "count_include_pad": True}),
])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_network_pools_on_the_thread_pool(lib: ctypes.CDLL, ctxs, op: str, attrs: dict,
                                          dt: type) -> None:
    """The pools of ResNet-50, SqueezeNet and the digits CNN on planes large enough to run
    in parallel."""
    x = _values(np.random.default_rng(7), (2, 24, 57, 57), dt)
    _check(lib, ctxs, op, x, attrs)


@pytest.mark.parametrize("shape", [(32, 16, 8, 8), (3, 5, 4, 4), (2, 3, 6, 14), (2, 3, 4, 32)])
@pytest.mark.parametrize("k", [(2, 2), (2, 3), (3, 1)])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_tiled_max_pool_and_gradient_with_ties(lib: ctypes.CDLL, ctxs, shape: tuple,
                                               k: tuple, dt: type) -> None:
    """Windows that tile their planes (stride = kernel, no padding), narrow and wide:
    the forward and the gradient (to each window's first maximum or NaN; ties are common
    among small integers) exact against the reference, signed zeros included, at one and
    two threads."""
    h, w = shape[2] // k[0] * k[0], shape[3] // k[1] * k[1]
    rng = np.random.default_rng(sum(shape) + k[0])
    x = _values(rng, (*shape[:2], h, w), dt)
    x = np.where(np.isfinite(x), np.round(x * 1.5), x).astype(dt)  # ties, -0.0 kept
    attrs = {"kernel_hw": k, "stride": k, "padding": (0, 0, 0, 0), "dilation": (1, 1),
             "ceil_mode": False}
    _check(lib, ctxs, "max_pool2d", x, attrs)
    g = rng.standard_normal((*shape[:2], h // k[0], w // k[1])).astype(dt)
    g[0, 0, 0, :] = -0.0
    want = np.asarray(REGISTRY["max_pool2d_grad"].impl(x, g, **attrs))
    one, two = (run_kernel(lib, c, "max_pool2d_grad", [x, g], attrs, x.shape) for c in ctxs)
    assert one.tobytes() == want.tobytes() == two.tobytes()


@pytest.mark.parametrize("hw", [(1, 9), (2, 16), (5, 17), (3, 33), (6, 64), (4, 65), (3, 112),
                                (9, 130)])
@pytest.mark.parametrize("pad, ceil, include", [((1, 1, 1, 1), False, False),
                                                ((1, 1, 1, 1), False, True),
                                                ((0, 0, 0, 0), False, False),
                                                ((1, 0, 0, 1), True, False),
                                                ((0, 1, 1, 0), False, True)])
def test_avg_pool_3x3_stride_1(lib: ctypes.CDLL, ctxs, hw: tuple, pad: tuple, ceil: bool,
                               include: bool) -> None:
    """3x3 windows at stride 1 on rows of more than 8 outputs (float32 runs them as strips
    of up to four vectors carried down the plane): rows of whole and partial vectors and
    of more than one strip, one-row planes, padding on either side or none, exact against
    the reference at one and two threads, float32 and float64."""
    if hw[0] + pad[0] + pad[1] < 3:
        return
    attrs = {"kernel_hw": (3, 3), "stride": (1, 1), "padding": pad, "ceil_mode": ceil,
             "count_include_pad": include}
    for dt in (np.float32, np.float64):
        x = _values(np.random.default_rng(hw[1]), (2, 3, *hw), dt)
        _check(lib, ctxs, "avg_pool2d", x, attrs)


def _maxnan(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v where v > m or v is NaN, else m: the kernels' maximum, element for element."""
    return np.where((v > m) | (v != v), v, m)


@pytest.mark.parametrize("ow", [1, 3, 7, 8, 9, 14, 16, 17, 31, 40])
@pytest.mark.parametrize("oh", [1, 2, 5])
def test_max_pool_2x2_bits(lib: ctypes.CDLL, ctxs, oh: int, ow: int) -> None:
    """2x2 windows at stride 2 that tile the plane (the digits CNN's pools; AVX-512 takes
    16 outputs or two short rows at a time): the same bits as the maximum taken in a fixed
    order, NaN payloads and signed zeros included (rows under 8 outputs: each window row
    left to right, then the two rows; wider: each column down, then the two columns), at
    one and two threads, float32, odd row counts and planes merged or not."""
    rng = np.random.default_rng(oh * 100 + ow)
    x = np.round(rng.standard_normal((3, 5, 2 * oh, 2 * ow)) * 1.5).astype(np.float32)
    k = rng.random(x.shape)
    x[k < 0.2] = -0.0
    bits = x.view(np.uint32)
    nan = k > 0.93
    bits[nan] = 0x7FC00000 | rng.integers(0, 1 << 22, int(nan.sum())).astype(np.uint32)
    a, b = x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2]
    c, d = x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]
    want = (_maxnan(_maxnan(a, b), _maxnan(c, d)) if ow < 8 else
            _maxnan(_maxnan(a, c), _maxnan(b, d)))
    attrs = {"kernel_hw": (2, 2), "stride": (2, 2), "padding": (0, 0, 0, 0),
             "dilation": (1, 1), "ceil_mode": False}
    for c_ in ctxs:
        got = run_kernel(lib, c_, "max_pool2d", [x], attrs, want.shape)
        assert got.tobytes() == want.tobytes(), (oh, ow)


@pytest.mark.parametrize("ow", [1, 2, 7, 13, 16, 17, 27, 32, 33, 54, 64, 70])
@pytest.mark.parametrize("oh", [1, 5, 17, 33])
@pytest.mark.parametrize("pad, ceil", [((0, 0, 0, 0), True), ((1, 1, 1, 1), False),
                                       ((1, 0, 0, 1), True), ((0, 1, 1, 0), False)])
@pytest.mark.parametrize("nans", ["many", "none", "one"])
def test_max_pool_3x3_stride_2_bits(lib: ctypes.CDLL, ctxs, oh: int, ow: int, pad: tuple,
                                    ceil: bool, nans: str) -> None:
    """3x3 windows at stride 2 (SqueezeNet's ceil-mode pools, ResNet-50's padded one; AVX-512
    takes 16 outputs at a time down strips of the plane, or rows of more than 32 outputs
    a row at a time, with vmaxps first and again with the NaN-propagating maximum in a
    plane where a NaN was read): the same bits as each column's maximum down the window,
    then across, padding as -inf, NaN payloads, infinities and signed zeros included, at
    one and two threads, float32; rows of whole and partial vectors, planes of more than
    one strip, windows past the edge in ceil mode; NaN in 5% of the inputs, in none, or
    in one (one plane takes the second pass, the others not)."""
    pt, pb, pl, pr = pad
    h = 2 * oh + 1 - pt - pb - (1 if ceil else 0)
    w = 2 * ow + 1 - pl - pr - (1 if ceil else 0)
    if h < 2 or w < 2:
        return
    rng = np.random.default_rng(oh * 1000 + ow)
    x = np.round(rng.standard_normal((2, 3, h, w)) * 1.5).astype(np.float32)
    k = rng.random(x.shape)
    x[k < 0.2] = -0.0
    x[(k > 0.9) & (k < 0.92)] = np.inf
    x[(k > 0.92) & (k < 0.94)] = -np.inf
    bits = x.view(np.uint32)
    nan = k > 0.95 if nans == "many" else np.zeros(x.shape, bool)
    if nans == "one":
        nan[1, 2, rng.integers(0, h), rng.integers(0, w)] = True
    bits[nan] = 0x7FC00000 | rng.integers(0, 1 << 22, int(nan.sum())).astype(np.uint32)
    attrs = {"kernel_hw": (3, 3), "stride": (2, 2), "padding": pad, "dilation": (1, 1),
             "ceil_mode": ceil}
    try:
        y = abstract_eval(REGISTRY["max_pool2d"], [Aval(x.shape, from_numpy_dtype(x.dtype))],
                          attrs)
    except ShapeError:
        return  # the window does not fit the input
    if tuple(y.shape)[2:] != (oh, ow):
        return  # (ceil mode: a last window starting in the padding is dropped)
    xp = np.full((2, 3, 2 * oh + 1, 2 * ow + 1), -np.inf, np.float32)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    d = _maxnan(_maxnan(xp[:, :, 0:-2:2], xp[:, :, 1:-1:2]), xp[:, :, 2::2])
    want = _maxnan(_maxnan(d[..., 0:-2:2], d[..., 1:-1:2]), d[..., 2::2])
    for c_ in ctxs:
        got = run_kernel(lib, c_, "max_pool2d", [x], attrs, want.shape)
        assert got.tobytes() == want.tobytes(), (oh, ow, pad, ceil)
