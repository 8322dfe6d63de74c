"""Plain Python control flow inside exported functions: converted to cond/while nodes
when a condition depends on a tensor or a symbolic size, kept as Python otherwise."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.nn as nn

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


def exported(fn, *specs, tmp_path, **kw) -> am.Model:
    path = str(tmp_path / "p.amber")
    am.export(fn, *specs, **kw).save(path)
    return am.load(path)


def same(model: am.Model, fn, *arrays) -> None:
    want = fn(*[am.tensor(a) for a in arrays])
    got = model(*arrays)
    if isinstance(want, tuple):
        for w, g in zip(want, got):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6, atol=1e-6)
    else:
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- if


def if_elif_else(x):
    s = x.sum()
    if s > 10:
        y = x * 2
        tag = 1
    elif s > 0:
        y = x + 1
        tag = 2
    else:
        y = -x
        tag = 3
    return y * tag


def test_if_elif_else_takes_every_path(tmp_path) -> None:
    m = exported(if_elif_else, am.spec("n"), tmp_path=tmp_path)
    assert "cond" in ops(m.program)
    for x in (np.full(4, 5, F32), np.full(4, 0.5, F32), np.full(4, -1, F32)):
        same(m, if_elif_else, x)


def early_return(x):
    if x.max() > 1:
        return x / x.max()
    y = x * 3
    if y.min() < -1:
        return y + 1
    return y


def test_early_returns(tmp_path) -> None:
    m = exported(early_return, am.spec("n"), tmp_path=tmp_path)
    for x in (np.array([3, 1], F32), np.array([-1, 0.5], F32), np.array([0.1, 0.2], F32)):
        same(m, early_return, x)


def python_condition(x, scale=2):
    if scale > 1:  # a Python value: evaluated while capturing, no cond node
        x = x * scale
    return x


def test_conditions_on_python_values_stay_python(tmp_path) -> None:
    m = exported(python_condition, am.spec("n"), tmp_path=tmp_path)
    assert "cond" not in ops(m.program)
    same(m, python_condition, np.ones(3, F32))


def symbolic_branch(x):
    n = x.shape[0]
    if n % 2 == 0 and x.shape[1] > 2:
        return x.sum(0)
    return x.mean(0)


def test_a_branch_on_symbolic_sizes(tmp_path) -> None:
    m = exported(symbolic_branch, am.spec("n", "k"), tmp_path=tmp_path)
    for shape in ((4, 3), (3, 3), (4, 2)):
        same(m, symbolic_branch, np.arange(np.prod(shape), dtype=F32).reshape(shape))


def conditional_expression(x):
    return x.exp() if x.sum() > 0 else x.tanh()


def test_a_conditional_expression(tmp_path) -> None:
    m = exported(conditional_expression, am.spec("n"), tmp_path=tmp_path)
    for x in (np.ones(2, F32), -np.ones(2, F32)):
        same(m, conditional_expression, x)


# ----------------------------------------------------------------------------- loops


def countdown(x, it):
    while it > 0:
        x = x * 2
        it = it - 1
    return x


def break_and_continue(x):
    total = am.zeros((), dtype=x.dtype)
    count = 0
    for i in range(x.shape[0]):
        if x[i] < 0:
            continue
        if total > 10:
            break
        total = total + x[i]
        count += 1
    return total * 1000 + count


def nested(x):
    k = am.zeros((), dtype=am.int64)
    while x.abs().max() > 1:
        if x.sum() > 0:
            x = x * 0.5
        else:
            x = x * 0.25
        k = k + 1
    return x, k


def for_over_rows(x):
    acc = am.zeros(x.shape[1:])
    for row in x:
        acc = acc * 0.5 + row
    return acc


def test_while_on_a_tensor(tmp_path) -> None:
    m = exported(countdown, am.spec(3), am.spec((), dtype=am.int64), tmp_path=tmp_path)
    assert "while" in ops(m.program)
    for it in (0, 1, 5):
        same(m, countdown, np.ones(3, F32), np.array(it))


def test_break_continue_and_a_python_counter(tmp_path) -> None:
    m = exported(break_and_continue, am.spec("n"), tmp_path=tmp_path)
    for x in (np.full(8, 3, F32), np.array([1, -5, 2], F32), np.array([-1], F32)):
        same(m, break_and_continue, x)
    assert float(m(np.array([4, -1, 4, 4, 4], F32)).numpy()) == 12003


def test_an_if_inside_a_while(tmp_path) -> None:
    m = exported(nested, am.spec("n"), tmp_path=tmp_path)
    for x in (np.array([4.5, 2.0], F32), np.array([-3.2, 0.5], F32), np.zeros(2, F32)):
        same(m, nested, x)


def test_for_over_the_rows_of_a_symbolic_dim(tmp_path) -> None:
    m = exported(for_over_rows, am.spec("t", 3), tmp_path=tmp_path)
    for t in (1, 4):
        same(m, for_over_rows, np.arange(3 * t, dtype=F32).reshape(t, 3))


# ----------------------------------------------------------------------------- calls


class Gate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        h = self.lin(x)
        if h.mean() > 0:
            h = h.relu()
        return helper(h)


def helper(h):
    while h.abs().sum() > 4:
        h = h * 0.5
    return h


def test_modules_and_functions_they_call_are_converted(tmp_path) -> None:
    am.manual_seed(0)
    gate = Gate()
    m = exported(gate, am.spec("b", 3), tmp_path=tmp_path)
    for x in (np.full((2, 3), 3, F32), np.full((2, 3), -3, F32)):
        np.testing.assert_allclose(m(x).numpy(), gate(am.tensor(x)).detach().numpy(), rtol=1e-6)


@am.function
def halving_sum(x):
    if x.shape[0] == 1:
        return x[0]
    half = x.shape[0] // 2
    return halving_sum(x[:half]) + halving_sum(x[half:])


def test_recursion_with_a_plain_if_base_case(tmp_path) -> None:
    program = am.export(halving_sum, am.spec("n", dtype=np.float64))
    assert [n for n in program.functions if n.startswith("halving_sum")] == ["halving_sum"]
    path = str(tmp_path / "r.amber")
    program.save(path)
    m = am.load(path)
    for k in (1, 2, 5, 8):
        x = np.arange(k, dtype=np.float64)
        assert float(m(x).numpy()) == pytest.approx(x.sum())


# ----------------------------------------------------------------------------- gradients


def test_gradients_through_converted_control_flow(tmp_path) -> None:
    def loss(x):
        y, _ = nested(x)
        z = if_elif_else(y)
        return break_and_continue(z)

    def grad_step(x):
        return am.grad(loss)(x)

    m = exported(grad_step, am.spec(2, dtype=np.float64), tmp_path=tmp_path)
    for x0 in (np.array([2.5, 0.75]), np.array([-2.25, 0.5]), np.array([0.25, 0.5])):
        got = m(x0).numpy()
        eps = 1e-6
        fd = np.array([(float(loss(am.tensor(x0 + eps * e)).numpy())
                        - float(loss(am.tensor(x0 - eps * e)).numpy())) / (2 * eps)
                       for e in np.eye(2)])
        want = am.grad(loss)(am.tensor(x0)).numpy()
        np.testing.assert_allclose(want, fd, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got, want, rtol=1e-9)


# ----------------------------------------------------------------------------- refusals


def refused(fn, *specs, marker: str, why: str) -> str:
    with pytest.raises(am.CaptureError) as info:
        am.export(fn, *specs)
    msg = str(info.value)
    assert f"{HERE}:{line_of(marker)}" in msg, msg
    assert why in msg, msg
    return msg


def test_a_variable_set_in_one_branch_and_used_after() -> None:
    def f(x):
        if x.sum() > 0:  # <one-branch>
            y = x * 2
        return y

    refused(f, am.spec(3), marker="one-branch", why="'y' is assigned in only one branch")


def test_a_python_list_mutated_in_a_tensor_branch() -> None:
    def f(x):
        seen = []
        if x.sum() > 0:  # <side-effect>
            seen.append(x)
        return x

    refused(f, am.spec(3), marker="side-effect", why="changes the Python list 'seen'")


def test_a_python_float_changed_in_a_tensor_loop() -> None:
    def f(x):
        scale = 1.0
        while x.sum() > 1:  # <float>
            x = x / 2
            scale = scale * 2
        return x * scale

    refused(f, am.spec(3), marker="float", why="'scale' is a Python float")


def test_a_carry_whose_dtype_changes() -> None:
    def f(x, n):
        while n > 0:  # <dtype>
            n = n - 0.5
        return x * n

    refused(f, am.spec(3), am.spec((), dtype=am.int64), marker="dtype",
            why="changes its type")


def test_a_return_inside_a_tensor_loop() -> None:
    def f(x):
        while x.sum() > 0:  # <return>
            if x.max() > 5:
                return x
            x = x - 1
        return x

    refused(f, am.spec(3), marker="return", why="a return inside a loop")


def test_eager_runs_the_same_code_as_plain_python() -> None:
    calls = []

    def f(x):
        if x.sum() > 0:
            calls.append("pos")  # a side effect: fine eagerly, refused under capture
        return x

    f(am.ones(2))
    assert calls == ["pos"]


# ----------------------------------------------------------------------------- lists


def halvings(x):
    hs = []
    h = x
    while h.abs().sum() > 0.1:
        h = h * 0.5
        hs.append(h.tanh())
    return am.stack(hs, 0).sum(0) + am.cat(hs, 0).sum()


def test_a_list_grown_in_a_tensor_loop_stacks(tmp_path) -> None:
    m = exported(halvings, am.spec(3, dtype=np.float64), tmp_path=tmp_path)
    for x in (np.array([1.0, -2.0, 0.5]), np.array([0.2, 0.0, 0.0])):
        same(m, halvings, x)


def test_gradients_through_a_grown_list(tmp_path) -> None:
    def g(x):
        return am.grad(lambda y: halvings(y).sum())(x)

    m = exported(g, am.spec(3, dtype=np.float64), tmp_path=tmp_path)
    for x0 in (np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.0, 0.0])):
        eps = 1e-6
        fd = [(float(halvings(am.tensor(x0 + eps * e)).sum().numpy())
               - float(halvings(am.tensor(x0 - eps * e)).sum().numpy())) / (2 * eps)
              for e in np.eye(3)]
        np.testing.assert_allclose(m(x0).numpy(), fd, rtol=1e-5, atol=1e-7)


def test_returning_a_length_the_data_decides(tmp_path) -> None:
    def f(x):
        hs = [x]
        while x.sum() > 1:
            x = x / 2
            hs.append(x)
        return am.stack(hs, 1)

    program = am.export(f, am.spec("n"))
    assert program.opset_version >= 5
    (port,) = program.entries["forward"].outputs
    assert [str(d) for d in port.shape] == ["n", "trips0+1"]
    m = exported(f, am.spec("n"), tmp_path=tmp_path)
    for x, trips in ((np.array([0.5], F32), 0), (np.array([1.5], F32), 1),
                     (np.array([4.0, 3.0], F32), 3)):
        assert m(x).shape == (len(x), trips + 1)
        same(m, f, x)


def test_other_uses_of_a_grown_list_are_refused() -> None:
    def f(x):
        hs = []
        while x.sum() > 1:  # <grown>
            x = x / 2
            hs.append(x)
        return x * len(hs)

    refused(f, am.spec(3), marker="grown", why="can only be passed to am.stack or am.cat")


def test_defaults_bound_in_a_loop_keep_their_values(tmp_path) -> None:
    # ``def f(x, scale=scale)`` inside a loop: the default names a local of the
    # enclosing function, which the converted copy must not evaluate again
    made = []
    for scale in (2.0, 3.0):
        layer = nn.Linear(3, 3)

        def fn(x, scale: float = scale, layer: nn.Module = layer, *, shift=scale + 1):
            return layer(x) * scale + shift

        made.append((fn, scale))
    x = np.ones((2, 3), F32)
    for fn, scale in made:
        model = exported(fn, am.spec(2, 3), tmp_path=tmp_path)
        with am.no_grad():
            same(model, fn, x)

