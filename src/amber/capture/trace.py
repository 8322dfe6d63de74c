"""Capture: run a user function on tracer tensors and record a Program.

``am.export(fn, *args)`` makes one tracer per tensor argument (shape from an example
tensor, or from ``am.spec`` whose ``str`` dims are symbolic), installs the trace hook
that ``bind`` calls for tracer inputs, calls ``fn``, and turns the recorded nodes into a
:class:`~amber.capture.ir.Function`. Concrete tensors reaching a traced op become
``weight`` nodes (a module's parameters and buffers, by name) or ``constant`` nodes.

Then the export is *proven*: the eager function and the captured program run on the
example inputs and on random inputs at two or more sizes of every symbolic dim; their
outputs must agree within the documented tolerance, or the export fails with
:class:`amber.ExportError`. The inputs and eager outputs become the file's test vectors.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _dtype as D
from .._tree import tree_flatten, tree_paths, tree_unflatten
from ..errors import CaptureError, DTypeError, ExportError, ShapeError
from ..ops.registry import Aval, Primitive, TraceHooks
from ..tensor import Tensor
from .dims import DimExpr, format_dim, free_symbols, is_symbol_name, symbol
from .ir import (
    EntryPoint,
    Function,
    Node,
    Port,
    Program,
    TestVector,
    Value,
    bound_symbol,
    format_type,
    max_error,
    vector_tolerance,
    within_tolerance,
)
from .passes import optimize

DEFAULT_SIZES: tuple[int, ...] = (2, 5)
"""Sizes every symbolic dim takes in the export proof unless ``sizes=`` says otherwise."""


# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Spec:
    """An input's type for capture: dims are ints (static) or names (symbolic; the same
    name is the same size everywhere). ``low``/``high`` bound the random values the
    export proof feeds this input (integers: ``[low, high)``; default ``[0, 2)``)."""

    shape: tuple[int | str, ...]
    dtype: D.DType = D.float32
    name: str | None = None
    low: float | None = None
    high: float | None = None

    def __repr__(self) -> str:
        dims = ", ".join(repr(d) for d in self.shape)
        return f"am.spec({dims}, dtype=am.{self.dtype.name})"


def spec(*dims: int | str, dtype: Any = D.float32, name: str | None = None,
         low: float | None = None, high: float | None = None) -> Spec:
    """``am.spec("batch", 784)``: an input of shape (batch, 784), ``batch`` symbolic."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    for d in dims:
        if isinstance(d, str):
            if not is_symbol_name(d):
                raise ShapeError(f"am.spec: symbolic dim {d!r} must be a name (letters, "
                                 f"digits, _)")
        elif isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise ShapeError(f"am.spec: dims must be non-negative ints or names, got {d!r}")
    return Spec(tuple(d if isinstance(d, str) else int(d) for d in dims), D.as_dtype(dtype),
                name, low, high)


# ----------------------------------------------------------------------------- tracing


