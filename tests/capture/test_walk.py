"""The node-kind walker every Python executor of the IR shares (amber.capture.walk)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import amber as am
from amber.capture import EntryPoint, Function, Node, Port, Program, Value
from amber.capture.walk import Frame, Walker
from amber.errors import IRError
from amber.ops.registry import Aval

f32 = am.float32


def _program() -> tuple[Program, Function]:
    """f(x) = add(x, weight w) then a call to g(y) = neg(y); plus a constant."""
    prog = Program()
    g = Function("g")
    y = Value("y", Aval((3,), f32), None, g)
    g.params.append(y)
    neg = Node("neg", [y], {}, [])
    neg.outputs.append(Value("r", y.aval, neg, g))
    g.nodes.append(neg)
    g.results = [neg.outputs[0]]
    f = Function("f")
    x = Value("x", Aval((3,), f32), None, f)
    f.params.append(x)
    nodes = [Node("weight", [], {"name": "w"}, []),
             Node("constant", [], {"value": np.array(2, np.float32)}, [])]
    for node, name, aval in zip(nodes, ("w", "c"), (Aval((3,), f32), Aval((), f32))):
        node.outputs.append(Value(name, aval, node, f))
    add = Node("add", [x, nodes[0].outputs[0]], {}, [])
    add.outputs.append(Value("s", x.aval, add, f))
    call = Node("call", [add.outputs[0]], {"callee": "g"}, [])
    call.outputs.append(Value("t", x.aval, call, f))
    f.nodes = [*nodes, add, call]
    f.results = [call.outputs[0], nodes[1].outputs[0]]
    prog.functions = {"f": f, "g": g}
    prog.entries["forward"] = EntryPoint("forward", "f", [Port("x", x.aval)],
                                         [Port("t", x.aval), Port("c", nodes[1].outputs[0].aval)])
    prog.weights["w"] = np.ones(3, np.float32)
    return prog, f


class _Trace(Walker[str]):
    """Values are expressions as text; records the order of hooks and handlers."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.log: list[str] = []

    def enter(self, frame: Frame[str]) -> None:
        self.log.append(f"enter {frame.fn.name} depth {frame.depth}")

    def leave(self, frame: Frame[str]) -> None:
        self.log.append(f"leave {frame.fn.name}")

    def before(self, frame: Frame[str], node: Any) -> None:
        self.log.append(f"before {frame.where()}")

    def constant(self, frame: Frame[str], node: Any, ins: list[str]) -> list[str]:
        return [str(node.attrs["value"])]

    def weight(self, frame: Frame[str], node: Any, ins: list[str]) -> list[str]:
        return [node.attrs["name"]]

    def call(self, frame: Frame[str], node: Any, ins: list[str]) -> list[str]:
        return self.walk(self.program.functions[node.attrs["callee"]], ins, frame.env,
                         frame.depth + 1)

    def primitive(self, frame: Frame[str], node: Any, ins: list[str]) -> list[str]:
        return [f"{node.op}({', '.join(ins)})"]


def test_the_walker_binds_dispatches_and_returns_the_results() -> None:
    prog, f = _program()
    w = _Trace(prog)
    assert w.walk(f, ["x"], {}, 0) == ["neg(add(x, w))", "2.0"]
    assert w.log == ["enter f depth 0", "before f, node 0 (weight)",
                     "before f, node 1 (constant)", "before f, node 2 (add)",
                     "before f, node 3 (call)", "enter g depth 1", "before g, node 0 (neg)",
                     "leave g", "leave f"]


def test_a_kind_without_a_handler_is_named() -> None:
    class Partial(Walker[str]):
        def primitive(self, frame: Frame[str], node: Any, ins: list[str]) -> list[str]:
            return [node.op]

    prog, f = _program()
    with pytest.raises(NotImplementedError, match="Partial handles no 'weight' nodes"):
        Partial().walk(f, ["x"], None, 0)


def test_leave_runs_when_a_handler_fails() -> None:
    class Failing(_Trace):
        def primitive(self, frame: Frame[str], node: Any, ins: list[str]) -> list[str]:
            raise IRError(f"{frame.where()}: refused")

    prog, f = _program()
    w = Failing(prog)
    with pytest.raises(IRError, match=r"^f, node 2 \(add\): refused$"):
        w.walk(f, ["x"], {}, 0)
    assert w.log[-1] == "leave f"


def test_an_input_used_before_it_is_defined_reaches_the_hook() -> None:
    class Strict(_Trace):
        def undefined(self, frame: Frame[str], node: Any) -> None:
            raise IRError(f"{frame.where()}: an input has no value")

    prog, f = _program()
    f.nodes[2], f.nodes[3] = f.nodes[3], f.nodes[2]
    with pytest.raises(IRError, match=r"f, node 2 \(call\): an input has no value"):
        Strict(prog).walk(f, ["x"], {}, 0)
    with pytest.raises(KeyError):  # without the hook: the lookup's own error
        _Trace(prog).walk(f, ["x"], {}, 0)


def test_the_interpreter_and_the_verifier_agree_on_the_walked_program() -> None:
    from amber.interpreter import Interpreter

    prog, f = _program()
    prog.verify()
    out = Interpreter(prog).run("forward", np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(out[0], -(np.arange(3, dtype=np.float32) + 1))
    assert out[1] == np.float32(2)
