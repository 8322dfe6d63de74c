"""am.cond: forward against Python, gradients through the taken branch (operands and
closures) against finite differences, and the predicate and operand type rules."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am


def _f(x: am.Tensor, w: am.Tensor) -> am.Tensor:
    """A branch on data: the branches use an operand and a closed-over tensor."""
    out = am.cond(x.sum() > 0,
                  lambda a: (a * w).sin(),
                  lambda a: a * a - w,
                  x)
    return (out * out).sum()


def test_forward_both_branches() -> None:
    w = am.tensor([0.5, -1.0, 2.0], dtype=am.float64)
    for xv in ([1.0, 2.0, -0.5], [-1.0, -2.0, 0.5]):
        x = np.array(xv)
        expected = np.sin(x * w.numpy()) if x.sum() > 0 else x * x - w.numpy()
        got = am.cond(am.tensor(x).sum() > 0,
                      lambda a: (a * w).sin(), lambda a: a * a - w, am.tensor(x))
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_python_bool_and_numpy_bool_predicates() -> None:
    x = am.tensor([1.0, 2.0])
    assert am.cond(True, lambda a: a + 1, lambda a: a - 1, x).tolist() == [2.0, 3.0]
    assert am.cond(np.bool_(False), lambda a: a + 1, lambda a: a - 1, x).tolist() == [0.0, 1.0]


def test_only_the_taken_branch_runs() -> None:
    ran: list[str] = []

    def t(a: am.Tensor) -> am.Tensor:
        ran.append("true")
        return a

    def f(a: am.Tensor) -> am.Tensor:
        ran.append("false")
        return a

    am.cond(am.tensor(False), t, f, am.tensor(1.0))
    am.cond(am.tensor(True), t, f, am.tensor(1.0))
    assert ran == ["false", "true"]


def test_tree_operands_and_outputs() -> None:
    ops = ({"a": am.tensor(1.0), "b": [am.tensor(2.0), am.tensor(3.0)]},)
    out = am.cond(am.tensor(True),
                  lambda d: (d["a"] + d["b"][0], {"c": d["b"][1] * 2}),
                  lambda d: (d["a"], {"c": d["b"][1]}),
                  *ops)
    assert out[0].item() == 3.0 and out[1]["c"].item() == 6.0
    assert am.cond(am.tensor(True), lambda: am.tensor(7.0), lambda: am.tensor(0.0)).item() == 7.0


@pytest.mark.parametrize("x", [[0.3, 0.7, -0.2], [-0.3, -0.7, 0.2]])
def test_gradient_through_the_taken_branch(gradcheck, x) -> None:
    gradcheck(_f, x, [0.5, -1.0, 2.0])


def test_closure_gradient_only_from_taken_branch() -> None:
    w = am.tensor([1.0, 2.0], dtype=am.float64, requires_grad=True)
    v = am.tensor([3.0, 4.0], dtype=am.float64, requires_grad=True)
    x = am.tensor([1.0, 1.0], dtype=am.float64, requires_grad=True)
    y = am.cond(x.sum() > 0, lambda a: (a * w).sum(), lambda a: (a * v).sum(), x)
    y.backward()
    assert w.grad.tolist() == [1.0, 1.0]
    assert x.grad.tolist() == [1.0, 2.0]
    assert v.grad is None  # the other branch never ran


def test_second_derivative_through_cond() -> None:
    def f(x: am.Tensor) -> am.Tensor:
        return am.cond(x > 0, lambda a: a ** 3, lambda a: -a * a, x)

    d2 = am.grad(am.grad(f))
    assert d2(am.tensor(2.0, dtype=am.float64)).item() == pytest.approx(12.0)
    assert d2(am.tensor(-2.0, dtype=am.float64)).item() == pytest.approx(-2.0)


@pytest.mark.parametrize("pred, shown", [
    (am.tensor(1), "int64[]"),
    (am.tensor(1.0), "float32[]"),
    (am.tensor([True]), "bool[1]"),
    (am.tensor([True, False]), "bool[2]"),
    (1, "Python int"),
    (None, "None"),
    ("yes", "str"),
])
def test_predicate_must_be_a_bool_scalar(pred, shown) -> None:
    with pytest.raises(am.ControlFlowError, match="pred") as e:
        am.cond(pred, lambda: am.tensor(1.0), lambda: am.tensor(0.0))
    assert shown in str(e.value) and "bool scalar" in str(e.value)
    assert isinstance(e.value, am.AmberError) and isinstance(e.value, TypeError)


def test_non_tensor_operands_are_refused() -> None:
    with pytest.raises(am.ControlFlowError, match=r"operands\[1\]\['k'\] is a Python float"):
        am.cond(True, lambda a, b: a, lambda a, b: a, am.tensor(1.0), {"k": 2.5})
    with pytest.raises(am.ControlFlowError, match=r"operands\[0\] is a NumPy array"):
        am.cond(am.tensor(True), lambda a: a, lambda a: a, np.ones(2))


def test_non_tensor_branch_output_is_refused_naming_the_branch() -> None:
    def half(a: am.Tensor) -> tuple:
        return (a, 0.5)

    with pytest.raises(am.ControlFlowError) as e:
        am.cond(am.tensor(True), half, half, am.tensor(1.0))
    msg = str(e.value)
    assert "true_fn `test_non_tensor_branch_output_is_refused_naming_the_branch.<locals>.half`" \
        in msg
    assert "test_control_cond.py:" in msg and "output[1] is a Python float" in msg


def test_python_bool_predicate_checks_outputs_too() -> None:
    with pytest.raises(am.ControlFlowError, match=r"false_fn .* returned output is None"):
        am.cond(False, lambda: am.tensor(1.0), lambda: None)


def test_branches_must_be_callable() -> None:
    with pytest.raises(am.ControlFlowError, match="false_fn must be callable"):
        am.cond(True, lambda: am.tensor(1.0), am.tensor(0.0))
