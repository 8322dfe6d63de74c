"""Exported control flow: cond, while_loop, scan, fori_loop and recursive graph functions
are captured as structured nodes (cond / while / scan / call), saved, loaded and run by
the reference interpreter with results equal to eager; their gradients (am.grad and
.backward(), captured too) match central finite differences in float64; and type errors
and runaway programs end in typed errors.

Every control-flow construct that traced values reach is handed to the hooks capture
installs and recorded as a structured node: it never picks a branch or unrolls a loop
silently. A hook that declines leaves the construct to refuse with a CaptureError naming
the user's line."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

import amber as am
from amber.control import ControlHooks
from amber.interpreter import Interpreter
from helpers import central_differences
from helpers.programs import cond_in_while_in_recursion

F64 = am.float64
I64 = np.int64


def _roundtrip(program: am.Program, tmp_path: Any, name: str = "m") -> am.Model:
    path = tmp_path / f"{name}.amber"
    program.save(path)
    model = am.load(path)
    assert all(r.ok for r in model.verify())
    return model


def _run(model: am.Model, *args: Any) -> list[np.ndarray]:
    return model.program.run("forward", *args)


def _grad_export_check(f: Callable[..., Any], specs: Sequence[Any], cases: Sequence[
        tuple[Sequence[np.ndarray], Sequence[Any]]], tmp_path: Any,
        extra_specs: Sequence[Any] = ()) -> am.Program:
    """Export am.grad(f) w.r.t. its float arguments, save, load, and compare the loaded
    program's gradients with finite differences of eager ``f`` on every case."""
    n = len(specs)
    program = am.export(am.grad(f, argnums=tuple(range(n))), *specs, *extra_specs)
    model = _roundtrip(program, tmp_path)
    for arrays, extra in cases:
        got = _run(model, *arrays, *extra)
        want = central_differences(f, arrays, extra)
        for k, (g, w) in enumerate(zip(got, want)):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7, err_msg=f"argument {k}")
    return program


RNG = np.random.default_rng(7)


# ----------------------------------------------------------------------------- forward


def test_cond_exports_both_branches_with_symbolic_dims(tmp_path) -> None:
    w = am.tensor(np.array([0.5, -1.0, 2.0], dtype=np.float32))

    def f(x, y):
        def big(a, b):
            return {"s": (a * w).sum(1), "p": a + b}

        def small(a, b):
            return {"s": (a - b).abs().sum(1), "p": a * b}

        return am.cond(x.mean() > 0, big, small, x, y)

    program = am.export(f, am.spec("batch", 3), am.spec("batch", 3))
    text = str(program)
    assert "cond(" in text and text.count("func @cond_") == 2
    model = _roundtrip(program, tmp_path)
    for b in (1, 4):
        for sign in (1.0, -1.0):
            x = (np.abs(RNG.standard_normal((b, 3))) * sign).astype(np.float32)
            y = RNG.standard_normal((b, 3)).astype(np.float32)
            want = f(am.tensor(x), am.tensor(y))
            out = model(x, y)
            for k in ("s", "p"):
                np.testing.assert_allclose(out[k].numpy(), want[k].numpy(), rtol=1e-6)


def test_while_loop_with_data_dependent_trip_count(tmp_path) -> None:
    def f(x, limit):
        def body(c):
            k, v = c
            return k + 1, {"v": v["v"] * 1.5 + 0.25}

        return am.while_loop(lambda c: c[1]["v"].sum() < limit, body,
                             (am.tensor(I64(0)), {"v": x}))

    program = am.export(f, am.spec("n", dtype=F64, low=0.1, high=1.0),
                        am.spec(dtype=F64, low=5.0, high=9.0))
    assert "while(" in str(program)
    model = _roundtrip(program, tmp_path)
    for x, limit in ((np.array([0.1, 0.2]), 30.0), (np.array([5.0, 6.0, 7.0]), 1.0)):
        k, v = _run(model, x, np.float64(limit))
        ek, ev = f(am.tensor(x), am.tensor(np.float64(limit)))
        assert int(k) == int(ek.item())
        np.testing.assert_allclose(v, ev["v"].numpy())
    assert int(_run(model, np.array([5.0, 6.0]), np.float64(1.0))[0]) == 0  # no iteration