class _Trace:
    """One function being recorded."""

    def __init__(self, fn: Function, weight_ids: Mapping[int, tuple[str, Tensor]]) -> None:
        self.fn = fn
        self.weight_ids = weight_ids
        self.memo: dict[int, tuple[Tensor, Value]] = {}
        self.weights_used: dict[str, np.ndarray] = {}
        # functions other than the one being recorded that it needs (a loaded model's
        # functions, copied under its namespace by amber.reuse); add_entry adds them
        self.functions_used: dict[str, Function] = {}

    def add(self, op: str, inputs: Sequence[Value], attrs: Mapping[str, Any],
            avals: Sequence[Aval]) -> list[Value]:
        node = Node(op, inputs, attrs, [])
        for a in avals:
            node.outputs.append(Value(self.fn.fresh_name(), a, node, self.fn))
        self.fn.nodes.append(node)
        return node.outputs

    def value_of(self, t: Tensor) -> Value:
        if t._data is None:
            v = t._value
            if not isinstance(v, Value) or v.fn is not self.fn:
                from ..capture_errors import user_frame

                path, line, _ = user_frame()
                raise CaptureError(f"{path}:{line}\n  a traced tensor from another capture "
                                   f"(or one kept after its capture ended) was used here; "
                                   f"pass it in as an argument instead")
            return v
        hit = self.memo.get(id(t))
        if hit is not None:
            return hit[1]
        arr = np.array(t._data, copy=True)
        arr.setflags(write=False)
        v = self.add("constant", [], {"value": arr}, [_aval_of(arr)])[0]
        self.memo[id(t)] = (t, v)
        return v

    def attach_weights(self) -> list[tuple[Tensor, np.ndarray, Any]]:
        """Turn every weight tensor into a tracer of a ``weight`` node for the duration
        of the capture (so ops on weights are recorded, never folded into constants).
        Returns what :meth:`detach_weights` restores (values and ``.grad``)."""
        saved: list[tuple[Tensor, np.ndarray, Any]] = []
        for name, t in self.weight_ids.values():
            data = t._data
            assert data is not None
            v = self.add("weight", [], {"name": name}, [_aval_of(data)])[0]
            self.weights_used[name] = data
            saved.append((t, data, t.grad))
            t._aval, t._value = v.aval, v  # type: ignore[assignment]
            t._data = None
        return saved

    @staticmethod
    def detach_weights(saved: list[tuple[Tensor, np.ndarray, Any]]) -> None:
        for t, data, grad in saved:
            t._data = data
            t.grad = grad  # a backward() inside the capture must not leave tracers behind
            t._aval = None
            t._value = None


class _State(threading.local):
    stack: list[_Trace]

    def __init__(self) -> None:
        self.stack = []


_state = _State()


def _aval_of(a: np.ndarray) -> Aval:
    return Aval(tuple(int(d) for d in a.shape), D.from_numpy_dtype(a.dtype))


def _norm_attr(v: Any) -> Any:
    if isinstance(v, DimExpr) or isinstance(v, (bool, str)) or v is None:
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, D.DType):
        return v.name
    if isinstance(v, (tuple, list)):
        return tuple(_norm_attr(x) for x in v)
    raise CaptureError(f"attribute value {v!r} ({type(v).__name__}) cannot be captured")


def _norm_aval(a: Aval) -> Aval:
    shape = tuple(d if isinstance(d, DimExpr) else int(d) for d in a.shape)
    return Aval(shape, a.dtype)


def make_tracer(value: Value) -> Tensor:
    t = object.__new__(Tensor)
    t._data = None
    t.requires_grad = False
    t.grad = None
    t._node = None
    t._aval = value.aval
    t._value = value  # type: ignore[assignment]
    return t


def _current() -> _Trace:
    if not _state.stack:
        raise CaptureError("a traced tensor was used after its capture ended; capture "
                           "again, passing the values in as arguments")
    return _state.stack[-1]


def _trace_bind(prim: Primitive, args: tuple[Tensor, ...], attrs: dict[str, Any]) -> Tensor:
    tr = _current()
    ins = [tr.value_of(a) for a in args]
    nattrs = {k: _norm_attr(v) for k, v in attrs.items()}
    try:
        out = prim.infer(*[v.aval for v in ins], **nattrs)
    except (ShapeError, DTypeError) as e:
        from ..capture_errors import user_frame

        path, line, text = user_frame()
        raise type(e)(f"{e}\n  (while capturing {path}:{line}: {text})") from None
    v = tr.add(prim.name, ins, nattrs, [_norm_aval(out)])[0]
    return make_tracer(v)


def symbolic_scalar(value: DimExpr, dtype: D.DType) -> Tensor:
    """A 0-d tensor holding the runtime value of a symbolic size (``dim_value``)."""
    tr = _current()
    v = tr.add("dim_value", [], {"value": value}, [Aval((), D.int64)])[0]
    t = make_tracer(v)
    if dtype is not D.int64:
        from ..ops import elementwise as E

        t = E.cast(t, dtype=dtype.name)
    return t


TraceHooks.bind = _trace_bind
TraceHooks.dim_scalar = symbolic_scalar


# ----------------------------------------------------------------------------- arguments


