"""ONNX import: an ONNX model as an ordinary amber :class:`~amber.Program`.

``am.from_onnx(path | bytes | onnx.ModelProto)`` traces the ONNX graph on amber tensors
(the op table of ``_ops_*.py``), so the result is captured like any amber function:
the graph becomes entry point ``forward`` whose inputs and outputs keep their ONNX names
(made identifiers: ``input.1`` becomes ``input_1``), floating-point initializers become
named weights, ``dim_param`` s become symbolic dims, constant subgraphs fold, and shape
computations on symbolic dims become dim arithmetic. The import is then *proven*: the
program runs on the example inputs (or random ones at two sizes of every symbolic dim)
and must agree with ONNX's own reference evaluator (``onnx.reference``) within the
tolerance of docs/format.md; those runs become the file's test vectors.

Anything amber does not support raises :class:`amber.UnsupportedError` naming the node,
its op type, domain and opset; the importer never computes something else instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import _dtype as D
from ..capture.ir import (
    Port,
    Program,
    TestVector,
    max_error,
    vector_tolerance,
    within_tolerance,
)
from ..capture.trace import DEFAULT_SIZES, Spec
from ..errors import ExportError, FormatError, UnsupportedError
from ..tensor import Tensor
from . import (  # noqa: F401  (the op table)
    _ops_control,
    _ops_elementwise,
    _ops_nn,
    _ops_quant,
    _ops_resize,
    _ops_rnn,
    _ops_sample,
    _ops_shape,
    _ops_signal,
)
from ._graph import (
    MIN_IMPORT_OPSET,
    ONNX_DTYPES,
    GraphRunner,
    Sym,
    dtype_name,
    materialize,
)

_NAME = re.compile(r"[^A-Za-z0-9_]")


def clean_name(name: str) -> str:
    """An ONNX name as an amber identifier (what capture makes of it)."""
    name = _NAME.sub("_", name) or "x"
    return name if not name[0].isdigit() else "_" + name


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as e:
        from .export import OnnxUnavailableError

        raise OnnxUnavailableError("ONNX import needs the 'onnx' package: pip install "
                                   "'amber[onnx]'") from e
    return onnx


# ----------------------------------------------------------------------------- loading


def load_model(model: Any) -> tuple[Any, str | None]:
    """(ModelProto, the directory its external data may be read from)."""
    onnx = _onnx()
    if isinstance(model, onnx.ModelProto):
        return model, None
    if isinstance(model, (bytes, bytearray, memoryview)):
        return _parse(onnx, bytes(model), "<bytes>"), None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        with open(path, "rb") as f:
            data = f.read()
        return _parse(onnx, data, path), os.path.dirname(os.path.abspath(path))
    raise TypeError(f"from_onnx: expected a path, bytes or an onnx.ModelProto, got "
                    f"{type(model).__name__}")


def _parse(onnx: Any, data: bytes, where: str) -> Any:
    m = onnx.ModelProto()
    try:
        m.ParseFromString(data)
    except Exception as e:
        raise FormatError(f"{where} is not an ONNX model: {e}") from None
    return m


def _external_bytes(t: Any, base_dir: str | None) -> bytes:
    """The bytes of an initializer stored in a side file, read only from inside the
    model's directory."""
    info = {e.key: e.value for e in t.external_data}
    loc = info.get("location", "")
    if base_dir is None:
        raise FormatError(f"initializer {t.name!r} keeps its data in the file {loc!r}; load "
                          f"the model from its path (or pass base_dir=) so the file can be "
                          f"found")
    if not loc or os.path.isabs(loc) or loc.startswith(("/", "\\")) or \
            re.match(r"^[A-Za-z]:", loc) or ".." in re.split(r"[\\/]", loc):
        raise FormatError(f"initializer {t.name!r}: external data location {loc!r} must be "
                          f"a relative path inside the model's directory (no absolute "
                          f"paths, no '..')")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, loc))
    if os.path.commonpath([root, path]) != root:
        raise FormatError(f"initializer {t.name!r}: external data location {loc!r} leaves the "
                          f"model's directory (through a symbolic link)")
    if not os.path.isfile(path):
        raise FormatError(f"initializer {t.name!r}: external data file {loc!r} does not exist")
    offset = int(info.get("offset", 0) or 0)
    size = os.path.getsize(path)
    length = int(info["length"]) if info.get("length") else size - offset
    if offset < 0 or length < 0 or offset + length > size:
        raise FormatError(f"initializer {t.name!r}: bytes {offset}..{offset + length} are "
                          f"outside the {size}-byte file {loc!r}")
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def tensor_array(t: Any, base_dir: str | None, where: str = "") -> np.ndarray:
    """An initializer (TensorProto) as a NumPy array of an amber dtype."""
    onnx = _onnx()
    from onnx import numpy_helper

    if t.data_type not in ONNX_DTYPES:
        raise UnsupportedError(f"{where or 'initializer'} {t.name!r} has data type "
                               f"{dtype_name(t.data_type)}, which amber does not have "
                               f"({', '.join(d.name for d in D.DTYPES)})")
    if t.data_location == onnx.TensorProto.EXTERNAL:
        raw = _external_bytes(t, base_dir)
        dt = ONNX_DTYPES[t.data_type].np
        n = int(np.prod(t.dims)) if len(t.dims) else 1
        if len(raw) != n * dt.itemsize:
            raise FormatError(f"initializer {t.name!r}: {len(raw)} bytes of external data "
                              f"for {n} elements of {dt}")
        return np.frombuffer(raw, dtype=dt.newbyteorder("<")).astype(dt).reshape(
            tuple(t.dims))
    arr = numpy_helper.to_array(t)
    if arr.dtype != ONNX_DTYPES[t.data_type].np:  # e.g. bfloat16 as raw 16-bit patterns
        arr = arr.view(ONNX_DTYPES[t.data_type].np) if arr.dtype.itemsize == 2 else \
            arr.astype(ONNX_DTYPES[t.data_type].np)
    return np.array(arr, copy=True)


