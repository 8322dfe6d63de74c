"""Python control flow captured exactly: ``if``, ``while`` and ``for`` whose conditions
depend on tensor values or symbolic sizes become ``cond`` and ``while`` nodes.

During capture only, the user's functions (and the functions, methods and modules they
call, defined outside amber) are rewritten from their source, as TensorFlow's AutoGraph
does: each ``if``/``while``/``for`` becomes a call into :mod:`amber.capture.ag_runtime`
with the statement's blocks as nested functions that share the enclosing variables
(``nonlocal``). At run time the call looks at the condition: a plain Python value runs
the statement as Python would; a traced value emits ``am.cond``/``am.while_loop`` with the
variables the blocks assign as operands and carries (found here, not declared).

Before that, ``break``/``continue`` inside loops become flags that guard the rest of the
loop body, and an ``if`` whose branch returns takes the rest of the block as its
``else``, so a function returns from one place. Eager execution never sees any of this.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from typing import Any

from ..errors import CaptureError

AG = "__ag"  # the runtime module's name inside converted code


# ----------------------------------------------------------------------------- analysis


def _assigned(stmts: list[ast.stmt]) -> list[str]:
    """Names bound by ``stmts`` (in order), not looking into nested functions, classes,
    lambdas or comprehensions (which have their own scopes)."""
    out: list[str] = []

    def add(name: str) -> None:
        if name not in out:
            out.append(name)

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            add(node.name)
            return
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                             ast.GeneratorExp)):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                add((a.asname or a.name).split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child)

    for s in stmts:
        visit(s)
    return [n for n in out if not n.startswith(f"{AG}_tmp")]


def _appended(stmts: list[ast.stmt]) -> list[str]:
    """Names of lists a block grows with ``name.append(...)``/``name.extend(...)``."""
    out: list[str] = []
    for s in stmts:
        for n in ast.walk(s):
            if not isinstance(n, ast.Call):
                continue
            f = n.func  # name.append(x), or __ag.call(name.append, x) once calls are rewritten
            if isinstance(f, ast.Attribute) and f.attr == "call" and n.args:
                f = n.args[0]
            if isinstance(f, ast.Attribute) and f.attr in ("append", "extend") \
                    and isinstance(f.value, ast.Name) and f.value.id not in out:
                out.append(f.value.id)
    return out


def _contains(stmts: list[ast.stmt], kinds: tuple[type, ...], loops: bool = True) -> bool:
    """Whether ``stmts`` hold a statement of ``kinds`` at this level (into ``if``
    bodies, and into loops when ``loops``), not inside nested functions."""
    for s in stmts:
        if isinstance(s, kinds):
            return True
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(s, (ast.While, ast.For)) and not loops:
            continue
        for field in ("body", "orelse", "handlers", "finalbody"):
            sub = getattr(s, field, None)
            if isinstance(sub, list) and sub and isinstance(sub[0], ast.stmt):
                if _contains(sub, kinds, loops):
                    return True
            if field == "handlers" and sub:
                for h in sub:
                    if _contains(h.body, kinds, loops):
                        return True
    return False


def _always_returns(stmts: list[ast.stmt]) -> bool:
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return _always_returns(last.body) and _always_returns(last.orelse)
    return False


def _each_block(s: ast.stmt, fn: Any) -> None:
    """Replace each statement list directly inside ``s`` by ``fn(list)``."""
    for field in ("body", "orelse", "finalbody"):
        sub = getattr(s, field, None)
        if isinstance(sub, list) and sub and isinstance(sub[0], ast.stmt):
            setattr(s, field, fn(sub))
    for h in getattr(s, "handlers", None) or ():
        h.body = fn(h.body)


def _mark_breaks(stmts: list[ast.stmt], flag: str) -> list[ast.stmt]:
    """``stmts`` with ``flag = True`` before each ``break`` of this loop (not of loops or
    functions nested in it)."""
    out: list[ast.stmt] = []
    for s in stmts:
        if isinstance(s, ast.Break):
            out += [ast.copy_location(ast.parse(f"{flag} = True").body[0], s), s]
            continue
        if not isinstance(s, (ast.While, ast.For, ast.FunctionDef, ast.AsyncFunctionDef,
                              ast.ClassDef)):
            _each_block(s, lambda b: _mark_breaks(b, flag))
        out.append(s)
    return out


# ----------------------------------------------------------------------------- rewriting

def _call(fn: str, *args: ast.expr, **kwargs: ast.expr) -> ast.Call:
    return ast.Call(ast.Attribute(ast.Name(AG, ast.Load()), fn, ast.Load()), list(args),
                    [ast.keyword(k, v) for k, v in kwargs.items()])


def _const(v: Any) -> ast.Constant:
    return ast.Constant(v)


class _Converter:
    def __init__(self, filename: str, first_line: int) -> None:
        self.filename, self.first_line = filename, first_line
        self.counter = 0

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{AG}_{base}_{self.counter}"

    def where(self, node: ast.AST) -> ast.Constant:
        return _const(f"{self.filename}:{getattr(node, 'lineno', 0) + self.first_line - 1}")

    # -- returns: an `if` whose branch returns takes the rest of the block as `else` ----
    def fold_returns(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for i, s in enumerate(stmts):
            if isinstance(s, ast.If):
                s.body = self.fold_returns(s.body)
                s.orelse = self.fold_returns(s.orelse)
                rest = stmts[i + 1:]
                if rest and (_contains(s.body, (ast.Return,), loops=False)
                             or _contains(s.orelse, (ast.Return,), loops=False)):
                    rest = self.fold_returns(rest)
                    if not _always_returns(s.body):
                        s.body = s.body + rest
                    if not _always_returns(s.orelse):
                        s.orelse = s.orelse + rest
                    out.append(s)
                    return out
            elif isinstance(s, (ast.While, ast.For)):
                s.body = self.fold_returns(s.body)
            out.append(s)
        return out

    # -- loop `else`: runs when the loop ends without break -----------------------------
    def lower_loop_else(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        """``while c: B else: E`` -> ``flag = False; while c: B'; if not flag: E`` where
        ``B'`` sets ``flag`` before each of its own ``break`` (without a break: ``E``
        after the loop); so the ``else`` converts like any ``if``."""
        out: list[ast.stmt] = []
        for s in stmts:
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.append(s)
                continue
            _each_block(s, self.lower_loop_else)
            if not isinstance(s, (ast.While, ast.For)) or not s.orelse:
                out.append(s)
                continue
            orelse, s.orelse = s.orelse, []
            if not _contains(s.body, (ast.Break,), loops=False):
                out += [s, *orelse]
                continue
            flag = self.fresh("else")
            s.body = _mark_breaks(s.body, flag)
            guard = ast.If(ast.UnaryOp(ast.Not(), ast.Name(flag, ast.Load())), orelse, [])
            out += [ast.copy_location(ast.parse(f"{flag} = False").body[0], s), s,
                    ast.copy_location(guard, s)]
        return out

    # -- break / continue: flags guarding the rest of the body ------------------------
    def lower_jumps(self, body: list[ast.stmt], brk: str | None, cont: str | None
                    ) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for i, s in enumerate(body):
            if isinstance(s, ast.Break) and brk is not None:
                out.append(ast.parse(f"{brk} = True").body[0])
                return out
            if isinstance(s, ast.Continue) and cont is not None:
                out.append(ast.parse(f"{cont} = True").body[0])
                return out
            jumps = [f for f, kind in ((brk, ast.Break), (cont, ast.Continue))
                     if f is not None and _contains([s], (kind,), loops=False)]
            if isinstance(s, ast.If):
                s.body = self.lower_jumps(s.body, brk, cont)
                s.orelse = self.lower_jumps(s.orelse, brk, cont)
            out.append(s)
            if jumps and not isinstance(s, (ast.Break, ast.Continue)) and body[i + 1:]:
                rest = self.lower_jumps(body[i + 1:], brk, cont)
                guard = ast.If(self.none_of(jumps), rest, [])
                out.append(ast.copy_location(guard, s))
                return out
        return out

    @staticmethod
    def none_of(flags: list[str]) -> ast.expr:
        return _call("none_of", *[ast.Name(f, ast.Load()) for f in flags])

    # -- statements ---------------------------------------------------------------
    def block(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for s in stmts:
            out.extend(self.stmt(s))
        return out or [ast.Pass()]

    def stmt(self, s: ast.stmt) -> list[ast.stmt]:
        if isinstance(s, ast.If):
            return self.convert_if(s)
        if isinstance(s, ast.While) and not s.orelse:
            return self.convert_while(s)
        if isinstance(s, ast.For) and not s.orelse:
            return self.convert_for(s)
        if isinstance(s, (ast.While, ast.For)):
            s.body = self.block(s.body)
            s.orelse = self.block(s.orelse)
        elif isinstance(s, (ast.With, ast.Try)):
            for field in ("body", "orelse", "finalbody"):
                if getattr(s, field, None):
                    setattr(s, field, self.block(getattr(s, field)))
        return [s]

    def state_fns(self, tag: str, names: list[str]) -> list[ast.stmt]:
        """``get_N()`` returning the names' values and ``set_N(values)`` assigning them."""
        tup = ", ".join(names) + ("," if len(names) == 1 else "")
        nl = f"nonlocal {', '.join(names)}\n    " if names else ""
        src = (f"def {AG}_get_{tag}():\n    return ({tup})\n"
               f"def {AG}_set_{tag}({AG}_v):\n    {nl}({tup}) = {AG}_v\n" if names else
               f"def {AG}_get_{tag}():\n    return ()\n"
               f"def {AG}_set_{tag}({AG}_v):\n    pass\n")
        return ast.parse(src).body

    def nested(self, name: str, names: list[str], body: list[ast.stmt],
               args: list[str] = ()) -> ast.FunctionDef:  # type: ignore[assignment]
        head: list[ast.stmt] = [ast.Nonlocal(list(names))] if names else []
        fn = ast.parse(f"def {name}({', '.join(args)}):\n    pass").body[0]
        assert isinstance(fn, ast.FunctionDef)
        fn.body = head + body
        return fn

    def convert_if(self, s: ast.If) -> list[ast.stmt]:
        self.counter += 1
        tag = str(self.counter)
        names = _assigned(s.body + s.orelse)
        returns = _contains(s.body + s.orelse, (ast.Return,))
        t = self.nested(f"{AG}_if_true_{tag}", names, self.returning(s.body, returns))
        f = self.nested(f"{AG}_if_false_{tag}", names, self.returning(s.orelse, returns))
        call = _call("if_stmt", self.test(s.test), ast.Name(t.name, ast.Load()),
                     ast.Name(f.name, ast.Load()), ast.Name(f"{AG}_get_{tag}", ast.Load()),
                     ast.Name(f"{AG}_set_{tag}", ast.Load()),
                     ast.Tuple([_const(n) for n in names], ast.Load()), self.where(s),
                     _const(returns), self.loaded(s.body + s.orelse))
        return [t, f, *self.state_fns(tag, names), *self.propagate(call, s, returns)]

    def returning(self, stmts: list[ast.stmt], returns: bool) -> list[ast.stmt]:
        """A block as a nested function's body; with ``returns``, falling off its end
        returns ``NO_RETURN`` (so a ``return`` inside can be told apart)."""
        body = self.block(stmts)
        if returns and not _always_returns(stmts):
            body = [*body, ast.Return(ast.Attribute(ast.Name(AG, ast.Load()), "NO_RETURN",
                                                    ast.Load()))]
        return body

    def propagate(self, call: ast.Call, s: ast.stmt, returns: bool) -> list[ast.stmt]:
        """The statement's call; when its blocks may ``return``, pass the value on."""
        if not returns:
            return [ast.copy_location(ast.Expr(call), s)]
        r = self.fresh("ret")
        out = ast.parse(f"{r} = None\nif {r} is not {AG}.NO_RETURN:\n    return {r}").body
        assign = out[0]
        assert isinstance(assign, ast.Assign)
        assign.value = call
        return [ast.copy_location(st, s) for st in out]

    def loaded(self, stmts: list[ast.stmt]) -> ast.Tuple:
        """The names a block reads (to catch Python objects it mutates)."""
        seen: list[str] = []
        for s in stmts:
            for n in ast.walk(s):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) \
                        and not n.id.startswith(AG) and n.id not in seen:
                    seen.append(n.id)
        return ast.Tuple([_const(n) for n in seen], ast.Load())

    def loop_parts(self, s: ast.While | ast.For, extra: list[str]
                   ) -> tuple[str, list[str], list[ast.stmt], str | None, str | None]:
        self.counter += 1
        tag = str(self.counter)
        brk = f"{AG}_brk_{tag}" if _contains(s.body, (ast.Break,), loops=False) else None
        cont = f"{AG}_cont_{tag}" if _contains(s.body, (ast.Continue,), loops=False) else None
        body = self.lower_jumps(s.body, brk, cont)
        if cont is not None:
            body = [ast.parse(f"{cont} = False").body[0], *body]
        pre = [ast.parse(f"{brk} = False").body[0]] if brk is not None else []
        names = _assigned(pre + body) + [n for n in extra if n not in _assigned(body)]
        names += [n for n in _appended(body) if n not in names]
        return tag, names, pre + body, brk, cont

    def convert_while(self, s: ast.While) -> list[ast.stmt]:
        tag, names, body, brk, _ = self.loop_parts(s, [])
        pre = body[:1] if brk is not None else []
        body = body[1:] if brk is not None else body
        test_fn = ast.parse(f"def {AG}_test_{tag}():\n    return None").body[0]
        assert isinstance(test_fn, ast.FunctionDef)
        test: ast.expr = self.test(s.test)
        if brk is not None:
            test = _call("and_not", ast.Name(brk, ast.Load()),
                         ast.Lambda(ast.arguments([], [], None, [], [], None, []), test))
        test_fn.body = [ast.Return(test)]
        returns = _contains(s.body, (ast.Return,))
        b = self.nested(f"{AG}_body_{tag}", names, self.returning(body, returns))
        call = _call("while_stmt", ast.Name(test_fn.name, ast.Load()),
                     ast.Name(b.name, ast.Load()), ast.Name(f"{AG}_get_{tag}", ast.Load()),
                     ast.Name(f"{AG}_set_{tag}", ast.Load()),
                     ast.Tuple([_const(n) for n in names], ast.Load()), self.where(s),
                     _const(returns), self.loaded(s.body))
        return [*pre, test_fn, b, *self.state_fns(tag, names),
                *self.propagate(call, s, returns)]

    def convert_for(self, s: ast.For) -> list[ast.stmt]:
        targets = _assigned([ast.Assign([s.target], _const(0))])
        tag, names, body, brk, _ = self.loop_parts(s, targets)
        pre = body[:1] if brk is not None else []
        body = body[1:] if brk is not None else body
        item = f"{AG}_item_{tag}"
        assign = ast.Assign([s.target], ast.Name(item, ast.Load()))
        ast.copy_location(assign, s)
        returns = _contains(s.body, (ast.Return,))
        b = self.nested(f"{AG}_body_{tag}", names,
                        [assign, *self.returning(body, returns)], [item])
        extra = (ast.Lambda(ast.arguments([], [], None, [], [], None, []),
                            _call("none_of", ast.Name(brk, ast.Load())))
                 if brk is not None else _const(None))
        it = s.iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range":
            it = _call("range_", *it.args)
        call = _call("for_stmt", it, ast.Name(b.name, ast.Load()),
                     ast.Name(f"{AG}_get_{tag}", ast.Load()),
                     ast.Name(f"{AG}_set_{tag}", ast.Load()),
                     ast.Tuple([_const(n) for n in names], ast.Load()), self.where(s),
                     _const(returns), self.loaded(s.body), extra)
        return [*pre, b, *self.state_fns(tag, names), *self.propagate(call, s, returns)]

    # -- expressions: conditions that may compare symbolic sizes ----------------------
    def test(self, e: ast.expr) -> ast.expr:
        return _TestRewriter().visit(e)


