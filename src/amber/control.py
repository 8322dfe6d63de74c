"""Structured control flow: ``am.cond``, ``am.while_loop``, ``am.scan``, ``am.fori_loop``
and graph functions (``@am.function``).

Eagerly these run as plain Python. Every op they run goes through ``bind`` and is
recorded on the autograd tape, so gradients flow through the branch that was taken,
through every iteration a loop actually made (including none), and through recursive
calls, to the operands *and* to tensors the branch and body functions close over.

The signatures are the ones capture will use, and so are the type rules, which are
checked eagerly on every call:

- operands, loop carries and scanned inputs are tensors or nested tuples, lists and
  dicts of tensors; any other leaf (a Python number, ``None``, an array) is refused;
- a loop body (``while_loop``, ``fori_loop``, ``scan``) returns a carry of the same
  structure, dtypes and shapes as ``init``;
- ``scan``'s per-step outputs keep one structure, dtype and shape on every step;
- a predicate is a ``bool`` scalar tensor or a Python ``bool``.

A violation raises :class:`amber.ControlFlowError` naming the construct, the user's
function (with its file and line) and the mismatching leaf, e.g. ``carry[1]['h']``.

Limits (:func:`set_limits`): a loop that runs past ``max_iterations`` raises
:class:`amber.IterationLimitError`; graph functions nested deeper than
``max_recursion_depth`` (or deeper than Python's own stack allows) raise
:class:`amber.RecursionLimitError`. Neither hangs nor overflows.

Under capture (``am.export``), a construct is handed to the hook that capture installs
in :class:`ControlHooks` (:mod:`amber.capture.control` records it as a structured IR
node). Without a hook, or if the hook declines, a construct whose predicate, operands,
carries or results are traced values raises :class:`amber.CaptureError` naming the
user's line: it never unrolls a loop or picks a branch silently. A ``cond`` whose
predicate is a Python ``bool`` is an ordinary Python ``if`` at capture time.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import _dtype as D
from .capture_errors import user_frame
from .errors import (
    AmberError,
    CaptureError,
    ControlFlowError,
    IterationLimitError,
    RecursionLimitError,
    ShapeError,
)
from .ops.registry import Aval, EagerHooks, Node, Primitive, TraceHooks, is_grad_enabled, no_grad
from .tensor import Tensor, _wrap_array

__all__ = [
    "ControlHooks",
    "GraphFunction",
    "Limits",
    "cond",
    "fori_loop",
    "function",
    "get_limits",
    "limits",
    "scan",
    "set_limits",
    "while_loop",
]


# ----------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class Limits:
    """Bounds that turn a runaway program into an error instead of a hang or a crash.

    ``max_iterations``: iterations one ``while_loop`` or ``fori_loop`` may run (``None``:
    unbounded). ``max_recursion_depth``: how deeply graph functions (``@am.function``)
    may nest, counting every graph function on the current thread's call stack."""

    max_iterations: int | None = 1_000_000
    max_recursion_depth: int = 100


_limits = Limits()
_UNSET: Any = object()


def get_limits() -> Limits:
    """The limits in force (process-wide)."""
    return _limits


def set_limits(*, max_iterations: int | None = _UNSET,
               max_recursion_depth: int = _UNSET) -> Limits:
    """Set process-wide limits; arguments left out keep their value. Returns the previous
    limits, so ``set_limits(**dataclasses.asdict(prev))`` restores them."""
    global _limits
    changes: dict[str, Any] = {}
    if max_iterations is not _UNSET:
        if max_iterations is not None and (isinstance(max_iterations, bool) or
                                           not isinstance(max_iterations, int) or
                                           max_iterations < 0):
            raise ValueError(f"set_limits: max_iterations must be a non-negative int or "
                             f"None, got {max_iterations!r}")
        changes["max_iterations"] = max_iterations
    if max_recursion_depth is not _UNSET:
        if (isinstance(max_recursion_depth, bool) or not isinstance(max_recursion_depth, int)
                or max_recursion_depth < 1):
            raise ValueError(f"set_limits: max_recursion_depth must be a positive int, got "
                             f"{max_recursion_depth!r}")
        changes["max_recursion_depth"] = max_recursion_depth
    prev = _limits
    _limits = replace(prev, **changes)
    return prev


@contextlib.contextmanager
def limits(*, max_iterations: int | None = _UNSET,
           max_recursion_depth: int = _UNSET) -> Iterator[Limits]:
    """``with am.control.limits(max_iterations=100): ...`` sets limits for a block."""
    prev = set_limits(max_iterations=max_iterations, max_recursion_depth=max_recursion_depth)
    try:
        yield _limits
    finally:
        set_limits(max_iterations=prev.max_iterations,
                   max_recursion_depth=prev.max_recursion_depth)


