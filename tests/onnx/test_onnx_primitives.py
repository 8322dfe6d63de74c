"""Every primitive the ONNX exporter supports, run through ONNX Runtime on randomized
inputs (with NaN, infinities, signed zeros and integer extremes mixed in) and compared
with the reference interpreter within the tolerance docs/opset.md states for the op."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from onnx_helpers import (
    ALL,
    FLOATS,
    INTS,
    NUMERIC,
    assert_exact,
    assert_sum_bound,
    assert_ulp,
    export_fn,
    run_onnx,
    values,
)

import amber as am
from amber.ops import REGISTRY

pytestmark = pytest.mark.onnx

SEEDS = (0, 1, 2)


def prim(name: str, **attrs: Any) -> Any:
    p = REGISTRY[name]
    return lambda *xs: p(*xs, **attrs)


def supported(op: str, dtype: str) -> bool:
    return (op, dtype) not in am.onnx.REFUSED_DTYPES


def check(op: str, inputs: list[np.ndarray], tol: str = "exact", *, attrs: Any = None,
          abs_sum: Any = None, n_terms: int = 0) -> None:
    """Export ``op`` applied to ``inputs``, run both runtimes, compare."""
    attrs = attrs or {}
    program = export_fn(prim(op, **attrs), inputs)
    want = program.run("forward", *inputs)[0]
    got = run_onnx(program, inputs)[0]
    what = f"{op}{attrs} on {[str(a.dtype) for a in inputs]}"
    if tol == "exact" or want.dtype.kind != "f":
        assert_exact(got, want, what)
    elif tol == "ulp":
        assert_ulp(got, want, 4.0, what)
    else:
        assert_sum_bound(got, want, abs_sum, n_terms, what)


# ----------------------------------------------------------------------------- unary

UNARY_FLOAT = [n for n, p in REGISTRY.items()
               if p.kind == "unary" and tuple(d.name for d in p.dtypes or ()) == FLOATS]
TRANSCENDENTAL = {n for n in UNARY_FLOAT if REGISTRY[n].accuracy == "ulp4"}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", UNARY_FLOAT)
def test_unary_float(op: str, dtype: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    if not supported(op, dtype):  # refused, with the reason, instead of approximated
        program = export_fn(prim(op), [values(rng, dtype, (3,))])
        with pytest.raises(am.onnx.OnnxExportError, match=f"{op} on {dtype}"):
            run_onnx(program, [values(rng, dtype, (3,))])
        return
    x = values(rng, dtype, (7, 41), low=-30, high=30)
    if op in ("exp",):
        x[0, :6] = np.array([-100, -745, 88.5, 710, -88, 700], dtype=dtype)
    if op in TRANSCENDENTAL - {"exp", "log"}:
        x[1, :6] = np.array([1e-40, -1e-30, 1e-8, 20, -40, 1e4], dtype=dtype)
    if op == "log":
        x = np.abs(x)
        x[0, :3] = np.array([1e-40, 0.0, -1.0], dtype=dtype)
    check(op, [x], "ulp" if op in TRANSCENDENTAL else "exact")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("op", ["neg", "abs", "sign"])
def test_unary_numeric(op: str, dtype: str, seed: int) -> None:
    x = values(np.random.default_rng(seed), dtype, (5, 13))
    check(op, [x])


def test_logical_not() -> None:
    check("logical_not", [values(np.random.default_rng(0), "bool", (4, 9))])


# ----------------------------------------------------------------------------- binary

SHAPES = [((3, 4), (3, 4)), ((2, 1, 5), (4, 1)), ((), (3,)), ((6,), ())]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_arithmetic(op: str, dtype: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for sx, sy in SHAPES:
        x, y = values(rng, dtype, sx), values(rng, dtype, sy)
        if op == "div" and dtype in INTS and y.size:
            y.reshape(-1)[0] = 0  # x div 0 = 0
        check(op, [x, y])


@pytest.mark.parametrize("dtype", INTS)
def test_integer_div_edge_cases(dtype: str) -> None:
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    x = np.array([-7, 7, -7, 7, 0, 5, lo, lo, hi, lo, -1, 1, -6, 6], dtype=dtype)
    y = np.array([2, -2, -2, 2, 0, 0, -1, 1, -1, 3, 3, -3, 3, -3], dtype=dtype)
    check("div", [x, y])
    program = export_fn(prim("div"), [x, y])
    want = np.array([-4, -4, 3, 3, 0, 0, lo, lo, -hi, lo // 3, -1, -1, -2, -2], dtype=dtype)
    assert_exact(run_onnx(program, [x, y])[0], want, "div")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_pow(dtype: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = values(rng, dtype, (6, 10), low=-4, high=4)
    y = values(rng, dtype, (6, 10), low=-4, high=4)
    y[0] = np.array([0, -0.0, 2, 3, 0.5, -1, -3, np.nan, 1, 2], dtype=dtype)
    x[0] = np.array([np.nan, np.nan, -3, -2, -4, 0, -0.0, 1, np.inf, -np.inf], dtype=dtype)
    y[1, :4] = np.floor(y[1, :4])
    check("pow", [x, y], "ulp")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("op", ["maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"])
def test_compare_and_extrema(op: str, dtype: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for sx, sy in SHAPES:
        x, y = values(rng, dtype, sx), values(rng, dtype, sy)
        if x.size and y.size and dtype != "bool":
            y.reshape(-1)[-1] = x.reshape(-1)[-1]  # ties
        check(op, [x, y])


@pytest.mark.parametrize("op", ["logical_and", "logical_or"])
def test_logical(op: str) -> None:
    rng = np.random.default_rng(3)
    check(op, [values(rng, "bool", (3, 5)), values(rng, "bool", (5,))])


@pytest.mark.parametrize("dtype", ALL)
def test_where(dtype: str) -> None:
    rng = np.random.default_rng(4)
    c = values(rng, "bool", (3, 1, 5))
    check("where", [c, values(rng, dtype, (4, 5)), values(rng, dtype, (1,))])


@pytest.mark.parametrize("src", ALL)
@pytest.mark.parametrize("dst", ALL)
def test_cast(src: str, dst: str) -> None:
    rng = np.random.default_rng(5)
    x = values(rng, src, (6, 11))
    if src in FLOATS:
        x[0, :11] = np.array([np.nan, 3e9, -3e9, 2.7, -2.7, np.inf, -np.inf, 2.0**31,
                              -2.0**31, 9.3e18, -9.3e18], dtype=src)
        x[1, :4] = np.array([2.0**63, -2.0**63, 1e300 if src == "float64" else 3e38,
                             -0.0], dtype=src)
    check("cast", [x], attrs={"dtype": dst})


# ----------------------------------------------------------------------------- linear algebra

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", NUMERIC)
def test_matmul(dtype: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for sa, sb in [((5, 7), (7, 3)), ((2, 1, 4, 6), (3, 6, 2)), ((3, 0), (0, 4))]:
        a = values(rng, dtype, sa, special=dtype in INTS)
        b = values(rng, dtype, sb, special=dtype in INTS)
        abs_sum = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64) \
            if dtype in FLOATS else None
        check("matmul", [a, b], "sum", abs_sum=abs_sum, n_terms=sa[-1])


CONV_CASES = [
    # x shape, w shape, stride, padding (t, b, l, r), dilation, groups
    ((2, 3, 9, 8), (4, 3, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ((1, 4, 11, 10), (6, 2, 3, 2), (2, 3), (1, 2, 0, 1), (1, 2), 2),
    ((3, 2, 7, 7), (2, 1, 2, 3), (3, 2), (2, 0, 1, 1), (2, 1), 2),
    ((1, 3, 6, 5), (3, 3, 1, 1), (2, 2), (0, 1, 1, 0), (1, 1), 1),
]


def _conv_attrs(stride: Any, padding: Any, dilation: Any, groups: int) -> dict[str, Any]:
    return {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_family(case: Any, dtype: str) -> None:
    xs, ws, stride, padding, dilation, groups = case
    rng = np.random.default_rng(6)
    x = values(rng, dtype, xs, special=False)
    w = values(rng, dtype, ws, special=False)
    attrs = _conv_attrs(stride, padding, dilation, groups)
    conv = REGISTRY["conv2d"].impl
    y = conv(x, w, **attrs)
    abs_y = conv(np.abs(x), np.abs(w), **attrs)
    n = ws[1] * ws[2] * ws[3]
    check("conv2d", [x, w], "sum", attrs=attrs, abs_sum=abs_y, n_terms=n)

    g = values(rng, dtype, y.shape, special=False)
    gi = dict(attrs, input_hw=(xs[2], xs[3]))
    abs_dx = REGISTRY["conv2d_input_grad"].impl(np.abs(g), np.abs(w), **gi)
    check("conv2d_input_grad", [g, w], "sum", attrs=gi, abs_sum=abs_dx, n_terms=n)

    gw = dict(attrs, kernel_hw=(ws[2], ws[3]))
    abs_dw = REGISTRY["conv2d_weight_grad"].impl(np.abs(x), np.abs(g), **gw)
    check("conv2d_weight_grad", [x, g], "sum", attrs=gw, abs_sum=abs_dw,
          n_terms=xs[0] * y.shape[2] * y.shape[3])


# ----------------------------------------------------------------------------- reductions

AXES = [(), (0,), (1,), (0, 2), (0, 1, 2)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", NUMERIC)
def test_sum(dtype: str, keepdims: bool) -> None:
    rng = np.random.default_rng(7)
    x = values(rng, dtype, (3, 4, 5), special=dtype in INTS)
    for axes in AXES:
        abs_sum = np.abs(x).astype(np.float64).sum(axis=axes, keepdims=keepdims)
        check("sum", [x], "sum", attrs={"axes": axes, "keepdims": keepdims},
              abs_sum=abs_sum, n_terms=int(np.prod([x.shape[a] for a in axes])))
    e = np.zeros((2, 0, 3), dtype=dtype)
    check("sum", [e], attrs={"axes": (1,), "keepdims": keepdims})


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min(op: str, dtype: str, keepdims: bool) -> None:
    rng = np.random.default_rng(8)
    x = values(rng, dtype, (3, 4, 5))
    for axes in AXES:
        check(op, [x], attrs={"axes": axes, "keepdims": keepdims})


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin(op: str, dtype: str, keepdims: bool) -> None:
    rng = np.random.default_rng(9)
    x = values(rng, dtype, (4, 6, 5))
    if dtype in FLOATS:
        x[0, :, 0] = [1, np.nan, 3, np.nan, np.inf, 2]  # first NaN wins
        x[1, :, 1] = [np.inf, 1, np.nan, 0, 0, 0]
    if dtype != "bool":
        x[2, :, 2] = [3, 3, 1, 3, 0, 3]  # first of ties
    for axis in range(3):
        check(op, [x], attrs={"axis": axis, "keepdims": keepdims})


# ----------------------------------------------------------------------------- data movement

@pytest.mark.parametrize("dtype", ALL)
def test_shape_ops(dtype: str) -> None:
    rng = np.random.default_rng(10)
    x = values(rng, dtype, (2, 3, 4))
    check("reshape", [x], attrs={"shape": (4, 6)})
    check("reshape", [x], attrs={"shape": (24,)})
    check("reshape", [np.zeros((0, 3), dtype=dtype)], attrs={"shape": (3, 0)})
    check("transpose", [x], attrs={"perm": (2, 0, 1)})
    check("broadcast_to", [values(rng, dtype, (3, 1))], attrs={"shape": (2, 3, 4)})
    check("broadcast_to", [values(rng, dtype, (1,))], attrs={"shape": (0, 2)})
    check("concat", [x, values(rng, dtype, (2, 1, 4)), values(rng, dtype, (2, 2, 4))],
          attrs={"axis": 1})
    check("concat", [x], attrs={"axis": 0})


@pytest.mark.parametrize("dtype", ALL)
def test_slice(dtype: str) -> None:
    rng = np.random.default_rng(11)
    x = values(rng, dtype, (5, 7, 4))
    for starts, stops, steps in [((0, 0, 0), (5, 7, 4), (1, 1, 1)),
                                 ((1, 2, 0), (4, 7, 4), (2, 3, 1)),
                                 ((2, 3, 1), (2, 3, 4), (1, 1, 2)),
                                 ((0, 6, 3), (5, 7, 4), (4, 5, 9))]:
        check("slice", [x], attrs={"starts": starts, "stops": stops, "steps": steps})


@pytest.mark.parametrize("dtype", ALL)
def test_pad(dtype: str) -> None:
    rng = np.random.default_rng(12)
    x = values(rng, dtype, (3, 4))
    for lo, hi, interior, value in [((1, 0), (0, 2), (0, 0), 0.0),
                                    ((0, 1), (2, 0), (2, 1), -1.5),
                                    ((2, 2), (1, 1), (1, 3), np.nan),
                                    ((0, 0), (0, 0), (0, 0), 7.0),
                                    ((1, 1), (1, 1), (0, 0), 1e300),
                                    ((0, 0), (0, 0), (1, 0), -np.inf)]:
        check("pad", [x], attrs={"lo": lo, "hi": hi, "interior": interior, "value": value})
    check("pad", [np.zeros((0, 2), dtype=dtype)],
          attrs={"lo": (1, 0), "hi": (1, 1), "interior": (3, 2), "value": 2.0})


@pytest.mark.parametrize("idx_dtype", INTS)
@pytest.mark.parametrize("dtype", ALL)
def test_take(dtype: str, idx_dtype: str) -> None:
    rng = np.random.default_rng(13)
    x = values(rng, dtype, (5, 6, 3))
    for axis in range(3):
        n = x.shape[axis]
        idx = rng.integers(-n, n, (2, 4)).astype(idx_dtype)
        check("take", [x, idx], attrs={"axis": axis})
        check("take", [x, np.array(-1, dtype=idx_dtype)], attrs={"axis": axis})


def test_take_out_of_range_is_an_error() -> None:
    x = np.arange(5, dtype=np.float32)
    program = export_fn(prim("take", axis=0), [x, np.array([0, 1], dtype=np.int64)])
    with pytest.raises(Exception, match=r"(?i)out of|bound|range"):
        run_onnx(program, [x, np.array([0, 5], dtype=np.int64)])


@pytest.mark.parametrize("idx_dtype", INTS)
@pytest.mark.parametrize("dtype", NUMERIC)
def test_scatter_add(dtype: str, idx_dtype: str) -> None:
    rng = np.random.default_rng(14)
    base = values(rng, dtype, (4, 5, 3), special=dtype in INTS)
    for axis in range(3):
        n = base.shape[axis]
        idx = rng.integers(-n, n, (3, 2)).astype(idx_dtype)
        idx.reshape(-1)[:2] = [1, 1 - n]  # the same position twice: accumulates
        src_shape = base.shape[:axis] + idx.shape + base.shape[axis + 1:]
        src = values(rng, dtype, src_shape, special=dtype in INTS)
        abs_sum = REGISTRY["scatter_add"].impl(np.abs(base).astype(np.float64), idx,
                                               np.abs(src).astype(np.float64), axis=axis)
        check("scatter_add", [base, idx, src], "sum", attrs={"axis": axis},
              abs_sum=abs_sum, n_terms=1 + idx.size)
        one = np.array(-1, dtype=idx_dtype)  # a rank-0 index
        src0 = values(rng, dtype, base.shape[:axis] + base.shape[axis + 1:],
                      special=dtype in INTS)
        abs0 = REGISTRY["scatter_add"].impl(np.abs(base).astype(np.float64), one,
                                            np.abs(src0).astype(np.float64), axis=axis)
        check("scatter_add", [base, one, src0], "sum", attrs={"axis": axis},
              abs_sum=abs0, n_terms=2)



# ----------------------------------------------------------------------------- pooling

POOL_CASES = [
    # x shape, kernel_hw, stride, padding (t, b, l, r), dilation, ceil_mode
    ((2, 3, 7, 8), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),
    ((1, 2, 9, 7), (3, 2), (2, 3), (1, 0, 1, 1), (1, 1), True),
    ((1, 2, 8, 8), (2, 3), (1, 2), (0, 1, 1, 0), (2, 1), True),
    ((1, 1, 5, 5), (3, 3), (3, 3), (1, 1, 1, 1), (1, 1), True),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", POOL_CASES)
def test_pooling_family(case: Any, dtype: str) -> None:
    xs, k, stride, padding, dilation, ceil = case
    rng = np.random.default_rng(8)
    x = values(rng, dtype, xs)
    x.reshape(-1)[:4] = np.array([np.nan, np.inf, -np.inf, -0.0], dtype=dtype)
    mx = {"kernel_hw": k, "stride": stride, "padding": padding, "dilation": dilation,
          "ceil_mode": ceil}
    check("max_pool2d", [x], attrs=mx)
    y = REGISTRY["max_pool2d"].impl(x, **mx)
    g = values(rng, dtype, y.shape, special=False)
    xr = np.round(values(rng, dtype, xs, special=False))  # ties
    gk = REGISTRY["max_pool2d_grad"].impl
    check("max_pool2d_grad", [xr, g], "sum", attrs=mx, abs_sum=gk(xr, np.abs(g), **mx),
          n_terms=k[0] * k[1])
    if dilation != (1, 1):
        return
    for include in (True, False):
        av = {"kernel_hw": k, "stride": stride, "padding": padding, "ceil_mode": ceil,
              "count_include_pad": include}
        xf = values(rng, dtype, xs, special=False)
        ak = REGISTRY["avg_pool2d"].impl
        check("avg_pool2d", [xf], "sum", attrs=av, abs_sum=ak(np.abs(xf), **av),
              n_terms=k[0] * k[1] + 2)
        ag = dict(av, input_hw=xs[2:])
        gg = values(rng, dtype, ak(xf, **av).shape, special=False)
        gk2 = REGISTRY["avg_pool2d_grad"].impl
        check("avg_pool2d_grad", [gg], "sum", attrs=ag, abs_sum=gk2(np.abs(gg), **ag),
              n_terms=k[0] * k[1] + 2)
