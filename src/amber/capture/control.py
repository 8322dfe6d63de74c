"""Capture of structured control flow: ``am.cond``, ``am.while_loop``, ``am.scan``
(and ``am.fori_loop``, which is a ``while_loop``) and graph functions (``@am.function``).

Importing this module installs the :class:`amber.control.ControlHooks`. Under capture:

- ``am.cond`` traces *both* branches into functions of the program and records a
  ``cond`` node; the branches must return one structure, dtype and shape (symbolic dims
  included), or :class:`amber.ControlFlowError` names the branch and the leaf.
- ``am.while_loop`` traces ``cond_fn`` and ``body_fn`` into functions and records a
  ``while`` node (with the iteration limit in force as its ``max_iterations``).
- ``am.scan`` traces ``fn`` into a body function and records a ``scan`` node.
- a call of an ``@am.function`` becomes a ``call`` node of a function traced once per
  argument type; a call of a function that is still being traced (recursion, direct or
  through other functions) is a ``call`` of that function, never an unrolling. The
  result type of a recursive function is found by tracing it again with the type the
  first trace settled on (the recursive call inside a ``cond`` branch is skipped the
  first time, the other branch giving the type), until the types agree.

Tensors that branch and body functions close over become *implicit operands*: extra
parameters of the traced function and extra inputs of the node, so gradients reach them
exactly as they reach explicit operands.

Gradients. Each structured node is one multi-output entry of the autograd tape whose
VJP is again structured IR, built from VJP *functions* (:func:`vjp_function`: the
function replayed on differentiable tracers, then differentiated by the tape):

- ``call f`` -> ``call f_vjp`` (the VJP of a recursive function is recursive);
- ``cond`` -> a ``cond`` over the two branches' VJP functions;
- ``scan`` -> a forward ``scan`` that also stacks the carry entering every step (the
  residuals), then a ``scan`` in the opposite direction over the body's VJP;
- ``while`` -> the forward node itself is rewritten (once, when its gradient is first
  needed) into the opset-3 form that also stacks the carries entering every iteration
  along its trip count ``trip_dim``; then a reverse ``scan`` of that length over the
  body's VJP, as for ``scan``: O(n) body evaluations and O(n) memory for n iterations.
  A forward-only export never needs the gradient, so its ``while`` nodes stay opset 2.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _dtype as D
from .._tree import tree_flatten, tree_paths, tree_unflatten
from ..capture_errors import user_frame
from ..control import ControlHooks, GraphFunction, _describe, _leaf_type, get_limits
from ..errors import AmberError, CaptureError, ControlFlowError, IRError, RecursionLimitError
from ..ops.registry import REGISTRY, Aval, Node, Primitive, _GradMode, bind
from ..tensor import Tensor
from .dims import (
    DimExpr,
    dim_equal,
    format_dim,
    free_symbols,
    generalise,
    substitute,
    symbol,
    symbols_in,
)
from .ir import (
    FUNCTION_ATTRS,
    Function,
    Program,
    Value,
    bound_symbol,
    format_type,
)
from .ir import Node as IRNode
from .trace import _clean, _current, _state, _Trace, make_tracer
from .walk import Frame, Walker

__all__ = ["capture_session", "reachable_functions", "vjp_function"]


# ----------------------------------------------------------------------------- session


@dataclass
class _GraphFn:
    """One traced specialisation of a graph function."""

    fn: Function
    param_avals: list[Aval]
    result_avals: list[Aval] | None
    out_treedef: Any
    captures: list[Tensor]          # closed-over tensors, in parameter order
    in_progress: bool = True
    speculated: bool = False        # a cond skipped a branch that needed a type
    provisional: bool = False       # ... the type of a function this one is nested in
    trace: Any = None
    key: Any = None                 # the _call_hook key of its calls


@dataclass
class _Session:
    program: Program
    functions: dict[str, Function] = field(default_factory=dict)
    graph_fns: dict[Any, list[_GraphFn]] = field(default_factory=dict)
    vjps: dict[str, Function] = field(default_factory=dict)
    vjp_results: dict[str, list[Aval]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    depth: int = 0
    in_progress: list[_GraphFn] = field(default_factory=list)
    # id(graph function being traced) -> captures passed by each recursive call so far
    pending_calls: dict[int, list[int]] = field(default_factory=dict)
    trips: int = 0                  # trip-count symbols named so far (_fresh_trip_symbol)
    # traced specialisations in the order they were cached (_discard forgets the stale)
    cached: list[tuple[Any, _GraphFn]] = field(default_factory=list)
    # call keys whose recursion is traced by shape, with the reason (why generalising the
    # differing sizes to symbols failed)
    by_shape: dict[Any, str] = field(default_factory=dict)
    # the symbols generalisation made
    fresh: set[str] = field(default_factory=set)

    def unique(self, base: str) -> str:
        base = _clean(base)
        name, k = base, 1
        while name in self.used or name in self.program.functions:
            name = f"{base}_{k}"
            k += 1
        self.used.add(name)
        return name

    def new_function(self, base: str) -> Function:
        fn = Function(self.unique(base))
        self.functions[fn.name] = fn
        return fn

    def lookup(self, name: str) -> Function:
        fn = self.functions.get(name) or self.program.functions.get(name)
        if fn is None:
            raise IRError(f"unknown function {name!r}")
        return fn


class _SessionState(threading.local):
    def __init__(self) -> None:
        self.stack: list[_Session] = []


_sessions = _SessionState()


@contextlib.contextmanager
def capture_session(program: Program) -> Iterator[_Session]:
    """The functions created while capturing one entry point of ``program``."""
    sess = _Session(program)
    _sessions.stack.append(sess)
    try:
        yield sess
    finally:
        _sessions.stack.pop()


def _session() -> _Session:
    if not _sessions.stack:
        raise CaptureError("control flow is captured into a program: capture with "
                           "am.export(...) or program.add(...), which collect the functions "
                           "that cond, while_loop, scan and graph functions create")
    return _sessions.stack[-1]


def reachable_functions(program: Program, roots: Sequence[Function],
                        extra: dict[str, Function]) -> dict[str, Function]:
    """The functions of ``extra`` reachable from ``roots`` through the function
    attributes of ``call``, ``cond``, ``while`` and ``scan`` nodes."""
    out: dict[str, Function] = {}
    todo = list(roots)
    while todo:
        fn = todo.pop()
        for n in fn.nodes:
            for key in FUNCTION_ATTRS.get(n.op, ()):
                callee = n.attrs[key]
                if callee in extra and callee not in out:
                    out[callee] = extra[callee]
                    todo.append(extra[callee])
    return out


# ----------------------------------------------------------------------------- sub traces


class _SubTrace(_Trace):
    """Records one branch/body/graph function. A tracer of an enclosing trace becomes a
    new parameter of this function (an implicit operand), lifted through every trace in
    between."""

    def __init__(self, fn: Function, parent: _Trace) -> None:
        super().__init__(fn, parent.weight_ids)
        self.parent = parent
        self.captures: list[Tensor] = []
        self.lifted: dict[int, Value] = {}

    def value_of(self, t: Tensor) -> Value:
        v = t._value
        if t._data is None and isinstance(v, Value) and v.fn is not self.fn:
            return _lift(self, t)
        return super().value_of(t)


def _lift(tr: _Trace, t: Tensor) -> Value:
    v = t._value
    assert isinstance(v, Value)
    if v.fn is tr.fn:
        return v
    if not isinstance(tr, _SubTrace):
        path, line, _ = user_frame()
        raise CaptureError(f"{path}:{line}\n  a traced tensor from another capture (or one "
                           f"kept after its function was traced) was used here; pass it "
                           f"in as an argument instead")
    hit = tr.lifted.get(id(v))
    if hit is not None:
        return hit
    _lift(tr.parent, t)
    p = Value(tr.fn.fresh_name(), v.aval, None, tr.fn)
    tr.fn.params.append(p)
    tr.captures.append(t)
    tr.lifted[id(v)] = p
    return p


@dataclass
class _Traced:
    fn: Function
    out: Any                 # the Python result (tracers of the sub trace)
    explicit: list[Value]    # parameters for the explicit arguments
    captures: list[Tensor]   # closed-over tensors (outer), in parameter order
    cap_params: list[Value]


def _trace(base: str, py_fn: Callable[..., Any], avals: Sequence[Aval],
           build_args: Callable[[list[Tensor]], tuple[Any, ...]],
           preseed: Sequence[Tensor] = (), fn: Function | None = None) -> _Traced:
    """Trace ``py_fn(*build_args(tracers))`` into a new function whose first parameters
    have types ``avals``."""
    sess = _session()
    parent = _current()
    fn = fn if fn is not None else sess.new_function(base)
    sub = _SubTrace(fn, parent)
    explicit = [Value(fn.fresh_name(), a, None, fn) for a in avals]
    fn.params.extend(explicit)
    for t in preseed:
        _lift(sub, t)
    tracers = [make_tracer(p) for p in explicit]
    _state.stack.append(sub)
    try:
        with _GradMode(False):
            out = py_fn(*build_args(tracers))
    finally:
        _state.stack.pop()
    _bind_free_symbols(sub)
    n = len(explicit)
    return _Traced(fn, out, explicit, list(sub.captures), fn.params[n:])


def _bind_free_symbols(sub: _SubTrace) -> None:
    """A traced function may use a symbolic size of the enclosing function that none of
    its parameters carries (``x * n`` for ``n = outer.shape[0]``): capture a value of an
    enclosing function whose shape has that symbol, as a parameter binding it."""
    fn = sub.fn
    bound = {d.name for p in fn.params for d in p.aval.shape
             if isinstance(d, DimExpr) and d.is_symbol()}
    used: set[str] = set()
    for node in fn.nodes:
        used |= symbols_in(tuple(node.attrs.values()))
        for v in node.outputs:
            used |= symbols_in(v.aval.shape)
    # a symbol bound by a node of the function (a trip count) is not the enclosing one's
    missing = used - bound - {s for s in map(bound_symbol, fn.nodes) if s is not None}
    tr: Any = sub.parent
    while missing and tr is not None:
        for p in tr.fn.params:
            syms = {d.name for d in p.aval.shape if isinstance(d, DimExpr) and d.is_symbol()}
            if syms & missing:
                _lift(sub, make_tracer(p))
                missing -= syms
        tr = getattr(tr, "parent", None)


def _set_results(fn: Function, tr: _Traced, leaves: Sequence[Any]) -> None:
    """Resolve result tensors to values of ``fn``; an outer tensor returned directly
    becomes a captured parameter."""
    res: list[Value] = []
    lifted = {id(c._value): p for c, p in zip(tr.captures, tr.cap_params)}
    for leaf in leaves:
        if leaf._data is not None:  # a concrete tensor: a constant of the function
            arr = np.array(leaf._data, copy=True)
            arr.setflags(write=False)
            node_val = Value(fn.fresh_name(), Aval(tuple(arr.shape),
                                                   D.from_numpy_dtype(arr.dtype)), None, fn)
            from .ir import Node as IRNode

            node = IRNode("constant", [], {"value": arr}, [node_val])
            node_val.producer = node
            fn.nodes.append(node)
            res.append(node_val)
            continue
        v = leaf._value
        if isinstance(v, Value) and v.fn is fn:
            res.append(v)
        elif id(v) in lifted:
            res.append(lifted[id(v)])
        else:
            p = Value(fn.fresh_name(), v.aval, None, fn)
            fn.params.append(p)
            tr.captures.append(leaf)
            tr.cap_params.append(p)
            lifted[id(v)] = p
            res.append(p)
    fn.results = res
    _refuse_escaping_trips(fn, [r.aval for r in res])


def _refuse_escaping_trips(fn: Function, avals: Sequence[Aval]) -> None:
    """A traced function may not return a size a loop inside it decides (a trip count it
    binds): its caller could not name it."""
    trips = {s for s in map(bound_symbol, fn.nodes) if s is not None}
    for a in avals:
        dd = sorted({s for d in a.shape for s in free_symbols(d)} & trips)
        if dd:
            path, line, _ = user_frame()
            raise CaptureError(
                f"{path}:{line}\n  {_who(fn)} returns a value of type {format_type(a)}, whose "
                f"size ({', '.join(dd)}) a loop inside it decides; such a size can only "
                f"leave the exported function itself, from a loop at its top level. Reduce "
                f"the value inside (e.g. .sum(dim)), or pad it to a maximum length.")


def _who(fn: Function) -> str:
    kind = re.fullmatch(r"(cond_true|cond_false|while_body|scan_body)(_\d+)?", fn.name)
    if kind is None:
        return f"the graph function {fn.name!r}"
    return {"cond": "a branch of an if (am.cond)", "while": "the body of a loop",
            "scan": "the body of am.scan"}[kind.group(1).split("_")[0]]


def _flat_out(out: Any, construct: str, who: str, root: str) -> tuple[list[Tensor], Any]:
    leaves, td = tree_flatten(out)
    for i, x in enumerate(leaves):
        if not isinstance(x, Tensor):
            paths = _leaf_paths(out, root)
            raise ControlFlowError(
                f"{construct}: {who} returned {paths[i]} as {_leaf_type(x)}; "
                f"it must return tensors or (nested) tuples, lists and dicts of tensors")
    return leaves, td


def _leaf_paths(tree: Any, root: str) -> list[str]:
    return tree_paths(tree, root, lambda p, k: f"{p}[{k!r}]")


def _aval(t: Tensor) -> Aval:
    if t._data is not None:
        return Aval(tuple(int(d) for d in t._data.shape), t.dtype)
    v = t._value
    assert isinstance(v, Value)
    return v.aval


def _types_equal(a: Aval, b: Aval) -> bool:
    return a.dtype is b.dtype and len(a.shape) == len(b.shape) and all(
        dim_equal(x, y) for x, y in zip(a.shape, b.shape))


def _check_match(ref_tree: Any, ref: list[Tensor], ref_td: Any, got_tree: Any,
                 got: list[Tensor], got_td: Any, root: str, message: Callable[[str, str, str],
                                                                               str]) -> None:
    """Raise ControlFlowError (worded by ``message(path, expected, got)``) at the first
    leaf whose structure, dtype or shape (symbolic dims included) differ."""
    if ref_td != got_td:
        from ..control import _structure

        raise ControlFlowError(message(root, _structure(ref_tree), _structure(got_tree)))
    paths = _leaf_paths(ref_tree, root)
    for p, a, b in zip(paths, ref, got):
        if not _types_equal(_aval(a), _aval(b)):
            raise ControlFlowError(message(p, format_type(_aval(a)), format_type(_aval(b))))


# ----------------------------------------------------------------------------- tape


class _Cots:
    """Cotangents of the outputs of one structured node, accumulated by the tape."""

    __slots__ = ("by_index",)

    def __init__(self, by_index: dict[int, Tensor]) -> None:
        self.by_index = by_index

    def __add__(self, other: _Cots) -> _Cots:
        merged = dict(self.by_index)
        for i, g in other.by_index.items():
            merged[i] = merged[i] + g if i in merged else g
        return _Cots(merged)


def _extract_prim(i: int) -> Primitive:
    p = Primitive(f"output_{i}", _no_kernel, _no_infer, {}, 1)
    p.def_vjp(lambda g, out, group: (_Cots({i: g}),))  # type: ignore[arg-type,return-value]
    return p


def _no_kernel(*args: Any, **kwargs: Any) -> np.ndarray:
    raise CaptureError("a structured control-flow node has no eager kernel")


def _no_infer(*args: Any, **kwargs: Any) -> Aval:
    raise CaptureError("a structured control-flow node has no standalone type rule")


_EXTRACT: list[Primitive] = []


def _extract(i: int) -> Primitive:
    while len(_EXTRACT) <= i:
        _EXTRACT.append(_extract_prim(len(_EXTRACT)))
    return _EXTRACT[i]


VjpRule = Callable[[list["Tensor | None"], list[Tensor], list[Tensor]], list["Tensor | None"]]


def emit(op: str, inputs: Sequence[Tensor], attrs: dict[str, Any], out_avals: Sequence[Aval]
         ) -> list[Tensor]:
    """Record a structured node in the current trace; return its outputs as tracers,
    connected to the autograd tape through the node's VJP rule."""
    tr = _current()
    ins = [tr.value_of(t) for t in inputs]
    vals = tr.add(op, ins, attrs, list(out_avals))
    outs = [make_tracer(v) for v in vals]
    from ..ops.registry import is_grad_enabled

    if not is_grad_enabled() or not any(t.requires_grad for t in inputs):
        return outs
    if not any(o.dtype.is_floating for o in outs):
        return outs
    group_prim = Primitive(f"{op}_vjp", _no_kernel, _no_infer, {}, None)
    rule = _RULES[op]
    saved_attrs = dict(attrs)
    group = object.__new__(Tensor)
    group._data, group.grad, group._aval, group._value = None, None, None, None
    group.requires_grad = True
    group._node = Node(group_prim, tuple(inputs), {}, group)
    assert vals[0].producer is not None
    site = _Site(vals[0].producer, tr.fn, group, [])
    for o in outs:
        site.track(o)

    def vjp(cots: _Cots, _group: Tensor, *primals: Tensor) -> list[Tensor | None]:
        gs: list[Tensor | None] = [cots.by_index.get(i) for i in range(len(site.outs))]
        return rule(saved_attrs, gs, list(primals), site.outs, site)

    group_prim.def_vjp(vjp)  # type: ignore[arg-type]
    return outs


