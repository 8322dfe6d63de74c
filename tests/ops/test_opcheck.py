"""The op checker must be able to fail: wrong values, wrong gradients, a VJP that is
right only at first order, and an infer rule that disagrees with its kernel."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import amber as am
from amber.ops import elementwise as E
from amber.ops._infer import unary
from amber.ops.registry import Primitive
from helpers import check_forward, check_grad, check_op, infer_checked

FLOATS = (am.float32, am.float64)


def _unregistered(name: str, impl: Any, vjp: Any, infer: Any = None) -> Primitive:
    p = Primitive(name, impl, infer or unary(name, FLOATS), {}, 1)
    p.def_vjp(vjp)
    return p


def test_accepts_a_correct_op() -> None:
    x = np.array([[0.5, -1.0, 2.0]])
    check_op(am.tanh, [x], np.tanh, grad=True, order=2, kind="transcendental")


def test_detects_wrong_values() -> None:
    with pytest.raises(AssertionError, match="forward"):
        check_forward(am.exp, [np.array([1.0, 2.0])], lambda x: np.exp(x) * (1 + 1e-3),
                      kind="transcendental")


def test_detects_wrong_dtype() -> None:
    with pytest.raises(AssertionError, match="dtype"):
        check_forward(am.exp, [np.array([1.0], np.float32)], lambda x: np.exp(x.astype("f8")))


def test_detects_wrong_gradient() -> None:
    bad = _unregistered("bad_sin", np.sin, lambda g, out, x: (g * E.sin(x),))
    with pytest.raises(AssertionError, match="finite differences"):
        check_grad(bad, [np.array([0.3, 1.1])])


def test_detects_a_vjp_wrong_only_at_second_order() -> None:
    # d/dx x^3 = 3 x^2 is right, but detaching x hides the second derivative.
    cube = _unregistered("cube", lambda x: x ** 3,
                         lambda g, out, x: (g * 3.0 * x.detach() * x.detach(),))
    check_grad(cube, [np.array([0.7, -1.3])], order=1)
    with pytest.raises(AssertionError, match="second order"):
        check_grad(cube, [np.array([0.7, -1.3])], order=2)


def test_detects_infer_kernel_disagreement() -> None:
    wrong = _unregistered("wrong_infer", lambda x: x.astype(np.float64),
                          lambda g, out, x: (g,), infer=unary("wrong_infer", FLOATS))
    with pytest.raises(AssertionError, match="infer predicts"):
        check_forward(wrong, [np.array([1.0], np.float32)], lambda x: x.astype(np.float64))


def test_detects_kernel_accepting_what_infer_rejects() -> None:
    with infer_checked(), pytest.raises(AssertionError, match="kernel accepted"):
        E.exp(am.tensor([1, 2]))  # int64: infer says floats only


def test_infer_log_records_primitives() -> None:
    with infer_checked() as log:
        am.softmax(am.tensor([[1.0, 2.0]]), dim=1)
    assert {"exp", "max", "sum", "div"} <= log.names


def test_transcendental_tolerance_is_four_ulp() -> None:
    x = np.array([0.3, 1.7, -2.2], dtype=np.float32)
    exact = np.exp(x.astype(np.float64)).astype(np.float32)
    three_ulp = exact + 3 * np.spacing(exact)
    five_ulp = exact + 5 * np.spacing(exact)
    check_forward(lambda t: am.exp(t) * 0 + am.tensor(three_ulp), [x], lambda v: exact,
                  kind="transcendental")
    with pytest.raises(AssertionError, match="forward"):
        check_forward(lambda t: am.exp(t) * 0 + am.tensor(five_ulp), [x], lambda v: exact,
                      kind="transcendental")