class _TestRewriter(ast.NodeTransformer):
    """Inside a condition: ``a < b`` -> ``__ag.compare('<', a, b)`` (symbolic sizes become
    tensors), ``not a`` -> ``__ag.not_(a)``, ``a and b`` -> ``__ag.and_(a, lambda: b)``."""

    OPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
           ast.NotEq: "!="}

    def visit_Compare(self, node: ast.Compare) -> ast.expr:
        self.generic_visit(node)
        if not all(type(op) in self.OPS for op in node.ops):
            return node
        left, out = node.left, None
        for op, right in zip(node.ops, node.comparators):
            cmp = _call("compare", _const(self.OPS[type(op)]), left, right)
            out = cmp if out is None else _call("and_", out, _lazy(cmp))
            left = right
        assert out is not None
        return ast.copy_location(out, node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.expr:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return ast.copy_location(_call("not_", node.operand), node)
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.expr:
        self.generic_visit(node)
        fn = "and_" if isinstance(node.op, ast.And) else "or_"
        out = node.values[0]
        for v in node.values[1:]:
            out = _call(fn, out, _lazy(v))
        return ast.copy_location(out, node)

    def visit_Lambda(self, node: ast.Lambda) -> ast.expr:
        return node


def _lazy(e: ast.expr) -> ast.Lambda:
    return ast.Lambda(ast.arguments([], [], None, [], [], None, []), e)


class _CallRewriter(ast.NodeTransformer):
    """``f(args)`` -> ``__ag.call(f, args)`` so the user's callees are converted too;
    zero-argument ``super()`` gets its arguments (the function now lives outside its
    class body)."""

    def __init__(self, first_arg: str | None) -> None:
        self.first_arg = first_arg

    def visit_Call(self, node: ast.Call) -> ast.expr:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "super" and not node.args:
            if self.first_arg is None:
                return node
            node.args = [ast.Name("__class__", ast.Load()), ast.Name(self.first_arg,
                                                                      ast.Load())]
            return node
        if isinstance(node.func, ast.Name) and node.func.id.startswith(AG):
            return node
        if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) \
                and node.func.value.id == AG:
            return node
        return ast.copy_location(ast.Call(
            ast.Attribute(ast.Name(AG, ast.Load()), "call", ast.Load()),
            [node.func, *node.args], node.keywords), node)

    def visit_IfExp(self, node: ast.IfExp) -> ast.expr:
        self.generic_visit(node)
        return ast.copy_location(_call("if_exp", _TestRewriter().visit(node.test),
                                       _lazy(node.body), _lazy(node.orelse)), node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return node  # nested user functions are converted when they are called

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]


