"""Eager kernels: the ops of ``ckernels.C_OPS`` run libamber's C kernels in eager mode,
and their NumPy reference kernels stay tested against the independent references; no
kernel computes element by element in Python."""

from __future__ import annotations

import ast
import inspect
import sys

import numpy as np
import pytest
from primitive_cases import CASES, Case

import amber as am
from amber.ops import REGISTRY, ckernels
from helpers import assert_close, check_forward
from helpers.opcheck import forward_tol

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

C_CASES = [pytest.param(c, dt, id=f"{c.id}-{dt}") for c in CASES if c.prim in ckernels.C_OPS
           for dt in c.dtypes]


def _inputs(case: Case, dtype: str, seed: int = 0) -> list[np.ndarray]:
    return case.make(np.random.default_rng(seed), np.dtype(dtype))


def _kernel_modules() -> set[str]:
    mods = {p.impl.__module__ for p in REGISTRY.values()} | {ckernels.__name__}
    return {inspect.getsourcefile(sys.modules[m]) or m for m in mods}


@pytest.mark.parametrize("path", sorted(_kernel_modules()))
def test_no_kernel_calls_python_per_element(path: str) -> None:
    """np.frompyfunc and np.vectorize run a Python call per element (a GELU through
    math.erf spent most of a transformer's time there)."""
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("frompyfunc", "vectorize"):
            raise AssertionError(f"{path}:{node.lineno}: {node.attr} in a kernel module")


def test_eager_uses_libamber() -> None:
    for name in ckernels.C_OPS:
        assert ckernels.uses_c(name), name
    with ckernels.reference_kernels():
        assert not any(ckernels.uses_c(n) for n in ckernels.C_OPS)
    assert ckernels.uses_c("exp")


@pytest.mark.parametrize(("case", "dtype"), C_CASES)
def test_reference_kernel_forward(case: Case, dtype: str) -> None:
    """The NumPy kernels (the reference) against the independent references too, now that
    the registry-wide forward test runs the C kernels."""
    prim = REGISTRY[case.prim]
    with ckernels.reference_kernels():
        check_forward(lambda *ts: prim(*ts, **case.attrs), _inputs(case, dtype),
                      lambda *xs: case.ref(*xs, **case.attrs), kind=case.kind)


@pytest.mark.parametrize(("case", "dtype"), C_CASES)
def test_c_kernel_matches_reference_kernel(case: Case, dtype: str) -> None:
    prim = REGISTRY[case.prim]
    for seed in range(3):
        xs = _inputs(case, dtype, seed)
        got = prim.eager(*xs, **case.attrs)
        want = prim.impl(*xs, **case.attrs)
        assert got.dtype == want.dtype and got.shape == want.shape
        rtol, atol = forward_tol(dtype, case.kind)
        assert_close(got, want, rtol=2 * rtol, atol=2 * atol, what=case.id)


def test_erf_reference_within_two_ulp_of_libm() -> None:
    import math

    x = np.concatenate([np.linspace(-7, 7, 20001), np.logspace(-310, 0.8, 2000),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, np.nextafter(1.0, 0)]])
    want = np.array([math.erf(v) for v in x])
    got = REGISTRY["erf"].impl(x)
    assert_close(got, want, ulp=2)
    assert np.signbit(got[-7:-5]).tolist() == [False, True]  # erf(+0), erf(-0)
    got32 = REGISTRY["erf"].impl(x.astype(np.float32))
    assert got32.dtype == np.float32
    assert_close(got32, want.astype(np.float32), ulp=1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_strided_zero_size_and_integer_operands(dtype: str) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 4)).astype(dtype)
    w = rng.standard_normal((3, 4)).astype(dtype)
    got = (am.tensor(a) @ am.tensor(w).T).numpy()  # a transposed (F-ordered) operand
    assert_close(got, a @ w.T, rtol=1e-5, atol=1e-5)
    assert am.exp(am.tensor(a)[:, ::2]).shape == (5, 2)
    assert am.tensor(np.zeros((0, 3), dtype)).exp().shape == (0, 3)
    assert (am.tensor(np.zeros((0, 3), dtype)) @ am.tensor(np.zeros((3, 2), dtype))).shape \
        == (0, 2)
    ints = am.tensor(np.arange(6).reshape(2, 3)) @ am.tensor(np.arange(6).reshape(3, 2))
    assert ints.numpy().tolist() == [[10, 13], [28, 40]]
    assert float(am.tensor(a).sum()) == pytest.approx(float(a.sum()), rel=1e-5)