_SANITIZE = re.compile(r"[^A-Za-z0-9_]")


def _clean(name: str) -> str:
    name = _SANITIZE.sub("_", name) or "x"
    return name if not name[0].isdigit() else "_" + name


def _param_names(fn: Any, n: int) -> list[str]:
    target = fn
    try:
        from ..nn import Module  # type: ignore[attr-defined]

        if isinstance(fn, Module):
            target = fn.forward
    except ImportError:  # pragma: no cover
        pass
    names: list[str] = []
    try:
        sig = inspect.signature(target)
        for p in sig.parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
            elif p.kind == p.VAR_POSITIONAL:
                break
    except (TypeError, ValueError):
        pass
    return [names[i] if i < len(names) else f"arg{i}" for i in range(n)]


def _is_input_leaf(x: Any) -> bool:
    return isinstance(x, (Tensor, Spec, np.ndarray))


def _path_names(tree: Any, prefix: str) -> list[str]:
    """Names of the leaves of ``tree`` in ``tree_flatten`` order."""
    return tree_paths(tree, prefix, lambda p, k: f"{p}_{k}")


@dataclass
class _Input:
    name: str
    aval: Aval                  # symbolic dims as DimExpr
    example: np.ndarray | None  # concrete example values (static inputs only)
    low: float | None
    high: float | None


def _module_weights(obj: Any) -> dict[int, tuple[str, Tensor]]:
    """id(tensor) -> (name, tensor) for a module's parameters and buffers."""
    out: dict[int, tuple[str, Tensor]] = {}
    if obj is None:
        return out
    if isinstance(obj, Mapping):
        items = list(obj.items())
    else:
        items = []
        if hasattr(obj, "named_parameters"):
            items += list(obj.named_parameters())
        if hasattr(obj, "named_buffers"):
            items += [(k, v) for k, v in obj.named_buffers() if v is not None]
    for name, t in items:
        if isinstance(t, Tensor) and t._data is not None:
            out.setdefault(id(t), (str(name), t))
    return out


def _non_persistent_names(obj: Any) -> set[str]:
    """Dotted names of the non-persistent buffers of a module (empty for anything else)."""
    if obj is None or isinstance(obj, Mapping) or not hasattr(obj, "named_modules"):
        return set()
    out = set()
    for prefix, m in obj.named_modules():
        for name in getattr(m, "_non_persistent", ()):
            out.add(f"{prefix}.{name}" if prefix else name)
    return out


def _unused_weights(fn: Function) -> set[str]:
    """Names of the ``weight`` nodes of ``fn`` whose value nothing reads."""
    read = {id(v) for n in fn.nodes for v in n.inputs} | {id(v) for v in fn.results}
    return {n.attrs["name"] for n in fn.nodes
            if n.op == "weight" and id(n.outputs[0]) not in read}


def _owner_module(fn: Any) -> Any:
    try:
        from ..nn import Module  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover
        return None
    if isinstance(fn, Module):
        return fn
    owner = getattr(fn, "__self__", None)
    return owner if isinstance(owner, Module) else None


def _referenced_weights(fn: Any) -> Any:
    """Weights of a plain function: the modules and parameters it names as closure
    variables or globals. One module: its own parameter names; otherwise each name is
    prefixed with the variable's name (``encoder.0.weight``, ``scale``)."""
    from ..nn import Module, Parameter  # type: ignore[attr-defined]

    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    found: dict[str, Any] = {}
    for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            found[name] = cell.cell_contents
        except ValueError:  # empty cell
            continue
    globs = getattr(fn, "__globals__", {})
    for name in code.co_names:
        if name in globs and name not in found:
            found[name] = globs[name]
    modules = {k: v for k, v in found.items() if isinstance(v, Module)}
    params = {k: v for k, v in found.items() if isinstance(v, Parameter)}
    if not modules and not params:
        return None
    if len(modules) == 1 and not params:
        return next(iter(modules.values()))
    out: dict[str, Tensor] = dict(params)
    for prefix, m in modules.items():
        out.update(_prefixed(prefix, m))
    return out