@dataclass
class _Site:
    """A structured node recorded with gradients on: its IR node (in function ``fn``),
    the tape entry ``group`` of the node, and its outputs on the tape, in order (a rule
    may add outputs to the node: the residuals of a ``while``)."""

    node: IRNode
    fn: Function
    group: Tensor
    outs: list[Tensor]
    residuals: list[Tensor] | None = None

    def track(self, o: Tensor) -> None:
        """Append ``o`` as the node's next output; a float one gets its cotangent through
        the node's tape entry (so gradients of gradients reach the node's inputs)."""
        if o.dtype.is_floating:
            o.requires_grad = True
            o._node = Node(_extract(len(self.outs)), (self.group,), {}, o)
        self.outs.append(o)


def _zeros(aval: Aval) -> Tensor:
    from .. import functional as _F

    return _F.broadcast_to(_F.scalar(0, aval.dtype), aval.shape)


def _cot_or_zero(g: Tensor | None, like: Tensor) -> Tensor:
    return g if g is not None else _zeros(_aval(like))


def _unify(param_avals: Sequence[Aval], args: Sequence[Aval], what: str) -> dict[str, Any]:
    env: dict[str, Any] = {}
    if len(param_avals) != len(args):
        raise IRError(f"{what}: takes {len(param_avals)} values, got {len(args)}")
    for p, a in zip(param_avals, args):
        if p.dtype is not a.dtype or len(p.shape) != len(a.shape):
            raise IRError(f"{what}: {format_type(a)} where {format_type(p)} is expected")
        for d, ad in zip(p.shape, a.shape):
            if isinstance(d, DimExpr) and d.is_symbol():
                prev = env.get(d.name)
                if prev is not None and not dim_equal(prev, ad):
                    raise IRError(f"{what}: symbol {d.name} bound to both {format_dim(prev)} "
                                  f"and {format_dim(ad)}")
                env[d.name] = ad
    for p, a in zip(param_avals, args):
        for d, ad in zip(p.shape, a.shape):
            if not dim_equal(substitute(d, env), ad):
                raise IRError(f"{what}: {format_type(a)} where {format_type(p)} is expected")
    return env


