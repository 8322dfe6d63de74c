"""What converted code calls (see :mod:`amber.capture.autograph`): each statement runs as
Python when its condition is a plain value, and as ``am.cond``/``am.while_loop`` when it
is a traced tensor or an undecided symbolic size.

Variables are passed between the statement and its blocks through ``get()``/``set()``
closures over the enclosing function's variables. Under a traced condition:

* tensors the blocks assign are the node's operands and results (loop carries);
* Python ``bool``/``int`` values the blocks assign become ``bool``/``int64`` tensors (a
  flag or a counter whose value now depends on the data); a Python value both branches
  leave equal stays Python;
* any other Python value must come out unchanged, and Python lists, dicts and sets the
  blocks read must not be mutated: such a side effect would happen once at capture,
  not per run, so it is refused at the user's line;
* a variable defined in only one branch (or only inside a loop body) becomes a
  placeholder that refuses any use, naming where it was left undefined."""

from __future__ import annotations

import contextlib
import operator
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import _dtype as D
from ..capture_errors import _is_library
from ..errors import CaptureError, ControlFlowError
from ..tensor import Tensor
from .dims import DimExpr

# ----------------------------------------------------------------------------- markers


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NO_RETURN = _Marker("NO_RETURN")


class Undefined:
    """A variable with no value on some path (or before its first assignment)."""

    __slots__ = ("_why",)
    _why: str

    def __init__(self, why: str) -> None:
        object.__setattr__(self, "_why", why)

    def _refuse(self, *_a: Any, **_k: Any) -> Any:
        raise CaptureError(self._why)

    __bool__ = __call__ = __getattr__ = __getitem__ = __iter__ = __len__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __neg__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = __array__ = __index__ = __float__ = _refuse

    def __repr__(self) -> str:
        return "<undefined>"


UNDEFINED = Undefined("a variable is used before it has a value")


def _undefined(name: str, where: str, why: str) -> Undefined:
    return Undefined(f"{where}\n  {name!r} {why}, so it has no value on every path when it "
                     f"is used. Assign it before the statement (or on every path).")


# ----------------------------------------------------------------------------- values


def _traced(x: Any) -> bool:
    return isinstance(x, Tensor) and x._data is None


def _refuse(where: str, what: str, fix: str) -> CaptureError:
    return CaptureError(f"{where}\n  {what}. {fix}")


def _pred(x: Any, where: str, what: str) -> Tensor:
    if not (isinstance(x, Tensor) and tuple(x.shape) == ()):
        raise _refuse(where, f"the condition of this {what} is a tensor of shape "
                      f"{tuple(x.shape)}", "Reduce it to one value with .any() or .all().")
    if x.dtype is not D.bool_:
        from .. import functional as _F

        x = _F.not_equal(x, _F.scalar(0, x.dtype))
    return x


def _as_tensor(x: Any) -> Any:
    if isinstance(x, DimExpr):
        from .trace import symbolic_scalar

        return symbolic_scalar(x, D.int64)
    return x


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne}


