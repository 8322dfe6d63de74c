"""The composed PyTorch ops (amber.composite, amber.sorting, amber.linalg, amber.dynamic):
forward against NumPy, gradients against finite differences in float64, export and the
native runtime against eager, and the refusals of the data-dependent ops under capture."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import amber as am
from amber import sorting
from helpers import check_forward, check_grad

# --------------------------------------------------------------------------- forward vs NumPy


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def test_elementwise_tests_match_numpy():
    x = np.array([0.0, -1.0, np.nan, np.inf, -np.inf, 3.5], np.float32)
    for name in ("isnan", "isinf", "isfinite"):
        check_forward(getattr(am, name), [x], getattr(np, name))
        check_forward(getattr(am, name), [np.arange(3)], getattr(np, name))
    y = np.array([0.0, -1.0 + 1e-9, np.nan, np.inf, np.inf, 3.6], np.float32)
    for kw in ({}, {"equal_nan": True}, {"rtol": 0.1, "atol": 0.0}):
        check_forward(lambda a, b, kw=kw: am.isclose(a, b, **kw), [x, y],
                      lambda a, b, kw=kw: np.isclose(a, b, **kw))


def test_fmod_and_lerp_match_numpy():
    a, b = _x(4, 5) * 5, _x(5, seed=1) + 0.1
    check_forward(am.fmod, [a, b], np.fmod, rtol=1e-12, atol=1e-12)
    sa = np.array([5.0, -5.0, 5.0, -5.0, np.inf, 3.0, 6 - 1e-12, 7.5, -7.5, 1e6])
    sb = np.array([np.inf, -np.inf, 0.0, 2.0, 2.0, -2.0, 2.0, 2.5, -2.5, 0.3])
    with np.errstate(invalid="ignore", divide="ignore"):
        check_forward(am.fmod, [sa, sb], np.fmod, rtol=1e-9, atol=1e-9)
    ia, ib = np.arange(-9, 9).reshape(3, 6), np.array([4, -4, 3, -3, 5, 7])
    check_forward(am.fmod, [ia, ib], np.fmod)
    w = np.array([0.0, 0.25, 0.5, 1.0, 2.0])
    check_forward(am.lerp, [a, b, w], lambda s, e, w: s + w * (e - s), rtol=1e-12, atol=1e-12)
    # weight 1 gives the end point exactly
    np.testing.assert_array_equal(am.lerp(am.tensor(a), am.tensor(b), 1.0).numpy(),
                                  np.broadcast_to(b, a.shape))


def test_indexing_ops_match_numpy():
    x, idx = _x(3, 5), np.array([4, 0, -1, 2])
    check_forward(lambda x, i: am.index_select(x, 1, i), [x, idx], lambda x, i: x[:, i])
    check_forward(lambda x: am.roll(x, (1, -2), (0, 1)), [x],
                  lambda x: np.roll(x, (1, -2), (0, 1)))
    check_forward(lambda x: am.roll(x, 7), [x], lambda x: np.roll(x, 7))
    for k in (0, 2, -1, 9):
        check_forward(lambda x, k=k: am.diag(x, k), [x], lambda x, k=k: np.diag(x, k))
        check_forward(lambda v, k=k: am.diag(v, k), [x[0]], lambda v, k=k: np.diag(v, k))
    y = _x(2, 3, 4)
    check_forward(lambda y: am.diagonal(y, -1, 2, 0), [y],
                  lambda y: np.diagonal(y, -1, 2, 0))
    check_forward(lambda a, b: am.meshgrid(a, b, indexing="xy")[0], [x[0], x[1, :3]],
                  lambda a, b: np.meshgrid(a, b, indexing="xy")[0])
    check_forward(lambda x: am.repeat_interleave(x, 3, 1), [x], lambda x: np.repeat(x, 3, 1))
    check_forward(lambda x: am.repeat_interleave(x, 2), [x], lambda x: np.repeat(x, 2))


def test_scatter_ops_match_a_loop():
    base, src = _x(3, 4), _x(3, 6, seed=1)
    idx = np.random.default_rng(2).integers(0, 4, (3, 5))
    want = base.copy()
    for i in range(3):
        for j in range(5):
            want[i, idx[i, j]] += src[i, j]
    check_forward(lambda b, i, s: am.scatter_add(b, 1, i, s), [base, idx, src],
                  lambda *_: want, rtol=1e-12, atol=1e-12)
    perm = np.array([[3, 1, 0], [2, 0, 1], [0, 1, 2]])
    want = base.copy()
    for i in range(3):
        for j in range(3):
            want[i, perm[i, j]] = src[i, j]
    check_forward(lambda b, i, s: am.scatter(b, 1, i, s), [base, perm, src], lambda *_: want)
    # repeated targets receive the mean of what is written there
    got = am.scatter(am.zeros(3), 0, am.tensor([1, 1, 2]), am.tensor([2.0, 4.0, 5.0]))
    np.testing.assert_array_equal(got.numpy(), [0.0, 3.0, 5.0])


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=9),
                  elements=st.sampled_from([-2.0, 0.0, 0.5, 3.0, np.nan, np.inf,
                                            -np.inf])),
       st.integers(-3, 2), st.booleans())
def test_sort_is_numpy_stable_sort(a, dim, descending):
    dim = dim % a.ndim
    vals, idx = am.sort(am.tensor(a), dim, descending=descending)
    moved = np.moveaxis(a, dim, -1)
    with am.no_grad():  # the network that capture records, run eagerly
        net = sorting._network(am.tensor(moved), moved.shape[-1], descending) \
            if moved.shape[-1] > 1 else am.zeros(moved.shape, dtype=am.int64)
    np.testing.assert_array_equal(np.moveaxis(net.numpy(), -1, dim), idx.numpy())
    order = _stable_desc(a, dim) if descending else np.argsort(a, axis=dim, kind="stable")
    np.testing.assert_array_equal(idx.numpy(), order)
    np.testing.assert_array_equal(vals.numpy(), np.take_along_axis(a, order, dim))


def _stable_desc(a: np.ndarray, dim: int) -> np.ndarray:
    """Descending stable order with NaN first (PyTorch's convention)."""
    moved = np.moveaxis(a, dim, -1)
    out = np.empty(moved.shape, np.int64)
    for pos in np.ndindex(*moved.shape[:-1]):
        row = moved[pos]
        out[pos] = sorted(range(len(row)), key=lambda i: (not np.isnan(row[i]),
                                                          -row[i] if not np.isnan(row[i]) else 0,
                                                          i))
    return np.moveaxis(out, -1, dim)


@given(hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=12),
                  elements=st.integers(-50, 50)), st.integers(-3, 2))
