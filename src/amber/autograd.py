"""Reverse-mode automatic differentiation over the tape built by ``bind``.

``backward`` walks the tape from the outputs in reverse topological order and calls
each primitive's VJP. VJPs are amber ops, so with ``create_graph=True`` the backward
pass itself is recorded and can be differentiated again (higher-order gradients)."""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._tree import tree_flatten, tree_unflatten
from .autograd_function import Function, FunctionCtx, once_differentiable  # noqa: F401
from .errors import AutogradError
from .hooks import RemovableHandle, add_hook
from .ops.registry import Node, _GradMode
from .tensor import Tensor

_FREED = (
    "Trying to backward through the graph a second time (or after its intermediate values "
    "were freed by a previous backward). Call .backward(retain_graph=True) or "
    "am.autograd.grad(..., retain_graph=True) the first time if you need to backward twice."
)


# Hooks that run once a leaf's ``.grad`` holds everything one ``backward`` gives it
# (PyTorch's ``register_post_accumulate_grad_hook``), keyed by id with a weak reference,
# and callbacks queued during a backward pass that run when it ends (PyTorch's
# ``queue_callback``). Both are what data-parallel training overlaps communication with.
_POST_ACCUMULATE: dict[int, tuple[weakref.ref[Tensor], dict[int, Callable[[Tensor], Any]]]] = {}


class _Callbacks(threading.local):
    queue: list[Callable[[], Any]] | None = None  # set while a backward() runs


_END = _Callbacks()


def register_post_accumulate_grad_hook(leaf: Tensor,
                                       hook: Callable[[Tensor], Any]) -> RemovableHandle:
    """Call ``hook(leaf)`` after a ``backward()`` has accumulated all of its gradient
    into ``leaf.grad`` (once per backward pass in which the leaf receives a gradient)."""
    if not leaf.is_leaf:
        raise AutogradError("post-accumulate-grad hooks can only be registered on leaf "
                            "tensors (parameters)")
    if not leaf.requires_grad:
        raise AutogradError("cannot register a post-accumulate-grad hook on a tensor that "
                            "does not require grad")
    key = id(leaf)
    entry = _POST_ACCUMULATE.get(key)
    if entry is None or entry[0]() is not leaf:
        def forget(_ref: Any, k: int = key) -> None:
            _POST_ACCUMULATE.pop(k, None)

        entry = (weakref.ref(leaf, forget), {})
        _POST_ACCUMULATE[key] = entry
    return add_hook(entry[1], hook)


def in_backward() -> bool:
    """True while a ``backward()`` runs (in its hooks, and in any forward it recomputes)."""
    return _END.queue is not None


def queue_callback(callback: Callable[[], Any]) -> None:
    """Run ``callback()`` when the ``backward()`` in progress finishes (only valid from a
    hook that runs during backward)."""
    if _END.queue is None:
        raise AutogradError("queue_callback can only be called during a backward pass")
    _END.queue.append(callback)


def _leaf_last_uses(order: Sequence[Tensor],
                    outputs: Sequence[Tensor]) -> dict[int, list[Tensor]]:
    """For leaves with post-accumulate hooks: the index in ``order`` of the last node that
    may send them a gradient (they are complete once that node is processed). Leaves
    that are outputs themselves complete at the very end."""
    last: dict[int, tuple[int, Tensor]] = {}
    at_end = {id(o) for o in outputs if o._node is None}
    for i, t in enumerate(order):
        for inp in t._node.inputs or ():  # type: ignore[union-attr]
            if inp._node is None and id(inp) in _POST_ACCUMULATE and id(inp) not in at_end:
                last[id(inp)] = (i, inp)
    by_index: dict[int, list[Tensor]] = {}
    for i, leaf in last.values():
        by_index.setdefault(i, []).append(leaf)
    return by_index


