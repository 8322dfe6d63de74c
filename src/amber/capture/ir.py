"""amber's IR: a Program is a set of functions in SSA form with typed values.

* A :class:`Value` has a name (unique in its function) and a type, an
  :class:`~amber.ops.registry.Aval` (dtype + shape whose dims are ints or symbolic
  :class:`~amber.capture.dims.DimExpr`).
* A :class:`Node` applies an op (a registry primitive or an IR builtin: ``constant``,
  ``weight``, ``call``) to input values, with attributes, producing typed outputs.
* A :class:`Function` has typed parameters, nodes in order, and results.
* A :class:`Program` holds functions, named weights (NumPy arrays), entry points (an
  :class:`EntryPoint` names a function and gives its public signature) and test vectors.

``str(program)`` is the readable text form. JSON (de)serialisation lives in
:mod:`amber.capture.serialize`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._dtype import COMPUTE, DType, is_floating_np
from ..ops.registry import REGISTRY, Aval
from .dims import DimExpr, format_dim

OPSET_VERSION: int = 5
"""The newest opset version this amber writes and understands (1: primitives and the
builtins ``constant``, ``weight``, ``call``; 2 adds ``cond``, ``while`` and ``scan``; 3
adds per-iteration outputs of ``while``, stacked along a dim the node binds; 4 adds the
pooling primitives; 5 lets an entry point return a size such a node binds)."""

CONTROL_OPS: frozenset[str] = frozenset({"cond", "while", "scan"})
"""Structured control-flow builtins (opset 2); they refer to functions by name."""

BUILTIN_OPS: frozenset[str] = frozenset({"constant", "weight", "call"}) | CONTROL_OPS
"""IR ops that are not registry primitives (see docs/format.md)."""

RESERVED_OPS: frozenset[str] = frozenset()
"""Op names reserved for a later opset (none at present)."""

FUNCTION_ATTRS: dict[str, tuple[str, ...]] = {
    "call": ("callee",), "cond": ("then", "else"), "while": ("cond", "body"),
    "scan": ("body",),
}
"""For each builtin that refers to functions, the attributes that name them."""

WHILE_STACK_ATTRS: tuple[str, str] = ("num_stacked", "trip_dim")
"""The attributes of the opset-3 form of ``while``: ``num_stacked`` per-iteration outputs
of the body, stacked along a new leading dim named ``trip_dim`` (the trip count)."""


def bound_symbol(node: Node) -> str | None:
    """The symbol a node binds for the nodes after it in its function (the ``trip_dim`` of
    an opset-3 ``while``), or None. Only parameters and such nodes bind symbols."""
    if node.op == "while":
        sym = node.attrs.get("trip_dim")
        return sym if isinstance(sym, str) else None
    return None


def data_dependent_symbols(fn: Function) -> frozenset[str]:
    """The symbols bound by nodes of ``fn`` (trip counts) that its results use: sizes the
    data decide, which only an entry point's function may return (opset 5)."""
    by_params = {s for p in fn.params for d in p.aval.shape if isinstance(d, DimExpr)
                 for s in d.symbols}
    by_nodes = {s for s in map(bound_symbol, fn.nodes) if s is not None} - by_params
    used: set[str] = set()
    for v in fn.results:
        for d in v.aval.shape:
            if isinstance(d, DimExpr):
                used |= d.symbols & by_nodes
    return frozenset(used)


def format_type(aval: Aval) -> str:
    """``float32[batch, 784]``."""
    return f"{aval.dtype.name}[{', '.join(format_dim(d) for d in aval.shape)}]"


class Value:
    """An SSA value: a function parameter or a node output."""

    __slots__ = ("name", "aval", "producer", "fn")

    def __init__(self, name: str, aval: Aval, producer: Node | None = None,
                 fn: Function | None = None) -> None:
        self.name = name
        self.aval = aval
        self.producer = producer
        self.fn = fn

    @property
    def dtype(self) -> DType:
        return self.aval.dtype

    @property
    def shape(self) -> tuple:
        return self.aval.shape

    def __repr__(self) -> str:
        return f"%{self.name}: {format_type(self.aval)}"


