"""A loaded ``.amber`` model as a first-class function (see docs/reuse.md).

Calling a loaded :class:`~amber.model.Model` (or the module :meth:`Model.as_module`
returns) picks one of three ways to run its program:

* **eager, no gradient needed** (no input and no weight requires grad, or grad mode is
  off): the native runtime runs it when the model was loaded with it (libamber through
  :mod:`amber.native`), else the NumPy reference interpreter;
* **eager, gradient needed**: every IR node is bound through the op registry
  (:func:`amber.ops.registry.bind`), exactly as if the model's Python source had run, so
  the autograd tape records it and gradients reach the inputs and the weights;
* **under capture** (``am.export`` of a function that calls the model): the model's
  functions are copied into the program being built under a namespace (the model's
  name: ``backbone/forward``, weights ``backbone/fc.weight``) and a ``call`` node invokes
  them. When a gradient is needed during capture (``am.grad``, ``loss.backward()``) or the
  model is an ``as_module()`` module, the nodes are inlined through the registry instead,
  so the backward pass is captured too.

Where a capture or a link composes two models, the types at the seam are checked
(dtype, rank, static dims, consistent symbols); a mismatch raises
:class:`amber.errors.SeamError` naming both models, the entry point, the input and both
types. Nothing here keeps global state: everything a call needs lives in the model, the
module, the call's arguments or the active (thread-local) capture.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _dtype as D
from ._inputs import gather_args
from .capture.dims import DimExpr, dim_equal, evaluate, format_dim, substitute
from .capture.ir import (
    TOLERANCE,
    EntryPoint,
    Function,
    Node,
    Port,
    Program,
    TestVector,
    Value,
    data_dependent_symbols,
    format_type,
    max_error,
    within_tolerance,
)
from .capture.walk import Frame, Walker
from .capture_errors import user_frame
from .errors import (
    AmberError,
    CaptureError,
    ExportError,
    IRError,
    IterationLimitError,
    RecursionLimitError,
    SeamError,
)
from .ops.registry import REGISTRY, Aval, bind, is_grad_enabled, no_grad
from .tensor import Tensor

if TYPE_CHECKING:
    from .model import Model

MAX_CALL_DEPTH = 256
"""Nesting limit of ``call`` nodes when a program runs through the op registry."""

DEFAULT_SIZES: tuple[int, ...] = (2, 5)
"""Sizes of symbolic dims used when test vectors must be made up from random inputs."""


# ----------------------------------------------------------------------------- naming


def clean_name(name: str) -> str:
    """``name`` with every character other than letters, digits and ``_`` replaced by
    ``_`` (never empty, never starting with a digit): usable as a namespace."""
    out = "".join(c if (c.isascii() and (c.isalnum() or c == "_")) else "_" for c in name)
    out = out or "model"
    return out if not out[0].isdigit() else "_" + out


def default_name(path: str | None) -> str:
    """The namespace a model loaded from ``path`` gets: the file name without
    ``.amber`` (``"backbone"`` for ``models/backbone.amber``), or ``"model"``."""
    if not path:
        return "model"
    base = os.path.basename(os.fspath(path))
    if base.endswith(".amber"):
        base = base[: -len(".amber")]
    return clean_name(base)


def describe(name: str, path: str | None) -> str:
    """How error messages name a model: its file name, or ``model 'name'``."""
    return os.path.basename(path) if path else f"model {name!r}"


def content_hash(array: np.ndarray) -> str:
    """SHA-256 (hex) of a tensor's dtype name, shape and little-endian C-order bytes:
    equal exactly when two tensors are interchangeable in a file."""
    a = np.asarray(array)
    dt = D.from_numpy_dtype(a.dtype)
    data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<") if a.dtype.itemsize > 1
                                else a.dtype)
    h = hashlib.sha256()
    h.update(f"{dt.name}{list(int(d) for d in a.shape)}".encode())
    h.update(data.reshape(-1).view(np.uint8).data)
    return h.hexdigest()


# ----------------------------------------------------------------------------- copying


def _function_attrs(op: str) -> tuple[str, ...]:
    """The attributes of builtin ``op`` that name functions."""
    from .capture import ir

    table: Mapping[str, tuple[str, ...]] = getattr(ir, "FUNCTION_ATTRS", {"call": ("callee",)})
    return tuple(table.get(op, ()))


def copy_function(fn: Function, new_name: str, fmap: Mapping[str, str],
                  wmap: Callable[[str], str]) -> Function:
    """A deep copy of ``fn`` named ``new_name``: ``weight`` nodes renamed by ``wmap``;
    the functions ``call`` and control-flow nodes refer to renamed by ``fmap``."""
    out = Function(new_name)
    m: dict[int, Value] = {}
    for p in fn.params:
        v = Value(p.name, p.aval, None, out)
        out.params.append(v)
        m[id(p)] = v
    for n in fn.nodes:
        attrs = dict(n.attrs)
        if n.op == "weight":
            attrs["name"] = wmap(attrs["name"])
        else:
            for k in _function_attrs(n.op):
                if isinstance(attrs.get(k), str):
                    attrs[k] = fmap.get(attrs[k], attrs[k])
        node = Node(n.op, [m[id(v)] for v in n.inputs], attrs, [])
        for o in n.outputs:
            v = Value(o.name, o.aval, node, out)
            node.outputs.append(v)
            m[id(o)] = v
        out.nodes.append(node)
    out.results = [m[id(v)] for v in fn.results]
    return out


def copy_entry(e: EntryPoint, name: str | None = None, function: str | None = None
               ) -> EntryPoint:
    """A copy of an entry point (optionally renamed / pointing at another function)."""
    return EntryPoint(name or e.name, function or e.function,
                      [Port(p.name, p.aval) for p in e.inputs],
                      [Port(p.name, p.aval) for p in e.outputs],
                      _copy_structure(e.structure), {k: list(v) for k, v in
                                                     e.input_ranges.items()})


def _copy_structure(s: Any) -> Any:
    if isinstance(s, dict):
        return {k: _copy_structure(v) for k, v in s.items()}
    if isinstance(s, list):
        return [_copy_structure(v) for v in s]
    return s


def namespaced(program: Program, ns: str) -> tuple[dict[str, Function], dict[str, np.ndarray]]:
    """Copies of ``program``'s functions and weights with every name prefixed by
    ``ns + "/"`` (references inside the functions renamed accordingly)."""
    fmap = {name: f"{ns}/{name}" for name in program.functions}
    functions = {fmap[name]: copy_function(f, fmap[name], fmap, lambda w: f"{ns}/{w}")
                 for name, f in program.functions.items()}
    weights = {f"{ns}/{w}": a for w, a in program.weights.items()}
    return functions, weights


def function_key(fn: Function) -> tuple[Any, tuple[tuple[str, str], ...]]:
    """A comparable description of ``fn`` (its JSON form, large constants by content
    hash): two functions compute the same thing when their keys are equal."""
    import json

    from .capture.serialize import function_to_json

    tensors: dict[str, np.ndarray] = {}
    obj = function_to_json(fn, tensors)
    return (json.dumps(obj, sort_keys=True),
            tuple(sorted((k, content_hash(a)) for k, a in tensors.items())))


def new_functions(program: Program, functions: Mapping[str, Function],
                  weights: Mapping[str, np.ndarray] | None = None) -> dict[str, Function]:
    """The functions of ``functions`` that ``program`` does not have yet. A name already
    in the program must hold the same function, and a weight of the same namespace the
    same values (the same loaded model called from two entry points); otherwise
    :class:`amber.CaptureError` says how to rename."""
    out: dict[str, Function] = {}
    for fname, f in functions.items():
        have = program.functions.get(fname)
        if have is None:
            out[fname] = f
        elif function_key(have) != function_key(f):
            raise _namespace_clash(f"function {fname!r}", fname)
    spaces = {fname.split("/", 1)[0] for fname in functions if "/" in fname}
    for wname, arr in (weights or {}).items():
        prev = program.weights.get(wname)
        if prev is not None and wname.split("/", 1)[0] in spaces and not (
                prev.dtype == arr.dtype and prev.shape == arr.shape
                and np.array_equal(prev, arr, equal_nan=D.is_floating_np(prev.dtype))):
            raise _namespace_clash(f"weight {wname!r}", wname)
    return out


def _namespace_clash(what: str, name: str) -> Exception:
    from .errors import CaptureError

    ns = name.split("/", 1)[0]
    return CaptureError(
        f"the program already has a different {what}: two different models use the "
        f"namespace {ns!r}; load one under another name with am.load(path, name=...)")


# ----------------------------------------------------------------------------- seams


@dataclass
class Source:
    """Where a value entering a model comes from (for seam error messages)."""

    model: str | None = None   # described model ("backbone.amber"), None = the caller
    entry: str | None = None
    port: str | None = None

    def __str__(self) -> str:
        if self.model is None:
            return "the value passed to it"
        return f"output {self.port!r} of entry point {self.entry!r} of {self.model}"


def _mismatch(want: Aval, got: Aval, env: dict[str, Any]) -> str | None:
    """Why ``got`` cannot feed a port of type ``want`` (binding want's symbols in
    ``env``), or None if it can."""
    if want.dtype is not got.dtype:
        return f"dtype {got.dtype.name} is not {want.dtype.name}"
    if len(want.shape) != len(got.shape):
        return f"rank {len(got.shape)} is not {len(want.shape)}"
    for i, (d, g) in enumerate(zip(want.shape, got.shape)):
        if isinstance(d, DimExpr) and d.is_symbol():
            prev = env.get(d.name)
            if prev is not None and not dim_equal(prev, g):
                return (f"dim {i} ({d.name}) is {format_dim(g)}, but {d.name} is already "
                        f"{format_dim(prev)} from another input")
            env[d.name] = g
        elif not dim_equal(substitute(d, env), g):
            return f"dim {i} is {format_dim(g)}, not {format_dim(substitute(d, env))}"
    return None


def check_seam(model: str, entry: EntryPoint, args: Sequence[Aval],
               sources: Sequence[Source]) -> dict[str, Any]:
    """Check that values of types ``args`` can feed ``entry``'s inputs; return the
    binding of the entry's symbols. Raises :class:`SeamError` naming both sides."""
    env: dict[str, Any] = {}
    for port, got, src in zip(entry.inputs, args, sources):
        why = _mismatch(port.aval, got, env)
        if why is not None:
            other = f" and {src.model}" if src.model is not None else ""
            raise SeamError(
                f"cannot compose {model}{other}: entry point {entry.name!r} of {model} takes "
                f"input {port.name!r} of type {format_type(port.aval)}, but {src} is "
                f"{format_type(got)} ({why})")
    return env