# ----------------------------------------------------------------------------- compiling


def _source(fn: types.FunctionType) -> tuple[ast.FunctionDef, str, int]:
    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError) as e:
        raise _NotConvertible(str(e)) from None
    src = textwrap.dedent("".join(lines))
    try:
        tree = ast.parse(src)
    except SyntaxError as e:  # e.g. a lambda in the middle of an expression
        raise _NotConvertible(str(e)) from None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef) or node.name != fn.__name__:
        raise _NotConvertible("not a def statement")
    return node, inspect.getsourcefile(fn) or fn.__code__.co_filename, first


class _NotConvertible(Exception):
    pass


def _transform(fn: types.FunctionType) -> types.CodeType:
    node, filename, first = _source(fn)
    node.decorator_list = []
    _drop_defaults(node.args)
    conv = _Converter(filename, first)
    node.body = conv.lower_loop_else(node.body)  # before the locals are listed below
    body = conv.fold_returns(node.body)
    first_arg = node.args.args[0].arg if node.args.args else None
    body = [_CallRewriter(first_arg).visit(s) for s in body]
    params = {a.arg for a in (*node.args.posonlyargs, *node.args.args,
                              *node.args.kwonlyargs)}
    params |= {a.arg for a in (node.args.vararg, node.args.kwarg) if a is not None}
    glob = {n for s in ast.walk(ast.Module(body, [])) if isinstance(s, (ast.Global,
                                                                       ast.Nonlocal))
            for n in s.names}
    new_body = conv.block(body)
    local = [n for n in _assigned(node.body) if n not in params and n not in glob]
    init = [ast.parse(f"{n} = {AG}.UNDEFINED").body[0] for n in local]
    node.body = init + new_body
    freevars = list(fn.__code__.co_freevars)
    factory = ast.parse(f"def {AG}_factory({', '.join([AG, *freevars])}):\n    pass").body[0]
    assert isinstance(factory, ast.FunctionDef)
    # NOTE: renamed, so the function's own name inside it still means the global (a
    # graph function, or the original function, which is converted again when called)
    node.name = f"{AG}_converted"
    factory.body = [node, ast.Return(ast.Name(node.name, ast.Load()))]
    module = ast.Module([factory], [])
    ast.fix_missing_locations(module)
    ast.increment_lineno(module, first - 1)
    code = compile(module, filename, "exec")
    factory_code = next(c for c in code.co_consts if isinstance(c, types.CodeType))
    return _renamed(factory_code, f"{AG}_factory.<locals>.{AG}_converted", fn.__qualname__)