def test_cumsum_is_exact_on_integers(a, dim):
    dim = dim % a.ndim
    check_forward(lambda x: am.cumsum(x, dim), [a], lambda x: np.cumsum(x, dim))
    check_forward(lambda x: am.cumprod(am.clamp(x, -2, 2), dim), [a],
                  lambda x: np.cumprod(np.clip(x, -2, 2), dim))


def test_cumsum_error_grows_slowly_with_length():
    x = np.random.default_rng(0).random(1 << 16).astype(np.float32)
    got = am.cumsum(am.tensor(x), 0).numpy().astype(np.float64)
    exact = np.cumsum(x.astype(np.float64))
    assert np.max(np.abs(got - exact) / exact) < 1e-6  # a sequential float32 sum: ~1e-4


def test_search_and_scan_ops_match_numpy():
    b = np.array([-1.0, 0.0, 0.0, 2.0])
    v = np.array([[-2.0, -1.0, 0.0], [0.5, 2.0, 9.0]])
    for side in ("left", "right"):
        check_forward(lambda b, v, s=side: am.searchsorted(b, v, side=s), [b, v],
                      lambda b, v, s=side: np.searchsorted(b, v, side=s))
    x = _x(3, 8) * 30
    check_forward(lambda x: am.logcumsumexp(x, 1), [x],
                  lambda x: np.logaddexp.accumulate(x, 1), rtol=1e-12, atol=1e-12)
    check_forward(lambda x: am.median(x, 1).values, [x], lambda x: np.sort(x, 1)[:, 3])
    check_forward(lambda x: am.median(x), [x[:, :7]], lambda x: np.median(x))
    check_forward(lambda x: am.kthvalue(x, 3, 0).indices, [x],
                  lambda x: np.argsort(x, 0, kind="stable")[2])
    i = np.array([2, 0, 2])
    check_forward(lambda x, i: am.index_add(x, 1, i, am.ones(3, 3, dtype=am.float64)), [x, i],
                  lambda x, i: x + np.stack([np.bincount(i, minlength=8)] * 3))


