"""ONNX export: an amber program's entry point as an ONNX model, exactly or not at all.

``am.onnx.export(program_or_path, path)`` converts one entry point of a straight-line
:class:`~amber.Program` (or of a ``.amber`` file) into an ONNX ``ModelProto``:

* weights become initializers (named as in the program), constants become initializers;
* symbolic dims of the inputs become named ``dim_param`` s, and every attribute that is a
  dim expression (``reshape`` to ``[batch, 784]``, a ``slice`` up to ``batch``) is
  computed at run time from the inputs' shapes, so one model serves every size;
* every primitive is lowered to ONNX operators that reproduce its semantics in
  ``docs/opset.md`` exactly (integer ``div`` floors and ``x div 0 = 0``; ``cast``
  saturates and maps NaN to 0; ``max``/``argmax`` propagate NaN as specified; ``pad``
  supports interior padding; ``scatter_add`` accumulates repeated indices; ...).

The rule is the one of capture: **export is exact or refused**. Where ONNX (as executed
by the pinned ONNX Runtime, which is how the exporter is checked) cannot reproduce an
amber semantic within the tolerance ``docs/opset.md`` states, :func:`export` raises
:class:`OnnxExportError` naming the node, the op and the reason. :data:`REFUSED` lists
the refused primitives and :data:`REFUSED_DTYPES` the refused (primitive, dtype) pairs,
each with its reason. Control flow (``cond``, ``while``, ``scan``) and ``call`` nodes are
refused: the exporter handles straight-line programs.

The ``onnx`` package is an optional extra (``pip install amber[onnx]``); it is imported
only when a function of this module needs it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _dtype as D
from ..capture.dims import DimExpr, FloorDiv, dim_equal, format_dim
from ..capture.ir import (
    Function,
    Node,
    Program,
    Value,
    computes_wide,
    data_dependent_symbols,
    format_type,
)
from ..capture.walk import Frame, Walker
from ..errors import AmberError
from ..ops._table import REGISTRY

if TYPE_CHECKING:  # pragma: no cover
    import onnx

DEFAULT_OPSET: int = 21
"""The ONNX opset written by default (the lowest one the exporter supports)."""

MIN_OPSET: int = 21
"""Older opsets lack ``ReduceMax`` on bool tensors, which the exact lowerings use."""

INT64_MAX: int = 2**63 - 1


class OnnxExportError(AmberError):
    """An amber program cannot be exported to ONNX exactly. The message names the
    function, the node, the op and why; nothing is written."""


class OnnxUnavailableError(AmberError, ImportError):
    """The optional ``onnx`` extra is not installed."""


# Primitive -> how it is lowered (informative; the test suite checks that every
# registry primitive is either here or in REFUSED).
SUPPORTED: dict[str, str] = {}
"""Primitive -> how it is lowered (informative): a primitive that declares its ONNX
operator (``@primitive(..., onnx="Exp")``) is that operator; every other one has a
function registered with :func:`lowering`. The test suite checks that every registry
primitive is either here or in REFUSED."""

_LOWER: dict[str, Any] = {}


def lowering(name: str, how: str) -> Any:
    """Decorator registering the ONNX lowering of primitive ``name``:
    ``fn(L, node, input_names) -> output name``; ``how`` says what it emits."""

    def register(fn: Any) -> Any:
        if name in _LOWER:
            raise AmberError(f"ONNX lowering of {name!r} registered twice")
        _LOWER[name] = fn
        SUPPORTED[name] = how
        return fn

    return register

REFUSED: dict[str, str] = {}
"""Primitives the exporter refuses outright, with the reason (none in opset 1)."""

_NO_F64_KERNEL = ("ONNX Runtime has no float64 CPU kernel for {onnx}, and amber does not "
                  "approximate it in float32")
_F64_INACCURATE = ("ONNX Runtime's float64 {onnx} kernel errs by more than the 4 ULP "
                   "amber requires (hundreds of ULP after argument reduction)")

REFUSED_DTYPES: dict[tuple[str, str], str] = {
    ("erf", "float64"): _NO_F64_KERNEL.format(onnx="Erf"),
    ("sin", "float64"): _F64_INACCURATE.format(onnx="Sin"),
    ("cos", "float64"): _F64_INACCURATE.format(onnx="Cos"),
}
"""(primitive, dtype of its first operand) pairs the exporter refuses, with the reason."""

REFUSED_NODES: dict[str, str] = {
    "call": "the exporter handles straight-line programs; a call to another function "
            "would have to be inlined",
    "cond": "the exporter converts straight-line programs only (this needs ONNX If)",
    "while": "the exporter converts straight-line programs only (this needs ONNX Loop)",
    "scan": "the exporter converts straight-line programs only (this needs ONNX Scan)",
}
"""IR node kinds other than primitives that the exporter refuses, with the reason."""

_STACKING_WHILE = ("the exporter converts straight-line programs only; this opset-3 while "
                   "stacks per-iteration outputs along its trip count (a gradient of "
                   "while_loop), which needs ONNX Loop with scan outputs")


def _import_onnx() -> Any:
    try:
        import onnx
        from onnx import helper, numpy_helper  # noqa: F401
    except ImportError as e:
        raise OnnxUnavailableError(
            "ONNX export needs the optional 'onnx' extra: pip install 'amber[onnx]' "
            f"(onnx==1.23.2, onnxruntime==1.32.0); import failed: {e}") from None
    return onnx


_ONNX_DTYPE = {"float32": 1, "float64": 11, "int32": 6, "int64": 7, "bool": 9,
               "float16": 10, "bfloat16": 16, "int8": 3, "uint8": 2, "int16": 5}
"""amber dtype name -> onnx.TensorProto data type."""


class _Builder:
    """Accumulates ONNX nodes and initializers with unique value names."""

    def __init__(self, onnx: Any, reserved: Sequence[str]) -> None:
        self.onnx = onnx
        self.helper = onnx.helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.used: set[str] = set(reserved)
        self.counter = 0
        self._consts: dict[tuple, str] = {}

    def fresh(self, hint: str) -> str:
        while True:
            name = f"{hint}_{self.counter}"
            self.counter += 1
            if name not in self.used:
                self.used.add(name)
                return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str | None = None,
           **attrs: Any) -> str:
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def op_to(self, op_type: str, inputs: Sequence[str], out: str, **attrs: Any) -> str:
        self.used.add(out)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def initializer(self, array: np.ndarray, name: str) -> str:
        self.used.add(name)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def const(self, array: Any, dtype: Any = None) -> str:
        """An initializer holding ``array`` (small constants are shared)."""
        a = np.asarray(array, dtype=dtype)
        key = None
        if a.size <= 64:
            key = (a.dtype.str, a.shape, a.tobytes())
            hit = self._consts.get(key)
            if hit is not None:
                return hit
        name = self.initializer(a, self.fresh("const"))
        if key is not None:
            self._consts[key] = name
        return name


class _Lowering(Walker[str]):
    """Lowers the nodes of one amber function into a :class:`_Builder`."""

    def __init__(self, program: Program, fn: Function, b: _Builder,
                 symbol_sources: dict[str, tuple[str, int]]) -> None:
        self.program = program
        self.fn = fn
        self.b = b
        self.names: dict[int, str] = {}
        self.symbol_sources = symbol_sources
        self._dims: dict[str, str] = {}
        self._weights: dict[str, str] = {}
        self.port_names: set[str] = set()

    # -- helpers -------------------------------------------------------------------
    def name(self, v: Value) -> str:
        return self.names[id(v)]

    def dim1(self, d: Any) -> str:
        """A 1-D int64 tensor of one element holding dim ``d`` (computed at run time when
        ``d`` is symbolic)."""
        if not isinstance(d, DimExpr):
            return self.b.const(np.array([int(d)], dtype=np.int64))
        key = format_dim(d)
        hit = self._dims.get(key)
        if hit is not None:
            return hit
        b = self.b
        total: str | None = None
        for mono, coef in d._terms:
            factors: list[str] = []
            for atom, power in mono:
                f = self._atom(atom)
                factors.extend([f] * power)
            term = factors[0] if factors else b.const(np.array([coef], dtype=np.int64))
            for f in factors[1:]:
                term = b.op("Mul", [term, f], "dim")
            if factors and coef != 1:
                term = b.op("Mul", [term, b.const(np.array([coef], dtype=np.int64))], "dim")
            total = term if total is None else b.op("Add", [total, term], "dim")
        assert total is not None
        self._dims[key] = total
        return total

    def _atom(self, atom: Any) -> str:
        if isinstance(atom, FloorDiv):
            e = self.dim1(atom.expr)
            k = self.b.const(np.array([atom.k], dtype=np.int64))
            # floor division for any sign: (e - (e mod k)) / k with the divisor's-sign Mod
            m = self.b.op("Mod", [e, k], "dim", fmod=0)
            return self.b.op("Div", [self.b.op("Sub", [e, m], "dim"), k], "dim")
        src = self.symbol_sources.get(atom)
        if src is None:
            raise OnnxExportError(
                f"onnx export of {self.fn.name!r}: the symbolic size {atom!r} is not the "
                f"size of any input dimension, so its value cannot be read at run time")
        key = f"sym:{atom}"
        hit = self._dims.get(key)
        if hit is None:
            hit = self.b.op("Shape", [src[0]], f"size_{atom}", start=src[1], end=src[1] + 1)
            self._dims[key] = hit
        return hit

    def shape1(self, dims: Sequence[Any]) -> str:
        """A 1-D int64 shape tensor for ``dims`` (ints or dim expressions)."""
        if all(not isinstance(d, DimExpr) for d in dims):
            return self.b.const(np.array([int(d) for d in dims], dtype=np.int64))
        if not dims:
            return self.b.const(np.zeros((0,), dtype=np.int64))
        return self.b.op("Concat", [self.dim1(d) for d in dims], "shape", axis=0)

    def reshape(self, x: str, dims: Sequence[Any]) -> str:
        dyn = [i for i, d in enumerate(dims) if isinstance(d, DimExpr)]
        static = [int(d) for d in dims if not isinstance(d, DimExpr)]
        if len(dyn) == 1 and all(s > 0 for s in static):
            # one run-time size among non-zero static sizes: -1 infers it exactly
            target = [-1 if isinstance(d, DimExpr) else int(d) for d in dims]
            return self.b.op("Reshape", [x, self.b.const(np.array(target, dtype=np.int64))])
        return self.b.op("Reshape", [x, self.shape1(dims)], allowzero=1)

    def _widened(self, node: Node, fn: Any) -> str:
        """docs/opset.md 1.1.1: the primitive on its compute dtype (float32, int32)
        between Casts; the result rounded (wrapped) back to the storage dtype."""
        b = self.b
        names = []
        for v in node.inputs:
            n = self.name(v)
            if v.dtype in D.COMPUTE:
                n = b.op("Cast", [n], to=_ONNX_DTYPE[D.COMPUTE[v.dtype].name])
            names.append(n)
        wide = Node(node.op, [_wide(v) for v in node.inputs], node.attrs,
                    [_wide(v) for v in node.outputs])
        out = fn(self, wide, names)
        dt = node.output.dtype
        if dt in D.COMPUTE:
            out = b.op("Cast", [out], to=_ONNX_DTYPE[dt.name])
        return out

    def fill(self, value: Any, dtype: str) -> str:
        """A scalar constant of amber dtype ``dtype``."""
        return self.b.const(np.array(value, dtype=_np_dtype(dtype)))

    def _count(self, node: Node, start: int, step: int) -> list[str]:
        """A counting scan (see _counting) as ONNX Range: ys[i] = start + i * step, and
        the final carry start + length * step (exact: int64 sizes do not overflow)."""
        b, i64 = self.b, np.int64
        n = b.op("Reshape", [self.dim1(node.attrs["length"]), b.const(np.zeros((0,), i64))])
        first, delta = b.const(np.array(start, i64)), b.const(np.array(step, i64))
        end = b.op("Add", [first, b.op("Mul", [n, delta])])
        return [end, b.op("Range", [first, end, delta])]

    def refuse(self, node: Node, index: int, reason: str) -> OnnxExportError:
        ins = ", ".join(f"%{v.name}: {v.dtype.name}[{', '.join(map(format_dim, v.shape))}]"
                        for v in node.inputs)
        outs = ", ".join(f"%{v.name}" for v in node.outputs)
        return OnnxExportError(
            f"onnx export of function {self.fn.name!r}, node {index} "
            f"({outs} = {node.op}({ins})): {reason}. Export is exact or refused: nothing "
            f"was written")

    # -- node kinds (the walk's values are ONNX value names) ---------------------------
    def enter(self, frame: Frame[str]) -> None:
        self.names = frame.values

    def constant(self, frame: Frame[str], node: Node, ins: list[str]) -> list[str]:
        return [self.b.initializer(np.asarray(node.attrs["value"]),
                                   self.b.fresh(f"const_{node.output.name}"))]

    def weight(self, frame: Frame[str], node: Node, ins: list[str]) -> list[str]:
        wname = node.attrs["name"]
        out = self._weights.get(wname, "")
        if not out:
            out = self.b.fresh(wname) if wname in self.port_names else wname
            self.b.initializer(np.asarray(self.program.weights[wname]), out)
            self._weights[wname] = out
        return [out]

    def _refused_node(self, frame: Frame[str], node: Node, ins: list[str]) -> list[str]:
        why = REFUSED_NODES[node.op]
        if node.op == "while" and "trip_dim" in node.attrs:
            why = _STACKING_WHILE
        raise self.refuse(node, frame.index, f"{node.op!r} nodes are not exported: {why}")

    call = cond = while_ = _refused_node

    def scan(self, frame: Frame[str], node: Node, ins: list[str]) -> list[str]:
        counting = _counting(self.program, node)
        if counting is None:
            return self._refused_node(frame, node, ins)
        return self._count(node, *counting)

    def primitive(self, frame: Frame[str], node: Node, ins: list[str]) -> list[str]:
        if node.op in REFUSED:
            raise self.refuse(node, frame.index, REFUSED[node.op])
        dt = (node.inputs[0].dtype.name if node.inputs else node.output.dtype.name)
        reason = REFUSED_DTYPES.get((node.op, dt))
        if reason is not None:
            raise self.refuse(node, frame.index, f"{node.op} on {dt}: {reason}")
        fn = _LOWER.get(node.op)
        if fn is None:
            raise self.refuse(node, frame.index, f"op {node.op!r} has no ONNX lowering")
        if computes_wide(node):
            return [self._widened(node, fn)]
        return [fn(self, node, ins)]


def _int_scalar(v: Value) -> int | None:
    """The value of an int64 0-d constant ``v``, else None."""
    p = v.producer
    if p is None or p.op != "constant" or v.dtype is not D.int64 or v.shape != ():
        return None
    return int(np.asarray(p.attrs["value"]))


def _counting(program: Program, node: Node) -> tuple[int, int] | None:
    """(start, step) when ``node`` is the int64 scan that counts (``arange`` of a symbolic
    size: carry start, each step adds the same constant and emits the carry before it),
    else None."""
    a = node.attrs
    if a.get("num_carries") != 1 or a.get("num_xs") != 1 or a.get("reverse"):
        return None
    body = program.functions.get(a.get("body", ""))
    init, xs = node.inputs
    bc = xs.producer
    if body is None or bc is None or bc.op != "broadcast_to" or len(body.nodes) != 1:
        return None
    start, step = _int_scalar(init), _int_scalar(bc.inputs[0])
    add = body.nodes[0]
    c, x = body.params
    if (start is None or step is None or step == 0 or add.op != "add"
            or {id(v) for v in add.inputs} != {id(c), id(x)} or len(add.inputs) != 2
            or [id(r) for r in body.results] != [id(add.output), id(c)]):
        return None
    return start, step


def _np_dtype(name: str) -> Any:
    return D.as_dtype(name).np


def _wide(v: Value) -> Value:
    return Value(v.name, dataclasses.replace(v.aval, dtype=D.COMPUTE.get(v.dtype, v.dtype)))


# ----------------------------------------------------------------------------- lowerings

def _unary(onnx_op: str) -> Any:
    def lower(L: _Lowering, node: Node, x: list[str]) -> str:
        return L.b.op(onnx_op, x)
    return lower


def _binary(onnx_op: str, bool_op: str | None = None) -> Any:
    def lower(L: _Lowering, node: Node, x: list[str]) -> str:
        if bool_op is not None and node.inputs[0].dtype.name == "bool":
            return L.b.op(bool_op, x)
        return L.b.op(onnx_op, x)
    return lower


@lowering("tanh",
          "float32: Tanh in float64, rounded once; float64: Tanh for |x| < 0.625, 1 - "
          "2/(exp(2|x|) + 1) with x's sign otherwise, x itself for tiny |x| (keeps ONNX Runtime"
          " within 4 ULP)")
def _lower_tanh(L: _Lowering, node: Node, x: list[str]) -> str:
    b, dt = L.b, node.output.dtype.name
    if dt == "float32":
        # float64 Tanh rounded once to float32 is within 1 ULP (ONNX Runtime's float32
        # kernel reaches 4 ULP for small |x| and flushes subnormals)
        wide = b.op("Tanh", [b.op("Cast", x, to=_ONNX_DTYPE["float64"])])
        return b.op("Cast", [wide], to=_ONNX_DTYPE["float32"])
    a = b.op("Abs", x)
    # large |x|: 1 - 2/(e^(2|x|) + 1) is accurate (the subtraction cannot cancel)
    e = b.op("Exp", [b.op("Add", [a, a])])
    big = b.op("Sub", [L.fill(1, dt), b.op("Div", [L.fill(2, dt),
                                                  b.op("Add", [e, L.fill(1, dt)])])])
    big = b.op("Where", [b.op("Less", [x[0], L.fill(0, dt)]), b.op("Neg", [big]), big])
    # tiny |x|: tanh(x) rounds to x (also keeps subnormals, which Tanh may flush)
    tiny_bound = 2.0 ** -27
    mid = b.op("Where", [b.op("Less", [a, L.fill(tiny_bound, dt)]), x[0], b.op("Tanh", x)])
    # from 0.625 on the result is >= 0.55, so the error of the small term stays < 2 ULP
    return b.op("Where", [b.op("Less", [a, L.fill(0.625, dt)]), mid, big])


@lowering("sigmoid", "e = Exp(-|x|); Where(x >= 0, 1/(1+e), e/(1+e)) (no underflow to 0)")
def _lower_sigmoid(L: _Lowering, node: Node, x: list[str]) -> str:
    b, dt = L.b, node.output.dtype.name
    e = b.op("Exp", [b.op("Neg", [b.op("Abs", x)])])
    d = b.op("Add", [e, L.fill(1, dt)])
    pos = b.op("Div", [L.fill(1, dt), d])
    neg = b.op("Div", [e, d])
    return b.op("Where", [b.op("GreaterOrEqual", [x[0], L.fill(0, dt)]), pos, neg])


@lowering("div",
          "Div (float); integers: truncating Div on a zero-free divisor, corrected to floor, x "
          "div 0 = 0, INT_MIN div -1 = INT_MIN")
def _lower_div(L: _Lowering, node: Node, x: list[str]) -> str:
    b, dt = L.b, node.inputs[0].dtype.name
    if dt in ("float32", "float64"):
        return b.op("Div", x)
    lo = np.iinfo(_np_dtype(dt)).min
    zero, one, minus1 = L.fill(0, dt), L.fill(1, dt), L.fill(-1, dt)
    yzero = b.op("Equal", [x[1], zero])
    wrap = b.op("And", [b.op("Equal", [x[0], L.fill(lo, dt)]), b.op("Equal", [x[1], minus1])])
    # a divisor that never traps: 1 where y == 0 (result replaced below) and where
    # INT_MIN / -1 (INT_MIN / 1 = INT_MIN is the wrapped quotient amber defines)
    sy = b.op("Where", [b.op("Or", [yzero, wrap]), one, x[1]])
    q = b.op("Div", [x[0], sy])  # truncates toward zero
    r = b.op("Sub", [x[0], b.op("Mul", [q, sy])])
    adjust = b.op("And", [b.op("Not", [b.op("Equal", [r, zero])]),
                          b.op("Xor", [b.op("Less", [r, zero]), b.op("Less", [sy, zero])])])
    qf = b.op("Sub", [q, b.op("Cast", [adjust], to=_ONNX_DTYPE[dt])])
    return b.op("Where", [yzero, zero, qf])


def _lower_bool_cmp(kind: str) -> Any:
    onnx_op = {"lt": "Less", "le": "LessOrEqual", "gt": "Greater", "ge": "GreaterOrEqual"}[kind]

    def lower(L: _Lowering, node: Node, x: list[str]) -> str:
        b = L.b
        if node.inputs[0].dtype.name != "bool":
            return b.op(onnx_op, x)
        if kind == "lt":
            return b.op("And", [b.op("Not", [x[0]]), x[1]])
        if kind == "le":
            return b.op("Or", [b.op("Not", [x[0]]), x[1]])
        if kind == "gt":
            return b.op("And", [x[0], b.op("Not", [x[1]])])
        return b.op("Or", [x[0], b.op("Not", [x[1]])])
    return lower


@lowering("ne", "Not(Equal)")
def _lower_ne(L: _Lowering, node: Node, x: list[str]) -> str:
    return L.b.op("Not", [L.b.op("Equal", x)])


@lowering("where", "Where; bool data: Or(And(c, x), And(Not(c), y))")
def _lower_where(L: _Lowering, node: Node, x: list[str]) -> str:
    b = L.b
    if node.output.dtype.name != "bool":
        return b.op("Where", x)
    return b.op("Or", [b.op("And", [x[0], x[1]]), b.op("And", [b.op("Not", [x[0]]), x[2]])])


@lowering("cast",
          "Cast, with NaN -> 0 and saturation made explicit for float -> int, and x != 0 for ->"
          " bool")
def _lower_cast(L: _Lowering, node: Node, x: list[str]) -> str:
    b = L.b
    src, dst = node.inputs[0].dtype.name, node.attrs["dtype"]
    dst = dst if isinstance(dst, str) else dst.name
    if src == dst:
        return b.op("Identity", x)
    if dst == "bool":
        if src == "bool":
            return b.op("Identity", x)
        return b.op("Not", [b.op("Equal", [x[0], L.fill(0, src)])])
    if src in ("float16", "bfloat16"):  # exactly float32 first (docs/opset.md 3.5)
        x = [b.op("Cast", x, to=_ONNX_DTYPE["float32"])]
        src = "float32"
        if dst == src:
            return x[0]
    if dst in ("float16", "bfloat16") and src not in ("float32", "bool"):
        x = [b.op("Cast", x, to=_ONNX_DTYPE["float32"])]  # rounded to float32 first
        src = "float32"
    if src in ("float32", "float64") and dst in ("int8", "uint8", "int16"):
        # their limits are exact floats: clamp, then a Cast in range truncates
        info = np.iinfo(_np_dtype(dst))
        safe = b.op("Where", [b.op("IsNaN", x), L.fill(0, src), x[0]])
        safe = b.op("Max", [b.op("Min", [safe, L.fill(float(info.max), src)]),
                            L.fill(float(info.min), src)])
        return b.op("Cast", [safe], to=_ONNX_DTYPE[dst])
    if src in ("float32", "float64") and D.as_dtype(dst).is_integer:
        info = np.iinfo(_np_dtype(dst))
        hi = b.op("GreaterOrEqual", [x[0], L.fill(float(info.max), src)])
        lo = b.op("LessOrEqual", [x[0], L.fill(float(info.min), src)])
        bad = b.op("Or", [b.op("Or", [hi, lo]), b.op("IsNaN", x)])
        safe = b.op("Where", [bad, L.fill(0, src), x[0]])
        c = b.op("Cast", [safe], to=_ONNX_DTYPE[dst])  # in range: truncation toward zero
        c = b.op("Where", [lo, L.fill(info.min, dst), c])
        return b.op("Where", [hi, L.fill(info.max, dst), c])
    return b.op("Cast", x, to=_ONNX_DTYPE[dst])


def _conv_attrs(node: Node) -> dict[str, Any]:
    a = node.attrs
    pt, pb, pl, pr = (int(v) for v in a["padding"])
    return {"strides": [int(v) for v in a["stride"]], "pads": [pt, pl, pb, pr],
            "dilations": [int(v) for v in a["dilation"]], "group": int(a["groups"])}


def _static(d: Any) -> bool:
    return not isinstance(d, DimExpr)


def _im2col(L: _Lowering, node: Node, x: str, kh: int, kw: int, oh: Any, ow: Any) -> str:
    """``(N, C, H, W) -> (N, C, KH*KW, OH, OW)``: for every kernel position ``(p, q)`` the
    strided window of the zero-padded input ``xp[.., i*sh + p*dh, j*sw + q*dw]``."""
    b, a = L.b, node.attrs
    pt, pb, pl, pr = (int(v) for v in a["padding"])
    (sh, sw), (dh, dw) = ((int(v) for v in a["stride"]), (int(v) for v in a["dilation"]))
    src = x
    if pt or pb or pl or pr:
        src = b.op("Pad", [x, b.const(np.array([0, 0, pt, pl, 0, 0, pb, pr], dtype=np.int64))])
    axes = b.const(np.array([2, 3], dtype=np.int64))
    steps = b.const(np.array([sh, sw], dtype=np.int64))
    at2 = b.const(np.array([2], dtype=np.int64))
    parts = []
    for p in range(kh):
        for q in range(kw):
            starts = [p * dh, q * dw]
            ends = [p * dh + sh * (oh - 1) + 1, q * dw + sw * (ow - 1) + 1]
            t = b.op("Slice", [src, L.shape1(starts), L.shape1(ends), axes, steps])
            parts.append(b.op("Unsqueeze", [t, at2]))
    return parts[0] if len(parts) == 1 else b.op("Concat", parts, axis=2)


def _conv2d_matmul(L: _Lowering, node: Node, x: list[str]) -> str:
    """conv2d as im2col and one batched MatMul (float64, which ONNX Runtime's Conv
    lacks)."""
    xv, wv = node.inputs
    n = xv.shape[0]
    o, cg, kh, kw = (int(v) for v in wv.shape)
    oh, ow = node.output.shape[2], node.output.shape[3]
    groups = int(node.attrs["groups"])
    cols = L.reshape(_im2col(L, node, x[0], kh, kw, oh, ow),
                     [n, groups, cg * kh * kw, oh * ow])
    wm = L.reshape(x[1], [groups, o // groups, cg * kh * kw])
    return L.reshape(L.b.op("MatMul", [wm, cols]), [n, o, oh, ow])


def _conv2d_weight_grad_matmul(L: _Lowering, node: Node, x: list[str]) -> str:
    """conv2d_weight_grad as im2col, a batched MatMul and a sum over the batch."""
    b = L.b
    xv, gv = node.inputs
    n, c = xv.shape[0], xv.shape[1]
    o, oh, ow = int(gv.shape[1]), gv.shape[2], gv.shape[3]
    groups = int(node.attrs["groups"])
    kh, kw = (int(v) for v in node.attrs["kernel_hw"])
    cg = c // groups
    cols = L.reshape(_im2col(L, node, x[0], kh, kw, oh, ow),
                     [n, groups, cg * kh * kw, oh * ow])
    gm = L.reshape(x[1], [n, groups, o // groups, oh * ow])
    prod = b.op("MatMul", [gm, b.op("Transpose", [cols], perm=[0, 1, 3, 2])])
    total = b.op("ReduceSum", [prod, b.const(np.array([0], dtype=np.int64))], keepdims=0)
    return L.reshape(total, [o, cg, kh, kw])


def _conv2d_input_grad_matmul(L: _Lowering, node: Node, x: list[str]) -> str:
    """conv2d_input_grad as a batched MatMul (col2im columns) whose ``KH*KW`` slices are
    dilated by the stride, placed at their kernel offsets, summed and cut to (H, W)."""
    b, a = L.b, node.attrs
    gv, wv = node.inputs
    n, o, oh, ow = gv.shape[0], int(gv.shape[1]), gv.shape[2], gv.shape[3]
    _, cg, kh, kw = (int(v) for v in wv.shape)
    groups = int(a["groups"])
    h, wd = a["input_hw"]
    pt, pb, pl, pr = (int(v) for v in a["padding"])
    (sh, sw), (dh, dw) = ((int(v) for v in a["stride"]), (int(v) for v in a["dilation"]))
    c, kk = cg * groups, kh * kw
    zero = L.fill(0, gv.dtype.name)
    gm = L.reshape(x[0], [n, groups, o // groups, oh * ow])
    wt = b.op("Transpose", [L.reshape(x[1], [groups, o // groups, cg * kk])], perm=[0, 2, 1])
    cols = L.reshape(b.op("MatMul", [wt, gm]), [n, c, kk, oh, ow])
    cols, shape = _interleave(L, cols, [n, c, kk, oh, ow], 3, sh - 1, zero)
    cols, shape = _interleave(L, cols, shape, 4, sw - 1, zero)
    span_h, span_w = shape[3], shape[4]
    hp, wp = h + pt + pb, wd + pl + pr
    at2 = b.const(np.array([2], dtype=np.int64))
    parts = []
    for p in range(kh):
        for q in range(kw):
            k = p * kw + q
            part = b.op("Slice", [cols, b.const(np.array([k], dtype=np.int64)),
                                  b.const(np.array([k + 1], dtype=np.int64)), at2])
            pads = L.shape1([0, 0, 0, p * dh, q * dw,
                             0, 0, 0, hp - p * dh - span_h, wp - q * dw - span_w])
            parts.append(b.op("Pad", [part, pads, zero]))
    total = parts[0] if len(parts) == 1 else b.op("Sum", parts)
    total = b.op("Slice", [total, L.shape1([pt, pl]), L.shape1([pt + h, pl + wd]),
                           b.const(np.array([3, 4], dtype=np.int64))])
    return L.reshape(total, [n, c, h, wd])


@lowering("conv2d", "Conv (float32); float64: im2col (Slice per kernel position) and MatMul")
def _lower_conv2d(L: _Lowering, node: Node, x: list[str]) -> str:
    if node.inputs[0].dtype.name == "float64":
        return _conv2d_matmul(L, node, x)
    kh, kw = node.inputs[1].shape[2], node.inputs[1].shape[3]
    return L.b.op("Conv", x, kernel_shape=[int(kh), int(kw)], **_conv_attrs(node))


@lowering("conv2d_input_grad",
          "ConvTranspose with output_padding (float32); float64: MatMul, then the columns "
          "dilated, placed per kernel position and summed")
def _lower_conv2d_input_grad(L: _Lowering, node: Node, x: list[str]) -> str:
    if node.inputs[0].dtype.name == "float64":
        return _conv2d_input_grad_matmul(L, node, x)
    b, a = L.b, node.attrs
    g, w = node.inputs
    h, wd = a["input_hw"]
    (sh, sw), (dh, dw) = a["stride"], a["dilation"]
    pt, pb, pl, pr = a["padding"]
    kh, kw = int(w.shape[2]), int(w.shape[3])
    oh, ow = g.shape[2], g.shape[3]
    attrs = _conv_attrs(node)
    if all(_static(v) for v in (h, wd, oh, ow)):
        # the transposed conv covers sh*(OH-1) + dh*(KH-1) + 1 - pt - pb rows; output
        # padding (always < stride) extends it to exactly H; rows no window reads are 0
        oph = int(h) - (sh * (int(oh) - 1) + dh * (kh - 1) + 1 - pt - pb)
        opw = int(wd) - (sw * (int(ow) - 1) + dw * (kw - 1) + 1 - pl - pr)
        return b.op("ConvTranspose", x, kernel_shape=[kh, kw], output_padding=[oph, opw],
                    **attrs)
    # symbolic sizes: no end padding, then cut to (H, W) and zero-fill what is missing
    attrs["pads"] = [int(pt), int(pl), 0, 0]
    y = b.op("ConvTranspose", x, kernel_shape=[kh, kw], **attrs)
    hw = b.op("Concat", [L.dim1(h), L.dim1(wd)], "shape", axis=0)
    y = b.op("Slice", [y, b.const(np.zeros(2, dtype=np.int64)), hw,
                       b.const(np.array([2, 3], dtype=np.int64))])
    have = b.op("Shape", [y], start=2, end=4)
    missing = b.op("Max", [b.op("Sub", [hw, have]), b.const(np.zeros(2, dtype=np.int64))])
    pads = b.op("Concat", [b.const(np.zeros(2, dtype=np.int64)), missing], axis=0)
    return b.op("Pad", [y, pads, L.fill(0, g.dtype.name),
                        b.const(np.array([2, 3], dtype=np.int64))])


@lowering("conv2d_weight_grad",
          "Conv with batch and channels exchanged (float32, static output size); otherwise "
          "im2col, MatMul and a sum over the batch")
def _lower_conv2d_weight_grad(L: _Lowering, node: Node, x: list[str]) -> str:
    b, a = L.b, node.attrs
    xv, gv = node.inputs
    n, c, h, wd = xv.shape
    oh, ow = gv.shape[2], gv.shape[3]
    if xv.dtype.name == "float64" or not (_static(oh) and _static(ow)):
        # no float64 Conv kernel; and a symbolic output size cannot be a kernel_shape
        return _conv2d_weight_grad_matmul(L, node, x)
    groups = int(a["groups"])
    kh, kw = (int(v) for v in a["kernel_hw"])
    cg = c // groups
    # X'[cg, G*N, H, W] with X'[k, gi*N + n] = x[n, gi*Cg + k]; W'[O, N, OH, OW] = g^T
    xr = L.reshape(x[0], [n, groups, cg, h, wd])
    xr = b.op("Transpose", [xr], perm=[2, 1, 0, 3, 4])
    xr = L.reshape(xr, [cg, groups * n, h, wd])
    gt = b.op("Transpose", [x[1]], perm=[1, 0, 2, 3])
    pt, pb, pl, pr = (int(v) for v in a["padding"])
    y = b.op("Conv", [xr, gt], kernel_shape=[int(oh), int(ow)],
             strides=[int(v) for v in a["dilation"]], dilations=[int(v) for v in a["stride"]],
             pads=[pt, pl, pb, pr], group=groups)
    # y: [Cg, O, >=KH, >=KW] -> [O, Cg, KH, KW]
    y = b.op("Slice", [y, b.const(np.zeros(2, dtype=np.int64)),
                       b.const(np.array([kh, kw], dtype=np.int64)),
                       b.const(np.array([2, 3], dtype=np.int64))])
    return b.op("Transpose", [y], perm=[1, 0, 2, 3])


def _axes(node: Node, key: str = "axes") -> list[int]:
    return [int(v) for v in node.attrs[key]]


@lowering("sum",
          "ReduceSum (floats); integers: MatMul with a column of ones, which wraps (ONNX "
          "Runtime's integer ReduceSum saturates); axes = [] is the identity")
def _lower_sum(L: _Lowering, node: Node, x: list[str]) -> str:
    axes = _axes(node)
    b = L.b
    if not axes:
        return b.op("Identity", x)
    keep = bool(node.attrs["keepdims"])
    dt = node.inputs[0].dtype.name
    if dt in ("float32", "float64"):
        return b.op("ReduceSum", [x[0], b.const(np.array(axes, dtype=np.int64))],
                    keepdims=int(keep))
    # Integers must wrap, and ONNX Runtime's integer ReduceSum saturates on overflow:
    # sum as a product with a column of ones instead (integer MatMul wraps).
    shape = list(node.inputs[0].shape)
    kept = [i for i in range(len(shape)) if i not in axes]
    m: Any = 1
    k: Any = 1
    for i in kept:
        m = m * shape[i]
    for i in axes:
        k = k * shape[i]
    t = x[0]
    if kept + axes != list(range(len(shape))):
        t = b.op("Transpose", [t], perm=kept + axes)
    t = L.reshape(t, [m, k])
    if _static(k):
        ones = b.const(np.ones((int(k), 1), dtype=_np_dtype(dt)))
    else:
        ones = b.op("Expand", [b.const(np.ones((1, 1), dtype=_np_dtype(dt))),
                               L.shape1([k, 1])])
    t = b.op("MatMul", [t, ones])
    out = [1 if i in axes else d for i, d in enumerate(shape)] if keep else \
        [shape[i] for i in kept]
    return L.reshape(t, out)


def _lower_extremum(onnx_op: str) -> Any:
    def lower(L: _Lowering, node: Node, x: list[str]) -> str:
        b = L.b
        axes = _axes(node)
        if not axes:
            return b.op("Identity", x)
        keep = int(bool(node.attrs["keepdims"]))
        ax = b.const(np.array(axes, dtype=np.int64))
        r = b.op(onnx_op, [x[0], ax], keepdims=keep)
        dt = node.inputs[0].dtype.name
        if dt not in ("float32", "float64"):
            return r
        any_nan = b.op("ReduceMax", [b.op("IsNaN", x), ax], keepdims=keep)
        return b.op("Where", [any_nan, L.fill(np.nan, dt), r])
    return lower


def _lower_arg(onnx_op: str) -> Any:
    def lower(L: _Lowering, node: Node, x: list[str]) -> str:
        b = L.b
        axis, keep = int(node.attrs["axis"]), int(bool(node.attrs["keepdims"]))
        dt = node.inputs[0].dtype.name
        src = x[0]
        if dt == "bool":
            src = b.op("Cast", [src], to=_ONNX_DTYPE["int32"])
        r = b.op(onnx_op, [src], axis=axis, keepdims=keep, select_last_index=0)
        if dt not in ("float32", "float64"):
            return r
        nan = b.op("IsNaN", x)
        first_nan = b.op("ArgMax", [b.op("Cast", [nan], to=_ONNX_DTYPE["int32"])],
                         axis=axis, keepdims=keep, select_last_index=0)
        any_nan = b.op("ReduceMax", [nan, b.const(np.array([axis], dtype=np.int64))],
                       keepdims=keep)
        return b.op("Where", [any_nan, first_nan, r])
    return lower


@lowering("reshape", "Reshape (allowzero=1; symbolic sizes computed from the input shapes)")
def _lower_reshape(L: _Lowering, node: Node, x: list[str]) -> str:
    return L.reshape(x[0], list(node.attrs["shape"]))


@lowering("transpose", "Transpose")
def _lower_transpose(L: _Lowering, node: Node, x: list[str]) -> str:
    return L.b.op("Transpose", x, perm=[int(p) for p in node.attrs["perm"]])


@lowering("broadcast_to", "Expand")
def _lower_broadcast_to(L: _Lowering, node: Node, x: list[str]) -> str:
    return L.b.op("Expand", [x[0], L.shape1(list(node.attrs["shape"]))])


@lowering("slice", "Slice")
def _lower_slice(L: _Lowering, node: Node, x: list[str]) -> str:
    b = L.b
    shape = node.inputs[0].shape
    axes, starts, stops, steps = [], [], [], []
    for d, (a, e, s) in enumerate(zip(node.attrs["starts"], node.attrs["stops"],
                                      node.attrs["steps"])):
        full = dim_equal(e, shape[d])
        if dim_equal(a, 0) and full and int(s) == 1:
            continue
        axes.append(d)
        starts.append(a)
        stops.append(INT64_MAX if full else e)  # Slice clamps the end to the size
        steps.append(int(s))
    if not axes:
        return b.op("Identity", x)
    return b.op("Slice", [x[0], L.shape1(starts), L.shape1(stops),
                          b.const(np.array(axes, dtype=np.int64)),
                          b.const(np.array(steps, dtype=np.int64))])


def _interleave(L: _Lowering, x: str, shape: list[Any], d: int, i: int, fill: str
                ) -> tuple[str, list[Any]]:
    """Insert ``i`` elements of ``fill`` between neighbours along dim ``d`` of ``x``
    (shape ``shape``): ``[.., n, ..] -> [.., n, 1, ..]``, pad ``i`` after on the new axis,
    merge to ``[.., n*(i+1), ..]`` and drop the last ``i``. Returns the new name and
    shape."""
    n = shape[d]
    if i == 0 or (_static(n) and int(n) <= 1):
        return x, shape
    b = L.b
    rank = len(shape)
    t = L.reshape(x, shape[:d + 1] + [1] + shape[d + 1:])
    pads = [0] * (2 * (rank + 1))
    pads[rank + 1 + d + 1] = i
    t = b.op("Pad", [t, b.const(np.array(pads, dtype=np.int64)), fill])
    t = L.reshape(t, shape[:d] + [n * (i + 1)] + shape[d + 1:])
    t = b.op("Slice", [t, b.const(np.array([0], dtype=np.int64)), L.dim1(n * (i + 1) - i),
                       b.const(np.array([d], dtype=np.int64))])
    out = list(shape)
    out[d] = n + (n - 1) * i
    return t, out


@lowering("pad", "Pad (constant), interior padding by interleaving")
def _lower_pad(L: _Lowering, node: Node, x: list[str]) -> str:
    from ..ops.elementwise import cast as _cast

    b = L.b
    dt = node.inputs[0].dtype.name
    fill_value = _cast.impl(np.array(float(node.attrs["value"]), dtype=np.float64), dtype=dt)
    fill = b.const(np.asarray(fill_value, dtype=_np_dtype(dt)))
    cur = x[0]
    shape = list(node.inputs[0].shape)
    for d, inner in enumerate(node.attrs["interior"]):
        cur, shape = _interleave(L, cur, shape, d, int(inner), fill)
    lo = [int(v) for v in node.attrs["lo"]]
    hi = [int(v) for v in node.attrs["hi"]]
    if not any(lo) and not any(hi):
        return cur if cur != x[0] else b.op("Identity", x)
    return b.op("Pad", [cur, b.const(np.array(lo + hi, dtype=np.int64)), fill])


@lowering("concat", "Concat")
def _lower_concat(L: _Lowering, node: Node, x: list[str]) -> str:
    return L.b.op("Concat", x, axis=int(node.attrs["axis"]))


@lowering("take", "Gather (negative indices count from the end; out of range is an error)")
def _lower_take(L: _Lowering, node: Node, x: list[str]) -> str:
    return L.b.op("Gather", x, axis=int(node.attrs["axis"]))


@lowering("scatter_add", "ScatterElements(reduction='add') on a broadcast index")
def _lower_scatter_add(L: _Lowering, node: Node, x: list[str]) -> str:
    b = L.b
    base, idx, _src = node.inputs
    axis = int(node.attrs["axis"])
    k: Any = 1
    for d in idx.shape:
        k = k * d
    r = len(base.shape)
    src_shape = list(base.shape[:axis]) + [k] + list(base.shape[axis + 1:])
    src = L.reshape(x[2], src_shape)
    ind = L.reshape(x[1], [1] * axis + [k] + [1] * (r - axis - 1))
    ind = b.op("Expand", [ind, L.shape1(src_shape)])
    return b.op("ScatterElements", [x[0], ind, src], axis=axis, reduction="add")


def _pool_attrs(node: Node) -> dict[str, Any] | None:
    """MaxPool/AveragePool attributes, with ceil_mode as explicit end padding (ONNX shape
    inference does not know that no window may start in the end padding); None when ONNX
    Runtime would refuse the padding (not smaller than the kernel)."""
    a = node.attrs
    k = [int(v) for v in a["kernel_hw"]]
    st = [int(v) for v in a["stride"]]
    dil = [int(v) for v in a.get("dilation", (1, 1))]
    pt, pb, pl, pr = (int(v) for v in a["padding"])
    ends = [pb, pr]
    if a["ceil_mode"]:
        x_hw, out_hw = node.inputs[0].shape[2:], node.output.shape[2:]
        for i, lo in enumerate((pt, pl)):
            need = (int(out_hw[i]) - 1) * st[i] + dil[i] * (k[i] - 1) + 1
            ends[i] = max(ends[i], need - int(x_hw[i]) - lo)
    pads = [pt, pl, ends[0], ends[1]]
    if any(p >= k[i % 2] for i, p in enumerate(pads)):
        return None
    out = {"kernel_shape": k, "strides": st, "pads": pads}
    if "dilation" in a:
        out["dilations"] = dil
    return out


def _pool_windows(L: _Lowering, node: Node, x: str, value: float) -> list[str]:
    """The KH*KW strided windows (N, C, OH, OW) of x padded with ``value``, row major."""
    b, a = L.b, node.attrs
    (kh, kw), (sh, sw) = ((int(v) for v in a["kernel_hw"]), (int(v) for v in a["stride"]))
    dh, dw = (int(v) for v in a.get("dilation", (1, 1)))
    pt, _, pl, _ = (int(v) for v in a["padding"])
    h, w = node.inputs[0].shape[2:]
    oh, ow = node.inputs[1].shape[2:] if node.op == "max_pool2d_grad" else node.output.shape[2:]
    hi_h = max((int(oh) - 1) * sh + dh * (kh - 1) + 1 - int(h) - pt, 0)
    hi_w = max((int(ow) - 1) * sw + dw * (kw - 1) + 1 - int(w) - pl, 0)
    dt = node.inputs[0].dtype.name
    xp = b.op("Pad", [x, L.shape1([0, 0, pt, pl, 0, 0, hi_h, hi_w]), L.fill(value, dt)])
    axes, steps = L.shape1([2, 3]), L.shape1([sh, sw])
    return [b.op("Slice", [xp, L.shape1([p * dh, q * dw]),
                           L.shape1([p * dh + sh * (int(oh) - 1) + 1,
                                     q * dw + sw * (int(ow) - 1) + 1]), axes, steps])
            for p in range(kh) for q in range(kw)]


def _pool_place(L: _Lowering, node: Node, parts: list[str]) -> str:
    """dx of the pooling transposes: part k (N, C, OH, OW) holds what window position k
    adds; each is dilated by the stride, placed at its offset, summed, cut to (H, W)."""
    b, a = L.b, node.attrs
    y = node.inputs[-1]  # g
    n, c, oh, ow = y.shape
    out = node.output
    h, w = int(out.shape[2]), int(out.shape[3])
    (kh, kw), (sh, sw) = ((int(v) for v in a["kernel_hw"]), (int(v) for v in a["stride"]))
    dh, dw = (int(v) for v in a.get("dilation", (1, 1)))
    pt, _, pl, _ = (int(v) for v in a["padding"])
    zero = L.fill(0, y.dtype.name)
    span_h, span_w = sh * (int(oh) - 1) + 1, sw * (int(ow) - 1) + 1
    hp = max(h + pt, dh * (kh - 1) + span_h)
    wp = max(w + pl, dw * (kw - 1) + span_w)
    placed = []
    for k, part in enumerate(parts):
        p, q = divmod(k, kw)
        t, shape = _interleave(L, part, [n, c, oh, ow], 2, sh - 1, zero)
        t, shape = _interleave(L, t, shape, 3, sw - 1, zero)
        pads = L.shape1([0, 0, p * dh, q * dw, 0, 0, hp - p * dh - span_h,
                         wp - q * dw - span_w])
        placed.append(b.op("Pad", [t, pads, zero]))
    total = placed[0] if len(placed) == 1 else b.op("Sum", placed)
    return b.op("Slice", [total, L.shape1([pt, pl]), L.shape1([pt + h, pl + w]),
                          L.shape1([2, 3])])


@lowering("max_pool2d",
          "MaxPool, and NaN where a second MaxPool of IsNaN(x) finds one (ONNX Runtime's "
          "MaxPool drops NaN)")
def _lower_max_pool2d(L: _Lowering, node: Node, x: list[str]) -> str:
    b = L.b
    dt = node.inputs[0].dtype.name
    attrs = _pool_attrs(node)
    if attrs is None:  # padding MaxPool refuses: the maximum of the windows
        views = _pool_windows(L, node, x[0], -np.inf)
        return views[0] if len(views) == 1 else b.op("Max", views)  # Max propagates NaN
    y = b.op("MaxPool", x, **attrs)
    # ONNX Runtime's MaxPool drops NaN; a window holding one must give NaN
    nan = b.op("Cast", [b.op("IsNaN", x)], to=_ONNX_DTYPE[dt])
    has_nan = b.op("Greater", [b.op("MaxPool", [nan], **attrs), L.fill(0, dt)])
    return b.op("Where", [has_nan, L.fill(np.nan, dt), y])


@lowering("max_pool2d_grad",
          "the windows (Pad with -inf, Slice per kernel position), the first maximum of each "
          "selected with Equal/IsNaN/And, the cotangent placed back per position (interleave, "
          "Pad) and summed (static sizes)")
def _lower_max_pool2d_grad(L: _Lowering, node: Node, x: list[str]) -> str:
    b = L.b
    if not all(_static(d) for d in node.inputs[1].shape[2:]):
        raise L.refuse(node, 0, "max_pool2d_grad needs static spatial sizes in ONNX")
    dt = node.inputs[0].dtype.name
    views = _pool_windows(L, node, x[0], -np.inf)
    m = views[0] if len(views) == 1 else b.op("Max", views)  # Max propagates NaN
    zero = L.fill(0, dt)
    taken = None
    parts = []
    for v in views:
        hit = b.op("Or", [b.op("Equal", [v, m]), b.op("IsNaN", [v])])
        first = hit if taken is None else b.op("And", [hit, b.op("Not", [taken])])
        taken = hit if taken is None else b.op("Or", [taken, hit])
        parts.append(b.op("Where", [first, x[1], zero]))
    return _pool_place(L, node, parts)


def _pool_divisors(node: Node, x_hw: Any, count_include_pad: bool) -> np.ndarray:
    from ..ops.pool import _divisors

    a = node.attrs
    out_hw = node.output.shape[2:] if node.op == "avg_pool2d" else node.inputs[0].shape[2:]
    return _divisors(tuple(int(v) for v in x_hw), a["kernel_hw"], a["stride"], a["padding"],
                     tuple(int(v) for v in out_hw), count_include_pad)


@lowering("avg_pool2d",
          "AveragePool (float32; count_include_pad with ceil_mode: the excluding divisor "
          "rescaled); float64: window Slices summed, divided by the divisors")
def _lower_avg_pool2d(L: _Lowering, node: Node, x: list[str]) -> str:
    b, a = L.b, node.attrs
    dt = node.inputs[0].dtype.name
    include = bool(a["count_include_pad"])
    static = all(_static(d) for d in node.inputs[0].shape[2:])
    attrs = _pool_attrs(node)
    if dt == "float64" or attrs is None:
        # no float64 AveragePool in ONNX Runtime (or padding it refuses): window sum / divisor
        if not static:
            raise L.refuse(node, 0, "avg_pool2d needs static spatial sizes here in ONNX")
        views = _pool_windows(L, node, x[0], 0.0)
        total = views[0] if len(views) == 1 else b.op("Sum", views)
        div = _pool_divisors(node, node.inputs[0].shape[2:], include)
        return b.op("Div", [total, b.const(div.astype(_np_dtype(dt)))])
    if include and not a["ceil_mode"]:  # windows never pass the padding: ONNX's divisor
        return b.op("AveragePool", x, count_include_pad=1, **attrs)
    y = b.op("AveragePool", x, count_include_pad=0, **attrs)
    if not include:
        return y
    hw = node.inputs[0].shape[2:]
    ratio = _pool_divisors(node, hw, False) / _pool_divisors(node, hw, True)
    return b.op("Mul", [y, b.const(ratio.astype(np.float32))])


@lowering("avg_pool2d_grad",
          "cotangent divided by the divisors, placed back per kernel position (interleave, Pad)"
          " and summed (static sizes)")
def _lower_avg_pool2d_grad(L: _Lowering, node: Node, x: list[str]) -> str:
    b, a = L.b, node.attrs
    if not all(_static(d) for d in node.inputs[0].shape[2:]):
        raise L.refuse(node, 0, "avg_pool2d_grad needs static spatial sizes in ONNX")
    dt = node.inputs[0].dtype.name
    div = _pool_divisors(node, a["input_hw"], bool(a["count_include_pad"]))
    gd = b.op("Div", [x[0], b.const(div.astype(_np_dtype(dt)))])
    kh, kw = (int(v) for v in a["kernel_hw"])
    return _pool_place(L, node, [gd] * (kh * kw))


@lowering("dim_value", "the dim expression computed from the input shapes")
def _lower_dim_value(L: _Lowering, node: Node, x: list[str]) -> str:
    v = node.attrs["value"]
    if _static(v):
        return L.b.const(np.array(int(v), dtype=np.int64))
    return L.b.op("Reshape", [L.dim1(v), L.b.const(np.zeros((0,), dtype=np.int64))])


for _name, _how, _fn in (
    ("maximum", "Max (NaN propagates); bool: Or", _binary("Max", "Or")),
    ("minimum", "Min (NaN propagates); bool: And", _binary("Min", "And")),
    ("lt", "Less; bool: And(Not(x), y)", _lower_bool_cmp("lt")),
    ("le", "LessOrEqual; bool: Or(Not(x), y)", _lower_bool_cmp("le")),
    ("gt", "Greater; bool: And(x, Not(y))", _lower_bool_cmp("gt")),
    ("ge", "GreaterOrEqual; bool: Or(x, Not(y))", _lower_bool_cmp("ge")),
    ("max", "ReduceMax, NaN if any reduced element is NaN", _lower_extremum("ReduceMax")),
    ("min", "ReduceMin, NaN if any reduced element is NaN", _lower_extremum("ReduceMin")),
    ("argmax", "ArgMax (first index), index of the first NaN if any", _lower_arg("ArgMax")),
    ("argmin", "ArgMin (first index), index of the first NaN if any", _lower_arg("ArgMin")),
):
    lowering(_name, _how)(_fn)
for _prim in REGISTRY.values():  # one ONNX operator each, declared on the primitive
    if _prim.onnx is not None:
        lowering(_prim.name, _prim.onnx)(_unary(_prim.onnx))


# ----------------------------------------------------------------------------- public API

def _as_program(program_or_path: Any) -> Program:
    if isinstance(program_or_path, Program):
        return program_or_path
    prog = getattr(program_or_path, "program", None)  # an am.Model
    if isinstance(prog, Program):
        return prog
    if isinstance(program_or_path, (str, os.PathLike, bytes, bytearray)):
        from ..model import load

        if isinstance(program_or_path, bytearray):
            program_or_path = bytes(program_or_path)
        return load(program_or_path).program
    raise TypeError(f"am.onnx.export: expected an amber Program, Model, or the path of a "
                    f".amber file, got {type(program_or_path).__name__}")


def _value_info(onnx: Any, name: str, dtype: str, shape: Sequence[Any]) -> Any:
    dims = [int(d) if _static(d) else format_dim(d) for d in shape]
    return onnx.helper.make_tensor_value_info(name, _ONNX_DTYPE[dtype], dims)


def _refuse_data_dependent(entry: str, ep: Any, fn: Any) -> None:
    """An output whose size a loop's trip count decides (opset 5) would need ONNX Loop
    with scan outputs: refuse it by name before anything else."""
    dd = data_dependent_symbols(fn)
    for port in ep.outputs:
        syms = sorted({s for d in port.shape if isinstance(d, DimExpr) for s in d.symbols}
                      & dd)
        if syms:
            raise OnnxExportError(
                f"onnx export of {entry!r}: output {port.name!r} is {format_type(port.aval)}, "
                f"a size ({', '.join(syms)}) that a loop's trip count decides at run time; "
                f"the exporter converts straight-line programs only (this needs ONNX Loop "
                f"with scan outputs). Export is exact or refused: nothing was written")


def to_onnx(program_or_path: Any, entry: str = "forward", opset: int = DEFAULT_OPSET
            ) -> onnx.ModelProto:
    """Convert entry point ``entry`` of an amber program (a :class:`~amber.Program`, an
    ``am.Model`` or the path of a ``.amber`` file) to an ONNX ``ModelProto``.

    Raises:
        OnnxExportError: a node cannot be exported exactly (names the node and why).
        OnnxUnavailableError: the ``onnx`` extra is not installed.
    """
    onnx = _import_onnx()
    newest = int(onnx.defs.onnx_opset_version())
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise OnnxExportError(f"onnx export: opset {opset!r} is not supported; choose "
                              f"{MIN_OPSET}..{newest}")
    program = _as_program(program_or_path)
    ep = program.entry(entry)
    fn = program.functions[ep.function]
    _refuse_data_dependent(entry, ep, fn)
    reserved = [p.name for p in ep.inputs] + [p.name for p in ep.outputs] + \
        list(program.weights)
    if len(set(p.name for p in ep.inputs) | set(p.name for p in ep.outputs)) != \
            len(ep.inputs) + len(ep.outputs):
        raise OnnxExportError(f"onnx export of {entry!r}: input and output names must be "
                              f"distinct, got {[p.name for p in ep.inputs]} -> "
                              f"{[p.name for p in ep.outputs]}")
    b = _Builder(onnx, reserved)
    sources: dict[str, tuple[str, int]] = {}
    for port in ep.inputs:
        for i, d in enumerate(port.shape):
            if isinstance(d, DimExpr) and d.is_symbol() and d.name not in sources:
                sources[d.name] = (port.name, i)
    L = _Lowering(program, fn, b, sources)
    L.port_names = {p.name for p in ep.inputs} | {p.name for p in ep.outputs}
    results = L.walk(fn, [port.name for port in ep.inputs], None, 0)
    for port, out in zip(ep.outputs, results):
        b.op_to("Identity", [out], port.name)
    graph = onnx.helper.make_graph(
        b.nodes, f"amber_{entry}",
        [_value_info(onnx, p.name, p.dtype.name, p.shape) for p in ep.inputs],
        [_value_info(onnx, p.name, p.dtype.name, p.shape) for p in ep.outputs],
        initializer=b.initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    from .. import __version__

    model = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="amber",
                                   producer_version=__version__,
                                   doc_string=f"amber entry point {entry!r}, opset "
                                              f"{program.opset_version}")
    model.ir_version = onnx.helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(model)
    return model


def export(program_or_path: Any, path: str | os.PathLike[str] | None, entry: str = "forward",
           opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Export entry point ``entry`` of ``program_or_path`` (a Program, an ``am.Model`` or
    a ``.amber`` path) as an ONNX model written to ``path`` (skipped if ``None``), and
    return the ``ModelProto``. Weights become initializers; symbolic dims become named
    ``dim_param`` s. See the module docstring for the exactness rule.

    Raises:
        OnnxExportError: some node cannot be exported exactly (nothing is written).
        OnnxUnavailableError: the ``onnx`` extra is not installed.
    """
    model = to_onnx(program_or_path, entry=entry, opset=opset)
    if path is not None:
        with open(os.fspath(path), "wb") as f:
            f.write(model.SerializeToString())
    return model


__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "REFUSED",
    "REFUSED_DTYPES",
    "REFUSED_NODES",
    "SUPPORTED",
    "OnnxExportError",
    "OnnxUnavailableError",
    "export",
    "to_onnx",
]