def _drop_defaults(args: ast.arguments) -> None:
    """Blank the default values of a converted ``def``.

    NOTE: they are evaluated where the ``def`` runs, which for the converted copy is the
    factory, not the user's scope (``def f(x, m=m)`` in a loop names a local the factory
    lacks); ``convert`` gives the copy the original's already-evaluated values instead.
    (Annotations are never evaluated: this module compiles with postponed annotations.)"""
    args.defaults = [ast.Constant(None) for _ in args.defaults]
    args.kw_defaults = [None if d is None else ast.Constant(None) for d in args.kw_defaults]


def _renamed(code: types.CodeType, old: str, new: str) -> types.CodeType:
    """``code`` with the qualified names of the functions inside it (lambdas, blocks)
    under the user's function's name, as the user's tracebacks and messages show it."""
    consts = tuple(_renamed(c, old, new) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    qual = code.co_qualname
    if qual.startswith(old):
        qual = new + qual[len(old):]
    return code.replace(co_consts=consts, co_qualname=qual)


_CACHE: dict[types.CodeType, types.CodeType | None] = {}


def _factory_code(fn: types.FunctionType) -> types.CodeType | None:
    code = fn.__code__
    if code not in _CACHE:
        try:
            _CACHE[code] = _transform(fn)
        except _NotConvertible:
            _CACHE[code] = None
    return _CACHE[code]


def convert(fn: types.FunctionType) -> types.FunctionType | None:
    """The converted version of a plain Python function (None if its source cannot be
    read: it is then called as it is)."""
    from . import ag_runtime

    factory_code = _factory_code(fn)
    if factory_code is None:
        return None
    factory = types.FunctionType(factory_code, fn.__globals__, f"{AG}_factory")
    cells = [c.cell_contents if _has(c) else ag_runtime.UNDEFINED
             for c in (fn.__closure__ or ())]
    new = factory(ag_runtime, *cells)
    new.__defaults__ = fn.__defaults__
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__dict__.update(fn.__dict__)
    new.__name__, new.__qualname__ = fn.__name__, fn.__qualname__
    new.__wrapped_by_amber__ = fn  # type: ignore[attr-defined]
    return new


def _has(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


__all__ = ["CaptureError", "convert"]