def _topo_order(roots: Sequence[Tensor]) -> list[Tensor]:
    """Tensors with history reachable from ``roots``, each after all its consumers."""
    order: list[Tensor] = []
    seen: set[int] = set()
    for root in roots:
        if root._node is None or id(root) in seen:
            continue
        stack: list[tuple[Tensor, bool]] = [(root, False)]
        while stack:
            t, expanded = stack.pop()
            if expanded:
                order.append(t)
                continue
            if id(t) in seen:
                continue
            seen.add(id(t))
            stack.append((t, True))
            node = t._node
            assert node is not None
            if node.inputs is None:
                raise AutogradError(_FREED)
            for inp in node.inputs:
                if inp._node is not None and id(inp) not in seen:
                    stack.append((inp, False))
    order.reverse()
    return order


def _seed(out: Tensor, grad: Any) -> Tensor:
    if grad is None:
        if out.numel() != 1:
            raise AutogradError(
                f"grad can be implicitly created only for scalar outputs; this output has "
                f"shape {tuple(out.shape)}. Pass a gradient of that shape: "
                f"out.backward(gradient) or am.autograd.grad(out, inputs, grad_outputs)."
            )
        from . import functional as _F

        return _F.ones_like(out)
    g = grad if isinstance(grad, Tensor) else Tensor(np.asarray(grad, dtype=out.dtype.np))
    if tuple(g.shape) != tuple(out.shape):
        raise AutogradError(
            f"gradient has shape {tuple(g.shape)} but the output has shape {tuple(out.shape)}"
        )
    return g


def _run(outputs: Sequence[Tensor], grads: Sequence[Any] | None, retain_graph: bool,
         create_graph: bool, wanted: dict[int, Tensor] | None) -> dict[int, Tensor]:
    for o in outputs:
        if not o.requires_grad:
            raise AutogradError(
                "element 0 of tensors does not require grad and does not have a grad_fn: "
                "nothing it depends on has requires_grad=True"
            )
    seeds = [_seed(o, None if grads is None else grads[i]) for i, o in enumerate(outputs)]
    cot: dict[int, Tensor | None] = {}
    for o, seed in zip(outputs, seeds, strict=True):
        cot[id(o)] = cot[id(o)] + seed if id(o) in cot else seed
    result: dict[int, Tensor] = {}
    outer_callbacks = _END.queue
    if wanted is None:
        _END.queue = []
    try:
        leaf_cts: dict[int, list[Any]] = {}  # id -> [leaf, its summed cotangent]
        with _GradMode(create_graph):
            order = _topo_order(outputs)
            last_uses = (_leaf_last_uses(order, outputs)
                         if wanted is None and _POST_ACCUMULATE else {})
            _walk(order, cot, result, wanted, retain_graph, create_graph, leaf_cts,
                  last_uses)
            # An output that is itself a leaf (``x.backward()``, or an op that returned
            # its input unchanged) receives its seed, as in PyTorch.
            for o in outputs:
                if o._node is None and id(o) in cot and (wanted is None or id(o) in wanted):
                    leaf_seed = cot.pop(id(o))
                    if leaf_seed is not None:
                        _add_leaf(leaf_cts, o, leaf_seed)
            _flush_leaves(list(leaf_cts.values()), wanted, result, create_graph)
        callbacks = _END.queue or []
    finally:
        if wanted is None:
            _END.queue = outer_callbacks
    for cb in callbacks:
        cb()
    return result


def _walk(order: Sequence[Tensor], cot: dict[int, Tensor | None], result: dict[int, Tensor],
          wanted: dict[int, Tensor] | None, retain_graph: bool, create_graph: bool,
          leaf_cts: dict[int, list[Any]], last_uses: dict[int, list[Tensor]]) -> None:
    """The reverse sweep: each node's VJP, cotangents summed per value and per leaf. A
    leaf with a post-accumulate hook is accumulated as soon as its last consumer is done
    (so data-parallel training can start communicating); the others at the end."""
    for index, t in enumerate(order):
        g = cot.pop(id(t), None)
        if g is not None and getattr(t, "_hooks", None):
            g = _call_hooks(t, g)
        if wanted is not None and id(t) in wanted and g is not None:
            result[id(t)] = g
        if g is not None:
            _step(t._node, g, t, cot, wanted, retain_graph, leaf_cts)  # type: ignore[arg-type]
        done = last_uses.get(index)
        if done:
            _flush_leaves([leaf_cts.pop(id(x)) for x in done if id(x) in leaf_cts], wanted,
                          result, create_graph)