def test_bad_shapes_raise_the_typed_errors() -> None:
    with pytest.raises(am.ShapeError, match="matmul"):
        am.tensor(np.ones((2, 3), np.float32)) @ am.tensor(np.ones((2, 3), np.float32))
    with pytest.raises(am.ShapeError, match="conv2d"):
        am.nn.functional.conv2d(am.tensor(np.ones((1, 2, 4, 4), np.float32)),
                                am.tensor(np.ones((3, 5, 3, 3), np.float32)))


def test_results_do_not_depend_on_the_thread_count() -> None:
    rng = np.random.default_rng(1)
    a = am.tensor(rng.standard_normal((96, 300)).astype(np.float32))
    b = am.tensor(rng.standard_normal((300, 200)).astype(np.float32))
    x = am.tensor(rng.standard_normal((4, 8, 20, 20)).astype(np.float32))
    w = am.tensor(rng.standard_normal((16, 8, 3, 3)).astype(np.float32))
    before = am.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            am.set_num_threads(n)
            assert am.get_num_threads() == n
            results.append(((a @ b).numpy(), am.nn.functional.conv2d(x, w).numpy(),
                            am.erf(a).numpy()))
    finally:
        am.set_num_threads(before)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_split_kernels_do_not_depend_on_the_thread_count(dtype: str) -> None:
    """Large elementwise ops and reductions, and batches of small products, are split
    between threads (a reduction along its kept axes only): the same bits at 1, 2 and 3
    threads, and the products still equal NumPy's."""
    rng = np.random.default_rng(2)

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    q_np, s_np, v_np, h_np, b_np = r(32, 16, 4, 16), r(32, 4, 16, 16), r(32, 4, 16, 16), \
        r(32, 16, 64), r(64)
    q = am.tensor(q_np).transpose(1, 2)  # heads split off by a transpose: strided
    s, v, h, b = am.tensor(s_np), am.tensor(v_np), am.tensor(h_np), am.tensor(b_np)

    def run() -> list[np.ndarray]:
        outs = [q @ q.transpose(-1, -2), s @ v, s[:, :1] @ v, h.sum(dim=-1, keepdim=True),
                h.sum(dim=(0, 1)), h.sum(dim=0), h.sum(dim=1), h.sum(), h.amax(-1, keepdim=True),
                am.erf(h), h.exp(), h * b, h + h.transpose(0, 1).reshape(32, 16, 64)]
        return [t.numpy() for t in outs]

    before = am.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            am.set_num_threads(n)
            results.append(run())
    finally:
        am.set_num_threads(before)
    for got in results[1:]:
        for one, other in zip(results[0], got):
            assert one.tobytes() == other.tobytes()
    qt = q_np.transpose(0, 2, 1, 3)
    assert_close(results[0][0], qt.astype(np.float64) @ qt.transpose(0, 1, 3, 2), rtol=1e-5,
                 atol=1e-5)
    assert_close(results[0][1], s_np.astype(np.float64) @ v_np, rtol=1e-5, atol=1e-5)
    assert_close(results[0][4], h_np.astype(np.float64).sum((0, 1)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_bad_counts(bad: object) -> None:
    with pytest.raises(am.AmberError, match="set_num_threads"):
        am.set_num_threads(bad)  # type: ignore[arg-type]


def _layouts(rng: np.random.Generator, dtype: str) -> list[tuple[np.ndarray, np.ndarray]]:
    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    heads = r(2, 5, 3, 4).transpose(0, 2, 1, 3)  # (batch, heads, tokens, dim) from a split
    out = []
    for m in (1, 2, 3, 9, 40):
        out.append((r(m, 6), r(7, 6).T))                    # x @ w.T
        out.append((r(6, m).T, r(6, 7)))                    # a transposed x
        out.append((r(2, m, 6), r(7, 6).T))                 # batch rows folded into one product
        out.append((r(m, 2, 6).transpose(1, 0, 2), r(6, 7).T.T))  # rows not evenly spaced
    out.append((heads, heads.transpose(0, 1, 3, 2)))        # q @ k^T
    out.append((r(2, 3, 5, 5), heads))                      # batched, strided right operand
    out.append((r(4, 6), np.broadcast_to(r(6, 1), (6, 5))))  # a zero stride
    out.append((r(3, 1, 4, 6), np.broadcast_to(r(2, 6, 5), (2, 6, 5))[:, :, ::2]))
    # gathered in tiles: a transposed weight wider than a tile, one per batch
    out.append((r(1, 70), r(45, 70).T))
    out.append((r(3, 2, 70), r(3, 45, 70).transpose(0, 2, 1)))
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_strided_matmul_is_bit_identical_to_contiguous(dtype: str) -> None:
    """Operands passed by strides (no copies) give the bits of the contiguous product,
    the one a native session computes."""
    for a, b in _layouts(np.random.default_rng(0), dtype):
        shape = np.matmul(a, b).shape
        got = ckernels.run_matmul_strided(a, b, shape)
        want = ckernels.run("matmul", {}, (np.ascontiguousarray(a), np.ascontiguousarray(b)),
                            shape, np.dtype(dtype))
        np.testing.assert_array_equal(got, want, err_msg=f"{a.strides} @ {b.strides}")
        assert_close(got, np.matmul(a, b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_strided_elementwise_is_bit_identical_to_contiguous(dtype: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 5, 4)).astype(dtype)
    views = [x.transpose(2, 0, 1), x[:, ::2], x[::-1][::-1][:, 1:], np.broadcast_to(x[:1], x.shape)]
    for v in views:
        for op in ("exp", "tanh", "erf", "sigmoid"):
            got = ckernels.run(op, {}, (v,), v.shape, v.dtype)
            want = ckernels.run(op, {}, (np.ascontiguousarray(v),), v.shape, v.dtype)
            np.testing.assert_array_equal(got, want, err_msg=f"{op} on strides {v.strides}")
        c = v > 0
        got = ckernels.run("where", {}, (c, v, np.zeros((), dtype)), v.shape, v.dtype)
        np.testing.assert_array_equal(got, np.where(c, v, 0))
        got = ckernels.run("pow", {}, (np.abs(v), v[..., :1]), v.shape, v.dtype)
        want = ckernels.run("pow", {}, (np.abs(np.ascontiguousarray(v)),
                                        np.ascontiguousarray(v[..., :1])), v.shape, v.dtype)
        np.testing.assert_array_equal(got, want)


def test_fast_and_ctypes_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled fast call and the ctypes path give the same results and errors."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((7, 5)).astype(np.float32)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    fast = (ckernels.run("exp", {}, (a.T,), (5, 7), a.dtype),
            ckernels.run("matmul", {}, (a, w.T), (7, 3), a.dtype))
    ctx = ckernels._context()
    monkeypatch.setattr(ctx, "fast", None)
    slow = (ckernels.run("exp", {}, (a.T,), (5, 7), a.dtype),
            ckernels.run("matmul", {}, (a, w.T), (7, 3), a.dtype))
    for f, s_ in zip(fast, slow):
        np.testing.assert_array_equal(f, s_)
    with pytest.raises(ValueError, match="matmul"):
        ckernels.run("matmul", {}, (a, w), (7, 3), a.dtype)


def test_list_attributes_are_accepted() -> None:
    x = np.random.default_rng(4).standard_normal((2, 3, 4)).astype(np.float32)
    got = REGISTRY["sum"].eager(x, axes=[0, 2], keepdims=False)
    np.testing.assert_allclose(got, x.sum(axis=(0, 2)), rtol=1e-6)
    w = np.ones((2, 1, 3, 3), np.float32)
    y = REGISTRY["conv2d"].eager(x[None, :1], w, stride=[1, 1], padding=[1, 1, 1, 1],
                                 dilation=[1, 1], groups=1)
    assert y.shape == (1, 2, 3, 4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(), (7,), (3, 700)])
def test_relu_eager_has_the_bits_and_tape_of_its_composition(dtype: str, shape: tuple) -> None:
    """Eager relu runs in one step; it must give where(x <= 0, 0, x)'s bits (-0 becomes
    +0, NaN keeps its payload and sign) and record the same gradient."""
    rng = np.random.default_rng(0)
    special = np.array([-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, 1e-310, -1e-310, 2.5,
                        -1.5], dtype)
    x = rng.standard_normal(shape).astype(dtype)
    if x.ndim:
        flat = x.reshape(-1)
        flat[:special.size] = special[:flat.size]
    ints = np.uint32 if dtype == "float32" else np.uint64
    composed = am.where(am.tensor(x) <= 0, 0.0, am.tensor(x)).numpy()
    got = am.relu(am.tensor(x)).numpy()
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got.view(ints), composed.view(ints))
    t = am.tensor(np.nan_to_num(x), requires_grad=True)
    g = rng.standard_normal(shape).astype(dtype)
    am.relu(t).backward(am.tensor(g))
    np.testing.assert_array_equal(t.grad.numpy(), np.where(np.nan_to_num(x) <= 0, 0, g))