# ----------------------------------------------------------------------------- arguments


def _as_tensor(x: Any, port: Port) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, np.generic)):
        return Tensor._wrap(np.asarray(x))
    try:
        return Tensor._wrap(np.asarray(x, dtype=port.dtype.np))
    except (TypeError, ValueError, OverflowError) as e:
        raise AmberError(f"input {port.name!r}: cannot convert {type(x).__name__} to "
                         f"{port.dtype.name}: {e}") from None


def _is_tracer(x: Any) -> bool:
    return isinstance(x, Tensor) and x._data is None


# ----------------------------------------------------------------------------- running


_PLAIN = (int, float, str)
"""Attribute values that hold no dim expression (evaluated as they are)."""


def _eval_attr(v: Any, env: Mapping[str, Any]) -> Any:
    if isinstance(v, DimExpr):
        if all(isinstance(x, int) for x in env.values()):
            return evaluate(v, env)
        return substitute(v, env)
    if isinstance(v, tuple):  # NOTE: a plain int stays as it is (the common case)
        return tuple([x if type(x) is int else _eval_attr(x, env) for x in v])
    return v


def _bind_env(fn: Function, args: Sequence[Tensor]) -> dict[str, Any]:
    env: dict[str, Any] = {}
    for p, a in zip(fn.params, args):
        shape = a.shape
        for d, n in zip(p.shape, shape):
            if isinstance(d, DimExpr) and d.is_symbol():
                env[d.name] = n if isinstance(n, DimExpr) else int(n)
    return env


