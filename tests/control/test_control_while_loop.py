"""am.while_loop: data-dependent trip counts, zero iterations, gradients against finite
differences, carry type rules with the mismatching leaf named, and the iteration limit."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am


def _grow(x: am.Tensor, w: am.Tensor) -> am.Tensor:
    """Multiply by w (closed over) until the sum passes 10: the trip count depends on x."""
    def body(c: tuple) -> tuple:
        i, v = c
        return i + 1, v * w + 0.1 * v.sin()

    i, v = am.while_loop(lambda c: c[1].sum() < 10.0, body, (am.tensor(0), x))
    return (v * v).sum() + i.to(am.float64)


def _grow_reference(x: np.ndarray, w: np.ndarray) -> tuple[int, np.ndarray]:
    i, v = 0, x.copy()
    while v.sum() < 10.0:
        i, v = i + 1, v * w + 0.1 * np.sin(v)
    return i, v


@pytest.mark.parametrize("x", [[0.5, 0.25], [1.0, 2.0], [7.0, 4.0]])
def test_forward_matches_python(x) -> None:
    w = np.array([1.5, 1.25])
    i, v = am.while_loop(lambda c: c[1].sum() < 10.0,
                         lambda c: (c[0] + 1, c[1] * am.tensor(w) + 0.1 * c[1].sin()),
                         (am.tensor(0), am.tensor(np.array(x))))
    ri, rv = _grow_reference(np.array(x), w)
    assert i.item() == ri
    np.testing.assert_allclose(v.numpy(), rv, rtol=1e-12)


def test_trip_count_depends_on_the_data() -> None:
    counts = {tuple(x): am.while_loop(lambda c: c[1].sum() < 10.0,
                                      lambda c: (c[0] + 1, c[1] * 2.0),
                                      (am.tensor(0), am.tensor(x)))[0].item()
              for x in ([0.1, 0.1], [1.0, 1.0], [20.0, 0.0])}
    assert counts == {(0.1, 0.1): 6, (1.0, 1.0): 3, (20.0, 0.0): 0}


@pytest.mark.parametrize("x", [[0.5, 0.25], [1.0, 2.0]])
def test_gradient_with_data_dependent_trip_count(gradcheck, x) -> None:
    assert _grow_reference(np.array(x), np.array([1.5, 1.25]))[0] > 2
    gradcheck(_grow, x, [1.5, 1.25])


def test_zero_iterations_return_init_and_pass_gradient(gradcheck) -> None:
    x = am.tensor([11.0, 2.0], dtype=am.float64)
    out = am.while_loop(lambda c: c.sum() < 10.0, lambda c: c * 2.0, x)
    assert out is x
    grads = gradcheck(_grow, [11.0, 2.0], [1.5, 1.25])
    np.testing.assert_allclose(grads[0], [22.0, 4.0])
    np.testing.assert_allclose(grads[1], [0.0, 0.0])


def test_newton_sqrt_is_differentiated_through_its_iterations(gradcheck) -> None:
    def newton_sqrt(a: am.Tensor) -> am.Tensor:
        def body(c: tuple) -> tuple:
            y, _ = c
            y_new = 0.5 * (y + a / y)
            return y_new, (y_new - y).abs()

        y, _ = am.while_loop(lambda c: c[1] > 1e-12, body,
                             (am.ones_like(a), am.tensor(1.0, dtype=am.float64)))
        return y

    for a in (2.0, 9.0, 30.0):
        assert newton_sqrt(am.tensor(a, dtype=am.float64)).item() == pytest.approx(a ** 0.5)
        (g,) = gradcheck(newton_sqrt, a)
        assert g == pytest.approx(0.5 / a ** 0.5, rel=1e-8)


def test_nested_tree_carry() -> None:
    init = {"h": (am.tensor([1.0, 2.0]), am.tensor(0)), "n": [am.tensor(3)]}

    def body(c: dict) -> dict:
        (h, k), (n,) = c["h"], c["n"]
        return {"h": (h * 2.0, k + 1), "n": [n - 1]}

    out = am.while_loop(lambda c: c["n"][0] > 0, body, init)
    assert out["h"][0].tolist() == [8.0, 16.0] and out["h"][1].item() == 3
    assert out["n"][0].item() == 0 and isinstance(out["n"], list)


def test_python_bool_condition() -> None:
    seen = []

    def cond_fn(c: am.Tensor) -> bool:
        seen.append(1)
        return len(seen) <= 3

    assert am.while_loop(cond_fn, lambda c: c + 1.0, am.tensor(0.0)).item() == 3.0


# ----------------------------------------------------------------------------- type rules


def _init() -> tuple:
    return (am.tensor(0), {"h": am.tensor([1.0, 2.0]), "c": am.tensor([0.0, 0.0])})


@pytest.mark.parametrize("body, path, got, want", [
    (lambda c: (c[0] + 1, {"h": c[1]["h"].to(am.float64), "c": c[1]["c"]}),
     "carry[1]['h']", "float64[2]", "float32[2]"),
    (lambda c: (c[0] + 1, {"h": c[1]["h"], "c": am.cat([c[1]["c"], c[1]["c"]])}),
     "carry[1]['c']", "float32[4]", "float32[2]"),
    (lambda c: (c[0].to(am.int32) + 1, c[1]),
     "carry[0]", "int32[]", "int64[]"),
    (lambda c: [c[0] + 1, c[1]],
     "carry", "[int64[], {", "(int64[], {"),
    (lambda c: (c[0] + 1, {"h": c[1]["h"]}),
     "carry[1]", "{'h': float32[2]}", "{'c': float32[2], 'h': float32[2]}"),
    (lambda c: (c[0] + 1, c[1], c[0]),
     "carry", "(int64[], {", "(int64[], {"),
    (lambda c: (c[0] + 1, {"h": c[1]["h"], "c": 0.0}),
     "carry[1]['c']", "a Python float", "float32[2]"),
])
def test_carry_mismatch_names_function_and_leaf(body, path, got, want) -> None:
    with pytest.raises(am.ControlFlowError) as e:
        am.while_loop(lambda c: c[0] < 3, body, _init())
    msg = str(e.value)
    assert msg.startswith("am.while_loop: body_fn `<lambda>` (")
    assert "test_control_while_loop.py:" in msg
    assert f"returned {path} as {got}" in msg and f"init has {want}" in msg


def test_named_body_function_appears_in_the_error() -> None:
    def step(c: am.Tensor) -> am.Tensor:
        return c.to(am.float64)

    with pytest.raises(am.ControlFlowError, match=r"body_fn `.*step` "):
        am.while_loop(lambda c: c < 1, step, am.tensor(0.0))


@pytest.mark.parametrize("init, path, kind", [
    ((0, am.tensor(1.0)), "init[0]", "a Python int"),
    ({"a": None}, "init['a']", "None"),
    ([am.tensor(1.0), np.zeros(2)], "init[1]", "a NumPy array"),
    (1.5, "init", "a Python float"),
])
def test_non_tensor_carries_are_refused(init, path, kind) -> None:
    with pytest.raises(am.ControlFlowError) as e:
        am.while_loop(lambda c: False, lambda c: c, init)
    assert f"{path} is {kind}" in str(e.value) and "must be tensors" in str(e.value)


@pytest.mark.parametrize("pred", [am.tensor(1), am.tensor([True, True]), am.tensor(0.5), 1])
def test_condition_must_return_a_bool_scalar(pred) -> None:
    with pytest.raises(am.ControlFlowError, match=r"cond_fn `.*<lambda>`.*bool scalar"):
        am.while_loop(lambda c: pred, lambda c: c, am.tensor(0.0))


# ----------------------------------------------------------------------------- limits


def _count_to(n: int, **kw) -> int:
    return am.while_loop(lambda c: c < n, lambda c: c + 1, am.tensor(0), **kw).item()


def test_per_call_iteration_limit() -> None:
    assert _count_to(5, max_iterations=5) == 5
    with pytest.raises(am.IterationLimitError, match="iteration 6, past the limit of 5"):
        _count_to(6, max_iterations=5)


def test_global_iteration_limit_and_context_manager() -> None:
    am.control.set_limits(max_iterations=7)
    assert am.control.get_limits().max_iterations == 7
    with pytest.raises(am.IterationLimitError):
        _count_to(8)
    assert _count_to(8, max_iterations=8) == 8  # a per-call limit overrides the global one
    with am.control.limits(max_iterations=2):
        with pytest.raises(am.LimitError):
            _count_to(3)
    assert am.control.get_limits().max_iterations == 7


def test_an_endless_loop_ends_in_a_typed_error() -> None:
    with pytest.raises(am.IterationLimitError) as e:
        am.while_loop(lambda c: c > 0, lambda c: c + 1, am.tensor(1), max_iterations=1000)
    assert isinstance(e.value, am.AmberError) and isinstance(e.value, RuntimeError)
    assert "set_limits" in str(e.value)


def test_unbounded_limit_is_allowed() -> None:
    with am.control.limits(max_iterations=None):
        assert _count_to(20) == 20


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_invalid_limits_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        am.control.set_limits(max_iterations=bad)
    with pytest.raises(ValueError):
        am.control.set_limits(max_recursion_depth=bad)
    with pytest.raises(ValueError):
        _count_to(1, max_iterations=bad)