def _iteration_limit(per_call: int | None, construct: str) -> int | None:
    if per_call is None:
        return _limits.max_iterations
    if isinstance(per_call, bool) or not isinstance(per_call, int) or per_call < 0:
        raise ValueError(f"{construct}: max_iterations must be a non-negative int, got "
                         f"{per_call!r}")
    return per_call


# ----------------------------------------------------------------------------- hooks


class ControlHooks:
    """Installed by capture to record control flow as structured IR nodes.

    While a trace is active (``TraceHooks.active``), each construct first calls its hook
    with the arguments it was given (after the eager type checks of its operands). A hook
    returns the construct's result, or ``NotImplemented`` to let the construct run
    eagerly (it then refuses with :class:`amber.CaptureError` if traced values reach it).

    - ``cond(pred, true_fn, false_fn, operands: tuple) -> outputs``
    - ``while_loop(cond_fn, body_fn, init, max_iterations: int | None) -> carry``
    - ``scan(fn, init, xs, length: int, reverse: bool) -> (carry, ys)``
    - ``call(function: GraphFunction, args: tuple, kwargs: dict) -> result``

    ``fori_loop`` is expressed through ``while_loop`` (carry ``(i, init)``)."""

    cond: Callable[..., Any] | None = None
    while_loop: Callable[..., Any] | None = None
    scan: Callable[..., Any] | None = None
    call: Callable[..., Any] | None = None


def _hook(name: str) -> Callable[..., Any] | None:
    if not TraceHooks.active:
        return None
    h: Callable[..., Any] | None = getattr(ControlHooks, name)
    return h


# ----------------------------------------------------------------------------- naming


def _describe(fn: Any) -> str:
    """``name (file:line)`` of a user function, for error messages."""
    if isinstance(fn, GraphFunction):
        fn = fn.python_function
    if isinstance(fn, functools.partial):
        return f"functools.partial({_describe(fn.func)})"
    if isinstance(fn, types.MethodType):
        fn = fn.__func__
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    code = getattr(fn, "__code__", None)
    if name is None:
        name = type(fn).__name__
        call = type(fn).__dict__.get("__call__")
        code = getattr(call, "__code__", None)
    if code is None:
        return f"`{name}`"
    return f"`{name}` ({code.co_filename}:{code.co_firstlineno})"


def _leaf_type(x: Any) -> str:
    if isinstance(x, Tensor):
        return f"{x.dtype.name}[{', '.join(str(d) for d in x.shape)}]"
    if isinstance(x, (bool, int, float, complex)):
        return f"a Python {type(x).__name__} ({x!r})"
    if x is None:
        return "None"
    if isinstance(x, np.ndarray):
        return f"a NumPy array ({x.dtype}, shape {x.shape})"
    return f"a {type(x).__name__}"


def _structure(tree: Any) -> str:
    """A compact rendering of a tree's structure and leaf types."""
    if isinstance(tree, dict):
        return "{" + ", ".join(f"{k!r}: {_structure(tree[k])}" for k in sorted(tree)) + "}"
    if isinstance(tree, list):
        return "[" + ", ".join(_structure(x) for x in tree) + "]"
    if isinstance(tree, tuple):
        inner = ", ".join(_structure(x) for x in tree)
        name = type(tree).__name__ if hasattr(tree, "_fields") else ""
        return f"{name}({inner}{',' if len(tree) == 1 and not name else ''})"
    return _leaf_type(tree)


def _paths(tree: Any, root: str) -> list[tuple[str, Any]]:
    """``(path, leaf)`` in ``tree_flatten`` order (dicts by sorted key)."""
    out: list[tuple[str, Any]] = []

    def walk(t: Any, p: str) -> None:
        if isinstance(t, (tuple, list)):
            for i, x in enumerate(t):
                walk(x, f"{p}[{i}]")
        elif isinstance(t, dict):
            for k in sorted(t):
                walk(t[k], f"{p}[{k!r}]")
        else:
            out.append((p, t))

    walk(tree, root)
    return out


def _is_tracer(x: Any) -> bool:
    return isinstance(x, Tensor) and x._data is None


def _has_tracer(tree: Any) -> bool:
    return any(_is_tracer(x) for _, x in _paths(tree, ""))


_INSTEAD = {"am.cond": "pick a branch", "am.while_loop": "unroll the loop",
            "am.fori_loop": "unroll the loop", "am.scan": "unroll the loop"}


