"""Running an ONNX graph on amber tensors: the op table, the per-node context and the
graph walker the importer traces.

Every ONNX value becomes one of
* a :class:`~amber.Tensor`: concrete (known while importing, so ops on it fold) or a
  tracer (computed by the program);
* a :class:`Sym`: a small int64 tensor of shape data some of whose elements are
  symbolic dims (``Shape`` of an input with a ``dim_param``). Shape arithmetic on it
  stays symbolic, so ``Shape -> Gather -> Concat -> Reshape`` becomes a ``reshape`` to
  a dim expression; anything else turns it into a tensor (``dim_value`` nodes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _dtype as D
from ..capture.dims import DimExpr
from ..errors import AmberError, CaptureError, UnsupportedError
from ..tensor import Tensor

ONNX_DTYPES: dict[int, D.DType] = {1: D.float32, 11: D.float64, 6: D.int32, 7: D.int64,
                                   9: D.bool_, 10: D.float16, 16: D.bfloat16, 3: D.int8,
                                   2: D.uint8, 5: D.int16}
"""ONNX ``TensorProto`` data types amber has (float, double, int32, int64, bool, float16,
bfloat16, int8, uint8, int16)."""

ONNX_OF: dict[str, int] = {d.name: k for k, d in ONNX_DTYPES.items()}

MIN_IMPORT_OPSET: int = 1
"""The oldest ``ai.onnx`` opset the importer reads."""


def dtype_name(code: int) -> str:
    try:
        import onnx

        return str(onnx.helper.tensor_dtype_to_string(code))
    except Exception:
        return f"data type {code}"


# ----------------------------------------------------------------------------- values


class Sym:
    """Shape data with symbolic elements: an int64 tensor held as a NumPy object array
    of ints and :class:`DimExpr` s."""

    __slots__ = ("arr",)

    def __init__(self, arr: np.ndarray) -> None:
        self.arr = arr

    @property
    def shape(self) -> tuple:
        return tuple(self.arr.shape)

    @property
    def ndim(self) -> int:
        return self.arr.ndim

    dtype = D.int64


def objarr(values: Any, shape: tuple | None = None) -> np.ndarray:
    """An object array of ints and dim expressions (``np.array`` would try to convert
    a dim expression to a number)."""
    vals = list(values)
    out = np.empty(len(vals), dtype=object)
    for i, v in enumerate(vals):
        out[i] = v
    return out.reshape(shape if shape is not None else (len(vals),))


def sym_or_tensor(arr: Any) -> Tensor | Sym:
    """Shape data as a concrete int64 tensor when every element is an int, else Sym."""
    if not isinstance(arr, np.ndarray):
        arr = objarr([arr], ())
    if arr.dtype == object and any(isinstance(v, DimExpr) for v in arr.flat):
        return Sym(arr)
    return Tensor._wrap(np.asarray(arr.tolist() if arr.dtype == object else arr,
                                   dtype=np.int64).reshape(arr.shape))


def materialize(s: Sym) -> Tensor:
    """The tensor a Sym stands for: its symbolic elements read with ``dim_value``."""
    from ..capture.trace import symbolic_scalar
    from ..ops import shape as S

    parts: list[Tensor] = []
    for v in s.arr.flat:
        if isinstance(v, DimExpr):
            parts.append(S.reshape(symbolic_scalar(v, D.int64), shape=(1,)))
        else:
            parts.append(Tensor._wrap(np.array([int(v)], dtype=np.int64)))
    flat = parts[0] if len(parts) == 1 else S.concat(*parts, axis=0)
    return S.reshape(flat, shape=s.shape) if s.shape != (len(parts),) else flat


def as_object(v: Tensor | Sym) -> np.ndarray:
    """Shape data (Sym or concrete integer tensor) as an object array."""
    if isinstance(v, Sym):
        return v.arr
    return np.array(v.numpy().tolist(), dtype=object).reshape(v.shape)


# ----------------------------------------------------------------------------- op table


@dataclass
class OpDef:
    name: str
    since: int
    fn: Callable[[Ctx], Any]
    notes: str


OPS: dict[str, list[OpDef]] = {}
"""ONNX op type -> its implementations, by the opset they start at."""

SYM_OPS: dict[str, Callable[[Ctx], Any]] = {}
"""Ops that compute on shape data symbolically (tried first when an input is a Sym)."""


def op(*names: str, since: int = 1, notes: str = "") -> Callable[[Any], Any]:
    """Register a handler for ONNX ops ``names`` from opset ``since`` on."""
    def deco(fn: Callable[[Ctx], Any]) -> Callable[[Ctx], Any]:
        for n in names:
            OPS.setdefault(n, []).append(OpDef(n, since, fn, notes))
            OPS[n].sort(key=lambda d: d.since)
        return fn
    return deco


def sym_op(*names: str) -> Callable[[Any], Any]:
    def deco(fn: Callable[[Ctx], Any]) -> Callable[[Ctx], Any]:
        for n in names:
            SYM_OPS[n] = fn
        return fn
    return deco


def lookup(op_type: str, opset: int) -> OpDef | None:
    found = None
    for d in OPS.get(op_type, []):
        if d.since <= opset:
            found = d
    return found


# ----------------------------------------------------------------------------- context


class Ctx:
    """One node being imported: its inputs, attributes and opset."""

    def __init__(self, runner: GraphRunner, node: Any, opset: int) -> None:
        self.runner = runner
        self.node = node
        self.opset = opset
        self.attrs: dict[str, Any] = {}
        self.read: set[str] = set()
        import onnx

        for a in node.attribute:
            if a.ref_attr_name:
                raise self.unsupported(f"attribute {a.name!r} refers to a function "
                                       f"attribute (only used inside ONNX functions)")
            v = onnx.helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            self.attrs[a.name] = v
        if "broadcast" in self.attrs and self.opset < 7 and self.node.op_type != "Gemm":
            if self.attrs["broadcast"] and "axis" in self.attrs:
                ra, rb = (len(runner.lookup(n).shape) for n in node.input[:2])
                if self.attrs["axis"] % max(ra, 1) != ra - rb:
                    raise self.unsupported("the legacy broadcast attribute with an axis "
                                           "other than a suffix (opset < 7)")
                self.read.add("axis")
            self.read.add("broadcast")  # suffix broadcasting: NumPy's rule where valid

    # -- errors -------------------------------------------------------------------
    def where(self) -> str:
        n = self.node
        name = n.name or (n.output[0] if len(n.output) else "?")
        return (f"ONNX node {name!r} (op {n.op_type}, domain "
                f"{n.domain or 'ai.onnx'!r}, opset {self.opset})")

    def unsupported(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"{self.where()}: {what}")

    # -- attributes -----------------------------------------------------------------
    def a(self, name: str, default: Any = None) -> Any:
        self.read.add(name)
        return self.attrs.get(name, default)

    def check_unread(self) -> None:
        """Refuse attributes the handler never looked at, unless they hold the schema's
        default or cannot change the result (so a newer attribute is never ignored)."""
        for name in set(self.attrs) - self.read - _NEVER_MATTER.get(self.node.op_type, set()) \
                - _NEVER_MATTER["*"]:
            if not _is_default(self.node.op_type, self.opset, name, self.attrs[name]):
                raise self.unsupported(f"attribute {name} = {self.attrs[name]!r} is not "
                                       f"supported")

    # -- inputs ---------------------------------------------------------------------
    @property
    def n_in(self) -> int:
        return len(self.node.input)

    def has(self, i: int) -> bool:
        return i < len(self.node.input) and self.node.input[i] != ""

    def v(self, i: int) -> Tensor | Sym | None:
        if not self.has(i):
            return None
        return self.runner.lookup(self.node.input[i])

    def t(self, i: int) -> Tensor:
        """Input ``i`` as a tensor (required)."""
        v = self.v(i)
        if v is None:
            raise self.unsupported(f"input {i} is missing")
        return materialize(v) if isinstance(v, Sym) else v

    def topt(self, i: int) -> Tensor | None:
        return self.t(i) if self.has(i) else None

    def ts(self) -> list[Tensor]:
        return [self.t(i) for i in range(self.n_in) if self.has(i)]

    def s(self, i: int) -> np.ndarray:
        """Input ``i`` as a value known while importing (an object array of ints and
        dim expressions for shape data); a value computed from the inputs is refused."""
        name = self.node.input[i]
        init = self.runner.static_value(name)
        if init is not None:
            return init
        v = self.v(i)
        if isinstance(v, Sym):
            return v.arr
        if v is None:
            raise self.unsupported(f"input {i} is missing")
        if v._data is None:
            err = self.unsupported(
                f"input {i} ({name!r}) must be known while importing (it sets a shape, an "
                f"axis or a size), but it is computed from the model's inputs; amber "
                f"programs have static or symbolic shapes, never data-dependent ones")
            err.needs_value = name  # type: ignore[attr-defined]
            raise err
        return v._data

    def ints(self, i: int) -> list[Any]:
        """Input ``i`` as a flat list of ints (and dim expressions)."""
        arr = self.s(i)
        return [v if isinstance(v, DimExpr) else int(v) for v in np.asarray(arr).flat]

    def sopt(self, i: int) -> np.ndarray | None:
        return self.s(i) if self.has(i) else None


_NEVER_MATTER: dict[str, set[str]] = {
    "*": {"consumed_inputs", "is_test"},  # legacy hints of opsets before 7
    "Dropout": {"seed", "ratio"},          # inference: the identity
    "BatchNormalization": {"momentum"},    # read in training mode only
    "Gemm": {"broadcast"},                 # opset < 7: C broadcasts either way
    "Cast": {"saturate"},                  # only concerns the float8 types
    "CastLike": {"saturate"},
    "RandomNormalLike": set(),
}


def _is_default(op_type: str, opset: int, name: str, value: Any) -> bool:
    import onnx

    try:
        schema = onnx.defs.get_schema(op_type, opset)
    except Exception:  # an op the installed onnx does not know
        return False
    attr = schema.attributes.get(name)
    if attr is None or not attr.default_value.name:
        return False
    default = onnx.helper.get_attribute_value(attr.default_value)
    if isinstance(default, bytes):
        default = default.decode("utf-8", "replace")
    if isinstance(default, list) or isinstance(value, list):
        return list(default) == list(value)
    return bool(default == value)


# ----------------------------------------------------------------------------- runner


class GraphRunner:
    """Runs (traces) the nodes of one ONNX graph; subgraphs see the outer scopes."""

    def __init__(self, opset: int, outer: GraphRunner | None = None) -> None:
        self.opset = opset
        self.outer = outer
        self.env: dict[str, Tensor | Sym] = {}
        self.static: dict[str, np.ndarray] = {}  # initializer values (for static uses)

    def lookup(self, name: str) -> Tensor | Sym:
        r: GraphRunner | None = self
        while r is not None:
            if name in r.env:
                return r.env[name]
            r = r.outer
        raise UnsupportedError(f"ONNX value {name!r} is used before it is defined (the "
                               f"graph is not topologically sorted, or the name is wrong)")

    def static_value(self, name: str) -> np.ndarray | None:
        r: GraphRunner | None = self
        while r is not None:
            if name in r.env:
                return r.static.get(name)
            r = r.outer
        return None

    def run_nodes(self, nodes: Any) -> None:
        for node in nodes:
            self.run_node(node)

    def run_node(self, node: Any) -> None:
        ctx = Ctx(self, node, self.opset)
        if node.domain not in ("", "ai.onnx"):
            raise ctx.unsupported(f"operators of domain {node.domain!r} are not supported "
                                  f"(amber imports the default ai.onnx domain)")
        d = lookup(node.op_type, self.opset)
        if d is None:
            if node.op_type in OPS:
                raise ctx.unsupported(f"{node.op_type} is supported from opset "
                                      f"{OPS[node.op_type][0].since} on")
            raise ctx.unsupported(f"operator {node.op_type} is not supported")
        try:
            out = self._call(ctx, d)
            ctx.check_unread()
        except (UnsupportedError, CaptureError):
            raise
        except AmberError as e:
            raise type(e)(f"{ctx.where()}: {e}") from e
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        names = list(node.output)
        for k, name in enumerate(names):
            if not name:
                continue
            if k >= len(outs) or outs[k] is None:
                raise ctx.unsupported(f"output {k} ({name!r}) is not supported")
            self.env[name] = outs[k]

    def _call(self, ctx: Ctx, d: OpDef) -> Any:
        sym = SYM_OPS.get(ctx.node.op_type)
        if sym is not None and any(isinstance(ctx.v(i), Sym) for i in range(ctx.n_in)):
            try:
                r = sym(ctx)
            except (CaptureError, TypeError, ValueError, ArithmeticError):
                r = None  # not expressible as dim arithmetic: compute it as tensors
            if r is not None:
                return r
        return d.fn(ctx)
