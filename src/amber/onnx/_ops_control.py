"""ONNX control flow as amber's structured control flow: ``If`` -> ``am.cond`` (or the
taken branch inline when the condition is known while importing), ``Loop`` ->
``am.while_loop`` (``am.scan`` when it has scan outputs and a fixed trip count),
``Scan`` -> ``am.scan``. Subgraphs see the values of the enclosing graphs."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _dtype as D
from .. import functional as _F
from ..control import cond, scan, while_loop
from ..ops import elementwise as E
from ..ops import shape as S
from ..tensor import Tensor
from ._graph import Ctx, GraphRunner, Sym, materialize, op
from ._ops_elementwise import sc


def run_subgraph(c: Ctx, g: Any, args: list[Any]) -> list[Tensor]:
    """Run subgraph ``g`` of node ``c`` on ``args`` (its inputs, in order)."""
    from .importer import tensor_array

    r = GraphRunner(c.opset, outer=c.runner)
    for t in g.initializer:
        arr = tensor_array(t, None, "subgraph initializer")
        r.env[t.name] = Tensor._wrap(arr)
        r.static[t.name] = arr
    if len(args) != len(g.input):
        raise c.unsupported(f"subgraph {g.name!r} takes {len(g.input)} inputs, the node gives "
                            f"{len(args)}")
    for vi, a in zip(g.input, args):
        r.env[vi.name] = a
    r.run_nodes(g.node)
    out = []
    for o in g.output:
        v = r.lookup(o.name)
        out.append(materialize(v) if isinstance(v, Sym) else v)
    return out


def _scalar_bool(t: Tensor) -> Tensor:
    t = _F.cast(t, D.bool_)
    return S.reshape(t, shape=()) if t.ndim else t


@op("If", notes="a condition known while importing picks the branch; otherwise am.cond "
                "(both branches must give the same dtypes and shapes)")
def _if(c: Ctx) -> Any:
    pred = c.t(0)
    then_g, else_g = c.a("then_branch"), c.a("else_branch")
    if pred._data is not None:
        taken = then_g if bool(np.asarray(pred._data).reshape(-1)[0]) else else_g
        return run_subgraph(c, taken, [])
    out = cond(_scalar_bool(pred), lambda: tuple(run_subgraph(c, then_g, [])),
               lambda: tuple(run_subgraph(c, else_g, [])))
    return list(out)


def _trip(c: Ctx) -> Tensor | None:
    if not c.has(0):
        return None
    m = c.t(0)
    return S.reshape(m, shape=()) if m.ndim else m


@op("Loop", notes="am.while_loop; scan outputs need a trip count known while importing and "
                  "a condition that stays true")
def _loop(c: Ctx) -> Any:
    body = c.a("body")
    n_carry = c.n_in - 2
    carries = [c.t(i) for i in range(2, c.n_in)]
    n_scan = len(body.output) - 1 - n_carry
    m = _trip(c)
    cond0 = _scalar_bool(c.t(1)) if c.has(1) else Tensor._wrap(np.array(True))
    if n_scan:
        if not c.has(0):
            raise c.unsupported("Loop scan outputs without a trip count")
        n = int(np.asarray(c.s(0)).reshape(-1)[0])
        if c.has(1) and not bool(np.asarray(c.s(1)).reshape(-1)[0]):
            return [*carries, *_empty_scans(c, body, carries, n_scan)]
        return _loop_scan(c, body, carries, n, n_scan)
    i0 = Tensor._wrap(np.array(0, np.int64))

    def keep_going(carry: Any) -> Tensor:
        i, go = carry[0], carry[1]
        if m is None:
            return go
        return E.logical_and(go, E.lt(i, _F.cast(m, D.int64)))

    def step(carry: Any) -> Any:
        i, go, *vs = carry
        outs = run_subgraph(c, body, [i, go, *vs])
        return (E.add(i, sc(1, D.int64)), _scalar_bool(outs[0]), *outs[1:1 + n_carry])

    if m is None and c.has(1) is False:
        raise c.unsupported("a Loop with neither a trip count nor a condition never ends")
    final = while_loop(keep_going, step, (i0, cond0, *carries))
    return list(final[2:])


def _empty_scans(c: Ctx, body: Any, carries: list[Tensor], n_scan: int) -> list[Tensor]:
    raise c.unsupported("Loop scan outputs of a loop that never runs (their shape is "
                        "unknown)")


def _loop_scan(c: Ctx, body: Any, carries: list[Tensor], n: int, n_scan: int) -> Any:
    def step(carry: Any, i: Tensor) -> Any:
        outs = run_subgraph(c, body, [i, Tensor._wrap(np.array(True)), *carry])
        go = outs[0]
        if go._data is None or not bool(np.asarray(go._data).reshape(-1)[0]):
            raise c.unsupported("Loop scan outputs with a condition the body computes")
        return tuple(outs[1:1 + len(carry)]), tuple(outs[1 + len(carry):])

    idx = Tensor._wrap(np.arange(n, dtype=np.int64))
    final, ys = scan(step, tuple(carries), idx)
    return [*final, *ys]


@op("Scan", since=9, notes="directions of all scan inputs alike; reversed outputs on static "
                           "lengths")
def _scan(c: Ctx) -> Any:
    body = c.a("body")
    k = int(c.a("num_scan_inputs"))
    n_state = c.n_in - k
    states = [c.t(i) for i in range(n_state)]
    xs = [c.t(i) for i in range(n_state, c.n_in)]
    in_axes = list(c.a("scan_input_axes", [0] * k))
    in_dirs = list(c.a("scan_input_directions", [0] * k))
    if len(set(in_dirs)) > 1:
        raise c.unsupported("scan inputs in different directions")
    rev = bool(in_dirs[0]) if in_dirs else False
    xs = [_to_front(x, a) for x, a in zip(xs, in_axes)]

    def step(carry: Any, x: Any) -> Any:
        outs = run_subgraph(c, body, [*carry, *x])
        return tuple(outs[:n_state]), tuple(outs[n_state:])

    final, ys = scan(step, tuple(states), tuple(xs), reverse=rev)
    n_out = len(body.output) - n_state
    out_axes = list(c.a("scan_output_axes", [0] * n_out))
    out_dirs = list(c.a("scan_output_directions", [0] * n_out))
    res = list(final)
    for y, a, d in zip(ys, out_axes, out_dirs):
        if bool(d) != rev:  # amber's ys follow the inputs; ONNX's the processing order
            n = y.shape[0]
            if not isinstance(n, int):
                raise c.unsupported("a reversed scan output of symbolic length")
            y = S.take(y, Tensor._wrap(np.arange(n - 1, -1, -1, dtype=np.int64)), axis=0)
        res.append(_from_front(y, a))
    return res


def _to_front(x: Tensor, a: int) -> Tensor:
    a = a % x.ndim
    if a == 0:
        return x
    perm = [a] + [d for d in range(x.ndim) if d != a]
    return S.transpose(x, perm=tuple(perm))


def _from_front(y: Tensor, a: int) -> Tensor:
    a = a % y.ndim
    if a == 0:
        return y
    perm = list(range(1, a + 1)) + [0] + list(range(a + 1, y.ndim))
    return S.transpose(y, perm=tuple(perm))
