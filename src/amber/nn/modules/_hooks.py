"""How ``Module.__call__`` runs forward pre-hooks, forward hooks and full backward
(pre-)hooks, with PyTorch's semantics: a hook's non-None return value replaces the
arguments, the output, the output gradient or the input gradient.

Backward hooks work through tensor hooks: the module's tensor arguments that require
grad are packed into one fresh tensor (``clone(cat(flattened))``) whose slices the
module sees, and so are its outputs. The packed output's gradient is complete once
every output's is (it is upstream of all of them), and likewise the packed input's:
one tensor hook on each gives the module hook all of ``grad_output`` or
``grad_input`` at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ... import functional as _F
from ..._tree import tree_flatten, tree_unflatten
from ...errors import AmberError
from ...ops.registry import is_grad_enabled
from ...tensor import Tensor

if TYPE_CHECKING:
    from .module import Module


def call_with_hooks(m: Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``m(*args, **kwargs)`` with its hooks."""
    pre, pre_kw = m._forward_pre_hooks, m._forward_pre_hooks_with_kwargs
    for hid, hook in list(pre.items()):
        if hid in pre_kw:
            res = hook(m, args, kwargs)
            if res is not None:
                if not (isinstance(res, tuple) and len(res) == 2):
                    raise AmberError(f"forward pre-hook {hook!r} with kwargs must return "
                                     f"None or a tuple (new_args, new_kwargs)")
                args, kwargs = res
        else:
            res = hook(m, args)
            if res is not None:
                args = res if isinstance(res, tuple) else (res,)
    state = None
    if (m._backward_hooks or m._backward_pre_hooks) and is_grad_enabled():
        args, state = _wrap_inputs(m, args)
    out = m.forward(*args, **kwargs)
    post_kw = m._forward_hooks_with_kwargs
    for hid, hook in list(m._forward_hooks.items()):
        res = hook(m, args, kwargs, out) if hid in post_kw else hook(m, args, out)
        if res is not None:
            out = res
    if state is not None:
        out = _wrap_outputs(m, out, state)
    return out


class _BackwardState:
    def __init__(self, n_args: int, positions: list[int]) -> None:
        self.n_args = n_args  # the module's tensor arguments
        self.positions = positions  # which of them require grad (indices)
        self.grad_output: tuple[Any, ...] | None = None


def _pack(tensors: list[Tensor], what: str) -> tuple[Tensor, list[Tensor]]:
    """One fresh tensor holding ``tensors`` (flattened, concatenated) and views of it
    shaped like them."""
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) != 1:
        raise AmberError(f"register_full_backward_hook: the module's {what} that require "
                         f"grad must share one dtype, got {sorted(d.name for d in dtypes)}")
    flat = [_F.reshape(t, -1) for t in tensors]
    packed = _F.clone(flat[0] if len(flat) == 1 else _F.cat(flat))
    views, off = [], 0
    for t in tensors:
        n = t.numel()
        views.append(_F.reshape(packed[off:off + n], t.shape))
        off += n
    return packed, views


def _split(g: Tensor, like: list[Tensor]) -> list[Tensor]:
    out, off = [], 0
    for t in like:
        n = t.numel()
        out.append(_F.reshape(g[off:off + n], t.shape))
        off += n
    return out


def _repack(grads: Any, like: list[Tensor], what: str) -> Tensor:
    if not isinstance(grads, (tuple, list)) or len(grads) != len(like):
        raise AmberError(f"a backward hook must return None or a tuple of {len(like)} "
                         f"{what} gradients, got {grads!r}")
    parts = []
    for g, t in zip(grads, like):
        g = _F.zeros_like(t) if g is None else g
        if not isinstance(g, Tensor) or tuple(g.shape) != tuple(t.shape):
            raise AmberError(f"a backward hook returned a {what} gradient of shape "
                             f"{getattr(g, 'shape', type(g).__name__)}, expected "
                             f"{tuple(t.shape)}")
        parts.append(_F.reshape(g, -1))
    return parts[0] if len(parts) == 1 else _F.cat(parts)


def _wrap_inputs(m: Module, args: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    idx = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    if any(args[i]._data is None for i in idx):
        return args, None  # under capture: no gradients to observe
    need = [k for k, i in enumerate(idx) if args[i].requires_grad]
    state = _BackwardState(len(idx), need)
    if not need:
        return args, state
    originals = [args[idx[k]] for k in need]
    packed, views = _pack(originals, "inputs")
    new_args = list(args)
    for k, v in zip(need, views):
        new_args[idx[k]] = v

    def on_input_grad(g: Tensor) -> Tensor | None:
        grads: list[Any] = [None] * state.n_args
        for k, gk in zip(need, _split(g, originals)):
            grads[k] = gk
        res = _call_backward_hooks(m, tuple(grads), state.grad_output)
        if res is None:
            return None
        if not isinstance(res, (tuple, list)) or len(res) != state.n_args:
            raise AmberError(f"a full backward hook must return None or a tuple of "
                             f"{state.n_args} input gradients, got {res!r}")
        return _repack([res[k] for k in need], originals, "input")

    packed.register_hook(on_input_grad)
    return tuple(new_args), state


def _wrap_outputs(m: Module, out: Any, state: _BackwardState) -> Any:
    leaves, treedef = tree_flatten(out)
    pos = [i for i, x in enumerate(leaves) if isinstance(x, Tensor) and x.requires_grad]
    if not pos:
        return out
    outs = [leaves[i] for i in pos]
    packed, views = _pack(outs, "outputs")

    def on_output_grad(g: Tensor) -> Tensor | None:
        grads: tuple[Any, ...] = tuple(_split(g, outs))
        replaced = False
        for hook in list(m._backward_pre_hooks.values()):
            res = hook(m, grads)
            if res is not None:
                grads = tuple(res) if isinstance(res, (tuple, list)) else (res,)
                replaced = True
        state.grad_output = grads
        if not state.positions:  # no input needs a gradient: the hooks run now
            _call_backward_hooks(m, (None,) * state.n_args, grads)
        return _repack(grads, outs, "output") if replaced else None

    packed.register_hook(on_output_grad)
    new = list(leaves)
    for i, v in zip(pos, views):
        new[i] = v
    return tree_unflatten(treedef, new)


def _call_backward_hooks(m: Module, grad_input: tuple[Any, ...],
                         grad_output: tuple[Any, ...] | None) -> Any:
    result = None
    for hook in list(m._backward_hooks.values()):
        res = hook(m, grad_input, grad_output)
        if res is not None:
            grad_input = tuple(res)
            result = grad_input
    return result