@pytest.mark.parametrize("shape,axes", [((640, 256), (0,)), ((10, 64, 33), (0, 1)),
                                        ((3, 1, 17), (0,)), ((5, 7), (1,))])
def test_float32_sum_is_the_sequential_double_sum(shape: tuple, axes: tuple) -> None:
    """libamber sums float32 in double, row after row over an outer axis: the bits of
    that order whichever loop runs it."""
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    got = ckernels.run("sum", {"axes": axes, "keepdims": False}, (x,),
                       tuple(d for i, d in enumerate(shape) if i not in axes), x.dtype)
    if axes[-1] == len(shape) - 1:  # an inner reduction: compare with the reference's tolerance
        assert_close(got, x.astype(np.float64).sum(axes).astype(np.float32), rtol=1e-6,
                     atol=1e-6)
        return
    acc = np.zeros(got.shape, np.float64)
    for idx in np.ndindex(*[shape[a] for a in axes]):
        acc += x[idx].astype(np.float64)
    np.testing.assert_array_equal(got, acc.astype(np.float32))
def test_where_broadcast_along_rows_keeps_numpy_and_its_bits() -> None:
    rng = np.random.default_rng(5)
    c = rng.random((64, 1)) < 0.3
    x, y = np.array(0.0, np.float32), rng.standard_normal((64, 32)).astype(np.float32)
    assert ckernels._row_broadcast(c.shape, x.shape, y.shape)
    assert not ckernels._row_broadcast((64, 32), (), (64, 32))
    np.testing.assert_array_equal(REGISTRY["where"].eager(c, x, y), np.where(c, x, y))
    big = rng.random((64, 32)) < 0.3
    np.testing.assert_array_equal(REGISTRY["where"].eager(big, x, y), np.where(big, x, y))