def _subst(avals: Sequence[Aval], env: dict[str, Any]) -> list[Aval]:
    return [Aval(tuple(substitute(d, env) for d in a.shape), a.dtype) for a in avals]


def _unifies(param_avals: Sequence[Aval], args: Sequence[Aval]) -> bool:
    try:
        _unify(param_avals, args, "")
    except IRError:
        return False
    return True


def _fn_results(fn: Function) -> list[Aval]:
    sess = _session()
    if fn.name in sess.vjp_results and not fn.results:
        return sess.vjp_results[fn.name]
    return [r.aval for r in fn.results]


def emit_call(fn: Function, args: Sequence[Tensor], result_avals: Sequence[Aval] | None = None
              ) -> list[Tensor]:
    """``call`` ``fn`` on ``args``: result types ``result_avals`` (the caller's), or
    ``fn``'s with its symbols replaced by the argument sizes."""
    env = _unify([p.aval for p in fn.params], [_aval(a) for a in args], f"call {fn.name}")
    # NOTE: the caller's types are not substituted: a recursive callee's symbol (d0) may
    # name a different size in the caller (where the argument is d0-1)
    res = list(result_avals) if result_avals is not None else _subst(_fn_results(fn), env)
    return emit("call", args, {"callee": fn.name}, res)


# ----------------------------------------------------------------------------- replay


def replay(fn: Function, args: Sequence[Tensor]) -> list[Tensor]:
    """Run the IR of ``fn`` on tensors through ``bind`` (recording into the current trace
    and onto the autograd tape); structured nodes are emitted with their VJP rules."""
    return _Replay(_current()).walk(fn, args, None, 0)