class Node:
    """``outputs = op(*inputs, **attrs)``."""

    __slots__ = ("op", "inputs", "attrs", "outputs")

    def __init__(self, op: str, inputs: Sequence[Value], attrs: Mapping[str, Any],
                 outputs: Sequence[Value]) -> None:
        self.op = op
        self.inputs = list(inputs)
        self.attrs = dict(attrs)
        self.outputs = list(outputs)

    @property
    def output(self) -> Value:
        """The single output (every primitive has exactly one)."""
        return self.outputs[0]

    def __repr__(self) -> str:
        return format_node(self)


def computes_wide(node: Node) -> bool:
    """Whether ``node`` computes storage-dtype operands (float16, ..., int16) in their
    compute dtype and rounds its result back (docs/opset.md 1.1.1): every primitive but
    ``cast`` and data movement, when an operand or result has a storage dtype."""
    prim = REGISTRY.get(node.op)
    if prim is None or prim.any_dtype:
        return False
    return any(v.dtype in COMPUTE for v in (*node.inputs, *node.outputs))


class Function:
    """A function: typed parameters, nodes in SSA order, results."""

    def __init__(self, name: str, params: Sequence[Value] = (), nodes: Sequence[Node] = (),
                 results: Sequence[Value] = ()) -> None:
        self.name = name
        self.params = list(params)
        self.nodes = list(nodes)
        self.results = list(results)
        self._counter = 0
        self._used: set[str] | None = None

    def fresh_name(self) -> str:
        """A value name not used in this function (``t0``, ``t1``, ...)."""
        if self._used is None:
            self._used = {v.name for v in self.values()}
        self._used.update(p.name for p in self.params)  # params may be added meanwhile
        while True:
            name = f"t{self._counter}"
            self._counter += 1
            if name not in self._used:
                self._used.add(name)
                return name

    def values(self) -> Iterator[Value]:
        yield from self.params
        for n in self.nodes:
            yield from n.outputs

    def op_histogram(self) -> dict[str, int]:
        hist: dict[str, int] = {}
        for n in self.nodes:
            hist[n.op] = hist.get(n.op, 0) + 1
        return dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0])))

    def __str__(self) -> str:
        params = ", ".join(f"%{p.name}: {format_type(p.aval)}" for p in self.params)
        res = ", ".join(format_type(v.aval) for v in self.results)
        lines = [f"func @{self.name}({params}) -> ({res}) {{"]
        lines += ["  " + format_node(n) for n in self.nodes]
        lines.append("  return " + ", ".join(f"%{v.name}" for v in self.results))
        lines.append("}")
        return "\n".join(lines)


def _format_attr(v: Any) -> str:
    if isinstance(v, np.ndarray):
        if v.size <= 8:
            body = np.array2string(v, separator=", ").replace("\n", "")
        else:
            body = "..."
        return f"{v.dtype.name if v.dtype != np.bool_ else 'bool'}{list(v.shape)} {body}"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_format_attr(x) for x in v) + "]"
    if isinstance(v, DimExpr):
        return format_dim(v)
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


def format_node(n: Node) -> str:
    outs = ", ".join(f"%{v.name}" for v in n.outputs)
    ins = ", ".join(f"%{v.name}" for v in n.inputs)
    attrs = ""
    if n.attrs:
        attrs = " {" + ", ".join(f"{k}={_format_attr(v)}" for k, v in sorted(n.attrs.items())) \
            + "}"
    types = ", ".join(format_type(v.aval) for v in n.outputs)
    return f"{outs} = {n.op}({ins}){attrs} : {types}"


@dataclass
class Port:
    """A named, typed input or output of an entry point."""

    name: str
    aval: Aval

    @property
    def dtype(self) -> DType:
        return self.aval.dtype

    @property
    def shape(self) -> tuple:
        return self.aval.shape

    def __str__(self) -> str:
        return f"{self.name}: {format_type(self.aval)}"