def test_fori_loop_with_a_traced_bound(tmp_path) -> None:
    def f(x, n):
        return am.fori_loop(0, n, lambda i, c: c * 0.5 + i.to(am.float64), x)

    program = am.export(f, am.spec("k", dtype=F64), am.tensor(I64(3)))
    model = _roundtrip(program, tmp_path)
    x = RNG.standard_normal(4)
    for n in (0, 1, 5):
        np.testing.assert_allclose(_run(model, x, I64(n))[0],
                                   f(am.tensor(x), am.tensor(I64(n))).numpy())


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_over_a_symbolic_length(tmp_path, reverse) -> None:
    w = am.tensor(RNG.standard_normal((3, 3)))

    def f(xs, h0):
        def step(h, x):
            h2 = (h @ w + x["a"] * x["b"]).tanh()
            return h2, (h2.sum(), h2 * 2.0)

        return am.scan(step, h0, {"a": xs, "b": xs * 0.5}, reverse=reverse)

    program = am.export(f, am.spec("t", 3, dtype=F64), am.spec(3, dtype=F64))
    assert "scan(" in str(program)
    model = _roundtrip(program, tmp_path)
    for t in (1, 6):
        xs, h0 = RNG.standard_normal((t, 3)), RNG.standard_normal(3)
        got = _run(model, xs, h0)
        carry, (s, y) = f(am.tensor(xs), am.tensor(h0))
        for g, e in zip(got, (carry, s, y)):
            np.testing.assert_allclose(g, e.numpy(), rtol=1e-12)


def test_scan_without_xs_and_without_ys(tmp_path) -> None:
    def f(x):
        c, ys = am.scan(lambda c, _: (c * 0.9 + 1.0, None), x, None, length=4)
        assert ys is None
        return c

    program = am.export(f, am.spec("n", dtype=F64))
    x = RNG.standard_normal(3)
    np.testing.assert_allclose(_run(_roundtrip(program, tmp_path), x)[0],
                               f(am.tensor(x)).numpy())


@am.function
def tree_sum(node, left, right, value):
    """Sum of the values in the subtree of ``node`` (children -1 mean none)."""
    def children():
        lv = am.cond(left[node] >= 0, lambda: tree_sum(left[node], left, right, value),
                     lambda: value[0] * 0.0)
        rv = am.cond(right[node] >= 0, lambda: tree_sum(right[node], left, right, value),
                     lambda: value[0] * 0.0)
        return lv + rv

    return value[node] + children()


def test_recursion_is_a_call_not_an_unrolling(tmp_path) -> None:
    # a tree stored as child-index tensors: 0 -> (1, 2), 1 -> (3, -1)
    left = np.array([1, 3, -1, -1], dtype=I64)
    right = np.array([2, -1, -1, -1], dtype=I64)
    value = np.array([1.0, 2.0, 4.0, 8.0])

    def f(root, left, right, value):
        return tree_sum(root, left, right, value)

    program = am.export(f, am.tensor(I64(0)), am.spec("n", dtype=am.int64, low=-1, high=0),
                        am.spec("n", dtype=am.int64, low=-1, high=0), am.spec("n", dtype=F64))
    fns = [n for n in program.functions if n.startswith("tree_sum")]
    assert len(fns) == 1  # traced once; the recursive calls call it
    calls = [node for fn in program.functions.values() for node in fn.nodes
             if node.op == "call" and node.attrs["callee"] == fns[0]]
    assert len(calls) == 3  # the entry's call and the two recursive ones
    model = _roundtrip(program, tmp_path)
    for root, want in ((0, 15.0), (1, 10.0), (2, 4.0)):
        assert _run(model, I64(root), left, right, value)[0] == want


@am.function
def is_even(n, x):
    return am.cond(n > 0, lambda: is_odd(n - 1, x), lambda: x)


@am.function
def is_odd(n, x):
    return am.cond(n > 0, lambda: is_even(n - 1, x * 2.0), lambda: -x)


def test_mutual_recursion(tmp_path) -> None:
    program = am.export(lambda n, x: is_even(n, x), am.tensor(I64(3)), am.spec(2, dtype=F64))
    model = _roundtrip(program, tmp_path)
    x = np.array([1.0, -2.0])
    for n in range(5):
        np.testing.assert_allclose(_run(model, I64(n), x)[0],
                                   is_even(am.tensor(I64(n)), am.tensor(x)).numpy())


