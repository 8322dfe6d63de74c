"""Recursion whose shapes change (``f(x[1:])``, ``f(x[:n // 2])``) is captured as one
recursive function: the sizes that differ between a call and the trace in progress are
generalised to symbols, and the recursive call is a ``call`` of the same function. A
function that needs such a size as a Python value is traced by shape instead (the
static shapes decide its recursion). Exported results run by the reference interpreter
and by the native runtime equal eager ones; gradients match central finite differences
in float64, eagerly and exported; deep recursion ends in typed errors (Python) and an
error status (C)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am
from amber.interpreter import Interpreter
from helpers import central_differences

F64 = am.float64
RNG = np.random.default_rng(11)


@am.function
def suffix_sum(x: am.Tensor) -> am.Tensor:
    """sin(x[0]) + 0.9 * (the same of x[1:]), stopping before the first negative entry:
    the recursion depth depends on the data."""
    n = x.shape[0]

    def more() -> am.Tensor:
        return am.cond(am.tensor(1) >= n, lambda: x[0].sin(),
                       lambda: x[0].sin() + 0.9 * suffix_sum(x[1:]))

    return am.cond(x[0] < 0, lambda: x[0] * 0.0, more)


def suffix_reference(x: np.ndarray) -> float:
    total, scale = 0.0, 1.0
    for v in x:
        if v < 0:
            break
        total += scale * np.sin(v)
        scale *= 0.9
    return total


@am.function
def halving_sum(x: am.Tensor, tol: am.Tensor) -> am.Tensor:
    """Sum of x by recursive halving; a run whose values spread by at most ``tol`` is
    summed as its length times the mean of its end values."""
    n = x.shape[0]
    flat = (x.max() - x.min() <= tol) | (am.tensor(1) >= n)
    return am.cond(flat, lambda: (x[0] + x[-1]) * 0.5 * n,
                   lambda: halving_sum(x[:n // 2], tol) + halving_sum(x[n // 2:], tol))


def halving_reference(x: np.ndarray, tol: float) -> tuple[float, int]:
    """The value and the recursion depth."""
    n = len(x)
    if x.max() - x.min() <= tol or n <= 1:
        return (x[0] + x[-1]) * 0.5 * n, 1
    (a, da), (b, db) = halving_reference(x[:n // 2], tol), halving_reference(x[n // 2:], tol)
    return a + b, 1 + max(da, db)


def _functions(program: am.Program, gf: am.control.GraphFunction) -> list[str]:
    """The functions traced from ``gf`` (named after it, with a numeric suffix if many)."""
    base = re.escape(re.sub(r"[^A-Za-z0-9_]", "_", gf.name))
    return [name for name in program.functions if re.fullmatch(rf"{base}(_\d+)?", name)]


def _calls(program: am.Program, callee: str) -> int:
    return sum(n.op == "call" and n.attrs["callee"] == callee
               for f in program.functions.values() for n in f.nodes)


def _save_load(program: am.Program, tmp_path: Path, name: str = "m") -> am.Model:
    path = tmp_path / f"{name}.amber"
    program.save(path)
    model = am.load(path)
    assert model.backend == "native", model.backend_reason
    assert all(r.ok for r in model.verify())
    return model


def _check_runs(model: am.Model, eager: Callable[..., Any], cases: Sequence[Sequence[Any]],
                rtol: float = 1e-12) -> None:
    """Reference interpreter and native runtime against eager, on every case."""
    for args in cases:
        want = eager(*[am.tensor(a) for a in args])
        want = [w.numpy() for w in (want if isinstance(want, (tuple, list)) else [want])]
        ref = Interpreter(model.program).run("forward", *args)
        nat = model.native.run("forward", *args)
        for w, r, n in zip(want, ref, nat, strict=True):
            np.testing.assert_allclose(r, w, rtol=rtol, atol=1e-13)
            np.testing.assert_allclose(n, w, rtol=rtol, atol=1e-13)


# ----------------------------------------------------------------------------- one function


def test_recursion_on_a_static_shape_is_one_recursive_function(tmp_path) -> None:
    program = am.export(suffix_sum, am.spec(6, dtype=F64, low=-0.3, high=1.0))
    (fn,) = _functions(program, suffix_sum)  # not one function per length 6, 5, ..., 1
    assert [str(d) for d in program.functions[fn].params[0].aval.shape] == ["d0"]
    assert _calls(program, fn) == 2  # the entry's call and the recursive one
    model = _save_load(program, tmp_path)
    cases = [[np.array([0.5, 1.0, 2.0, 0.1, 0.3, 0.7])], [np.array([0.5, -1.0, 2, 3, 4, 5])],
             [np.array([-0.5, 1.0, 2, 3, 4, 5.0])], [np.array([1.0, 2, 3, 4, 5, -6])]]
    _check_runs(model, suffix_sum, cases)
    for (x,) in cases:
        assert suffix_sum(am.tensor(x)).item() == pytest.approx(suffix_reference(x), rel=1e-12)


def test_a_first_call_whose_size_is_an_expression(tmp_path) -> None:
    # the first trace has the type float64[2*n] (not a plain symbol), so its recursive
    # call with float64[2*n-1] does not fit it: generalised to one function of float64[d0]
    def f(x):
        return suffix_sum(am.cat([x, x * 2.0]))

    program = am.export(f, am.spec("n", dtype=F64, low=-0.2, high=1.0), sizes={"n": (1, 9)})
    (fn,) = _functions(program, suffix_sum)
    assert [str(d) for d in program.functions[fn].params[0].aval.shape] == ["d0"]
    assert _calls(program, fn) == 2
    model = _save_load(program, tmp_path)
    _check_runs(model, f, [[RNG.uniform(0.1, 1.0, n)] for n in (1, 2, 17, 40)]
                + [[np.array([1.0, 2.0, -1.0, 4.0])]])


@pytest.mark.parametrize("n", [64, "n"])
def test_a_tree_reduction_that_halves_its_input(tmp_path, n) -> None:
    program = am.export(halving_sum, am.spec(n, dtype=F64),
                        am.spec(dtype=F64, low=0.1, high=0.5),
                        sizes={"n": (3, 8)} if n == "n" else None)
    (fn,) = _functions(program, halving_sum)
    assert _calls(program, fn) == 3  # the entry's and the two halves'
    model = _save_load(program, tmp_path)
    smooth = np.linspace(0.0, 1.0, 64)
    rough = smooth + np.where(np.arange(64) > 50, RNG.uniform(-1, 1, 64), 0.0)
    depths = []
    for x in (smooth, rough):
        for tol in (2.0, 0.3, 0.01):
            want, depth = halving_reference(x, tol)
            depths.append(depth)
            got = model(x, np.float64(tol)).numpy()
            np.testing.assert_allclose(got, want, rtol=1e-12)
            np.testing.assert_allclose(Interpreter(model.program).run(
                "forward", x, np.float64(tol))[0], want, rtol=1e-12)
    assert min(depths) == 1 and max(depths) == 7  # log2(64) + 1: the data decide


def test_sizes_equal_in_both_calls_stay_equal_and_unchanged_sizes_stay(tmp_path) -> None:
    @am.function
    def dot_tail(x, y, w):
        # x and y shrink together (one symbol for both), w keeps its size
        n = x.shape[0]
        head = x[0] * y[0] + w.sum()
        return am.cond(am.tensor(1) >= n, lambda: head, lambda: head + dot_tail(x[1:], y[1:], w))

    program = am.export(dot_tail, am.spec(5, dtype=F64), am.spec(5, dtype=F64),
                        am.spec(3, dtype=F64))
    (fn,) = _functions(program, dot_tail)
    shapes = [[str(d) for d in p.aval.shape] for p in program.functions[fn].params[:3]]
    assert shapes == [["d0"], ["d0"], ["3"]]
    model = _save_load(program, tmp_path)
    _check_runs(model, dot_tail, [[RNG.standard_normal(5), RNG.standard_normal(5),
                                   RNG.standard_normal(3)]])


def test_a_result_type_that_depends_on_the_generalised_size(tmp_path) -> None:
    @am.function
    def suffix_sums(x):
        """out[i] = x[i] + x[i+1] + ...: float64[len(x)], one element per call level."""
        n = x.shape[0]

        # NOTE: not x[:1] + tail[:1]: tail (float64[d0-1]) may be empty as far as capture
        # knows, so slicing it to length 1 is refused
        return am.cond(am.tensor(1) >= n, lambda: x * 1.0,
                       lambda: am.cat([x.sum().reshape(1), suffix_sums(x[1:])]))

    program = am.export(suffix_sums, am.spec(7, dtype=F64))
    (fn,) = _functions(program, suffix_sums)
    f = program.functions[fn]
    assert [str(d) for d in f.params[0].aval.shape] == ["d0"]
    assert [str(d) for d in f.results[0].aval.shape] == ["d0"]  # settled: 1 + (d0 - 1)
    model = _save_load(program, tmp_path)
    x = RNG.standard_normal(7)
    _check_runs(model, suffix_sums, [[x]])
    np.testing.assert_allclose(suffix_sums(am.tensor(x)).numpy(), np.cumsum(x[::-1])[::-1],
                               rtol=1e-12)


@am.function
def even_part(x):
    n = x.shape[0]
    return am.cond(am.tensor(1) >= n, lambda: x[0], lambda: x[0] + odd_part(x[1:]))


@am.function
def odd_part(x):
    n = x.shape[0]
    return am.cond(am.tensor(1) >= n, lambda: -x[0], lambda: -x[0] + even_part(x[1:]))


def test_mutual_recursion_that_shrinks(tmp_path) -> None:
    program = am.export(even_part, am.spec(9, dtype=F64))
    assert len(_functions(program, even_part)) == 1
    assert len(_functions(program, odd_part)) == 1
    model = _save_load(program, tmp_path)
    x = RNG.standard_normal(9)
    _check_runs(model, even_part, [[x]])
    assert even_part(am.tensor(x)).item() == pytest.approx(x[::2].sum() - x[1::2].sum())


# ----------------------------------------------------------------------------- by shape


@am.function
def static_sum(x):
    """A Python ``if`` on the size as the base case."""
    if x.shape[0] == 1:
        return x[0]
    return x[0] * 2.0 + static_sum(x[1:])


@am.function
def int_sum(x):
    """The same with the size as a Python int: only static sizes can answer that."""
    if int(x.shape[0]) == 1:
        return x[0]
    return x[0] * 2.0 + int_sum(x[1:])


def test_a_python_if_on_the_size_is_one_recursive_function(tmp_path) -> None:
    """The base case's ``if`` on the size becomes a cond on the run-time size: one
    recursive function serves every size, as with am.cond."""
    for spec in (am.spec(5, dtype=F64), am.spec("n", dtype=F64)):
        program = am.export(static_sum, spec)
        assert len(_functions(program, static_sum)) == 1
    model = _save_load(program, tmp_path)
    _check_runs(model, static_sum, [[RNG.standard_normal(k)] for k in (1, 2, 5)])


def test_a_python_int_of_the_size_is_traced_by_shape(tmp_path) -> None:
    program = am.export(int_sum, am.spec(5, dtype=F64))
    names = _functions(program, int_sum)
    assert len(names) == 5  # one per size 5, 4, 3, 2, 1: unrolling by shape is the meaning
    sizes = sorted(program.functions[n].params[0].aval.shape[0] for n in names)
    assert sizes == [1, 2, 3, 4, 5]
    model = _save_load(program, tmp_path)
    _check_runs(model, int_sum, [[RNG.standard_normal(5)]])


def test_a_python_int_of_a_symbolic_size_is_refused_at_the_users_line() -> None:
    with pytest.raises(am.CaptureError, match=r"test_recursion_shapes.py:\d+.*\n.*int\(\) "
                       r"of the symbolic size n"):
        am.export(int_sum, am.spec("n", dtype=F64))


def test_tracing_by_shape_past_the_limit_says_why_symbols_failed() -> None:
    am.control.set_limits(max_recursion_depth=20)
    with pytest.raises(am.RecursionLimitError, match=r"past max_recursion_depth=20.*"
                       r"int_sum with symbolic sizes failed: .*test_recursion_shapes.py:"):
        am.export(int_sum, am.spec(30, dtype=F64))


def test_a_shape_rule_that_needs_static_sizes_is_traced_by_shape(tmp_path) -> None:
    @am.function
    def fold(x):
        # x[:n//2] + x[n//2:] is refused for a symbolic n (the sizes are not provably
        # equal), but is exact for each power-of-two size
        n = x.shape[0]
        y = x[:n // 2] + x[n // 2:]
        return y[0] if n == 2 else fold(y)

    program = am.export(fold, am.spec(8, dtype=F64))
    assert len(_functions(program, fold)) == 3  # sizes 8, 4, 2
    model = _save_load(program, tmp_path)
    x = RNG.standard_normal(8)
    _check_runs(model, fold, [[x]])
    assert fold(am.tensor(x)).item() == pytest.approx(x.sum())


def test_a_recursion_down_to_an_empty_slice_is_an_error_in_every_runtime(tmp_path) -> None:
    @am.function
    def to_empty(x):
        n = x.shape[0]
        return am.cond(am.tensor(0) >= n, lambda: x.sum(), lambda: x[0] + to_empty(x[1:]))

    assert to_empty(am.tensor(np.arange(4.0))).item() == 6.0  # eagerly fine
    # the symbol of the recursion's size is >= 1 (docs/format.md H.2): the interpreter
    # that proves the export refuses the call on the empty slice, as the C runtime does
    with pytest.raises(am.ShapeError, match=r"\(d0\) must be >= 1, got 0: .*stop before"):
        am.export(to_empty, am.spec(4, dtype=F64))
    program = am.export(to_empty, am.spec(4, dtype=F64), check=False)
    program.save(tmp_path / "e.amber")
    with pytest.raises(am.native.NativeShapeError, match="must be >= 1"):
        am.load(tmp_path / "e.amber")(np.arange(4.0))


# ----------------------------------------------------------------------------- gradients


def test_gradients_eagerly_match_finite_differences(gradcheck) -> None:
    x = np.array([0.5, 1.2, 0.3, -0.7, 2.0])
    (g,) = gradcheck(lambda t: suffix_sum(t), x)
    assert np.all(g[3:] == 0) and np.all(g[:3] != 0)  # entries past the stop get none
    (gx, gt) = gradcheck(lambda t, tol: halving_sum(t * t, tol), np.linspace(0.1, 1.5, 16),
                         np.float64(0.2))
    assert 0 < np.count_nonzero(gx) < 16 and gt == 0  # only the ends of the flat runs


@pytest.mark.parametrize("n", [8, "n"])
def test_exported_gradients_match_finite_differences(tmp_path, n) -> None:
    def loss(x, w):
        return suffix_sum(x * w) + halving_sum(x.sin() * w, am.tensor(0.3, dtype=F64))

    spec = am.spec(n, dtype=F64, low=0.1, high=1.0)
    program = am.export(am.grad(loss, argnums=(0, 1)), spec, spec,
                        sizes={"n": (3, 8)} if n == "n" else None)
    for gf, calls in ((suffix_sum, 2), (halving_sum, 3)):  # the entry's, the recursive
        (vjp,) = [f for f in program.functions if f == f"{gf.name}_vjp"]
        assert _calls(program, vjp) == calls  # the VJPs are recursive functions too
    model = _save_load(program, tmp_path)
    for x in (np.linspace(0.2, 1.6, 8), np.array([0.9, 0.4, 1.3, -0.5, 0.2, 0.8, 1.1, 0.6])):
        w = RNG.uniform(0.5, 1.5, 8)
        want = central_differences(loss, [x, w])
        eager = am.grad(loss, argnums=(0, 1))(am.tensor(x), am.tensor(w))
        native = model.native.run("forward", x, w)
        ref = Interpreter(model.program).run("forward", x, w)
        for k in range(2):
            np.testing.assert_allclose(eager[k].numpy(), want[k], rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(native[k], eager[k].numpy(), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(ref[k], eager[k].numpy(), rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- limits


def test_deep_recursion_ends_in_typed_errors_and_an_error_status(tmp_path) -> None:
    program = am.export(suffix_sum, am.spec("n", dtype=F64, low=0.1, high=1.0))
    model = _save_load(program, tmp_path)
    shallow, deep = RNG.uniform(0.1, 1.0, 40), RNG.uniform(0.1, 1.0, 400)
    _check_runs(model, suffix_sum, [[shallow]])
    # eagerly: max_recursion_depth, or Python's own stack, whichever ends first
    am.control.set_limits(max_recursion_depth=30)
    with pytest.raises(am.RecursionLimitError, match="past max_recursion_depth=30"):
        suffix_sum(am.tensor(shallow))
    with pytest.raises(am.RecursionLimitError):
        suffix_sum(am.tensor(deep))
    # the reference interpreter: max_call_depth (every function run counts: call, cond)
    with pytest.raises(am.RecursionLimitError, match="call depth"):
        Interpreter(model.program, max_call_depth=50).run("forward", shallow)
    with pytest.raises(am.RecursionLimitError):  # its default limit, never RecursionError
        Interpreter(model.program).run("forward", deep)
    # the native runtime: AMBER_ERR_LIMIT, by default (256) and by option
    with pytest.raises(am.native.NativeLimitError) as e:
        model(deep)
    assert e.value.status_name == "AMBER_ERR_LIMIT" and isinstance(e.value, am.LimitError)
    assert "depth" in e.value.c_message
    small = am.native.NativeModel(tmp_path / "m.amber", max_call_depth=50)
    with pytest.raises(am.native.NativeLimitError):
        small.run("forward", shallow)
    # a stop rule that ends the recursion early keeps a long input shallow
    stop = deep.copy()
    stop[5] = -1.0
    np.testing.assert_allclose(model(stop).numpy(), suffix_reference(stop), rtol=1e-12)
    np.testing.assert_allclose(small.run("forward", stop)[0], suffix_reference(stop),
                               rtol=1e-12)
