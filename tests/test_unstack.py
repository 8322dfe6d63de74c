"""Eager split/chunk and a scan's per-step inputs record one tape entry for all their
pieces; gradients (of any order) must be those of the slices they replace."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
from helpers import check_grad


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_split_gradients_first_and_second_order(dim: int) -> None:
    def fn(x: am.Tensor) -> am.Tensor:
        a, b, c = am.split(x, [1, 2, 1], dim)
        return am.cat([a * b.sum(dim, keepdim=True), c.exp() * a], dim)

    check_grad(fn, [np.random.default_rng(0).standard_normal((4, 4, 4))], order=2)


def test_unused_pieces_get_zero_gradient() -> None:
    x = am.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    a, _, c = am.chunk(x, 3, 0)
    (a * 2 + c).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0] * 4, [0.0] * 4, [1.0] * 4])


def test_pieces_without_grad_are_plain_values() -> None:
    x = am.tensor(np.arange(6.0).reshape(2, 3))
    parts = am.split(x, 1, 1)
    assert [tuple(p.shape) for p in parts] == [(2, 1)] * 3
    assert all(p.grad_fn is None and not p.requires_grad for p in parts)
    np.testing.assert_array_equal(parts[2].numpy(), [[2.0], [5.0]])


def test_scan_over_a_tensor_gradients() -> None:
    def fn(xs: am.Tensor, h: am.Tensor) -> am.Tensor:
        def step(c: am.Tensor, x: am.Tensor) -> tuple[am.Tensor, am.Tensor]:
            n = am.tanh(c * x + x)
            return n, n * 2

        last, ys = am.scan(step, h, xs)
        return ys.sum(0) + last

    rng = np.random.default_rng(1)
    check_grad(fn, [rng.standard_normal((5, 3)), rng.standard_normal(3)], order=2)
