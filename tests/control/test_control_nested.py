"""Nested control flow: cond inside while inside a recursive graph function, loops inside
scan, scan inside cond, closures across levels, and higher-order gradients."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am


def _nested(x: am.Tensor, w: am.Tensor) -> am.Tensor:
    """A recursive function whose body is a while loop whose body is a cond; every level
    closes over w."""

    @am.function
    def level(v: am.Tensor, depth: am.Tensor) -> am.Tensor:
        def body(c: tuple) -> tuple:
            i, u = c
            u = am.cond(u.sum() > 0, lambda: u * w - 0.3, lambda: u * 0.5 + w)
            return i + 1, u

        def keep_going(c: tuple) -> am.Tensor:
            return am.logical_and(c[0] < 3, c[1].abs().sum() < 50.0)

        _, v = am.while_loop(keep_going, body, (am.tensor(0), v))
        return am.cond(depth > 0, lambda: level(v.sin(), depth - 1), lambda: v)

    return (level(x, am.tensor(3)) ** 2).sum()


def _nested_reference(x: np.ndarray, w: np.ndarray, depth: int = 3) -> float:
    v = x.copy()
    while True:
        i = 0
        while i < 3 and np.abs(v).sum() < 50.0:
            v = v * w - 0.3 if v.sum() > 0 else v * 0.5 + w
            i += 1
        if depth == 0:
            return float((v ** 2).sum())
        v, depth = np.sin(v), depth - 1


@pytest.mark.parametrize("x, w", [([0.4, -0.1], [1.3, 0.8]), ([-0.5, 0.2], [-0.7, 0.4])])
def test_cond_in_while_in_recursion(gradcheck, x, w) -> None:
    expected = _nested_reference(np.array(x), np.array(w))
    assert _nested(am.tensor(x, dtype=am.float64),
                   am.tensor(w, dtype=am.float64)).item() == pytest.approx(expected, rel=1e-12)
    gradcheck(_nested, x, w)


def _variable_length_rnn(w: am.Tensor, xs: am.Tensor, lengths: am.Tensor) -> am.Tensor:
    """A scan over sequences; each step runs a while loop over that sequence's own length
    (a data-dependent trip count), with a fori_loop refinement inside."""

    def per_sequence(total: am.Tensor, seq: tuple) -> tuple:
        x, n = seq

        def step(c: tuple) -> tuple:
            t, h = c
            h = am.fori_loop(0, 2, lambda _, g: (g * w + x[t]).tanh(), h)
            return t + 1, h

        _, h = am.while_loop(lambda c: c[0] < n, step, (am.tensor(0), am.zeros_like(w)))
        return total + h, h

    total, hs = am.scan(per_sequence, am.zeros_like(w), (xs, lengths))
    return (total ** 2).sum() + hs.sum()


def test_loops_inside_scan(gradcheck) -> None:
    rng = np.random.default_rng(5)
    lengths = am.tensor([3, 0, 5, 1])
    xs = rng.standard_normal((4, 5))
    w = rng.standard_normal(1)
    (gw, gxs) = gradcheck(lambda w_, xs_: _variable_length_rnn(w_, xs_, lengths), w, xs)
    assert np.all(gxs[1] == 0)  # a zero-length sequence contributes nothing
    assert np.all(gxs[0, 3:] == 0) and np.any(gxs[0, :3] != 0)  # nor does padding


def test_scan_inside_cond(gradcheck) -> None:
    def f(x: am.Tensor, a: am.Tensor) -> am.Tensor:
        def run(xs: am.Tensor) -> am.Tensor:
            carry, ys = am.scan(lambda c, v: (c * a + v, c), a, xs)
            return carry + ys.sum()

        return am.cond(x.sum() > 0, run, lambda xs: (xs * a).sum(), x)

    gradcheck(f, [0.3, 0.5, -0.1], 0.9)
    gradcheck(f, [-0.3, 0.5, -0.9], 0.9)


def test_higher_order_gradient_through_while() -> None:
    def f(x: am.Tensor) -> am.Tensor:
        # square until past 100: for x = 1.5 that is 4 squarings, f = x ** 16
        return am.while_loop(lambda v: v < 100.0, lambda v: v * v, x)

    x = am.tensor(1.5, dtype=am.float64)
    assert f(x).item() == pytest.approx(1.5 ** 16)
    assert am.grad(f)(x).item() == pytest.approx(16 * 1.5 ** 15)
    assert am.grad(am.grad(f))(x).item() == pytest.approx(240 * 1.5 ** 14)


def test_value_and_grad_of_closure_in_nested_loops() -> None:
    w = am.tensor([0.5, 2.0], dtype=am.float64)

    def f(scale: am.Tensor) -> am.Tensor:
        def outer(i: am.Tensor, acc: am.Tensor) -> am.Tensor:
            return am.fori_loop(0, 2, lambda j, a: a + w * scale, acc)

        return am.fori_loop(0, 3, outer, am.zeros_like(w)).sum()

    value, g = am.value_and_grad(f)(am.tensor(2.0, dtype=am.float64))
    assert value.item() == pytest.approx(6 * 2.0 * 2.5)
    assert g.item() == pytest.approx(6 * 2.5)