class _Replay(Walker[Tensor]):
    """:func:`replay`'s handlers, recording into trace ``tr``."""

    def __init__(self, tr: _Trace) -> None:
        self.tr = tr

    def constant(self, frame: Frame[Tensor], node: IRNode, ins: list[Tensor]
                 ) -> list[Tensor]:
        return [Tensor(np.array(node.attrs["value"], copy=True))]

    def _source(self, frame: Frame[Tensor], node: IRNode, ins: list[Tensor]) -> list[Tensor]:
        """A node without inputs (a weight, a random draw): recorded as it is."""
        vals = self.tr.add(node.op, [], dict(node.attrs), [node.outputs[0].aval])
        return [make_tracer(vals[0])]

    def primitive(self, frame: Frame[Tensor], node: IRNode, ins: list[Tensor]
                  ) -> list[Tensor]:
        prim = REGISTRY.get(node.op)
        if prim is None:
            return self._structured(frame, node, ins)
        if not node.inputs:
            return self._source(frame, node, ins)
        return [bind(prim, tuple(ins), dict(node.attrs))]

    def _structured(self, frame: Frame[Tensor], node: IRNode, ins: list[Tensor]
                    ) -> list[Tensor]:
        sym = bound_symbol(node)
        tr = self.tr
        if sym is not None and sym in symbols_in(tuple(p.aval.shape for p in tr.fn.params)):
            raise IRError(f"replaying {frame.fn.name!r} into {tr.fn.name!r}: symbol {sym} "
                          f"bound by a while node is a parameter dim there")
        return emit(node.op, ins, dict(node.attrs), [v.aval for v in node.outputs])

    weight = _source
    call = cond = while_ = scan = _structured


def make_function(base: str, param_avals: Sequence[Aval],
                  body: Callable[[list[Tensor]], Sequence[Tensor]]) -> Function:
    """A new function of the program: parameters of types ``param_avals``, nodes and
    results recorded by running ``body`` on tracers of the parameters."""
    sess = _session()
    fn = sess.new_function(base)
    fn.params = [Value(fn.fresh_name(), a, None, fn) for a in param_avals]
    tr = _Trace(fn, {})
    _state.stack.append(tr)
    try:
        outs = body([make_tracer(p) for p in fn.params])
        fn.results = [tr.value_of(o) for o in outs]
    finally:
        _state.stack.pop()
    return fn


def _float_idx(avals: Sequence[Aval]) -> list[int]:
    return [i for i, a in enumerate(avals) if a.dtype.is_floating]


def vjp_function(fn: Function) -> Function:
    """The VJP function of ``fn``: parameters ``(*fn's parameters, *cotangents of fn's
    floating results)``, results the cotangents of fn's floating parameters. It replays
    ``fn`` (recomputing the forward values) and differentiates it with the tape; a call
    of a function whose VJP is being built (recursion) calls that VJP function."""
    sess = _session()
    hit = sess.vjps.get(fn.name)
    if hit is not None:
        return hit
    from ..autograd import grad

    p_avals = [p.aval for p in fn.params]
    r_avals = [r.aval for r in fn.results]
    f_in, f_out = _float_idx(p_avals), _float_idx(r_avals)
    vfn = sess.new_function(fn.name + "_vjp")
    vfn.params = [Value(vfn.fresh_name(), a, None, vfn)
                  for a in p_avals + [r_avals[i] for i in f_out]]
    sess.vjps[fn.name] = vfn
    sess.vjp_results[vfn.name] = [p_avals[i] for i in f_in]
    tr = _Trace(vfn, {})
    _state.stack.append(tr)
    try:
        with _GradMode(True):
            tracers = [make_tracer(p) for p in vfn.params]
            xs = tracers[:len(p_avals)]
            cts = tracers[len(p_avals):]
            for i in f_in:
                xs[i].requires_grad = True
            outs = replay(fn, xs)
            pairs = [(outs[i], c) for i, c in zip(f_out, cts) if outs[i].requires_grad]
            wrt = [xs[i] for i in f_in]
            if pairs and wrt:
                gs = grad([o for o, _ in pairs], wrt, grad_outputs=[c for _, c in pairs],
                          allow_unused=True)
            else:
                gs = tuple(None for _ in wrt)
        with _GradMode(False):
            res = [g if g is not None else _zeros(p_avals[i]) for g, i in zip(gs, f_in)]
            vfn.results = [tr.value_of(r) for r in res]
    finally:
        _state.stack.pop()
    return vfn


# ----------------------------------------------------------------------------- VJP rules


def _floats(ts: Sequence[Tensor]) -> list[int]:
    return [i for i, t in enumerate(ts) if t.dtype.is_floating]


def _scatter(n: int, idx: Sequence[int], vals: Sequence[Tensor]) -> list[Tensor | None]:
    out: list[Tensor | None] = [None] * n
    for i, v in zip(idx, vals):
        out[i] = v
    return out


def _call_rule(attrs: dict[str, Any], gs: list[Tensor | None], primals: list[Tensor],
               outs: list[Tensor], _site: _Site) -> list[Tensor | None]:
    fn = _session().lookup(attrs["callee"])
    vfn = vjp_function(fn)
    f_out = _floats(outs)
    cts = [_cot_or_zero(gs[i], outs[i]) for i in f_out]
    f_in = _floats(primals)
    res = emit_call(vfn, primals + cts, [_aval(primals[i]) for i in f_in])
    return _scatter(len(primals), f_in, res)


def _cond_rule(attrs: dict[str, Any], gs: list[Tensor | None], primals: list[Tensor],
               outs: list[Tensor], _site: _Site) -> list[Tensor | None]:
    sess = _session()
    then_v = vjp_function(sess.lookup(attrs["then"]))
    else_v = vjp_function(sess.lookup(attrs["else"]))
    pred, args = primals[0], primals[1:]
    f_out = _floats(outs)
    cts = [_cot_or_zero(gs[i], outs[i]) for i in f_out]
    f_in = _floats(args)
    res = emit("cond", [pred, *args, *cts], {"then": then_v.name, "else": else_v.name},
               [_aval(args[i]) for i in f_in])
    return [None, *_scatter(len(args), f_in, res)]


def _scan_rule(attrs: dict[str, Any], gs: list[Tensor | None], primals: list[Tensor],
               outs: list[Tensor], _site: _Site) -> list[Tensor | None]:
    body = _session().lookup(attrs["body"])
    n, m = attrs["num_carries"], attrs["num_xs"]
    init, xs, extra = primals[:n], primals[n:n + m], primals[n + m:]
    b_params = [p.aval for p in body.params]
    k = len(body.results) - n

    # 1. forward again, stacking the carry that enters every step (the residuals)
    def fwd_body(ps: list[Tensor]) -> list[Tensor]:
        out = replay(body, ps)
        return out + ps[:n]

    with _GradMode(False):
        fwd = make_function(body.name + "_res", b_params, fwd_body)
    res_avals = [Aval((attrs["length"], *a.shape), a.dtype) for a in b_params[:n]]
    out_avals = [_aval(t) for t in outs] + res_avals
    # recorded on the tape when gradients are on (a gradient of this gradient)
    fo = emit("scan", [*init, *xs, *extra], {**attrs, "body": fwd.name}, out_avals)
    # 2. backward scan over the body's VJP, in the opposite direction
    return _reverse_sweep(body, n, m, attrs["length"], attrs["reverse"], fo[n + k:], xs, extra,
                          gs[:n], outs[:n], gs[n:])


