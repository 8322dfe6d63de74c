"""Random cases for every primitive, and the runner that compares the C kernels (through
the test-only ``amber-kernel-test`` executable) with the registry's NumPy kernels.

A case is ``(inputs, attrs)``. The expected result comes from the registry: its ``infer``
rule decides whether the case is valid (a ShapeError or DTypeError must be matched by the
C status), then its NumPy kernel gives the values (an OutOfRangeError must be matched too).
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from amber._dtype import from_numpy_dtype
from amber.errors import DTypeError, OutOfRangeError, ShapeError
from amber.ops import REGISTRY, Aval
from amber.ops.registry import abstract_eval

Case = tuple[list[np.ndarray], dict[str, Any]]

F32, F64, I32, I64, B = np.float32, np.float64, np.int32, np.int64, np.bool_
F16, BF16, I8, U8, I16 = np.float16, ml_dtypes.bfloat16, np.int8, np.uint8, np.int16
STORAGE = (F16, BF16, I8, U8, I16)  # opset 5: computed in float32 / int32
ALL = (F32, F64, I32, I64, B, *STORAGE)
FLOATS = (F32, F64, F16, BF16)
NUMERIC = (*FLOATS, I32, I64, I8, U8, I16)


STORAGE_FLOATS = {np.dtype(F16), np.dtype(BF16)}


def is_float(dt: Any) -> bool:
    """Float dtypes, bfloat16 (NumPy kind 'V') included."""
    return np.dtype(dt).kind == "f" or np.dtype(dt) == np.dtype(BF16)

# Accuracy classes of docs/opset.md section 5 (every other op must be bit-exact).
ULP4 = {name for name, p in REGISTRY.items() if p.accuracy == "ulp4"}
# the sum-bound ops whose C kernels may sum in another order than NumPy (the pooling
# kernels sum in NumPy's order: checked bit for bit)
SUM_BOUND = {"sum", "matmul", "conv2d", "conv2d_input_grad", "conv2d_weight_grad", "scatter_add"}
# NumPy's own results are not correctly rounded: allow one ulp for the reference.
ULP_SLACK = 5
UNIT_ROUNDOFF = {np.dtype(F32): 2.0**-24, np.dtype(F64): 2.0**-53,
                 np.dtype(F16): 2.0**-11, np.dtype(BF16): 2.0**-8}

STATUS_OF = {ShapeError: "AMBER_ERR_SHAPE", DTypeError: "AMBER_ERR_DTYPE",
             OutOfRangeError: "AMBER_ERR_OUT_OF_RANGE"}


# ----------------------------------------------------------------------------- values

def values(rng: np.random.Generator, shape: tuple[int, ...], dt: Any, *,
           special: bool = True, positive: bool = False, small: bool = False) -> np.ndarray:
    """Random values of dtype dt; floats include NaN/inf/-0.0, ints include extremes."""
    dt = np.dtype(dt)
    n = math.prod(shape)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if is_float(dt):
        x = rng.standard_normal(n) * (1.0 if small else 3.0)
        if positive:
            x = np.abs(x) + 0.1
        if special and n >= 4:
            k = rng.integers(0, n, size=max(1, n // 8))
            x[k] = rng.choice([np.nan, np.inf, -np.inf, -0.0, 0.0], size=len(k))
        return x.astype(dt).reshape(shape)
    info = np.iinfo(dt)
    x = rng.integers(-20, 21, size=n).astype(dt)
    if positive:
        x = np.abs(x) + 1
    if special and not small and n >= 4:
        k = rng.integers(0, n, size=max(1, n // 8))
        x[k] = rng.choice(np.array([info.min, info.max, -1, 0, 1]).astype(dt), size=len(k))
    return x.reshape(shape)


def smooth(rng: np.random.Generator, shape: tuple[int, ...], dt: Any) -> np.ndarray:
    """Finite values without special cases (for sums of products)."""
    return values(rng, shape, dt, special=False)


def rand_shape(rng: np.random.Generator, max_rank: int = 4, max_dim: int = 5,
               min_rank: int = 0, zero_ok: bool = True) -> tuple[int, ...]:
    r = int(rng.integers(min_rank, max_rank + 1))
    lo = 0 if zero_ok and rng.random() < 0.15 else 1
    return tuple(int(rng.integers(lo, max_dim + 1)) for _ in range(r))


def broadcastable(rng: np.random.Generator, out: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to ``out``: leading dims dropped, some dims set to 1."""
    drop = int(rng.integers(0, len(out) + 1)) if rng.random() < 0.4 else 0
    return tuple(1 if rng.random() < 0.3 else d for d in out[drop:])


def incompatible(rng: np.random.Generator, out: tuple[int, ...]) -> tuple[int, ...] | None:
    dims = [i for i, d in enumerate(out) if d > 1]
    if not dims:
        return None
    s = list(out)
    s[dims[int(rng.integers(len(dims)))]] += 1
    return tuple(s)