def _refuse(construct: str, detail: str, fix: str) -> CaptureError:
    """The CaptureError for a construct reached by traced values, naming the user's line."""
    path, line, text = user_frame()
    where = f"{path}:{line}" + (f": {text}" if text else "")
    instead = _INSTEAD.get(construct, "inline the call")
    return CaptureError(
        f"{where}\n  {construct} cannot be exported by this version of amber yet: {detail}. "
        f"It runs (and differentiates) eagerly; exporting it as a structured node is "
        f"planned, and capture does not silently {instead} instead. {fix}"
    )


_LOOP_FIX = ("Compute this part outside the exported function, or, if the trip count is a "
             "static Python int, write it as a Python for-loop over range(n), which capture "
             "unrolls explicitly.")


# ----------------------------------------------------------------------------- checks


def _check_tensors(tree: Any, root: str, construct: str, who: str, what: str) -> None:
    """Refuse any leaf of ``tree`` that is not a Tensor."""
    for p, x in _paths(tree, root):
        if not isinstance(x, Tensor):
            hint = (" Wrap it: am.tensor(value)." if isinstance(x, (bool, int, float))
                    or isinstance(x, np.ndarray) else "")
            raise ControlFlowError(
                f"{construct}: {who}{p} is {_leaf_type(x)}; {what} must be tensors or "
                f"(nested) tuples, lists and dicts of tensors.{hint}"
            )


def _mismatch(ref: Any, got: Any, path: str) -> tuple[str, str, str] | None:
    """First difference between two trees: ``(path, expected, got)``, or None."""
    if isinstance(ref, dict):
        if not isinstance(got, dict) or sorted(got) != sorted(ref):
            return path, _structure(ref), _structure(got)
        for k in sorted(ref):
            m = _mismatch(ref[k], got[k], f"{path}[{k!r}]")
            if m is not None:
                return m
        return None
    if isinstance(ref, (tuple, list)):
        if type(got) is not type(ref) or len(got) != len(ref):
            return path, _structure(ref), _structure(got)
        for i, (a, b) in enumerate(zip(ref, got)):
            m = _mismatch(a, b, f"{path}[{i}]")
            if m is not None:
                return m
        return None
    if not isinstance(got, Tensor) or not isinstance(ref, Tensor):
        return path, _structure(ref), _structure(got)
    if got.dtype is not ref.dtype or tuple(got.shape) != tuple(ref.shape):
        return path, _leaf_type(ref), _leaf_type(got)
    return None


def _check_same(ref: Any, got: Any, root: str, construct: str, who: str, against: str,
                rule: str) -> None:
    m = _mismatch(ref, got, root)
    if m is None:
        return
    p, exp, act = m
    raise ControlFlowError(
        f"{construct}: {who} returned {p} as {act}, but {against} has {exp}; {rule}"
    )


def _pred_value(pred: Any, construct: str, who: str) -> bool:
    """The Python value of a predicate, after checking it is a bool scalar."""
    if isinstance(pred, (bool, np.bool_)):
        return bool(pred)
    if isinstance(pred, Tensor):
        if pred.dtype is not D.bool_ or tuple(pred.shape) != ():
            raise ControlFlowError(
                f"{construct}: {who} is {_leaf_type(pred)}; a predicate must be a bool scalar "
                f"tensor (shape ()) or a Python bool. Reduce it with .any()/.all() or "
                f"compare it (x > 0), and index a single element if needed."
            )
        if pred._data is None:
            raise _refuse(construct, f"its predicate ({who}) is a traced value",
                          "For an elementwise choice between two computed tensors, "
                          "am.where(pred, a, b) is exported exactly.")
        return bool(pred._data)
    raise ControlFlowError(
        f"{construct}: {who} is {_leaf_type(pred)}; a predicate must be a bool scalar tensor "
        f"(shape ()) or a Python bool."
    )


def _check_callable(fn: Any, construct: str, arg: str) -> None:
    if not callable(fn):
        raise ControlFlowError(f"{construct}: {arg} must be callable, got {_leaf_type(fn)}")


def _no_tracers_in(tree: Any, construct: str, what: str, fix: str) -> None:
    if _has_tracer(tree):
        raise _refuse(construct, f"{what} are traced values", fix)


# ----------------------------------------------------------------------------- cond


