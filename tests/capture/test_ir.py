"""IR: text form, verifier, passes (DCE, constant folding, CSE) and ``call``."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
from amber.capture import (
    EntryPoint,
    Function,
    Node,
    Port,
    Program,
    Value,
    common_subexpression_elimination,
    constant_folding,
    dead_code_elimination,
    symbol,
)
from amber.interpreter import Interpreter
from amber.ops.registry import Aval

f32 = am.float32


def _fn(name: str = "f") -> tuple[Program, Function, Value]:
    prog = Program()
    fn = Function(name)
    x = Value("x", Aval((symbol("n"), 3), f32), None, fn)
    fn.params.append(x)
    prog.functions[name] = fn
    return prog, fn, x


def _add(fn: Function, op: str, ins, attrs, aval) -> Value:
    node = Node(op, ins, attrs, [])
    v = Value(fn.fresh_name(), aval, node, fn)
    node.outputs.append(v)
    fn.nodes.append(node)
    return v


def _const(fn: Function, arr) -> Value:
    arr = np.asarray(arr)
    return _add(fn, "constant", [], {"value": arr},
                Aval(arr.shape, am.as_dtype(arr.dtype)))


def test_text_form():
    p = am.export(lambda x: am.tanh(x).reshape(x.shape[0], -1).sum(1), am.spec("batch", 2, 3))
    text = str(p)
    assert "entry forward(x: float32[batch, 2, 3]) -> (output: float32[batch])" in text
    assert "func @forward(%x: float32[batch, 2, 3]) -> (float32[batch]) {" in text
    assert "tanh(%x) : float32[batch, 2, 3]" in text
    assert "reshape(%t0) {shape=[batch, 6]} : float32[batch, 6]" in text
    assert "sum(%t1) {axes=[1], keepdims=false} : float32[batch]" in text
    assert text.rstrip().endswith("}")


def test_text_form_names_the_opset_the_file_declares(tmp_path):
    plain = am.export(lambda x: x * 2, am.spec("n", 3))
    loop = am.export(lambda x: am.fori_loop(0, 3, lambda i, c: c * 2, x), am.spec("n", 3))
    for prog, opset in ((plain, 1), (loop, 2)):
        assert str(prog).splitlines()[0] == f"program (opset {opset})"
        prog.save(tmp_path / "p.amber")
        assert am.load(tmp_path / "p.amber").opset_version == opset


def test_verifier_accepts_exported_programs():
    p = am.export(lambda x: am.softmax(x, -1), am.spec("n", 4))
    p.verify()


def test_verifier_rejects_wrong_declared_type():
    prog, fn, x = _fn()
    _add(fn, "exp", [x], {}, Aval((symbol("n"), 4), f32))
    fn.results = [fn.nodes[-1].output]
    with pytest.raises(am.IRError, match=r"declared float32\[n, 4\].*gives float32\[n, 3\]"):
        prog.verify()


def test_verifier_rejects_dtype_errors():
    prog, fn, x = _fn()
    i = _const(fn, np.array(1, dtype=np.int64))
    _add(fn, "add", [x, i], {}, Aval((symbol("n"), 3), f32))
    with pytest.raises(am.IRError, match="different dtypes"):
        prog.verify()


def test_verifier_rejects_unknown_and_reserved_ops():
    prog, fn, x = _fn()
    _add(fn, "os.system", [x], {}, x.aval)
    with pytest.raises(am.IRError, match=r"unknown op 'os\.system'"):
        prog.verify()
    # cond is a builtin since opset 2: malformed, it is rejected by its own rule ...
    prog, fn, x = _fn()
    _add(fn, "cond", [x], {}, x.aval)
    with pytest.raises(am.IRError, match="cond takes the attributes 'then' and 'else'"):
        prog.verify()
    # ... and a program declaring opset 1 may not use it at all
    prog, fn, x = _fn()
    prog.opset_version = 1
    _add(fn, "cond", [x], {}, x.aval)
    with pytest.raises(am.IRError, match="op 'cond' needs opset version 2"):
        prog.verify()


def test_verifier_rejects_ops_newer_than_the_opset(monkeypatch):
    from amber.capture import verify

    prog, fn, x = _fn()
    _add(fn, "exp", [x], {}, x.aval)
    newer = am.capture.OPSET_VERSION + 1
    monkeypatch.setitem(verify.OP_SINCE, "exp", newer)
    with pytest.raises(am.IRError, match=f"needs opset version {newer}"):
        prog.verify()


def test_verifier_rejects_attribute_mismatch():
    prog, fn, x = _fn()
    _add(fn, "exp", [x], {"axis": 1}, x.aval)
    with pytest.raises(am.IRError, match="attributes"):
        prog.verify()


def test_verifier_rejects_use_before_definition():
    prog, fn, x = _fn()
    ghost = Value("ghost", x.aval, None, fn)
    _add(fn, "exp", [ghost], {}, x.aval)
    with pytest.raises(am.IRError, match="used before it is defined"):
        prog.verify()


def test_verifier_rejects_unbound_symbols():
    prog, fn, x = _fn()
    _add(fn, "reshape", [x], {"shape": (symbol("k"), 3)}, Aval((symbol("k"), 3), f32))
    with pytest.raises(am.IRError, match="symbol"):
        prog.verify()


def test_verifier_checks_entry_signatures():
    prog, fn, x = _fn()
    fn.results = [x]
    prog.entries["f"] = EntryPoint("f", "f", [Port("x", Aval((4, 3), f32))],
                                   [Port("y", x.aval)])
    with pytest.raises(am.IRError, match="input 'x'"):
        prog.verify()


def test_dead_code_elimination():
    prog, fn, x = _fn()
    _add(fn, "exp", [x], {}, x.aval)  # unused
    y = _add(fn, "tanh", [x], {}, x.aval)
    fn.results = [y]
    assert dead_code_elimination(fn) == 1
    assert [n.op for n in fn.nodes] == ["tanh"]


def test_constant_folding():
    prog, fn, x = _fn()
    a = _const(fn, np.float32(2.0))
    b = _const(fn, np.float32(3.0))
    c = _add(fn, "mul", [a, b], {}, Aval((), f32))
    d = _add(fn, "exp", [c], {}, Aval((), f32))
    y = _add(fn, "add", [x, d], {}, x.aval)
    fn.results = [y]
    assert constant_folding(fn) == 2
    dead_code_elimination(fn)
    assert [n.op for n in fn.nodes] == ["constant", "add"]
    # folded by the eager kernel: the value eager execution computes
    want = am.exp(am.tensor(np.float32(6.0))).numpy()
    assert fn.nodes[0].attrs["value"] == want
    assert abs(float(want) - float(np.exp(np.float32(6.0)))) <= 1e-4
    out = Interpreter(prog).run_function(fn, [np.zeros((2, 3), np.float32)], {"n": 2}, 0)
    np.testing.assert_array_equal(out[0], np.full((2, 3), want))


def test_constant_folding_does_not_materialise_broadcasts_or_fold_weights():
    prog, fn, x = _fn()
    s = _const(fn, np.float32(1.0))
    _add(fn, "broadcast_to", [s], {"shape": (1000, 1000)}, Aval((1000, 1000), f32))
    w = _add(fn, "weight", [], {"name": "w"}, Aval((3,), f32))
    prog.weights["w"] = np.ones(3, np.float32)
    _add(fn, "exp", [w], {}, Aval((3,), f32))
    assert constant_folding(fn) == 0


def test_common_subexpression_elimination():
    prog, fn, x = _fn()
    a = _add(fn, "exp", [x], {}, x.aval)
    b = _add(fn, "exp", [x], {}, x.aval)
    c1 = _const(fn, np.float32(2.0))
    c2 = _const(fn, np.float32(2.0))
    s1 = _add(fn, "mul", [a, c1], {}, x.aval)
    s2 = _add(fn, "mul", [b, c2], {}, x.aval)
    y = _add(fn, "add", [s1, s2], {}, x.aval)
    fn.results = [y]
    assert common_subexpression_elimination(fn) == 3
    assert [n.op for n in fn.nodes] == ["exp", "constant", "mul", "add"]
    assert fn.nodes[-1].inputs[0] is fn.nodes[-1].inputs[1]
    prog.verify()


def test_cse_distinguishes_attributes():
    prog, fn, x = _fn()
    a = _add(fn, "sum", [x], {"axes": (0,), "keepdims": False}, Aval((3,), f32))
    b = _add(fn, "sum", [x], {"axes": (0,), "keepdims": True}, Aval((1, 3), f32))
    fn.results = [a, b]
    assert common_subexpression_elimination(fn) == 0


def test_export_runs_the_passes():
    def f(x):
        unused = am.exp(x)  # noqa: F841
        return am.tanh(x) + am.tanh(x) + (am.tensor(2.0) * 3.0)

    p = am.export(f, am.spec("n"))
    ops = [n.op for n in p.functions["forward"].nodes]
    assert ops.count("tanh") == 1 and "exp" not in ops and "mul" not in ops


def test_call_node_invokes_a_function_by_name():
    prog = Program()
    sq = Function("square")
    k = symbol("k")
    a = Value("a", Aval((k,), f32), None, sq)
    sq.params.append(a)
    sq.results = [_add(sq, "mul", [a, a], {}, a.aval)]
    prog.functions["square"] = sq
    main = Function("main")
    x = Value("x", Aval((symbol("n"),), f32), None, main)
    main.params.append(x)
    y = _add(main, "call", [x], {"callee": "square"}, x.aval)
    main.results = [_add(main, "call", [y], {"callee": "square"}, x.aval)]
    prog.functions["main"] = main
    prog.entries["main"] = EntryPoint("main", "main", [Port("x", x.aval)], [Port("y", x.aval)])
    prog.verify()
    assert "call(%x) {callee=\"square\"}" in str(prog)
    out = prog.run("main", np.array([1, 2, 3], np.float32))
    np.testing.assert_array_equal(out[0], [1, 16, 81])
    bad = Function("bad")
    bx = Value("x", Aval((2,), f32), None, bad)
    bad.params.append(bx)
    bad.results = [_add(bad, "call", [bx], {"callee": "nope"}, bx.aval)]
    prog.functions["bad"] = bad
    with pytest.raises(am.IRError, match="unknown function 'nope'"):
        prog.verify()


def test_recursive_call_is_bounded():
    prog = Program()
    f = Function("loop")
    x = Value("x", Aval((2,), f32), None, f)
    f.params.append(x)
    f.results = [_add(f, "call", [x], {"callee": "loop"}, x.aval)]
    prog.functions["loop"] = f
    prog.verify()
    with pytest.raises(am.AmberError, match="call depth"):
        Interpreter(prog, max_call_depth=10).run_function(f, [np.zeros(2, np.float32)], {}, 0)


def test_interpreter_refuses_negative_sizes_and_reports_kernel_errors():
    conv = am.nn.Conv2d(1, 1, 3)
    p = am.export(conv, am.spec("b", 1, "h", 4), sizes={"h": (3, 6)})
    assert str(p.signature().outputs[0]) == "output: float32[b, 1, h-2, 2]"
    assert p.run("forward", np.zeros((1, 1, 3, 4), np.float32))[0].shape == (1, 1, 1, 2)
    with pytest.raises(am.ShapeError, match=r"negative size \(1, 1, -1, 2\) for b=1, h=1"):
        p.run("forward", np.zeros((1, 1, 1, 4), np.float32))

    prog, fn, x = _fn()
    idx = _const(fn, np.array([7], dtype=np.int64))
    y = _add(fn, "take", [x, idx], {"axis": 1}, Aval((symbol("n"), 1), f32))
    fn.results = [y]
    prog.entries["f"] = EntryPoint("f", "f", [Port("x", x.aval)], [Port("y", y.aval)])
    prog.verify()
    with pytest.raises(am.OutOfRangeError, match=r"f, node 1 \(take\).*index 7"):
        prog.run("f", np.zeros((2, 3), np.float32))


def test_interpreter_checks_kernel_results_against_declared_types(monkeypatch):
    from amber.ops.registry import REGISTRY

    prog, fn, x = _fn()
    y = _add(fn, "exp", [x], {}, x.aval)
    fn.results = [y]
    prog.entries["f"] = EntryPoint("f", "f", [Port("x", x.aval)], [Port("y", y.aval)])
    monkeypatch.setattr(REGISTRY["exp"], "impl", lambda a: np.exp(a).astype(np.float64))
    with pytest.raises(am.IRError, match="produced float64"):
        prog.run("f", np.zeros((2, 3), np.float32))


def test_verifier_refuses_shape_rules_that_depend_on_the_size():
    prog, fn, x = _fn()
    n = symbol("n")
    _add(fn, "slice", [x], {"starts": (3, 0), "stops": (n, 3), "steps": (1, 1)},
         Aval((n - 3, 3), f32))
    with pytest.raises(am.IRError, match=r"cannot be decided.*n < 3"):
        prog.verify()