@dataclass
class EntryPoint:
    """The public signature of an entry point: which function runs it, the names and
    types of its inputs and outputs, and how outputs are grouped (``structure``: a name,
    or ``{"tuple": [...]}``, ``{"list": [...]}``, ``{"dict": {key: ...}}``)."""

    name: str
    function: str
    inputs: list[Port]
    outputs: list[Port]
    structure: Any = None
    input_ranges: dict[str, list[float]] = field(default_factory=dict)

    def __str__(self) -> str:
        ins = ", ".join(str(p) for p in self.inputs)
        outs = ", ".join(str(p) for p in self.outputs)
        return f"{self.name}({ins}) -> ({outs})"

    @property
    def symbols(self) -> list[str]:
        """Names of the symbolic dims of the inputs, in order of first appearance."""
        out: list[str] = []
        for p in self.inputs:
            for d in p.shape:
                if isinstance(d, DimExpr):
                    for s in sorted(d.symbols):
                        if s not in out:
                            out.append(s)
        return out


@dataclass
class TestVector:
    """Inputs and expected outputs of one run of an entry point, with the tolerance
    (per output: ``(rtol, atol)``; 0, 0 means exact) a runtime must meet."""

    __test__ = False  # not a pytest class

    entry: str
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    tolerance: dict[str, tuple[float, float]]
    dims: dict[str, int] = field(default_factory=dict)


# Documented tolerance (docs/format.md, "Test vectors"): |got - want| <= atol + rtol*|want|.
TOLERANCE: dict[str, tuple[float, float]] = {
    "float32": (1e-4, 1e-5),
    "float64": (1e-9, 1e-12),
    "int32": (0.0, 0.0),
    "int64": (0.0, 0.0),
    "bool": (0.0, 0.0),
    # opset 5: about eight units in the last place of the storage type
    "float16": (1e-2, 1e-3),
    "bfloat16": (6.25e-2, 1e-2),
    "int8": (0.0, 0.0),
    "uint8": (0.0, 0.0),
    "int16": (0.0, 0.0),
}


def vector_tolerance(dtype: str, want: Any) -> tuple[float, float]:
    """The (rtol, atol) amber writes for one test-vector output (docs/format.md, "Test
    vectors"): the dtype's :data:`TOLERANCE`, with atol raised to rtol times the output's
    largest finite magnitude.

    NOTE: a long float sum (a 1024-term dot product) summed in another order differs by
    far more than the fixed atol where the output is near zero; the floor bounds every
    element's error relative to the output's scale, as BLAS tests do (normwise)."""
    rtol, atol = TOLERANCE[dtype]
    w = np.asarray(want)
    if rtol and w.size:
        mag = np.abs(w.astype(np.float64))
        mag = mag[np.isfinite(mag)]
        if mag.size:
            atol = max(atol, float(rtol * mag.max()))
    return rtol, atol


def max_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want| (0 where both are the same NaN/inf; inf on a shape/kind
    mismatch or a NaN/inf in one only)."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        return float("inf")
    if want.size == 0:
        return 0.0
    if want.dtype.kind == "b" or got.dtype.kind == "b":
        return float(np.count_nonzero(got != want) > 0)
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    diff = np.where(same, 0.0, np.abs(g - w))
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.max())