def check_array(ctx: Any, arr: np.ndarray) -> np.ndarray:
    if arr.dtype not in D.NP_DTYPES:
        raise ctx.unsupported(f"a constant of dtype {arr.dtype} (amber has "
                              f"{', '.join(d.name for d in D.DTYPES)})")
    return arr


def _opset(model: Any) -> int:
    onnx = _onnx()
    ver = None
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            ver = int(o.version)
    if ver is None:
        raise UnsupportedError("the model imports no ai.onnx opset")
    newest = int(onnx.defs.onnx_opset_version())
    if ver < MIN_IMPORT_OPSET or ver > newest:
        raise UnsupportedError(f"the model uses ai.onnx opset {ver}; amber imports opsets "
                               f"{MIN_IMPORT_OPSET} to {newest}")
    return ver


# ----------------------------------------------------------------------------- inputs


def _input_specs(graph: Any, init_names: set[str]) -> list[Spec]:
    specs: list[Spec] = []
    taken: dict[str, str] = {}
    fresh = [0]

    def sym_name(param: str) -> str:
        if param in taken:
            return taken[param]
        nm = clean_name(param) if param else ""
        while not nm or nm in taken.values():
            nm = f"d{fresh[0]}"
            fresh[0] += 1
        if param:
            taken[param] = nm
        else:
            taken[f"\0{nm}"] = nm
        return nm

    for vi in graph.input:
        if vi.name in init_names:
            continue
        tt = vi.type
        if tt.WhichOneof("value") != "tensor_type":
            raise UnsupportedError(f"graph input {vi.name!r} is of type "
                                   f"{tt.WhichOneof('value')}; amber imports tensors only "
                                   f"(no sequence, map or optional types)")
        code = tt.tensor_type.elem_type
        if code not in ONNX_DTYPES:
            raise UnsupportedError(f"graph input {vi.name!r} has data type "
                                   f"{dtype_name(code)}, which amber does not have")
        if not tt.tensor_type.HasField("shape"):
            raise UnsupportedError(f"graph input {vi.name!r} has no shape (unknown rank)")
        dims: list[int | str] = []
        for d in tt.tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value >= 0:
                dims.append(int(d.dim_value))
            else:
                dims.append(sym_name(d.dim_param if d.HasField("dim_param") else ""))
        specs.append(Spec(tuple(dims), ONNX_DTYPES[code], name=vi.name))
    return specs


# ----------------------------------------------------------------------------- import