def test_run_accepts_list_attributes() -> None:
    x = np.random.default_rng(6).standard_normal((2, 3, 4)).astype(np.float32)
    got = ckernels.run("sum", {"axes": [0, 2], "keepdims": False}, (x,), (3,), x.dtype)
    np.testing.assert_array_equal(got, REGISTRY["sum"].eager(x, axes=(0, 2), keepdims=False))


@pytest.mark.parametrize("op", ["sigmoid", "tanh", "exp"])
def test_into_writes_the_eager_kernels_bits(op: str) -> None:
    x = np.random.default_rng(6).standard_normal((64, 96)).astype(np.float32) * 4
    out = np.full_like(x, np.nan)
    ckernels.into(op, x, out)
    assert out.tobytes() == REGISTRY[op].eager(x).tobytes()
    with ckernels.reference_kernels():
        ckernels.into(op, x, out)
        assert out.tobytes() == REGISTRY[op].impl(x).tobytes()
    # a strided view (an LSTM's gate slice) is read in place, the same bits
    part, out = x[:, 32:64], np.full((64, 32), np.nan, np.float32)
    ckernels.into(op, part, out)
    assert out.tobytes() == REGISTRY[op].eager(np.ascontiguousarray(part)).tobytes()


def _first_extremum(row: np.ndarray, mx: bool) -> np.ndarray:
    """libamber's max/min of one row: the first element no other beats, or the first NaN
    (so ties of -0.0 and 0.0, and NaN payloads, follow the order)."""
    acc = row.dtype.type(-np.inf if mx else np.inf)
    for v in row:
        if not (np.isnan(acc) or (acc >= v if mx else acc <= v)):
            acc = v
    return acc


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,axes", [((64, 16), (1,)), ((8, 4, 5), (1, 2)),
                                        ((3, 40), (1,)), ((6, 7), (0,)), ((5, 2, 3), (0, 2)),
                                        ((37, 3, 7), (1, 2)), ((2, 9, 2), (2,))])