def cond(pred: Any, true_fn: Callable[..., Any], false_fn: Callable[..., Any],
         *operands: Any) -> Any:
    """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``.

    ``pred`` is a bool scalar tensor or a Python bool. ``operands`` are tensors or
    (nested) tuples/lists/dicts of tensors; the branches may also close over tensors.
    Only the taken branch runs, so gradients flow through it alone, to the operands and
    to the tensors it closes over. Both branches must return tensors (or trees of
    them) of one structure, dtype and shape; eagerly only the taken branch's outputs can
    be checked (that they are tensors), and under capture both branches are compared."""
    c = "am.cond"
    _check_callable(true_fn, c, "true_fn")
    _check_callable(false_fn, c, "false_fn")
    _check_tensors(list(operands), "operands", c, "", "operands")
    if isinstance(pred, (bool, np.bool_)):
        taken = true_fn if pred else false_fn
        out = taken(*operands)  # a Python `if`, also at capture time
        _check_tensors(out, "output", c, f"{'true_fn' if pred else 'false_fn'} "
                       f"{_describe(taken)} returned ", "branch outputs")
        return out
    hook = _hook("cond")
    if hook is not None:
        r = hook(pred, true_fn, false_fn, tuple(operands))
        if r is not NotImplemented:
            return r
    if _has_tracer(list(operands)) and not _is_tracer(pred):
        raise _refuse(c, "its operands are traced values",
                      "Compute this part outside the exported function.")
    value = _pred_value(pred, c, "pred")
    taken = true_fn if value else false_fn
    out = taken(*operands)
    who = f"{'true_fn' if value else 'false_fn'} {_describe(taken)}"
    _check_tensors(out, "output", c, f"{who} returned ", "branch outputs")
    _no_tracers_in(out, c, f"the outputs of {who}",
                   "Compute this part outside the exported function.")
    return out


# ----------------------------------------------------------------------------- while


def while_loop(cond_fn: Callable[[Any], Any], body_fn: Callable[[Any], Any], init: Any, *,
               max_iterations: int | None = None) -> Any:
    """``carry = init; while cond_fn(carry): carry = body_fn(carry); return carry``.

    The trip count may depend on the data. ``init`` is a tensor or a (nested)
    tuple/list/dict of tensors; ``body_fn`` must return a carry of the same structure,
    dtypes and shapes; ``cond_fn`` returns a bool scalar tensor (or Python bool).
    Gradients flow through every iteration that ran (none: the result is ``init``).
    More than ``max_iterations`` iterations (default: :func:`get_limits`) raise
    :class:`amber.IterationLimitError`."""
    c = "am.while_loop"
    _check_callable(cond_fn, c, "cond_fn")
    _check_callable(body_fn, c, "body_fn")
    _check_tensors(init, "init", c, "", "loop carries")
    limit = _iteration_limit(max_iterations, c)
    hook = _hook("while_loop")
    if hook is not None:
        r = hook(cond_fn, body_fn, init, limit)
        if r is not NotImplemented:
            return r
    _no_tracers_in(init, c, "its initial carries", _LOOP_FIX)
    cond_who = f"cond_fn {_describe(cond_fn)}"
    body_who = f"body_fn {_describe(body_fn)}"
    carry, n = init, 0
    while _pred_value(cond_fn(carry), c, f"the value returned by {cond_who}"):
        if limit is not None and n >= limit:
            raise IterationLimitError(
                f"{c}: the loop ({cond_who}, {body_who}) was about to run iteration "
                f"{n + 1}, past the limit of {limit} iterations. If it is meant to run "
                f"that long, pass max_iterations= or call "
                f"am.control.set_limits(max_iterations=...); otherwise check the stopping "
                f"condition."
            )
        new = body_fn(carry)
        _check_same(init, new, "carry", c, body_who, "init",
                    "a loop carry must keep its structure, dtypes and shapes on every "
                    "iteration (cast or reshape inside body_fn).")
        _no_tracers_in(new, c, f"the carries returned by {body_who}", _LOOP_FIX)
        carry, n = new, n + 1
    return carry


# ----------------------------------------------------------------------------- fori


def _bound(v: Any, name: str) -> tuple[Any, D.DType | None]:
    c = "am.fori_loop"
    if isinstance(v, Tensor):
        if not v.dtype.is_integer or tuple(v.shape) != ():
            raise ControlFlowError(f"{c}: {name} is {_leaf_type(v)}; loop bounds must be "
                                   f"Python ints or integer scalar tensors")
        return (None if v._data is None else int(v._data)), v.dtype
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return int(v), None
    raise ControlFlowError(f"{c}: {name} is {_leaf_type(v)}; loop bounds must be Python ints "
                           f"or integer scalar tensors")