def _prefixed(prefix: str, m: Any) -> dict[str, Tensor]:
    out = {f"{prefix}.{k}": v for k, v in m.named_parameters()}
    if hasattr(m, "named_buffers"):
        out.update({f"{prefix}.{k}": v for k, v in m.named_buffers() if v is not None})
    return out


# ----------------------------------------------------------------------------- capture


def capture(fn: Any, args: Sequence[Any], *, name: str = "forward",
            weights: Any = None, functions_out: dict[str, Function] | None = None
            ) -> tuple[Function, EntryPoint, dict[str, np.ndarray],
                                          list[_Input], Any]:
    """Trace ``fn(*args)``; return the function, its entry point, the weights it uses,
    the input descriptions and the argument tree definition."""
    if not callable(fn):
        raise CaptureError(f"am.export: expected a function or an nn.Module, got "
                           f"{type(fn).__name__}")
    owner = _owner_module(fn)
    if weights is None:
        weights = owner if owner is not None else _referenced_weights(fn)
    weight_ids = _module_weights(weights)
    leaves, treedef = tree_flatten(list(args), is_leaf=_is_input_leaf)
    pnames = _param_names(fn, len(args))
    leaf_names: list[str] = []
    for a, pn in zip(args, pnames):
        leaf_names += _path_names(a, pn) if not _is_input_leaf(a) else [pn]
    inputs: list[_Input] = []
    used_names: set[str] = set()
    fnc = Function(_clean(name))
    tr = _Trace(fnc, weight_ids)
    traced_leaves: list[Any] = []
    for leaf, lname in zip(leaves, leaf_names):
        if not _is_input_leaf(leaf):
            traced_leaves.append(leaf)  # static Python value, baked in
            continue
        if isinstance(leaf, Spec):
            shape = tuple(symbol(d) if isinstance(d, str) else d for d in leaf.shape)
            aval = Aval(shape, leaf.dtype)
            example = None
            nm = leaf.name or lname
            low, high = leaf.low, leaf.high
        else:
            arr = leaf.detach().numpy() if isinstance(leaf, Tensor) else np.asarray(leaf)
            if arr.dtype not in D.NP_DTYPES:
                raise DTypeError(f"am.export: input {lname!r} has dtype {arr.dtype}, which "
                                 f"amber does not have")
            aval = _aval_of(arr)
            example = np.array(arr, copy=True)
            nm = lname
            low = high = None
        nm = _clean(nm)
        base, k = nm, 1
        while nm in used_names:
            nm = f"{base}_{k}"
            k += 1
        used_names.add(nm)
        p = Value(nm, aval, None, fnc)
        fnc.params.append(p)
        inputs.append(_Input(nm, aval, example, low, high))
        traced_leaves.append(make_tracer(p))
    call_args = tree_unflatten(treedef, traced_leaves)
    _state.stack.append(tr)
    TraceHooks.active += 1
    saved: list[tuple[Tensor, np.ndarray, Any]] = []
    try:
        saved = tr.attach_weights()
        from .ag_runtime import Undefined, stack_room
        from .ag_runtime import call as _ag_call

        with stack_room():
            out = _ag_call(fn, *call_args)
        out_leaves, _ = tree_flatten(out, is_leaf=lambda x: isinstance(x, Tensor))
        results: list[Value] = []
        for leaf in out_leaves:
            if isinstance(leaf, Undefined):
                leaf._refuse()
            if not isinstance(leaf, Tensor):
                raise CaptureError(f"am.export: the function must return tensors (or "
                                   f"tuples/lists/dicts of them), got a "
                                   f"{type(leaf).__name__}")
            results.append(tr.value_of(leaf))
    finally:
        tr.detach_weights(saved)
        TraceHooks.active -= 1
        _state.stack.pop()
    _check_result_dims(fnc, results)
    out_names = _output_names(out)
    fnc.results = results
    structure = _structure(out, iter(out_names))
    entry = EntryPoint(
        name, fnc.name,
        [Port(i.name, i.aval) for i in inputs],
        [Port(n, v.aval) for n, v in zip(out_names, results)],
        structure,
        {i.name: [float(i.low if i.low is not None else 0),
                  float(i.high if i.high is not None else 2)]
         for i in inputs if i.example is None and not i.aval.dtype.is_floating},
    )
    # every parameter and persistent buffer is a weight of the program, used or not (the
    # file keeps the whole state dict); a non-persistent buffer only if the program reads it
    unused = _unused_weights(fnc) & _non_persistent_names(weights)
    weights_used = {n: np.array(w, copy=True) for n, w in tr.weights_used.items()
                    if n not in unused}
    if functions_out is not None:
        functions_out.update(tr.functions_used)
    return fnc, entry, weights_used, inputs, treedef


