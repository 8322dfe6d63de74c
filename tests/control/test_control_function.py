"""@am.function: a plain call eagerly, with a stable name; recursion (direct and mutual)
with gradients against finite differences; the recursion depth limit."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am


@am.function
def power(x: am.Tensor, n: am.Tensor) -> am.Tensor:
    """x ** n for an integer tensor n >= 0, by recursion on n."""
    return am.cond(n == 0, lambda: am.ones_like(x), lambda: x * power(x, n - 1))


@am.function(name="fast_power")
def fpow(x: am.Tensor, n: am.Tensor) -> am.Tensor:
    """x ** n by repeated squaring: two recursive calls sites, nested conds."""
    def even_or_odd() -> am.Tensor:
        half = n // 2
        return am.cond(half * 2 == n,
                       lambda: fpow(x, half) ** 2,
                       lambda: x * fpow(x, n - 1))

    return am.cond(n == 0, lambda: am.ones_like(x), even_or_odd)


def test_names_and_wrapping() -> None:
    assert isinstance(power, am.control.GraphFunction)
    assert power.name == "power" and fpow.name == "fast_power"
    assert power.__name__ == "power" and "recursion on n" in power.__doc__
    assert power.python_function.__name__ == "power"
    assert repr(power) == "<amber graph function power>"

    def outer() -> am.control.GraphFunction:
        @am.function
        def inner(x: am.Tensor) -> am.Tensor:
            return x

        return inner

    assert outer().name == "test_names_and_wrapping.outer.inner"


def test_plain_call_with_any_arguments() -> None:
    @am.function
    def f(x: am.Tensor, k: int, *, scale: float = 1.0) -> tuple:
        return x * k * scale, k

    y, k = f(am.tensor(2.0), 3, scale=0.5)
    assert y.item() == 3.0 and k == 3


def test_method() -> None:
    class Cell:
        def __init__(self) -> None:
            self.w = am.tensor(2.0)

        @am.function
        def apply(self, x: am.Tensor) -> am.Tensor:
            return x * self.w

    assert Cell().apply(am.tensor(3.0)).item() == 6.0
    assert Cell.apply.name == "test_method.Cell.apply"


@pytest.mark.parametrize("fn", [power, fpow])
def test_recursive_power_forward_and_gradient(gradcheck, fn) -> None:
    for n in (0, 1, 5, 8):
        x = np.array([0.7, -1.3, 1.1])
        np.testing.assert_allclose(fn(am.tensor(x), am.tensor(n)).numpy(), x ** n, rtol=1e-12)
        (g,) = gradcheck(lambda t, n=n: fn(t, am.tensor(n)).sum(), x)
        np.testing.assert_allclose(g, n * x ** max(n - 1, 0) if n else 0 * x, rtol=1e-9)


def test_second_derivative_of_recursive_function() -> None:
    d2 = am.grad(am.grad(lambda x: power(x, am.tensor(4))))
    assert d2(am.tensor(1.5, dtype=am.float64)).item() == pytest.approx(12 * 1.5 ** 2)


# A parse tree stored as child-index tensors: node i has children left[i], right[i]
# (-1 for a leaf); leaves carry word vectors. Node 0 is the root.
LEFT = np.array([1, 3, 5, -1, -1, -1, -1])
RIGHT = np.array([2, 4, 6, -1, -1, -1, -1])


def _tree_encode(w: am.Tensor, u: am.Tensor, words: am.Tensor) -> am.Tensor:
    left, right = am.tensor(LEFT), am.tensor(RIGHT)

    @am.function
    def encode(i: am.Tensor) -> am.Tensor:
        return am.cond(left[i] < 0,
                       lambda: (u * words[i]).tanh(),
                       lambda: am.matmul(w, am.cat([encode(left[i]), encode(right[i])])).tanh(),
                       )

    return encode(am.tensor(0))


def _tree_reference(w: np.ndarray, u: np.ndarray, words: np.ndarray, i: int = 0) -> np.ndarray:
    if LEFT[i] < 0:
        return np.tanh(u * words[i])
    kids = np.concatenate([_tree_reference(w, u, words, LEFT[i]),
                           _tree_reference(w, u, words, RIGHT[i])])
    return np.tanh(w @ kids)


def test_tree_recursion_forward_and_gradient(gradcheck) -> None:
    rng = np.random.default_rng(3)
    w, u, words = rng.standard_normal((2, 4)), rng.standard_normal(2), rng.standard_normal((7, 2))
    got = _tree_encode(am.tensor(w), am.tensor(u), am.tensor(words)).numpy()
    np.testing.assert_allclose(got, _tree_reference(w, u, words), rtol=1e-12)
    gw, gu, gwords = gradcheck(lambda *a: (_tree_encode(*a) ** 2).sum(), w, u, words)
    assert np.all(gwords[:3] == 0) and np.any(gwords[3:] != 0)  # only leaves hold words


def test_mutual_recursion() -> None:
    @am.function
    def is_even(n: am.Tensor) -> am.Tensor:
        return am.cond(n == 0, lambda: am.tensor(True), lambda: is_odd(n - 1))

    @am.function
    def is_odd(n: am.Tensor) -> am.Tensor:
        return am.cond(n == 0, lambda: am.tensor(False), lambda: is_even(n - 1))

    assert [is_even(am.tensor(k)).item() for k in range(6)] == [True, False] * 3


# ----------------------------------------------------------------------------- limits


@am.function
def countdown(n: am.Tensor) -> am.Tensor:
    return am.cond(n <= 0, lambda: n, lambda: countdown(n - 1))


def test_recursion_within_the_limit() -> None:
    am.control.set_limits(max_recursion_depth=11)
    assert countdown(am.tensor(10)).item() == 0  # 11 nested calls


def test_recursion_past_the_limit_is_a_typed_error() -> None:
    am.control.set_limits(max_recursion_depth=10)
    with pytest.raises(am.RecursionLimitError) as e:
        countdown(am.tensor(10))
    msg = str(e.value)
    assert "11 deep, past max_recursion_depth=10" in msg and "countdown" in msg
    assert "test_control_function.py" in msg and "set_limits" in msg
    assert isinstance(e.value, am.LimitError) and not isinstance(e.value, RecursionError)
    assert countdown(am.tensor(3)).item() == 0  # the depth count was unwound


def test_default_limit_catches_runaway_recursion() -> None:
    @am.function
    def forever(x: am.Tensor) -> am.Tensor:
        return forever(x + 1)

    with pytest.raises(am.RecursionLimitError):
        forever(am.tensor(0))


def test_python_stack_exhaustion_becomes_a_typed_error() -> None:
    am.control.set_limits(max_recursion_depth=10**6)
    with pytest.raises(am.RecursionLimitError, match="Python's own stack ran out") as e:
        countdown(am.tensor(10**5))
    assert not isinstance(e.value, RecursionError)
    am.control.set_limits(max_recursion_depth=50)
    assert countdown(am.tensor(20)).item() == 0
