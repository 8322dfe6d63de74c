"""``am.autograd.Function``: an operation with a hand-written backward, as PyTorch's
``torch.autograd.Function``.

    class Exp(am.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y

    y = Exp.apply(x)

``forward`` runs with gradient recording off; one tape entry stands for the whole call,
and its VJP is ``backward``. A forward with several tensor outputs records one hidden
entry over all of them (flattened and joined), and each output is a view of it, so
``backward`` receives a gradient for every output (zeros for unused ones), as in PyTorch.

NOTE: ``backward`` is Python, so a file cannot hold it. Under capture the forward is
traced inline (exact for inference); a captured gradient that would flow through the
call is refused, naming the line of the ``apply``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .capture_errors import user_frame
from .errors import AutogradError, CaptureError
from .ops import shape as S
from .ops.registry import Aval, Node, Primitive, is_grad_enabled, no_grad
from .tensor import Tensor, _wrap_array

__all__ = ["Function", "FunctionCtx", "once_differentiable"]


class FunctionCtx:
    """What ``forward`` hands to ``backward``: saved tensors and flags."""

    def __init__(self, needs_input_grad: tuple[bool, ...]) -> None:
        self.needs_input_grad = needs_input_grad
        self._saved: tuple[Any, ...] = ()
        self._non_differentiable: set[int] = set()
        self.materialize_grads = True

    def save_for_backward(self, *tensors: Any) -> None:
        """Keep tensors (or None) for ``backward``; read them back as ``saved_tensors``."""
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise AutogradError(f"save_for_backward takes tensors or None, got "
                                    f"{type(t).__name__} (store other values on ctx)")
        self._saved = tensors

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        return self._saved

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        """Outputs that carry no gradient (an index, a mask)."""
        self._non_differentiable.update(id(t) for t in tensors)

    def mark_dirty(self, *tensors: Tensor) -> None:
        """Accepted for PyTorch code; amber's in-place checks already guard inputs."""

    def set_materialize_grads(self, value: bool) -> None:
        """Accepted for PyTorch code: amber always passes zeros, never None, for the
        gradient of an output that was not used."""
        self.materialize_grads = bool(value)