def _check_result_dims(fnc: Function, results: Sequence[Value]) -> None:
    """A result may have a size that a loop of the function decides (a list grown in a
    captured loop, then stacked: a data-dependent output dim, opset 5); any other size
    not bound by the inputs is refused by name."""
    bound: set[str] = set()
    for p in fnc.params:
        for d in p.aval.shape:
            bound |= free_symbols(d)
    bound |= {s for s in map(bound_symbol, fnc.nodes) if s is not None}
    for k, v in enumerate(results):
        for d in v.aval.shape:
            extra = free_symbols(d) - bound
            if extra:
                raise CaptureError(
                    f"am.export: output {k} has shape {format_type(v.aval)}, a size "
                    f"({', '.join(sorted(extra))}) that a loop nested in a branch or "
                    f"another loop decides; an output's size may depend on the data only "
                    f"through a loop at the top level of the exported function. Move the "
                    f"loop out of the branch, or pad the output to a maximum length.")


def _output_names(out: Any) -> list[str]:
    if isinstance(out, Tensor):
        return ["output"]
    names = _path_names(out, "output") if not isinstance(out, dict) else [
        n[len("output_"):] for n in _path_names(out, "output")]
    cleaned, seen = [], set()
    for n in names:
        c = _clean(n)
        base, k = c, 1
        while c in seen:
            c = f"{base}_{k}"
            k += 1
        seen.add(c)
        cleaned.append(c)
    return cleaned


def _structure(out: Any, names: Any) -> Any:
    if isinstance(out, Tensor) or not isinstance(out, (tuple, list, dict)):
        return next(names)
    if isinstance(out, dict):
        return {"dict": {str(k): _structure(out[k], names) for k in sorted(out)}}
    return {"list" if isinstance(out, list) else "tuple": [_structure(x, names) for x in out]}


# ----------------------------------------------------------------------------- proof


def _random_input(inp: _Input, shape: tuple[int, ...], rng: np.random.Generator
                  ) -> np.ndarray:
    dt = inp.aval.dtype
    if dt.is_floating:
        if inp.low is not None or inp.high is not None:
            lo = inp.low if inp.low is not None else 0.0
            hi = inp.high if inp.high is not None else lo + 1.0
            return rng.uniform(lo, hi, size=shape).astype(dt.np)
        return rng.standard_normal(shape).astype(dt.np)
    if dt is D.bool_:
        return rng.random(shape) < 0.5
    if inp.example is not None and inp.example.size:
        lo, hi = int(inp.example.min()), int(inp.example.max()) + 1
    else:
        lo = int(inp.low) if inp.low is not None else 0
        hi = int(inp.high) if inp.high is not None else 2
    return rng.integers(lo, max(hi, lo + 1), size=shape).astype(dt.np)


def _run_eager(fn: Any, treedef: Any, leaves_template: list[Any], arrays: list[np.ndarray]
               ) -> list[np.ndarray]:
    it = iter(arrays)
    leaves = [Tensor._wrap(np.array(next(it), copy=True)) if _is_input_leaf(x) else x
              for x in leaves_template]
    out = fn(*tree_unflatten(treedef, leaves))
    out_leaves, _ = tree_flatten(out, is_leaf=lambda x: isinstance(x, Tensor))
    res = []
    for t in out_leaves:
        if not isinstance(t, Tensor) or t._data is None:
            raise ExportError("the eager function returned something other than tensors")
        res.append(np.array(t._data, copy=True))
    return res