def test_a_branch_may_use_a_symbolic_size_of_the_enclosing_function(tmp_path) -> None:
    def f(x, y):
        n = x.shape[0]
        return am.cond(y.sum() > 0, lambda: y * n, lambda: y - n)

    model = _roundtrip(am.export(f, am.spec("b", 2), am.spec(3)), tmp_path)
    for b, sign in ((1, 1.0), (4, 1.0), (3, -1.0)):
        y = np.full(3, sign, np.float32)
        np.testing.assert_allclose(_run(model, np.ones((b, 2), np.float32), y)[0],
                                   f(am.ones(b, 2), am.tensor(y)).numpy())


def test_the_lowest_opset_is_written_and_opset_1_programs_still_run(tmp_path) -> None:
    program = am.export(lambda x: x * 2.0, am.spec("n"))
    assert program.opset_version == am.capture.OPSET_VERSION
    assert _roundtrip(program, tmp_path, "lowest").opset_version == 1  # no control flow
    program.opset_version = 1  # a program using no opset-2 op is a valid opset-1 program
    model = _roundtrip(program, tmp_path)
    assert model.opset_version == 1
    np.testing.assert_allclose(model(np.ones(2, np.float32)).numpy(), [2.0, 2.0])


# ----------------------------------------------------------------------------- gradients


def test_gradient_of_cond_through_both_branches(tmp_path) -> None:
    def f(x, w):
        y = am.cond(x.sum() > 0, lambda a: (a * w).sin(), lambda a: a * a * w + w.exp(), x)
        return (y * y).sum()

    pos, neg = np.array([0.3, 0.5, 0.7]), np.array([-0.3, 0.5, -0.7])
    w = np.array([1.1, -0.4, 0.6])
    program = _grad_export_check(f, [am.spec("n", dtype=F64)] * 2,
                                 [([pos, w], []), ([neg, w], [])], tmp_path)
    assert sum(1 for fn in program.functions if fn.endswith("_vjp")) == 2


@pytest.mark.parametrize("reverse", [False, True])
def test_gradient_of_scan(tmp_path, reverse) -> None:
    def f(xs, h0, w):
        def step(h, x):
            h2 = (h * w + x).tanh()
            return h2, h2 * x

        h, ys = am.scan(step, h0, xs, reverse=reverse)
        return h.sum() + (ys * ys).sum()

    cases = [([RNG.standard_normal((t, 2)), RNG.standard_normal(2), RNG.standard_normal(2)],
              []) for t in (1, 4)]
    _grad_export_check(f, [am.spec("t", 2, dtype=F64), am.spec(2, dtype=F64),
                           am.spec(2, dtype=F64)], cases, tmp_path)


def test_gradient_of_a_data_dependent_while_loop(tmp_path) -> None:
    def f(x, w):
        def body(c):
            k, v = c
            return k + 1, v * w + v.sin()

        _, v = am.while_loop(lambda c: (c[1] * c[1]).sum() < 20.0, body,
                             (am.tensor(I64(0)), x))
        return (v * v).sum() + v.sum()

    w = np.array([1.3, 1.1])
    cases = [([np.array([0.4, 0.3]), w], []),    # several iterations
             ([np.array([0.9, 1.2]), w], []),    # fewer
             ([np.array([4.0, 3.0]), w], [])]    # zero iterations
    program = _grad_export_check(f, [am.spec(2, dtype=F64, low=0.3, high=0.6),
                                     am.spec(2, dtype=F64, low=1.1, high=1.4)], cases, tmp_path)
    assert "while(" in str(program)


def test_gradient_of_fori_loop_with_a_traced_bound_including_zero_trips(tmp_path) -> None:
    def f(x, w, n):
        return am.fori_loop(0, n, lambda i, c: (c * w).sin() + c, x).sum()

    x, w = RNG.standard_normal(3), RNG.standard_normal(3)
    _grad_export_check(f, [am.spec("k", dtype=F64)] * 2,
                       [([x, w], [I64(n)]) for n in (0, 1, 3)], tmp_path,
                       extra_specs=[am.tensor(I64(2))])