def _trace_fn(graph: Any, opset: int, consts: Mapping[str, np.ndarray],
              weights: Mapping[str, Tensor], statics: Mapping[str, np.ndarray],
              in_names: Sequence[str]) -> Any:
    def forward(*args: Tensor) -> tuple[Tensor, ...]:
        r = GraphRunner(opset)
        for name, arr in consts.items():
            r.env[name] = Tensor._wrap(arr)
            r.static[name] = arr
        for name, t in weights.items():
            r.env[name] = t
            r.static[name] = statics[name]
        for name, a in zip(in_names, args):
            r.env[name] = a
        r.run_nodes(graph.node)
        outs = []
        for o in graph.output:
            v = r.lookup(o.name)
            outs.append(materialize(v) if isinstance(v, Sym) else v)
        return tuple(outs)
    return forward


def _rename_outputs(program: Program, names: Sequence[str]) -> None:
    ep = program.entries["forward"]
    new, seen = [], set(p.name for p in ep.inputs)
    for p, n in zip(ep.outputs, names):
        c = clean_name(n)
        base, k = c, 1
        while c in seen:
            c = f"{base}_{k}"
            k += 1
        seen.add(c)
        new.append(Port(c, p.aval))
    ep.outputs = new
    ep.structure = new[0].name if len(new) == 1 else {"tuple": [p.name for p in new]}


def _prune_weights(program: Program) -> None:
    used = {n.attrs["name"] for f in program.functions.values() for n in f.nodes
            if n.op == "weight"}
    for name in list(program.weights):
        if name not in used:
            del program.weights[name]


def from_onnx(model: Any, *, example: Mapping[str, Any] | None = None,
              sizes: Mapping[str, Sequence[int]] | None = None, check: bool = True,
              base_dir: str | os.PathLike[str] | None = None) -> Program:
    """Import an ONNX model (a path, the model's bytes or an ``onnx.ModelProto``).

    Args:
        model: the ONNX model.
        example: ``{input name: array}`` example inputs for the proof (else random
            inputs: floats standard normal, integers in ``[0, 2)``).
        sizes: for each symbolic dim, the sizes (at least two) the random proof uses;
            default (2, 5).
        check: prove the import against ``onnx.reference`` and store test vectors.
        base_dir: where external data files may be read from (default: the model's
            directory when ``model`` is a path; otherwise external data is refused).

    Raises:
        UnsupportedError: an operator, attribute value, dtype, domain or type amber
            does not support (the message names the node, op type, domain and opset).
        FormatError: the model or its external data is malformed or unsafe.
        ExportError: the imported program disagrees with ONNX's reference evaluator.
    """
    proto, mdir = load_model(model)
    if base_dir is not None:
        mdir = os.fspath(base_dir)
    for o in proto.opset_import:
        if o.domain not in ("", "ai.onnx"):
            used = [n for n in proto.graph.node if n.domain == o.domain]
            if used:
                n = used[0]
                raise UnsupportedError(
                    f"ONNX node {n.name or n.output[0]!r} (op {n.op_type}, domain "
                    f"{o.domain!r}, opset {o.version}): operators of domain {o.domain!r} are "
                    f"not supported (amber imports the default ai.onnx domain)")
    opset = _opset(proto)
    graph = proto.graph
    if graph.sparse_initializer:
        raise UnsupportedError("sparse initializers are not supported")
    consts: dict[str, np.ndarray] = {}
    statics: dict[str, np.ndarray] = {}
    weights: dict[str, Tensor] = {}
    for t in graph.initializer:
        arr = tensor_array(t, mdir)
        if D.is_floating_np(arr.dtype):
            statics[t.name] = arr
            weights[t.name] = Tensor._wrap(arr)
        else:
            consts[t.name] = arr
    specs = _input_specs(graph, set(consts) | set(statics))
    in_names = [s.name or "" for s in specs]
    fn = _trace_fn(graph, opset, consts, weights, statics, in_names)
    program = Program()
    program.add(fn, *specs, name="forward", weights=weights, check=False)
    _prune_weights(program)
    _rename_outputs(program, [o.name for o in graph.output])
    program.metadata["onnx"] = {"producer": proto.producer_name,
                                "producer_version": proto.producer_version,
                                "opset": opset, "ir_version": int(proto.ir_version)}
    if check:
        prove(program, proto, mdir, example, sizes)
    return program


# ----------------------------------------------------------------------------- proof


def _reference_model(proto: Any, base_dir: str | None) -> Any:
    """The model with its external data inlined (the reference evaluator reads it)."""
    onnx = _onnx()
    if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        return proto
    m = onnx.ModelProto()
    m.CopyFrom(proto)
    for t in m.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            arr = tensor_array(t, base_dir)
            t.CopyFrom(onnx.numpy_helper.from_array(arr, t.name))
    return m


