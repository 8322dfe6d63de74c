"""Property tests (hypothesis): broadcasting over random compatible shapes (size-0,
size-1 and 0-d included), reductions over random dims, and shape-op round trips."""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import amber as am
from amber.ops import REGISTRY
from helpers import assert_close, check_grad, infer_checked, refs

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DTYPES = ("float32", "float64", "int32", "int64", "bool")
FAST = settings(max_examples=100, deadline=None)


def arrays(dtype: str, shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    dt = np.dtype(dtype)
    if dt.kind == "f":
        elems = st.floats(-8, 8, width=dt.itemsize * 8, allow_subnormal=False) | st.sampled_from(
            [0.0, -0.0, math.nan, math.inf, -math.inf])
    elif dt.kind == "i":
        ii = np.iinfo(dt)
        elems = st.integers(-9, 9) | st.sampled_from([int(ii.min), int(ii.max), -1, 0])
    else:
        elems = st.booleans()
    return hnp.arrays(dt, shape, elements=elems)


# --------------------------------------------------------------------------- broadcasting


def _int_or_float(op: Any) -> Any:
    def scalar(a: Any, b: Any, dt: np.dtype) -> Any:
        if dt.kind == "f":
            try:
                v = op(a, b)
            except ZeroDivisionError:
                v = math.nan if a == 0 or math.isnan(a) else math.copysign(
                    math.inf, a) * math.copysign(1.0, b)
            return refs.to_float(dt, v)
        if op is operator.truediv:
            return refs.floor_div_int(a, b, dt)
        return refs.wrap_int(op(int(a), int(b)), dt)

    return refs.elementwise(scalar)


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


BINARY: dict[str, tuple[Any, tuple[str, ...]]] = {
    "add": (_int_or_float(operator.add), DTYPES[:4]),
    "sub": (_int_or_float(operator.sub), DTYPES[:4]),
    "mul": (_int_or_float(operator.mul), DTYPES[:4]),
    "div": (_int_or_float(operator.truediv), DTYPES[:4]),
    "maximum": (refs.elementwise(lambda a, b, dt: math.nan if _nan(a) or _nan(b) else max(a, b)),
                DTYPES),
    "minimum": (refs.elementwise(lambda a, b, dt: math.nan if _nan(a) or _nan(b) else min(a, b)),
                DTYPES),
    "eq": (refs.elementwise(lambda a, b, dt: a == b, np.bool_), DTYPES),
    "lt": (refs.elementwise(lambda a, b, dt: a < b, np.bool_), DTYPES),
    "ge": (refs.elementwise(lambda a, b, dt: a >= b, np.bool_), DTYPES),
    "logical_or": (refs.elementwise(lambda a, b, dt: a or b, np.bool_), ("bool",)),
}
_PAIRS = [(op, dt) for op, (_, dts) in BINARY.items() for dt in dts]


@st.composite
def binary_case(draw: Any) -> tuple[str, np.ndarray, np.ndarray]:
    op, dt = draw(st.sampled_from(_PAIRS))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                    min_side=0, max_side=3))
    a = draw(arrays(dt, shapes.input_shapes[0]))
    b = draw(arrays(dt, shapes.input_shapes[1]))
    return op, a, b


@FAST
@given(binary_case())
def test_binary_broadcasting(case: tuple[str, np.ndarray, np.ndarray]) -> None:
    op, a, b = case
    with infer_checked():
        out = REGISTRY[op](am.tensor(a), am.tensor(b))
    want = BINARY[op][0](a, b)
    assert out.dtype is am.as_dtype(want.dtype)
    assert_close(out.numpy(), want, what=op)


def unbroadcast_ref(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum of g over every output position that reads each input position."""
    out = np.zeros(shape, dtype=np.float64)
    lead = g.ndim - len(shape)
    for idx in np.ndindex(*g.shape):
        src = tuple(0 if d == 1 else idx[lead + k] for k, d in enumerate(shape))
        out[src] += g[idx]
    return out


@FAST
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0,
                                         max_side=3),
       st.sampled_from(["add", "sub", "mul"]), st.integers(0, 2**31 - 1))
def test_binary_broadcast_gradients(shapes: Any, op: str, seed: int) -> None:
    """Cotangents are summed back to each operand's own shape (size-0/1 dims, 0-d)."""
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    ta, tb = am.tensor(a, requires_grad=True), am.tensor(b, requires_grad=True)
    out = REGISTRY[op](ta, tb)
    ct = rng.standard_normal(out.shape)
    ga, gb = am.autograd.grad(out, [ta, tb], grad_outputs=am.tensor(ct))
    bb = refs.broadcast_to(b, shapes.result_shape)
    ba = refs.broadcast_to(a, shapes.result_shape)
    da, db = {"add": (ct, ct), "sub": (ct, -ct), "mul": (ct * bb, ct * ba)}[op]
    assert ga.shape == sa and gb.shape == sb
    assert_close(ga.numpy(), unbroadcast_ref(da, sa), rtol=1e-12, atol=1e-12)
    assert_close(gb.numpy(), unbroadcast_ref(db, sb), rtol=1e-12, atol=1e-12)


@FAST
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0,
                                         max_side=3))