# ----------------------------------------------------------------------------- generators

Gen = Callable[[np.random.Generator], Iterator[Case]]
GENERATORS: dict[str, Gen] = {}


def gen(*names: str) -> Callable[[Gen], Gen]:
    def register(fn: Gen) -> Gen:
        for n in names:
            GENERATORS[n] = fn
        return fn

    return register


def _unary(positive: bool = False) -> Gen:
    def g(rng: np.random.Generator) -> Iterator[Case]:
        for dt in ALL:  # every dtype: the disallowed ones must fail with a dtype error
            for _ in range(4):
                shape = rand_shape(rng)
                yield [values(rng, shape, dt)], {}
        yield [values(rng, (300,), F32, positive=positive)], {}

    return g


for _name, _p in REGISTRY.items():
    if _p.kind == "unary":
        GENERATORS[_name] = _unary()


@gen("add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt",
     "ge", "logical_and", "logical_or")
def _binary(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for _ in range(6):
            out = rand_shape(rng)
            sa, sb = broadcastable(rng, out), broadcastable(rng, out)
            if rng.random() < 0.5:
                sa, sb = sb, sa
            yield [values(rng, sa, dt), values(rng, sb, dt)], {}
        # every integer pairing of the extremes (division by 0, INT_MIN / -1, wrapping)
        if np.dtype(dt).kind in "iu":
            info = np.iinfo(dt)
            ext = np.array([info.min, info.min + 1, -7, -1, 0, 1, 7, info.max]).astype(dt)
            yield [ext[:, None], ext[None, :]], {}
        if is_float(dt):
            sp = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, -2.0, 0.5, 3.0], dtype=dt)
            yield [sp[:, None], sp[None, :]], {}
    # contiguous, scalar-broadcast and large cases on the fast paths
    yield [values(rng, (257,), F32), values(rng, (257,), F32)], {}
    yield [values(rng, (3, 129), F64), values(rng, (), F64)], {}
    yield [values(rng, (), I32), values(rng, (4, 33), I32)], {}
    # a scalar first operand of every dtype (commuting ops run it as a scalar second)
    for dt in (F32, F64, I64, B):
        yield [values(rng, (), dt), values(rng, (3, 37), dt)], {}
    bad = incompatible(rng, (2, 3, 4))
    yield [values(rng, (2, 3, 4), F32), values(rng, bad or (5,), F32)], {}
    yield [values(rng, (2, 3), F32), values(rng, (2, 3), F64)], {}  # mixed dtypes