def _reverse_sweep(body: Function, n: int, m: int, length: Any, reverse: bool,
                   carries_in: Sequence[Tensor], xs: Sequence[Tensor], extra: Sequence[Tensor],
                   g_final: Sequence[Tensor | None], finals: Sequence[Tensor],
                   g_ys: Sequence[Tensor | None]) -> list[Tensor | None]:
    """The backward pass of a loop that ran ``body`` (``n`` carries, ``m`` per-step inputs
    ``xs``, loop-invariant ``extra``; results: ``n`` carries, then per-step values ``ys``)
    for ``length`` steps (last to first when ``reverse``): one ``scan`` in the opposite
    direction over the body's VJP function, reading the carries that entered every step
    (``carries_in``, stacked). ``g_final`` are the cotangents of the final carries
    ``finals``, ``g_ys`` those of the stacked ``ys`` (None: zero, never materialised).
    Returns the cotangents of the initial carries, the xs and the extras, in that order."""
    b_params = [p.aval for p in body.params]
    b_res = [r.aval for r in body.results]
    with _GradMode(False):
        vb = vjp_function(body)
        f_c = _float_idx(b_params[:n])                       # floating carries
        f_x = _float_idx(b_params[n:n + m])                  # floating xs
        f_e = _float_idx(b_params[n + m:])                   # floating extras
        f_y = _float_idx(b_res[n:])                          # floating ys
        g_y = [i for i in f_y if g_ys[i] is not None]        # ... with a cotangent
        nc, ne, ny = len(f_c), len(f_e), len(g_y)
        bb_params = ([b_params[i] for i in f_c] + [b_params[n + m + i] for i in f_e]
                     + b_params[:n] + b_params[n:n + m] + [b_res[n + i] for i in g_y]
                     + b_params[n + m:])

        def bwd_body(ps: list[Tensor]) -> list[Tensor]:
            g_c, g_e = ps[:nc], ps[nc:nc + ne]
            rest = ps[nc + ne:]
            c, x = rest[:n], rest[n:n + m]
            gy = dict(zip(g_y, rest[n + m:n + m + ny]))
            e = rest[n + m + ny:]
            cts = [*g_c, *[gy[i] if i in gy else _zeros(b_res[n + i]) for i in f_y]]
            r = emit_call(vb, [*c, *x, *e, *cts])
            rc, rx, re_ = r[:nc], r[nc:nc + len(f_x)], r[nc + len(f_x):]
            return [*rc, *[a + b for a, b in zip(g_e, re_)], *rx]

        bwd = make_function(body.name + "_bwd", bb_params, bwd_body)
        g_init = [_cot_or_zero(g_final[i], finals[i]) for i in f_c]
        g_e0 = [_zeros(_aval(extra[i])) for i in f_e]
        bw_out_avals = ([_aval(finals[i]) for i in f_c] + [_aval(extra[i]) for i in f_e]
                        + [_aval(xs[i]) for i in f_x])
    gys = [g for g in (g_ys[i] for i in g_y) if g is not None]  # all of them
    r = emit("scan", [*g_init, *g_e0, *carries_in, *xs, *gys, *extra],
             {"body": bwd.name, "num_carries": nc + ne, "num_xs": n + m + ny,
              "length": length, "reverse": not reverse}, bw_out_avals)
    gc, ge, gx = r[:nc], r[nc:nc + ne], r[nc + ne:]
    return _scatter(n, f_c, gc) + _scatter(m, f_x, gx) + _scatter(len(extra), f_e, ge)


def _fresh_trip_symbol(fn: Function) -> str:
    """A symbol name no dim, attribute or binding of ``fn`` uses (nor, within one
    capture, any trip count named before: names stay unique when functions are replayed
    into others)."""
    sess = _session()
    taken: set[str] = set()
    for v in fn.values():
        taken |= symbols_in(v.aval.shape)
    for node in fn.nodes:
        taken |= symbols_in(tuple(node.attrs.values()))
        sym = bound_symbol(node)
        if sym is not None:
            taken.add(sym)
    while f"trips{sess.trips}" in taken:
        sess.trips += 1
    sess.trips += 1
    return f"trips{sess.trips - 1}"


def _while_residuals(site: _Site, n: int) -> list[Tensor]:
    """The carries that entered every iteration of the ``while`` node of ``site``,
    stacked: the node is rewritten (once) into its opset-3 form, whose body also returns
    the carries it was given, stacked along the trip count ``trip_dim``. The forward loop
    thus saves what the backward loop needs, as TensorFlow's while_v2 does."""
    if site.residuals is not None:
        return site.residuals
    node = site.node
    body = _session().lookup(node.attrs["body"])
    with _GradMode(False):
        stacking = make_function(body.name + "_res", [p.aval for p in body.params],
                                 lambda ps: [*replay(body, ps), *ps[:n]])
    trip = node.attrs.get("trip_dim") or _fresh_trip_symbol(site.fn)
    new = [Value(site.fn.fresh_name(), Aval((symbol(trip), *v.aval.shape), v.aval.dtype), node,
                 site.fn) for v in node.inputs[:n]]
    node.attrs.update(body=stacking.name, num_stacked=node.attrs.get("num_stacked", 0) + n,
                      trip_dim=trip)
    node.outputs.extend(new)
    site.residuals = [make_tracer(v) for v in new]
    for r in site.residuals:
        site.track(r)
    return site.residuals


def _while_rule(attrs: dict[str, Any], gs: list[Tensor | None], primals: list[Tensor],
                outs: list[Tensor], site: _Site) -> list[Tensor | None]:
    """The forward node saves the carries entering each iteration (``_while_residuals``);
    the backward pass is one reverse ``scan`` over the body's VJP, of length the trip
    count: O(n) body evaluations and O(n) memory for n iterations."""
    n = attrs["num_carries"]
    carries_in = _while_residuals(site, n)
    node = site.node
    outs = site.outs
    gs = list(gs) + [None] * (len(outs) - len(gs))
    body = _session().lookup(node.attrs["body"])
    return _reverse_sweep(body, n, 0, symbol(node.attrs["trip_dim"]), False, carries_in, [],
                          primals[n:], gs[:n], outs[:n], gs[n:])


_RULES: dict[str, Callable[..., list[Tensor | None]]] = {
    "call": _call_rule, "cond": _cond_rule, "scan": _scan_rule, "while": _while_rule,
}


# ----------------------------------------------------------------------------- hooks


class _NeedType(CaptureError):
    """A recursive call whose result type is not known yet (internal to capture)."""

    def __init__(self, rec: _GraphFn, name: str) -> None:
        super().__init__(f"the result type of recursive graph function {name} is needed "
                         f"before any path through it returns without recursing")
        self.rec = rec


