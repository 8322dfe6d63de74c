"""conv2d in C against the NumPy reference over random configurations: batch, channels,
groups (depthwise and grouped included), kernel size, stride, dilation and asymmetric
padding, float32 and float64, with two threads, within the sum bound of docs/opset.md."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from kernel_cases import compare

from amber.ops import REGISTRY
from helpers.capi import load, run_kernel


@pytest.fixture(scope="module")
def lib(runtime_build: Path) -> ctypes.CDLL:
    return load(runtime_build)


def _context(lib: ctypes.CDLL, threads: int):
    c = ctypes.c_void_p()
    assert lib.amber_kernel_context_create(threads, ctypes.byref(c)) == 0
    yield c
    lib.amber_kernel_context_free(c)


@pytest.fixture(scope="module")
def ctx(lib: ctypes.CDLL):
    yield from _context(lib, 2)


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


@pytest.fixture(scope="module")
def ctx1(lib: ctypes.CDLL):
    yield from _context(lib, 1)


# Convolutions without groups whose im2col matrix is packed straight from the input:
# reductions longer than one GEMM depth block, images wider than one column block, small
# images side by side in one product (columns crossing images within a sliver), 1x1 with
# stride (its input's rows and columns copied out: every second column in vectors, rows
# of 31, 33, 64 and 65, on two threads), padding wider than the window (whole padded rows
# and columns), dilation.
LARGE = [
    ((1, 64, 20, 23), (40, 64, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((3, 5, 33, 41), (7, 5, 3, 3), [2, 2], [2, 0, 1, 3], [2, 1]),
    ((2, 6, 30, 31), (9, 6, 1, 1), [2, 2], [0, 0, 0, 0], [1, 1]),
    ((2, 40, 56, 65), (24, 40, 1, 1), [2, 2], [0, 0, 0, 0], [1, 1]),
    ((1, 16, 9, 64), (8, 16, 1, 1), [1, 2], [0, 0, 0, 0], [1, 1]),
    ((1, 16, 12, 33), (8, 16, 1, 1), [3, 2], [0, 0, 0, 0], [1, 1]),
    ((1, 16, 12, 33), (8, 16, 1, 1), [2, 3], [0, 0, 0, 0], [1, 1]),
    ((2, 3, 70, 65), (13, 3, 7, 7), [2, 2], [3, 3, 3, 3], [1, 1]),
    ((2, 4, 9, 9), (5, 4, 5, 5), [1, 1], [4, 4, 4, 4], [1, 1]),
    ((5, 8, 1, 37), (3, 8, 1, 3), [1, 3], [0, 0, 2, 1], [1, 2]),
    ((9, 7, 7, 7), (17, 7, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
]


def _against_reference(lib: ctypes.CDLL, ctx, ctx1, case, groups: int, f64: bool,
                       seed: int) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray]:
    """The reference's values within the sum bound, and the same bits with 1 and 2
    threads; returns the operands, the attributes and the 1-thread result."""
    xs, ws, stride, padding, dilation = case
    dt = np.float64 if f64 else np.float32
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(xs).astype(dt), rng.standard_normal(ws).astype(dt)
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    kw = {"stride": tuple(stride), "padding": tuple(padding), "dilation": tuple(dilation),
          "groups": groups}
    want = np.asarray(REGISTRY["conv2d"].impl(x, w, **kw))
    got = run_kernel(lib, ctx, "conv2d", [x, w], attrs, want.shape)
    compare("conv2d", got, want, f"conv2d({xs}, {ws}, {attrs}, {dt.__name__})", [x, w], kw)
    one = run_kernel(lib, ctx1, "conv2d", [x, w], attrs, want.shape)
    assert one.tobytes() == got.tobytes()
    return x, w, attrs, one


def _same_bits_with(lib: ctypes.CDLL, contexts, x, w, attrs, one: np.ndarray) -> None:
    """The 1-thread result's bits with each of the contexts' thread counts."""
    for c in contexts:
        assert run_kernel(lib, c, "conv2d", [x, w], attrs, one.shape).tobytes() == one.tobytes()


@pytest.mark.parametrize("f64", [False, True])
@pytest.mark.parametrize("case", LARGE, ids=lambda c: "x".join(map(str, c[0] + c[1])))
def test_conv2d_packed_from_the_input(lib: ctypes.CDLL, ctx, ctx1, case, f64: bool) -> None:
    _against_reference(lib, ctx, ctx1, case, 1, f64, 7)

# 3x3 convolutions computed directly on AVX-512 (k_conv3x3.c; the GEMM elsewhere): odd
# widths and bands not a multiple of the tile's 4 outputs (bands of 1, 6, 9 and 11
# outputs; 49 on 7x7 images), bands of 240 outputs across rows, output channels not a
# multiple of 64, input channels not a multiple of the 8 per pass and past one GEMM depth
# block (C * 9 > 512), padding 0, 1, 2 and asymmetric, strides 1 and 2 (outputs 7 to 10
# wide at stride 2; 2 on narrower outputs, dilation and groups: routed to the other
# paths), batches, 1x1 and 1xW images; small images taken a few at a time (batches of 8,
# 6 and 5 of 49, 49 and 36 outputs: bands across images, tiles too); a band's last output
# alone in its tile (49 outputs of a 7x7 image, at stride 1 and 2, and 169 of 13x13).
# At stride 1 on output rows of 5 or more, Winograd's F(2,3) by rows: pairs past a row's
# end (odd widths: 5, 7, 9, 13...), rows of 8 and of 4 (direct), bands across rows and
# images (batches of 8x8, 7x7 and 5x9 images), a band's last pair alone in its tile, 130
# output channels (a partial block).
DIRECT = [
    ((2, 12, 9, 13), (40, 12, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((1, 16, 17, 23), (64, 16, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 1),
    ((1, 70, 19, 21), (100, 70, 3, 3), [1, 1], [2, 0, 1, 3], [1, 1], 1),
    ((3, 9, 1, 1), (33, 9, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((2, 64, 7, 7), (130, 64, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((1, 24, 1, 37), (64, 24, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((1, 20, 30, 33), (48, 20, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1),
    ((2, 9, 29, 31), (64, 9, 3, 3), [2, 1], [1, 0, 0, 1], [1, 1], 1),
    ((1, 32, 15, 17), (64, 32, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1),
    ((1, 32, 15, 17), (64, 32, 3, 3), [1, 1], [2, 2, 2, 2], [2, 2], 1),
    ((1, 32, 15, 17), (64, 16, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 2),
    ((1, 72, 14, 14), (64, 72, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1),
    ((2, 20, 17, 19), (40, 20, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1),
    ((1, 8, 1, 11), (32, 8, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((1, 8, 2, 3), (32, 8, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((1, 8, 3, 9), (32, 8, 3, 3), [1, 1], [0, 0, 1, 1], [1, 1], 1),
    ((1, 16, 9, 11), (32, 16, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1),
    ((8, 24, 7, 7), (96, 24, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((6, 16, 13, 14), (64, 16, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1),
    ((5, 8, 5, 9), (32, 8, 3, 3), [1, 1], [0, 1, 2, 0], [1, 1], 1),
    ((1, 64, 7, 7), (130, 64, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((1, 40, 14, 13), (64, 40, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1], 1),
    ((1, 24, 13, 13), (64, 24, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((1, 16, 30, 64), (130, 16, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((6, 8, 8, 8), (32, 8, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((1, 12, 5, 10), (40, 12, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 1),
    ((2, 6, 9, 15), (36, 6, 3, 3), [1, 1], [1, 2, 0, 1], [1, 1], 1),
    ((1, 5, 3, 19), (33, 5, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((2, 10, 6, 5), (48, 10, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1], 1),
    ((1, 10, 6, 6), (48, 10, 3, 3), [1, 1], [1, 1, 0, 0], [1, 1], 1),
]


@pytest.fixture(scope="module")
def ctx3(lib: ctypes.CDLL):
    yield from _context(lib, 3)


@pytest.fixture(scope="module")
def ctx8(lib: ctypes.CDLL):
    yield from _context(lib, 8)


@pytest.mark.parametrize("case", DIRECT, ids=lambda c: "x".join(map(str, c[0] + c[1])))
def test_conv3x3_direct(lib: ctypes.CDLL, ctx, ctx1, ctx3, ctx8, case) -> None:
    """The reference's values, and the same bits at 1, 2, 3 and 8 threads."""
    x, w, attrs, one = _against_reference(lib, ctx, ctx1, case[:5], case[5], False, 13)
    _same_bits_with(lib, (ctx3, ctx8), x, w, attrs, one)


