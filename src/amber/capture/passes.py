"""IR passes on one function, in place: constant folding, common-subexpression
elimination and dead-code elimination. Each preserves the function's results exactly
(folding runs the same NumPy kernels the interpreter would)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._dtype import from_numpy_dtype
from ..ops.registry import REGISTRY, Aval
from .dims import DimExpr, free_symbols
from .ir import Function, Node, Value, bound_symbol

FOLD_MAX_ELEMENTS = 4096
"""Folding never creates a constant larger than this many elements, or larger than the
largest constant it consumes (so a broadcast of a scalar stays a broadcast)."""


def _replace_uses(fn: Function, mapping: dict[int, Value]) -> None:
    if not mapping:
        return
    for n in fn.nodes:
        n.inputs = [mapping.get(id(v), v) for v in n.inputs]
    fn.results = [mapping.get(id(v), v) for v in fn.results]


def _symbols_used(n: Node) -> set[str]:
    out: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, DimExpr):
            out.update(free_symbols(v))
        elif isinstance(v, (tuple, list)):
            for x in v:
                walk(x)

    walk(tuple(n.attrs.values()))
    for o in n.outputs:
        walk(o.aval.shape)
    return out


def dead_code_elimination(fn: Function) -> int:
    """Remove nodes none of whose outputs reach a result, and that bind no symbol a kept
    node uses. Returns how many were removed."""
    live: set[int] = {id(v) for v in fn.results}
    live_symbols: set[str] = set()
    keep: list[Node] = []
    for n in reversed(fn.nodes):
        sym = bound_symbol(n)
        if any(id(o) in live for o in n.outputs) or sym in live_symbols:
            keep.append(n)
            live.update(id(v) for v in n.inputs)
            live_symbols |= _symbols_used(n)
    removed = len(fn.nodes) - len(keep)
    keep.reverse()
    fn.nodes = keep
    return removed


def _has_symbols(v: Any) -> bool:
    if isinstance(v, DimExpr):
        return True
    if isinstance(v, (tuple, list)):
        return any(_has_symbols(x) for x in v)
    return False


def _static(aval: Aval) -> bool:
    return not any(isinstance(d, DimExpr) for d in aval.shape)


def constant_folding(fn: Function) -> int:
    """Evaluate primitive nodes whose inputs are all constants (and whose attributes and
    output shape are static), replacing them by ``constant`` nodes. Returns the count."""
    consts: dict[int, np.ndarray] = {}
    folded = 0
    for i, n in enumerate(fn.nodes):
        if n.op == "constant":
            consts[id(n.output)] = n.attrs["value"]
            continue
        prim = REGISTRY.get(n.op)
        if prim is None or len(n.outputs) != 1 or not _static(n.output.aval):
            continue
        if not all(id(v) in consts for v in n.inputs) or _has_symbols(tuple(n.attrs.values())):
            continue
        args = [consts[id(v)] for v in n.inputs]
        size = int(np.prod([int(d) for d in n.output.shape], dtype=np.int64))
        limit = min(FOLD_MAX_ELEMENTS, max([a.size for a in args], default=1))
        if size > max(limit, 1):
            continue
        try:
            with np.errstate(all="ignore"):
                # the eager kernel: a folded value has the bits eager execution (and the
                # native runtime, which runs the same kernels) computes
                out = np.asarray(prim.eager(*args, **n.attrs))
        except Exception:
            continue
        want = n.output.aval
        if out.shape != tuple(want.shape) or from_numpy_dtype(out.dtype) is not want.dtype:
            continue
        out = np.array(out, copy=True)
        out.setflags(write=False)
        fn.nodes[i] = Node("constant", [], {"value": out}, n.outputs)
        n.output.producer = fn.nodes[i]
        consts[id(n.output)] = out
        folded += 1
    return folded


def _attr_key(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (tuple, list)):
        return ("seq", tuple(_attr_key(x) for x in v))
    if isinstance(v, float):
        return ("float", v.hex()) if v == v else ("float", "nan")
    return (type(v).__name__, v)


def common_subexpression_elimination(fn: Function) -> int:
    """Merge nodes with the same op, inputs and attributes (constants by value).
    Returns how many nodes were merged away."""
    seen: dict[Any, Node] = {}
    mapping: dict[int, Value] = {}
    keep: list[Node] = []
    for n in fn.nodes:
        n.inputs = [mapping.get(id(v), v) for v in n.inputs]
        key = (n.op, tuple(id(v) for v in n.inputs),
               tuple(sorted((k, _attr_key(v)) for k, v in n.attrs.items())))
        prev = seen.get(key)
        if prev is not None and len(prev.outputs) == len(n.outputs):
            for a, b in zip(n.outputs, prev.outputs):
                mapping[id(a)] = b
            continue
        seen[key] = n
        keep.append(n)
    merged = len(fn.nodes) - len(keep)
    fn.nodes = keep
    _replace_uses(fn, mapping)
    return merged


def optimize(fn: Function) -> dict[str, int]:
    """Fold, CSE and DCE until nothing changes. Returns counts per pass."""
    counts = {"folded": 0, "merged": 0, "removed": 0}
    for _ in range(8):
        f = constant_folding(fn)
        c = common_subexpression_elimination(fn)
        d = dead_code_elimination(fn)
        counts["folded"] += f
        counts["merged"] += c
        counts["removed"] += d
        if not (f or c or d):
            break
    return counts