def test_front_end_broadcasts_with_python_scalars_and_tensors(shapes: Any) -> None:
    sa, sb = shapes.input_shapes
    a, b = am.ones(*sa), am.full(sb, 2.0)
    assert (a + b).shape == shapes.result_shape
    assert (a * 3).shape == sa and (2 - b).shape == sb


@FAST
@given(st.data())
def test_incompatible_shapes_raise_shape_error(data: Any) -> None:
    n = data.draw(st.integers(2, 4))
    m = data.draw(st.integers(2, 4).filter(lambda v: v != n))
    extra = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    with pytest.raises(am.ShapeError, match=r"add.*\(.*\).*\(.*\)"):
        am.zeros(*extra, n) + am.zeros(m)


# --------------------------------------------------------------------------- reductions


@st.composite
def reduction_case(draw: Any) -> tuple[np.ndarray, list[int] | None, bool]:
    dt = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    x = draw(arrays(dt, shape))
    if draw(st.booleans()) or x.ndim == 0:
        dims = None
    else:
        dims = draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, max_size=x.ndim,
                             unique=True))
        dims = [d - x.ndim if draw(st.booleans()) else d for d in dims]  # negative dims too
    return x, dims, draw(st.booleans())


def _axes(x: np.ndarray, dims: list[int] | None) -> tuple[int, ...]:
    return tuple(range(x.ndim)) if dims is None else tuple(sorted(d % x.ndim for d in dims))


@FAST
@given(reduction_case())
def test_sum_over_random_dims(case: tuple[np.ndarray, list[int] | None, bool]) -> None:
    x, dims, keep = case
    with infer_checked():
        out = am.sum(am.tensor(x), dim=dims, keepdim=keep)
    # bool and int32 sums accumulate in int64 (as in PyTorch)
    xs = x.astype(np.int64) if x.dtype in (np.bool_, np.int32) else x
    want = refs.reduce_sum(xs, _axes(x, dims), keep)
    assert out.dtype is am.as_dtype(want.dtype)
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    assert_close(out.numpy(), want, rtol=tol, atol=tol, what="sum")


def test_sum_of_empty_is_zero() -> None:
    assert am.sum(am.zeros(0)).item() == 0.0
    assert am.sum(am.zeros(0, 3, dtype=am.int32), dim=0).tolist() == [0, 0, 0]
    assert am.sum(am.zeros(2, 0), dim=1, keepdim=True).shape == (2, 1)


@FAST
@given(reduction_case(), st.sampled_from(["max", "min"]))
def test_max_min_over_random_dims(case: tuple[np.ndarray, list[int] | None, bool],
                                  which: str) -> None:
    x, dims, keep = case
    axes = _axes(x, dims)
    fn = am.amax if which == "max" else am.amin
    if any(x.shape[a] == 0 for a in axes):
        with pytest.raises(am.ShapeError, match=which):
            fn(am.tensor(x), dim=dims, keepdim=keep)
        return
    with infer_checked():
        out = fn(am.tensor(x), dim=dims, keepdim=keep)
    ref = refs.reduce_max if which == "max" else refs.reduce_min
    assert_close(out.numpy(), ref(x, axes, keep), what=which)


@FAST
@given(reduction_case())
def test_argmax_over_random_dim(case: tuple[np.ndarray, list[int] | None, bool]) -> None:
    x, dims, keep = case
    if dims is None:
        if x.size == 0:
            with pytest.raises(am.ShapeError):
                am.argmax(am.tensor(x))
            return
        got = am.argmax(am.tensor(x))
        assert got.item() == int(refs.argmax(x.reshape(-1), 0, False))
        return
    d = dims[0]
    if x.shape[d] == 0:
        with pytest.raises(am.ShapeError):
            am.argmax(am.tensor(x), dim=d)
        return
    got = am.argmax(am.tensor(x), dim=d, keepdim=keep)
    assert got.dtype is am.int64
    assert_close(got.numpy(), refs.argmax(x, d % x.ndim, keep))