S1 = {"stride": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}


def _conv(x: np.ndarray, w: np.ndarray, padding: tuple[int, ...] = (1, 1, 1, 1)) -> np.ndarray:
    """The reference 3x3 stride-1 convolution."""
    return np.asarray(REGISTRY["conv2d"].impl(x, w, stride=(1, 1), padding=padding,
                                              dilation=(1, 1), groups=1))


@pytest.mark.parametrize("special", ["inf", "nan", "big", "weight"])
def test_conv3x3_by_rows_keeps_special_values_exact(lib: ctypes.CDLL, ctx, ctx1,
                                                    special: str) -> None:
    """An infinity or NaN in the image, a magnitude the transforms could overflow, or
    filters not finite: the direct tiles run instead, and the reference's NaNs and
    infinities come out exactly (docs/opset.md section 5), at 1 and 2 threads."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 8, 6, 20)).astype(np.float32)
    w = rng.standard_normal((32, 8, 3, 3)).astype(np.float32)
    if special == "weight":
        w[3, 2, 1, 0] = np.inf
    else:
        x[1, 4, 2, 7] = {"inf": np.inf, "nan": np.nan, "big": 2.0**125}[special]
        x[1, 5, 3, 8] = -np.inf if special == "inf" else x[1, 5, 3, 8]
    want = _conv(x, w)
    for c in (ctx, ctx1):
        got = run_kernel(lib, c, "conv2d", [x, w], S1, want.shape)
        compare("conv2d", got, want, f"conv2d with {special}", [x, w],
                {"stride": (1, 1), "padding": (1, 1, 1, 1), "dilation": (1, 1), "groups": 1})
    assert special == "big" or not np.isfinite(want).all()


def _row_product_bound(x: np.ndarray, w: np.ndarray, padding: list[int]) -> np.ndarray:
    """Twice 2 n u S of docs/opset.md's row-product form for a 3x3 stride-1 conv2d
    ([N, O, OH, OW]; twice: the float64 reference is inexact too). S sums each kernel
    row's |w| times the |x| its window row reads."""
    pt, pb, pl, pr = padding
    xp = np.pad(np.abs(x.astype(np.float64)), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh, ow = xp.shape[2] - 2, xp.shape[3] - 2
    rows = sum(xp[:, :, :, q:q + ow] for q in range(3))  # [n, c, hp, ow]
    wsum = np.abs(w.astype(np.float64)).sum(axis=3)  # [o, c, 3]
    s = sum(np.einsum("oc,ncij->noij", wsum[:, :, p], rows[:, :, p:p + oh]) for p in range(3))
    return 2 * 2 * (w.shape[1] * 9) * 2.0**-24 * s


def test_conv3x3_by_rows_within_the_row_product_bound(lib: ctypes.CDLL, ctx) -> None:
    """Each kernel row reads only its first column while the columns next to it are a
    million times larger (beyond the plain bound there, tests/native/test_plain_sums.py):
    the error stays within the row-product form's bound."""
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((1, 12, 4, 16)) * 1e3).astype(np.float32)
    x[..., 1::2] = (rng.standard_normal(x[..., 1::2].shape) * 1e-3).astype(np.float32)
    w = np.zeros((32, 12, 3, 3), np.float32)
    w[..., 0] = rng.standard_normal((32, 12, 3)).astype(np.float32)
    got = run_kernel(lib, ctx, "conv2d", [x, w], S1, (1, 32, 4, 16)).astype(np.float64)
    ref = _conv(x.astype(np.float64), w.astype(np.float64))
    assert np.all(np.abs(got - ref) <= _row_product_bound(x, w, [1, 1, 1, 1]))


