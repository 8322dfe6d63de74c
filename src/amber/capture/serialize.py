"""Programs to and from the .amber header (JSON) and tensors (docs/format.md).

Writing goes through :func:`amber.format.container.write_container`; reading validates
every field it uses and raises :class:`amber.FormatError` with the JSON path of the
problem. Reading never imports or calls anything a file names: op names are only looked
up in the registry dictionary."""

from __future__ import annotations

import datetime
import functools
import math
import re
from collections.abc import Mapping, Set
from typing import Any

import numpy as np

from .. import _dtype as D
from ..errors import FormatError, IRError, LimitError
from ..format.names import name_problem
from ..limits import MEMORY_LIMIT, bound_bytes
from ..ops.registry import REGISTRY, Aval
from .dims import DimExpr, dim_to_json, is_symbol_name, parse_dim
from .ir import (
    BUILTIN_OPS,
    FUNCTION_ATTRS,
    OPSET_VERSION,
    EntryPoint,
    Function,
    Node,
    Port,
    Program,
    TestVector,
    Value,
)
from .verify import required_opset

INLINE_CONSTANT_MAX = 16
"""Constants with at most this many finite elements are stored inline in the header."""

_INT_ATTR = re.compile(r"(int|dim)(\[\d*\])?\Z")


# ----------------------------------------------------------------------------- types


def _c_order(a: np.ndarray) -> np.ndarray:
    """A C-contiguous array with the same shape (0-d stays 0-d)."""
    return np.array(a, order="C", copy=not a.flags.c_contiguous)


def type_to_json(aval: Aval) -> dict[str, Any]:
    return {"dtype": aval.dtype.name, "shape": [dim_to_json(d) for d in aval.shape]}


def _fail(path: str, msg: str) -> FormatError:
    return FormatError(f"{path}: {msg}")