# --------------------------------------------------------------------------- round trips


@st.composite
def tensor_and_shape(draw: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3))
    x = draw(arrays(draw(st.sampled_from(DTYPES)), shape))
    n = x.size
    # A random factorisation of n as the target shape.
    target: list[int] = []
    rest = n
    for _ in range(draw(st.integers(0, 3))):
        divisors = [d for d in range(1, 4) if rest % d == 0] if rest else [0, 1, 2]
        d = draw(st.sampled_from(divisors))
        target.append(d)
        rest = rest // d if d else 0
    if rest != 1 or not target:
        target.append(rest)
    if math.prod(target) != n:
        target = [n]
    return x, tuple(target)


@FAST
@given(tensor_and_shape())
def test_reshape_round_trip(case: tuple[np.ndarray, tuple[int, ...]]) -> None:
    x, target = case
    t = am.tensor(x)
    with infer_checked():
        y = am.reshape(t, target)
        back = am.reshape(y, x.shape)
    assert y.shape == target
    assert_close(y.numpy(), refs.reshape(x, target))
    assert_close(back.numpy(), x)


@FAST
@given(st.data())
def test_transpose_round_trip(data: Any) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3))
    x = data.draw(arrays("float64", shape))
    perm = data.draw(st.permutations(range(x.ndim)))
    inv = [perm.index(i) for i in range(x.ndim)]
    with infer_checked():
        y = am.permute(am.tensor(x), perm)
        back = am.permute(y, inv)
    assert_close(y.numpy(), refs.transpose(x, perm))
    assert_close(back.numpy(), x)


@FAST
@given(st.data())
def test_slice_then_pad_restores_the_selected_elements(data: Any) -> None:
    """pad(slice(x), lo=start, hi=..., interior=step-1) puts every selected element back
    at its place, zeros elsewhere: the relation between the two primitives."""
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5))
    x = data.draw(arrays("int64", shape))
    starts, stops, steps = [], [], []
    for n in shape:
        a = data.draw(st.integers(0, n))
        b = data.draw(st.integers(a, n))
        starts.append(a)
        stops.append(b)
        steps.append(data.draw(st.integers(1, 3)))
    with infer_checked():
        s = REGISTRY["slice"](am.tensor(x), starts=tuple(starts), stops=tuple(stops),
                              steps=tuple(steps))
    assert_close(s.numpy(), refs.slice_(x, starts, stops, steps))
    lo, hi = [], []
    for a, st_, k, n in zip(starts, steps, s.shape, shape):
        lo.append(a)
        hi.append(n - (a + (k - 1) * st_ + 1) if k else n - a)
    with infer_checked():
        p = REGISTRY["pad"](s, lo=tuple(lo), hi=tuple(hi), interior=tuple(v - 1 for v in steps),
                            value=0.0)
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, b, c) for a, b, c in zip(starts, stops, steps))] = True
    assert_close(p.numpy(), np.where(mask, x, 0))


@FAST
@given(st.data())
def test_concat_then_split_round_trip(data: Any) -> None:
    ndim = data.draw(st.integers(1, 3))
    base = list(data.draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=0,
                                           max_side=3)))
    axis = data.draw(st.integers(-ndim, ndim - 1))
    dt = data.draw(st.sampled_from(DTYPES))
    parts = []
    for _ in range(data.draw(st.integers(1, 4))):
        shape = list(base)
        shape[axis] = data.draw(st.integers(0, 3))
        parts.append(data.draw(arrays(dt, tuple(shape))))
    with infer_checked():
        joined = am.cat([am.tensor(p) for p in parts], dim=axis)
        pieces = am.split(joined, [p.shape[axis] for p in parts], dim=axis)
    assert_close(joined.numpy(), refs.concat(*parts, axis=axis % ndim))
    for got, want in zip(pieces, parts):
        assert_close(got.numpy(), want)