class _Oracle:
    """ONNX's reference evaluator; ONNX Runtime where the reference evaluator fails
    (some of its kernels reject valid shapes)."""

    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self.used = "onnx.reference"
        self._ort: Any = None

    def run(self, feeds: dict[str, np.ndarray]) -> list[Any]:
        from onnx.reference import ReferenceEvaluator

        if self._ort is None:
            try:
                return list(ReferenceEvaluator(self.proto).run(None, feeds))
            except Exception as e:  # any failure of the evaluator
                first = e
                try:
                    import onnxruntime as ort
                except ImportError:
                    raise ExportError(f"cannot prove the import: ONNX's reference evaluator "
                                      f"failed ({first}) and onnxruntime is not installed"
                                      ) from e
                self._ort = ort.InferenceSession(self.proto.SerializeToString(),
                                                 providers=["CPUExecutionProvider"])
                self.used = f"onnxruntime {ort.__version__} (onnx.reference failed: {first})"
        return list(self._ort.run(None, feeds))


def prove(program: Program, proto: Any, base_dir: str | None,
          example: Mapping[str, Any] | None, sizes: Mapping[str, Sequence[int]] | None
          ) -> None:
    """Run the program and ONNX's reference evaluator on the examples (or random
    inputs); store the runs as test vectors or raise ExportError."""
    from ..capture.trace import _Input, _random_input
    from ..interpreter import Interpreter

    ep = program.entries["forward"]
    onnx_in = [vi.name for vi in proto.graph.input if clean_name(vi.name) in
               {p.name for p in ep.inputs}]
    by_port = {clean_name(n): n for n in onnx_in}
    cases: list[tuple[dict[str, int], list[np.ndarray]]] = []
    if example:
        arrs = []
        for p in ep.inputs:
            onnx_name = by_port[p.name]
            if onnx_name not in example and p.name not in example:
                raise ExportError(f"example= lacks input {onnx_name!r}")
            a = np.asarray(example.get(onnx_name, example.get(p.name)))
            arrs.append(a.astype(p.dtype.np, copy=False))
        cases.append(({}, arrs))
    else:
        syms = ep.symbols
        choice = {s: list((sizes or {}).get(s, DEFAULT_SIZES)) for s in syms}
        rng = np.random.default_rng(0)
        for k in range(max([len(v) for v in choice.values()], default=1)):
            env = {s: int(v[k % len(v)]) for s, v in choice.items()}
            arrs = []
            for p in ep.inputs:
                shape = tuple(env[str(d)] if not isinstance(d, int) else d for d in p.shape)
                inp = _Input(p.name, p.aval, None, None, None)
                arrs.append(_random_input(inp, shape, rng))
            cases.append((env, arrs))
    oracle = _Oracle(_reference_model(proto, base_dir))
    interp = Interpreter(program)
    out_names = [o.name for o in proto.graph.output]
    for env, arrs in cases:
        feeds = {by_port[p.name]: a for p, a in zip(ep.inputs, arrs)}
        want = oracle.run(feeds)
        got = interp.run("forward", *arrs)
        tol = {}
        for port, g, w, on in zip(ep.outputs, got, want, out_names):
            w = np.asarray(w)
            rtol, atol = tol[port.name] = vector_tolerance(port.dtype.name, w)
            g = np.asarray(g)
            if w.dtype != g.dtype or not within_tolerance(g, w, rtol, atol):
                where = f" with {env}" if env else " on the example inputs"
                raise ExportError(
                    f"the imported program's output {on!r} differs from ONNX's reference "
                    f"evaluator{where} (shape {g.shape} vs {w.shape}, dtype {g.dtype} vs "
                    f"{w.dtype}, max error {max_error(g, w)}, "
                    f"tolerance rtol={rtol}, atol={atol})")
        program.test_vectors.append(TestVector(
            "forward", {p.name: a for p, a in zip(ep.inputs, arrs)},
            {p.name: np.asarray(w) for p, w in zip(ep.outputs, want)}, tol,
            {k: int(v) for k, v in env.items()}))
    program.metadata.setdefault("onnx", {})["proved_against"] = oracle.used


__all__ = ["clean_name", "from_onnx", "load_model", "tensor_array"]
