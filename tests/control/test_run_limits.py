"""The reference interpreter bounds a run as libamber does: the same limits (memory,
call depth, iterations of one loop and of a whole run, calls of a whole run), the same
defaults, and a LimitError from both when a program goes past one."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import interpreter as I
from amber import native as N
from amber.interpreter import Interpreter

F64, I64 = np.float64, np.int64


def test_defaults_are_libamber_defaults() -> None:
    space = N._OptionsSpace()
    N.library().lib.amber_options_init(ctypes.byref(space))
    o = space.opts
    assert o.memory_limit == I.DEFAULT_MEMORY_LIMIT == 2 << 30
    assert o.max_call_depth == I.DEFAULT_MAX_CALL_DEPTH
    assert o.max_loop_iterations == I.DEFAULT_MAX_LOOP_ITERATIONS
    assert o.max_run_iterations == I.DEFAULT_MAX_RUN_ITERATIONS
    assert o.max_run_calls == I.DEFAULT_MAX_RUN_CALLS
    interp = Interpreter(am.Program())
    assert (interp.memory_limit, interp.max_call_depth, interp.max_loop_iterations,
            interp.max_run_iterations, interp.max_run_calls) == (
        o.memory_limit, o.max_call_depth, o.max_loop_iterations, o.max_run_iterations,
        o.max_run_calls)


def _nested(x):
    """Two nested loops of x[0] iterations each: x[0]**2 inner iterations in all."""
    def inner(c):
        return am.while_loop(lambda d: d[0] < x[0], lambda d: (d[0] + 1.0, d[1] + 1.0),
                             (am.tensor(0.0, dtype=am.float64), c[1]))[1]

    return am.while_loop(lambda c: c[0] < x[0], lambda c: (c[0] + 1.0, inner(c)),
                         (am.tensor(0.0, dtype=am.float64), x[1]))[1]


def test_nested_loops_are_bounded_by_the_run_iteration_limit(tmp_path: Path) -> None:
    program = am.export(_nested, am.spec(2, dtype=F64, low=1.0, high=3.0))
    path = tmp_path / "nested.amber"
    program.save(path)
    ok, big = np.array([20.0, 0.0]), np.array([200.0, 0.0])  # 420 vs 40,200 iterations
    assert Interpreter(program, max_run_iterations=1000).run("forward", ok)[0] == 400.0
    # every loop stays within its own limit; the run as a whole does not
    with pytest.raises(am.IterationLimitError, match="max_run_iterations"):
        Interpreter(program, max_run_iterations=1000).run("forward", big)
    with N.NativeModel(path, max_run_iterations=1000) as m:
        assert m.run("forward", ok)[0] == 400.0
        with pytest.raises(am.LimitError, match="max_run_iterations"):
            m.run("forward", big)


@am.function
def _fib(n, x):
    return am.cond(n > 1, lambda: _fib(n - 1, x) + _fib(n - 2, x), lambda: x)


def test_exponential_recursion_is_bounded_by_the_run_call_limit(tmp_path: Path) -> None:
    program = am.export(lambda n, x: _fib(n, x), am.tensor(I64(3)), am.spec(1, dtype=F64))
    path = tmp_path / "fib.amber"
    program.save(path)
    # fib(10) takes 177 cond executions and 176 calls; fib(25) takes 364,835 of each,
    # at a depth of only 50
    assert Interpreter(program, max_run_calls=400).run("forward", I64(10), np.ones(1))[0] == 89
    with pytest.raises(am.LimitError, match="max_run_calls"):
        Interpreter(program, max_run_calls=400).run("forward", I64(25), np.ones(1))
    with N.NativeModel(path, max_run_calls=400) as m:
        assert m.run("forward", I64(10), np.ones(1))[0] == 89
        with pytest.raises(am.LimitError, match="max_run_calls"):
            m.run("forward", I64(25), np.ones(1))


def test_the_memory_limit_counts_every_value_a_run_holds() -> None:
    def f(x):  # ten values of 80 KB each, all alive until the end
        ys = [x * float(k) for k in range(10)]
        out = ys[0]
        for y in ys[1:]:
            out = out + y.sum()
        return out

    program = am.export(f, am.spec(10_000, dtype=F64), check=False)
    x = np.ones(10_000)
    np.testing.assert_array_equal(Interpreter(program).run("forward", x)[0],
                                  program.run("forward", x)[0])
    Interpreter(program, memory_limit=2_000_000).run("forward", x)
    # each value is far below the limit, all of them together are not
    with pytest.raises(am.LimitError, match=r"memory limit of 500000 bytes exceeded \(holding"):
        Interpreter(program, memory_limit=500_000).run("forward", x)


def test_scan_length_is_bounded_by_the_loop_limit() -> None:
    program = am.export(lambda x: am.scan(lambda c, _: (c + 1.0, c), x, None, length=50)[0],
                        am.spec(1, dtype=F64), check=False)
    assert Interpreter(program).run("forward", np.zeros(1))[0] == 50.0
    with pytest.raises(am.IterationLimitError, match="scan length 50 exceeds the limit of 10"):
        Interpreter(program, max_loop_iterations=10).run("forward", np.zeros(1))


def test_a_test_vector_cannot_bind_a_symbol_beyond_the_memory_limit(tmp_path: Path) -> None:
    from amber.format.container import read_container, write_container

    program = am.export(lambda x: x * 2.0, am.spec("n", "m"))
    program.save(tmp_path / "ok.amber")
    c = read_container(tmp_path / "ok.amber")
    tensors = {k: np.array(v) for k, v in c.tensors.items()}
    # no bytes at all, yet n = 2**40: a program sized by n would be allowed to ask for it
    tensors["test_vectors/0/inputs/x"] = np.zeros((2 ** 40, 0), np.float32)
    tensors["test_vectors/0/outputs/output"] = np.zeros((2 ** 40, 0), np.float32)
    header = dict(c.header)
    header["test_vectors"][0]["dims"] = {"n": 2 ** 40, "m": 0}
    bad = tmp_path / "bad.amber"
    write_container(bad, header, tensors)
    with pytest.raises(am.LimitError, match=r"binds sizes beyond the memory limit"):
        am.load(bad, backend="reference")
    with pytest.raises(am.LimitError, match=r"binds sizes beyond the memory limit"):
        N.NativeModel(bad)
    N.NativeModel(bad, memory_limit=0).close()  # no limit: the caller's choice
    am.load(tmp_path / "ok.amber", backend="native")