@FAST
@given(st.data())
def test_take_with_a_permutation_round_trips(data: Any) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = data.draw(arrays("float32", shape))
    axis = data.draw(st.integers(0, len(shape) - 1))
    perm = np.array(data.draw(st.permutations(range(shape[axis]))), dtype=np.int64)
    neg = perm - shape[axis] * data.draw(st.integers(0, 1))  # negative indices count from end
    inv = np.argsort(perm)
    with infer_checked():
        y = REGISTRY["take"](am.tensor(x), am.tensor(neg), axis=axis)
        back = REGISTRY["take"](y, am.tensor(inv), axis=axis)
    assert_close(y.numpy(), refs.take(x, neg, axis))
    assert_close(back.numpy(), x)


@FAST
@given(st.data())
def test_scatter_add_is_the_transpose_of_take(data: Any) -> None:
    """<take(x, i), y> == <x, scatter_add(0, i, y)>, exactly (integers)."""
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = data.draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    idx = data.draw(hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0,
                                                           max_side=3),
                               elements=st.integers(-n, n - 1)))
    x = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(-50, 50)))
    y_shape = shape[:axis] + idx.shape + shape[axis + 1:]
    y = data.draw(hnp.arrays(np.int64, y_shape, elements=st.integers(-50, 50)))
    with infer_checked():
        taken = REGISTRY["take"](am.tensor(x), am.tensor(idx), axis=axis)
        scattered = REGISTRY["scatter_add"](am.zeros(*shape, dtype=am.int64), am.tensor(idx),
                                            am.tensor(y), axis=axis)
    assert int(np.sum(taken.numpy() * y)) == int(np.sum(x * scattered.numpy()))
    assert_close(scattered.numpy(), refs.scatter_add(np.zeros(shape, np.int64), idx, y, axis))


@pytest.mark.parametrize("bad", [3, -4, 100])
def test_take_and_scatter_out_of_range_raise(bad: int) -> None:
    x = am.arange(3)
    with pytest.raises(am.OutOfRangeError, match="out of range"):
        REGISTRY["take"](x, am.tensor([0, bad]), axis=0)
    with pytest.raises(am.OutOfRangeError, match="out of range"):
        REGISTRY["scatter_add"](x, am.tensor([bad]), am.tensor([1]), axis=0)


# --------------------------------------------------------------------------- unary floats

def _unary_ref(name: str) -> Any:
    import primitive_cases as pc

    return pc.UNARY_FLOAT[name][0]


def _unary_floats() -> list[str]:
    import primitive_cases as pc

    return sorted(pc.UNARY_FLOAT)


@FAST
@given(st.sampled_from(_unary_floats()),
       st.sampled_from(["float32", "float64"]), st.data())
def test_unary_floats_over_the_whole_range(name: str, dtype: str, data: Any) -> None:
    """Any finite or special input: 4 ULP of the correctly rounded value (exact for sqrt
    and floor), as docs/opset.md requires."""
    width = 32 if dtype == "float32" else 64
    x = data.draw(hnp.arrays(dtype, st.integers(0, 6),
                             elements=st.floats(width=width, allow_subnormal=True)))
    got = REGISTRY[name](am.tensor(x)).numpy()
    ref = _unary_ref(name)
    want = np.array([refs.to_float(dtype, ref(float(v))) for v in x], dtype=dtype)
    exact = REGISTRY[name].accuracy == "exact"
    assert_close(got, want, ulp=0 if exact else 4, what=name)


@FAST
@given(st.sampled_from(["float32", "float64"]), st.sampled_from(["int32", "int64", "bool"]),
       st.data())
def test_float_to_int_and_bool_casts_over_the_whole_range(src: str, dst: str,
                                                          data: Any) -> None:
    width = 32 if src == "float32" else 64
    x = data.draw(hnp.arrays(src, st.integers(0, 8), elements=st.floats(width=width)))
    got = REGISTRY["cast"](am.tensor(x), dtype=dst).numpy()
    want = np.array([refs.cast_scalar(float(v), src, dst) for v in x], dtype=dst)
    assert_close(got, want, what=f"cast {src}->{dst}")


# --------------------------------------------------------------------------- random-shape VJPs


@settings(max_examples=20, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, min_side=1,
                                         max_side=2),
       st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_matmul_gradients_with_broadcast_batches(batch: Any, m: int, k: int, n: int,
                                                 seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(batch.input_shapes[0] + (m, k))
    b = rng.standard_normal(batch.input_shapes[1] + (k, n))
    check_grad(lambda x, y: REGISTRY["matmul"](x, y), [a, b])


@settings(max_examples=20, deadline=None)
@given(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3), st.data())
def test_reduction_gradients_over_random_axes(shape: tuple[int, ...], data: Any) -> None:
    n = int(np.prod(shape))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    x = (rng.permutation(n) * 0.3 + rng.uniform(0, 0.1, n)).reshape(shape)  # no ties
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, max(len(shape) - 1, 0)),
                                          max_size=len(shape)))))
    keep = data.draw(st.booleans())
    for name in ("sum", "max", "min"):
        check_grad(lambda t, nm=name: REGISTRY[nm](t, axes=axes, keepdims=keep), [x])


