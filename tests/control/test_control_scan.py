"""am.scan: forward against NumPy (forward and reverse, trees, xs=None, ys=None, length 0),
gradients of an RNN against finite differences, type rules, and a property test over
random lengths including 0."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import amber as am


def _cumsum(c: am.Tensor, x: am.Tensor) -> tuple[am.Tensor, am.Tensor]:
    c = c + x
    return c, c


def test_cumulative_sum_matches_numpy() -> None:
    xs = np.arange(12.0).reshape(4, 3)
    carry, ys = am.scan(_cumsum, am.zeros(3, dtype=am.float64), am.tensor(xs))
    np.testing.assert_array_equal(ys.numpy(), np.cumsum(xs, axis=0))
    np.testing.assert_array_equal(carry.numpy(), xs.sum(0))


def test_reverse_keeps_ys_aligned_with_xs() -> None:
    xs = np.arange(5.0)
    carry, ys = am.scan(_cumsum, am.tensor(0.0, dtype=am.float64), am.tensor(xs), reverse=True)
    np.testing.assert_array_equal(ys.numpy(), np.cumsum(xs[::-1])[::-1])
    assert carry.item() == xs.sum()
    order = []
    am.scan(lambda c, x: (c, order.append(x.item())), am.tensor(0.0), am.tensor(xs),
            reverse=True)
    assert order == [4.0, 3.0, 2.0, 1.0, 0.0]


def test_tree_xs_and_ys() -> None:
    xs = {"a": am.tensor(np.arange(3.0)), "b": (am.tensor(np.ones((3, 2))),)}

    def fn(c: am.Tensor, x: dict) -> tuple:
        c = c + x["a"] * x["b"][0]
        return c, {"sum": c.sum(), "pair": [c, x["a"]]}

    carry, ys = am.scan(fn, am.zeros(2, dtype=am.float64), xs)
    assert carry.tolist() == [3.0, 3.0]
    assert ys["sum"].tolist() == [0.0, 2.0, 6.0]
    assert tuple(ys["pair"][0].shape) == (3, 2) and ys["pair"][1].tolist() == [0.0, 1.0, 2.0]
    assert isinstance(ys["pair"], list)


def test_xs_none_with_length_and_ys_none() -> None:
    carry, ys = am.scan(lambda c, x: (c * 2.0, None), am.tensor(1.0), None, length=5)
    assert carry.item() == 32.0 and ys is None
    carry, ys = am.scan(lambda c, x: (c + 1.0, c), am.tensor(0.0), None, length=3)
    assert ys.tolist() == [0.0, 1.0, 2.0]


def test_length_zero() -> None:
    init = {"h": am.tensor([1.0, 2.0])}
    carry, ys = am.scan(lambda c, x: ({"h": c["h"] + x}, (c["h"] * x, x.to(am.int32))),
                        init, am.zeros(0, 2))
    assert carry is init
    assert tuple(ys[0].shape) == (0, 2) and ys[0].dtype is am.float32
    assert tuple(ys[1].shape) == (0, 2) and ys[1].dtype is am.int32
    carry, ys = am.scan(lambda c, x: (c, None), am.tensor(1.0), None, length=0)
    assert ys is None and carry.item() == 1.0


def test_length_zero_still_checks_the_carry() -> None:
    with pytest.raises(am.ControlFlowError, match="length-0 scan"):
        am.scan(lambda c, x: (c.to(am.float64), x), am.tensor(1.0), am.zeros(0))


def _rnn(w: am.Tensor, u: am.Tensor, h0: am.Tensor, xs: am.Tensor,
         reverse: bool = False) -> am.Tensor:
    def cell(h: am.Tensor, x: am.Tensor) -> tuple:
        h = (am.matmul(w, h) + u * x).tanh()
        return h, h.sum()

    h, ys = am.scan(cell, h0, xs, reverse=reverse)
    return (h * h).sum() + (ys * ys).sum()


@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_gradient(gradcheck, reverse) -> None:
    rng = np.random.default_rng(0)
    gradcheck(lambda w, u, h0, xs: _rnn(w, u, h0, xs, reverse),
              rng.standard_normal((3, 3)) * 0.5, rng.standard_normal(3),
              rng.standard_normal(3), rng.standard_normal(5))


def test_length_zero_gradient(gradcheck) -> None:
    (g, _) = gradcheck(lambda h0, xs: _rnn(am.eye(3, dtype=am.float64), am.ones(3,
                                           dtype=am.float64), h0, xs),
                       [0.1, 0.2, 0.3], np.zeros(0))
    np.testing.assert_allclose(g, [0.2, 0.4, 0.6])


def test_errors() -> None:
    xs = am.tensor([1.0, 2.0])
    with pytest.raises(am.ControlFlowError, match=r"must return a pair \(carry, y\)"):
        am.scan(lambda c, x: c, am.tensor(0.0), xs)
    with pytest.raises(am.ControlFlowError,
                       match=r"returned y as float32\[2\], but step 0 has float32\[\]"):
        am.scan(lambda c, x: (c + 1.0, x if c.item() == 0 else am.stack([x, x])),
                am.tensor(0.0), xs)
    ys_kinds = iter([(am.tensor(1.0),), None])
    with pytest.raises(am.ControlFlowError, match="at step 1"):
        am.scan(lambda c, x: (c, next(ys_kinds)), am.tensor(0.0), xs)
    with pytest.raises(am.ControlFlowError, match=r"returned carry as float64\[\]"):
        am.scan(lambda c, x: (c.to(am.float64), x), am.tensor(0.0), xs)
    with pytest.raises(am.ControlFlowError, match=r"y\[1\] is a Python int"):
        am.scan(lambda c, x: (c, (x, 3)), am.tensor(0.0), xs)
    with pytest.raises(am.ControlFlowError, match=r"xs\['b'\]\[0\] is a Python int"):
        am.scan(lambda c, x: (c, x), am.tensor(0.0), {"a": xs, "b": [1, 2]})
    with pytest.raises(am.ControlFlowError, match="length= is required"):
        am.scan(lambda c, x: (c, x), am.tensor(0.0), None)
    with pytest.raises(am.ControlFlowError, match="length must be a non-negative int"):
        am.scan(lambda c, x: (c, x), am.tensor(0.0), None, length=-1)
    with pytest.raises(am.ShapeError, match=r"xs\[1\] has leading size 3, but xs\[0\] has "
                                            r"leading size 2"):
        am.scan(lambda c, x: (c, x), am.tensor(0.0), (xs, am.zeros(3)))
    with pytest.raises(am.ShapeError, match="leading size 2, but length=4"):
        am.scan(lambda c, x: (c, x), am.tensor(0.0), xs, length=4)
    with pytest.raises(am.ShapeError, match="needs an axis 0"):
        am.scan(lambda c, x: (c, x), am.tensor(0.0), am.tensor(1.0))


@given(n=st.integers(0, 7), d=st.integers(1, 3), reverse=st.booleans(),
       seed=st.integers(0, 2**16))
def test_scan_property(n: int, d: int, reverse: bool, seed: int) -> None:
    """A linear recurrence h' = a*h + x over random lengths: forward against NumPy and
    gradients against the closed form."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, d)
    xs = rng.standard_normal((n, d))
    h0 = rng.standard_normal(d)
    at, xt, ht = (am.tensor(v, requires_grad=True) for v in (a, xs, h0))

    def fn(h: am.Tensor, x: am.Tensor) -> tuple:
        h = at * h + x
        return h, {"h": h, "twice": h * 2.0}

    carry, ys = am.scan(fn, ht, xt, reverse=reverse)
    h, ref = h0.copy(), np.zeros((n, d))
    order = range(n - 1, -1, -1) if reverse else range(n)
    for i in order:
        h = a * h + xs[i]
        ref[i] = h
    np.testing.assert_allclose(carry.detach().numpy(), h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ys["h"].detach().numpy(), ref, rtol=1e-12, atol=1e-12)
    assert tuple(ys["twice"].shape) == (n, d)
    carry.sum().backward()
    # d(final h)/d h0 = a^n; d(final h)/d xs[i] = a^(steps after i)
    np.testing.assert_allclose(ht.grad.numpy(), a ** n, rtol=1e-12, atol=1e-12)
    if n:
        after = np.array([(n - 1 - k) if not reverse else k for k in range(n)])
        expected = a[None, :] ** after[:, None]
        np.testing.assert_allclose(xt.grad.numpy(), expected, rtol=1e-12, atol=1e-12)