def once_differentiable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``backward``: it runs with gradient recording off (no double backward)."""

    @functools.wraps(fn)
    def wrapper(ctx: Any, *grads: Any) -> Any:
        with no_grad():
            return fn(ctx, *grads)

    return wrapper


def _no_infer(*avals: Aval, **attrs: Any) -> Aval:
    raise AutogradError("a custom am.autograd.Function has no shape rule")


class _FunctionPrim(Primitive):
    """A tape entry for one ``Function.apply`` call (never registered, never exported)."""

    def __init__(self, name: str) -> None:
        super().__init__(name, _unreachable, _no_infer, {}, None)


def _unreachable(*args: Any, **attrs: Any) -> np.ndarray:
    raise AutogradError("a custom am.autograd.Function's tape entry is not re-run")


class Function:
    """Subclass with static ``forward(ctx, *args)`` and ``backward(ctx, *grads)`` (or the
    newer ``forward(*args)`` plus ``setup_context(ctx, inputs, output)``), then call
    ``YourFunction.apply(*args)``. ``backward`` returns one gradient (or None) per
    argument of ``forward``."""

    @staticmethod
    def forward(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a Function subclass defines forward")

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Any) -> Any:
        raise NotImplementedError("a Function subclass defines backward")

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        raise NotImplementedError

    @classmethod
    def _separate_setup(cls) -> bool:
        return getattr(cls.setup_context, "__func__", cls.setup_context) is not \
            getattr(Function.setup_context, "__func__", Function.setup_context)

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        tracing = any(isinstance(a, Tensor) and a._data is None for a in args)
        wants_grad = is_grad_enabled() and any(
            isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = FunctionCtx(tuple(isinstance(a, Tensor) and a.requires_grad for a in args))
        with no_grad():
            if cls._separate_setup():
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        if not wants_grad:
            return out
        if tracing:
            return _refuse_gradient(cls, ctx, args, out)
        return _record(cls, ctx, args, out)


def _differentiable(ctx: FunctionCtx, outs: Sequence[Any]) -> list[int]:
    return [i for i, o in enumerate(outs) if isinstance(o, Tensor) and o.dtype.is_floating
            and id(o) not in ctx._non_differentiable]


def _record(cls: type[Function], ctx: FunctionCtx, args: tuple[Any, ...], out: Any) -> Any:
    """Put one tape entry for the call on the autograd tape; return the outputs."""
    single = not isinstance(out, tuple)
    outs = [out] if single else list(out)
    diff = _differentiable(ctx, outs)
    if not diff:
        return out
    inputs = tuple(a for a in args if isinstance(a, Tensor))
    positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    arrays = [np.asarray(outs[i]._data) for i in diff]
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        raise AutogradError(f"{cls.__name__}.forward returned differentiable outputs of "
                            f"several dtypes {sorted(map(str, dtypes))}; amber needs one")
    shapes = [a.shape for a in arrays]
    prim = _FunctionPrim(cls.__name__)

    def vjp(g: Tensor, _out: Tensor, *_inputs: Tensor) -> tuple[Any, ...]:
        grads: list[Any] = [None] * len(outs)
        _unpack(g, diff, shapes, grads)
        got = cls.backward(ctx, *grads)
        got = got if isinstance(got, tuple) else (got,)
        if len(got) < len(args) or any(x is not None for x in got[len(args):]):
            raise AutogradError(f"{cls.__name__}.backward returned {len(got)} gradient(s) "
                                f"for {len(args)} forward argument(s)")
        return tuple(_check_grad(cls, got[p], args[p], p) for p in positions)

    prim.vjp = vjp
    if len(diff) == 1:
        # NOTE: an output that is one of the inputs gets a copy; the input keeps its own.
        mine = all(outs[diff[0]] is not a for a in inputs)
        hidden = outs[diff[0]] if mine else _wrap_array(arrays[0].copy())
    else:
        hidden = _wrap_array(np.concatenate([a.reshape(-1) for a in arrays]))
    hidden.requires_grad = True
    hidden._node = Node(prim, inputs, {}, hidden)
    _unpack(hidden, diff, shapes, outs)
    return outs[0] if single else tuple(outs)


def _unpack(packed: Tensor, diff: list[int], shapes: list[tuple[int, ...]],
            into: list[Any]) -> None:
    """into[diff[k]] = the k-th output's part of ``packed`` (itself for a single one)."""
    if len(diff) == 1:
        into[diff[0]] = packed
        return
    off = 0
    for i, shape in zip(diff, shapes, strict=True):
        n = int(np.prod(shape, dtype=np.int64))
        piece = S.slice_(packed, starts=(off,), stops=(off + n,), steps=(1,))
        into[i] = S.reshape(piece, shape=tuple(shape))
        off += n


def _refuse_gradient(cls: type[Function], ctx: FunctionCtx, args: tuple[Any, ...],
                     out: Any) -> Any:
    """Under capture: the traced outputs carry a tape entry that refuses to be
    differentiated (the forward alone is exact; the Python backward cannot be stored)."""
    path, line, text = user_frame()
    where = f"{path}:{line}" + (f": {text}" if text else "")
    prim = _FunctionPrim(cls.__name__)

    def vjp(*_: Any) -> tuple[Any, ...]:
        raise CaptureError(
            f"{where}\n  {cls.__name__} is a custom am.autograd.Function: its backward is "
            "Python, which a file cannot hold, so a captured gradient cannot flow through "
            "it. Write the operation with amber ops (its gradient is then derived), or "
            "take this gradient in eager mode.")

    prim.vjp = vjp
    inputs = tuple(a for a in args if isinstance(a, Tensor))
    outs = [out] if not isinstance(out, tuple) else list(out)
    for i in _differentiable(ctx, outs):
        o = outs[i]
        if any(o is a for a in inputs):
            continue  # an input passed through keeps its own history
        o.requires_grad = True
        o._node = Node(prim, inputs, {}, o)
    return out


def _check_grad(cls: type[Function], g: Any, arg: Tensor, position: int) -> Any:
    if g is None or not arg.requires_grad:
        return None
    if not isinstance(g, Tensor):
        raise AutogradError(f"{cls.__name__}.backward: gradient {position} is "
                            f"{type(g).__name__}, expected a Tensor or None")
    if tuple(g.shape) != tuple(arg.shape):
        raise AutogradError(f"{cls.__name__}.backward: gradient {position} has shape "
                            f"{tuple(g.shape)}, but forward's argument {position} has shape "
                            f"{tuple(arg.shape)}")
    return g