def _step(node: Node, g: Tensor, t: Tensor, cot: dict[int, Tensor | None],
          wanted: dict[int, Tensor] | None, retain_graph: bool,
          leaf_cts: dict[int, list[Any]]) -> None:
    inputs = node.inputs
    if inputs is None:
        raise AutogradError(_FREED)
    vjp = node.prim.vjp
    assert vjp is not None
    cts = vjp(g, t, *inputs, **node.attrs)
    if not retain_graph:
        node.inputs = None
    for inp, ct in zip(inputs, cts, strict=True):
        if ct is None or not inp.requires_grad:
            continue
        if inp._node is None:  # leaf
            if wanted is None or id(inp) in wanted:
                _add_leaf(leaf_cts, inp, ct)
        else:
            prev = cot.get(id(inp))
            cot[id(inp)] = ct if prev is None else prev + ct


def _flush_leaves(entries: Sequence[list[Any]], wanted: dict[int, Tensor] | None,
                  result: dict[int, Tensor], create_graph: bool) -> None:
    """Leaves whose gradient is complete: their hooks see the whole gradient, then it is
    accumulated into ``.grad`` (``backward``) or returned (``grad``); post-accumulate
    hooks run last."""
    for entry_ in entries:
        leaf: Tensor = entry_[0]
        ct: Tensor = entry_[1]
        if getattr(leaf, "_hooks", None):
            ct = _call_hooks(leaf, ct)
        if wanted is not None:
            result[id(leaf)] = ct
            continue
        _accumulate_leaf(leaf, ct, create_graph)
        entry = _POST_ACCUMULATE.get(id(leaf))
        if entry is not None and entry[0]() is leaf:
            for hook in list(entry[1].values()):
                hook(leaf)


def _add_leaf(leaf_cts: dict[int, list[Any]], leaf: Tensor, ct: Tensor) -> None:
    entry = leaf_cts.get(id(leaf))
    if entry is None:
        leaf_cts[id(leaf)] = [leaf, ct]
    else:
        entry[1] = entry[1] + ct


def _call_hooks(t: Tensor, g: Tensor) -> Tensor:
    """Run ``t``'s gradient hooks in order; each may return a replacement."""
    for hook in list(t._hooks.values()):
        new = hook(g)
        if new is None:
            continue
        if not isinstance(new, Tensor) or tuple(new.shape) != tuple(g.shape):
            got = tuple(new.shape) if isinstance(new, Tensor) else type(new).__name__
            raise AutogradError(f"a tensor hook returned {got}; it must return None or a "
                                f"tensor of the gradient's shape {tuple(g.shape)}")
        g = new
    return g


def register_tensor_hook(t: Tensor, hook: Callable[[Tensor], Any]) -> Any:
    """``Tensor.register_hook``: see there."""
    from .hooks import add_hook

    if not t.requires_grad:
        raise AutogradError("cannot register a hook on a tensor that doesn't require "
                            "gradient")
    table = getattr(t, "_hooks", None)
    if table is None:
        table = {}
        t._hooks = table
    return add_hook(table, hook)


def _accumulate_leaf(leaf: Tensor, ct: Tensor, create_graph: bool) -> None:
    if not create_graph:
        ct = ct.detach()
    if ct.dtype is not leaf.dtype:
        ct = ct.to(leaf.dtype)
    leaf.grad = ct if leaf.grad is None else leaf.grad + ct