class _Runner(Walker[Tensor]):
    """Runs a program's functions by binding every node through the op registry."""

    def __init__(self, program: Program, weight: Callable[[str], Tensor]) -> None:
        self.program = program
        self.weight_of = weight

    def run(self, fn: Function, args: Sequence[Tensor], env: dict[str, Any], depth: int
            ) -> list[Tensor]:
        return self.walk(fn, args, env, depth)

    def _call(self, name: str, args: list[Tensor], depth: int, where: str) -> list[Tensor]:
        if depth + 1 > MAX_CALL_DEPTH:
            raise RecursionLimitError(
                f"{where}: call depth exceeds the limit of {MAX_CALL_DEPTH}")
        callee = self.program.functions[name]
        return self.walk(callee, args, _bind_env(callee, args), depth + 1)

    # -- node kinds --------------------------------------------------------------------
    def constant(self, frame: Frame[Tensor], node: Node, ins: list[Tensor]) -> list[Tensor]:
        return [Tensor._wrap(node.attrs["value"])]

    def weight(self, frame: Frame[Tensor], node: Node, ins: list[Tensor]) -> list[Tensor]:
        return [self.weight_of(node.attrs["name"])]

    def call(self, frame: Frame[Tensor], node: Node, ins: list[Tensor]) -> list[Tensor]:
        return self._call(node.attrs["callee"], ins, frame.depth, frame.where())

    def primitive(self, frame: Frame[Tensor], node: Node, ins: list[Tensor]) -> list[Tensor]:
        prim = REGISTRY.get(node.op)
        if prim is None:
            if any(_is_tracer(t) for t in ins) or (
                    is_grad_enabled() and any(t.requires_grad for t in ins)):
                raise _refusal(frame)
            raise IRError(f"{frame.where()}: unknown op {node.op!r}")
        env = frame.env
        attrs = {k: v if isinstance(v, _PLAIN) else _eval_attr(v, env)
                 for k, v in node.attrs.items()}
        return [bind(prim, tuple(ins), attrs)]

    # Structured control flow runs eagerly: the taken branch and every iteration run
    # through the registry, so the tape records them (as the interpreter runs them).
    def cond(self, frame: Frame[Tensor], node: Node, ins: list[Tensor]) -> list[Tensor]:
        _refuse_traced(frame, ins)
        a = node.attrs
        return self._call(a["then"] if bool(ins[0]) else a["else"], ins[1:], frame.depth,
                          frame.where())

    def while_(self, frame: Frame[Tensor], node: Node, ins: list[Tensor]) -> list[Tensor]:
        _refuse_traced(frame, ins)
        a, depth, where = node.attrs, frame.depth, frame.where()
        n = a["num_carries"]
        carries, extra = list(ins[:n]), list(ins[n:])
        limit, k = a.get("max_iterations"), 0
        rows: list[list[Tensor]] = [[] for _ in range(a.get("num_stacked", 0))]
        while bool(self._call(a["cond"], carries + extra, depth, where)[0]):
            if limit is not None and k >= limit:
                raise IterationLimitError(
                    f"{where}: the loop was about to run iteration {k + 1}, past the "
                    f"limit of {limit} iterations")
            out = self._call(a["body"], carries + extra, depth, where)
            carries = out[:n]
            for col, y in zip(rows, out[n:]):
                col.append(y)
            k += 1
        if "trip_dim" not in a:
            return carries
        frame.env[a["trip_dim"]] = k  # the later nodes of this function size by it
        from .functional import stack

        return carries + [stack(col) if col else _zeros(v, frame.env)
                          for col, v in zip(rows, node.outputs[n:])]

    def scan(self, frame: Frame[Tensor], node: Node, ins: list[Tensor]) -> list[Tensor]:
        _refuse_traced(frame, ins)
        a, depth, where = node.attrs, frame.depth, frame.where()
        n, m = a["num_carries"], a["num_xs"]
        length = int(_eval_attr(a["length"], frame.env))
        carries, xs, extra = list(ins[:n]), ins[n:n + m], list(ins[n + m:])
        if length == 0:  # nothing runs: ys are empty, carries pass through
            return carries + [_zeros(v, frame.env) for v in node.outputs[n:]]
        from .functional import stack

        ys: list[list[Tensor]] = []
        order = range(length - 1, -1, -1) if a["reverse"] else range(length)
        for i in order:
            out = self._call(a["body"], carries + [x[i] for x in xs] + extra, depth, where)
            carries = out[:n]
            ys = ys or [[] for _ in out[n:]]
            for j, y in enumerate(out[n:]):
                ys[j].append(y)
        if a["reverse"]:
            for col in ys:
                col.reverse()
        return carries + [stack(col) for col in ys]


