"""am.fori_loop: forward, index dtype, empty ranges, gradients, bound and carry rules and
the iteration limit (checked before the loop starts)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import amber as am


def _horner(coeffs: am.Tensor, x: am.Tensor) -> am.Tensor:
    """p(x) = sum_k coeffs[k] x^k by Horner's rule; the body indexes with the loop index."""
    n = coeffs.shape[0]
    return am.fori_loop(0, n, lambda i, acc: acc * x + coeffs[n - 1 - i], am.zeros_like(x))


def test_forward_matches_python() -> None:
    c = np.array([1.0, -2.0, 0.5, 3.0])
    x = np.array([0.3, -1.2, 2.0])
    got = _horner(am.tensor(c), am.tensor(x)).numpy()
    np.testing.assert_allclose(got, np.polynomial.polynomial.polyval(x, c), rtol=1e-6)


def test_index_is_an_integer_tensor() -> None:
    seen: list[tuple] = []

    def body(i: am.Tensor, c: am.Tensor) -> am.Tensor:
        seen.append((i.dtype, tuple(i.shape), i.item()))
        return c + i

    out = am.fori_loop(2, 5, body, am.tensor(0))
    assert out.item() == 2 + 3 + 4
    assert seen == [(am.int64, (), 2), (am.int64, (), 3), (am.int64, (), 4)]
    seen.clear()
    am.fori_loop(am.tensor(1, dtype=am.int32), 3, body, am.tensor(0, dtype=am.int32))
    assert [s[0] for s in seen] == [am.int32, am.int32]


@pytest.mark.parametrize("lo, hi", [(3, 3), (5, 2), (0, 0)])
def test_empty_range_returns_init(lo, hi) -> None:
    x = am.tensor([1.0, 2.0])
    assert am.fori_loop(lo, hi, lambda i, c: c * 0.0, x) is x


def test_gradient(gradcheck) -> None:
    gradcheck(lambda c, x: _horner(c, x).sum(), [1.0, -2.0, 0.5, 3.0], [0.3, -1.2, 2.0])


def test_gradient_of_closure(gradcheck) -> None:
    def f(w: am.Tensor, x: am.Tensor) -> am.Tensor:
        h = am.fori_loop(0, 4, lambda i, h: (h * w).tanh() + x, x)
        return h.sum()

    gradcheck(f, [0.7, -0.4], [0.2, 0.9])


def test_zero_iteration_gradient(gradcheck) -> None:
    def f(x: am.Tensor) -> am.Tensor:
        return (am.fori_loop(4, 4, lambda i, h: h.sin(), x) ** 2).sum()

    (g,) = gradcheck(f, [0.5, 1.5])
    np.testing.assert_allclose(g, [1.0, 3.0])


@pytest.mark.parametrize("bound, kind", [(1.5, "Python float"), (True, "Python bool"),
                                         (am.tensor(2.0), "float32[]"),
                                         (am.tensor([1, 2]), "int64[2]")])
def test_bounds_must_be_integers(bound, kind) -> None:
    with pytest.raises(am.ControlFlowError, match=f"upper is .*{re.escape(kind)}.*loop bounds"):
        am.fori_loop(0, bound, lambda i, c: c, am.tensor(0.0))


def test_carry_mismatch() -> None:
    with pytest.raises(am.ControlFlowError, match=r"body_fn `.*<lambda>`.*returned carry\[1\] "
                                                  r"as float32\[3\], but init has float32\[2\]"):
        am.fori_loop(0, 2, lambda i, c: (c[0], am.cat([c[1], c[1][:1]])),
                     (am.tensor(0.0), am.tensor([1.0, 2.0])))
    with pytest.raises(am.ControlFlowError, match=r"init\[0\] is a Python int"):
        am.fori_loop(0, 2, lambda i, c: c, (0, am.tensor(1.0)))


def test_iteration_limit_is_checked_up_front() -> None:
    ran = []

    def body(i: am.Tensor, c: am.Tensor) -> am.Tensor:
        ran.append(1)
        return c

    with pytest.raises(am.IterationLimitError, match=r"range\(0, 11\).*11 iterations.*10"):
        am.fori_loop(0, 11, body, am.tensor(0.0), max_iterations=10)
    assert ran == []
    am.control.set_limits(max_iterations=3)
    with pytest.raises(am.IterationLimitError):
        am.fori_loop(0, 4, body, am.tensor(0.0))
    am.fori_loop(0, 3, body, am.tensor(0.0))
    assert len(ran) == 3
