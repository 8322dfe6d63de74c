"""Tensor.register_hook and Module forward / backward hooks: PyTorch's call order,
arguments and replacement semantics, removable handles."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.nn as nn


def test_tensor_hook_replaces_the_gradient_of_leaf_and_intermediate():
    x = am.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    hx = x.register_hook(lambda g: g * 10)
    y = x * 3
    y.register_hook(lambda g: seen.append(g.tolist()))
    y.register_hook(lambda g: g + 1)  # runs after the first, replaces y's gradient
    (y * y).sum().backward()
    assert seen == [[6.0, 12.0]]
    np.testing.assert_allclose(x.grad.numpy(), [(6 + 1) * 3 * 10, (12 + 1) * 3 * 10])
    hx.remove()
    hx.remove()  # twice is harmless
    x.grad = None
    (x * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_leaf_hook_sees_the_summed_gradient_once():
    x = am.tensor([1.0], requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(g.item()))
    (x * 2 + x * 3).sum().backward()
    assert calls == [5.0]


def test_tensor_hooks_apply_to_autograd_grad_and_check_their_result():
    x = am.tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: -g)
    (g,) = am.autograd.grad((x * x).sum(), x)
    assert g.tolist() == [-2.0, -4.0]
    z = am.ones(2, requires_grad=True)
    z.register_hook(lambda g: am.ones(3))
    with pytest.raises(am.AutogradError, match="shape"):
        (z * 2).sum().backward()
    with pytest.raises(am.AutogradError, match="doesn't require"):
        am.ones(2).register_hook(lambda g: g)


def test_forward_pre_hook_and_forward_hook_replace_args_and_output():
    m = nn.Linear(3, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: calls.append("pre1") or args[0] * 0)
    h2 = m.register_forward_pre_hook(lambda mod, args: calls.append("pre0"), prepend=True)
    h3 = m.register_forward_hook(lambda mod, args, out: out + 1.0)
    h4 = m.register_forward_hook(
        lambda mod, args, kwargs, out: calls.append(("post", kwargs)), with_kwargs=True)
    out = m(am.ones(1, 3))
    assert calls == ["pre0", "pre1", ("post", {})]
    np.testing.assert_allclose(out.detach().numpy(), m.bias.detach().numpy()[None] + 1,
                               rtol=1e-6)
    for h in (h1, h2, h3, h4):
        h.remove()
    x = am.ones(1, 3)
    np.testing.assert_allclose(m(x).detach().numpy(),
                               (x @ m.weight.T + m.bias).detach().numpy())


def test_forward_pre_hook_with_kwargs():
    class Scale(nn.Module):
        def forward(self, x, factor=1.0):
            return x * factor

    s = Scale()
    s.register_forward_pre_hook(lambda mod, args, kwargs: (args, {"factor": 5.0}),
                                with_kwargs=True)
    assert s(am.ones(1)).item() == 5.0
    s.register_forward_pre_hook(lambda mod, args, kwargs: 3, with_kwargs=True)
    with pytest.raises(am.AmberError, match="new_args, new_kwargs"):
        s(am.ones(1))


def test_full_backward_hook_sees_and_replaces_input_gradients():
    m = nn.Linear(3, 2)
    seen = []

    def hook(mod, grad_input, grad_output):
        seen.append((mod, [g.detach().numpy().copy() for g in grad_input],
                     [g.detach().numpy().copy() for g in grad_output]))
        return (grad_input[0] * 2,)

    h = m.register_full_backward_hook(hook)
    x = am.randn(4, 3, requires_grad=True)
    m(x).sum().backward()
    (mod, gin, gout), = seen
    assert mod is m
    np.testing.assert_allclose(gout[0], np.ones((4, 2)))
    want = np.ones((4, 2)) @ m.weight.detach().numpy()
    np.testing.assert_allclose(gin[0], want, rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), 2 * want, rtol=1e-6)
    h.remove()
    x.grad = None
    m(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-6)


def test_full_backward_hook_with_two_inputs_and_a_constant_one():
    class Mix(nn.Module):
        def forward(self, a, b, c):
            return a * b + c, a - c

    m = Mix()
    seen = []
    m.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, go)))
    m.register_full_backward_pre_hook(lambda mod, go: (go[0] * 3, go[1]))
    a = am.tensor([1.0, 2.0], requires_grad=True)
    b = am.tensor([3.0, 4.0], requires_grad=True)
    c = am.tensor([5.0, 6.0])  # needs no gradient: its entry is None
    p, q = m(a, b, c)
    (p.sum() + q.sum()).backward()
    (gi, go), = seen
    assert go[0].tolist() == [3.0, 3.0] and go[1].tolist() == [1.0, 1.0]
    assert gi[0].tolist() == [3 * 3 + 1, 3 * 4 + 1] and gi[1].tolist() == [3.0, 6.0]
    assert gi[2] is None
    assert a.grad.tolist() == [10.0, 13.0] and b.grad.tolist() == [3.0, 6.0]


def test_backward_hook_fires_for_parameters_only_modules():
    m = nn.Linear(2, 1)
    seen = []
    m.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, go)))
    m(am.ones(1, 2)).sum().backward()  # input needs no gradient
    (gi, go), = seen
    assert gi == (None,) and go[0].tolist() == [[1.0]]
    assert m.weight.grad.tolist() == [[1.0, 1.0]]


def test_hooks_stay_out_of_no_grad_and_capture():
    m = nn.Linear(2, 2)
    calls = []
    m.register_full_backward_hook(lambda *a: calls.append(1))
    m.register_forward_hook(lambda mod, a, o: calls.append("f"))
    with am.no_grad():
        m(am.ones(1, 2))
    assert calls == ["f"]
    program = am.export(m, am.spec(1, 2))  # runs forward (hooks too), no backward
    assert len(calls) > 1 and set(calls) == {"f"} and program is not None
