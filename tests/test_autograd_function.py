"""``am.autograd.Function``: hand-written backward passes on the autograd tape."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
from amber.errors import AutogradError, CaptureError


class Exp(am.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class ScaleAndSum(am.autograd.Function):
    """Two outputs and a non-tensor argument."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        return x * k, x.sum()

    @staticmethod
    def backward(ctx, g_scaled, g_sum):
        return g_scaled * ctx.k + g_sum, None


class StraightThrough(am.autograd.Function):
    """New-style: forward without ctx, setup_context apart; a gradient unlike the
    derivative (the straight-through estimator)."""

    @staticmethod
    def forward(x):
        return x.round()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.seen = len(inputs)

    @staticmethod
    def backward(ctx, g):
        return g


def _x(*values: float) -> am.Tensor:
    return am.tensor(np.array(values, dtype=np.float64), requires_grad=True)


def test_single_output_gradient_matches_finite_differences() -> None:
    x = _x(0.3, -1.2, 2.0)
    (Exp.apply(x) * am.tensor(np.array([1.0, 2.0, 3.0]))).sum().backward()
    eps = 1e-6
    v = x.detach().numpy()
    numeric = [(np.exp(v[i] + eps) - np.exp(v[i] - eps)) / (2 * eps) * (i + 1)
               for i in range(3)]
    np.testing.assert_allclose(x.grad.numpy(), numeric, rtol=1e-8)


def test_several_outputs_get_one_backward_with_zeros_for_the_unused() -> None:
    x = _x(1.0, 2.0, 3.0)
    a, b = ScaleAndSum.apply(x, 2.0)
    assert a.shape == (3,) and b.shape == ()
    (a.sum() * 3 + b * 5).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [11.0, 11.0, 11.0])
    x.grad = None
    a, _ = ScaleAndSum.apply(x, 2.0)
    a.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_setup_context_style_and_a_custom_gradient() -> None:
    x = _x(0.4, 1.6)
    y = StraightThrough.apply(x)
    np.testing.assert_array_equal(y.detach().numpy(), [0.0, 2.0])
    (y * y).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 4.0])  # 2 * y * 1


def test_no_tape_entry_without_a_grad_input() -> None:
    y = Exp.apply(am.tensor(np.array([1.0])))
    assert not y.requires_grad
    with am.no_grad():
        assert not Exp.apply(_x(1.0)).requires_grad


def test_needs_input_grad_and_non_differentiable_outputs() -> None:
    seen = {}

    class ArgMaxAndMax(am.autograd.Function):
        @staticmethod
        def forward(ctx, x, other):
            seen["needs"] = ctx.needs_input_grad
            idx = x.argmax()
            ctx.mark_non_differentiable(idx)
            ctx.save_for_backward(x, idx)
            return idx, x.max()

        @staticmethod
        def backward(ctx, g_idx, g_max):
            x, idx = ctx.saved_tensors
            assert g_idx is None
            onehot = np.zeros(x.shape)
            onehot[int(idx.item())] = 1.0
            return g_max * am.tensor(onehot), None

    x = _x(1.0, 5.0, 2.0)
    idx, top = ArgMaxAndMax.apply(x, am.tensor(np.ones(3)))
    assert seen["needs"] == (True, False)
    assert not idx.requires_grad
    top.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0])


def test_double_backward_through_a_backward_written_in_amber_ops() -> None:
    x = _x(0.5)
    (g,) = am.autograd.grad(Exp.apply(x), x, create_graph=True)
    (gg,) = am.autograd.grad(g, x)
    np.testing.assert_allclose(gg.numpy(), np.exp([0.5]))


def test_once_differentiable_backward_records_nothing() -> None:
    class Square(am.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @am.autograd.once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = _x(3.0)
    (g,) = am.autograd.grad(Square.apply(x), x, create_graph=True)
    assert g.item() == 6.0 and not g.requires_grad


@pytest.mark.parametrize("bad,message", [
    (lambda g: (g, g), "returned 2 gradient"),
    (lambda g: g[:1], "has shape (1,)"),
    (lambda g: 3.0, "expected a Tensor or None"),
])
def test_a_wrong_backward_is_named(bad, message) -> None:
    class Wrong(am.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return bad(g)

    x = _x(1.0, 2.0)
    with pytest.raises(AutogradError, match=r"Wrong\.backward") as info:
        Wrong.apply(x).sum().backward()
    assert message in str(info.value)


def test_capture_traces_the_forward_and_refuses_a_captured_gradient(tmp_path) -> None:
    layer = am.nn.Linear(3, 2)

    def forward(x):
        return Exp.apply(layer(x))

    program = am.export(forward, am.spec((4, 3)))
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    with am.no_grad():
        expected = Exp.apply(layer(am.tensor(x))).numpy()
    program.save(str(tmp_path / "exp.amber"))
    loaded = am.load(str(tmp_path / "exp.amber"))
    np.testing.assert_allclose(loaded(x).numpy(), expected, rtol=1e-6)

    def gradient(x):
        return am.grad(lambda v: Exp.apply(v).sum())(x)

    with pytest.raises(CaptureError, match=r"(?s)test_autograd_function.py:\d+: .*Exp is a custom"):
        am.export(gradient, am.spec((3,)))
