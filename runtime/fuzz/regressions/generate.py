"""Writes the hand-made regression files of this directory (see README.md): well-formed
files that once made the fuzz harness hang or trip a sanitizer.
Usage: PYTHONPATH=src python runtime/fuzz/regressions/generate.py"""

from __future__ import annotations

from pathlib import Path

from amber.format.container import write_container

HERE = Path(__file__).resolve().parent
I64, F32 = "int64", "float32"


def p(name, dtype=I64, shape=()):
    return {"name": name, "dtype": dtype, "shape": list(shape)}


def node(op, inputs, out, attrs=None, dtype=I64, shape=()):
    return {"op": op, "inputs": inputs, "attrs": attrs or {}, "outputs": [p(out, dtype, shape)]}


def const(out, value, dtype=I64):
    return node("constant", [], out, {"value": {"dtype": dtype, "shape": [], "data": [value]}},
                dtype=dtype)


def fn(name, params, nodes, results):
    return {"name": name, "params": params, "nodes": nodes, "results": results}


# Frees a value before the first loop, so that the session's free list is not NULL
# (the case ubsan-loop-memcpy-null covers); u = x.
WARM = [node("neg", ["x"], "t"), node("neg", ["t"], "u")]


def write(name, functions):
    """One entry point `forward(x: int64[]) -> int64[]` over functions[0]."""
    outs = [p("out")]
    sig = {"forward": {"function": functions[0]["name"], "inputs": [p("x")], "outputs": outs,
                       "output_structure": "out"}}
    header = {"opset_version": 2, "program": {"functions": functions, "weights": []},
              "signatures": sig}
    write_container(str(HERE / f"{name}.amber"), header, {})


def scan_length():
    """A scan without scanned inputs over 2^60 steps and no stacked output, so no memory
    limit stops it: its length must be checked against the iteration limit."""
    loop = {"op": "scan", "inputs": ["u"], "attrs": {"body": "step", "num_carries": 1,
            "num_xs": 0, "length": 1 << 60, "reverse": False}, "outputs": [p("y")]}
    write("hang-scan-length", [
        fn("main", [p("x")], [*WARM, loop], ["y"]),
        fn("step", [p("c")], [const("one", 1), node("add", ["c", "one"], "d")], ["d"])])


def nested_while(levels=8, trips=200):
    """`levels` nested while loops of `trips` iterations each (for x = 0): every loop stays
    below the per-loop limit (256 in the fuzz harness, 10^6 by default); the product must
    hit the per-run limit."""
    def loop(body, carry, out):
        return {"op": "while", "inputs": [carry], "attrs": {"cond": "below", "body": body,
                "num_carries": 1, "max_iterations": None}, "outputs": [p(out)]}
    funcs = [fn("main", [p("x")], [*WARM, loop("level0", "u", "y")], ["y"]),
             fn("below", [p("i")], [const("n", trips),
                                    node("lt", ["i", "n"], "go", dtype="bool")], ["go"])]
    for k in range(levels):
        nodes = [const("one", 1), node("add", ["i", "one"], "j")]
        if k + 1 < levels:
            nodes += [const("z", 0), loop(f"level{k + 1}", "z", "w")]
        funcs.append(fn(f"level{k}", [p("i")], nodes, ["j"]))
    write("hang-nested-while", funcs)


def loop_first(trips=3):
    """A while loop that runs before anything else in a fresh session, while its free list
    of blocks is still NULL: it must not be copied with memcpy(dst, NULL, 0), undefined
    behaviour that UndefinedBehaviorSanitizer reports."""
    loop = {"op": "while", "inputs": ["x"], "attrs": {"cond": "below", "body": "step",
            "num_carries": 1, "max_iterations": None}, "outputs": [p("y")]}
    write("ubsan-loop-memcpy-null", [
        fn("main", [p("x")], [loop], ["y"]),
        fn("below", [p("i")], [const("n", trips), node("lt", ["i", "n"], "go", dtype="bool")],
           ["go"]),
        fn("step", [p("i")], [const("one", 1), node("add", ["i", "one"], "j")], ["j"])])


if __name__ == "__main__":
    scan_length()
    nested_while()
    loop_first()