@settings(max_examples=40, deadline=None)
@given(c=st.integers(4, 20), o=st.integers(32, 80), h=st.integers(1, 12), w=st.integers(3, 40),
       n=st.integers(1, 3), pad=st.lists(st.integers(0, 2), min_size=4, max_size=4),
       seed=st.integers(0, 2**16))
def test_conv3x3_stride_1_within_the_row_product_bound(lib: ctypes.CDLL, ctx, ctx1, c: int,
                                                       o: int, h: int, w: int, n: int,
                                                       pad: list[int], seed: int) -> None:
    """3x3 stride-1 float32 convolutions of random shapes and padding (by rows from rows of
    5 outputs on AVX-512, directly or through the GEMM otherwise): within the row-product
    form's bound, and the same bits at 1 and 2 threads."""
    oh, ow = h + pad[0] + pad[1] - 2, w + pad[2] + pad[3] - 2
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    attrs = {"stride": [1, 1], "padding": pad, "dilation": [1, 1], "groups": 1}
    got = run_kernel(lib, ctx, "conv2d", [x, wt], attrs, (n, o, oh, ow))
    assert run_kernel(lib, ctx1, "conv2d", [x, wt], attrs, got.shape).tobytes() == got.tobytes()
    ref = _conv(x.astype(np.float64), wt.astype(np.float64), tuple(pad))
    assert np.all(np.abs(got - ref) <= _row_product_bound(x, wt, pad))


