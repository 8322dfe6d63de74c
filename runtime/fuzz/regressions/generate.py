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


def write(name, functions, opset=2):
    """One entry point `forward(x: int64[]) -> int64[]` over functions[0]."""
    outs = [p("out")]
    sig = {"forward": {"function": functions[0]["name"], "inputs": [p("x")], "outputs": outs,
                       "output_structure": "out"}}
    header = {"opset_version": opset, "program": {"functions": functions, "weights": []},
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


def stacking_while(name, trips, row_shape=(), declared_row=()):
    """An opset-3 while that stacks its carry (int64[row_shape]) over `trips + x`
    iterations along the trip count it binds, then a scan of that length sums the rows:
    the stack buffer grows (4, 8, ... rows) and is read row by row. With `declared_row`
    different from `row_shape` the declared stacked type does not match what the body
    returns: the run must end in a shape error before any row is copied."""
    row = list(row_shape)
    loop = {"op": "while", "inputs": ["z", "u"], "attrs": {
        "cond": "below", "body": "step", "num_carries": 1, "max_iterations": None,
        "num_stacked": 1, "trip_dim": "trips"},
        "outputs": [p("c", shape=row), p("stack", shape=["trips", *declared_row])]}
    total = {"op": "scan", "inputs": ["zero", "stack"], "attrs": {
        "body": "acc", "num_carries": 1, "num_xs": 1, "length": "trips", "reverse": True},
        "outputs": [p("y")]}
    zeros = {"op": "broadcast_to", "inputs": ["zero"], "attrs": {"shape": row},
             "outputs": [p("z", shape=row)]}
    write(name, [
        fn("main", [p("x")], [*WARM, const("zero", 0), zeros, loop, total], ["y"]),
        fn("below", [p("c", shape=row), p("i")],
           [const("n", trips), node("sum", ["c"], "s", {"axes": list(range(len(row))),
                                                        "keepdims": False}),
            node("add", ["n", "i"], "m"), node("lt", ["s", "m"], "go", dtype="bool")],
           ["go"]),
        fn("step", [p("c", shape=row), p("i")],
           [const("one", 1), node("add", ["c", "one"], "d", shape=row)], ["d", "c"]),
        fn("acc", [p("a"), p("r", shape=row)],
           [node("sum", ["r"], "s", {"axes": list(range(len(row))), "keepdims": False}),
            node("add", ["a", "s"], "b")], ["b"])], opset=3)


def exponential_calls(width=4, depth=12):
    """A function that calls itself `width` times per level, `depth` levels deep (for
    x = 0): width^depth calls within every depth limit; `max_run_calls` must stop it
    (before, only the memory limit did, as each call's bookkeeping stays until the run
    ends)."""
    def call(out):
        return {"op": "call", "inputs": ["j"], "attrs": {"callee": "f"}, "outputs": [p(out)]}
    sums = [node("add", ["r0", "r1"], "s1")]
    sums += [node("add", [f"s{k - 1}", f"r{k}"], f"s{k}") for k in range(2, width)]
    branch = {"op": "cond", "inputs": ["go", "i"], "attrs": {"then": "deeper", "else": "leaf"},
              "outputs": [p("r")]}
    write("hang-exponential-calls", [
        fn("main", [p("x")], [*WARM, {"op": "call", "inputs": ["u"], "attrs": {"callee": "f"},
                                      "outputs": [p("y")]}], ["y"]),
        fn("f", [p("i")], [const("n", depth), node("lt", ["i", "n"], "go", dtype="bool"),
                           branch], ["r"]),
        fn("deeper", [p("i")], [const("one", 1), node("add", ["i", "one"], "j"),
                                *[call(f"r{k}") for k in range(width)], *sums],
           [f"s{width - 1}"]),
        fn("leaf", [p("i")], [const("one", 1)], ["one"])])


if __name__ == "__main__":
    exponential_calls()
    scan_length()
    nested_while()
    loop_first()
    stacking_while("stack-grow-and-scan", 100)
    stacking_while("stack-zero-trips", 0)
    stacking_while("stack-row-mismatch", 5, row_shape=(), declared_row=(3,))
