"""Autograd semantics: accumulation, no_grad, detach, error messages, retain_graph,
functional am.grad / value_and_grad (argnums, has_aux, nesting to third order)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import amber as am
from helpers import assert_close, check_grad

# Every primitive the front end binds must agree with its infer rule.
pytestmark = pytest.mark.usefixtures("check_infer")


def test_backward_accumulates_over_calls() -> None:
    x = am.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]
    (x * 3.0).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]
    assert x.grad.dtype is am.float32 and not x.grad.requires_grad


def test_backward_with_explicit_gradient() -> None:
    x = am.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).backward(am.tensor([1.0, 0.0, -1.0]))
    assert x.grad.tolist() == [2.0, 0.0, -6.0]


def test_shared_subexpressions_sum_their_gradients() -> None:
    x = am.tensor(2.0, dtype=am.float64, requires_grad=True)
    y = x * x
    z = y * y + y  # x**4 + x**2
    z.backward()
    assert x.grad.item() == 4 * 8 + 2 * 2


def test_no_grad_and_detach() -> None:
    x = am.tensor([1.0], requires_grad=True)
    with am.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert am.is_grad_enabled()
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    z = (x * d).sum()  # d is a constant
    z.backward()
    assert x.grad.tolist() == [1.0]

    @am.no_grad()
    def f(t: am.Tensor) -> am.Tensor:
        return t * 2

    assert not f(x).requires_grad
    with am.no_grad(), am.enable_grad():
        assert (x * 2).requires_grad


def test_backward_on_non_scalar_without_gradient_says_so() -> None:
    x = am.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(am.AutogradError, match=r"scalar outputs.*shape \(2,\)"):
        (x * 2).backward()


def test_second_backward_through_freed_graph_says_so() -> None:
    x = am.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(am.AutogradError, match=r"second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward() -> None:
    x = am.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]


def test_backward_without_requires_grad_raises() -> None:
    with pytest.raises(am.AutogradError, match="does not require grad"):
        am.tensor([1.0]).sum().backward()


def test_autograd_grad_returns_without_accumulating() -> None:
    x = am.tensor([3.0], requires_grad=True)
    y = am.tensor([4.0], requires_grad=True)
    gx, gy = am.autograd.grad((x * y).sum(), [x, y])
    assert gx.tolist() == [4.0] and gy.tolist() == [3.0]
    assert x.grad is None
    unused = am.tensor([1.0], requires_grad=True)
    with pytest.raises(am.AutogradError, match="allow_unused"):
        am.autograd.grad((x * 2).sum(), [x, unused])
    g = am.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)
    assert g[1] is None


def test_integer_ops_stop_gradients() -> None:
    x = am.tensor([1.5, -2.5], requires_grad=True)
    y = (x.to(am.int64) * 2).to(am.float32)  # through an integer: no gradient path
    assert not y.requires_grad


def test_gradients_flow_through_casts_between_floats() -> None:
    x = am.tensor([1.0, 2.0], dtype=am.float64, requires_grad=True)
    (x.to(am.float32) * 3).sum().backward()
    assert x.grad.dtype is am.float64 and x.grad.tolist() == [3.0, 3.0]


# --------------------------------------------------------------------------- functional API


def test_grad_with_argnums() -> None:
    def f(a: am.Tensor, b: am.Tensor) -> am.Tensor:
        return (a * a * b).sum()

    a = am.tensor([1.0, 2.0], dtype=am.float64)
    b = am.tensor([3.0, 4.0], dtype=am.float64)
    assert am.grad(f)(a, b).tolist() == [6.0, 16.0]
    ga, gb = am.grad(f, argnums=(0, 1))(a, b)
    assert ga.tolist() == [6.0, 16.0] and gb.tolist() == [1.0, 4.0]
    assert am.grad(f, argnums=1)(a, b).tolist() == [1.0, 4.0]
    assert not a.requires_grad  # inputs are not modified


def test_grad_of_pytrees() -> None:
    def f(params: dict) -> am.Tensor:
        return (params["w"] * params["v"][0]).sum()

    p = {"w": am.tensor([1.0, 2.0]), "v": [am.tensor([5.0, 6.0])]}
    g = am.grad(f)(p)
    assert g["w"].tolist() == [5.0, 6.0] and g["v"][0].tolist() == [1.0, 2.0]


def test_value_and_grad_and_has_aux() -> None:
    def f(x: am.Tensor) -> tuple[am.Tensor, dict]:
        y = (x * x).sum()
        return y, {"double": x * 2}

    x = am.tensor([1.0, 3.0])
    (value, aux), g = am.value_and_grad(f, has_aux=True)(x)
    assert value.item() == 10.0 and g.tolist() == [2.0, 6.0]
    assert aux["double"].tolist() == [2.0, 6.0]
    g2, aux2 = am.grad(f, has_aux=True)(x)
    assert g2.tolist() == [2.0, 6.0] and "double" in aux2
    v, g3 = am.value_and_grad(lambda t: (t * t).sum())(x)
    assert v.item() == 10.0 and g3.tolist() == [2.0, 6.0] and not v.requires_grad


def test_grad_requires_a_scalar_output() -> None:
    with pytest.raises(am.AutogradError, match="scalar"):
        am.grad(lambda t: t * 2)(am.tensor([1.0, 2.0]))
    with pytest.raises(am.AutogradError, match="floating"):
        am.grad(lambda t: t.sum())(am.tensor([1, 2]))


def test_nested_grad_second_and_third_derivatives() -> None:
    def f(x: am.Tensor) -> am.Tensor:
        return (am.sin(x) * x * x).sum()

    def d1(x: am.Tensor) -> am.Tensor:
        return am.grad(f)(x).sum()

    def d2(x: am.Tensor) -> am.Tensor:
        return am.grad(d1)(x).sum()

    xs = np.array([0.3, -1.2, 2.0])
    x = am.tensor(xs, dtype=am.float64)
    s, c = np.sin(xs), np.cos(xs)
    assert_close(am.grad(f)(x).numpy(), 2 * xs * s + xs * xs * c, rtol=1e-13)
    assert_close(am.grad(d1)(x).numpy(), 2 * s + 4 * xs * c - xs * xs * s, rtol=1e-13,
                 atol=1e-13)
    assert_close(am.grad(d2)(x).numpy(), 6 * c - 6 * xs * s - xs * xs * c, rtol=1e-12,
                 atol=1e-12)


def test_nested_grad_of_a_scalar_function() -> None:
    cube = lambda t: t * t * t
    x = am.tensor(2.0, dtype=am.float64)
    assert am.grad(cube)(x).item() == 12.0
    assert am.grad(am.grad(cube))(x).item() == 12.0
    assert am.grad(am.grad(am.grad(cube)))(x).item() == 6.0
    assert am.grad(am.grad(lambda t: am.exp(t * 2)))(x).item() == pytest.approx(
        4 * math.exp(4.0), rel=1e-14)


def test_create_graph_backward_gives_a_differentiable_grad() -> None:
    x = am.tensor([1.5], dtype=am.float64, requires_grad=True)
    (g,) = am.autograd.grad((x ** 3).sum(), [x], create_graph=True)
    assert g.requires_grad and g.item() == pytest.approx(6.75)
    (h,) = am.autograd.grad(g.sum(), [x])
    assert h.item() == pytest.approx(9.0)


# --------------------------------------------------------------------------- composites


def test_composite_gradients_against_finite_differences() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4))
    check_grad(lambda t: am.softmax(t, dim=1), [x], order=2)
    check_grad(lambda t: am.log_softmax(t, dim=-1), [x], order=2)
    check_grad(lambda t: am.logsumexp(t, 1), [x])
    check_grad(lambda t: am.var(t, 1), [x], order=2)
    check_grad(lambda t: am.relu(t), [x])
    check_grad(lambda t: am.clamp(t, -0.5, 0.5), [x])
    check_grad(lambda t: am.sqrt(t * t + 1.0), [x], order=2)
    check_grad(lambda t: am.prod(t, 1), [x])
    check_grad(lambda a, b: am.matmul(a, b), [x, rng.standard_normal(4)], order=2)
    check_grad(lambda t: am.mean(t, dim=0), [x])
    check_grad(lambda t: t[:, 1:3] ** 2, [x])


def test_nn_composite_gradients_against_finite_differences() -> None:
    import amber.nn.functional as F

    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4))
    check_grad(lambda t: F.gelu(t), [x], order=2)
    check_grad(lambda t: F.gelu(t, approximate="tanh"), [x])
    check_grad(lambda t, w, b: F.layer_norm(t, (4,), w, b), [x, rng.standard_normal(4),
                                                           rng.standard_normal(4)], order=2)
    target = am.tensor([[0, 2, 1, 1], [2, 2, 0, 1]])
    check_grad(lambda t: F.cross_entropy(t, target), [x], order=2)
    img = rng.permutation(2 * 2 * 5 * 5).reshape(2, 2, 5, 5) * 0.1  # distinct: no ties
    check_grad(lambda t: F.max_pool2d(t, 2, stride=2, padding=1), [img])
    check_grad(lambda t: F.avg_pool2d(t, 3, stride=2), [img])
    check_grad(lambda t, w: F.conv2d(t, w, stride=2, padding=1, groups=2),
               [img, rng.standard_normal((4, 1, 3, 3))], order=2)


def test_linear_weight_gradient_over_batch_dims_keeps_the_weights_layout() -> None:
    """x @ w.T with x of rank 3: w's gradient is one product over all rows, row-major
    like w, and equal to the per-row sum."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5))
    w = am.tensor(rng.standard_normal((6, 5)), requires_grad=True)
    g = rng.standard_normal((3, 4, 6))
    (am.tensor(x) @ w.t()).backward(am.tensor(g))
    want = np.einsum("bto,bti->oi", g, x)
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-12, atol=1e-12)
    assert w.grad.numpy().flags.c_contiguous