def test_topk_and_norms_match_numpy():
    x = _x(4, 7)
    check_forward(lambda x: am.topk(x, 3).values, [x], lambda x: -np.sort(-x, 1)[:, :3])
    check_forward(lambda x: am.topk(x, 2, 0, largest=False).indices, [x],
                  lambda x: np.argsort(x, 0, kind="stable")[:2])
    for ord_ in (None, 1, 3, math.inf, -math.inf, 0):
        check_forward(lambda x, o=ord_: am.linalg.vector_norm(x, 2 if o is None else o, 1), [x],
                      lambda x, o=ord_: np.linalg.norm(x, 2 if o is None else o, 1),
                      rtol=1e-12, atol=1e-12)
    for ord_ in ("fro", 1, -1, math.inf, -math.inf):
        check_forward(lambda x, o=ord_: am.linalg.norm(x, o), [x],
                      lambda x, o=ord_: np.linalg.norm(x, o), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- gradients


_GRAD_CASES = {
    "fmod": (lambda a, b: am.fmod(a, b), [_x(3, 4) * 3, _x(4, seed=1) + 2.5]),
    "lerp": (am.lerp, [_x(3, 4), _x(3, 4, seed=1), _x(4, seed=2)]),
    "index_select": (lambda x: am.index_select(x, 0, am.tensor([2, 0, 2, -1])), [_x(3, 4)]),
    "gather": (lambda x: am.gather(x, 1, am.tensor([[0, 3], [1, 1], [2, 0]])), [_x(3, 4)]),
    "scatter_add": (lambda b, s: am.scatter_add(b, 0, am.tensor([[0, 2], [0, 1]]), s),
                    [_x(3, 2), _x(3, 3, seed=1)]),
    "scatter": (lambda b, s: am.scatter(b, 1, am.tensor([[1, 1], [0, 2]]), s),
                [_x(2, 3), _x(2, 4, seed=1)]),
    "roll": (lambda x: am.roll(x, (2, -1), (1, 0)), [_x(3, 4)]),
    "diag": (lambda x: am.diag(x, 1), [_x(3, 4)]),
    "diag-1d": (lambda v: am.diag(v, -2), [_x(3)]),
    "meshgrid": (lambda a, b: am.meshgrid(a, b)[0] * am.meshgrid(a, b)[1], [_x(3), _x(2)]),
    "repeat_interleave": (lambda x: am.repeat_interleave(x, 2, 0), [_x(2, 3)]),
    "repeat_interleave-tensor": (lambda x: am.repeat_interleave(x, am.tensor([2, 0, 1]), 1),
                                 [_x(2, 3)]),
    "cumsum": (lambda x: am.cumsum(x, 1), [_x(3, 7)]),
    "cumprod": (lambda x: am.cumprod(x, 0), [_x(6, 2)]),
    "cumprod-zero": (lambda x: am.cumprod(x * am.tensor([1.0, 0.0, 1.0, 1.0]), 0), [_x(4)]),
    "sort": (lambda x: am.sort(x, 0, descending=True).values, [_x(5, 3)]),
    "topk": (lambda x: am.topk(x, 2).values, [_x(3, 6)]),
    "norm": (lambda x: am.norm(x, dim=1), [_x(3, 4)]),
    "norm-p3": (lambda x: am.linalg.vector_norm(x, 3), [_x(3, 4)]),
    "matrix_norm": (lambda x: am.linalg.matrix_norm(x, math.inf), [_x(3, 4)]),
    "masked_select": (lambda x: am.masked_select(x, am.tensor([True, False, True])),
                      [_x(2, 3)]),
    "clamp_min": (lambda x: am.clamp_min(x, 0.1), [_x(3, 4)]),
    "index_add": (lambda x, s: am.index_add(x, 1, am.tensor([2, 0, 2]), s, alpha=0.5),
                  [_x(2, 3), _x(2, 3, seed=1)]),
    "index_fill": (lambda x: am.index_fill(x, 0, am.tensor([1]), 2.0), [_x(3, 2)]),
    "index_copy": (lambda x, s: am.index_copy(x, 1, am.tensor([2, 2, 0]), s),
                   [_x(2, 3), _x(2, 3, seed=1)]),
    "take_along_dim": (lambda x: am.take_along_dim(x, am.tensor([[1], [0], [1]]), 1),
                       [_x(3, 2)]),
    "logcumsumexp": (lambda x: am.logcumsumexp(x, 1), [_x(2, 7)]),
    "median": (lambda x: am.median(x, 1).values, [_x(3, 4)]),
    "kthvalue": (lambda x: am.kthvalue(x, 2, 0).values, [_x(3, 4)]),
    "cummax": (lambda x: am.cummax(x, 1).values, [_x(3, 6)]),
    "cummin": (lambda x: am.cummin(x, 0).values, [_x(5, 2)]),
    "diff": (lambda x, p: am.diff(x, 2, 1, prepend=p), [_x(2, 5), _x(2, 1, seed=1)]),
}


@pytest.mark.parametrize("name", sorted(_GRAD_CASES))
def test_gradient_matches_finite_differences(name):
    fn, inputs = _GRAD_CASES[name]
    check_grad(fn, inputs)


# --------------------------------------------------------------------------- export


def _roundtrip(fn, spec, x: np.ndarray, tmp_path: Path) -> None:
    prog = am.export(fn, spec)
    path = tmp_path / "m.amber"
    prog.save(path)
    model = am.load(path, backend="native")
    assert model.backend == "native"
    want = am.tree_flatten(fn(am.tensor(x)))[0]
    got = am.tree_flatten(model(x))[0]
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(np.asarray(g), w.numpy(), rtol=2e-6, atol=2e-6)


def _many(x):
    s = am.sort(x, 1, descending=True)
    t = am.topk(x, 3)
    return (s.values, s.indices, t.values, t.indices, am.argsort(x, 0), am.cumsum(x, 1),
            am.cumprod(x, 1), am.fmod(x, 0.7), am.isnan(x / x), am.isclose(x, x + 1e-6),
            am.roll(x, 2, 1), am.diag(x[0]), am.diagonal(x, 1, 0, 1), am.lerp(x, -x, 0.3),
            am.index_select(x, 1, am.tensor([4, 0, 0])), am.repeat_interleave(x, 2, 1),
            am.scatter_add(x, 1, am.tensor([[0, 0, 3]]), x[:1] * 2),
            am.scatter(x, 1, am.tensor([[4, 1]]), 0.0), am.norm(x, dim=1),
            am.linalg.matrix_norm(x, 1), am.clamp_max(x, 0.2), am.meshgrid(x[0], x[1, :2])[0],
            am.index_add(x, 1, am.tensor([0, 0]), x[:, :2]), am.index_fill(x, 0, am.tensor([1]), 2),
            am.index_copy(x, 1, am.tensor([5, 1]), x[:, :2] * 3), am.logcumsumexp(x, 1),
            am.take_along_dim(x, am.tensor([[1], [0], [5]]), 1), am.median(x, 1),
            am.kthvalue(x, 2, 0), am.median(x), am.searchsorted(am.sort(x).values, x[:, :2]),
            am.bucketize(x, am.tensor([-0.5, 0.0, 0.5]), right=True), am.cummax(x, 1),
            am.cummin(x, 0), am.diff(x, 2, 1), am.count_nonzero(x > 0, 0))


def test_export_and_native_equal_eager(tmp_path):
    x = _x(3, 6).astype(np.float32)
    x[0, 1] = x[0, 4] = x[2, 1] = x[1, 1]  # ties: the network in the file is stable too
    x[2, 5] = np.nan
    _roundtrip(_many, am.spec(3, 6), x, tmp_path)


def test_export_with_symbolic_batch(tmp_path):
    def fn(x):
        return (am.sort(x, -1).values, am.topk(x, 2).indices, am.cumsum(x, 1),
                am.roll(x, 1, 1), am.linalg.vector_norm(x, dim=-1))

    prog = am.export(fn, am.spec("batch", 5))
    path = tmp_path / "s.amber"
    prog.save(path)
    model = am.load(path, backend="native")
    for n in (1, 4):
        x = _x(n, 5, seed=n).astype(np.float32)
        for w, g in zip(fn(am.tensor(x)), model(x), strict=True):
            np.testing.assert_allclose(np.asarray(g), w.numpy(), rtol=2e-6, atol=2e-6)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("op", [
    lambda x: am.nonzero(x),
    lambda x: x.nonzero(as_tuple=True),
    lambda x: am.unique(x),
    lambda x: am.masked_select(x, x > 0),
    lambda x: am.argwhere(x),
    lambda x: am.repeat_interleave(x, (x > 0).long()),
    lambda x: am.bincount((x > 0).long()),
])
def test_data_dependent_ops_are_refused_under_capture(op):
    with pytest.raises(am.CaptureError) as info:
        am.export(op, am.spec(4))
    msg = str(info.value)
    assert f"{__file__}:" in msg and "depends on the values" in msg and "Instead" in msg


def test_ops_needing_a_static_size_name_the_symbolic_dim():
    for fn in (lambda x: am.sort(x, 0), lambda x: am.topk(x, 1, 0), lambda x: am.diag(x[:, 0])):
        with pytest.raises(am.ShapeError, match="symbolic size"):
            am.export(fn, am.spec("n", 3))


def test_scans_and_roll_over_a_symbolic_dim(tmp_path):
    def fn(x):
        return (am.cumsum(x, 0), am.cumprod(x, 0), am.roll(x, (2, -1), (0, 1)),
                am.cumsum(x > 0, 0), am.gather(x, 1, am.zeros_like(x, am.int64)))

    prog = am.export(fn, am.spec("n", 3))
    path = tmp_path / "scan.amber"
    prog.save(path)
    model, ref = am.load(path, backend="native"), am.load(path, backend="reference")
    for n in (1, 5):
        x = _x(n, 3, seed=n).astype(np.float32)
        for w, g, r in zip(fn(am.tensor(x)), model(x), ref(x), strict=True):
            np.testing.assert_allclose(np.asarray(g), w.numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(np.asarray(r), w.numpy(), rtol=1e-5, atol=1e-6)
    check_grad(lambda x: am.cumprod(x, 0), [_x(4, 2)])  # eager path, for reference
    g = am.grad(lambda x: am.sum(ref(x)[0] * am.arange(3.0)))(
        am.tensor(_x(4, 3).astype(np.float32)))
    # d/dx[i, j] of sum_k cumsum(x)[k, j] * j is (number of k >= i) * j
    np.testing.assert_allclose(g.numpy(), np.arange(4.0, 0, -1)[:, None] * np.arange(3.0))


def test_bad_arguments_raise_typed_errors():
    x = am.zeros(2, 3)
    with pytest.raises(am.OutOfRangeError, match="out of range"):
        am.gather(x, 1, am.tensor([[3], [0]]))
    with pytest.raises(am.OutOfRangeError, match="out of range"):
        am.scatter_add(x, 0, am.tensor([[2, 0, 0]]), x)
    with pytest.raises(am.AmberError, match="multiply"):
        am.scatter(x, 0, am.tensor([[0]]), x, reduce="multiply")
    with pytest.raises(am.AmberError, match="singular values"):
        am.linalg.matrix_norm(x, "nuc")
    with pytest.raises(am.AmberError, match="k=4"):
        am.topk(x, 4)
    with pytest.raises(am.ShapeError, match="index must be 1-D"):
        am.index_select(x, 0, am.tensor([[0]]))
    with pytest.raises(am.ShapeError, match="repeats"):
        am.repeat_interleave(x, am.tensor([1, 2]), 1)
    with pytest.raises(am.DTypeError, match="floating"):
        am.linalg.vector_norm(am.tensor([1, 2]))



@pytest.mark.parametrize("n", [1, 2, 5, 8, 13])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_network_on_integers_with_ties(n, descending):
    a = np.random.default_rng(n).integers(-3, 3, (4, n))
    with am.no_grad():
        net = sorting._network(am.tensor(a), n, descending)
    np.testing.assert_array_equal(net.numpy(), sorting.stable_order(a, descending))
    ref = np.argsort(-a if descending else a, axis=-1, kind="stable")
    np.testing.assert_array_equal(net.numpy(), ref)
    info = np.iinfo(np.int64)  # the padding's value ties with these extremes
    a = np.where(a == 2, info.max, np.where(a == -3, info.min, a))
    with am.no_grad():
        net = sorting._network(am.tensor(a), n, descending)
    np.testing.assert_array_equal(net.numpy(), sorting.stable_order(a, descending))


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 12)),
                  elements=st.sampled_from([-np.inf, -1.0, 0.0, 2.0, np.inf, np.nan])),
       st.integers(1, 12), st.booleans())
def test_topk_selection_is_the_sort_order(a, k, largest):
    k = min(k, a.shape[1])
    with am.no_grad():
        sel = sorting._select(am.tensor(a), a.shape[1], k, largest)
    np.testing.assert_array_equal(sel.numpy(), sorting.stable_order(a, largest)[:, :k])
    np.testing.assert_array_equal(sorting.topk_order(a, k, largest),
                                  sorting.stable_order(a, largest)[:, :k])


@pytest.mark.parametrize("largest", [False, True])
def test_topk_selection_on_integers(largest):
    info = np.iinfo(np.int64)
    a = np.array([[3, info.min, 3, info.max, info.min, 0, info.max]])
    with am.no_grad():
        sel = sorting._select(am.tensor(a), 7, 7, largest)
    np.testing.assert_array_equal(sel.numpy(), sorting.stable_order(a, largest))
    for k in range(1, 8):
        np.testing.assert_array_equal(sorting.topk_order(a, k, largest),
                                      sorting.stable_order(a, largest)[:, :k])
