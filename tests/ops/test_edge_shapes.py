"""Registry-wide hypothesis test: every primitive on random edge shapes (size-0 and
size-1 dims, 0-d tensors, broadcasting) and random dtypes, against the reference of its
first case in ``primitive_cases.py``, with every infer rule checked on the way.

``STRATEGIES`` must have an entry for every registered primitive."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from primitive_cases import ACCEPTS, cases_for

import amber as am
from amber.ops import REGISTRY
from amber.ops import pool as P
from helpers import assert_close, forward_tol, infer_checked, refs

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

Draw = st.DataObject
Sample = tuple[list[np.ndarray], dict[str, Any]]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)


def values(data: Draw, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.itemsize == 2 and refs.is_float(dt):  # float16, bfloat16: drawn as float32
        return values(data, "float32", shape).astype(dt)
    if dt.kind == "f":
        width = dt.itemsize * 8
        elems = st.floats(-6, 6, width=width) | st.sampled_from(
            [0.0, -0.0, math.nan, math.inf, -math.inf, 0.5, -1.0]) | st.floats(width=width)
    elif dt.kind in "iu":
        ii = np.iinfo(dt)
        elems = st.integers(max(-9, int(ii.min)), 9) | st.sampled_from(
            [int(ii.min), int(ii.max), 0, int(ii.max) if dt.kind == "u" else -1])
    else:
        elems = st.booleans()
    return data.draw(hnp.arrays(dt, shape, elements=elems))


def dtype_of(data: Draw, name: str) -> str:
    return data.draw(st.sampled_from(sorted(ACCEPTS[name])))


def unary(name: str) -> Callable[[Draw], Sample]:
    def sample(data: Draw) -> Sample:
        return [values(data, dtype_of(data, name), data.draw(SHAPES))], {}

    return sample


def binary(name: str) -> Callable[[Draw], Sample]:
    def sample(data: Draw) -> Sample:
        dt = dtype_of(data, name)
        shapes = data.draw(hnp.mutually_broadcastable_shapes(
            num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=3)).input_shapes
        return [values(data, dt, s) for s in shapes], {}

    return sample


def where(data: Draw) -> Sample:
    dt = dtype_of(data, "where")
    shapes = data.draw(hnp.mutually_broadcastable_shapes(
        num_shapes=3, min_dims=0, max_dims=3, min_side=0, max_side=3)).input_shapes
    return [values(data, "bool", shapes[0]), values(data, dt, shapes[1]),
            values(data, dt, shapes[2])], {}


def cast(data: Draw) -> Sample:
    x = values(data, dtype_of(data, "cast"), data.draw(SHAPES))
    return [x], {"dtype": data.draw(st.sampled_from(sorted(ACCEPTS["cast"])))}


def matmul(data: Draw) -> Sample:
    dt = dtype_of(data, "matmul")
    batch = data.draw(hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=2, min_side=0, max_side=2)).input_shapes
    m, k, n = (data.draw(st.integers(0, 3)) for _ in range(3))
    gen = values if np.dtype(dt).kind in "iu" else _floats
    a, b = gen(data, dt, batch[0] + (m, k)), gen(data, dt, batch[1] + (k, n))
    return [a, b], {}


def _conv_config(data: Draw) -> tuple[tuple, tuple, dict[str, Any], tuple]:
    groups = data.draw(st.sampled_from([1, 2]))
    cg, og = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    stride = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    dilation = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    padding = tuple(data.draw(st.integers(0, 2)) for _ in range(4))
    eh, ew = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    h = data.draw(st.integers(max(1, eh - padding[0] - padding[1]), 6))
    w = data.draw(st.integers(max(1, ew - padding[2] - padding[3]), 6))
    n = data.draw(st.integers(0, 2))
    oh = (h + padding[0] + padding[1] - eh) // stride[0] + 1
    ow = (w + padding[2] + padding[3] - ew) // stride[1] + 1
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return (n, cg * groups, h, w), (og * groups, cg, kh, kw), attrs, (n, og * groups, oh, ow)


def _floats(data: Draw, dt: str, shape: tuple[int, ...]) -> np.ndarray:
    if np.dtype(dt).itemsize == 2:  # float16, bfloat16: drawn as float32
        return _floats(data, "float32", shape).astype(dt)
    width = 8 * np.dtype(dt).itemsize
    return data.draw(hnp.arrays(dt, shape, elements=st.floats(-4, 4, width=width)))


def conv2d(data: Draw) -> Sample:
    dt = dtype_of(data, "conv2d")
    xs, ws, attrs, _ = _conv_config(data)
    return [_floats(data, dt, xs), _floats(data, dt, ws)], attrs


def conv2d_input_grad(data: Draw) -> Sample:
    dt = dtype_of(data, "conv2d_input_grad")
    xs, ws, attrs, ys = _conv_config(data)
    return [_floats(data, dt, ys), _floats(data, dt, ws)], {"input_hw": xs[2:], **attrs}


def conv2d_weight_grad(data: Draw) -> Sample:
    dt = dtype_of(data, "conv2d_weight_grad")
    xs, ws, attrs, ys = _conv_config(data)
    return [_floats(data, dt, xs), _floats(data, dt, ys)], {"kernel_hw": ws[2:], **attrs}


def _pool_config(data: Draw, avg: bool) -> tuple[tuple, dict[str, Any], tuple]:
    k = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    stride = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    dil = (1, 1) if avg else (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    ext = [dil[i] * (k[i] - 1) + 1 for i in (0, 1)]
    pad = tuple(data.draw(st.integers(0, ext[i // 2] // 2)) for i in range(4))
    ceil = data.draw(st.booleans())
    h = data.draw(st.integers(max(1, ext[0] - pad[0] - pad[1]), 6))
    w = data.draw(st.integers(max(1, ext[1] - pad[2] - pad[3]), 6))
    xs = (data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)), h, w)
    attrs: dict[str, Any] = {"kernel_hw": k, "stride": stride, "padding": pad, "ceil_mode": ceil}
    if avg:
        attrs["count_include_pad"] = data.draw(st.booleans())
    else:
        attrs["dilation"] = dil
    oh, ow = (P.out_size(n, k[i], pad[2 * i], pad[2 * i + 1], stride[i], dil[i], ceil)
              for i, n in enumerate((h, w)))
    return xs, attrs, (xs[0], xs[1], oh, ow)


def max_pool2d(data: Draw) -> Sample:
    xs, attrs, _ = _pool_config(data, False)
    return [values(data, dtype_of(data, "max_pool2d"), xs)], attrs


def max_pool2d_grad(data: Draw) -> Sample:
    dt = dtype_of(data, "max_pool2d_grad")
    xs, attrs, ys = _pool_config(data, False)
    return [values(data, dt, xs), _floats(data, dt, ys)], attrs


def avg_pool2d(data: Draw) -> Sample:
    xs, attrs, _ = _pool_config(data, True)
    return [_floats(data, dtype_of(data, "avg_pool2d"), xs)], attrs


def avg_pool2d_grad(data: Draw) -> Sample:
    xs, attrs, ys = _pool_config(data, True)
    return [_floats(data, dtype_of(data, "avg_pool2d_grad"), ys)], {"input_hw": xs[2:], **attrs}


def reduction(name: str) -> Callable[[Draw], Sample]:
    def sample(data: Draw) -> Sample:
        x = values(data, dtype_of(data, name), data.draw(SHAPES))
        axes = tuple(sorted(data.draw(st.sets(st.integers(0, max(x.ndim - 1, 0)),
                                              max_size=x.ndim))))
        return [x], {"axes": axes, "keepdims": data.draw(st.booleans())}

    return sample


def arg_reduction(name: str) -> Callable[[Draw], Sample]:
    def sample(data: Draw) -> Sample:
        shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))
        x = values(data, dtype_of(data, name), shape)
        return [x], {"axis": data.draw(st.integers(0, x.ndim - 1)),
                     "keepdims": data.draw(st.booleans())}

    return sample


def reshape(data: Draw) -> Sample:
    x = values(data, dtype_of(data, "reshape"), data.draw(SHAPES))
    n, target = x.size, []
    for _ in range(data.draw(st.integers(0, 3))):
        d = data.draw(st.sampled_from([d for d in (1, 2, 3) if n % d == 0] if n else [0, 1, 2]))
        target.append(d)
        n = n // d if d else 0
    if math.prod(target) != x.size:
        target.append(x.size // math.prod(target) if math.prod(target) else 0)
    if math.prod(target) != x.size:
        target = [x.size]
    return [x], {"shape": tuple(target)}


def transpose(data: Draw) -> Sample:
    x = values(data, dtype_of(data, "transpose"), data.draw(SHAPES))
    return [x], {"perm": tuple(data.draw(st.permutations(range(x.ndim))))}


def broadcast_to(data: Draw) -> Sample:
    x = values(data, dtype_of(data, "broadcast_to"), data.draw(SHAPES))
    lead = data.draw(st.lists(st.integers(0, 3), max_size=2))
    target = [data.draw(st.integers(0, 3)) if d == 1 else d for d in x.shape]
    return [x], {"shape": tuple(lead + target)}


def slice_(data: Draw) -> Sample:
    x = values(data, dtype_of(data, "slice"), data.draw(SHAPES))
    starts, stops, steps = [], [], []
    for n in x.shape:
        a = data.draw(st.integers(0, n))
        starts.append(a)
        stops.append(data.draw(st.integers(a, n)))
        steps.append(data.draw(st.integers(1, 3)))
    return [x], {"starts": tuple(starts), "stops": tuple(stops), "steps": tuple(steps)}


def pad(data: Draw) -> Sample:
    x = values(data, dtype_of(data, "pad"), data.draw(SHAPES))
    pads = [tuple(data.draw(st.integers(0, 2)) for _ in x.shape) for _ in range(3)]
    value = data.draw(st.sampled_from([0.0, 1.0, -2.5, math.nan, math.inf, 1e20]))
    return [x], {"lo": pads[0], "hi": pads[1], "interior": pads[2], "value": value}


def concat(data: Draw) -> Sample:
    dt = dtype_of(data, "concat")
    base = list(data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3)))
    axis = data.draw(st.integers(0, len(base) - 1))
    parts = []
    for _ in range(data.draw(st.integers(1, 3))):
        shape = list(base)
        shape[axis] = data.draw(st.integers(0, 3))
        parts.append(values(data, dt, tuple(shape)))
    return parts, {"axis": axis}


def _index(data: Draw, n: int) -> np.ndarray:
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0,
                                       max_side=3)) if n else (0,)
    dt = data.draw(st.sampled_from([np.int32, np.int64]))
    return data.draw(hnp.arrays(dt, shape, elements=st.integers(-n, n - 1) if n else
                                st.just(0)))


def take(data: Draw) -> Sample:
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))
    x = values(data, dtype_of(data, "take"), shape)
    axis = data.draw(st.integers(0, x.ndim - 1))
    return [x, _index(data, shape[axis])], {"axis": axis}


def scatter_add(data: Draw) -> Sample:
    dt = dtype_of(data, "scatter_add")
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))
    axis = data.draw(st.integers(0, len(shape) - 1))
    idx = _index(data, shape[axis])
    src_shape = shape[:axis] + idx.shape + shape[axis + 1:]
    gen = values if np.dtype(dt).kind in "iu" else _floats
    return [gen(data, dt, shape), idx, gen(data, dt, src_shape)], {"axis": axis}


def dim_value(data: Draw) -> Sample:
    return [], {"value": data.draw(st.integers(0, 2**62))}


STRATEGIES: dict[str, Callable[[Draw], Sample]] = {
    **{n: unary(n) for n, p in REGISTRY.items() if p.kind == "unary"},
    **{n: binary(n) for n, p in REGISTRY.items() if p.kind in ("binary", "compare")},
    "where": where, "cast": cast, "matmul": matmul, "conv2d": conv2d,
    "conv2d_input_grad": conv2d_input_grad, "conv2d_weight_grad": conv2d_weight_grad,
    "max_pool2d": max_pool2d, "max_pool2d_grad": max_pool2d_grad, "avg_pool2d": avg_pool2d,
    "avg_pool2d_grad": avg_pool2d_grad,
    **{n: reduction(n) for n in ("sum", "max", "min")},
    **{n: arg_reduction(n) for n in ("argmax", "argmin")},
    "reshape": reshape, "transpose": transpose, "broadcast_to": broadcast_to,
    "slice": slice_, "pad": pad, "concat": concat, "take": take,
    "scatter_add": scatter_add, "dim_value": dim_value,
}


def test_every_primitive_has_an_edge_shape_strategy() -> None:
    assert set(STRATEGIES) == set(REGISTRY), sorted(set(REGISTRY) ^ set(STRATEGIES))


def _empty_reduction(name: str, xs: list[np.ndarray], attrs: dict[str, Any]) -> bool:
    if name in ("max", "min"):
        return any(xs[0].shape[a] == 0 for a in attrs["axes"])
    if name in ("argmax", "argmin"):
        return xs[0].shape[attrs["axis"]] == 0
    return False


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_edge_shapes(name: str, data: Draw) -> None:
    xs, attrs = STRATEGIES[name](data)
    case = cases_for(name)[0]
    prim = REGISTRY[name]
    tensors = [am.tensor(x) for x in xs]
    if _empty_reduction(name, xs, attrs):
        with pytest.raises(am.ShapeError, match=name):
            prim(*tensors, **attrs)
        return
    with infer_checked():
        out = prim(*tensors, **attrs)
    want = np.asarray(case.ref(*xs, **attrs))
    assert out.dtype is am.as_dtype(want.dtype), (out.dtype, want.dtype)
    kind = "transcendental" if case.kind == "transcendental" else case.kind
    rtol, atol = forward_tol(want.dtype, kind)
    if kind == "accumulate" and refs.is_float(want.dtype):
        # Tolerance relative to the magnitude of the summed terms (docs/opset.md, sec. 5).
        mags = [np.abs(x) if refs.is_float(x.dtype) else x for x in xs]
        scale = np.asarray(case.ref(*mags, **attrs), dtype=np.float64)
        err = np.abs(out.numpy().astype(np.float64) - want.astype(np.float64))
        finite = np.isfinite(scale)
        assert np.all(err[finite] <= rtol * (scale[finite] + 1)), name
        return
    assert_close(out.numpy(), want, rtol=rtol, atol=atol,
                 ulp=4 if kind == "transcendental" else 0, what=name)
