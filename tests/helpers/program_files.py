"""Hand-written .amber program files for tests of the C runtime: functions, parameters
and nodes as header JSON (docs/format.md), written with the container writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amber.format.container import write_container


def fn(name: str, params: Any, nodes: Any, results: Any) -> dict[str, Any]:
    return {"name": name, "params": params, "nodes": nodes, "results": results}


def p(name, dtype="float32", shape=("n",)):
    return {"name": name, "dtype": dtype, "shape": list(shape)}


def node(op, inputs, out, attrs=None, dtype="float32", shape=("n",)):
    return {"op": op, "inputs": inputs, "attrs": attrs or {}, "outputs": [p(out, dtype, shape)]}


def program_file(path: Path, functions, signatures=None, opset=1, tensors=None) -> Path:
    if signatures is None:
        f0 = functions[0]
        outs = [p(f"out{i}", *(_type_of(f0, r))) for i, r in enumerate(f0["results"])]
        signatures = {"forward": {"function": f0["name"], "inputs": f0["params"], "outputs": outs,
                                  "output_structure": {"tuple": [o["name"] for o in outs]}}}
    header = {"opset_version": opset, "program": {"functions": functions, "weights": []},
              "signatures": signatures}
    write_container(str(path), header, tensors or {})
    return path


def _type_of(f, value):
    for q in f["params"]:
        if q["name"] == value:
            return q["dtype"], q["shape"]
    for n in f["nodes"]:
        for o in n["outputs"]:
            if o["name"] == value:
                return o["dtype"], o["shape"]
    raise KeyError(value)


def const(out, dtype, value):
    return node("constant", [], out, {"value": {"dtype": dtype, "shape": [], "data": [value]}},
                dtype=dtype, shape=[])


def control_flow_program(path: Path, reverse: bool) -> Path:
    """cond, while and scan (opset 2) over helper functions, with a symbolic size n."""
    f32, i64 = "float32", "int64"
    funcs = [
        fn("main", [p("x")], [
            node("sum", ["x"], "s", {"axes": [0], "keepdims": False}, shape=[]),
            const("zero", f32, 0.0),
            node("gt", ["s", "zero"], "pos", dtype="bool", shape=[]),
            node("cond", ["pos", "x"], "y", {"then": "double", "else": "minus_one"}),
            const("i0", i64, 0),
            {"op": "while", "inputs": ["i0", "y"],
             "attrs": {"cond": "lt5", "body": "step", "num_carries": 2, "max_iterations": None},
             "outputs": [p("i", i64, []), p("z")]},
            {"op": "scan", "inputs": ["zero", "x"],
             "attrs": {"body": "accumulate", "num_carries": 1, "num_xs": 1, "length": "n",
                       "reverse": reverse},
             "outputs": [p("last", f32, []), p("ys")]},
        ], ["z", "i", "last", "ys"]),
        fn("double", [p("a")], [node("add", ["a", "a"], "b")], ["b"]),
        fn("minus_one", [p("a")], [const("one", f32, 1.0), node("sub", ["a", "one"], "b")], ["b"]),
        fn("lt5", [p("i", i64, []), p("acc")], [
            const("five", i64, 5), node("lt", ["i", "five"], "go", dtype="bool", shape=[])],
           ["go"]),
        fn("step", [p("i", i64, []), p("acc")], [
            const("one", i64, 1), node("add", ["i", "one"], "j", dtype=i64, shape=[]),
            const("k", f32, 1.5), node("mul", ["acc", "k"], "acc2")], ["j", "acc2"]),
        fn("accumulate", [p("c", f32, []), p("xi", f32, [])], [
            node("add", ["c", "xi"], "c2", shape=[]), node("add", ["c2", "c2"], "y", shape=[])],
           ["c2", "y"]),
    ]
    return program_file(path, funcs, opset=2)