def compare(op: str, a: Any, b: Any) -> Any:
    """``a op b`` in a condition; an undecided comparison of symbolic sizes becomes a
    comparison of their run-time values (tensors)."""
    for x, y in ((a, b), (b, a)):
        if isinstance(x, DimExpr) and not isinstance(y, (float, Tensor)):
            flipped = op if x is a else {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
            decided = x._decide(y, flipped) if flipped in ("<", "<=", ">", ">=", "==") \
                else (None if x._decide(y, "==") is None else not x._decide(y, "=="))
            if decided is not None:
                return decided
            return _OPS[op](_as_tensor(a), _as_tensor(b))
    if isinstance(a, DimExpr) or isinstance(b, DimExpr):
        return _OPS[op](_as_tensor(a), _as_tensor(b))
    return _OPS[op](a, b)


def not_(a: Any) -> Any:
    if isinstance(a, Tensor):
        from .. import functional as _F

        return _F.logical_not(_pred(a, "", "condition") if a.dtype is not D.bool_ else a)
    return not a


def and_(a: Any, b: Callable[[], Any]) -> Any:
    if _traced(a):
        from .. import functional as _F

        return _F.logical_and(a, _bool_tensor(b()))
    return b() if a else a


def or_(a: Any, b: Callable[[], Any]) -> Any:
    if _traced(a):
        from .. import functional as _F

        return _F.logical_or(a, _bool_tensor(b()))
    return a if a else b()


def none_of(*flags: Any) -> Any:
    """``not (flag_1 or flag_2 ...)`` for break/continue/return flags."""
    if not any(_traced(f) for f in flags):
        return not any(bool(f) for f in flags)
    from .. import functional as _F

    out = _bool_tensor(flags[0])
    for f in flags[1:]:
        out = _F.logical_or(out, _bool_tensor(f))
    return _F.logical_not(out)


def and_not(flag: Any, test: Callable[[], Any]) -> Any:
    return and_(none_of(flag), test)


def _bool_tensor(x: Any) -> Tensor:
    if isinstance(x, Tensor):
        return x if x.dtype is D.bool_ else _pred(x, "", "condition")
    return Tensor(np.asarray(bool(x)))


# ----------------------------------------------------------------------------- calls


def _user_function(f: Any) -> bool:
    code = getattr(f, "__code__", None)
    if code is None or getattr(f, "__wrapped_by_amber__", None) is not None:
        return False
    if code.co_flags & (0x20 | 0x80 | 0x100 | 0x200):  # generators, coroutines
        return False
    return not _is_library(code.co_filename) and not code.co_filename.startswith("<")


def call(f: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``f`` converted when it is the user's code: a function, a method, or a
    module whose ``forward`` is the user's."""
    from . import autograph

    if f is range:
        return range_(*args)
    target = f
    if isinstance(f, types.MethodType) and isinstance(f.__func__, types.FunctionType) \
            and _user_function(f.__func__):
        new = autograph.convert(f.__func__)
        if new is not None:
            return new(f.__self__, *args, **kwargs)
    elif isinstance(f, types.FunctionType) and _user_function(f):
        new = autograph.convert(f)
        if new is not None:
            return new(*args, **kwargs)
    else:
        from ..nn.modules.module import Module

        if isinstance(f, Module):
            fwd = type(f).forward
            if isinstance(fwd, types.FunctionType) and _user_function(fwd):
                new = autograph.convert(fwd)
                if new is not None:
                    return new(f, *args, **kwargs)
    # a library function (am.grad, am.cond, am.scan, ...) gets the user's functions
    # converted: they run under this capture too
    args = tuple(_converted_arg(a) for a in args)
    kwargs = {k: _converted_arg(v) for k, v in kwargs.items()}
    return target(*args, **kwargs)


def _converted_arg(a: Any) -> Any:
    if isinstance(a, types.FunctionType) and _user_function(a):
        from . import autograph

        new = autograph.convert(a)
        return a if new is None else new
    return a


def range_(*args: Any) -> Any:
    """``range(...)`` in a ``for``: a Python range for Python ints, else a range whose
    bounds are tensors or symbolic sizes (the loop then becomes a ``while`` node)."""
    if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args):
        return range(*args)
    start, stop, step = (0, args[0], 1) if len(args) == 1 else (
        args[0], args[1], args[2] if len(args) > 2 else 1)
    if not isinstance(step, (int, np.integer)) or step == 0:
        raise CaptureError("range(): the step of a loop over tensor or symbolic bounds must "
                           "be a nonzero Python int")
    return SymRange(start, stop, int(step))


class SymRange:
    def __init__(self, start: Any, stop: Any, step: int) -> None:
        self.start, self.stop, self.step = start, stop, step

    def __iter__(self) -> Any:
        start, stop = (operator.index(x) for x in (self.start, self.stop))
        return iter(range(start, stop, self.step))


# ----------------------------------------------------------------------------- state


class _Watch:
    """Shallow copies of the Python containers a block reads, to refuse mutation."""

    def __init__(self, names: Sequence[str], frame: Any) -> None:
        self.items: list[tuple[str, Any, Any]] = []
        for n in names:
            v = frame.f_locals.get(n, frame.f_globals.get(n, UNDEFINED))
            if isinstance(v, (list, dict, set, _LoopList)):
                self.items.append((n, v, _shallow(v)))

    def check(self, where: str, what: str) -> None:
        for n, obj, before in self.items:
            if _shallow(obj) != before:
                kind = "list" if isinstance(obj, _LoopList) else type(obj).__name__
                raise _refuse(where, f"this {what} changes the Python {kind} "
                              f"{n!r}; the change would happen once while the program is "
                              f"captured, not on every run",
                              "Keep the values in tensors (am.where, am.stack, am.cat), or "
                              "change the container outside the statement.")


def _shallow(v: Any) -> Any:
    if isinstance(v, _LoopList):
        return [id(x) for x in v._added]
    if isinstance(v, dict):
        return [(k, id(x)) for k, x in v.items()]
    if isinstance(v, set):
        return sorted(id(x) for x in v)
    return [id(x) for x in v]


def _promote(v: Any, like: Tensor | None, name: str, where: str, what: str) -> Any:
    """A Python bool/int a traced block assigns, as a tensor (of ``like``'s dtype)."""
    if isinstance(v, Tensor):
        return v
    if isinstance(v, (bool, np.bool_, int, np.integer)):
        dt = like.dtype if like is not None else (D.bool_ if isinstance(v, (bool, np.bool_))
                                                  else D.int64)
        return Tensor(np.asarray(v, dtype=dt.np))
    if isinstance(v, (float, np.floating)):
        raise _refuse(where, f"{name!r} is a Python float that this {what} (which depends on "
                      f"a tensor) assigns", f"Make it a tensor before the {what}: "
                      f"{name} = am.tensor({name}).")
    return v


@contextlib.contextmanager
def stack_room(frames: int = 4000) -> Iterator[None]:
    """Converted code spends a few more Python frames per user call (the statement
    helpers); a capture gets room for ``max_recursion_depth`` levels of them."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, frames))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _caller(depth: int = 2) -> Any:
    return sys._getframe(depth)


# ----------------------------------------------------------------------------- if


def if_stmt(test: Any, true_fn: Callable[[], Any], false_fn: Callable[[], Any],
            get: Callable[[], tuple[Any, ...]], set_: Callable[[tuple[Any, ...]], None],
            names: tuple[str, ...], where: str, returns: bool, loaded: tuple[str, ...]
            ) -> Any:
    if not _traced(test):
        return (true_fn if test else false_fn)()
    pred = _pred(test, where, "if")
    watch = _Watch(loaded, _caller())
    return _IfTrace(pred, true_fn, false_fn, get, set_, names, where, returns, watch).run()


class _IfTrace:
    """One ``if`` on a traced condition: both blocks traced into ``am.cond``; the true
    block decides which variables are results, the false block conforms."""

    def __init__(self, pred: Tensor, t: Callable[[], Any], f: Callable[[], Any], get: Any,
                 set_: Any, names: tuple[str, ...], where: str, returns: bool,
                 watch: _Watch) -> None:
        self.pred, self.t, self.f, self.get, self.set = pred, t, f, get, set_
        self.names, self.where, self.returns, self.watch = names, where, returns, watch
        self.state0 = get()
        self.slots: list[int] = []        # indices of the variables that are results
        self.like: dict[int, Tensor] = {}  # the true block's tensor per slot
        self.after: dict[str, tuple[Any, ...]] = {}
        self.ret_kind: dict[str, bool] = {}

    def branch(self, which: str, fn: Callable[[], Any]) -> Any:
        self.set(self.state0)
        r = fn()
        self.watch.check(self.where, "if")
        returned = r is not NO_RETURN and self.returns
        self.ret_kind[which] = returned
        if which == "false" and returned != self.ret_kind["true"]:
            raise _refuse(self.where, "one branch of this if returns and the other does not",
                          "Return on both paths, or on neither (assign a variable and "
                          "return it after the if).")
        if returned:
            return r
        state = self.get()
        self.after[which] = state
        if which == "true":
            return self._true_results(state)
        return self._false_results(state)

    def _true_results(self, state: tuple[Any, ...]) -> list[Tensor]:
        out = []
        for i, (n, v) in enumerate(zip(self.names, state)):
            if isinstance(v, Undefined) or isinstance(v, (float, np.floating)):
                continue  # a float must come out equal (checked once both ran)
            v = _promote(v, None, n, self.where, "if")
            if isinstance(v, Tensor):
                self.slots.append(i)
                self.like[i] = v
                out.append(v)
        return out

    def _false_results(self, state: tuple[Any, ...]) -> list[Tensor]:
        from .control import _aval, _zeros

        out = []
        for i in self.slots:
            v = state[i]
            if isinstance(v, Undefined):
                v = _zeros(_aval(self.like[i]))  # never read: the variable is one-sided
            out.append(_promote(v, self.like[i], self.names[i], self.where, "if"))
        return out

    def run(self) -> Any:
        from .. import control

        try:
            res = control.cond(self.pred, lambda: self.branch("true", self.t),
                               lambda: self.branch("false", self.f))
        except ControlFlowError as e:
            raise _refuse(self.where, f"the branches of this if disagree: {e}",
                          "Give each variable one dtype and shape on both paths.") from None
        if self.ret_kind.get("true"):
            return res
        self._assign(res)
        return NO_RETURN if self.returns else None

    def _assign(self, res: list[Tensor]) -> None:
        t_state, f_state = self.after["true"], self.after["false"]
        final = list(self.state0)
        by_slot = dict(zip(self.slots, res))
        for i, n in enumerate(self.names):
            tv, fv = t_state[i], f_state[i]
            t_undef, f_undef = isinstance(tv, Undefined), isinstance(fv, Undefined)
            if t_undef and f_undef:
                final[i] = tv
            elif t_undef or f_undef:
                final[i] = _undefined(n, self.where, "is assigned in only one branch of this "
                                      "if (whose condition depends on a tensor)")
            elif not isinstance(tv, Tensor) and not isinstance(fv, Tensor) and (
                    tv is fv or _same_python(tv, fv)):
                final[i] = tv
            elif i in by_slot:
                final[i] = by_slot[i]
            else:
                raise _refuse(self.where, f"the branches of this if leave {n!r} as different "
                              f"Python objects ({_kind(tv)} and {_kind(fv)})",
                              "Only tensors (and Python bools and ints) may differ between "
                              "the branches of an if whose condition depends on a tensor.")
        self.set(tuple(final))


def _same_python(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _kind(v: Any) -> str:
    return f"a {type(v).__name__}"


def if_exp(test: Any, body: Callable[[], Any], orelse: Callable[[], Any]) -> Any:
    """``body() if test else orelse()``; a traced ``test`` makes it an ``am.cond``."""
    if not _traced(test):
        return body() if test else orelse()
    from .. import control

    return control.cond(_pred(test, "", "conditional expression"), body, orelse)


# ----------------------------------------------------------------------------- loops


def while_stmt(test: Callable[[], Any], body: Callable[[], Any],
               get: Callable[[], tuple[Any, ...]], set_: Callable[[tuple[Any, ...]], None],
               names: tuple[str, ...], where: str, returns: bool, loaded: tuple[str, ...]
               ) -> Any:
    while True:
        c = test()
        if _traced(c):
            break
        if not c:
            return NO_RETURN if returns else None
        r = body()
        if returns and r is not NO_RETURN:
            return r
    if returns:
        raise _refuse(where, "a return inside a loop whose condition depends on a tensor",
                      "Leave the loop with break and return after it.")
    _LoopTrace(test, lambda _i: body(), get, set_, names, where,
               _Watch(loaded, _caller()), None).run()
    return NO_RETURN if returns else None


def for_stmt(iterable: Any, body: Callable[[Any], Any], get: Callable[[], tuple[Any, ...]],
             set_: Callable[[tuple[Any, ...]], None], names: tuple[str, ...], where: str,
             returns: bool, loaded: tuple[str, ...], extra: Callable[[], Any] | None) -> Any:
    if _traced(iterable) and isinstance(iterable.shape[0], DimExpr):
        rows = iterable
        iterable = SymRange(0, iterable.shape[0], 1)
        item: Callable[[Any], Any] = lambda i: rows[i]
    else:
        item = lambda i: i
    if not isinstance(iterable, SymRange):
        for k, x in enumerate(iterable):
            r = body(x)
            if returns and r is not NO_RETURN:
                return r
            if extra is None:
                continue
            go = extra()
            if _traced(go):
                if not isinstance(iterable, range):
                    raise _refuse(where, "a break that depends on a tensor inside a loop over "
                                  "a Python iterable", "Loop over range(...) or use "
                                  "am.while_loop.")
                rest = range(iterable.start + (k + 1) * iterable.step, iterable.stop,
                             iterable.step)
                iterable = SymRange(rest.start, rest.stop, rest.step)
                break
            if not go:
                return NO_RETURN if returns else None
        else:
            return NO_RETURN if returns else None
    if returns:
        raise _refuse(where, "a return inside a loop over tensor or symbolic bounds",
                      "Leave the loop with break and return after it.")
    _LoopTrace(extra or (lambda: True), lambda i: body(item(i)), get, set_, names, where,
               _Watch(loaded, _caller()), iterable).run()
    return NO_RETURN if returns else None


class _LoopTrace:
    """A loop on traced values as one ``am.while_loop``: the carries are the variables the
    body assigns that hold tensors (or Python bools/ints, made tensors) at entry, plus
    the index of a ``for`` over a :class:`SymRange`."""

    def __init__(self, test: Callable[[], Any], body: Callable[[Any], Any], get: Any,
                 set_: Any, names: tuple[str, ...], where: str, watch: _Watch,
                 rng: SymRange | None) -> None:
        self.test, self.body, self.get, self.set = test, body, get, set_
        self.names, self.where, self.watch, self.rng = names, where, watch, rng
        self.state0 = list(get())
        self.slots = [i for i, (n, v) in enumerate(zip(names, self.state0))
                      if isinstance(_promote(v, None, n, where, "loop"), Tensor)]
        self.fixed = {i: v for i, v in enumerate(self.state0) if i not in self.slots}
        self.lists = {i: list(v) for i, v in self.fixed.items() if isinstance(v, list)}
        for i, v in self.fixed.items():
            if isinstance(v, _LoopList):
                raise _refuse(where, f"this loop (whose condition depends on a tensor) may "
                              f"change the list {names[i]!r} that an enclosing loop grows",
                              "Append to it only in the enclosing loop's own body (collect "
                              "this loop's items in a list of its own and stack them).")
        self.proxies: dict[int, _LoopList] = {}
        self.grown: list[int] = []

    def _load(self, carry: tuple[Tensor, ...]) -> Any:
        state = list(self.state0)
        for i, v in zip(self.slots, carry[1:] if self.rng else carry):
            state[i] = v
        # the lists the body may grow: while tracing, one iteration stands for all of
        # them, so only appending is allowed (their length is the data's)
        self.proxies = {i: _LoopList(self.names[i], self.where) for i in self.lists}
        for i, p in self.proxies.items():
            state[i] = p
        self.set(tuple(state))
        return carry[0] if self.rng else None

    def cond(self, carry: tuple[Tensor, ...]) -> Any:
        index = self._load(carry)
        go = self.test()
        if self.rng is not None:
            from .. import functional as _F

            stop = _as_tensor(self.rng.stop)
            more = index < stop if self.rng.step > 0 else index > stop
            go = _F.logical_and(more, _bool_tensor(go))
        return go if isinstance(go, (bool, np.bool_)) else _pred(go, self.where, "loop")

    def step(self, carry: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...], list[Tensor]]:
        index = self._load(carry)
        self.body(index)
        ys = self._grown()
        self.watch.check(self.where, "loop")
        state = self.get()
        out: list[Any] = []
        for i in self.slots:
            v = state[i]
            if isinstance(v, Undefined):
                raise _refuse(self.where, f"{self.names[i]!r} has no value after an iteration "
                              f"of this loop", "Assign it on every path of the loop body.")
            out.append(_promote(v, carry[len(out) + (1 if self.rng else 0)], self.names[i],
                                self.where, "loop"))
        for i, v in self.fixed.items():
            after = state[i]
            if isinstance(v, list) and after is self.proxies.get(i):
                continue  # checked by _grown
            if not isinstance(v, Undefined) and not (after is v or _same_python(after, v)):
                raise _refuse(self.where, f"this loop (whose condition depends on a tensor) "
                              f"changes the Python value {self.names[i]!r}",
                              "Make it a tensor before the loop.")
        return ((index + self.rng.step,) if self.rng else ()) + tuple(out), ys

    def _grown(self) -> list[Tensor]:
        """The tensors the body appended to the lists in its variables (one per list per
        iteration)."""
        ys: list[Tensor] = []
        self.grown = []
        for i, p in self.proxies.items():
            added = p._added
            if not added:
                continue
            if len(added) != 1 or not isinstance(added[0], Tensor):
                raise _refuse(self.where, f"this loop (whose condition depends on a tensor) "
                              f"adds {len(added)} items to the list {self.names[i]!r} per "
                              f"iteration", "Append one tensor per iteration.")
            self.grown.append(i)
            ys.append(added[0])
        return ys

    def run(self) -> None:
        from .control import while_stacking

        init = [_promote(self.state0[i], None, self.names[i], self.where, "loop")
                for i in self.slots]
        if self.rng is not None:
            start = _as_tensor(self.rng.start)
            if not isinstance(start, Tensor):
                start = Tensor(np.asarray(start, dtype=np.int64))
            init = [start, *init]
        try:
            final, stacked = while_stacking(self.cond, self.step, tuple(init))
        except ControlFlowError as e:
            raise _refuse(self.where, f"a variable this loop carries changes its type: {e}",
                          "Keep each carried variable's dtype and shape the same on every "
                          "iteration (cast or reshape it in the body).") from None
        self._load(final)
        state = list(self.get())
        for i in self.lists:
            state[i] = self.fixed[i]  # unchanged unless grown (below)
        for i, ys in zip(self.grown, stacked):
            state[i] = GrownList(self.lists[i], ys, self.names[i], self.where)
        for i, v in self.fixed.items():
            if isinstance(v, Undefined) and i not in self.slots:
                state[i] = _undefined(self.names[i], self.where, "is assigned only inside this "
                                      "loop (whose condition depends on a tensor)")
        self.set(tuple(state))


class _LoopList:
    """A list a loop on traced values may grow, as the loop's body and condition see it
    while they are traced: one traced iteration stands for every iteration, so the list's
    length and items there are the data's. Appending is allowed; reading is refused."""

    def __init__(self, name: str, where: str) -> None:
        self._name, self._where = name, where
        self._added: list[Any] = []

    def append(self, x: Any) -> None:
        self._added.append(x)

    def extend(self, xs: Any) -> None:
        self._added.extend(xs)

    def _refuse(self, *_a: Any, **_k: Any) -> Any:
        raise _refuse(self._where, f"the list {self._name!r} is read inside this loop (whose "
                      f"condition depends on a tensor), but the loop grows it by a number of "
                      f"items the data decide, so its length and items there are not Python "
                      f"values", "Inside the loop only append to it; count the steps in a "
                      "variable (step += 1) and keep the last item in a variable.")

    def __iadd__(self, xs: Any) -> _LoopList:  # type: ignore[misc]
        self.extend(xs)
        return self

    __len__ = __iter__ = __getitem__ = __contains__ = __bool__ = _refuse
    __setitem__ = __delitem__ = __add__ = __radd__ = __mul__ = _refuse
    pop = insert = remove = clear = index = count = copy = sort = reverse = _refuse


class GrownList:
    """A Python list that a loop on traced values grew by one tensor per iteration: its
    items before the loop, then the loop's items stacked along a leading dim whose size is
    the trip count. ``am.stack(xs, dim)`` and ``am.cat(xs, dim)`` take it; any other use
    needs a Python length, which the data decides, and is refused."""

    def __init__(self, prefix: list[Any], stacked: Tensor, name: str, where: str) -> None:
        self.prefix, self.stacked, self.name, self.where = prefix, stacked, name, where

    def _amber_stack(self, dim: int) -> Tensor:
        from .. import functional as _F

        d = dim if dim >= 0 else dim + self.stacked.ndim
        items = _to_dim(self.stacked, d)
        if not self.prefix:
            return items
        return _F.cat([_F.stack(self.prefix, d), items], d)

    def _amber_cat(self, dim: int) -> Tensor:
        from .. import functional as _F

        per = self.stacked.shape[1:]
        d = dim if dim >= 0 else dim + len(per)
        moved = _to_dim(self.stacked, d)  # [..., T, n_d, ...]
        shape = (*per[:d], -1, *per[d + 1:])
        items = _F.reshape(moved, shape)
        return items if not self.prefix else _F.cat([*self.prefix, items], d)

    def _refuse(self, *_a: Any, **_k: Any) -> Any:
        raise _refuse(self.where, f"the list {self.name!r} grew in this loop by a number of "
                      f"items the data decides; it can only be passed to am.stack or am.cat",
                      "Stack it (am.stack(xs, dim)) and index the tensor instead.")

    __len__ = __iter__ = __getitem__ = append = extend = __bool__ = _refuse


def _to_dim(x: Tensor, d: int) -> Tensor:
    """``x`` with its leading dim moved to position ``d``."""
    if d == 0:
        return x
    from .. import functional as _F

    order = list(range(1, x.ndim))
    order.insert(d, 0)
    return _F.permute(x, *order)