def within_tolerance(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    """``|got - want| <= atol + rtol * |want|`` elementwise; NaN matches NaN, infinities
    must match exactly; shapes must be equal."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        return False
    if want.size == 0:
        return True
    if want.dtype.kind in "biu" or got.dtype.kind in "biu":
        return bool(np.array_equal(got, want))
    g = got.astype(np.float64)
    w = want.astype(np.float64)
    same = (g == w) | (np.isnan(g) & np.isnan(w))
    with np.errstate(invalid="ignore"):
        close = np.abs(g - w) <= atol + rtol * np.abs(w)
    return bool(np.all(same | (close & np.isfinite(g) & np.isfinite(w))))


class Program:
    """A set of functions, weights, entry points and test vectors: what a .amber file
    holds. Build one with ``am.export``; add entry points with :meth:`add`; write it
    with :meth:`save`; ``print(program)`` shows the text form."""

    def __init__(self, opset_version: int = OPSET_VERSION) -> None:
        self.opset_version = opset_version
        self.functions: dict[str, Function] = {}
        self.weights: dict[str, np.ndarray] = {}
        self.entries: dict[str, EntryPoint] = {}
        self.test_vectors: list[TestVector] = []
        self.metadata: dict[str, Any] = {}

    # -- building ---------------------------------------------------------------
    def add(self, fn: Any, *args: Any, name: str = "forward", sizes: Mapping[str, Any] | None
            = None, weights: Any = None, check: bool = True, examples: Any = None,
            random_vectors: bool | int = True) -> Program:
        """Capture ``fn`` (a function or an ``nn.Module``) on ``args`` as entry point
        ``name``, prove it against eager execution and store the test vectors.
        See :func:`amber.export` for the arguments. Returns ``self``."""
        from .trace import add_entry

        add_entry(self, fn, args, name=name, sizes=sizes, weights=weights, check=check,
                  examples=examples, random_vectors=random_vectors)
        return self

    def add_weight(self, name: str, array: np.ndarray) -> None:
        """Register a named weight (the same name must always hold the same values)."""
        from ..errors import IRError

        prev = self.weights.get(name)
        if prev is not None:
            if prev.dtype != array.dtype or prev.shape != array.shape or \
                    not np.array_equal(prev, array, equal_nan=is_floating_np(prev.dtype)):
                raise IRError(f"weight {name!r} is already in the program with different "
                              f"values; give the modules distinct names")
            return
        self.weights[name] = array

    # -- queries ----------------------------------------------------------------
    def entry(self, name: str = "forward") -> EntryPoint:
        try:
            return self.entries[name]
        except KeyError:
            from ..errors import AmberError

            raise AmberError(f"the program has no entry point {name!r}; it has "
                             f"{', '.join(self.entries) or 'none'}") from None

    def signature(self, name: str = "forward") -> EntryPoint:
        """The signature of entry point ``name``."""
        return self.entry(name)

    def parameter_count(self) -> tuple[int, int]:
        """(number of weight elements, bytes)."""
        n = sum(int(a.size) for a in self.weights.values())
        b = sum(int(a.nbytes) for a in self.weights.values())
        return n, b

    # -- passes, verification, execution ----------------------------------------
    def verify(self) -> None:
        """Check types, ops, opset version and symbolic dims; raises ``IRError``."""
        from .verify import verify_program

        verify_program(self)

    def optimize(self) -> Program:
        """Constant folding, common-subexpression and dead-code elimination (in place)."""
        from .passes import optimize

        for f in self.functions.values():
            optimize(f)
        return self

    def run(self, entry: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run an entry point with the reference interpreter (NumPy in, NumPy out)."""
        from ..interpreter import Interpreter

        return Interpreter(self).run(entry, *args, **kwargs)

    # -- files --------------------------------------------------------------------
    def save(self, path: Any, metadata: Mapping[str, Any] | None = None) -> None:
        """Write the program as a .amber file (``metadata``: JSON-able user fields)."""
        from .serialize import save_program

        save_program(self, path, metadata)

    def __str__(self) -> str:
        from .verify import required_opset

        # the opset the file declares (docs/format.md): the lowest that has every op used
        lines = [f"program (opset {min(self.opset_version, required_opset(self))})"]
        for e in self.entries.values():
            lines.append(f"entry {e}  = @{e.function}")
        for name, w in sorted(self.weights.items()):
            lines.append(f"weight \"{name}\": {w.dtype.name if w.dtype != np.bool_ else 'bool'}"
                         f"[{', '.join(str(d) for d in w.shape)}]")
        for f in self.functions.values():
            lines.append(str(f))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<amber.Program entries={list(self.entries)} functions={len(self.functions)} "
                f"weights={len(self.weights)}>")


__all__ = [
    "BUILTIN_OPS",
    "CONTROL_OPS",
    "FUNCTION_ATTRS",
    "OPSET_VERSION",
    "TOLERANCE",
    "WHILE_STACK_ATTRS",
    "EntryPoint",
    "Function",
    "Node",
    "Port",
    "Program",
    "TestVector",
    "Value",
    "bound_symbol",
    "data_dependent_symbols",
    "format_type",
    "max_error",
    "within_tolerance",
]