def _refusal(frame: Frame[Tensor]) -> AmberError:
    return AmberError(f"{frame.where()}: op {frame.node.op!r} cannot be differentiated or "
                      f"captured through a loaded model by this amber")


def _refuse_traced(frame: Frame[Tensor], ins: list[Tensor]) -> None:
    """Structured control flow on traced values is refused (a capture inlines a loaded
    model's nodes only where they are primitives)."""
    if any(_is_tracer(t) for t in ins):
        raise _refusal(frame)


def _zeros(v: Value, env: Mapping[str, Any]) -> Tensor:
    """The empty stacked output ``v`` of a loop that ran no iteration."""
    return Tensor._wrap(np.zeros(tuple(int(_eval_attr(d, env)) for d in v.shape), v.dtype.np))


# ----------------------------------------------------------------------------- capture


@dataclass
class _CaptureState:
    """Per-capture bookkeeping, kept on the outermost trace of the thread."""

    namespaces: dict[int, tuple[Program, str]] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    provenance: dict[int, Source] = field(default_factory=dict)
    weight_nodes: dict[tuple[int, str], Value] = field(default_factory=dict)


def _traces() -> tuple[Any, Any]:
    """(current trace, outermost trace) of this thread's capture."""
    from .capture import trace as T

    stack = T._state.stack
    if not stack:
        raise AmberError("internal: no capture in progress")
    return stack[-1], stack[0]