def test_gradient_of_a_length_0_scan(tmp_path) -> None:
    def f(xs, h0):
        h, ys = am.scan(lambda h, x: (h * x + 1.0, h.sum()), h0, xs)
        return (h * h).sum() + ys.sum()

    _grad_export_check(f, [am.spec(0, 2, dtype=F64), am.spec(2, dtype=F64)],
                       [([np.zeros((0, 2)), RNG.standard_normal(2)], [])], tmp_path)


def test_gradient_of_a_recursive_function_is_recursive(tmp_path) -> None:
    @am.function
    def power(n, x, w):
        return am.cond(n > 0, lambda: power(n - 1, x, w) * x + w, lambda: x)

    def f(x, w, n):
        return power(n, x, w).sum()

    cases = [([RNG.standard_normal(3), RNG.standard_normal(3)], [I64(n)]) for n in (0, 1, 4)]
    program = _grad_export_check(f, [am.spec("k", dtype=F64)] * 2, cases, tmp_path,
                                 extra_specs=[am.tensor(I64(2))])
    (vjp_name,) = [n for n in program.functions if "power" in n and n.endswith("_vjp")]
    callees = {node.attrs.get("callee") for fn in program.functions.values()
               for node in fn.nodes if node.op == "call"}
    assert vjp_name in callees  # reached from the VJP of its own branch: recursion


def test_gradient_of_cond_inside_while_inside_a_recursive_function(tmp_path) -> None:
    rec = cond_in_while_in_recursion

    def f(x, w, n):
        return (rec(n, x, w) ** 2).sum()

    x, w = np.array([0.5, -0.7, 0.9]), np.array([1.1, 0.3, -0.8])
    cases = [([x, w], [I64(n)]) for n in (0, 1, 3)]
    program = _grad_export_check(f, [am.spec("k", dtype=F64)] * 2, cases, tmp_path,
                                 extra_specs=[am.tensor(I64(2))])
    ops = {node.op for fn in program.functions.values() for node in fn.nodes}
    assert {"cond", "while", "call"} <= ops


def test_backward_reaches_closed_over_module_parameters(tmp_path) -> None:
    am.manual_seed(0)
    lin = am.nn.Linear(3, 3).to(F64)

    def train_grads(x):
        lin.zero_grad()

        def step(h, xt):
            return am.cond(xt.sum() > 0, lambda: lin(h).tanh(), lambda: h * 0.5), h.sum()

        h, ys = am.scan(step, x[0], x)
        loss = (h * h).sum() + ys.sum()
        loss.backward()
        return lin.weight.grad, lin.bias.grad

    program = am.export(train_grads, am.spec("t", 3, dtype=F64))
    model = _roundtrip(program, tmp_path)
    x = RNG.standard_normal((5, 3))
    gw, gb = _run(model, x)
    ew, eb = train_grads(am.tensor(x))
    np.testing.assert_allclose(gw, ew.numpy(), rtol=1e-10)
    np.testing.assert_allclose(gb, eb.numpy(), rtol=1e-10)

    def loss_of(weight, bias):
        with am.no_grad():
            lin.weight.copy_(weight)
            lin.bias.copy_(bias)
        h, ys = am.scan(lambda h, xt: (am.cond(xt.sum() > 0, lambda: lin(h).tanh(),
                                               lambda: h * 0.5), h.sum()),
                        am.tensor(x[0]), am.tensor(x))
        return (h * h).sum() + ys.sum()

    w0, b0 = lin.weight.detach().numpy().copy(), lin.bias.detach().numpy().copy()
    nw, nb = central_differences(loss_of, [w0, b0])
    np.testing.assert_allclose(gw, nw, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gb, nb, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- errors


def test_mismatched_branch_types_name_the_function_and_the_leaf() -> None:
    def shape(x):
        return am.cond(x.sum() > 0, lambda: (x, x), lambda: (x, x.sum()))

    with pytest.raises(am.ControlFlowError, match=r"false_fn .*returned output\[1\] as "
                       r"float32\[\], but true_fn .* returned float32\[n\]"):
        am.export(shape, am.spec("n"))

    def dims(x, y):
        return am.cond(x.sum() > 0, lambda: x, lambda: y)

    with pytest.raises(am.ControlFlowError, match=r"output as float32\[m\].*float32\[n\]"):
        am.export(dims, am.spec("n"), am.spec("m"))

    def dtype(x):
        return am.cond(x.sum() > 0, lambda: x, lambda: x.to(am.float64))

    with pytest.raises(am.ControlFlowError, match=r"float64\[n\].*float32\[n\]"):
        am.export(dtype, am.spec("n"))


def test_non_tensor_carries_are_refused() -> None:
    def body_float(x):
        return am.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, 2.0),
                             (am.tensor(0), x))

    with pytest.raises(am.ControlFlowError, match=r"body_fn `.*body_float.*returned "
                       r"carry\[1\] as a Python float"):
        am.export(body_float, am.spec("n"))

    def init_float(x):
        return am.while_loop(lambda c: c[0] < 3, lambda c: c, (am.tensor(0), 1.5))

    with pytest.raises(am.ControlFlowError, match=r"init\[1\] is a Python float"):
        am.export(init_float, am.spec("n"))

    def carry_changes_shape(x):
        return am.while_loop(lambda c: c.sum() < 3.0, lambda c: c.sum(), x)

    with pytest.raises(am.ControlFlowError, match=r"returned carry as float32\[\], but "
                       r"init has float32\[n\]"):
        am.export(carry_changes_shape, am.spec("n"))