def fori_loop(lower: Any, upper: Any, body_fn: Callable[[Tensor, Any], Any], init: Any, *,
              max_iterations: int | None = None) -> Any:
    """``carry = init; for i in range(lower, upper): carry = body_fn(i, carry)``.

    ``i`` is an integer scalar tensor (the bounds' dtype if either is a tensor, else
    int64). ``init`` and the carry follow :func:`while_loop`'s rules, and so does the
    iteration limit (checked before the loop starts)."""
    c = "am.fori_loop"
    _check_callable(body_fn, c, "body_fn")
    lo, lo_dt = _bound(lower, "lower")
    hi, hi_dt = _bound(upper, "upper")
    dts = [d for d in (lo_dt, hi_dt) if d is not None]
    dt = dts[0] if dts else D.int64
    for d in dts[1:]:
        dt = D.promote(dt, d)
    _check_tensors(init, "init", c, "", "loop carries")
    limit = _iteration_limit(max_iterations, c)
    if _hook("while_loop") is not None:
        lo_t = lower if isinstance(lower, Tensor) else Tensor(np.asarray(lo, dt.np))
        hi_t = upper if isinstance(upper, Tensor) else Tensor(np.asarray(hi, dt.np))
        if lo_t.dtype is not dt:
            lo_t = lo_t.to(dt)
        if hi_t.dtype is not dt:
            hi_t = hi_t.to(dt)
        _, carry = while_loop(lambda s: s[0] < hi_t,
                              lambda s: (s[0] + 1, body_fn(s[0], s[1])),
                              (lo_t, init), max_iterations=max_iterations)
        return carry
    if lo is None or hi is None:
        raise _refuse(c, "its bounds are traced values", _LOOP_FIX)
    _no_tracers_in(init, c, "its initial carries", _LOOP_FIX)
    trip = max(0, hi - lo)
    body_who = f"body_fn {_describe(body_fn)}"
    if limit is not None and trip > limit:
        raise IterationLimitError(
            f"{c}: range({lo}, {hi}) of {body_who} has {trip} iterations, past the limit of "
            f"{limit}. Pass max_iterations= or call am.control.set_limits(max_iterations=...)."
        )
    carry = init
    for k in range(lo, hi):
        new = body_fn(Tensor._wrap(np.asarray(k, dtype=dt.np)), carry)
        _check_same(init, new, "carry", c, body_who, "init",
                    "a loop carry must keep its structure, dtypes and shapes on every "
                    "iteration (cast or reshape inside body_fn).")
        _no_tracers_in(new, c, f"the carries returned by {body_who}", _LOOP_FIX)
        carry = new
    return carry


# ----------------------------------------------------------------------------- scan