@gen("where")
def _where(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for _ in range(5):
            out = rand_shape(rng)
            c = values(rng, broadcastable(rng, out), B)
            yield [c, values(rng, broadcastable(rng, out), dt),
                   values(rng, broadcastable(rng, out), dt)], {}
    # the contiguous fast paths: both rows, or one candidate a broadcast scalar (relu is
    # where(x <= 0, 0, x)), for 1-, 4- and 8-byte elements, with rows past a vector width
    for dt in (B, F32, I64):
        for sx, sy in (((2, 67), (2, 67)), ((), (2, 67)), ((2, 67), ()), ((), ())):
            yield [values(rng, (2, 67), B), values(rng, sx, dt), values(rng, sy, dt)], {}
    yield [values(rng, (3,), F32), values(rng, (3,), F32), values(rng, (3,), F32)], {}
    yield [values(rng, (3,), B), values(rng, (3,), F32), values(rng, (3,), I32)], {}


@gen("cast")
def _cast(rng: np.random.Generator) -> Iterator[Case]:
    big = [np.nan, np.inf, -np.inf, 3e9, -3e9, 1e19, -1e19, 2.5, -2.5, -0.7, 0.7,
           2147483647.0, -2147483648.0, 2147483520.0, 9.2e18, -9.3e18, 0.0, -0.0]
    for src in ALL:
        for dst in ALL:
            name = np.dtype(dst).name
            for _ in range(3):
                yield [values(rng, rand_shape(rng), src)], {"dtype": name}
            if is_float(src):
                yield [np.array(big, dtype=np.float64).astype(src)], {"dtype": name}


def _axes(rng: np.random.Generator, rank: int) -> tuple[int, ...]:
    return tuple(sorted(int(a) for a in rng.choice(rank, size=int(rng.integers(0, rank + 1)),
                                                   replace=False))) if rank else ()


@gen("sum", "max", "min")
def _reduce(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for _ in range(6):
            shape = rand_shape(rng)
            yield [values(rng, shape, dt, special=rng.random() < 0.5)], {
                "axes": _axes(rng, len(shape)), "keepdims": bool(rng.random() < 0.5)}
    yield [values(rng, (7, 300), F32, special=False)], {"axes": (1,), "keepdims": False}
    yield [values(rng, (7, 300), F32, special=False)], {"axes": (0,), "keepdims": True}
    yield [values(rng, (2, 0, 3), F32)], {"axes": (1,), "keepdims": False}  # empty axis
    yield [values(rng, (2, 3), F32)], {"axes": (2,), "keepdims": False}  # bad axis
    yield [values(rng, (2, 3), F32)], {"axes": (1, 1), "keepdims": False}  # repeated


@gen("argmax", "argmin")
def _arg(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for _ in range(6):
            shape = rand_shape(rng, min_rank=1)
            yield [values(rng, shape, dt)], {"axis": int(rng.integers(0, len(shape))),
                                              "keepdims": bool(rng.random() < 0.5)}
    yield [np.array([1.0, np.nan, 5.0, np.nan], F32)], {"axis": 0, "keepdims": False}
    yield [np.array([[3, 3, 1], [1, 3, 3]], I64)], {"axis": 1, "keepdims": True}
    yield [values(rng, (2, 3), F32)], {"axis": 2, "keepdims": False}


@gen("matmul")
def _matmul(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for _ in range(4):
            m, k, n = (int(rng.integers(0 if rng.random() < 0.1 else 1, 9)) for _ in range(3))
            batch = rand_shape(rng, max_rank=2, max_dim=3, zero_ok=False)
            ba, bb = broadcastable(rng, batch), broadcastable(rng, batch)
            yield [values(rng, ba + (m, k), dt, special=False, small=True),
                   values(rng, bb + (k, n), dt, special=False, small=True)], {}
    # sizes beyond the GEMM blocks (KC=256, MC=96, NR=16)
    yield [values(rng, (131, 300), F32, special=False), values(rng, (300, 45), F32,
                                                                  special=False)], {}
    yield [values(rng, (2, 100, 70), F64, special=False), values(rng, (70, 17), F64,
                                                                    special=False)], {}
    # The paths of gemm.c, each large enough to use threads (the runner compares one
    # thread, two threads and a kept packed B bit for bit): one and two rows (GEMV; k not
    # a multiple of its 4-row step, n not of the vector width), a few rows (packed),
    # tails of every tile dimension, several KC and NC blocks.
    for dt in (F32, F64):  # the GEMM paths (storage dtypes run them as float32)
        for m, k, n in ((1, 301, 700), (2, 257, 530), (3, 65, 1100), (5, 530, 37),
                        (13, 513, 35), (97, 300, 1), (7, 9, 2100)):
            yield [values(rng, (m, k), dt, special=False),
                   values(rng, (k, n), dt, special=False)], {}
    # NaN and infinities on the GEMV and packed paths
    yield [values(rng, (1, 300), F32), values(rng, (300, 40), F32, special=False)], {}
    yield [values(rng, (9, 40), F32, special=False), values(rng, (40, 300), F32)], {}
    # broadcast batches: one y for every x (folded into one product), x shared by every
    # y, and both batched with broadcasting
    yield [values(rng, (3, 2, 5, 40), F32, special=False),
           values(rng, (40, 19), F32, special=False)], {}
    yield [values(rng, (1, 1, 40), F32, special=False),
           values(rng, (3, 40, 19), F32, special=False)], {}
    yield [values(rng, (4, 1, 1, 64), F64, special=False),
           values(rng, (3, 64, 33), F64, special=False)], {}
    yield [values(rng, (2, 1, 6, 50), F32, special=False),
           values(rng, (1, 3, 50, 24), F32, special=False)], {}
    yield [values(rng, (4, 5), F32), values(rng, (6, 3), F32)], {}
    yield [values(rng, (5,), F32), values(rng, (5, 3), F32)], {}


def _conv_config(rng: np.random.Generator) -> dict[str, Any] | None:
    groups = int(rng.choice([1, 1, 2, 3]))
    cg, og = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    n = int(rng.integers(1, 3))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    h, w = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    dilation = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = tuple(int(rng.integers(0, 3)) for _ in range(4))
    oh = (h + padding[0] + padding[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + padding[2] + padding[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if oh < 1 or ow < 1:
        return None
    return dict(x=(n, cg * groups, h, w), w=(og * groups, cg, kh, kw), y=(n, og * groups, oh, ow),
                attrs=dict(stride=stride, padding=padding, dilation=dilation, groups=groups))


def _conv_configs(rng: np.random.Generator, count: int) -> Iterator[dict[str, Any]]:
    made = 0
    while made < count:
        c = _conv_config(rng)
        if c is not None:
            made += 1
            yield c


@gen("conv2d")
def _conv2d(rng: np.random.Generator) -> Iterator[Case]:
    for dt in (F32, F64):
        for c in _conv_configs(rng, 8):
            yield [smooth(rng, c["x"], dt), smooth(rng, c["w"], dt)], c["attrs"]
    yield [values(rng, (2, 16, 20, 20), F32, special=False),
           values(rng, (24, 16, 3, 3), F32, special=False)], \
        dict(stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1), groups=1)
    yield [values(rng, _CHUNKED["x"], F32, special=False),
           values(rng, _CHUNKED["w"], F32, special=False)], _CHUNKED["attrs"]
    # images in parallel (more images than threads), strided and padded windows
    yield [values(rng, (5, 4, 33, 31), F32, special=False),
           values(rng, (16, 2, 3, 2), F32, special=False)], \
        dict(stride=(2, 3), padding=(1, 0, 2, 1), dilation=(1, 2), groups=2)
    yield [values(rng, (3, 3, 17, 17), F64, special=False),
           values(rng, (8, 3, 5, 5), F64, special=False)], \
        dict(stride=(1, 1), padding=(2, 2, 2, 2), dilation=(1, 1), groups=1)
    # one input channel per group (the direct kernel): depthwise with a multiplier,
    # strides 1-3, dilation, asymmetric padding, planes wider than a vector block
    for dtype, (n, ch, h, w), mult, st, pd, dl in [
            (F32, (2, 6, 9, 70), 1, (1, 1), (1, 1, 1, 1), (1, 1)),
            (F32, (1, 4, 11, 37), 2, (2, 2), (1, 0, 2, 1), (1, 1)),
            (F64, (1, 3, 8, 19), 1, (3, 2), (0, 2, 1, 1), (2, 2)),
            (F64, (2, 1, 7, 7), 5, (1, 3), (2, 2, 0, 1), (1, 2)),
            # 3 wide, stride 1 or 2: rows of whole and partial vectors, rows narrower
            # than half a vector (half-width vectors), odd sizes, asymmetric padding
            (F32, (1, 3, 13, 53), 1, (1, 1), (1, 1, 1, 1), (1, 1)),
            (F32, (2, 2, 17, 41), 2, (2, 2), (1, 1, 1, 1), (1, 1)),
            (F32, (1, 5, 9, 7), 1, (1, 1), (0, 2, 1, 0), (1, 1)),
            (F32, (1, 4, 15, 14), 1, (2, 2), (1, 0, 0, 1), (1, 1)),
            # small planes at stride 2 (phase planes made two input rows at a time): odd
            # heights, rows of 15 and 16, more than one image
            (F32, (2, 5, 15, 16), 1, (2, 2), (1, 1, 1, 1), (1, 1)),
            (F32, (1, 6, 13, 15), 1, (2, 2), (1, 1, 1, 1), (1, 1)),
            (F64, (1, 3, 11, 21), 1, (2, 2), (1, 1, 1, 1), (1, 1)),
            # 3x3 at stride 1 or 2 on rows of more than 8 (float32: strips carried down
            # the plane): more than one strip, no or asymmetric padding
            (F32, (1, 2, 5, 130), 1, (1, 1), (0, 2, 2, 0), (1, 1)),
            (F32, (1, 2, 9, 150), 1, (2, 2), (1, 0, 1, 2), (1, 1)),
            # stride 2, rows of whole vectors whose last output's last tap is inside the
            # plane (the element after a vector's evens), with and without padding
            (F32, (2, 3, 9, 64), 1, (2, 2), (1, 1, 1, 1), (1, 1)),
            (F32, (1, 2, 8, 65), 1, (2, 2), (0, 0, 0, 0), (1, 1))]:
        yield [smooth(rng, (n, ch, h, w), dtype), smooth(rng, (ch * mult, 1, 3, 3), dtype)], \
            dict(stride=st, padding=pd, dilation=dl, groups=ch)
    # stride 2 over at most 3 channels (image stems, computed directly on AVX-512): bands
    # of output rows and a last partial one, rows of 16 to 40 outputs, asymmetric padding,
    # special values; 7x7 stems
    for (n, ch, h, w), (o, kh, kw), pd, special in [
            ((2, 3, 37, 40), (13, 3, 3), (1, 1, 1, 1), False),
            ((1, 1, 20, 70), (8, 5, 5), (2, 1, 0, 2), False),
            ((1, 3, 33, 34), (8, 3, 3), (1, 1, 1, 1), True),
            ((2, 3, 45, 39), (11, 7, 7), (3, 3, 3, 3), True),
            ((1, 2, 41, 38), (9, 7, 7), (0, 0, 0, 0), False)]:
        yield [values(rng, (n, ch, h, w), F32, special=special),
               values(rng, (o, ch, kh, kw), F32, special=False)], \
            dict(stride=(2, 2), padding=pd, dilation=(1, 1), groups=1)
    # 1x1, unit stride, no padding: the input is the product's operand (no im2col)
    for dt, groups in ((F32, 1), (F64, 2)):
        yield [smooth(rng, (2, 8, 5, 7), dt), smooth(rng, (6, 8 // groups, 1, 1), dt)], \
            dict(stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=groups)
    base = dict(stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1)
    yield [values(rng, (1, 3, 2, 2), F32), values(rng, (2, 3, 3, 3), F32)], base  # too large
    yield [values(rng, (1, 4, 5, 5), F32), values(rng, (2, 3, 3, 3), F32)], base  # channels
    yield [values(rng, (1, 3, 5, 5), I32), values(rng, (2, 3, 3, 3), I32)], base  # dtype


@gen("conv2d_input_grad")
def _conv_dx(rng: np.random.Generator) -> Iterator[Case]:
    for dt in (F32, F64):
        for c in _conv_configs(rng, 8):
            yield [smooth(rng, c["y"], dt), smooth(rng, c["w"], dt)], \
                {**c["attrs"], "input_hw": c["x"][2:]}
    yield [values(rng, _CHUNKED["y"], F32, special=False),
           values(rng, _CHUNKED["w"], F32, special=False)], \
        {**_CHUNKED["attrs"], "input_hw": (32, 32)}
    # images in parallel, with strides and dilation (col2im by valid ranges)
    yield [values(rng, (4, 16, 12, 18), F32, special=False),
           values(rng, (16, 4, 3, 3), F32, special=False)], \
        dict(stride=(2, 2), padding=(1, 2, 0, 1), dilation=(2, 1), groups=1,
             input_hw=(25, 37))
    c = next(_conv_configs(rng, 1))
    wrong = (c["y"][0], c["y"][1], c["y"][2] + 1, c["y"][3])
    yield [values(rng, wrong, F32), values(rng, c["w"], F32)], \
        {**c["attrs"], "input_hw": c["x"][2:]}


@gen("conv2d_weight_grad")
def _conv_dw(rng: np.random.Generator) -> Iterator[Case]:
    for dt in (F32, F64):
        for c in _conv_configs(rng, 8):
            yield [smooth(rng, c["x"], dt), smooth(rng, c["y"], dt)], \
                {**c["attrs"], "kernel_hw": c["w"][2:]}
    # images in chunks (one product per chunk of images; the weight gradient sums chunks)
    yield [values(rng, _CHUNKED["x"], F32, special=False),
           values(rng, _CHUNKED["y"], F32, special=False)], \
        {**_CHUNKED["attrs"], "kernel_hw": (3, 3)}
    c = next(_conv_configs(rng, 1))
    wrong = (c["y"][0], c["y"][1] + 1, c["y"][2], c["y"][3])
    yield [values(rng, c["x"], F32), values(rng, wrong, F32)], \
        {**c["attrs"], "kernel_hw": c["w"][2:]}


# Images enough that the convolutions run them in more than one chunk (of 1 MiB scratch).
_CHUNKED: dict[str, Any] = {"x": (9, 3, 32, 32), "w": (8, 3, 3, 3), "y": (9, 8, 32, 32),
                            "attrs": dict(stride=(1, 1), padding=(1, 1, 1, 1),
                                          dilation=(1, 1), groups=1)}


def _pool_config(rng: np.random.Generator, avg: bool) -> dict[str, Any]:
    """A random valid pooling window: asymmetric padding, ceil_mode, dilation (max)."""
    while True:
        k = tuple(int(v) for v in rng.integers(1, 4, 2))
        st = tuple(int(v) for v in rng.integers(1, 4, 2))
        dl = (1, 1) if avg else tuple(int(v) for v in rng.integers(1, 3, 2))
        ext = [dl[i] * (k[i] - 1) + 1 for i in (0, 1)]
        pd = tuple(int(rng.integers(0, ext[i // 2] // 2 + 1)) for i in range(4))
        xs = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 9)),
              int(rng.integers(1, 9)))
        attrs: dict[str, Any] = {"kernel_hw": k, "stride": st, "padding": pd,
                                 "ceil_mode": bool(rng.random() < 0.5)}
        if avg:
            attrs["count_include_pad"] = bool(rng.random() < 0.5)
        else:
            attrs["dilation"] = dl
        try:
            y = abstract_eval(REGISTRY["avg_pool2d" if avg else "max_pool2d"],
                              [Aval(xs, from_numpy_dtype(np.dtype(F32)))], attrs)
        except ShapeError:
            continue
        return {"x": xs, "y": y.shape, "attrs": attrs}


def _max_pool_cases(rng: np.random.Generator, grad: bool) -> Iterator[Case]:
    for dt in (F32, F64):
        for _ in range(10):
            c = _pool_config(rng, False)
            x = values(rng, c["x"], dt)
            if rng.random() < 0.3:  # ties
                x = np.round(x).astype(dt)
            yield ([x, values(rng, c["y"], dt, special=False)] if grad else [x]), c["attrs"]
    # windows that tile the planes (stride = kernel, no padding): the planes pool as one
    for xs, k, dt in (((3, 5, 8, 6), (2, 2), F32), ((2, 3, 9, 8), (3, 2), F64),
                      ((8, 64, 16, 16), (2, 2), F32), ((1, 7, 2, 20), (1, 4), F32)):
        x = values(rng, xs, dt)
        if grad:
            x = np.round(x).astype(dt)  # ties: the first maximum takes the gradient
        at = {"kernel_hw": k, "stride": k, "padding": (0, 0, 0, 0), "dilation": (1, 1),
              "ceil_mode": False}
        y = REGISTRY["max_pool2d"].impl(x, **at)
        yield ([x, values(rng, y.shape, dt, special=False)] if grad else [x]), at
    # many planes on the pool; a large strided window; rows wide enough for the vectors
    for xs, dt, at in (((2, 24, 37, 41), F32, {"kernel_hw": (3, 3), "stride": (2, 2),
                                                "padding": (1, 1, 1, 1), "dilation": (1, 1),
                                                "ceil_mode": True}),
                       ((1, 3, 11, 45), F64, {"kernel_hw": (3, 2), "stride": (2, 1),
                                              "padding": (1, 0, 1, 1), "dilation": (1, 2),
                                              "ceil_mode": True}),
                       ((1, 5, 27, 54), F32, {"kernel_hw": (3, 3), "stride": (2, 2),
                                              "padding": (0, 0, 0, 0), "dilation": (1, 1),
                                              "ceil_mode": True})):
        x = values(rng, xs, dt)
        y = REGISTRY["max_pool2d"].impl(x, **at)
        yield ([x, values(rng, y.shape, dt, special=False)] if grad else [x]), at


@gen("max_pool2d")
def _max_pool(rng: np.random.Generator) -> Iterator[Case]:
    yield from _max_pool_cases(rng, False)


@gen("max_pool2d_grad")
def _max_pool_grad(rng: np.random.Generator) -> Iterator[Case]:
    yield from _max_pool_cases(rng, True)


@gen("avg_pool2d")
def _avg_pool(rng: np.random.Generator) -> Iterator[Case]:
    for dt in (F32, F64):
        for _ in range(12):
            c = _pool_config(rng, True)
            yield [values(rng, c["x"], dt)], c["attrs"]
    yield [values(rng, (3, 20, 30, 30), F32)], {
        "kernel_hw": (3, 3), "stride": (1, 1), "padding": (1, 1, 1, 1), "ceil_mode": False,
        "count_include_pad": False}
    yield [values(rng, (2, 3, 7, 70), F32)], {  # more than one strip (3x3 at stride 1)
        "kernel_hw": (3, 3), "stride": (1, 1), "padding": (0, 1, 1, 0), "ceil_mode": False,
        "count_include_pad": True}
    yield [values(rng, (1, 2, 9, 50), F64)], {  # rows wide enough for the vectors
        "kernel_hw": (3, 2), "stride": (2, 2), "padding": (0, 1, 0, 1), "ceil_mode": True,
        "count_include_pad": True}
    yield [values(rng, (1, 1, 3, 3), I32)], {
        "kernel_hw": (2, 2), "stride": (1, 1), "padding": (0, 0, 0, 0), "ceil_mode": False,
        "count_include_pad": False}


@gen("avg_pool2d_grad")
def _avg_pool_grad(rng: np.random.Generator) -> Iterator[Case]:
    for dt in (F32, F64):
        for _ in range(12):
            c = _pool_config(rng, True)
            yield [values(rng, c["y"], dt)], {**c["attrs"], "input_hw": c["x"][2:]}
    c = _pool_config(rng, True)
    wrong = c["y"][:3] + (c["y"][3] + 1,)
    yield [values(rng, wrong, F32)], {**c["attrs"], "input_hw": c["x"][2:]}


@gen("reshape")
def _reshape(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for _ in range(3):
            shape = rand_shape(rng)
            n = math.prod(shape)
            target = [n] if rng.random() < 0.5 else [1, n, 1]
            if n and n % 2 == 0:
                target = [2, n // 2]
            yield [values(rng, shape, dt)], {"shape": tuple(target)}
    yield [values(rng, (2, 3), F32)], {"shape": (4,)}


@gen("transpose")
def _transpose(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for _ in range(4):
            shape = rand_shape(rng)
            yield [values(rng, shape, dt)], {"perm": tuple(int(p) for p in
                                                           rng.permutation(len(shape)))}
    yield [values(rng, (2, 3), F32)], {"perm": (0, 0)}


@gen("broadcast_to")
def _broadcast_to(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for _ in range(4):
            out = rand_shape(rng)
            yield [values(rng, broadcastable(rng, out), dt)], {"shape": out}
    yield [values(rng, (2, 3), F32)], {"shape": (3, 3)}


@gen("slice")
def _slice(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for _ in range(4):
            shape = rand_shape(rng)
            starts, stops, steps = [], [], []
            for d in shape:
                a = int(rng.integers(0, d + 1))
                b = int(rng.integers(a, d + 1))
                starts.append(a)
                stops.append(b)
                steps.append(int(rng.integers(1, 4)))
            yield [values(rng, shape, dt)], {"starts": tuple(starts), "stops": tuple(stops),
                                              "steps": tuple(steps)}
    yield [values(rng, (4,), F32)], {"starts": (1,), "stops": (5,), "steps": (1,)}


@gen("pad")
def _pad(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for _ in range(4):
            shape = rand_shape(rng, max_dim=4)
            r = len(shape)
            lo = tuple(int(v) for v in rng.integers(0, 3, r))
            hi = tuple(int(v) for v in rng.integers(0, 3, r))
            it = tuple(int(v) for v in rng.integers(0, 3, r))
            value = float(rng.choice([0.0, 1.0, -2.0, 1.5])) if np.dtype(dt).kind != "b" else 1.0
            yield [values(rng, shape, dt)], {"lo": lo, "hi": hi, "interior": it, "value": value}
    yield [values(rng, (2,), F32)], {"lo": (-1,), "hi": (0,), "interior": (0,), "value": 0.0}


@gen("concat")
def _concat(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for _ in range(4):
            shape = rand_shape(rng, min_rank=1)
            axis = int(rng.integers(0, len(shape)))
            xs = []
            for _ in range(int(rng.integers(1, 4))):
                s = list(shape)
                s[axis] = int(rng.integers(0, 4))
                xs.append(values(rng, tuple(s), dt))
            yield xs, {"axis": axis}
    yield [values(rng, (2, 3), F32), values(rng, (3, 3), F32)], {"axis": 1}


@gen("take")
def _take(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for idt in (I32, I64):
            for _ in range(3):
                shape = rand_shape(rng, min_rank=1, zero_ok=False)
                axis = int(rng.integers(0, len(shape)))
                n = shape[axis]
                idx = rng.integers(-n, n, size=rand_shape(rng, max_rank=2)).astype(idt)
                yield [values(rng, shape, dt), idx], {"axis": axis}
    yield [values(rng, (3, 4), F32), np.array([0, 3], I64)], {"axis": 0}  # out of range
    yield [values(rng, (3, 4), F32), np.array([-5], I32)], {"axis": 1}  # out of range
    yield [values(rng, (3, 4), F32), np.array([0.0], F32)], {"axis": 1}  # index dtype


@gen("scatter_add")
def _scatter(rng: np.random.Generator) -> Iterator[Case]:
    for dt in ALL:
        for idt in (I32, I64):
            for _ in range(3):
                shape = rand_shape(rng, min_rank=1, zero_ok=False)
                axis = int(rng.integers(0, len(shape)))
                n = shape[axis]
                ishape = rand_shape(rng, max_rank=2)
                idx = rng.integers(-n, n, size=ishape).astype(idt)  # repeats accumulate
                sshape = shape[:axis] + ishape + shape[axis + 1:]
                yield [values(rng, shape, dt, special=False), idx,
                       values(rng, sshape, dt, special=False)], {"axis": axis}
    yield [values(rng, (3,), F32), np.array([3], I64), values(rng, (1,), F32)], {"axis": 0}
    yield [values(rng, (3,), F32), np.array([0], I64), values(rng, (2,), F32)], {"axis": 0}


@gen("dim_value")
def _dim_value(rng: np.random.Generator) -> Iterator[Case]:
    for v in (0, 1, 7, -3, 2**62, -(2**63), int(rng.integers(0, 1 << 40))):
        yield [], {"value": v}


# ----------------------------------------------------------------------------- running

def expected(name: str, inputs: list[np.ndarray], attrs: dict[str, Any]) -> np.ndarray | str:
    """The registry's result, or the C status name its error corresponds to."""
    prim = REGISTRY[name]
    try:
        avals = [Aval(tuple(x.shape), from_numpy_dtype(x.dtype)) for x in inputs]
        abstract_eval(prim, avals, attrs)
        return np.asarray(prim.impl(*inputs, **attrs))
    except (ShapeError, DTypeError, OutOfRangeError) as err:
        return STATUS_OF[type(err)]


def attrs_json(attrs: dict[str, Any]) -> str:
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()})


def run_c(runner: Path, name: str, inputs: list[np.ndarray], attrs: dict[str, Any],
          workdir: Path) -> np.ndarray | str:
    """Runs the C kernel; returns its result or the status name it failed with."""
    paths = []
    for i, x in enumerate(inputs):
        p = workdir / f"in{i}.npy"
        np.save(p, np.array(x, order="C"))  # keeps rank 0 (ascontiguousarray does not)
        paths.append(str(p))
    out = workdir / "out.npy"
    res = subprocess.run([str(runner), name, attrs_json(attrs), str(out), *paths],
                         capture_output=True, text=True, timeout=120)
    if res.returncode == 2:
        return res.stderr.split(":", 1)[0]
    if res.returncode != 0:
        raise AssertionError(f"{name}: runner crashed (exit {res.returncode}): {res.stderr}")
    got = np.load(out)
    return got.view(BF16) if got.dtype == np.dtype("V2") else got


def terms(name: str, inputs: list[np.ndarray], attrs: dict[str, Any]) -> int:
    """Number of terms summed into one output element (an upper bound)."""
    if name == "sum":
        return math.prod(inputs[0].shape[a] for a in attrs["axes"])
    if name == "matmul":
        return inputs[0].shape[-1]
    if name == "conv2d":
        return math.prod(inputs[1].shape[1:])
    if name == "conv2d_input_grad":
        return inputs[1].shape[0] * inputs[1].shape[2] * inputs[1].shape[3]
    if name == "conv2d_weight_grad":
        return math.prod(inputs[1].shape[:1] + inputs[1].shape[2:])
    return inputs[1].size + 1  # scatter_add: base plus every src value


def sum_bound(name: str, inputs: list[np.ndarray], attrs: dict[str, Any],
              dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(float64 reference, allowed error) under the sum bound of opset section 5."""
    def wide(xs: list[np.ndarray], absolute: bool) -> list[np.ndarray]:
        return [np.abs(x).astype(F64) if absolute and is_float(x.dtype)
                else x.astype(F64) if is_float(x.dtype) else x for x in xs]

    impl = REGISTRY[name].impl
    with np.errstate(all="ignore"):
        ref = np.asarray(impl(*wide(inputs, False), **attrs))
        mag = np.asarray(impl(*wide(inputs, True), **attrs))
        compute = np.dtype(F32) if dtype in STORAGE_FLOATS else dtype
        bound = 2 * terms(name, inputs, attrs) * UNIT_ROUNDOFF[compute] * mag
        if compute != dtype:  # the float32 result rounded once more
            bound = bound * (1 + UNIT_ROUNDOFF[dtype]) + UNIT_ROUNDOFF[dtype] * np.abs(ref)
    return ref, 2 * bound  # twice: float64 references of float64 data are inexact too


def compare(name: str, got: np.ndarray | str, want: np.ndarray | str, where: str,
            inputs: list[np.ndarray], attrs: dict[str, Any]) -> None:
    if isinstance(want, str) or isinstance(got, str):
        assert isinstance(got, str) and got == want, \
            f"{where}: C gave {got!r}, reference gave {want!r}"
        return
    assert got.dtype == want.dtype, f"{where}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{where}: shape {got.shape} != {want.shape}"
    if not is_float(want.dtype) or name not in ULP4 | SUM_BOUND:
        if want.dtype in STORAGE_FLOATS:  # as float32 (exact): NumPy's NaN rule sees them
            got, want = got.astype(F32), want.astype(F32)
        np.testing.assert_array_equal(got, want, err_msg=where)
        return
    # Special values are exact in every class.
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{where}: NaN positions differ"
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf]) and not np.isinf(got[~inf]).any(), \
        f"{where}: infinities differ"
    ok = np.isfinite(want)
    if name in ULP4:
        err = np.abs(got[ok].astype(F64) - want[ok].astype(F64))
        if want.dtype in STORAGE_FLOATS:  # float32 results rounded once: a storage ulp
            fi = ml_dtypes.finfo(want.dtype)
            mag = np.abs(want[ok].astype(F64))
            allowed = ULP_SLACK * np.maximum(mag * float(fi.eps), float(fi.smallest_subnormal))
        else:
            allowed = ULP_SLACK * np.spacing(np.abs(want[ok]).astype(want.dtype)).astype(F64)
    else:
        ref, bound = sum_bound(name, inputs, attrs, want.dtype)
        err = np.abs(got[ok].astype(F64) - ref[ok])
        allowed = bound[ok]
    bad = err > allowed
    assert not bad.any(), (f"{where}: {int(bad.sum())} element(s) beyond the tolerance, "
                           f"worst error {err[bad].max():.3g} (allowed {allowed[bad].min():.3g})")


def check_op(runner: Path, name: str, seed: int = 0) -> int:
    """Runs every generated case of ``name``; returns how many ran."""
    rng = np.random.default_rng([seed, sum(name.encode())])
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        for inputs, attrs in GENERATORS[name](rng):
            where = (f"{name}({', '.join(f'{x.dtype}{list(x.shape)}' for x in inputs)}, "
                     f"{attrs_json(attrs)})")
            compare(name, run_c(runner, name, inputs, attrs, Path(tmp)),
                    expected(name, inputs, attrs), where, inputs, attrs)
            count += 1
    return count