def user_state(fn: Any, weights: Any = None) -> list[Tensor]:
    """The parameters and buffers an eager run of ``fn`` may change: those of ``weights``,
    of the module ``fn`` is or belongs to, and of the modules it names."""
    found: dict[int, tuple[str, Tensor]] = {}
    for obj in (weights, _owner_module(fn), _referenced_weights(fn)):
        for k, v in _module_weights(obj).items():
            found.setdefault(k, v)
    return [t for _, t in found.values()]


@contextmanager
def state_kept(tensors: Sequence[Tensor]) -> Iterator[None]:
    """Restore the values and ``.grad`` of ``tensors`` on exit, so that an eager run of
    the proof starts from the user's state and leaves it as it was (``backward()``
    accumulates into ``.grad``; BatchNorm in training mode updates its statistics)."""
    # NOTE: amber never writes into a tensor's array (in-place ops replace it, as
    # Tensor._assign does), so keeping the references is a snapshot.
    saved = [(t, t._data, t.grad, None if t.grad is None else t.grad._data)
             for t in tensors]
    try:
        yield
    finally:
        for t, data, grad, grad_data in saved:
            t._data, t.grad = data, grad
            if grad is not None:
                grad._data = grad_data


def _user_cases(examples: Sequence[Any], args: Sequence[Any], inputs: list[_Input],
                entry: EntryPoint) -> list[tuple[str, dict[str, int], list[np.ndarray]]]:
    """The inputs of ``examples`` (each one value per argument of the function, or a
    bare value for a function of one argument) in the order of ``inputs``, each with its
    symbol binding; ExportError names the example and the input that does not fit."""
    template, treedef = tree_flatten(list(args), is_leaf=_is_input_leaf)
    out = []
    for k, ex in enumerate(examples):
        what = f"examples[{k}]"
        if not (isinstance(ex, (tuple, list)) and len(ex) == len(args)):
            if len(args) != 1:
                raise ExportError(f"{what} must hold one value per argument of the "
                                  f"function ({len(args)}), got {type(ex).__name__}")
            ex = (ex,)
        leaves, tdef = tree_flatten(list(ex), is_leaf=_is_input_leaf)
        if tdef != treedef:
            raise ExportError(f"{what} does not have the structure of the exported "
                              f"arguments (tuples, lists, dict keys)")
        arrays = [np.array(x.numpy() if isinstance(x, Tensor) else x, copy=True)
                  for x, t in zip(leaves, template) if _is_input_leaf(t)]
        env: dict[str, int] = {}
        for inp, a in zip(inputs, arrays):
            if a.dtype != inp.aval.dtype.np or a.ndim != len(inp.aval.shape):
                raise ExportError(f"{what}: input {inp.name!r} is {a.dtype}{list(a.shape)}, "
                                  f"the signature says {format_type(inp.aval)}")
            for d, n in zip(inp.aval.shape, a.shape):
                if not isinstance(d, DimExpr):
                    ok = d == n
                else:
                    ok = n >= 1 and env.setdefault(d.name, int(n)) == n
                if not ok:
                    raise ExportError(f"{what}: input {inp.name!r} has shape "
                                      f"{list(a.shape)}, which does not fit "
                                      f"{format_type(inp.aval)} (symbols are sizes >= 1, "
                                      f"the same everywhere: {_fmt(env) or 'none bound'})")
        out.append((f"entry {entry.name!r} on {what}", env, arrays))
    return out


