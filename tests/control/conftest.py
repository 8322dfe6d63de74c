"""Fixtures for the control-flow tests: a float64 finite-difference gradient check, and
limits restored after every test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import amber as am
from helpers import central_differences

GradCheck = Callable[..., list[np.ndarray]]


def gradcheck_impl(f: Callable[..., Any], *arrays: Any, eps: float = 1e-6, rtol: float = 1e-5,
                   atol: float = 1e-7) -> list[np.ndarray]:
    """Check ``f`` (float64 tensors -> scalar tensor) three ways: ``am.grad``,
    ``Tensor.backward`` and central differences. Returns the gradients."""
    xs = [np.array(a, dtype=np.float64) for a in arrays]
    numeric = central_differences(f, xs, eps=eps)
    by_grad = am.grad(f, argnums=tuple(range(len(xs))))(*[am.tensor(x) for x in xs])
    ts = [am.tensor(x, requires_grad=True) for x in xs]
    out = f(*ts)
    assert out.dtype is am.float64 and tuple(out.shape) == ()
    if out.requires_grad:  # else the output does not depend on the inputs at all
        out.backward()
    for k, (num, g1, t) in enumerate(zip(numeric, by_grad, ts)):
        np.testing.assert_allclose(g1.numpy(), num, rtol=rtol, atol=atol,
                                   err_msg=f"am.grad, argument {k}")
        g2 = np.zeros_like(num) if t.grad is None else t.grad.numpy()
        np.testing.assert_allclose(g2, num, rtol=rtol, atol=atol,
                                   err_msg=f"backward, argument {k}")
    return [g.numpy() for g in by_grad]


@pytest.fixture
def gradcheck() -> GradCheck:
    return gradcheck_impl


@pytest.fixture(autouse=True)
def _restore_limits() -> Iterator[None]:
    prev = am.control.get_limits()
    yield
    am.control.set_limits(max_iterations=prev.max_iterations,
                          max_recursion_depth=prev.max_recursion_depth)