def _union_params(traced: Sequence[_Traced]) -> list[Tensor]:
    """Give every traced function the same parameters: its explicit ones, then one per
    tensor any of them captures (in a common order). Returns those tensors."""
    union: list[Tensor] = []
    seen: set[int] = set()
    for tr in traced:
        for t in tr.captures:
            if id(t._value) not in seen:
                seen.add(id(t._value))
                union.append(t)
    for tr in traced:
        mine = {id(t._value): p for t, p in zip(tr.captures, tr.cap_params)}
        caps = []
        for t in union:
            p = mine.get(id(t._value))
            if p is None:
                p = Value(tr.fn.fresh_name(), _aval(t), None, tr.fn)
            caps.append(p)
        tr.fn.params = list(tr.explicit) + caps
        tr.captures, tr.cap_params = list(union), caps
    return union


def _check_pred(pred: Any) -> Tensor:
    if not isinstance(pred, Tensor) or pred.dtype is not D.bool_ or tuple(pred.shape) != ():
        raise ControlFlowError(
            f"am.cond: pred is {_leaf_type(pred)}; a predicate must be a bool scalar tensor "
            f"(shape ()) or a Python bool. Reduce it with .any()/.all() or compare it "
            f"(x > 0).")
    return pred


def _cond_hook(pred: Any, true_fn: Callable[..., Any], false_fn: Callable[..., Any],
               operands: tuple[Any, ...]) -> Any:
    pred = _check_pred(pred)
    leaves, td = tree_flatten(list(operands))
    avals = [_aval(t) for t in leaves]

    def args(ts: list[Tensor]) -> tuple[Any, ...]:
        return tuple(tree_unflatten(td, ts))

    traced: list[_Traced | None] = []
    need: _NeedType | None = None
    for which, f in (("true", true_fn), ("false", false_fn)):
        try:
            traced.append(_trace(f"cond_{which}", f, avals, args))
        except _NeedType as e:
            need = e
            traced.append(None)
    ok = [t for t in traced if t is not None]
    if not ok:
        assert need is not None
        raise need
    if need is not None:
        # the function whose type is missing is traced again once its type is known, and
        # so is every graph function traced inside it meanwhile
        stack = _session().in_progress
        for r in stack[stack.index(need.rec):] if need.rec in stack else [need.rec]:
            r.speculated = True
            r.provisional = r.provisional or r is not need.rec
        traced = [ok[0], ok[0]]
    t_tr, f_tr = traced[0], traced[1]
    assert t_tr is not None and f_tr is not None
    t_leaves, t_td = _flat_out(t_tr.out, "am.cond", f"true_fn {_describe(true_fn)}", "output")
    f_leaves, f_td = _flat_out(f_tr.out, "am.cond", f"false_fn {_describe(false_fn)}",
                               "output")

    def msg(p: str, exp: str, got: str) -> str:
        return (f"am.cond: false_fn {_describe(false_fn)} returned {p} as {got}, but true_fn "
                f"{_describe(true_fn)} returned {exp}; both branches must return the same "
                f"structure, dtypes and shapes (symbolic dims included)")

    _refuse_escaping_trips(t_tr.fn, [_aval(t) for t in t_leaves])
    _refuse_escaping_trips(f_tr.fn, [_aval(t) for t in f_leaves])
    _check_match(t_tr.out, t_leaves, t_td, f_tr.out, f_leaves, f_td, "output", msg)
    _set_results(t_tr.fn, t_tr, t_leaves)
    if f_tr is not t_tr:
        _set_results(f_tr.fn, f_tr, f_leaves)
    caps = _union_params([t_tr] if f_tr is t_tr else [t_tr, f_tr])
    out = emit("cond", [pred, *leaves, *caps], {"then": t_tr.fn.name, "else": f_tr.fn.name},
               [_aval(t) for t in t_leaves])
    return tree_unflatten(t_td, out)


def _while_hook(cond_fn: Callable[[Any], Any], body_fn: Callable[[Any], Any], init: Any,
                max_iterations: int | None) -> Any:
    leaves, td = tree_flatten(init)
    avals = [_aval(t) for t in leaves]

    def args(ts: list[Tensor]) -> tuple[Any, ...]:
        return (tree_unflatten(td, ts),)

    b = _trace("while_body", body_fn, avals, args)
    body_who = f"body_fn {_describe(body_fn)}"
    b_leaves, b_td = _flat_out(b.out, "am.while_loop", body_who, "carry")

    def msg(p: str, exp: str, got: str) -> str:
        return (f"am.while_loop: {body_who} returned {p} as {got}, but init has {exp}; a "
                f"loop carry must keep its structure, dtypes and shapes (symbolic dims "
                f"included) on every iteration (cast or reshape inside body_fn).")

    _check_match(init, leaves, td, b.out, b_leaves, b_td, "carry", msg)
    c = _trace("while_cond", cond_fn, avals, args)
    pred = c.out
    if isinstance(pred, (bool, np.bool_)):
        pred = Tensor(np.asarray(bool(pred)))
    if not isinstance(pred, Tensor) or pred.dtype is not D.bool_ or tuple(pred.shape) != ():
        raise ControlFlowError(
            f"am.while_loop: the value returned by cond_fn {_describe(cond_fn)} is "
            f"{_leaf_type(pred)}; a predicate must be a bool scalar tensor (shape ()) or a "
            f"Python bool.")
    _set_results(b.fn, b, b_leaves)
    _set_results(c.fn, c, [pred])
    caps = _union_params([c, b])
    out = emit("while", [*leaves, *caps],
               {"cond": c.fn.name, "body": b.fn.name, "num_carries": len(leaves),
                "max_iterations": max_iterations}, avals)
    return tree_unflatten(td, out)


def while_stacking(cond_fn: Callable[[Any], Any], body_fn: Callable[[Any], Any], init: Any,
                   max_iterations: int | None = None) -> tuple[Any, list[Tensor]]:
    """A captured ``while`` whose body returns ``(carry, ys)``: ``ys`` (a list of tensors,
    the same types every iteration) are stacked along a new leading dim bound to the trip
    count (the opset-3 form of ``while``). Returns ``(final carry, stacked ys)``."""
    leaves, td = tree_flatten(init)
    avals = [_aval(t) for t in leaves]

    def args(ts: list[Tensor]) -> tuple[Any, ...]:
        return (tree_unflatten(td, ts),)

    b = _trace("while_body", body_fn, avals, args)
    new, ys = b.out
    body_who = f"body_fn {_describe(body_fn)}"
    b_leaves, b_td = _flat_out(new, "am.while_loop", body_who, "carry")

    def msg(p: str, exp: str, got: str) -> str:
        return (f"am.while_loop: {body_who} returned {p} as {got}, but init has {exp}; a "
                f"loop carry must keep its structure, dtypes and shapes on every "
                f"iteration (cast or reshape inside body_fn).")

    _check_match(init, leaves, td, new, b_leaves, b_td, "carry", msg)
    c = _trace("while_cond", cond_fn, avals, args)
    pred = c.out
    if isinstance(pred, (bool, np.bool_)):
        pred = Tensor(np.asarray(bool(pred)))
    _set_results(b.fn, b, [*b_leaves, *ys])
    _set_results(c.fn, c, [pred])
    caps = _union_params([c, b])
    attrs: dict[str, Any] = {"cond": c.fn.name, "body": b.fn.name,
                             "num_carries": len(leaves), "max_iterations": max_iterations}
    y_avals: list[Aval] = []
    if ys:
        trip = _fresh_trip_symbol(_current().fn)
        attrs.update(num_stacked=len(ys), trip_dim=trip)
        y_avals = [Aval((symbol(trip), *_aval(y).shape), y.dtype) for y in ys]
    out = emit("while", [*leaves, *caps], attrs, avals + y_avals)
    return tree_unflatten(td, out[:len(leaves)]), out[len(leaves):]