def _expect(obj: Any, kind: type | tuple[type, ...], path: str) -> Any:
    if type(obj) is kind:  # the common case, first (a bool's type is never int)
        return obj
    if isinstance(obj, bool) and kind in (int, float, (int, float)):
        raise _fail(path, f"expected {getattr(kind, '__name__', 'number')}, found a boolean")
    if not isinstance(obj, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _fail(path, f"expected {names}, found {type(obj).__name__}")
    return obj


def _keys(obj: dict, required: Set[str], optional: Set[str], path: str) -> None:
    if obj.keys() == required:  # the common case, first
        return
    missing = required - obj.keys()
    if missing:
        raise _fail(path, f"missing field(s) {', '.join(sorted(missing))}")
    extra = obj.keys() - required - optional
    if extra:
        raise _fail(path, f"unknown field(s) {', '.join(sorted(extra))}")


_DTYPE_NAMES = frozenset(d.name for d in D.DTYPES)  # exact names: no aliases in files


def _dtype(obj: Any, path: str) -> D.DType:
    _expect(obj, str, path)
    if obj not in _DTYPE_NAMES:
        raise _fail(path, f"unknown dtype {obj!r}")
    return D.as_dtype(obj)


@functools.lru_cache(maxsize=4096)
def _parse_dim_text(text: str) -> Any:
    """``parse_dim`` of a string, memoised: a header repeats its few dim expressions
    thousands of times (dims are immutable, so sharing them is safe)."""
    return parse_dim(text)


def _dim(obj: Any, path: str) -> Any:
    if isinstance(obj, bool) or not isinstance(obj, (int, str)):
        raise _fail(path, f"a dim must be an integer or an expression string, found "
                          f"{type(obj).__name__}")
    if isinstance(obj, int):
        if obj < 0:
            raise _fail(path, f"negative dim {obj}")
        return obj
    try:
        return _parse_dim_text(obj)
    except ValueError as e:
        raise _fail(path, str(e)) from None
    except LimitError as e:
        raise LimitError(f"{path}: {e}") from None


_TYPES: dict[tuple[str, str], Aval] = {}
"""Types read so far, by dtype and ``repr`` of the shape (it tells 1 from true and "1"):
a header repeats its few types thousands of times (Avals are immutable)."""


def type_from_json(obj: Any, path: str) -> Aval:
    _expect(obj, dict, path)
    dtype, shape = obj.get("dtype"), obj.get("shape")
    key = (dtype, repr(shape)) if type(dtype) is str and type(shape) is list else None
    hit = _TYPES.get(key) if key is not None else None
    if hit is not None:
        return hit
    dt = _dtype(dtype, path + ".dtype")
    shape = _expect(shape, list, path + ".shape")
    if len(shape) > 32:
        raise _fail(path + ".shape", f"rank {len(shape)} exceeds the maximum 32")
    aval = Aval(tuple(_dim(d, f"{path}.shape[{i}]") for i, d in enumerate(shape)), dt)
    if key is not None and len(key[1]) <= 256:
        if len(_TYPES) >= 4096:
            _TYPES.clear()
        _TYPES[key] = aval
    return aval


# ----------------------------------------------------------------------------- attributes


_CONTROL_ATTR_KINDS: dict[tuple[str, str], str] = {
    ("scan", "length"): "dim", ("scan", "num_carries"): "int", ("scan", "num_xs"): "int",
    ("scan", "reverse"): "bool", ("while", "num_carries"): "int",
}


def _attr_kind(op: str, key: str) -> str:
    prim = REGISTRY.get(op)
    if prim is None:
        return _CONTROL_ATTR_KINDS.get((op, key), "any")
    return prim.attrs.get(key, "any")


def _float_to_json(v: float) -> Any:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return float(v)


def _attr_to_json(v: Any) -> Any:
    if isinstance(v, DimExpr):
        return dim_to_json(v)
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return _float_to_json(float(v))
    if isinstance(v, (tuple, list)):
        return [_attr_to_json(x) for x in v]
    if isinstance(v, D.DType):
        return v.name
    raise IRError(f"attribute value {v!r} of type {type(v).__name__} cannot be stored")


def _attr_from_json(kind: str, v: Any, path: str) -> Any:
    if _INT_ATTR.match(kind):
        if kind.endswith("]"):
            _expect(v, list, path)
            n = kind[kind.index("[") + 1:-1]
            if n and len(v) != int(n):
                raise _fail(path, f"expected {n} values, found {len(v)}")
            return tuple(_signed_dim(x, f"{path}[{i}]") for i, x in enumerate(v))
        return _signed_dim(v, path)
    if kind == "bool":
        return _expect(v, bool, path)
    if kind == "float":
        if isinstance(v, str):
            if v not in ("nan", "inf", "-inf"):
                raise _fail(path, f"expected a number, found {v!r}")
            return float(v)
        return float(_expect(v, (int, float), path))
    if kind == "dtype":
        return _dtype(v, path).name
    return _generic_from_json(v)


def _signed_dim(v: Any, path: str) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise _fail(path, f"expected an integer or dim expression, found {type(v).__name__}")
    try:
        return parse_dim(v)
    except ValueError as e:
        raise _fail(path, str(e)) from None
    except LimitError as e:
        raise LimitError(f"{path}: {e}") from None


def _generic_from_json(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_generic_from_json(x) for x in v)
    return v


def _constant_to_json(arr: np.ndarray, tensor_name: str,
                      tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    dt = D.from_numpy_dtype(arr.dtype)
    out: dict[str, Any] = {"dtype": dt.name, "shape": [int(d) for d in arr.shape]}
    if dt.is_floating:  # float16/bfloat16 values are exact as Python floats
        wide = arr.astype(np.float64)
        finite = bool(np.all(np.isfinite(wide)))
    else:
        wide, finite = arr, True
    if arr.size <= INLINE_CONSTANT_MAX and finite:
        flat = wide.reshape(-1).tolist()
        out["data"] = flat
    else:
        tensors[tensor_name] = _c_order(arr)
        out["tensor"] = tensor_name
    return out


def _constant_from_json(obj: Any, tensors: Mapping[str, np.ndarray], path: str) -> np.ndarray:
    _expect(obj, dict, path)
    aval = type_from_json(obj, path)
    if any(isinstance(d, DimExpr) for d in aval.shape):
        raise _fail(path, "a constant must have a static shape")
    shape = tuple(int(d) for d in aval.shape)
    if "tensor" in obj:
        _keys(obj, {"dtype", "shape", "tensor"}, set(), path)
        arr = _tensor(tensors, obj["tensor"], path + ".tensor")
        if arr.dtype != aval.dtype.np or arr.shape != shape:
            raise _fail(path, f"tensor {obj['tensor']!r} is {arr.dtype}{list(arr.shape)}, the "
                              f"constant declares {aval.dtype.name}{list(shape)}")
        return arr
    _keys(obj, {"dtype", "shape", "data"}, set(), path)
    data = _expect(obj["data"], list, path + ".data")
    n = math.prod(shape)
    if len(data) != n:
        raise _fail(path + ".data", f"has {len(data)} values, shape {list(shape)} needs {n}")
    for i, x in enumerate(data):
        if aval.dtype is D.bool_:
            _expect(x, bool, f"{path}.data[{i}]")
        elif aval.dtype.is_integer:
            _expect(x, int, f"{path}.data[{i}]")
        else:
            _expect(x, (int, float), f"{path}.data[{i}]")
    try:
        return np.array(data, dtype=aval.dtype.np).reshape(shape)
    except OverflowError:
        raise _fail(path + ".data", f"a value does not fit in {aval.dtype.name}") from None


def _tensor(tensors: Mapping[str, np.ndarray], name: Any, path: str) -> np.ndarray:
    _expect(name, str, path)
    if name not in tensors:
        raise _fail(path, f"names tensor {name!r}, which is not in the file")
    return tensors[name]


# ----------------------------------------------------------------------------- functions


def function_to_json(fn: Function, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    nodes = []
    for i, n in enumerate(fn.nodes):
        attrs: dict[str, Any] = {}
        for k, v in sorted(n.attrs.items()):
            if n.op == "constant" and k == "value":
                attrs[k] = _constant_to_json(v, f"constants/{fn.name}/{i}", tensors)
            else:
                attrs[k] = _attr_to_json(v)
        nodes.append({
            "op": n.op,
            "inputs": [v.name for v in n.inputs],
            "attrs": attrs,
            "outputs": [{"name": v.name, **type_to_json(v.aval)} for v in n.outputs],
        })
    return {
        "name": fn.name,
        "params": [{"name": p.name, **type_to_json(p.aval)} for p in fn.params],
        "nodes": nodes,
        "results": [v.name for v in fn.results],
    }


_MAX_VALUES = 1 << 24
_NONE: frozenset[str] = frozenset()
_VALUE_KEYS = frozenset({"name", "dtype", "shape"})
_NODE_KEYS = frozenset({"op", "inputs", "attrs", "outputs"})
_FUNCTION_KEYS = frozenset({"name", "params", "nodes", "results"})


def function_from_json(obj: Any, tensors: Mapping[str, np.ndarray], path: str) -> Function:
    # NOTE: the JSON path of an item is formatted only when the item is refused: a large
    # header has millions of items, and formatting every path took a fifth of the read
    _expect(obj, dict, path)
    _keys(obj, _FUNCTION_KEYS, _NONE, path)
    name = _expect(obj["name"], str, path + ".name")
    fn = Function(name)
    env: dict[str, Value] = {}
    for i, p in enumerate(_expect(obj["params"], list, path + ".params")):
        fn.params.append(_define(env, fn, p, None, path, "params", i))
    for i, nobj in enumerate(_expect(obj["nodes"], list, path + ".nodes")):
        fn.nodes.append(_node_from_json(env, fn, nobj, tensors, path, i))
    for i, rname in enumerate(_expect(obj["results"], list, path + ".results")):
        v = env.get(rname) if type(rname) is str else None
        if v is None:
            _expect(rname, str, f"{path}.results[{i}]")
            raise _fail(f"{path}.results[{i}]", f"value {rname!r} is not defined")
        fn.results.append(v)
    return fn


def _define(env: dict[str, Value], fn: Function, vobj: Any, producer: Node | None,
            path: str, kind: str, i: int) -> Value:
    """The value ``vobj`` declares (``path.kind[i]``), added to ``env``."""
    vname = vobj.get("name") if type(vobj) is dict else None
    if type(vname) is not str or vobj.keys() != _VALUE_KEYS or vname in env or \
            len(env) >= _MAX_VALUES:
        vpath = f"{path}.{kind}[{i}]"
        _expect(vobj, dict, vpath)
        _keys(vobj, _VALUE_KEYS, _NONE, vpath)
        vname = _expect(vobj["name"], str, vpath + ".name")
        if vname in env:
            raise _fail(vpath, f"value {vname!r} is defined twice")
        raise _fail(vpath, "too many values")
    v = Value(vname, _type(vobj, path, kind, i), producer, fn)
    env[vname] = v
    return v


def _type(vobj: dict[str, Any], path: str, kind: str, i: int) -> Aval:
    """``type_from_json`` of a value, its path formatted only for a type not read before."""
    dtype, shape = vobj["dtype"], vobj["shape"]
    if type(dtype) is str and type(shape) is list:
        hit = _TYPES.get((dtype, repr(shape)))
        if hit is not None:
            return hit
    return type_from_json(vobj, f"{path}.{kind}[{i}]")


def _node_from_json(env: dict[str, Value], fn: Function, nobj: Any,
                    tensors: Mapping[str, np.ndarray], fpath: str, i: int) -> Node:
    if type(nobj) is not dict or nobj.keys() != _NODE_KEYS:
        npath = f"{fpath}.nodes[{i}]"
        _expect(nobj, dict, npath)
        _keys(nobj, _NODE_KEYS, _NONE, npath)
    op = nobj["op"]
    if type(op) is not str or (op not in REGISTRY and op not in BUILTIN_OPS):
        npath = f"{fpath}.nodes[{i}]"
        _expect(op, str, npath + ".op")
        raise _fail(npath, f"unknown op {op!r} (not in opset {OPSET_VERSION} of this amber)")
    inputs = []
    names = nobj["inputs"]
    if type(names) is not list:
        _expect(names, list, f"{fpath}.nodes[{i}].inputs")
    for j, iname in enumerate(names):
        v = env.get(iname) if type(iname) is str else None
        if v is None:
            ipath = f"{fpath}.nodes[{i}].inputs[{j}]"
            _expect(iname, str, ipath)
            raise _fail(ipath, f"value {iname!r} is used before it is defined")
        inputs.append(v)
    attrs_obj = nobj["attrs"]
    attrs: dict[str, Any] = {}
    if attrs_obj:
        attrs_obj = _expect(attrs_obj, dict, f"{fpath}.nodes[{i}].attrs")
        for k, v in attrs_obj.items():
            apath = f"{fpath}.nodes[{i}].attrs.{k}"
            if op == "constant" and k == "value":
                attrs[k] = _constant_from_json(v, tensors, apath)
            elif (op == "weight" and k == "name") or k in FUNCTION_ATTRS.get(op, ()):
                attrs[k] = _expect(v, str, apath)
            else:
                attrs[k] = _attr_from_json(_attr_kind(op, k), v, apath)
    elif type(attrs_obj) is not dict:
        _expect(attrs_obj, dict, f"{fpath}.nodes[{i}].attrs")
    node = Node(op, inputs, attrs, [])
    outs = nobj["outputs"]
    if type(outs) is not list:
        _expect(outs, list, f"{fpath}.nodes[{i}].outputs")
    npath = f"{fpath}.nodes[{i}]"
    for j, oobj in enumerate(outs):
        node.outputs.append(_define(env, fn, oobj, node, npath, "outputs", j))
    return node


# ----------------------------------------------------------------------------- header


def structure_from_json(obj: Any, names: set[str], path: str, depth: int = 0) -> Any:
    if depth > 16:
        raise _fail(path, "output structure nests too deeply")
    if isinstance(obj, str):
        if obj not in names:
            raise _fail(path, f"names unknown output {obj!r}")
        return obj
    _expect(obj, dict, path)
    if len(obj) != 1:
        raise _fail(path, "expected one of tuple, list, dict")
    (kind, body), = obj.items()
    if kind in ("tuple", "list"):
        return {kind: [structure_from_json(x, names, f"{path}.{kind}[{i}]", depth + 1)
                       for i, x in enumerate(_expect(body, list, path + "." + kind))]}
    if kind == "dict":
        return {kind: {k: structure_from_json(x, names, f"{path}.dict.{k}", depth + 1)
                       for k, x in _expect(body, dict, path + ".dict").items()}}
    raise _fail(path, f"unknown structure kind {kind!r}")


def _check_name(name: str, what: str, path: str, *, segments: bool = False) -> None:
    """docs/format.md H.10: entry point and port names are plain, weight names plain
    names joined by '/'."""
    problem = name_problem(name, segments=segments)
    if problem:
        raise _fail(path, f"{what} name {name[:60]!r} {problem} (docs/format.md H.10)")


def _ports(objs: Any, path: str, what: str = "port") -> list[Port]:
    out = []
    seen = set()
    for i, p in enumerate(_expect(objs, list, path)):
        _expect(p, dict, f"{path}[{i}]")
        _keys(p, {"name", "dtype", "shape"}, set(), f"{path}[{i}]")
        name = _expect(p["name"], str, f"{path}[{i}].name")
        _check_name(name, what, f"{path}[{i}].name")
        if name in seen:
            raise _fail(f"{path}[{i}]", f"duplicate name {name!r}")
        seen.add(name)
        out.append(Port(name, type_from_json(p, f"{path}[{i}]")))
    return out


def header_to_json(program: Program, metadata: Mapping[str, Any] | None
                   ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header dict and tensors of a program (the container adds its own fields)."""
    from .. import __version__

    tensors: dict[str, np.ndarray] = {}
    functions = [function_to_json(f, tensors) for f in program.functions.values()]
    weights = []
    for name, arr in sorted(program.weights.items()):
        _check_name(name, "weight", "program.weights", segments=True)  # readers refuse it
        tname = f"weights/{name}"
        tensors[tname] = _c_order(arr)
        weights.append({"name": name, "tensor": tname,
                        **type_to_json(Aval(arr.shape, D.from_numpy_dtype(arr.dtype)))})
    signatures = {}
    for e in program.entries.values():
        _check_name(e.name, "entry point", "program.entries")
        for what, ports in (("input", e.inputs), ("output", e.outputs)):
            for p in ports:
                _check_name(p.name, what, f"program.entries.{e.name}")
        sig: dict[str, Any] = {
            "function": e.function,
            "inputs": [{"name": p.name, **type_to_json(p.aval)} for p in e.inputs],
            "outputs": [{"name": p.name, **type_to_json(p.aval)} for p in e.outputs],
            "output_structure": e.structure if e.structure is not None else
            {"tuple": [p.name for p in e.outputs]},
        }
        if e.input_ranges:
            sig["input_ranges"] = {k: list(v) for k, v in e.input_ranges.items()}
        signatures[e.name] = sig
    vectors = []
    for i, tv in enumerate(program.test_vectors):
        ins, outs = {}, {}
        for k, a in tv.inputs.items():
            ins[k] = f"test_vectors/{i}/inputs/{k}"
            tensors[ins[k]] = _c_order(a)
        for k, a in tv.outputs.items():
            outs[k] = f"test_vectors/{i}/outputs/{k}"
            tensors[outs[k]] = _c_order(a)
        vectors.append({
            "entry": tv.entry, "dims": dict(tv.dims), "inputs": ins, "outputs": outs,
            "tolerance": {k: {"rtol": r, "atol": a} for k, (r, a) in tv.tolerance.items()},
        })
    meta: dict[str, Any] = {
        "producer": "amber",
        "producer_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "user": dict(metadata or {}),
    }
    header = {
        "opset_version": min(program.opset_version, required_opset(program)),
        "program": {"functions": functions, "weights": weights},
        "signatures": signatures,
        "metadata": meta,
        "test_vectors": vectors,
    }
    return header, dedupe_tensors(header, tensors)


_SHARED_PREFIXES = ("weights/", "constants/")


def dedupe_tensors(header: dict[str, Any], tensors: dict[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
    """Store each distinct weight or constant content once: weight and constant tensors
    with equal content hash (dtype, shape and bytes, see
    :func:`amber.reuse.content_hash`) are replaced by one of them (a weight's before a
    constant's, then the first name in code-point order) and the references in
    ``header`` are rewritten to it. Test-vector tensors keep their own entries under
    their conventional names (tools find them by name). Returns the remaining tensors."""
    from ..reuse import content_hash

    keep: dict[str, str] = {}
    alias: dict[str, str] = {}
    for prefix in _SHARED_PREFIXES:
        for name in sorted(n for n in tensors if n.startswith(prefix)):
            h = content_hash(tensors[name])
            if h in keep:
                alias[name] = keep[h]
            else:
                keep[h] = name
    if not alias:
        return tensors
    for w in header["program"]["weights"]:
        w["tensor"] = alias.get(w["tensor"], w["tensor"])
    for f in header["program"]["functions"]:
        for n in f["nodes"]:
            if n["op"] == "constant":
                v = n["attrs"].get("value")
                if isinstance(v, dict) and "tensor" in v:
                    v["tensor"] = alias.get(v["tensor"], v["tensor"])
    return {k: a for k, a in tensors.items() if k not in alias}


def save_program(program: Program, path: Any, metadata: Mapping[str, Any] | None) -> None:
    from ..format.container import write_container

    program.verify()
    if metadata is not None and not isinstance(metadata, Mapping):
        raise FormatError("metadata must be a dict of JSON values")
    header, tensors = header_to_json(program, metadata)
    write_container(path, header, tensors)


def program_from_header(header: Mapping[str, Any], tensors: Mapping[str, np.ndarray]
                        ) -> Program:
    """Decode and verify a program from a container's header and tensors."""
    from ..format.container import gc_paused

    _expect(header, Mapping, "header")
    with gc_paused():  # a large header builds millions of objects (see gc_paused)
        prog = Program(_opset_from_json(header))
        pobj = _expect(header["program"], dict, "header.program")
        _keys(pobj, {"functions", "weights"}, set(), "header.program")
        _weights_from_json(prog, pobj["weights"], tensors)
        for i, fobj in enumerate(_expect(pobj["functions"], list, "header.program.functions")):
            fn = function_from_json(fobj, tensors, f"header.program.functions[{i}]")
            if fn.name in prog.functions:
                raise FormatError(f"header.program.functions[{i}]: duplicate function name "
                                  f"{fn.name!r}")
            prog.functions[fn.name] = fn
        for ename, sobj in _expect(header["signatures"], dict, "header.signatures").items():
            prog.entries[ename] = entry_from_json(ename, sobj)
        for i, tv in enumerate(_expect(header.get("test_vectors", []), list,
                                       "header.test_vectors")):
            prog.test_vectors.append(_vector_from_json(prog, tv, tensors,
                                                       f"header.test_vectors[{i}]"))
        meta = header.get("metadata", {})
        prog.metadata = dict(_expect(meta, dict, "header.metadata"))
        try:
            prog.verify()
        except IRError as e:
            raise FormatError(f"the program in the file is invalid: {e}") from None
    return prog


def _opset_from_json(header: Mapping[str, Any]) -> int:
    """The header's opset version, checked before anything else is read."""
    if "opset_version" not in header:
        raise FormatError("header: not an amber program (no opset_version)")
    opset = header["opset_version"]
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 1:
        raise FormatError(f"header.opset_version: expected a positive integer, found {opset!r}")
    if opset > OPSET_VERSION:
        from .. import __version__

        raise FormatError(
            f"the file needs opset version {opset}, but this amber ({__version__}) supports "
            f"opset versions up to {OPSET_VERSION}; upgrade amber to read it")
    for key in ("program", "signatures"):
        if key not in header:
            raise FormatError(f"header: missing field {key!r}")
    return opset


def _weights_from_json(prog: Program, objs: Any, tensors: Mapping[str, np.ndarray]) -> None:
    for i, w in enumerate(_expect(objs, list, "header.program.weights")):
        path = f"header.program.weights[{i}]"
        _expect(w, dict, path)
        _keys(w, {"name", "tensor", "dtype", "shape"}, set(), path)
        name = _expect(w["name"], str, path + ".name")
        _check_name(name, "weight", path + ".name", segments=True)
        aval = type_from_json(w, path)
        arr = _tensor(tensors, w["tensor"], path + ".tensor")
        if arr.dtype != aval.dtype.np or tuple(arr.shape) != tuple(aval.shape):
            raise _fail(path, f"tensor {w['tensor']!r} is {arr.dtype}{list(arr.shape)}, the "
                              f"weight declares {aval.dtype.name}{list(aval.shape)}")
        if name in prog.weights:
            raise _fail(path, f"duplicate weight name {name!r}")
        prog.weights[name] = arr


def entry_from_json(ename: str, sobj: Any) -> EntryPoint:
    path = f"header.signatures[{ename[:60]!r}]"
    _check_name(ename, "entry point", path)
    _expect(sobj, dict, path)
    _keys(sobj, {"function", "inputs", "outputs", "output_structure"}, {"input_ranges"}, path)
    fname = _expect(sobj["function"], str, path + ".function")
    ins = _ports(sobj["inputs"], path + ".inputs", "input")
    outs = _ports(sobj["outputs"], path + ".outputs", "output")
    for p in ins:
        for d in p.shape:
            if isinstance(d, DimExpr) and not d.is_symbol():
                raise _fail(path + ".inputs", f"input {p.name!r} has dim {d}; input dims "
                                              f"must be integers or plain symbols")
    structure = structure_from_json(sobj["output_structure"], {p.name for p in outs},
                                     path + ".output_structure")
    ranges: dict[str, list[float]] = {}
    if "input_ranges" in sobj:
        for k, v in _expect(sobj["input_ranges"], dict, path + ".input_ranges").items():
            _expect(v, list, f"{path}.input_ranges.{k}")
            if len(v) != 2:
                raise _fail(f"{path}.input_ranges.{k}", "expected [low, high]")
            ranges[k] = [float(_expect(x, (int, float), f"{path}.input_ranges.{k}"))
                         for x in v]
    return EntryPoint(ename, fname, ins, outs, structure, ranges)


def _vector_from_json(prog: Program, tv: Any, tensors: Mapping[str, np.ndarray], path: str
                      ) -> TestVector:
    _expect(tv, dict, path)
    _keys(tv, {"entry", "inputs", "outputs", "tolerance"}, {"dims"}, path)
    entry = _expect(tv["entry"], str, path + ".entry")
    if entry not in prog.entries:
        raise _fail(path + ".entry", f"unknown entry point {entry!r}")
    ins_t = {k: _tensor(tensors, v, f"{path}.inputs.{k}")
             for k, v in _expect(tv["inputs"], dict, path + ".inputs").items()}
    for k, a in ins_t.items():  # a 0-byte [2**40, 0] input would bind a symbol to 2**40
        if a.size == 0 and bound_bytes(a.shape, a.dtype.itemsize) > MEMORY_LIMIT:
            raise LimitError(f"{path}.inputs.{k}: shape {list(a.shape)} binds sizes beyond "
                             f"the memory limit of {MEMORY_LIMIT} bytes (it is empty; its "
                             f"sizes, zeros counted as 1, times {a.dtype.itemsize} bytes)")
    outs_t = {k: _tensor(tensors, v, f"{path}.outputs.{k}")
              for k, v in _expect(tv["outputs"], dict, path + ".outputs").items()}
    tol = {}
    for k, v in _expect(tv["tolerance"], dict, path + ".tolerance").items():
        _expect(v, dict, f"{path}.tolerance.{k}")
        _keys(v, {"rtol", "atol"}, set(), f"{path}.tolerance.{k}")
        tol[k] = (float(_expect(v["rtol"], (int, float), f"{path}.tolerance.{k}.rtol")),
                  float(_expect(v["atol"], (int, float), f"{path}.tolerance.{k}.atol")))
    dims = {}
    for k, v in _expect(tv.get("dims", {}), dict, path + ".dims").items():
        if not is_symbol_name(k):
            raise _fail(path + ".dims", f"invalid symbol name {k!r}")
        dims[k] = _expect(v, int, f"{path}.dims.{k}")
    return TestVector(entry, ins_t, outs_t, tol, dims)