def backward(outputs: Sequence[Tensor], grad_outputs: Sequence[Any] | None = None,
             retain_graph: bool = False, create_graph: bool = False) -> None:
    """Accumulate gradients of ``outputs`` into ``.grad`` of every leaf that requires grad."""
    _run(list(outputs), grad_outputs, retain_graph or create_graph, create_graph, None)


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs`` (as torch.autograd.grad),
    returned instead of accumulated into ``.grad``."""
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is not None and isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    for i in ins:
        if not i.requires_grad:
            raise AutogradError("one of the differentiated tensors does not require grad")
    wanted = {id(i): i for i in ins}
    keep = create_graph if retain_graph is None else retain_graph
    res = _run(outs, grad_outputs, keep, create_graph, wanted)
    out: list[Tensor | None] = []
    for i in ins:
        g = res.get(id(i))
        if g is None and not allow_unused:
            raise AutogradError(
                "one of the differentiated tensors appears to not have been used in the "
                "graph; pass allow_unused=True if this is intended"
            )
        out.append(g)
    return tuple(out)


# ----------------------------------------------------------------------------- functional


def _fresh(x: Any) -> Tensor:
    """A new differentiable handle on ``x``: connected to x's own history (so outer
    derivatives see through it) but a distinct tape node (so this level's gradient is
    taken with respect to it alone)."""
    if not isinstance(x, Tensor):
        raise AutogradError(f"am.grad: can only differentiate with respect to tensors, got "
                            f"{type(x).__name__}")
    if not x.dtype.is_floating:
        raise AutogradError(f"am.grad: cannot differentiate with respect to a {x.dtype.name} "
                            f"tensor; use a floating dtype")
    from . import functional as _F

    if x.requires_grad:
        with _GradMode(True):
            return _F.clone(x)
    t = x.detach()
    t.requires_grad = True
    return t


def value_and_grad(fn: Callable[..., Any], argnums: int | Sequence[int] = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
    """``value_and_grad(f)(*args) -> (f(*args), df/d args[argnums])``. ``f`` must return a
    scalar tensor (or ``(scalar, aux)`` with ``has_aux``). Arguments may be nested
    lists/tuples/dicts of tensors; gradients have the same structure. Calls nest for
    higher-order derivatives."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from .ops.registry import is_grad_enabled

        outer = is_grad_enabled()
        args_l = list(args)
        flats = []
        for i in nums:
            if i >= len(args_l):
                raise AutogradError(f"argnums {i} is out of range for {len(args_l)} arguments")
            leaves, td = tree_flatten(args_l[i])
            fresh = [_fresh(x) for x in leaves]
            args_l[i] = tree_unflatten(td, fresh)
            flats.append((fresh, td))
        with _GradMode(True):
            res = fn(*args_l, **kwargs)
        value, aux = (res if has_aux else (res, None))
        if not isinstance(value, Tensor) or value.numel() != 1:
            raise AutogradError(
                "am.grad: the function must return a scalar tensor, got "
                + (f"shape {tuple(value.shape)}" if isinstance(value, Tensor)
                   else type(value).__name__)
            )
        all_in = [x for fresh, _ in flats for x in fresh]
        create = outer and any(_has_outer_history(x) for x in all_in)
        if value.requires_grad:
            gs = grad(value, all_in, create_graph=create, allow_unused=True)
        else:
            gs = tuple(None for _ in all_in)
        from . import functional as _F

        gs_l = [_F.zeros_like(x).detach() if g is None else g for g, x in zip(gs, all_in,
                                                                             strict=True)]
        if not create:
            gs_l = [g.detach() for g in gs_l]
            value = value.detach()
        out, k = [], 0
        for fresh, td in flats:
            out.append(tree_unflatten(td, gs_l[k:k + len(fresh)]))
            k += len(fresh)
        grads = out[0] if isinstance(argnums, int) else tuple(out)
        return ((value, aux), grads) if has_aux else (value, grads)

    return wrapped


def _has_outer_history(x: Tensor) -> bool:
    return x._node is not None


def grad_fn(fn: Callable[..., Any], argnums: int | Sequence[int] = 0,
            has_aux: bool = False) -> Callable[..., Any]:
    """``am.grad(f)``: a function returning df/d args[argnums] (JAX style; nests)."""
    vg = value_and_grad(fn, argnums, has_aux)

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if has_aux:
            (_, aux), g = vg(*args, **kwargs)
            return g, aux
        return vg(*args, **kwargs)[1]

    return wrapped
