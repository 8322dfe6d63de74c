"""Linking and comparing .amber files without Python code (``amber link``, ``amber diff``).

:func:`link` builds one program from several loaded models and a list of connections
``"A.forward.out0 -> B.forward.in0"`` (the syntax is specified in docs/cli.md): each
model's functions and weights are copied under its alias (``A/forward``,
``A/fc.weight``), a new entry point calls the connected entry points in dependency
order, the types at every seam are checked, and the result is proven against running
the models one after the other (the proof becomes the new file's test vectors).

:func:`diff` compares two programs: entry points and signatures, functions and their op
histograms, and each weight by content hash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .capture.dims import DimExpr, is_symbol_name
from .capture.ir import (
    EntryPoint,
    Function,
    Node,
    Port,
    Program,
    TestVector,
    Value,
    max_error,
    vector_tolerance,
    within_tolerance,
)
from .errors import AmberError, LinkError
from .reuse import (
    Source,
    check_seam,
    clean_name,
    content_hash,
    describe,
    function_key,
    namespaced,
    random_inputs,
)

if TYPE_CHECKING:
    from .model import Model

MAX_LINK_VECTORS = 3
"""Number of test vectors a linked entry point gets."""

_PORT_INDEX = re.compile(r"(in|out)(\d+)\Z")


# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class PortRef:
    """``ALIAS.ENTRY.PORT``: a port of an entry point of one of the linked models."""

    alias: str
    entry: str
    port: str  # resolved port name
    index: int  # position among the entry's inputs or outputs
    is_output: bool

    def __str__(self) -> str:
        return f"{self.alias}.{self.entry}.{self.port}"


@dataclass(frozen=True)
class Connection:
    """``source -> target``: an output feeding an input."""

    source: PortRef
    target: PortRef
    spec: str


def parse_ref(text: str, models: Mapping[str, Model], want_output: bool, spec: str
              ) -> PortRef:
    """Resolve ``ALIAS.ENTRY.PORT`` (``PORT`` a port name, or ``inN`` / ``outN`` by
    position) against ``models``; ``want_output`` says which side of ``->`` it is on."""
    side = "left" if want_output else "right"
    parts = text.strip().split(".")
    if len(parts) != 3 or not all(parts):
        raise LinkError(f"--connect {spec!r}: {text.strip()!r} on the {side} side must be "
                        f"MODEL.ENTRY.PORT, e.g. A.forward.out0")
    alias, ename, pname = parts
    if alias not in models:
        raise LinkError(f"--connect {spec!r}: no model {alias!r}; the models are "
                        f"{', '.join(models)}")
    program = models[alias].program
    if ename not in program.entries:
        raise LinkError(f"--connect {spec!r}: model {alias!r} has no entry point {ename!r}; "
                        f"it has {', '.join(program.entries)}")
    e = program.entries[ename]
    ports, other = (e.outputs, e.inputs) if want_output else (e.inputs, e.outputs)
    for i, p in enumerate(ports):
        if p.name == pname:
            return PortRef(alias, ename, p.name, i, want_output)
    m = _PORT_INDEX.match(pname)
    if m is not None and (m.group(1) == "out") == want_output:
        i = int(m.group(2))
        if i < len(ports):
            return PortRef(alias, ename, ports[i].name, i, want_output)
        raise LinkError(f"--connect {spec!r}: {alias}.{ename} has {len(ports)} "
                        f"{'outputs' if want_output else 'inputs'}, so {pname!r} does not "
                        f"exist")
    if any(p.name == pname for p in other) or (m is not None):
        raise LinkError(f"--connect {spec!r}: {text.strip()!r} is an "
                        f"{'input' if want_output else 'output'}, but the {side} side of "
                        f"'->' must be an {'output' if want_output else 'input'} "
                        f"(connections run OUTPUT -> INPUT)")
    names = ", ".join(p.name for p in ports)
    raise LinkError(f"--connect {spec!r}: {alias}.{ename} has no "
                    f"{'output' if want_output else 'input'} {pname!r}; its "
                    f"{'outputs' if want_output else 'inputs'} are {names} "
                    f"(or {'out' if want_output else 'in'}0, ... by position)")


def parse_connect(spec: str, models: Mapping[str, Model]) -> Connection:
    """Parse ``"A.forward.out0 -> B.forward.in0"``."""
    if not isinstance(spec, str) or spec.count("->") != 1:
        raise LinkError(f"--connect {spec!r}: expected exactly one '->' between an output "
                        f"and an input, e.g. \"A.forward.out0 -> B.forward.in0\"")
    left, right = spec.split("->")
    return Connection(parse_ref(left, models, True, spec),
                      parse_ref(right, models, False, spec), spec)


def parse_model_arg(arg: str) -> tuple[str | None, str]:
    """``"ALIAS=path"`` or ``"path"`` (alias: the file name without ``.amber``)."""
    if "=" in arg:
        alias, path = arg.split("=", 1)
        if not is_symbol_name(alias):
            raise LinkError(f"model alias {alias!r} must be a name (letters, digits, _)")
        return alias, path
    return None, arg


# ----------------------------------------------------------------------------- link


def _order(nodes: list[tuple[str, str]], conns: Sequence[Connection]) -> list[tuple[str, str]]:
    deps: dict[tuple[str, str], set[tuple[str, str]]] = {n: set() for n in nodes}
    for c in conns:
        src, dst = (c.source.alias, c.source.entry), (c.target.alias, c.target.entry)
        if src == dst:
            raise LinkError(f"--connect {c.spec!r}: connects {src[0]}.{src[1]} to itself "
                            f"(a cycle)")
        deps[dst].add(src)
    out: list[tuple[str, str]] = []
    state: dict[tuple[str, str], int] = {}

    def visit(n: tuple[str, str], path: list[tuple[str, str]]) -> None:
        s = state.get(n, 0)
        if s == 2:
            return
        if s == 1:
            cyc = path[path.index(n):] + [n]
            raise LinkError("the connections form a cycle: " +
                            " -> ".join(f"{a}.{e}" for a, e in cyc))
        state[n] = 1
        for d in sorted(deps[n], key=nodes.index):
            visit(d, path + [n])
        state[n] = 2
        out.append(n)

    for n in nodes:
        visit(n, [])
    return out


def _unique_names(items: Sequence[tuple[str, str]]) -> list[str]:
    """Port names, prefixed ``alias_`` where two items share a name."""
    counts: dict[str, int] = {}
    for _, n in items:
        counts[n] = counts.get(n, 0) + 1
    out, seen = [], set()
    for alias, n in items:
        name = n if counts[n] == 1 else clean_name(f"{alias}_{n}")
        base, k = name, 1
        while name in seen:
            name = f"{base}_{k}"
            k += 1
        seen.add(name)
        out.append(name)
    return out


def link(models: Mapping[str, Model], connects: Sequence[str], *, name: str = "forward",
         outputs: Sequence[str] | None = None, check: bool = True) -> Program:
    """Link ``models`` (by alias) into one program with entry point ``name``.

    The entry points named in ``connects`` take part; each connection feeds an output
    into an input. Inputs not fed by a connection become the new entry point's inputs
    (in dependency order of their entry points, then port order); its outputs are
    ``outputs`` (``ALIAS.ENTRY.PORT`` references) or, by default, every output no
    connection consumes. Port names are kept where unique, else prefixed ``alias_``.

    Raises:
        LinkError: a malformed or contradictory spec (unknown model, entry point or
            port, wrong direction, an input fed twice, a cycle).
        SeamError: a connection whose types disagree (names both models).
    """
    conns, fed = _connections(models, connects, name)
    nodes: list[tuple[str, str]] = []
    for c in conns:
        for r in (c.source, c.target):
            if (r.alias, r.entry) not in nodes:
                nodes.append((r.alias, r.entry))
    order = _order(nodes, conns)

    program = Program(max(m.program.opset_version for m in models.values()))
    for alias, m in models.items():
        if not any(a == alias for a, _ in order):
            continue
        functions, weights = namespaced(m.program, alias)
        program.functions.update(functions)
        program.weights.update(weights)

    # inputs of the new entry point
    free: list[tuple[str, str, Port]] = []
    for alias, ename in order:
        for p in models[alias].program.entries[ename].inputs:
            if (alias, ename, p.name) not in fed:
                free.append((alias, ename, p))
    in_names = _unique_names([(a, p.name) for a, _, p in free])
    fn = Function(clean_name(name))
    while fn.name in program.functions:
        fn.name += "_"
    params: dict[tuple[str, str, str], Value] = {}
    for (alias, ename, p), pname in zip(free, in_names):
        v = Value(pname, p.aval, None, fn)
        fn.params.append(v)
        params[(alias, ename, p.name)] = v
    results = _call_in_order(program, fn, models, order, fed, params)
    chosen = _chosen_outputs(models, order, conns, outputs)
    out_names = _unique_names([(a, p) for a, _, p in chosen])
    fn.results = [results[k] for k in chosen]
    program.functions[fn.name] = fn
    entry = EntryPoint(
        name, fn.name, [Port(v.name, v.aval) for v in fn.params],
        [Port(n, v.aval) for n, v in zip(out_names, fn.results)],
        out_names[0] if len(out_names) == 1 else {"tuple": list(out_names)},
        {pname: list(models[a].program.entries[en].input_ranges[p.name])
         for (a, en, p), pname in zip(free, in_names)
         if p.name in models[a].program.entries[en].input_ranges})
    program.entries[name] = entry
    program.verify()
    program.test_vectors = _prove(program, entry, models, order, conns, fed, free, in_names,
                                  chosen, check)
    return program


def _connections(models: Mapping[str, Model], connects: Sequence[str], name: str
                 ) -> tuple[list[Connection], dict[tuple[str, str, str], Connection]]:
    """The parsed connections, and the connection feeding each fed input, after the
    names of the spec are checked."""
    if not models:
        raise LinkError("nothing to link: give at least one model")
    for alias in models:
        if not is_symbol_name(alias):
            raise LinkError(f"model alias {alias!r} must be a name (letters, digits, _)")
    if not is_symbol_name(name):
        raise LinkError(f"entry point name {name!r} must be a name (letters, digits, _)")
    if not connects:
        raise LinkError("no --connect given: say which output feeds which input, e.g. "
                        "--connect \"A.forward.out0 -> B.forward.in0\"")
    conns = [parse_connect(s, models) for s in connects]
    fed: dict[tuple[str, str, str], Connection] = {}
    for c in conns:
        key = (c.target.alias, c.target.entry, c.target.port)
        if key in fed:
            raise LinkError(f"input {c.target} is fed twice: by {fed[key].spec!r} and "
                            f"{c.spec!r}")
        fed[key] = c
    return conns, fed


def _call_in_order(program: Program, fn: Function, models: Mapping[str, Model],
                   order: list[tuple[str, str]],
                   fed: Mapping[tuple[str, str, str], Connection],
                   params: Mapping[tuple[str, str, str], Value]
                   ) -> dict[tuple[str, str, str], Value]:
    """Append to ``fn`` a call of each linked entry point in dependency order (seams
    checked); return the value of every output by (alias, entry, port)."""
    from .capture.verify import call_result_types

    results: dict[tuple[str, str, str], Value] = {}
    for alias, ename in order:
        m = models[alias]
        e = m.program.entries[ename]
        args: list[Value] = []
        sources: list[Source] = []
        for p in e.inputs:
            conn = fed.get((alias, ename, p.name))
            if conn is None:
                args.append(params[(alias, ename, p.name)])
                sources.append(Source())
            else:
                s = conn.source
                args.append(results[(s.alias, s.entry, s.port)])
                sources.append(Source(f"{describe(s.alias, models[s.alias].path)}",
                                      s.entry, s.port))
        check_seam(describe(alias, m.path), e, [v.aval for v in args], sources)
        callee = program.functions[f"{alias}/{e.function}"]
        avals = call_result_types(callee, [v.aval for v in args],
                                  f"call of {alias}.{ename}")
        node = Node("call", args, {"callee": callee.name}, [])
        for a in avals:
            node.outputs.append(Value(fn.fresh_name(), a, node, fn))
        fn.nodes.append(node)
        for p, v in zip(e.outputs, node.outputs):
            results[(alias, ename, p.name)] = v
    return results


def _chosen_outputs(models: Mapping[str, Model], order: list[tuple[str, str]],
                    conns: list[Connection], outputs: Sequence[str] | None
                    ) -> list[tuple[str, str, str]]:
    """The linked entry point's outputs: those named by ``outputs``, else every output
    no connection consumes."""
    if outputs:
        chosen = []
        for text in outputs:
            r = parse_ref(text, models, True, f"--output {text}")
            if (r.alias, r.entry) not in order:
                raise LinkError(f"--output {text!r}: {r.alias}.{r.entry} is not part of the "
                                f"link (name it in a --connect)")
            chosen.append((r.alias, r.entry, r.port))
        return chosen
    consumed = {(c.source.alias, c.source.entry, c.source.port) for c in conns}
    chosen = [(a, en, p.name) for a, en in order
              for p in models[a].program.entries[en].outputs
              if (a, en, p.name) not in consumed]
    if not chosen:
        raise LinkError("every output is consumed by a connection; name the outputs "
                        "of the linked entry point with --output MODEL.ENTRY.PORT")
    return chosen


def _vector_inputs(models: Mapping[str, Model], free: list[tuple[str, str, Port]],
                   in_names: list[str], entry: EntryPoint, k: int,
                   rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Inputs for vector ``k``: each free input from its model's own test vectors where
    their sizes agree, otherwise random."""
    env: dict[str, int] = {}
    out: dict[str, np.ndarray] = {}
    pending: list[tuple[str, Port]] = []
    for (alias, ename, p), pname in zip(free, in_names):
        tvs = [tv for tv in models[alias].program.test_vectors if tv.entry == ename]
        cand = tvs[k % len(tvs)].inputs.get(p.name) if tvs else None
        if cand is not None and _binds(p, cand.shape, env):
            out[pname] = np.array(cand, copy=True)
        else:
            pending.append((pname, p))
    for _pname, p in pending:
        for d in p.shape:
            if isinstance(d, DimExpr) and d.is_symbol() and d.name not in env:
                env[d.name] = (2, 5, 3)[k % 3]
    sub = EntryPoint(entry.name, entry.function, [Port(n, p.aval) for n, p in pending], [],
                     None, entry.input_ranges)
    out.update(random_inputs(sub, env, rng))
    return out, env


