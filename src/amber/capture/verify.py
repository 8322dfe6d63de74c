"""The IR verifier: every op exists in the program's opset version, attributes match
the op's schema, values are defined before use, types re-inferred with the registry's
rules equal the declared ones, and every symbolic dim is bound by a parameter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _dtype as D
from ..errors import AmberError, CaptureError, IRError
from ..ops.registry import REGISTRY, Aval
from .dims import (
    DimExpr,
    dim_equal,
    format_dim,
    free_symbols,
    is_symbol_name,
    substitute,
    symbol,
    symbols_in,
)
from .ir import (
    FUNCTION_ATTRS,
    OPSET_VERSION,
    WHILE_STACK_ATTRS,
    Function,
    Node,
    Program,
    bound_symbol,
    data_dependent_symbols,
    format_type,
)
from .walk import Frame, Walker

OP_SINCE: dict[str, int] = {"cond": 2, "while": 2, "scan": 2}
OP_SINCE.update((p.name, p.since) for p in REGISTRY.values() if p.since > 1)
"""Opset version that introduced an op (a primitive's is declared on it); ops not listed
exist since version 1."""

WHILE_STACK_SINCE = 3
"""Opset version that introduced the per-iteration outputs of ``while``
(its attributes ``num_stacked`` and ``trip_dim``)."""

DATA_DEPENDENT_RESULTS_SINCE = 5
"""Opset version since which an entry point's function may return values whose size a
stacking ``while`` of that function decides (a data-dependent output dim)."""

MAX_CALL_DEPTH = 64


def op_since(op: str) -> int:
    return OP_SINCE.get(op, 1)


def node_since(node: Node) -> int:
    """The opset version that introduced what ``node`` uses (its op, or an attribute of
    a later form of the op)."""
    if node.op == "while" and any(k in node.attrs for k in WHILE_STACK_ATTRS):
        return WHILE_STACK_SINCE
    return op_since(node.op)


DTYPE_SINCE: dict[D.DType, int] = {D.float16: 5, D.bfloat16: 5, D.int8: 5, D.uint8: 5,
                                   D.int16: 5}
"""Opset version that introduced a dtype; dtypes not listed exist since version 1."""


def _dtypes_used(program: Any) -> set[D.DType]:
    used = {D.from_numpy_dtype(w.dtype) for w in program.weights.values()}
    for fn in program.functions.values():
        used.update(p.aval.dtype for p in fn.params)
        used.update(v.aval.dtype for node in fn.nodes for v in node.outputs)
    return used


def required_opset(program: Any) -> int:
    """The lowest opset version that has every op and dtype ``program`` uses; files
    declare it, so a program without control flow stays readable by readers that only
    know opset 1, and one without stacking ``while`` nodes by readers that only know
    opset 2."""
    ops = max((node_since(node) for fn in program.functions.values() for node in fn.nodes),
              default=1)
    need = max([ops, *(DTYPE_SINCE.get(d, 1) for d in _dtypes_used(program))])
    if any(data_dependent_symbols(fn) for fn in program.functions.values()):
        need = max(need, DATA_DEPENDENT_RESULTS_SINCE)
    return need


def types_equal(a: Aval, b: Aval) -> bool:
    if a.dtype is not b.dtype or len(a.shape) != len(b.shape):
        return False
    for x, y in zip(a.shape, b.shape):
        # NOTE: the same object is the same dim (this verifier's hot path)
        if x is not y and not dim_equal(x, y):
            return False
    return True


def _where(fn: Function, i: int, node: Node) -> str:
    return f"function {fn.name!r}, node {i} ({node.op})"


def _check_dims(aval: Aval, where: str | Frame[Aval], bound: set[str]) -> None:
    """Every dim of ``aval`` is a size >= 0 or uses only ``bound`` symbols (``where``:
    what errors name, or the frame of the node being checked)."""
    for d in aval.shape:
        if isinstance(d, DimExpr):
            missing = free_symbols(d) - bound
            if missing:
                raise IRError(f"{_named(where)}: dim {d} uses symbol(s) "
                              f"{', '.join(sorted(missing))} that no parameter of the "
                              f"function binds")
        elif not isinstance(d, int) or isinstance(d, bool) or d < 0:
            raise IRError(f"{_named(where)}: invalid dim {d!r}")


def _named(where: str | Frame[Aval]) -> str:
    return where if isinstance(where, str) else _at(where)


def verify_function(program: Program, fn: Function) -> None:
    _Checker(program).walk(fn, [p.aval for p in fn.params], set(), 0)


class _Checker(Walker[Aval]):
    """Walks a function re-inferring the type of every node with the op's rule; the
    walk's values are the declared types, its ``env`` the set of bound symbols."""

    def __init__(self, program: Program) -> None:
        self.program = program

    def enter(self, frame: Frame[Aval]) -> None:
        fn, bound = frame.fn, frame.env
        for p in fn.params:
            for d in p.aval.shape:
                if isinstance(d, DimExpr) and d.is_symbol():
                    bound.add(d.name)
        names: set[str] = set()
        for p in fn.params:
            _check_dims(p.aval, f"function {fn.name!r}, parameter {p.name!r}", bound)
            if p.name in names:
                raise IRError(f"function {fn.name!r}: value {p.name!r} is defined twice")
            names.add(p.name)
        frame.state = names

    def undefined(self, frame: Frame[Aval], node: Any) -> None:
        for v in node.inputs:
            if id(v) not in frame.values:
                raise IRError(f"{_at(frame)}: input %{v.name} is used before it is defined")

    def store(self, frame: Frame[Aval], node: Any, outs: Sequence[Aval]) -> None:
        bound, names, values = frame.env, frame.state, frame.values
        sym = bound_symbol(node)
        if sym is not None:  # the node's own outputs and the later nodes may use it
            bound.add(sym)
        if len(outs) != len(node.outputs):
            raise IRError(f"{_at(frame)}: declares {len(node.outputs)} outputs, the op has "
                          f"{len(outs)}")
        for v, want in zip(node.outputs, outs):
            aval = v.aval
            _check_dims(aval, frame, bound)
            if not types_equal(aval, want):
                raise IRError(f"{_at(frame)}: output %{v.name} is declared "
                              f"{format_type(aval)} but the op's type rule gives "
                              f"{format_type(want)}")
            if v.name in names:
                raise IRError(f"{_at(frame)}: value {v.name!r} is defined twice")
            names.add(v.name)
            values[id(v)] = aval

    def results(self, frame: Frame[Aval]) -> list[Aval]:
        fn = frame.fn
        for v in fn.results:
            if id(v) not in frame.values:
                raise IRError(f"function {fn.name!r}: result %{v.name} is not defined")
            # a caller binds only the symbols of the parameters: a size bound by a node of
            # this function has no name outside it (an entry point's function may return
            # one since opset 5: verify_program checks who runs it)
            _check_dims(v.aval, f"function {fn.name!r}, result %{v.name}", frame.env)
        return [v.aval for v in fn.results]

    # -- node kinds: each gives the types of the node's outputs --------------------------
    def _since(self, frame: Frame[Aval], node: Node) -> str:
        """Check that the program's opset has builtin ``node``; returns where it is."""
        where = _at(frame)
        if node_since(node) > self.program.opset_version:
            what = "a while with num_stacked and trip_dim" if op_since(node.op) < node_since(
                node) else f"op {node.op!r}"
            raise IRError(f"{where}: {what} needs opset version {node_since(node)}, the "
                          f"program declares {self.program.opset_version}")
        return where

    def constant(self, frame: Frame[Aval], node: Node, ins: list[Aval]) -> list[Aval]:
        where = self._since(frame, node)
        if set(node.attrs) != {"value"} or node.inputs:
            raise IRError(f"{where}: constant takes no inputs and one attribute 'value'")
        v = node.attrs["value"]
        if not isinstance(v, np.ndarray):
            raise IRError(f"{where}: constant value must be an array")
        return [Aval(tuple(int(d) for d in v.shape), D.from_numpy_dtype(v.dtype))]

    def weight(self, frame: Frame[Aval], node: Node, ins: list[Aval]) -> list[Aval]:
        where = self._since(frame, node)
        if set(node.attrs) != {"name"} or node.inputs:
            raise IRError(f"{where}: weight takes no inputs and one attribute 'name'")
        name = node.attrs["name"]
        w = self.program.weights.get(name)
        if w is None:
            raise IRError(f"{where}: unknown weight {name!r}")
        return [Aval(tuple(int(d) for d in w.shape), D.from_numpy_dtype(w.dtype))]

    def call(self, frame: Frame[Aval], node: Node, ins: list[Aval]) -> list[Aval]:
        where = self._since(frame, node)
        if set(node.attrs) != {"callee"}:
            raise IRError(f"{where}: call takes one attribute 'callee'")
        callee = self.program.functions.get(node.attrs["callee"])
        if callee is None:
            raise IRError(f"{where}: calls unknown function {node.attrs['callee']!r}")
        return call_result_types(callee, ins, where)

    def cond(self, frame: Frame[Aval], node: Node, ins: list[Aval]) -> list[Aval]:
        return _cond_types(self.program, node, ins, self._since(frame, node))

    def while_(self, frame: Frame[Aval], node: Node, ins: list[Aval]) -> list[Aval]:
        return _while_types(self.program, node, ins, self._since(frame, node), frame.env)

    def scan(self, frame: Frame[Aval], node: Node, ins: list[Aval]) -> list[Aval]:
        return _scan_types(self.program, node, ins, self._since(frame, node), frame.env)

    def primitive(self, frame: Frame[Aval], node: Node, ins: list[Aval]) -> list[Aval]:
        program, where, bound = self.program, _at(frame), frame.env
        op = node.op
        prim = REGISTRY.get(op)
        if prim is None:
            raise IRError(f"{where}: unknown op {op!r} (not in opset {program.opset_version})")
        if op_since(op) > program.opset_version:
            raise IRError(f"{where}: op {op!r} needs opset version {op_since(op)}, the program "
                          f"declares {program.opset_version}")
        if prim.n_inputs is not None and len(node.inputs) != prim.n_inputs:
            raise IRError(f"{where}: takes {prim.n_inputs} inputs, got {len(node.inputs)}")
        if set(node.attrs) != set(prim.attrs):
            raise IRError(f"{where}: attributes {sorted(node.attrs)} do not match the op's "
                          f"schema {sorted(prim.attrs)}")
        missing = symbols_in(tuple(node.attrs.values())) - bound
        if missing:
            raise IRError(f"{where}: attributes use symbol(s) {', '.join(sorted(missing))} that "
                          f"no parameter binds")
        try:
            out = prim.infer(*ins, **node.attrs)
        except CaptureError as e:
            # the rule asked a question whose answer depends on a symbolic size
            detail = str(e).split("\n", 1)[-1].strip().split(": the answer depends")[0]
            raise IRError(f"{where}: the op's shape rule cannot be decided for every value of "
                          f"the symbolic sizes (each >= 1): {detail}") from None
        except AmberError as e:
            raise IRError(f"{where}: {e}") from None
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as e:
            raise IRError(f"{where}: malformed operands or attributes ({type(e).__name__}: "
                          f"{e})") from None
        return [out]


def _at(frame: Frame[Aval]) -> str:
    return f"function {frame.fn.name!r}, node {frame.index} ({frame.node.op})"  # _where


def _check_data_dependent(program: Program) -> None:
    """A function whose results have a size its trip count decides (H.2) runs only as an
    entry point, in a program of opset 5 or later: no node may run it, as no caller could
    name that size."""
    dd = {name: s for name, fn in program.functions.items()
          if (s := data_dependent_symbols(fn))}
    if not dd:
        return
    name, syms = next(iter(dd.items()))
    if program.opset_version < DATA_DEPENDENT_RESULTS_SINCE:
        raise IRError(f"function {name!r}: a result uses {', '.join(sorted(syms))}, a size "
                      f"bound by a node (a loop's trip count); that needs opset version "
                      f"{DATA_DEPENDENT_RESULTS_SINCE}, the program declares "
                      f"{program.opset_version}")
    entry_fns = {e.function for e in program.entries.values()}
    for fn in program.functions.values():
        for i, node in enumerate(fn.nodes):
            for key in FUNCTION_ATTRS.get(node.op, ()):
                callee = node.attrs.get(key)
                if callee in dd:
                    raise IRError(
                        f"{_where(fn, i, node)}: runs {callee!r}, whose results use "
                        f"{', '.join(sorted(dd[callee]))}, a size its loop decides; only an "
                        f"entry point may return such a size")
    for name, syms in dd.items():
        if name not in entry_fns:
            raise IRError(f"function {name!r}: a result uses {', '.join(sorted(syms))}, a "
                          f"size bound by a node (a loop's trip count); only an entry "
                          f"point's function may return such a size")


def _function_attr(program: Program, node: Node, key: str, where: str) -> Function:
    name = node.attrs.get(key)
    if not isinstance(name, str):
        raise IRError(f"{where}: attribute {key!r} must name a function")
    fn = program.functions.get(name)
    if fn is None:
        raise IRError(f"{where}: attribute {key!r} names unknown function {name!r}")
    return fn


def _count_attr(node: Node, key: str, where: str, most: int) -> int:
    n = node.attrs.get(key)
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= most:
        raise IRError(f"{where}: attribute {key!r} must be an integer in [0, {most}], got "
                      f"{n!r}")
    return n


def _same_types(got: list[Aval], want: list[Aval], where: str, what: str) -> None:
    if len(got) != len(want):
        raise IRError(f"{where}: {what} gives {len(got)} values, expected {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        if not types_equal(g, w):
            raise IRError(f"{where}: {what} gives {format_type(g)} for value {i}, expected "
                          f"{format_type(w)}")


# Type rules of cond, while and scan (docs/opset.md, "Control flow").
def _cond_types(program: Program, node: Node, ins: list[Aval], where: str) -> list[Aval]:
    if set(node.attrs) != {"then", "else"}:
        raise IRError(f"{where}: cond takes the attributes 'then' and 'else'")
    if not ins or ins[0].dtype is not D.bool_ or ins[0].shape != ():
        raise IRError(f"{where}: the first input of cond must be a bool[] predicate")
    then_fn = _function_attr(program, node, "then", where)
    else_fn = _function_attr(program, node, "else", where)
    t = call_result_types(then_fn, ins[1:], where + " then")
    e = call_result_types(else_fn, ins[1:], where + " else")
    _same_types(e, t, where, f"else function {else_fn.name!r}")
    return t


def _while_types(program: Program, node: Node, ins: list[Aval], where: str,
                 bound: set[str]) -> list[Aval]:
    base = {"cond", "body", "num_carries", "max_iterations"}
    if set(node.attrs) not in (base, base | set(WHILE_STACK_ATTRS)):
        raise IRError(f"{where}: while takes the attributes 'cond', 'body', "
                      f"'num_carries' and 'max_iterations' (and, since opset 3, both "
                      f"'num_stacked' and 'trip_dim')")
    n = _count_attr(node, "num_carries", where, len(ins))
    lim = node.attrs["max_iterations"]
    if lim is not None and (isinstance(lim, bool) or not isinstance(lim, int) or lim < 0):
        raise IRError(f"{where}: max_iterations must be null or a non-negative integer")
    c = call_result_types(_function_attr(program, node, "cond", where), ins,
                          where + " cond")
    _same_types(c, [Aval((), D.bool_)], where, "the cond function")
    b = call_result_types(_function_attr(program, node, "body", where), ins,
                          where + " body")
    if "trip_dim" not in node.attrs:
        _same_types(b, ins[:n], where, "the body function")
        return ins[:n]
    s = _count_attr(node, "num_stacked", where, max(len(b) - n, 0))
    trip = node.attrs["trip_dim"]
    if not isinstance(trip, str) or not is_symbol_name(trip):
        raise IRError(f"{where}: trip_dim must be a symbol name, got {trip!r}")
    if trip in bound:
        raise IRError(f"{where}: trip_dim {trip!r} is already bound in the function; a "
                      f"node binds a fresh symbol")
    _same_types(b, ins[:n] + b[n:n + s], where, "the body function")
    for i, y in enumerate(b[n:]):
        if len(y.shape) >= 32:
            raise IRError(f"{where}: per-iteration value {i} of rank {len(y.shape)} "
                          f"cannot be stacked (rank 32 at most)")
    return ins[:n] + [Aval((symbol(trip), *y.shape), y.dtype) for y in b[n:]]


def _scan_types(program: Program, node: Node, ins: list[Aval], where: str,
                bound: set[str]) -> list[Aval]:
    if set(node.attrs) != {"body", "num_carries", "num_xs", "length", "reverse"}:
        raise IRError(f"{where}: scan takes the attributes 'body', 'num_carries', 'num_xs', "
                      f"'length' and 'reverse'")
    n = _count_attr(node, "num_carries", where, len(ins))
    m = _count_attr(node, "num_xs", where, len(ins) - n)
    length = node.attrs["length"]
    if isinstance(length, bool) or not isinstance(length, (int, DimExpr)) or (
            isinstance(length, int) and length < 0):
        raise IRError(f"{where}: length must be a non-negative integer or dim expression")
    missing = symbols_in(length) - bound
    if missing:
        raise IRError(f"{where}: length uses symbol(s) {', '.join(sorted(missing))} that no "
                      f"parameter binds")
    if not isinstance(node.attrs["reverse"], bool):
        raise IRError(f"{where}: reverse must be a boolean")
    xs = ins[n:n + m]
    for i, x in enumerate(xs):
        if not x.shape or not dim_equal(x.shape[0], length):
            raise IRError(f"{where}: scanned input {i} is {format_type(x)}; its leading dim "
                          f"must be the length {format_dim(length)}")
    args = ins[:n] + [Aval(x.shape[1:], x.dtype) for x in xs] + ins[n + m:]
    r = call_result_types(_function_attr(program, node, "body", where), args,
                          where + " body")
    if len(r) < n:
        raise IRError(f"{where}: the body returns {len(r)} values, fewer than the {n} "
                      f"carries")
    _same_types(r[:n], ins[:n], where, "the body function (carries)")
    return ins[:n] + [Aval((length, *y.shape), y.dtype) for y in r[n:]]


def call_result_types(callee: Function, args: list[Aval], where: str) -> list[Aval]:
    """Result types of calling ``callee`` with arguments of types ``args``: the callee's
    symbols are bound by unifying its parameter types with the argument types."""
    if len(args) != len(callee.params):
        raise IRError(f"{where}: {callee.name!r} takes {len(callee.params)} arguments, got "
                      f"{len(args)}")
    env: dict[str, Any] = {}
    for p, a in zip(callee.params, args):
        if p.aval.dtype is not a.dtype or len(p.aval.shape) != len(a.shape):
            raise IRError(f"{where}: argument for %{p.name} is {format_type(a)}, expected "
                          f"{format_type(p.aval)}")
        for d, ad in zip(p.aval.shape, a.shape):
            if isinstance(d, DimExpr) and d.is_symbol():
                prev = env.get(d.name)
                if prev is not None and not dim_equal(prev, ad):
                    raise IRError(f"{where}: symbol {d.name} of {callee.name!r} is bound to "
                                  f"both {format_dim(prev)} and {format_dim(ad)}")
                env[d.name] = ad
    for p, a in zip(callee.params, args):
        for d, ad in zip(p.aval.shape, a.shape):
            if not dim_equal(substitute(d, env), ad):
                raise IRError(f"{where}: argument for %{p.name} is {format_type(a)}, expected "
                              f"{format_type(p.aval)}")
    return [Aval(tuple(substitute(d, env) for d in r.aval.shape), r.aval.dtype)
            for r in callee.results]


def verify_program(program: Program) -> None:
    """Raise :class:`IRError` describing the first problem found, if any."""
    if program.opset_version > OPSET_VERSION or program.opset_version < 1:
        raise IRError(f"opset version {program.opset_version} is not supported (this amber "
                      f"supports 1 to {OPSET_VERSION})")
    for name, w in program.weights.items():
        if not isinstance(w, np.ndarray):
            raise IRError(f"weight {name!r} is not an array")
        D.from_numpy_dtype(w.dtype)
    _check_data_dependent(program)  # first: a node running such a function names it
    checker = _Checker(program)
    for name, fn in program.functions.items():
        if fn.name != name:
            raise IRError(f"function {fn.name!r} is registered as {name!r}")
        checker.walk(fn, [p.aval for p in fn.params], set(), 0)
    for d in _dtypes_used(program):
        if DTYPE_SINCE.get(d, 1) > program.opset_version:
            raise IRError(f"dtype {d.name} needs opset version {DTYPE_SINCE[d]}, the program "
                          f"declares {program.opset_version}")
    for e in program.entries.values():
        efn = program.functions.get(e.function)
        if efn is None:
            raise IRError(f"entry point {e.name!r} names unknown function {e.function!r}")
        fn = efn
        if len(e.inputs) != len(fn.params) or len(e.outputs) != len(fn.results):
            raise IRError(f"entry point {e.name!r}: signature has {len(e.inputs)} inputs and "
                          f"{len(e.outputs)} outputs, function {fn.name!r} has "
                          f"{len(fn.params)} and {len(fn.results)}")
        for port, p in zip(e.inputs, fn.params):
            if not types_equal(port.aval, p.aval):
                raise IRError(f"entry point {e.name!r}: input {port.name!r} is "
                              f"{format_type(port.aval)}, the function's parameter is "
                              f"{format_type(p.aval)}")
            for d in port.shape:
                if isinstance(d, DimExpr) and not d.is_symbol():
                    raise IRError(f"entry point {e.name!r}: input {port.name!r} has dim {d}; "
                                  f"input dims must be integers or plain symbols")
        for port, r in zip(e.outputs, fn.results):
            if not types_equal(port.aval, r.aval):
                raise IRError(f"entry point {e.name!r}: output {port.name!r} is "
                              f"{format_type(port.aval)}, the function returns "
                              f"{format_type(r.aval)}")
    for i, tv in enumerate(program.test_vectors):
        te = program.entries.get(tv.entry)
        if te is None:
            raise IRError(f"test vector {i} names unknown entry point {tv.entry!r}")
        e = te
        if set(tv.inputs) != {p.name for p in e.inputs} or \
                set(tv.outputs) != {p.name for p in e.outputs}:
            raise IRError(f"test vector {i}: inputs/outputs do not match entry point "
                          f"{tv.entry!r}")
        for ports, arrays in ((e.inputs, tv.inputs), (e.outputs, tv.outputs)):
            for port in ports:
                a = arrays[port.name]
                if a.dtype != port.dtype.np or a.ndim != len(port.shape) or any(
                        isinstance(d, int) and d != n for d, n in zip(port.shape, a.shape)):
                    raise IRError(f"test vector {i}: {port.name!r} is {a.dtype}"
                                  f"{list(a.shape)}, entry point {tv.entry!r} declares "
                                  f"{format_type(port.aval)}")