def _capture_state(root: Any) -> _CaptureState:
    st = getattr(root, "reuse_state", None)
    if st is None:
        st = _CaptureState()
        root.reuse_state = st
    return st


def _namespace(st: _CaptureState, program: Program, name: str) -> tuple[str, bool]:
    """The namespace of ``program`` in this capture and whether it is new."""
    hit = st.namespaces.get(id(program))
    if hit is not None and hit[0] is program:
        return hit[1], False
    ns, k = name, 1
    while ns in st.taken:
        ns = f"{name}_{k}"
        k += 1
    st.taken.add(ns)
    st.namespaces[id(program)] = (program, ns)
    return ns, True


def _register(root: Any, functions: Mapping[str, Function],
              weights: Mapping[str, np.ndarray]) -> None:
    extra = getattr(root, "functions_used", None)
    if extra is None:
        raise AmberError("internal: this capture cannot hold extra functions")
    extra.update(functions)
    for w, a in weights.items():
        root.weights_used.setdefault(w, a)


def _source_of(st: _CaptureState, t: Tensor) -> Source:
    if _is_tracer(t):
        v = t._value
        return st.provenance.get(id(v), Source())
    return Source()


def _capture_call(model_desc: str, name: str, program: Program, entry: EntryPoint,
                  tensors: list[Tensor]) -> list[Tensor]:
    """Record ``call @ns/<entry function>`` in the active capture."""
    from .capture import trace as T
    from .capture.verify import call_result_types

    dd = data_dependent_symbols(program.functions[entry.function])
    if dd:
        path, line, _ = user_frame()
        raise CaptureError(
            f"{path}:{line}\n  {model_desc} entry point {entry.name!r} returns a size its "
            f"loop decides ({', '.join(sorted(dd))}); such an entry point runs only on its "
            f"own, not inside another capture, whose nodes could not name that size. Call "
            f"it outside the exported function (or re-export the model's Python code).")
    tr, root = _traces()
    st = _capture_state(root)
    sources = [_source_of(st, t) for t in tensors]
    values = [tr.value_of(t) for t in tensors]
    check_seam(model_desc, entry, [v.aval for v in values], sources)
    ns, _ = _namespace(st, program, name)
    callee_name = f"{ns}/{entry.function}"
    if callee_name not in root.functions_used:
        functions, weights = namespaced(program, ns)
        _register(root, functions, weights)
    callee = root.functions_used[callee_name]
    avals = call_result_types(callee, [v.aval for v in values],
                              f"call of {model_desc} entry point {entry.name!r}")
    outs = tr.add("call", values, {"callee": callee_name}, avals)
    for port, v in zip(entry.outputs, outs):
        st.provenance[id(v)] = Source(model_desc, entry.name, port.name)
    return [T.make_tracer(v) for v in outs]


def _capture_weight(ns_name: str, wname: str, array: np.ndarray) -> Tensor:
    """A tracer for weight ``ns_name/wname`` (registered in the outermost trace)."""
    from .capture import trace as T

    tr, root = _traces()
    st = _capture_state(root)
    key = (id(tr), f"{ns_name}/{wname}")
    v = st.weight_nodes.get(key)
    if v is None or v.fn is not tr.fn:
        arr = np.array(array, copy=True)
        v = tr.add("weight", [], {"name": key[1]}, [T._aval_of(arr)])[0]
        st.weight_nodes[key] = v
        root.weights_used.setdefault(key[1], arr)
    return T.make_tracer(v)


# ----------------------------------------------------------------------------- calling


