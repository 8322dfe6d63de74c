"""Symbolic dims for recursion whose shapes change: ``generalise`` (the sizes two calls
disagree on become fresh symbols), floor divisions bounded by their remainders
(``n - n//2 >= 1``), and slices whose bounds are symbolic sizes (``x[:n // 2]``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import amber as am
from amber.capture.dims import bounds, evaluate, fresh_symbol, generalise, symbol

n, m = symbol("n"), symbol("m")


def _text(shapes: list[tuple]) -> list[list[str]]:
    return [[str(d) for d in s] for s in shapes]


@pytest.mark.parametrize(("a", "b", "want"), [
    # one symbol per distinct pair: sizes equal in both calls stay equal
    ([(n,), (n,)], [(n - 1,), (n - 1,)], [["d0"], ["d0"]]),
    ([(n,), (n,)], [(n - 1,), (n,)], [["d0"], ["n"]]),
    ([(5, 3)], [(4, 3)], [["d0", "3"]]),
    ([(8,), (8,)], [(4,), (8,)], [["d0"], ["8"]]),
    # an expression both agree on stays if a plain symbol of theirs binds it
    ([(n,), (n + 1,)], [(n,), (n + 1,)], [["n"], ["n+1"]]),
    # ... else it becomes a symbol: every symbol of the result is bound
    ([(n - 1,)], [(n - 1,)], [["d0"]]),
    ([(n // 2, m)], [(n - n // 2, m)], [["d0", "m"]]),
])
def test_generalise(a, b, want) -> None:
    taken: set[str] = set()
    assert _text(generalise(a, b, taken)) == want
    assert {"n"} <= taken or not any("n" in str(d) for s in a for d in s)


def test_fresh_symbols_avoid_the_names_taken() -> None:
    taken = {"d0", "d2"}
    assert [str(fresh_symbol(taken)) for _ in range(3)] == ["d1", "d3", "d4"]
    # the symbols of the shapes themselves are taken too
    d0 = symbol("d0")
    assert _text(generalise([(d0,)], [(d0 - 1,)], set())) == [["d1"]]


@pytest.mark.parametrize(("expr", "lo", "hi"), [
    (n - n // 2, 1, np.inf),
    (n // 2 - n, -np.inf, -1),
    (n - 2 * (n // 2), 0, 1),
    ((n + 1) // 2 - n // 2, 0, 1),
    (2 * (n // 3) - n, -np.inf, -1),
    ((n // 2) * (n // 2) - n * n, -np.inf, -1),
])
def test_floor_divisions_are_bounded_by_their_remainders(expr, lo, hi) -> None:
    assert bounds(expr) == (lo, hi)


def test_bounds_contain_every_value() -> None:
    atoms = [n, m, n // 2, (n + 1) // 3, (n * m) // 2, m // 4]
    exprs = [a + b for a, b in itertools.combinations(atoms, 2)]
    exprs += [a - b for a, b in itertools.permutations(atoms, 2)]
    exprs += [2 * a - 3 * b + 1 for a, b in itertools.permutations(atoms, 2)]
    exprs += [a * b - a for a, b in itertools.permutations(atoms, 2)]
    for e in exprs:
        lo, hi = bounds(e)
        for nv, mv in itertools.product(range(1, 13), range(1, 9)):
            v = evaluate(e, {"n": nv, "m": mv})
            assert lo <= v <= hi, (e, nv, mv, v, lo, hi)


def test_decided_comparisons() -> None:
    assert n // 2 < n and n // 2 <= n and n - n // 2 >= 1 and n - n // 2 > n // 2 - 1
    with pytest.raises(am.CaptureError, match="the comparison"):
        _ = (n * m) // 2 < n


# ----------------------------------------------------------------------------- slices


@pytest.mark.parametrize(("fn", "want_dim"), [
    (lambda x: x[:x.shape[0] // 2], "n//2"),
    (lambda x: x[x.shape[0] // 2:], "n-n//2"),
    (lambda x: x[x.shape[0] // 3:x.shape[0] - x.shape[0] // 3], "n-2*(n//3)"),
    (lambda x: x[:x.shape[0] + 1], "n"),            # clamped, as NumPy does
    (lambda x: x[-x.shape[0] - 2:], "n"),
    (lambda x: x[:-1 - x.shape[0] // 2], "n-n//2-1"),
])
def test_slices_with_symbolic_bounds(fn, want_dim) -> None:
    program = am.export(lambda x: fn(x) * 2.0, am.spec("n"), sizes={"n": (1, 2, 7)})
    (out,) = program.entry("forward").outputs
    assert [str(d) for d in out.shape] == [want_dim]
    for size in range(1, 9):
        x = np.arange(size, dtype=np.float32)
        np.testing.assert_array_equal(program.run("forward", x)[0], fn(x) * 2.0)


@pytest.mark.parametrize("fn", [
    lambda x: x[:x.shape[0] - 2],       # n - 2 < 0 for n = 1
    lambda x: x[:-(x.shape[0] // 2)],   # x[:-0] is empty for n = 1: not n - n//2
])
def test_a_slice_bound_whose_meaning_depends_on_the_size_is_refused(fn) -> None:
    with pytest.raises(am.CaptureError, match=r"test_dims_generalise.py:\d+"):
        am.export(fn, am.spec("n"))