def _binds(p: Port, shape: tuple[int, ...], env: dict[str, int]) -> bool:
    if len(shape) != len(p.shape):
        return False
    new = dict(env)
    for d, n in zip(p.shape, shape):
        if isinstance(d, DimExpr):
            if d.name in new and new[d.name] != n:
                return False
            new[d.name] = int(n)
        elif d != n:
            return False
    env.update(new)
    return True


def _prove(program: Program, entry: EntryPoint, models: Mapping[str, Model],
           order: list[tuple[str, str]], conns: Sequence[Connection],
           fed: Mapping[tuple[str, str, str], Connection], free: list[tuple[str, str, Port]],
           in_names: list[str], chosen: list[tuple[str, str, str]], check: bool
           ) -> list[TestVector]:
    """Run the models one after the other (each with its own interpreter) and the
    linked program; they must agree. Returns the test vectors."""
    from .interpreter import Interpreter

    interp = Interpreter(program)
    rng = np.random.default_rng(0)
    n = max([sum(tv.entry == en for tv in models[a].program.test_vectors)
             for a, en in order] + [2])
    vectors = []
    free_key = {(a, en, p.name): pname for (a, en, p), pname in zip(free, in_names)}
    for k in range(min(n, MAX_LINK_VECTORS)):
        inputs, env = _vector_inputs(models, free, in_names, entry, k, rng)
        values: dict[tuple[str, str, str], np.ndarray] = {}
        try:
            for alias, ename in order:
                e = models[alias].program.entries[ename]
                args = {}
                for p in e.inputs:
                    c = fed.get((alias, ename, p.name))
                    if c is None:
                        args[p.name] = inputs[free_key[(alias, ename, p.name)]]
                    else:
                        s = c.source
                        args[p.name] = values[(s.alias, s.entry, s.port)]
                outs = models[alias]._interp.run(ename, **args)
                for p, a in zip(e.outputs, outs):
                    values[(alias, ename, p.name)] = a
        except AmberError as err:
            raise LinkError(f"cannot prove the link: running the models one after the other "
                            f"failed on test inputs ({err})") from err
        want = [values[c] for c in chosen]
        if check:
            got = interp.run(entry.name, **inputs)
            for port, g, w in zip(entry.outputs, got, want):
                rtol, atol = vector_tolerance(port.dtype.name, w)
                if g.dtype != w.dtype or not within_tolerance(g, w, rtol, atol):
                    raise LinkError(f"the linked program's output {port.name!r} differs from "
                                    f"running the models one after the other (max error "
                                    f"{max_error(g, w):.3g})")
        dims = {s: int(v) for s, v in env.items() if s in entry.symbols}
        for p in entry.inputs:
            for d, size in zip(p.shape, inputs[p.name].shape):
                if isinstance(d, DimExpr):
                    dims[d.name] = int(size)
        vectors.append(TestVector(
            entry.name, inputs, {p.name: np.array(w, copy=True)
                                 for p, w in zip(entry.outputs, want)},
            {p.name: vector_tolerance(p.dtype.name, w) for p, w in zip(entry.outputs, want)},
            dims))
    return vectors