def call_program(program: Program, entry_name: str, args: Sequence[Any],
                 kwargs: Mapping[str, Any], *, name: str, path: str | None,
                 weights: Mapping[str, Tensor] | None = None,
                 interpreter: Any = None, native: Any = None) -> Any:
    """Run entry point ``entry_name`` of ``program`` on ``args`` the way the caller's
    context needs (see the module docstring). ``weights`` (from :meth:`Model.as_module`)
    replaces the program's weights; outputs are grouped as the entry's structure.
    ``native`` (an :class:`amber.native.NativeModel` of the same file) runs the
    no-gradient case in C instead of the interpreter."""
    from .model import _build, _owned

    desc = describe(name, path)
    entry = program.entry(entry_name)
    given = gather_args(entry.name, [p.name for p in entry.inputs], args, kwargs)
    tracing = any(_is_tracer(x) for x in given) or any(
        _is_tracer(t) for t in (weights or {}).values())
    grad_needed = is_grad_enabled() and (
        any(isinstance(x, Tensor) and x.requires_grad for x in given)
        or any(t.requires_grad for t in (weights or {}).values()))
    fn = program.functions[entry.function]
    if tracing:
        tensors = [_as_tensor(x, p) for x, p in zip(given, entry.inputs)]
        if weights is None and not grad_needed:
            outs = _capture_call(desc, name, program, entry, tensors)
        else:
            tr, root = _traces()
            st = _capture_state(root)
            check_seam(desc, entry, [_aval(t) for t in tensors],
                       [_source_of(st, t) for t in tensors])
            ns, _ = _namespace(st, program, name)

            def weight(w: str) -> Tensor:
                if weights is not None:
                    t = weights[w]
                    if _is_tracer(t):
                        return t
                    return _capture_weight(ns, w, np.asarray(t._data))
                return _capture_weight(ns, w, program.weights[w])

            outs = _Runner(program, weight).run(fn, tensors, _bind_env(fn, tensors), 0)
    elif grad_needed:
        tensors = [_as_tensor(x, p) for x, p in zip(given, entry.inputs)]
        interp = interpreter
        if interp is None:
            from .interpreter import Interpreter

            interp = Interpreter(program)
        _, env = interp.bind_inputs(entry, [np.asarray(t._data) for t in tensors], {})
        wts = weights

        def weight(w: str) -> Tensor:
            if wts is not None:
                return wts[w]
            return Tensor._wrap(program.weights[w])

        outs = [_fresh_if_shared(t) for t in _Runner(program, weight).run(fn, tensors, env, 0)]
    elif native is not None and weights is None:
        outs = [Tensor._wrap(a) for a in native.run(entry.name, *given)]
    else:
        prog = program if weights is None else with_weights(program, weights)
        interp = interpreter if weights is None and interpreter is not None else None
        if interp is None:
            from .interpreter import Interpreter

            interp = Interpreter(prog)
        arrays = interp.run(entry.name, *given)
        outs = [Tensor._wrap(_owned(a)) for a in arrays]
    return _build(entry.structure, {p.name: t for p, t in zip(entry.outputs, outs)})


def _fresh_if_shared(t: Tensor) -> Tensor:
    """A result that is a stored constant or weight (read-only file data) is returned as
    a copy, so the caller may modify it; computed results are returned as they are."""
    data = t._data
    if data is not None and t._node is None and not t.requires_grad and \
            not np.asarray(data).flags.writeable:
        return Tensor._wrap(np.array(data, copy=True))
    return t


def _aval(t: Tensor) -> Aval:
    if _is_tracer(t):
        v = t._value
        assert isinstance(v, Value)
        return v.aval
    a = np.asarray(t._data)
    return Aval(tuple(int(d) for d in a.shape), D.from_numpy_dtype(a.dtype))


def with_weights(program: Program, weights: Mapping[str, Tensor]) -> Program:
    """A shallow view of ``program`` (same functions and entries) whose weights are the
    current values of ``weights`` (cast to each weight's stored dtype)."""
    view = Program(program.opset_version)
    view.functions = program.functions
    view.entries = program.entries
    view.metadata = program.metadata
    for w, a in program.weights.items():
        t = weights[w]
        arr = np.asarray(t._data)
        if arr.dtype != a.dtype or arr.shape != a.shape:
            raise AmberError(f"weight {w!r} is now {arr.dtype}{list(arr.shape)}, the program "
                             f"needs {a.dtype}{list(a.shape)}")
        view.weights[w] = arr
    return view


# ----------------------------------------------------------------------------- as_module


def _module_base() -> type:
    from .nn import Module

    return Module