# Depthwise convolutions (one input channel per group; channel multipliers 1 and 2) at
# the plane's borders: planes of 1x1 to 3x3 and odd widths, padding wider than the
# kernel's reach and asymmetric, dilation, strides 1-3, rows of whole and partial vectors.
DEPTHWISE = [
    ((2, 3, 1, 1), (3, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((1, 4, 2, 2), (4, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((1, 4, 3, 3), (8, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    ((2, 3, 5, 9), (3, 1, 3, 3), [1, 1], [2, 2, 2, 2], [1, 1]),
    ((1, 2, 4, 5), (2, 1, 3, 3), [1, 1], [3, 0, 2, 3], [1, 1]),
    ((1, 5, 9, 13), (5, 1, 3, 3), [1, 2], [2, 2, 2, 2], [2, 2]),
    ((1, 3, 16, 33), (3, 1, 3, 3), [2, 2], [2, 1, 1, 2], [2, 1]),
    ((2, 2, 7, 19), (4, 1, 5, 5), [1, 3], [3, 3, 3, 3], [2, 2]),
    ((1, 3, 15, 37), (3, 1, 3, 3), [3, 3], [1, 1, 1, 1], [1, 1]),
    ((1, 2, 57, 57), (2, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    # planes of at most 64 outputs whose rows are as wide as the input's at stride 1 or 2
    # (each a few vectors over the flat plane): whole and partial vectors, odd sizes,
    # asymmetric padding, dilation, 5x5 kernels, rows of up to 16 inputs at stride 2 (and
    # 31, 32: not flat), odd numbers of planes (they go two at a time)
    ((2, 16, 7, 7), (16, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((1, 3, 8, 8), (6, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((1, 4, 6, 7), (4, 1, 3, 3), [1, 1], [0, 2, 2, 0], [1, 1]),
    ((1, 3, 7, 5), (3, 1, 3, 3), [1, 1], [2, 2, 2, 2], [2, 2]),
    ((1, 2, 6, 6), (2, 1, 5, 5), [1, 1], [2, 2, 2, 2], [1, 1]),
    ((2, 5, 13, 14), (5, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    ((1, 3, 9, 11), (6, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    ((1, 2, 9, 10), (2, 1, 5, 5), [2, 2], [2, 2, 2, 2], [1, 1]),
    ((1, 2, 11, 9), (2, 1, 3, 3), [2, 2], [2, 2, 2, 2], [2, 2]),
    ((1, 2, 4, 32), (2, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    ((1, 2, 3, 31), (2, 1, 3, 3), [2, 2], [0, 2, 1, 1], [1, 1]),
    # tasks of several planes that cross images (odd channel counts in batches), with and
    # without a channel multiplier, flat and on rows of at most one vector
    ((3, 5, 7, 7), (5, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((2, 3, 7, 7), (6, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((3, 3, 13, 13), (3, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    ((3, 5, 14, 15), (10, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((1, 5, 14, 14), (5, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    ((3, 1, 15, 16), (1, 1, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    ((1, 7, 7, 7), (7, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    # 3x3 at stride 1 on rows of more than 8 outputs (strips of up to four vectors carried
    # down the plane): rows of 9 to 112, partial and whole vectors and strips, one- and
    # two-row planes, padding 0 to 2 and asymmetric, channel multiplier 2
    ((1, 3, 9, 9), (3, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((2, 3, 14, 14), (3, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((1, 2, 3, 16), (4, 1, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1]),
    ((1, 2, 1, 70), (2, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((1, 2, 2, 65), (2, 1, 3, 3), [1, 1], [2, 0, 0, 2], [1, 1]),
    ((1, 3, 11, 47), (3, 1, 3, 3), [1, 1], [0, 2, 2, 1], [1, 1]),
    ((1, 2, 5, 112), (2, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((1, 17, 6, 33), (17, 1, 3, 3), [1, 1], [2, 2, 2, 2], [1, 1]),
]


@pytest.mark.parametrize("f64", [False, True])
@pytest.mark.parametrize("case", DEPTHWISE, ids=lambda c: "x".join(map(str, c[0] + c[1])))
def test_depthwise_borders(lib: ctypes.CDLL, ctx, ctx1, case, f64: bool) -> None:
    _against_reference(lib, ctx, ctx1, case, case[0][1], f64, 11)


# 1x1 convolutions over at most 32 channels to 24 or more on planes of 54x54 outputs and
# more, computed directly on AVX-512 (k_conv_small.c): planes not a multiple of the
# 32-output block, 1 to 32 channels, batches, the smallest planes taken (SqueezeNet's
# 54x54) and one just below (the GEMM); float64, 16 output channels and output channels not
# a multiple of 8 go to the GEMM (the same summation: one chain of multiply-adds from +0
# over the channels).
POINTWISE = [
    ((1, 16, 56, 56), (96, 16, 1, 1)),
    ((1, 16, 54, 54), (64, 16, 1, 1)),
    ((2, 32, 54, 54), (128, 32, 1, 1)),
    ((1, 16, 53, 55), (24, 16, 1, 1)),
    ((2, 32, 57, 61), (16, 32, 1, 1)),
    ((2, 32, 57, 61), (32, 32, 1, 1)),
    ((1, 1, 60, 53), (24, 1, 1, 1)),
    ((1, 1, 60, 53), (8, 1, 1, 1)),
    ((3, 24, 56, 57), (24, 24, 1, 1)),
]


@pytest.mark.parametrize("case", POINTWISE, ids=lambda c: "x".join(map(str, c[0] + c[1])))
def test_conv1x1_few_channels(lib: ctypes.CDLL, ctx, ctx1, ctx3, ctx8, case) -> None:
    """The reference's values, the same bits at 1, 2, 3 and 8 threads, and the GEMM's
    bits (the same weight with one more output channel takes the GEMM)."""
    xs, ws = case
    unit = ([1, 1], [0, 0, 0, 0], [1, 1])
    _against_reference(lib, ctx, ctx1, (xs, ws, *unit), 1, True, 17)
    x, w, attrs, one = _against_reference(lib, ctx, ctx1, (xs, ws, *unit), 1, False, 17)
    _same_bits_with(lib, (ctx3, ctx8), x, w, attrs, one)
    rng = np.random.default_rng(17)
    w1 = np.concatenate([w, rng.standard_normal((1, *ws[1:])).astype(np.float32)])
    gemm = run_kernel(lib, ctx1, "conv2d", [x, w1], attrs, (xs[0], ws[0] + 1, *one.shape[2:]))
    assert np.ascontiguousarray(gemm[:, :ws[0]]).tobytes() == one.tobytes()


# Few taps (C * KH * KW <= 80), stride 1, output rows as wide as the input's, float32:
# computed directly on AVX-512 (k_conv_small.c), blocks of 32 or 16 outputs of the
# flattened plane whose taps past a row's ends are masked: rows narrower than a vector
# (several rows per vector), 14 and 28 wide (the digits CNN), 32 wide, a last block of
# one vector or two, channels not a multiple of 8, padding on one side only (2-wide
# kernels), rows of padding only above, a KH x 1 kernel read in place; and one whose
# rows narrow (no padding: the GEMM).
SMALL = [
    ((2, 1, 28, 28), (8, 1, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((3, 8, 14, 14), (16, 8, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((1, 3, 11, 4), (13, 3, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((2, 2, 9, 5), (5, 2, 2, 2), [1, 1], [1, 0, 1, 0], [1, 1]),
    ((2, 2, 9, 7), (6, 2, 3, 2), [1, 1], [2, 0, 0, 1], [1, 1]),
    ((1, 8, 9, 12), (16, 8, 3, 1), [1, 1], [0, 0, 0, 0], [1, 1]),
    ((1, 4, 6, 32), (7, 4, 3, 3), [1, 1], [1, 1, 1, 1], [1, 1]),
    ((2, 5, 7, 19), (12, 5, 3, 5), [1, 1], [1, 1, 2, 2], [1, 1]),
    ((1, 2, 10, 20), (9, 2, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1]),
]


@pytest.mark.parametrize("case", SMALL, ids=lambda c: "x".join(map(str, c[0] + c[1])))
def test_small_conv_rows(lib: ctypes.CDLL, ctx, ctx1, case) -> None:
    _against_reference(lib, ctx, ctx1, case, 1, False, 5)


# Stride 2 over at most 3 input channels (image stems; C * KH * KW <= 160), float32,
# computed directly on AVX-512 (k_conv_small.c) in bands of 8 output rows: MobileNetV2's
# 3x3 stem, rows of 16 to 40 outputs (whole vectors, a last one overlapping), bands past
# the plane's last row (every remainder of 8 rows, and fewer rows than a band), 5x5 and
# 2x2 kernels, asymmetric padding and none, 1 to 3 channels, output channels not a
# multiple of 8, batches; 7x7 (ResNet-50's stem with padding 3, SqueezeNet's without, at
# odd sizes), 6x8 (144 taps), and 7x8 over 3 channels (168: the GEMM).
STEM = [
    ((1, 3, 224, 224), (32, 3, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    ((2, 3, 35, 33), (13, 3, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    ((1, 1, 30, 80), (8, 1, 5, 5), [2, 2], [2, 2, 2, 2], [1, 1]),
    ((3, 2, 21, 37), (5, 2, 3, 3), [2, 2], [0, 1, 1, 0], [1, 1]),
    ((1, 3, 40, 64), (12, 3, 2, 2), [2, 2], [0, 0, 0, 0], [1, 1]),
    ((1, 3, 17, 96), (70, 3, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    ((1, 3, 224, 224), (64, 3, 7, 7), [2, 2], [3, 3, 3, 3], [1, 1]),
    ((2, 3, 57, 61), (96, 3, 7, 7), [2, 2], [0, 0, 0, 0], [1, 1]),
    ((1, 1, 40, 45), (9, 1, 7, 7), [2, 2], [3, 2, 1, 3], [1, 1]),
    ((3, 2, 27, 50), (16, 2, 7, 7), [2, 2], [3, 3, 3, 3], [1, 1]),
    ((1, 3, 30, 41), (100, 3, 7, 7), [2, 2], [0, 3, 2, 0], [1, 1]),
    ((1, 3, 26, 44), (8, 3, 6, 8), [2, 2], [2, 3, 2, 3], [1, 1]),
    ((1, 3, 26, 44), (8, 3, 7, 8), [2, 2], [2, 3, 2, 3], [1, 1]),
    ((2, 3, 13, 40), (16, 3, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    ((1, 3, 27, 34), (24, 3, 3, 3), [2, 2], [1, 1, 1, 1], [1, 1]),
    ((2, 3, 31, 47), (96, 3, 7, 7), [2, 2], [0, 0, 0, 0], [1, 1]),
]


@pytest.mark.parametrize("case", STEM, ids=lambda c: "x".join(map(str, c[0] + c[1])))
def test_conv_stride2_stem(lib: ctypes.CDLL, ctx, ctx1, ctx3, ctx8, case) -> None:
    """The reference's values, the same bits at 1, 2, 3 and 8 threads, and the GEMM's
    bits (the first three output channels alone take the GEMM)."""
    x, w, attrs, one = _against_reference(lib, ctx, ctx1, case, 1, False, 23)
    _same_bits_with(lib, (ctx3, ctx8), x, w, attrs, one)
    gemm = run_kernel(lib, ctx1, "conv2d", [x, w[:3]], attrs, (one.shape[0], 3, *one.shape[2:]))
    assert gemm.tobytes() == np.ascontiguousarray(one[:, :3]).tobytes()