# ----------------------------------------------------------------------------- diff


@dataclass
class Diff:
    """What differs between two programs. ``identical`` is True when the entry points,
    signatures, functions and weights (by content hash) are all equal; metadata and
    test vectors are reported in ``notes`` but do not count."""

    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.lines

    def __str__(self) -> str:
        body = self.lines or ["identical: same entry points, signatures, functions and "
                              "weights"]
        return "\n".join(body + self.notes)


def _hist(program: Program) -> dict[str, int]:
    total: dict[str, int] = {}
    for f in program.functions.values():
        for op, k in f.op_histogram().items():
            total[op] = total.get(op, 0) + k
    return total


def _fmt_hist_change(a: Mapping[str, int], b: Mapping[str, int]) -> str:
    ops = sorted(set(a) | set(b))
    return ", ".join(f"{op} {a.get(op, 0)} -> {b.get(op, 0)}" for op in ops
                     if a.get(op, 0) != b.get(op, 0))


def diff(a: Program, b: Program, name_a: str = "A", name_b: str = "B") -> Diff:
    """Compare two programs (see :class:`Diff`)."""
    d = Diff()
    out = d.lines
    for e in a.entries:
        if e not in b.entries:
            out.append(f"entry point {e}: only in {name_a}: {a.entries[e]}")
    for e in b.entries:
        if e not in a.entries:
            out.append(f"entry point {e}: only in {name_b}: {b.entries[e]}")
        elif str(a.entries[e]) != str(b.entries[e]) or \
                a.entries[e].function != b.entries[e].function:
            out.append(f"entry point {e}: signature changed\n  {name_a}: {a.entries[e]}\n"
                       f"  {name_b}: {b.entries[e]}")
    for f in a.functions:
        if f not in b.functions:
            out.append(f"function {f}: only in {name_a} ({len(a.functions[f].nodes)} nodes)")
    for f in b.functions:
        if f not in a.functions:
            out.append(f"function {f}: only in {name_b} ({len(b.functions[f].nodes)} nodes)")
        elif function_key(a.functions[f]) != function_key(b.functions[f]):
            fa, fb = a.functions[f], b.functions[f]
            change = _fmt_hist_change(fa.op_histogram(), fb.op_histogram())
            out.append(f"function {f}: changed ({len(fa.nodes)} -> {len(fb.nodes)} nodes"
                       + (f"; {change}" if change else "; same op counts") + ")")
    ha, hb = _hist(a), _hist(b)
    if ha != hb:
        out.append(f"op histogram: {_fmt_hist_change(ha, hb)}")
    same = 0
    for w in sorted(set(a.weights) | set(b.weights)):
        wa, wb = a.weights.get(w), b.weights.get(w)
        if wb is None:
            assert wa is not None
            out.append(f"weight {w}: only in {name_a} ({_wtype(wa)}, "
                       f"sha256 {content_hash(wa)[:12]})")
        elif wa is None:
            out.append(f"weight {w}: only in {name_b} ({_wtype(wb)}, "
                       f"sha256 {content_hash(wb)[:12]})")
        else:
            ca, cb = content_hash(wa), content_hash(wb)
            if ca == cb:
                same += 1
                continue
            if wa.dtype == wb.dtype and wa.shape == wb.shape:
                delta = max_error(wb, wa)
                out.append(f"weight {w}: changed ({_wtype(wa)}, sha256 {ca[:12]} -> "
                           f"{cb[:12]}, max abs change {delta:.3g})")
            else:
                out.append(f"weight {w}: changed type {_wtype(wa)} -> {_wtype(wb)} "
                           f"(sha256 {ca[:12]} -> {cb[:12]})")
    if a.opset_version != b.opset_version:
        out.append(f"opset version: {a.opset_version} -> {b.opset_version}")
    d.notes.append(f"weights: {same} identical by content hash, "
                   f"{len(set(a.weights) | set(b.weights)) - same} differ")
    ua = (a.metadata or {}).get("user") or {}
    ub = (b.metadata or {}).get("user") or {}
    if ua != ub:
        d.notes.append(f"note: user metadata differs: {ua} vs {ub}")
    if len(a.test_vectors) != len(b.test_vectors):
        d.notes.append(f"note: {len(a.test_vectors)} vs {len(b.test_vectors)} test vectors")
    return d


def _wtype(a: np.ndarray) -> str:
    name = "bool" if a.dtype == np.bool_ else a.dtype.name
    return f"{name}[{', '.join(str(int(x)) for x in a.shape)}]"


__all__ = ["Connection", "Diff", "PortRef", "diff", "link", "parse_connect",
           "parse_model_arg", "parse_ref"]