def scan(fn: Callable[[Any, Any], tuple[Any, Any]], init: Any, xs: Any,
         length: int | None = None, reverse: bool = False) -> tuple[Any, Any]:
    """Loop ``fn(carry, x) -> (carry, y)`` over axis 0 of every leaf of ``xs``; return the
    final carry and the ``y``s stacked along a new axis 0 (as ``jax.lax.scan``).

    ``xs`` is a tensor, a (nested) tuple/list/dict of tensors that share their leading
    size, or ``None`` (then ``length`` is required and ``fn`` receives ``None``).
    ``reverse=True`` runs from the last element to the first; ``ys[i]`` still belongs
    to ``xs[i]``. ``y`` may be ``None`` on every step (then ``ys`` is ``None``); otherwise
    it keeps one structure, dtype and shape. For a length-0 scan ``fn`` is evaluated
    once without gradients on zero-valued inputs, only to learn the type of ``ys``
    (which are then empty); the carry returned is ``init``."""
    c = "am.scan"
    _check_callable(fn, c, "fn")
    _check_tensors(init, "init", c, "", "loop carries")
    n, x_leaves, x_td = _scan_length(xs, length, c)
    from ._tree import tree_flatten, tree_unflatten

    hook = _hook("scan")
    if hook is not None:
        r = hook(fn, init, xs, n, bool(reverse))
        if r is not NotImplemented:
            return r  # type: ignore[no-any-return]
    _no_tracers_in(init, c, "its initial carries", _LOOP_FIX)
    _no_tracers_in(x_leaves, c, "its scanned inputs", _LOOP_FIX)
    if not isinstance(n, int):
        raise _refuse(c, f"its length ({n}) is symbolic", _LOOP_FIX)
    who = f"fn {_describe(fn)}"
    carry_rule = ("a scan carry must keep its structure, dtypes and shapes on every step "
                  "(cast or reshape inside fn).")

    def step(carry: Any, x: Any, at: str) -> tuple[Any, Any]:
        out = fn(carry, x)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ControlFlowError(f"{c}: {who} must return a pair (carry, y), got "
                                   f"{_structure(out)}{at}")
        new, y = out
        _check_same(init, new, "carry", c, who + at, "init", carry_rule)
        if y is not None:
            _check_tensors(y, "y", c, f"{who} returned{at} ", "per-step outputs")
        _no_tracers_in([new, y], c, f"the values returned by {who}", _LOOP_FIX)
        return new, y

    if n == 0:
        with no_grad(), np.errstate(all="ignore"):
            x0 = None if xs is None else tree_unflatten(
                x_td, [Tensor._wrap(np.zeros(tuple(x.shape[1:]), x.dtype.np))
                       for x in x_leaves])
            _, y0 = step(init, x0, " (on the zero-valued inputs of a length-0 scan)")
        if y0 is None:
            return init, None
        y_leaves, y_td = tree_flatten(y0)
        empty = [Tensor._wrap(np.zeros((0, *y.shape), y.dtype.np)) for y in y_leaves]
        return init, tree_unflatten(y_td, empty)

    carry = init
    ys: list[Any] = []
    order = range(n - 1, -1, -1) if reverse else range(n)
    pieces = [unstack_eager(leaf) for leaf in x_leaves]  # one tape entry per leaf
    for k, i in enumerate(order):
        x = None if xs is None else tree_unflatten(x_td, [p[i] for p in pieces])
        carry, y = step(carry, x, f" at step {k} (xs index {i})")
        if k > 0:
            ref = ys[0]
            if (ref is None) != (y is None):
                raise ControlFlowError(
                    f"{c}: {who} returned y = {_structure(y)} at step {k} but "
                    f"{_structure(ref)} at step 0; every step must return ys of one "
                    f"structure, dtype and shape")
            if y is not None:
                _check_same(ref, y, "y", c, f"{who} at step {k}", "step 0",
                            "every step must return ys of one structure, dtype and shape.")
        ys.append(y)
    if ys[0] is None:
        return carry, None
    if reverse:
        ys.reverse()
    from .functional import stack

    flat = [tree_flatten(y)[0] for y in ys]
    y_td = tree_flatten(ys[0])[1]
    stacked = [stack([f[j] for f in flat], 0) for j in range(len(flat[0]))]
    return carry, tree_unflatten(y_td, stacked)


def _scan_length(xs: Any, length: int | None, c: str) -> tuple[Any, list[Tensor], Any]:
    """The trip count of a scan (``length``, else the leading size every leaf of ``xs``
    shares), the leaves of ``xs`` and its tree structure (None when ``xs`` is None)."""
    from ._tree import tree_flatten

    if xs is None:
        x_leaves: list[Tensor] = []
        x_paths: list[str] = []
    else:
        _check_tensors(xs, "xs", c, "", "scanned inputs")
        pl = _paths(xs, "xs")
        x_paths = [p for p, _ in pl]
        x_leaves = [x for _, x in pl]
    x_td = tree_flatten(xs)[1] if xs is not None else None
    sizes = []
    for p, leaf in zip(x_paths, x_leaves):
        if leaf.ndim == 0:
            raise ShapeError(f"{c}: {p} is {_leaf_type(leaf)}; every leaf of xs needs an "
                             f"axis 0 to scan over")
        sizes.append((p, leaf.shape[0]))
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                               or length < 0):
        raise ControlFlowError(f"{c}: length must be a non-negative int, got {length!r}")
    n = length if length is not None else (sizes[0][1] if sizes else None)
    if n is None:
        raise ControlFlowError(f"{c}: xs is None (or has no leaves), so length= is required")
    for p, s in sizes:
        if s != n:
            first = (f"length={length}" if length is not None
                     else f"{sizes[0][0]} has leading size {sizes[0][1]}")
            raise ShapeError(f"{c}: {p} has leading size {s}, but {first}; every leaf of xs "
                             f"is scanned along axis 0 and must have the same length")
    return n, x_leaves, x_td


# ----------------------------------------------------------------------------- functions


class _Depth(threading.local):
    def __init__(self) -> None:
        self.depth = 0
        self.deepest = 0
        self.chain: list[str] = []


_depth = _Depth()