def test_max_min_keep_the_first_extremum(dtype: str, shape: tuple, axes: tuple) -> None:
    """Signed zeros and NaNs of different payloads: each result is the element the
    sequential rule picks, bit for bit (short inner runs are reduced with the reduced dims
    outermost, many accumulators at a time), at 1 and 2 threads."""
    rng = np.random.default_rng(7)
    x = rng.choice(np.array([0.0, -0.0, 1.0, -1.0], dtype), size=shape)
    bits = x.view(np.uint32 if dtype == "float32" else np.uint64)
    nan = rng.random(shape) < 0.04
    quiet = np.array(np.nan, dtype).view(bits.dtype)
    bits[nan] = quiet | rng.integers(1, 1000, nan.sum()).astype(bits.dtype)
    kept = [i for i in range(len(shape)) if i not in axes]
    rows = np.moveaxis(x, kept, list(range(len(kept)))).reshape(
        [shape[i] for i in kept] + [-1])
    before = am.get_num_threads()
    try:
        for n in (1, 2):
            am.set_num_threads(n)
            for name, mx in (("max", True), ("min", False)):
                got = ckernels.run(name, {"axes": axes, "keepdims": False}, (x,),
                                   rows.shape[:-1], x.dtype)
                want = np.array([_first_extremum(r, mx) for r in rows.reshape(-1,
                                 rows.shape[-1])], dtype).reshape(rows.shape[:-1])
                assert got.tobytes() == want.tobytes(), (name, n)
    finally:
        am.set_num_threads(before)


@pytest.mark.parametrize("n", [16, 23, 64, 100])
def test_float32_row_sum_takes_eight_partials(n: int) -> None:
    """A contiguous float32 row of 16 or more sums element i into double partial i % 8,
    then adds the partials pairwise: those bits exactly."""
    x = np.random.default_rng(3).standard_normal((5, n)).astype(np.float32) * 1e3
    got = ckernels.run("sum", {"axes": (1,), "keepdims": False}, (x,), (5,), x.dtype)
    want = []
    for row in x.astype(np.float64):
        p = [0.0] * 8
        for i, v in enumerate(row):
            p[i % 8] += v
        want.append(((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7])))
    np.testing.assert_array_equal(got, np.array(want).astype(np.float32))


def _sum_in_order(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """The float32 sum's documented order: per output element, its elements in index
    order into a double, eight partials (element i into partial i % 8, added pairwise
    at the end) when they form one contiguous run of 16 or more."""
    kept = [d for d in range(x.ndim) if d not in axes]
    rows = np.moveaxis(x, kept, list(range(len(kept)))).astype(np.float64)
    rows = rows.reshape(int(np.prod([x.shape[d] for d in kept])), -1)
    inner = all(d in axes for d in range(x.ndim - len(axes), x.ndim))
    out = []
    for row in rows:
        if inner and len(row) >= 16:
            p = [0.0] * 8
            for i, v in enumerate(row):
                p[i % 8] += float(v)
            s = 0.0 + (((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7])))
        else:
            s = 0.0
            for v in row:
                s += float(v)
        out.append(s)
    return np.array(out).astype(np.float32).reshape([x.shape[d] for d in kept])