def prove(program: Program, fn: Any, args: Sequence[Any], entry: EntryPoint,
          inputs: list[_Input], sizes: Mapping[str, Sequence[int]] | None,
          examples: Sequence[Any] | None = None, random_vectors: bool | int = True,
          state: Sequence[Tensor] = ()) -> list[TestVector]:
    """Run eager and captured on the user's ``examples``, the example arguments and
    random inputs (``random_vectors``: True for the default count, False or a count);
    return the test vectors or raise ExportError on a mismatch. Every eager run starts
    from the same ``state`` (tensors whose values and ``.grad`` are restored after it)."""
    from ..interpreter import Interpreter

    leaves_template, treedef = tree_flatten(list(args), is_leaf=_is_input_leaf)
    symbols = entry.symbols
    sizes = dict(sizes or {})
    for s in sizes:
        if s not in symbols:
            raise ExportError(f"sizes= names {s!r}, which is not a symbolic dim of the inputs "
                              f"({', '.join(symbols) or 'none'})")
    choice = {s: [int(v) for v in sizes.get(s, DEFAULT_SIZES)] for s in symbols}
    for s, vs in choice.items():
        if len(set(vs)) < 2 or min(vs) < 1:
            raise ExportError(f"sizes[{s!r}] must hold at least two distinct sizes >= 1, got "
                              f"{vs}")
    concrete = all(i.example is not None for i in inputs)
    cases = _user_cases(examples or [], args, inputs, entry)
    if concrete:
        cases.append((f"entry {entry.name!r} on the example inputs", {},
                      [i.example for i in inputs]))  # type: ignore[misc]
    # at least two runs in all: the examples (if any) and random inputs
    if isinstance(random_vectors, bool):
        n_random = (max([len(v) for v in choice.values()], default=1 if concrete else 2)
                    if random_vectors else 0)
    elif isinstance(random_vectors, int) and random_vectors >= 0:
        n_random = random_vectors
    else:
        raise ExportError(f"random_vectors must be True, False or a count >= 0, got "
                          f"{random_vectors!r}")
    if not cases and not n_random:
        raise ExportError("random_vectors=False needs examples= to prove the export on")
    rng = np.random.default_rng(0)
    for k in range(n_random):
        env = {s: vs[k % len(vs)] for s, vs in choice.items()}
        arrays = []
        for i in inputs:
            shape = tuple(int(env[d.name]) if isinstance(d, DimExpr) else int(d)
                          for d in i.aval.shape)
            arrays.append(_random_input(i, shape, rng))
        cases.append((f"entry {entry.name!r} with {_fmt(env)}" if env else
                      f"entry {entry.name!r} on random inputs", env, arrays))
    interp = Interpreter(program)
    vectors: list[TestVector] = []
    for where, env, arrays in cases:
        try:
            with state_kept(state):
                want = _run_eager(fn, treedef, leaves_template, arrays)
        except Exception as e:  # the user's code may raise anything on unsuitable inputs
            raise ExportError(
                f"cannot prove the export: the eager function failed ({where}): {e}\n  "
                f"Choose sizes that suit the model with am.export(..., sizes={{'<dim>': "
                f"(a, b)}}), value ranges for integer inputs with am.spec(..., low=, "
                f"high=), or give real inputs with am.export(..., examples=[...], "
                f"random_vectors=False).") from e
        got = interp.run(entry.name, *arrays)
        if len(want) != len(got):
            raise ExportError(f"{where}: eager returned {len(want)} outputs, the program "
                              f"{len(got)}")
        tol = {}
        for port, g, w in zip(entry.outputs, got, want):
            rtol, atol = tol[port.name] = vector_tolerance(port.dtype.name, w)
            if w.dtype != g.dtype:
                raise ExportError(f"{where}: output {port.name!r} is {w.dtype} in eager but "
                                  f"{g.dtype} in the captured program")
            if not within_tolerance(g, w, rtol, atol):
                raise ExportError(
                    f"{where}: output {port.name!r} of the captured program differs from "
                    f"eager execution (shape {g.shape} vs {w.shape}, max error "
                    f"{max_error(g, w):.3g}, tolerance rtol={rtol}, atol={atol}). The "
                    f"function probably depends on something capture cannot see (global "
                    f"state, randomness such as dropout in training mode - call "
                    f"model.eval() - or Python values computed from data).")
        vectors.append(TestVector(
            entry.name, {i.name: a for i, a in zip(inputs, arrays)},
            {p.name: w for p, w in zip(entry.outputs, want)}, tol, dict(env)))
    return vectors


def _fmt(env: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in env.items())


# ----------------------------------------------------------------------------- export