class GraphFunction:
    """A Python function marked with ``@am.function``.

    Eagerly, calling it calls the Python function (recursion included), counting the
    nesting depth of graph-function calls against ``max_recursion_depth``. Its ``name``
    is stable (the function's qualified name, or ``name=``) and ``python_function`` is
    the original function, which capture uses to record it once as a function of the
    program and each call as a ``call`` node."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        if not callable(fn):
            raise ControlFlowError(f"am.function: expected a function, got {_leaf_type(fn)}")
        self.python_function = fn
        qual = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or "function"
        self.name = name if name is not None else qual.replace(".<locals>.", ".")
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<amber graph function {self.name}>"

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return self if obj is None else types.MethodType(self, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        hook = _hook("call")
        if hook is not None:
            r = hook(self, args, kwargs)
            if r is not NotImplemented:
                return r
        fix = (f"If {self.name} is not recursive, removing @am.function inlines its body "
               f"into the caller, which is exported exactly.")
        if _has_tracer([list(args), kwargs]):
            raise _refuse(f"a call of graph function {self.name}", "its arguments are traced "
                          "values", fix)
        st = _depth
        lim = _limits.max_recursion_depth
        if st.depth >= lim:
            raise RecursionLimitError(
                f"am.function: calling {_describe(self)} would nest graph "
                f"functions {st.depth + 1} deep, past max_recursion_depth={lim} "
                f"(innermost calls: {' -> '.join(st.chain[-5:])}). Check the base case, or "
                f"raise the limit with am.control.set_limits(max_recursion_depth=...)."
            )
        outermost = st.depth == 0
        if outermost:
            st.deepest = 0
        st.depth += 1
        st.deepest = max(st.deepest, st.depth)
        st.chain.append(self.name)
        try:
            out = self.python_function(*args, **kwargs)
        except RecursionError:
            if not outermost:
                raise
            raise RecursionLimitError(
                f"am.function: Python's own stack ran out while graph functions were nested "
                f"{st.deepest} deep (starting from {_describe(self)}), before "
                f"max_recursion_depth={lim} was reached. Lower the limit with "
                f"am.control.set_limits(max_recursion_depth=...) to get this error earlier, "
                f"or raise Python's limit with sys.setrecursionlimit for deeper recursion."
            ) from None
        finally:
            st.depth -= 1
            st.chain.pop()
        if _has_tracer(out):
            raise _refuse(f"a call of graph function {self.name}",
                          "its results are traced values", fix)
        return out


def function(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Mark ``fn`` as a graph function: ``@am.function`` or ``@am.function(name="f")``.

    Eagerly a plain call (recursion works, within ``max_recursion_depth``); under
    capture each call is meant to become a ``call`` node, so a function that calls
    itself is recorded as recursion, not unrolled."""
    if fn is None:
        return lambda f: GraphFunction(f, name=name)
    return GraphFunction(fn, name=name)


# ----------------------------------------------------------------------------- pieces
# Eager unstacking and splitting with one tape entry for all the pieces. Reading the
# pieces of a tensor one by one (``xs[i]`` for every step of a scan, the gates of an LSTM
# cell) records a slice per piece, and each slice's VJP pads its cotangent back to the
# whole tensor: n pieces cost n full-size pads and n - 1 full-size sums. Here every
# piece is an output of one group entry; their cotangents are collected per piece and
# the group's VJP stacks (or concatenates) them once. Eager only: captured programs keep
# the slices (a loop is a structured node there).


class _Pieces:
    """The cotangents the group has received so far, by piece index (tape values add)."""

    __slots__ = ("by_index",)

    def __init__(self, by_index: dict[int, Tensor]) -> None:
        self.by_index = by_index

    def __add__(self, other: _Pieces) -> _Pieces:
        merged = dict(self.by_index)
        for i, g in other.by_index.items():
            merged[i] = merged[i] + g if i in merged else g
        return _Pieces(merged)


def _no_pieces_kernel(*args: Any, **kwargs: Any) -> np.ndarray:
    raise AmberError("an unstacking tape entry has no kernel of its own")


def _no_pieces_infer(*args: Any, **kwargs: Any) -> Aval:
    raise AmberError("an unstacking tape entry has no standalone type rule")


def _piece_prim(i: int) -> Primitive:
    p = Primitive(f"unstack_piece_{i}", _no_pieces_kernel, _no_pieces_infer, {}, 1)
    p.def_vjp(lambda g, out, group: (_Pieces({i: g}),))  # type: ignore[arg-type,return-value]
    return p


_PIECES: list[Primitive] = []


def _piece(i: int) -> Primitive:
    while len(_PIECES) <= i:
        _PIECES.append(_piece_prim(len(_PIECES)))
    return _PIECES[i]