@pytest.mark.parametrize("shape, axes", [
    ((6, 5), (1,)), ((3, 4, 16), (2,)), ((2, 3, 24), (1, 2)), ((7, 40), (1,)),
    ((9, 70), (0,)), ((5, 3, 33), (0, 1)), ((4, 2, 64), (0,)), ((3, 5, 7), (1,)),
    ((4, 6, 8), (0, 2)), ((50,), (0,)), ((2, 3, 4), (0, 1, 2))])
def test_float32_sum_order_inner_and_outer_axes(shape: tuple[int, ...],
                                                axes: tuple[int, ...]) -> None:
    """Sums over inner dims (rows), outer dims (columns) and others give the bits of
    the documented order, with zeros of both signs, infinities and NaN among the values,
    at 1 and 2 threads (the sums of a contiguous float32 block without a call per row)."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(np.float32)
    flat = x.reshape(-1)
    flat[rng.random(flat.size) < 0.05] = -0.0
    if flat.size > 40:
        flat[[3, 17]] = np.inf, -np.inf
        flat[29] = np.nan
    want = _sum_in_order(x, axes)
    before = am.get_num_threads()
    try:
        for n in (1, 2):
            am.set_num_threads(n)
            got = ckernels.run("sum", {"axes": axes, "keepdims": False}, (x,), want.shape,
                               x.dtype)
            # (which NaN a sum of NaNs or of opposite infinities gives is not specified)
            nan = np.isnan(want)
            assert np.array_equal(np.isnan(got), nan), n
            assert got[~nan].tobytes() == want[~nan].tobytes(), n
    finally:
        am.set_num_threads(before)


@pytest.mark.parametrize("axes", [(1,), (0,)])
def test_float32_sum_split_between_threads_keeps_the_bits(axes: tuple[int, ...]) -> None:
    """A sum large enough to be split between threads (rows, or columns) gives the
    bits it gives on one thread."""
    x = np.random.default_rng(5).standard_normal((2048, 2080)).astype(np.float32)
    shape = (x.shape[1 - axes[0]],)
    before = am.get_num_threads()
    try:
        got = []
        for n in (1, 2):
            am.set_num_threads(n)
            got.append(ckernels.run("sum", {"axes": axes, "keepdims": False}, (x,), shape,
                                    x.dtype))
    finally:
        am.set_num_threads(before)
    assert got[0].tobytes() == got[1].tobytes()
    want = x.astype(np.float64).sum(axis=axes[0]).astype(np.float32)
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("m, n, k", [(3, 1, 1), (8, 5, 7), (9, 16, 16), (16, 16, 16),
                                     (17, 17, 64), (33, 32, 40), (4, 10, 64)])
def test_small_products_give_the_bits_of_wide_ones(m: int, n: int, k: int) -> None:
    """A product with few columns and a short inner dim (attention's 16 x 16 x 16) runs
    without packing; each element is still the same chain of multiply-adds, so its bits
    are those of the same columns inside a wider product (which is packed), for plain,
    transposed and batched operands."""
    rng = np.random.default_rng(m * 100 + n + k)
    a = rng.standard_normal((3, m, k)).astype(np.float32)
    b = rng.standard_normal((3, k, n)).astype(np.float32)
    wide = np.concatenate([b, rng.standard_normal((3, k, 48)).astype(np.float32)], axis=2)
    mm = REGISTRY["matmul"].eager
    want = np.stack([mm(a[i], wide[i])[:, :n] for i in range(3)])
    bt = np.ascontiguousarray(b.transpose(0, 2, 1)).transpose(0, 2, 1)
    at = np.ascontiguousarray(a.transpose(0, 2, 1)).transpose(0, 2, 1)
    for x, y in ((a, b), (a, bt), (at, b)):
        assert mm(x, y).tobytes() == want.tobytes()
        assert mm(x[0], y[0]).tobytes() == want[0].tobytes()
    batch = np.broadcast_to(a, (40, 3, m, k))
    many = mm(np.ascontiguousarray(batch), np.broadcast_to(b, (40, 3, k, n)).copy())
    assert many.tobytes() == np.broadcast_to(want, many.shape).tobytes()