class _Group(_module_base()):  # type: ignore[misc]
    """A plain container module: one level of a loaded model's dotted weight names."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise AmberError("this module only groups the weights of a loaded model; call the "
                         "loaded module itself")


class LoadedModule(_module_base()):  # type: ignore[misc]
    """An ``am.nn.Module`` running a loaded program, whose parameters are the file's
    weights under the file's names (``dict(m.named_parameters())`` has the same keys as
    the file's weights; integer and bool weights are buffers). ``m(x)`` runs entry point
    ``forward``, ``m.run(name, ...)`` any entry point (also as ``m.<name>(...)``);
    gradients flow to the inputs and the parameters. :meth:`to_program` and :meth:`save`
    write the program again with the current weights and regenerated test vectors."""

    def __init__(self, program: Program, *, name: str = "model", path: str | None = None,
                 trainable: Callable[[str], bool] | Iterable[str] | None = None) -> None:
        from .nn import Parameter

        super().__init__()
        object.__setattr__(self, "_amber_program", program)
        object.__setattr__(self, "_amber_name", name)
        object.__setattr__(self, "_amber_path", path)
        if trainable is None:
            wanted: Callable[[str], bool] = lambda _n: True
        elif callable(trainable):
            wanted = trainable
        else:
            names = set(trainable)
            unknown = names - set(program.weights)
            if unknown:
                raise AmberError(f"trainable names unknown weight(s) "
                                 f"{', '.join(sorted(unknown))}")
            wanted = names.__contains__
        for wname, arr in program.weights.items():
            parts = wname.split(".")
            if any(not p for p in parts):
                raise AmberError(f"weight name {wname!r} has an empty component; it cannot "
                                 f"be a module parameter name")
            owner: Any = self
            for p in parts[:-1]:
                sub = owner._modules.get(p)
                if sub is None:
                    if p in owner._parameters or p in owner._buffers:
                        raise AmberError(f"weight names {wname!r} and {p!r} clash as module "
                                         f"paths")
                    sub = _Group()
                    owner.add_module(p, sub)
                owner = sub
            leaf = parts[-1]
            if leaf in owner._modules:
                raise AmberError(f"weight name {wname!r} clashes with another weight's path")
            data = np.array(arr, copy=True)
            if D.is_floating_np(data.dtype) and wanted(wname):
                owner.register_parameter(leaf, Parameter(data))
            else:
                owner.register_buffer(leaf, Tensor._wrap(data))

    # -- running -----------------------------------------------------------------------
    def _weights(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = dict(self.named_parameters())
        out.update({k: v for k, v in self.named_buffers() if v is not None})
        missing = set(self._amber_program.weights) - set(out)
        if missing:
            raise AmberError(f"the module lost weight(s) {', '.join(sorted(missing))}")
        return out

    def run(self, entry: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run entry point ``entry`` with the module's current weights."""
        return call_program(self._amber_program, entry, args, kwargs,
                            name=self._amber_name, path=self._amber_path,
                            weights=self._weights())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.run("forward", *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            program = self.__dict__.get("_amber_program")
            if program is not None and name in program.entries and not name.startswith("_"):
                def method(*args: Any, **kwargs: Any) -> Any:
                    return self.run(name, *args, **kwargs)

                method.__name__ = name
                return method
            raise

    @property
    def program(self) -> Program:
        """The loaded program (its weights are the values at load time)."""
        return self._amber_program

    @property
    def entry_points(self) -> list[str]:
        return list(self._amber_program.entries)

    def signature(self, name: str = "forward") -> EntryPoint:
        return self._amber_program.entry(name)

    # -- writing -----------------------------------------------------------------------
    def to_program(self, *, check: bool = True) -> Program:
        """The program with the module's current weights as a new :class:`Program`.

        Every entry point is kept; test vectors are regenerated on the inputs of the
        original vectors (and random inputs for an entry that had none): the outputs
        of running the program through the op registry with the current weights, which
        (with ``check``) must agree with the reference interpreter within the
        documented tolerance, or :class:`amber.ExportError` is raised."""
        src = self._amber_program
        weights = self._weights()
        prog = Program(src.opset_version)
        fmap = {n: n for n in src.functions}
        for fname, f in src.functions.items():
            prog.functions[fname] = copy_function(f, fname, fmap, lambda w: w)
        for wname, a in src.weights.items():
            prog.weights[wname] = np.array(np.asarray(weights[wname]._data), dtype=a.dtype,
                                           copy=True)
        for ename, e in src.entries.items():
            prog.entries[ename] = copy_entry(e)
        prog.metadata = {"user": dict((src.metadata or {}).get("user") or {})}
        prog.verify()
        prog.test_vectors = regenerate_vectors(prog, src.test_vectors, check=check)
        return prog

    def save(self, path: Any, metadata: Mapping[str, Any] | None = None) -> None:
        """Write :meth:`to_program` to ``path`` (``metadata``: user fields; default: the
        loaded file's user fields)."""
        prog = self.to_program()
        prog.save(path, prog.metadata.get("user") if metadata is None else metadata)

    def extra_repr(self) -> str:
        return describe(self._amber_name, self._amber_path)


# ----------------------------------------------------------------------------- vectors


def random_inputs(entry: EntryPoint, env: Mapping[str, int], rng: np.random.Generator
                  ) -> dict[str, np.ndarray]:
    """Random inputs for ``entry`` with symbols sized by ``env`` (floats standard
    normal; integers uniform in the entry's ``input_ranges`` or ``[0, 2)``)."""
    out: dict[str, np.ndarray] = {}
    for p in entry.inputs:
        shape = tuple(int(env[d.name]) if isinstance(d, DimExpr) else int(d)
                      for d in p.shape)
        dt = p.dtype
        if dt.is_floating:
            out[p.name] = rng.standard_normal(shape).astype(dt.np)
        elif dt is D.bool_:
            out[p.name] = rng.random(shape) < 0.5
        else:
            lo, hi = entry.input_ranges.get(p.name, [0, 2])
            out[p.name] = rng.integers(int(lo), max(int(hi), int(lo) + 1),
                                       size=shape).astype(dt.np)
    return out


def regenerate_vectors(program: Program, old: Sequence[TestVector], *, check: bool = True
                       ) -> list[TestVector]:
    """Test vectors for ``program`` on the inputs of ``old`` (random inputs at sizes
    2 and 5 for an entry point that has none). Outputs come from running the program
    through the op registry; with ``check`` they must match the reference interpreter."""
    from .interpreter import Interpreter

    interp = Interpreter(program)
    rng = np.random.default_rng(0)
    cases: list[tuple[str, dict[str, np.ndarray], dict[str, int]]] = []
    for tv in old:
        if tv.entry in program.entries:
            cases.append((tv.entry, dict(tv.inputs), dict(tv.dims)))
    for ename, e in program.entries.items():
        if any(c[0] == ename for c in cases):
            continue
        for size in DEFAULT_SIZES:
            env = {s: size for s in e.symbols}
            cases.append((ename, random_inputs(e, env, rng), env))
            if not env:
                break
    runner = _Runner(program, lambda w: Tensor._wrap(program.weights[w]))
    vectors = []
    for ename, inputs, dims in cases:
        e = program.entries[ename]
        arrays, env = interp.bind_inputs(e, [], inputs)
        want = interp.run(ename, **inputs)
        if check:
            with no_grad():
                fn = program.functions[e.function]
                got = [np.asarray(t._data) for t in runner.run(
                    fn, [Tensor._wrap(a) for a in arrays], dict(env), 0)]
            for port, g, w in zip(e.outputs, got, want):
                rtol, atol = TOLERANCE[port.dtype.name]
                if g.dtype != w.dtype or not within_tolerance(g, w, rtol, atol):
                    raise ExportError(
                        f"entry {ename!r}: output {port.name!r} through the op registry "
                        f"differs from the reference interpreter (max error "
                        f"{max_error(g, w):.3g}, tolerance rtol={rtol}, atol={atol})")
        vectors.append(TestVector(
            ename, inputs, {p.name: np.array(w, copy=True) for p, w in zip(e.outputs, want)},
            {p.name: TOLERANCE[p.dtype.name] for p in e.outputs}, dims))
    return vectors


def as_module(model: Model, trainable: Callable[[str], bool] | Iterable[str] | None = None
              ) -> LoadedModule:
    """``model.as_module()``: see :class:`LoadedModule`."""
    return LoadedModule(model.program, name=model.name, path=model.path, trainable=trainable)


__all__ = [
    "LoadedModule",
    "Source",
    "as_module",
    "call_program",
    "check_seam",
    "clean_name",
    "content_hash",
    "copy_function",
    "default_name",
    "describe",
    "namespaced",
    "random_inputs",
    "regenerate_vectors",
    "with_weights",
]