def test_recursion_past_the_limit_is_a_typed_error(tmp_path) -> None:
    @am.function
    def down(n, x):
        return am.cond(n > 0, lambda: down(n - 1, x) + 1.0, lambda: x)

    program = am.export(lambda n, x: down(n, x), am.tensor(I64(3)), am.spec(1, dtype=F64))
    model = _roundtrip(program, tmp_path)
    assert _run(model, I64(5), np.zeros(1))[0] == 5.0
    with pytest.raises(am.RecursionLimitError, match="call depth"):
        Interpreter(model.program, max_call_depth=20).run("forward", I64(50), np.zeros(1))
    with pytest.raises(am.RecursionLimitError):  # the default limit, never RecursionError
        _run(model, I64(10**6), np.zeros(1))


def test_unbounded_static_recursion_at_capture_time_is_a_typed_error() -> None:
    @am.function
    def unroll(n, x):
        return unroll(n - 1, x) * 1.0 if n > 0 else x

    with pytest.raises(am.RecursionLimitError, match="max_recursion_depth"):
        am.export(lambda x: unroll(10**6, x), am.spec(3))

    @am.function
    def no_base_case(x):
        return no_base_case(x) + 1.0

    with pytest.raises(am.ControlFlowError, match="calls itself before returning"):
        am.export(lambda x: no_base_case(x), am.spec(3))


def test_a_loop_past_the_iteration_limit_is_a_typed_error(tmp_path) -> None:
    def f(x):
        return am.while_loop(lambda c: c.sum() < 100.0, lambda c: c + 1.0, x,
                             max_iterations=10)

    program = am.export(f, am.spec(1, dtype=F64, low=95.0, high=99.0))
    node = next(n for n in program.functions["forward"].nodes if n.op == "while")
    assert node.attrs["max_iterations"] == 10
    model = _roundtrip(program, tmp_path)
    assert _run(model, np.array([95.5]))[0] == 100.5
    with pytest.raises(am.IterationLimitError, match="past the limit of 10"):
        _run(model, np.array([0.0]))
    # a runtime limit below the node's own also applies
    never = am.export(lambda x: am.while_loop(lambda c: c.sum() > -1.0, lambda c: c + 1.0, x),
                      am.spec(1, dtype=F64), check=False)
    with pytest.raises(am.IterationLimitError, match="past the limit of 50"):
        Interpreter(never, max_iterations=50).run("forward", np.zeros(1))

    # no limit in force at capture: the node stores null, the runtime's limit still holds
    with am.control.limits(max_iterations=None):
        unbounded = am.export(lambda x: am.while_loop(lambda c: c.sum() < 3.0,
                                                      lambda c: c + 1.0, x),
                              am.spec(1, dtype=F64))
    loaded = _roundtrip(unbounded, tmp_path, "unbounded").program
    node = next(n for n in loaded.functions["forward"].nodes if n.op == "while")
    assert node.attrs["max_iterations"] is None
    assert Interpreter(loaded).run("forward", np.zeros(1))[0] == 3.0
    with pytest.raises(am.IterationLimitError, match="past the limit of 2"):
        Interpreter(loaded, max_iterations=2).run("forward", np.zeros(1))