def _scan_hook(fn: Callable[[Any, Any], Any], init: Any, xs: Any, length: Any,
               reverse: bool) -> Any:
    c_leaves, c_td = tree_flatten(init)
    x_leaves, x_td = tree_flatten(xs) if xs is not None else ([], None)
    c_av = [_aval(t) for t in c_leaves]
    x_av = [_aval(t) for t in x_leaves]
    slice_av = [Aval(a.shape[1:], a.dtype) for a in x_av]
    nc = len(c_leaves)

    def args(ts: list[Tensor]) -> tuple[Any, ...]:
        x = None if xs is None else tree_unflatten(x_td, ts[nc:])
        return (tree_unflatten(c_td, ts[:nc]), x)

    who = f"fn {_describe(fn)}"
    b = _trace("scan_body", fn, c_av + slice_av, args)
    out = b.out
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        from ..control import _structure

        raise ControlFlowError(f"am.scan: {who} must return a pair (carry, y), got "
                               f"{_structure(out)}")
    new, y = out
    n_leaves, n_td = _flat_out(new, "am.scan", who, "carry")

    def msg(p: str, exp: str, got: str) -> str:
        return (f"am.scan: {who} returned {p} as {got}, but init has {exp}; a scan carry "
                f"must keep its structure, dtypes and shapes (symbolic dims included) on "
                f"every step (cast or reshape inside fn).")

    _check_match(init, c_leaves, c_td, new, n_leaves, n_td, "carry", msg)
    y_leaves, y_td = ([], None) if y is None else _flat_out(y, "am.scan", who, "y")
    _set_results(b.fn, b, n_leaves + y_leaves)
    caps = _union_params([b])
    y_av = [Aval((length, *_aval(t).shape), t.dtype) for t in y_leaves]
    res = emit("scan", [*c_leaves, *x_leaves, *caps],
               {"body": b.fn.name, "num_carries": nc, "num_xs": len(x_leaves),
                "length": length, "reverse": bool(reverse)}, c_av + y_av)
    carry = tree_unflatten(c_td, res[:nc])
    ys = None if y is None else tree_unflatten(y_td, res[nc:])
    return carry, ys


def _static_key(v: Any, fname: str) -> Any:
    if v is None or isinstance(v, (bool, int, float, str, complex)):
        return (type(v).__name__, v)
    raise ControlFlowError(
        f"a call of graph function {fname}: argument {v!r} ({type(v).__name__}) is neither "
        f"a tensor nor a Python scalar; under capture a graph function takes tensors (or "
        f"nested tuples/lists/dicts of them) and static Python scalars")