@settings(max_examples=20, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=2, min_side=0,
                                         max_side=2), st.integers(0, 2**31 - 1))
def test_where_gradients_with_broadcasting(shapes: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sc, sx, sy = shapes.input_shapes
    c = rng.random(sc) < 0.5
    check_grad(lambda x, y: REGISTRY["where"](am.tensor(c), x, y),
               [rng.standard_normal(sx), rng.standard_normal(sy)])


# --------------------------------------------------------------------------- storage dtypes

STORAGE = {"float16": "float32", "bfloat16": "float32", "int8": "int32", "uint8": "int32",
           "int16": "int32"}
"""Each opset-5 storage dtype and the dtype its ops compute in (docs/opset.md 1.1.1)."""


def storage_arrays(dtype: str, shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """Arrays of a storage dtype, drawn in its compute dtype and rounded (or wrapped)."""
    wide = STORAGE[dtype]
    return arrays(wide, shape).map(lambda a: storage_cast(a, dtype))


def storage_cast(a: np.ndarray, dtype: str) -> np.ndarray:
    """The single rounding (floats) or two's-complement wrap (integers) to ``dtype``."""
    dt = am.as_dtype(dtype).np
    if np.dtype(a.dtype).kind in "iu" and np.dtype(dt).kind in "iu":
        return a.astype(np.int64).astype(dt)  # NumPy wraps integer narrowing
    with np.errstate(over="ignore"):
        return a.astype(dt)


@st.composite
def storage_binary_case(draw: Any) -> tuple[str, np.ndarray, np.ndarray]:
    dt = draw(st.sampled_from(sorted(STORAGE)))
    ops = [op for op, (_, dts) in BINARY.items() if STORAGE[dt] in dts]
    op = draw(st.sampled_from(ops))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                    min_side=0, max_side=3))
    return (op, draw(storage_arrays(dt, shapes.input_shapes[0])),
            draw(storage_arrays(dt, shapes.input_shapes[1])))


@FAST
@given(storage_binary_case())
def test_binary_ops_on_storage_dtypes_compute_wide_and_round_once(
        case: tuple[str, np.ndarray, np.ndarray]) -> None:
    op, a, b = case
    storage = am.tensor(a).dtype.name
    wide = np.dtype(STORAGE[storage])
    with infer_checked():
        out = REGISTRY[op](am.tensor(a), am.tensor(b))
    want = BINARY[op][0](a.astype(wide), b.astype(wide))
    if want.dtype != np.bool_:
        want = storage_cast(want, storage)
    assert out.dtype is am.as_dtype(want.dtype), (op, storage)
    assert_close(out.numpy(), want, what=f"{op} {storage}")


@FAST
@given(st.sampled_from(sorted(STORAGE)), st.data())
def test_sum_and_max_of_storage_dtypes(storage: str, data: Any) -> None:
    """Floats sum in float32 and round once; integers sum in int64 (as in PyTorch);
    max is exact in the storage dtype."""
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = data.draw(storage_arrays(storage, shape))
    dim = data.draw(st.integers(0, x.ndim - 1))
    with infer_checked():
        total = am.sum(am.tensor(x), dim=dim)
        top = am.amax(am.tensor(x), dim=dim)
    if STORAGE[storage] == "float32":
        want = storage_cast(refs.reduce_sum(x.astype(np.float32), (dim,), False), storage)
        tol = 1e-2 if storage == "float16" else 6.25e-2  # the float32 sum's order
        assert_close(total.numpy().astype(np.float64), want.astype(np.float64), rtol=tol,
                     atol=tol, what=f"sum {storage}")
    else:
        want = refs.reduce_sum(x.astype(np.int64), (dim,), False)
        assert_close(total.numpy(), want, what=f"sum {storage}")
    assert total.dtype is am.as_dtype(want.dtype)
    assert top.dtype is am.as_dtype(storage)
    assert_close(top.numpy(), x.max(axis=dim), what=f"max {storage}")