def test_an_opset_1_file_may_not_use_control_flow(tmp_path) -> None:
    program = am.export(lambda x: am.cond(x.sum() > 0, lambda: x, lambda: -x), am.spec(2))
    program.opset_version = 1
    with pytest.raises(am.IRError, match="needs opset version 2"):
        program.verify()


# ----------------------------------------------------------------------------- golden


GOLDEN_V2 = __import__("pathlib").Path(__file__).parent.parent / "golden" / "v2"


def test_golden_v2_files_use_the_control_flow_builtins() -> None:
    ops: set[str] = set()
    for name in ("control", "recursive"):
        model = am.load(GOLDEN_V2 / f"{name}.amber")
        assert model.opset_version == 2
        assert all(r.ok for r in model.verify())
        ops |= {n.op for f in model.program.functions.values() for n in f.nodes}
    assert {"cond", "while", "scan", "call"} <= ops


def test_golden_v2_generator_refuses_to_overwrite(tmp_path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden_v2",
                                                  GOLDEN_V2.parent / "make_golden_v2.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "control.npz").write_bytes(b"existing")
    with pytest.raises(FileExistsError):
        mod.write("control", str(tmp_path))
    assert (tmp_path / "control.npz").read_bytes() == b"existing"
    assert not (tmp_path / "control.amber").exists()
    for name in mod.GOLDEN:
        with pytest.raises(FileExistsError):
            mod.write(name, str(GOLDEN_V2))


# ----------------------------------------------------------------------------- higher order


def test_second_order_gradients_of_exported_cond_and_scan() -> None:
    def c(x):
        return am.cond(x.sum() > 0, lambda: (x * x * x).sum(), lambda: (x * x).sum())

    def s(x):
        carry, _ = am.scan(lambda h, v: (h * v.sin(), None), am.ones(3, dtype=F64), x)
        return carry.sum()

    for f, spec, x in ((c, am.spec(3, dtype=F64), np.array([1.0, 2.0, 3.0])),
                       (s, am.spec("t", 3, dtype=F64), RNG.standard_normal((4, 3)))):
        h = am.grad(lambda v, f=f: am.grad(f)(v).sum())
        program = am.export(h, spec)
        np.testing.assert_allclose(program.run("forward", x)[0], h(am.tensor(x)).numpy(),
                                   rtol=1e-10, atol=1e-12)


def test_gradient_of_an_output_that_is_also_a_wanted_input() -> None:
    # the seed of an output that is itself the differentiated leaf adds to what reaches
    # it through the other outputs (the VJP functions of bodies returning a parameter)
    x = am.tensor([1.0, 2.0], requires_grad=True)
    (g,) = am.autograd.grad([x, x * x], [x], grad_outputs=[am.ones(2, dtype=am.float32),
                                                        am.ones(2, dtype=am.float32)])
    np.testing.assert_allclose(g.numpy(), [3.0, 5.0])


# ----------------------------------------------------------------------------- hooks


def _line_of(fn, marker: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, text in enumerate(lines) if marker in text)


def uses_cond(x):
    return am.cond(x.sum() > 0, lambda a: a * 2.0, lambda a: a - 1.0, x)  # mark


def uses_cond_on_closure(x):
    return am.cond(am.tensor(True), lambda: x * 2.0, lambda: x)  # mark


def uses_while(x):
    return am.while_loop(lambda c: c.sum() < 10.0, lambda c: c * 2.0, x)  # mark


def uses_while_closure(x):
    return am.while_loop(lambda c: c < 3, lambda c: c + 1, am.tensor(0))[None] * x  # mark


def uses_while_body_closure(x):
    return am.while_loop(lambda c: c.sum() < 3.0, lambda c: c + x, am.zeros(4, 3))  # mark


def uses_scan(x):
    return am.scan(lambda c, v: (c + v, c), am.zeros(3), x)[0]  # mark


def uses_fori(x):
    return am.fori_loop(0, 3, lambda i, c: c * 2.0, x)  # mark


@am.function
def double(x):
    return x * 2.0


def uses_function(x):
    return double(x)  # mark


CASES = [
    (uses_cond, "am.cond", "pick a branch"),
    (uses_cond_on_closure, "am.cond", "pick a branch"),
    (uses_while, "am.while_loop", "unroll the loop"),
    (uses_while_body_closure, "am.while_loop", "unroll the loop"),
    (uses_scan, "am.scan", "unroll the loop"),
    (uses_fori, "am.fori_loop", "unroll the loop"),
    (uses_function, "graph function double", "inline the call"),
]


STRUCTURED = {"am.cond": "cond(", "am.while_loop": "while(", "am.fori_loop": "while(",
              "am.scan": "scan(", "graph function double": "call("}


@pytest.mark.parametrize("fn, construct, instead", CASES, ids=[c[0].__name__ for c in CASES])
def test_captured_as_a_structured_node(fn, construct, instead) -> None:
    program = am.export(fn, am.spec(4, 3, low=0.5, high=1.0))
    assert STRUCTURED[construct] in str(program)
    x = np.random.default_rng(0).uniform(0.5, 1.0, (4, 3)).astype(np.float32)
    np.testing.assert_allclose(program.run("forward", x)[0], fn(am.tensor(x)).numpy(),
                               rtol=1e-6)
    # and the same function still runs eagerly afterwards
    fn(am.ones(4, 3))


def test_a_loop_on_constants_alone_runs_at_capture_time() -> None:
    # the loop touches no traced value (its trip count is a constant of the program);
    # only its result meets the traced input, so the export is exact
    program = am.export(uses_while_closure, am.randn(3))
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    got = program.run("forward", x)
    np.testing.assert_allclose(got[0], uses_while_closure(am.tensor(x)).numpy())


def test_python_bool_predicate_is_a_python_if_at_capture_time() -> None:
    def f(x, flag=True):
        return am.cond(flag, lambda a: a * 3.0, lambda a: a, x)

    program = am.export(f, am.randn(2))
    assert "mul" in str(program) and "cond" not in str(program)


def test_eager_state_is_clean_after_a_refusal(monkeypatch) -> None:
    monkeypatch.setattr(ControlHooks, "call", lambda *a: NotImplemented)
    with pytest.raises(am.CaptureError, match="cannot be exported"):
        am.export(uses_function, am.randn(2))
    assert am.control._depth.depth == 0
    assert uses_cond(am.tensor([1.0, 2.0])).tolist() == [2.0, 4.0]


def test_a_declining_hook_refuses_at_the_users_line(monkeypatch) -> None:
    for name in ("cond", "while_loop", "scan", "call"):
        monkeypatch.setattr(ControlHooks, name, lambda *a: NotImplemented)
    for fn, construct, instead in CASES:
        with pytest.raises(am.CaptureError) as e:
            am.export(fn, am.randn(4, 3))
        msg = str(e.value)
        assert f"{__file__}:{_line_of(fn, '# mark')}" in msg
        assert construct in msg and f"does not silently {instead}" in msg


def test_hooks_receive_the_construct(monkeypatch) -> None:
    seen: list[tuple] = []

    def cond_hook(pred, true_fn, false_fn, operands):
        seen.append(("cond", type(pred).__name__, len(operands)))
        (a,) = operands  # an exact stand-in for this test's branches
        return am.where(pred, a * 2.0, a - 1.0)

    monkeypatch.setattr(ControlHooks, "cond", cond_hook)
    program = am.export(uses_cond, am.randn(2))
    assert seen == [("cond", "Tensor", 1)]
    assert "where" in str(program)
    # eagerly (no trace active) the hook is not consulted
    assert uses_cond(am.tensor([1.0])).tolist() == [2.0]
    assert len(seen) == 1


def test_a_hook_may_decline(monkeypatch) -> None:
    monkeypatch.setattr(ControlHooks, "while_loop", lambda *a: NotImplemented)
    with pytest.raises(am.CaptureError, match=r"am\.while_loop cannot be exported"):
        am.export(uses_while, am.randn(3))


def test_fori_loop_is_handed_to_the_while_hook(monkeypatch) -> None:
    calls = []

    def while_hook(cond_fn, body_fn, init, max_iterations):
        calls.append(max_iterations)
        i, carry = init
        while cond_fn((i, carry)):  # the bounds are constants here, so this is concrete
            i, carry = body_fn((i, carry))
        return i, carry

    monkeypatch.setattr(ControlHooks, "while_loop", while_hook)
    am.export(uses_fori, am.randn(3))
    assert calls == [am.control.get_limits().max_iterations]