def _call_hook(gf: GraphFunction, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    sess = _session()
    if kwargs:
        import inspect

        try:
            bound = inspect.signature(gf.python_function).bind(*args, **kwargs)
        except TypeError as e:
            raise ControlFlowError(f"a call of graph function {gf.name}: {e}") from None
        if bound.kwargs:
            raise ControlFlowError(f"a call of graph function {gf.name}: keyword-only "
                                   f"arguments are not supported under capture; pass them "
                                   f"positionally")
        args = tuple(bound.args)
    leaves, td = tree_flatten(list(args))
    tensors = [x for x in leaves if isinstance(x, Tensor)]
    statics = tuple(None if isinstance(x, Tensor) else _static_key(x, gf.name) for x in leaves)
    avals = [_aval(t) for t in tensors]
    key = (id(gf), td, statics, tuple((a.dtype.name, len(a.shape)) for a in avals))
    for rec in sess.graph_fns.get(key, []):
        if _unifies(rec.param_avals, avals):
            return _emit_graph_call(gf, rec, tensors)
    if key not in sess.by_shape:
        # recursion whose sizes change (f(x[1:]), f(x[:n // 2])): the trace in progress
        # starts again with the sizes that differ generalised to symbols
        for rec in reversed(sess.in_progress):
            if rec.key == key:
                raise _Generalise(rec, avals, gf.name)
    start = avals
    if key not in sess.by_shape and any(free_symbols(d) & sess.fresh and not d.is_symbol()
                                        for a in avals for d in a.shape
                                        if isinstance(d, DimExpr)):
        # called inside a generalised recursion on sizes such as d0-1 (mutual recursion
        # through this function): its parameters get symbols of their own, which its
        # body may assume >= 1 as the recursion's own body does
        start = _generalised(avals, avals)
    rec = _trace_graph_function(gf, key, leaves, td, avals, start)
    return _emit_graph_call(gf, rec, tensors)


def _emit_graph_call(gf: GraphFunction, rec: _GraphFn, tensors: list[Tensor]) -> Any:
    if rec.result_avals is None:
        raise _NeedType(rec, gf.name)
    caps = list(rec.trace.captures) if rec.in_progress else list(rec.captures)
    if rec.in_progress:
        rec.captures = caps
    env = _unify(rec.param_avals, [_aval(t) for t in tensors], f"call of {gf.name}")
    out = emit("call", [*tensors, *caps], {"callee": rec.fn.name},
               _subst(rec.result_avals, env))
    if rec.in_progress:
        _session().pending_calls.setdefault(id(rec), []).append(len(caps))
    return tree_unflatten(rec.out_treedef, out)


class _Generalise(CaptureError):
    """A call reached a trace in progress of its graph function with arguments of the
    same dtypes and ranks but other sizes (internal to capture): that trace is discarded
    and starts again with the sizes that differ generalised to symbols."""

    def __init__(self, rec: _GraphFn, avals: list[Aval], name: str) -> None:
        super().__init__(f"graph function {name} is traced again with the sizes of its "
                         f"recursive call generalised")
        self.rec = rec
        self.avals = avals


def _generalised(avals: list[Aval], call: list[Aval]) -> list[Aval]:
    """``avals`` with every size that differs from the recursive call's (``call``), or
    that no plain symbol of them binds, made a fresh symbol, named apart from the symbols
    of the functions being traced and of earlier generalisations."""
    sess = _session()
    taken = {d.name for tr in _state.stack for p in tr.fn.params for d in p.aval.shape
             if isinstance(d, DimExpr) and d.is_symbol()} | sess.fresh
    before = set(taken)
    shapes = generalise([a.shape for a in avals], [b.shape for b in call], taken)
    sess.fresh |= taken - before
    return [Aval(sh, a.dtype) for a, sh in zip(avals, shapes)]


def _discard(sess: _Session, rec: _GraphFn, mark: tuple[int, int]) -> None:
    """Forget an attempt at tracing ``rec`` (``mark``: the lengths of ``sess.cached`` and
    ``sess.functions`` when it started): its function, the specialisations cached since
    that call it, directly or not (they are traced again when called), and the functions
    created since that nothing kept calls; their names are free again."""
    name = rec.fn.name
    kept: list[tuple[Any, _GraphFn]] = []
    for k, r in sess.cached[mark[0]:]:
        if name in reachable_functions(sess.program, [r.fn], sess.functions):
            sess.graph_fns[k].remove(r)
        else:
            kept.append((k, r))
    sess.cached[mark[0]:] = kept
    live = {r.fn.name for _, r in kept}
    live |= set(reachable_functions(sess.program, [r.fn for _, r in kept], sess.functions))
    dropped = {old for old in list(sess.functions)[mark[1]:] if old not in live}
    for old in dropped:
        del sess.functions[old]
        sess.used.discard(old)
        sess.vjp_results.pop(old, None)
    for f, vjp in list(sess.vjps.items()):
        if f in dropped or vjp.name in dropped:
            del sess.vjps[f]
    sess.pending_calls.pop(id(rec), None)


_MAX_ATTEMPTS = 4


def _check_nesting(sess: Any, gf: GraphFunction, key: Any) -> None:
    """Refuse to trace one more graph function past ``max_recursion_depth`` of them."""
    limit = get_limits().max_recursion_depth
    if sess.depth >= limit:
        why = sess.by_shape.get(key)
        raise RecursionLimitError(
            f"am.function: capturing {_describe(gf)} would nest {sess.depth + 1} graph "
            f"functions being traced, past max_recursion_depth={limit}. A recursive "
            f"function is captured as recursion when its recursive calls take arguments "
            f"of the same dtypes and ranks (sizes that differ become symbols); calls that "
            f"differ in a static Python value, or whose sizes the function needs as Python "
            f"values, are traced afresh each time."
            + (f" Tracing {gf.name} with symbolic sizes failed: {why}" if why else ""))


def _check_attempts(attempts: int, gf: GraphFunction) -> None:
    if attempts > _MAX_ATTEMPTS:
        raise CaptureError(
            f"am.function: the types of recursive graph function {gf.name} did not "
            f"settle after {_MAX_ATTEMPTS} traces (its result type depends on its own "
            f"result type); make the base case's result type explicit")


def _settled(rec: _GraphFn, res: list[Aval], result_avals: list[Aval] | None, otd: Any,
             out_td: Any, used: list[int]) -> bool:
    """Whether a trace's result types are final: it gave the types the previous attempt
    assumed (and every recursive call inside saw all of its captures), or it is a first
    attempt that no recursive call used."""
    if result_avals is None:
        return not used and not rec.speculated
    return (otd == out_td and len(res) == len(result_avals)
            and all(_types_equal(a, b) for a, b in zip(res, result_avals))
            and not rec.speculated and all(u == len(rec.captures) for u in used))


def _trace_graph_function(gf: GraphFunction, key: Any, leaves: list[Any], td: Any,
                          avals: list[Aval], start: list[Aval]) -> _GraphFn:
    """Trace ``gf`` for arguments of types ``avals`` (and static ``leaves``), recursion
    included: until the result types settle (a recursive call inside uses the types of
    the previous attempt), and, when a recursive call differs only in sizes, with those
    sizes generalised to symbols (``start``: generalised types to try first, or
    ``avals``); if a generalised trace fails (the function needs a generalised size as a
    Python value, say), by shape: each size is traced as its own function."""
    sess = _session()
    _check_nesting(sess, gf, key)
    given = avals           # the call's own types, which tracing by shape uses
    generalisations = 0     # at most one per dim: each makes more dims distinct symbols
    fell_back: str | None = None  # why the generalised trace failed
    avals = start
    result_avals: list[Aval] | None = None
    out_td: Any = None
    preseed: list[Tensor] = []
    recs = sess.graph_fns.setdefault(key, [])
    is_tensor = [isinstance(x, Tensor) for x in leaves]

    def args(ts: list[Tensor]) -> tuple[Any, ...]:
        it = iter(ts)
        full = [next(it) if t else x for x, t in zip(leaves, is_tensor)]
        return tuple(tree_unflatten(td, full))

    attempts = 0
    while True:
        attempts += 1
        _check_attempts(attempts, gf)
        mark = (len(sess.cached), len(sess.functions))
        fn = sess.new_function(gf.name)
        rec = _GraphFn(fn, list(avals), result_avals, out_td, list(preseed), key=key)
        recs.append(rec)
        sess.pending_calls.pop(id(rec), None)
        sess.depth += 1
        sess.in_progress.append(rec)

        def run(*a: Any, _rec: _GraphFn = rec) -> Any:
            _rec.trace = _current()
            from .ag_runtime import call as _ag_call

            return _ag_call(gf.python_function, *a)

        retry: list[Aval] | None = None
        try:
            tr = _trace(gf.name, run, avals, args, preseed=preseed, fn=fn)
        except _Generalise as e:
            if e.rec is not rec:
                raise
            retry = _generalised(avals, e.avals)
            generalisations += 1
            if generalisations > sum(len(a.shape) for a in given):
                fell_back = sess.by_shape[key] = "the sizes of its recursive calls did not settle"
                retry = given
        except AmberError as e:
            if isinstance(e, (_NeedType, _Generalise)) and e.rec is not rec:
                raise
            if isinstance(e, _NeedType):
                raise ControlFlowError(
                    f"am.function: every path through {_describe(gf)} calls itself before "
                    f"returning, so its result type cannot be found; give it a base case "
                    f"(e.g. am.cond(n > 0, recurse, base, ...))") from None
            if avals is given:
                if fell_back is not None:
                    e.add_note(f"(traced by shape because tracing {gf.name} with symbolic "
                               f"sizes failed first: {fell_back})")
                raise
            # NOTE: any error, not only a refused size: amber's own shape rules treat
            # sizes not provably equal as distinct (x[:n//2] + x[n//2:] is refused for a
            # symbolic n), and tracing by shape reports the error anew if it stays
            fell_back = sess.by_shape[key] = " ".join(str(e).split()[:60]) or type(e).__name__
            retry = given
        finally:
            sess.depth -= 1
            sess.in_progress.pop()
            rec.in_progress = False
            recs.remove(rec)
        if retry is not None:
            _discard(sess, rec, mark)
            avals, result_avals, out_td, attempts = retry, None, None, 0
            continue
        out_leaves, otd = _flat_out(tr.out, "am.function", f"graph function "
                                    f"{_describe(gf)}", "result")
        _set_results(fn, tr, out_leaves)
        rec.captures = list(tr.captures)
        res = [r.aval for r in fn.results]
        used = sess.pending_calls.pop(id(rec), [])
        if rec.provisional:  # an enclosing function is traced again, and this one with it
            rec.result_avals, rec.out_treedef = res, otd
            return rec
        if _settled(rec, res, result_avals, otd, out_td, used):
            rec.result_avals, rec.out_treedef = res, otd
            recs.append(rec)
            sess.cached.append((key, rec))
            return rec
        result_avals, out_td, preseed = res, otd, list(rec.captures)
        _discard(sess, rec, mark)


def install() -> None:
    """Install the capture hooks for control flow (done on import)."""
    ControlHooks.cond = _cond_hook
    ControlHooks.while_loop = _while_hook
    ControlHooks.scan = _scan_hook
    ControlHooks.call = _call_hook


install()