def add_entry(program: Program, fn: Any, args: Sequence[Any], *, name: str,
              sizes: Mapping[str, Sequence[int]] | None, weights: Any, check: bool,
              examples: Sequence[Any] | None = None, random_vectors: bool | int = True
              ) -> None:
    if not isinstance(name, str) or not is_symbol_name(name):
        raise CaptureError(f"entry point name {name!r} must be a name (letters, digits, _)")
    if name in program.entries:
        raise CaptureError(f"the program already has an entry point {name!r}")
    extra: dict[str, Function] = {}
    from .control import capture_session, reachable_functions

    state = user_state(fn, weights)
    # control flow adds functions to the session; capture may run user code eagerly
    with capture_session(program) as session, state_kept(state):
        session.used.add(_clean(name))
        fnc, entry, weights_used, inputs, _ = capture(fn, args, name=name, weights=weights,
                                                      functions_out=extra)
    optimize(fnc)
    control_fns = reachable_functions(program, [fnc], session.functions)
    for sub in control_fns.values():
        optimize(sub)
    if fnc.name in program.functions or fnc.name in extra:
        raise CaptureError(f"the program already has a function {fnc.name!r}")
    if extra:  # functions of loaded models called by fn (amber.reuse)
        from ..reuse import new_functions

        extra = new_functions(program, extra, weights_used)
    extra.update(reachable_functions(program, [fnc], session.functions))
    new_weights = [w for w in weights_used if w not in program.weights]
    try:
        for wname, arr in weights_used.items():
            program.add_weight(wname, arr)
        program.functions.update(extra)
        program.functions[fnc.name] = fnc
        program.entries[name] = entry
        program.verify()
        if check:
            program.test_vectors.extend(prove(program, fn, args, entry, inputs, sizes,
                                              examples, random_vectors, state=state))
    except BaseException:  # leave the program as it was
        program.functions.pop(fnc.name, None)
        for f in extra:
            program.functions.pop(f, None)
        program.entries.pop(name, None)
        for w in new_weights:
            program.weights.pop(w, None)
        raise


def export(fn: Any, *args: Any, name: str = "forward",
           sizes: Mapping[str, Sequence[int]] | None = None, weights: Any = None,
           check: bool = True, examples: Sequence[Any] | None = None,
           random_vectors: bool | int = True) -> Program:
    """Capture ``fn`` (a function or an ``nn.Module``) into a :class:`Program`.

    Args:
        fn: the function or module; a module's parameters and buffers (and those of the
            module owning a bound method, or of the modules and parameters a plain
            function names as closure variables or globals) become named weights.
        *args: one per argument of ``fn``: an example tensor or NumPy array (static
            shape), ``am.spec(*dims, dtype=...)`` (``str`` dims are symbolic), nested
            tuples/lists/dicts of those, or a Python value (baked in as a constant).
        name: the entry point's name (``"forward"`` is what ``model(x)`` calls).
        sizes: for each symbolic dim, the sizes (at least two) the export proof uses;
            default (2, 5).
        weights: a module or ``{name: tensor}``: exactly these tensors become the
            named weights (overrides the automatic choice above).
        check: run the proof (eager vs captured) and store the test vectors.
        examples: concrete inputs for the signature, each a tuple with one value per
            argument (a bare value for a function of one argument), of the signature's
            dtypes and of any sizes for its symbolic dims. The proof runs each (eager
            vs captured) and stores it as a test vector, before the random ones: for
            programs only defined on structured inputs (trees' child indices, positive
            numbers, token ids with their mask).
        random_vectors: random inputs the proof draws from each ``am.spec`` as well:
            True (default: one per size of ``sizes``), False (none: prove on
            ``examples`` only) or a count.

    Raises:
        CaptureError: a construct cannot be captured exactly (the message names the line).
        ExportError: the captured program disagrees with eager execution.
    """
    program = Program()
    program.add(fn, *args, name=name, sizes=sizes, weights=weights, check=check,
                examples=examples, random_vectors=random_vectors)
    return program


__all__ = ["DEFAULT_SIZES", "Spec", "export", "format_dim", "format_type", "spec"]