def _group_vjp(cots: _Pieces, group: Tensor, x: Tensor, *, axis: int,
               sizes: tuple[int, ...] | None) -> tuple[Tensor]:
    from .functional import broadcast_to, cat, scalar, stack

    n = x.shape[axis] if sizes is None else len(sizes)
    parts = [cots.by_index.get(i) for i in range(n)]
    for i, p in enumerate(parts):
        if p is None:
            shape = list(x.shape)
            if sizes is None:
                del shape[axis]
            else:
                shape[axis] = sizes[i]
            parts[i] = broadcast_to(scalar(0, x.dtype), tuple(shape))
    return (stack(parts, axis) if sizes is None else cat(parts, axis),)  # type: ignore[arg-type]


_GROUP = Primitive("pieces", _no_pieces_kernel, _no_pieces_infer, {}, 1)
_GROUP.def_vjp(_group_vjp)  # type: ignore[arg-type]


def _recorded(x: Tensor, pieces: list[Tensor], axis: int,
              sizes: tuple[int, ...] | None) -> list[Tensor]:
    if not (x.requires_grad and is_grad_enabled() and x.dtype.is_floating):
        return pieces
    group = object.__new__(Tensor)
    group._data, group.grad, group._aval, group._value = None, None, None, None
    group.requires_grad = True
    group._node = Node(_GROUP, (x,), {"axis": axis, "sizes": sizes}, group)
    for i, p in enumerate(pieces):
        p.requires_grad = True
        p._node = Node(_piece(i), (group,), {}, p)
    return pieces


def _call_vjp(cots: _Pieces, group: Tensor, *inputs: Tensor,
              backward: Callable[..., Any], like: tuple) -> tuple[Any, ...]:
    from .functional import broadcast_to, scalar

    gs = [cots.by_index.get(i) for i in range(len(like))]
    gs = [broadcast_to(scalar(0, dt), shape) if g is None else g
          for g, (shape, dt) in zip(gs, like, strict=True)]
    return tuple(backward(*gs, create_graph=is_grad_enabled()))


_CALL = Primitive("recorded_call", _no_pieces_kernel, _no_pieces_infer, {}, None)
_CALL.def_vjp(_call_vjp)  # type: ignore[arg-type]


def record_call(inputs: tuple[Tensor, ...], outputs: list[Tensor],
                backward: Callable[..., Any]) -> list[Tensor]:
    """Record ``outputs``, computed from ``inputs`` on arrays outside the tape, as one
    autograd entry. ``backward(*cotangents, create_graph=...)`` gets one cotangent per
    output (zeros for unused ones) and returns one gradient (or None) per input; with
    ``create_graph`` (a gradient that must itself be differentiable) it must compute
    them with differentiable ops."""
    if not (is_grad_enabled() and any(a.requires_grad for a in inputs)):
        return outputs
    group = object.__new__(Tensor)
    group._data, group.grad, group._aval, group._value = None, None, None, None
    group.requires_grad = True
    like = tuple((tuple(o.shape), o.dtype) for o in outputs)
    group._node = Node(_CALL, inputs, {"backward": backward, "like": like}, group)
    for i, p in enumerate(outputs):
        p.requires_grad = True
        p._node = Node(_piece(i), (group,), {}, p)
    return outputs


def eager_kernel(name: str) -> Callable[..., np.ndarray]:
    """The array kernel eager mode runs for primitive ``name`` (libamber's, else the
    NumPy reference), for loops on arrays recorded with :func:`record_call`."""
    from .ops.registry import REGISTRY

    return REGISTRY[name].eager


def eager_into(name: str, x: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = eager_kernel(name)(x)`` for an elementwise float op on distinct ``x``
    (any non-negative strides) and C-contiguous ``out`` of one shape and dtype
    (libamber's kernel writes ``out`` directly)."""
    EagerHooks.into(name, x, out)


def unstack_eager(x: Tensor) -> list[Tensor]:
    """``[x[0], x[1], ...]`` for a concrete ``x`` (views of its buffer), recorded for
    autograd as one group when gradients flow."""
    data = x._data
    assert data is not None
    return _recorded(x, [_wrap_array(data[i]) for i in range(data.shape[0])], 0, None)


def split_eager(x: Tensor, axis: int, sizes: list[int]) -> list[Tensor]:
    """The consecutive pieces of ``sizes`` along ``axis`` of a concrete ``x`` (views),
    recorded for autograd as one group when gradients flow."""
    data = x._data
    assert data is not None
    lead = (slice(None),) * axis
    pieces, start = [], 0
    for s in sizes:
        pieces.append(_wrap_array(data[lead + (slice(start, start + s),)]))
        start += s
    return _recorded(x, pieces, axis, tuple(sizes))
