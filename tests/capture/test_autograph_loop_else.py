"""``while … else`` and ``for … else`` inside exported functions: the ``else`` block runs
when the loop ends without ``break``, on traced conditions as in Python; and a list a
traced loop grows is only appended to inside that loop."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am

HERE = __file__
F32 = np.float32


def line_of(marker: str) -> int:
    with open(HERE) as f:
        for i, line in enumerate(f, 1):
            if f"# <{marker}>" in line:
                return i
    raise AssertionError(marker)


def ops(program: am.Program) -> set[str]:
    return {n.op for fn in program.functions.values() for n in fn.nodes}


def check(fn, specs, inputs, tmp_path, rtol=1e-6) -> am.Program:
    program = am.export(fn, *specs)
    path = tmp_path / "p.amber"
    program.save(path)
    for backend in ("reference", "native"):
        if backend == "native":
            pytest.importorskip("amber.native")
        m = am.load(path, backend=backend)
        for args in inputs:
            want = fn(*[am.tensor(a) for a in args])
            got = m(*args)
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=rtol, atol=1e-7)
    return program


def first_above(x, n):
    found = am.zeros_like(x[0])
    i = 0
    while i < n:
        if x[i] > 2:
            found = x[i]
            break
        i += 1
    else:
        found = -am.ones_like(x[0]) * 7
    return found * 10 + i


def test_while_else_takes_every_path(tmp_path) -> None:
    cases = [(np.array([1, 3, 5], F32), np.array(3)),   # break
             (np.array([1, 1, 1], F32), np.array(3)),   # else after the last trip
             (np.array([1, 1, 5], F32), np.array(2)),   # else: the limit came first
             (np.array([4, 1], F32), np.array(0))]      # else: no trip at all
    program = check(first_above, (am.spec("m"), am.spec((), dtype=am.int64)), cases, tmp_path)
    assert {"while", "cond"} <= ops(program)
    assert [float(first_above(*map(am.tensor, c)).numpy()) for c in cases] == [
        31.0, -67.0, -68.0, -70.0]


def sum_until_negative(x):
    total = x.sum() * 0
    for i in range(x.shape[0]):
        if x[i] < 0:
            break
        total = total + x[i]
    else:
        total = total + 100
    return total


def test_for_else_over_a_symbolic_range(tmp_path) -> None:
    check(sum_until_negative, (am.spec("m"),),
          [(np.array([1, 3, 5], F32),), (np.array([1, -1, 1], F32),),
           (np.array([-2], F32),)], tmp_path)


def scale_until_small(x):
    for _ in range(6):                 # a Python range; the break depends on a tensor
        x = x * 0.5
        if x.abs().max() < 1:
            break
    else:
        x = x * 0
    return x


def test_for_else_over_a_python_range_with_a_tensor_break(tmp_path) -> None:
    check(scale_until_small, (am.spec("m"),),
          [(np.array([1.5], F32),), (np.array([3.0, -5.0], F32),),
           (np.array([1000.0], F32),)], tmp_path)


def nested(x, n):
    hits = am.zeros_like(x.sum())
    k = 0
    while k < n:
        for j in range(3):             # the inner break is the inner loop's own
            if x[j] > k:
                break
        else:
            hits = hits + 1
        k += 1
    else:
        hits = hits * 10
    return hits


def test_an_inner_break_does_not_skip_the_outer_else(tmp_path) -> None:
    check(nested, (am.spec(3), am.spec((), dtype=am.int64)),
          [(np.array([0, 1, 2], F32), np.array(4)), (np.array([5, 5, 5], F32), np.array(2)),
           (np.array([0, 0, 0], F32), np.array(0))], tmp_path)


def test_python_loops_with_else_stay_python(tmp_path) -> None:
    def f(x):
        for k in [1, 2, 3]:
            if k * x.shape[0] > 7:
                break
        else:
            k = 0
        while x.shape[0] > 100:
            break
        else:
            x = x + 1
        return x * k

    program = check(f, (am.spec(3),), [(np.ones(3, F32),)], tmp_path)
    assert not {"while", "cond"} & ops(program)
    assert float(f(am.ones(3)).numpy()[0]) == 6.0


def test_gradients_through_a_loop_else_match_finite_differences(tmp_path) -> None:
    def f(x):
        while x.sum() > 1:
            x = x * 0.5
            if x.max() > 3:
                x = x.sin()
                break
        else:
            x = x.tanh() * 2
        return (x * x).sum()

    def grad_f(x):
        return am.grad(f)(x)

    path = tmp_path / "g.amber"
    am.export(grad_f, am.spec("n", dtype=am.float64)).save(path)
    m = am.load(path)
    for x0 in (np.array([9.0, 1.0]), np.array([2.0, 0.7]), np.array([0.3, 0.2])):
        eps = 1e-6
        fd = [(float(f(am.tensor(x0 + eps * e)).numpy())
               - float(f(am.tensor(x0 - eps * e)).numpy())) / (2 * eps) for e in np.eye(2)]
        np.testing.assert_allclose(m(x0).numpy(), fd, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(am.grad(f)(am.tensor(x0)).numpy(), fd, rtol=1e-6,
                                   atol=1e-8)


def test_a_variable_only_the_else_assigns_is_refused_at_its_use() -> None:
    def f(x):
        while x.sum() > 1:  # <else-only>
            x = x / 2
            if x.max() > 3:
                break
        else:
            y = x
        return y

    with pytest.raises(am.CaptureError) as info:
        am.export(f, am.spec("n"))
    msg = str(info.value)
    assert f"{HERE}:{line_of('else-only')}" in msg
    assert "'y' is assigned in only one branch" in msg


# ----------------------------------------------------------------------------- grown lists


def test_reading_a_grown_list_inside_its_loop_is_refused() -> None:
    def by_len(x):
        hs = []
        while x.sum() > 1 and len(hs) < 3:  # <len>
            x = x / 2
            hs.append(x)
        return x

    def by_stack(x):
        hs = [x]
        while x.sum() > 1:  # <stack-inside>
            x = x / 2
            hs.append(x)
            x = x + am.stack(hs).sum() * 0
        return x

    for fn, marker in ((by_len, "len"), (by_stack, "stack-inside")):
        with pytest.raises(am.CaptureError) as info:
            am.export(fn, am.spec("n"))
        msg = str(info.value)
        assert f"{HERE}:{line_of(marker)}" in msg
        assert "the list 'hs' is read inside this loop" in msg
        assert "count the steps in a variable" in msg


def test_appending_on_one_path_of_a_branch_in_the_loop_is_refused() -> None:
    def f(x):
        hs = [x]
        while x.sum() > 1:
            x = x / 2
            if x.sum() > 2:  # <one-path>
                hs.append(x)
        return am.stack(hs, 1)

    with pytest.raises(am.CaptureError, match=f"(?s){HERE}:{line_of('one-path')}.*this if "
                                              "changes the Python list 'hs'"):
        am.export(f, am.spec("n"))


def test_an_inner_loop_growing_the_outer_loops_list_is_refused() -> None:
    def f(x, n):
        hs = [x]
        k = 0
        while k < n:
            while x.sum() > 1:  # <inner>
                x = x / 2
                hs.append(x)
            k += 1
        return am.stack(hs, 0)

    with pytest.raises(am.CaptureError, match=f"(?s){HERE}:{line_of('inner')}.*may change the "
                                              "list 'hs' that an enclosing loop grows"):
        am.export(f, am.spec("n"), am.spec((), dtype=am.int64))


def test_the_list_keeps_its_items_after_a_python_loop_and_grows_after_a_traced_one(
        tmp_path) -> None:
    def f(x):
        hs = [x]
        for _ in range(2):          # Python: two items appended at capture
            x = x * 0.5
            hs.append(x)
        while x.sum() > 1:          # traced: the rest
            x = x * 0.5
            hs.append(x)
        return am.stack(hs, 0)

    check(f, (am.spec("n"),), [(np.array([1.0], F32),), (np.array([40.0, 3.0], F32),)],
          tmp_path)


def test_a_return_in_the_else_block(tmp_path) -> None:
    def f(x):
        while x.sum() > 1:
            x = x / 2
            if x.max() > 3:
                break
        else:
            return x * 2
        return x - 1

    def g(x):
        for k in range(3):          # the break compares a symbolic size
            if k * x.shape[0] > 4:
                break
        else:
            return x
        return x * k

    xs = [(np.array([9, 1], F32),), (np.array([3, 1], F32),), (np.array([0.5], F32),),
          (np.array([1, 1, 1], F32),)]
    check(f, (am.spec("n"),), xs, tmp_path)
    check(g, (am.spec("n"),), xs, tmp_path)
