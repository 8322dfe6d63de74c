"""Tensor conveniences with PyTorch's semantics: .data, new_*, in-place ops and their
autograd rules, rounding, .numpy() on tensors that require grad."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import amber as am


def test_numpy_of_a_tensor_that_requires_grad_raises():
    w = am.ones(2, requires_grad=True)
    with pytest.raises(am.AutogradError, match=r"detach\(\)\.numpy\(\)"):
        w.numpy()
    with pytest.raises(am.AutogradError):
        (w * 2).numpy()
    assert w.detach().numpy().tolist() == [1.0, 1.0]
    assert w.numpy(force=True).tolist() == [1.0, 1.0]
    assert np.asarray(w).tolist() == [1.0, 1.0]


def test_data_is_a_detached_view_and_can_be_replaced():
    w = am.ones(2, requires_grad=True)
    d = w.data
    assert not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.numpy(), w.detach().numpy())
    w.data.mul_(3)  # in place through .data: the owner changes, without autograd
    assert w.detach().tolist() == [3.0, 3.0] and w.requires_grad and w.is_leaf
    w.data[0] = 5.0
    w.data.data.add_(1)
    assert w.detach().tolist() == [6.0, 4.0]
    w.data = am.zeros(3)
    assert w.shape == (3,) and w.requires_grad and w.detach().tolist() == [0.0] * 3
    with pytest.raises(am.AmberError, match="Tensor"):
        w.data = [1.0]


def test_new_tensor_factories_inherit_dtype():
    t = am.ones(2, dtype=am.float64)
    assert t.new_zeros(2, 3).dtype is am.float64 and t.new_zeros((2, 3)).shape == (2, 3)
    assert t.new_ones(4).tolist() == [1.0] * 4
    assert t.new_full((2,), 7).tolist() == [7.0, 7.0] and t.new_full((2,), 7).dtype is am.float64
    assert t.new_empty(1, 2).shape == (1, 2)
    assert t.new_tensor([1, 2]).dtype is am.float64
    assert t.new_zeros(2, dtype=am.int32).dtype is am.int32
    assert t.new_ones(2, requires_grad=True).requires_grad
    with pytest.raises(am.DeviceError):
        t.new_zeros(2, device="cuda")


@pytest.mark.parametrize("op", [
    lambda t: t.add_(1), lambda t: t.sub_(1, alpha=2), lambda t: t.mul_(2),
    lambda t: t.div_(2), lambda t: t.clamp_(0, 1), lambda t: t.zero_(),
    lambda t: t.fill_(3), lambda t: t.copy_(am.zeros(2)),
    lambda t: t.masked_fill_(am.tensor([True, False]), 0.0)])
def test_in_place_on_a_leaf_that_requires_grad(op):
    w = am.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(am.AutogradError, match="no_grad"):
        op(w)
    with am.no_grad():
        assert op(w) is w
    assert w.requires_grad and w.is_leaf
    y = w * 1.0
    with am.no_grad(), pytest.raises(am.AutogradError, match="no_grad"):
        op(y)
    z = y * 2.0  # an op recorded for autograd reads y: changing y would corrupt it
    with pytest.raises(am.AutogradError, match="earlier operation"):
        op(y)
    assert z.requires_grad


@pytest.mark.parametrize("name, op, want_grad", [
    ("add_", lambda t: t.add_(am.tensor([1.0, 2.0, 3.0]), alpha=2), [3.0, 3.0, 3.0]),
    ("mul_", lambda t: t.mul_(2), [6.0, 6.0, 6.0]),
    ("div_", lambda t: t.div_(4), [0.75, 0.75, 0.75]),
    ("clamp_", lambda t: t.clamp_(max=4.0), [3.0, 0.0, 0.0]),
    ("masked_fill_", lambda t: t.masked_fill_(am.tensor([False, True, False]), 0.0),
     [3.0, 0.0, 3.0]),
    ("copy_", lambda t: t.copy_(am.zeros(3)), None),
    ("zero_", lambda t: t.zero_(), None),
])
def test_in_place_on_an_intermediate_is_recorded(name, op, want_grad):
    """y = 3 x; y.<op>; sum(y): the gradient goes through the in-place op, as in
    PyTorch; the tensor keeps its identity."""
    x = am.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 3.0
    assert op(y) is y
    if want_grad is None:  # the new value is a constant: no gradient reaches x
        assert not y.requires_grad
        return
    assert y.requires_grad and not y.is_leaf
    y.sum().backward()
    assert x.grad.tolist() == want_grad


def test_in_place_values():
    t = am.tensor([1.0, -2.0, 3.0])
    assert t.add_(am.ones(3), alpha=2).tolist() == [3.0, 0.0, 5.0]
    assert t.sub_(1).mul_(2).tolist() == [4.0, -2.0, 8.0]
    assert t.div_(4).tolist() == [1.0, -0.5, 2.0]
    assert t.clamp_(min=0).tolist() == [1.0, 0.0, 2.0]
    assert t.masked_fill_(am.tensor([False, True, False]), 9.0).tolist() == [1.0, 9.0, 2.0]
    assert t.fill_(am.tensor(4.0)).tolist() == [4.0] * 3
    assert t.copy_(am.tensor([1, 2, 3])).tolist() == [1.0, 2.0, 3.0] and t.dtype is am.float32
    assert t.div_(2, rounding_mode="floor").tolist() == [0.0, 1.0, 1.0]
    assert t.zero_().tolist() == [0.0] * 3
    g = am.ones(2, requires_grad=True)
    (g * 2).sum().backward()
    g.grad.zero_()  # gradients themselves may change in place
    assert g.grad.tolist() == [0.0, 0.0]


def test_rounding_methods_match_numpy_and_have_zero_gradient():
    x = am.tensor([-2.5, -1.5, -0.5, -0.4, 0.5, 1.5, 2.5, 0.49999997, 2.7, -3.2, 1e30],
                  requires_grad=True)
    a = x.detach().numpy()
    for name, ref in (("round", np.round), ("trunc", np.trunc), ("floor", np.floor),
                      ("ceil", np.ceil)):
        got = getattr(x, name)()
        assert got.detach().numpy().tobytes() == ref(a).tobytes(), name  # -0.0 too
        (g,) = am.autograd.grad(got.sum(), x)
        assert g.tolist() == [0.0] * 11
    np.testing.assert_allclose(am.round(am.tensor([1.2345, -2.675]), decimals=2).numpy(),
                               np.round(np.array([1.2345, -2.675], np.float32), 2))
    assert am.round(am.tensor([3])).tolist() == [3] and am.trunc(am.tensor([-3])).tolist() == [-3]


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=5),
                  elements=st.floats(-1e6, 1e6, allow_nan=False)))
def test_round_and_trunc_agree_with_numpy(a):
    x = am.tensor(a)
    assert x.round().numpy().tobytes() == np.round(a).tobytes()
    assert x.trunc().numpy().tobytes() == np.trunc(a).tobytes()
    halves = np.floor(a) + 0.5
    assert am.tensor(halves).round().numpy().tobytes() == np.round(halves).tobytes()
