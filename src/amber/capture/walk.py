"""The walk over a function's nodes that everything running or checking a program in
Python shares: the reference interpreter (its values NumPy arrays), the runner that binds
a loaded program through the op registry (tensors), the replay of a function into a
capture (tensors), the IR verifier (types) and the ONNX lowering (ONNX value names).

A :class:`Walker` owns the iteration: it binds a function's parameters to the values it
is given, reads each node's inputs from the environment of values, dispatches on the
node's kind to the handler of that kind, stores what the handler returns as the node's
outputs, and returns the function's results. The kinds are the builtins (``constant``,
``weight``, ``call``, ``cond``, ``while``, ``scan``) and ``primitive`` (every other op);
a subclass supplies one handler per kind and may refine the steps around them
(:meth:`Walker.enter`, :meth:`Walker.before`, :meth:`Walker.store`, ...).

This module imports nothing of amber's, so every layer may use it; it reads functions
and nodes only through their fields (``params``, ``nodes``, ``results``; ``op``,
``inputs``, ``outputs``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

V = TypeVar("V")

HANDLERS: dict[str, str] = {"constant": "constant", "weight": "weight", "call": "call",
                            "cond": "cond", "while": "while_", "scan": "scan"}
"""The builtin node kinds and the name of each one's handler (any other op is a
primitive, handled by ``primitive``)."""


class Frame(Generic[V]):
    """One execution of one function: the function, the binding of its symbols
    (``env``: whatever the walker keeps there), the nesting depth, the environment of
    values (``id(Value) -> value``), the node being run and its index, and ``state``,
    what the walker keeps per execution."""

    __slots__ = ("fn", "env", "depth", "values", "index", "node", "state")

    def __init__(self, fn: Any, env: Any, depth: int) -> None:
        self.fn = fn
        self.env = env
        self.depth = depth
        self.values: dict[int, V] = {}
        self.index = -1
        self.node: Any = None
        self.state: Any = None

    def where(self) -> str:
        """``"<function>, node <i> (<op>)"``: how run-time errors name the node."""
        return f"{self.fn.name}, node {self.index} ({self.node.op})"


class Walker(Generic[V]):
    """Runs functions node by node, dispatching on each node's kind. Subclasses define
    the handlers, methods ``(frame, node, ins) -> outs`` (the values of the node's
    outputs) named as in :data:`HANDLERS`, and ``primitive``; a kind left undefined
    fails with ``NotImplementedError``."""

    _handlers: dict[str, Callable[..., Sequence[Any]]] = {}
    _before: Callable[..., None] | None = None
    _store: Callable[..., None] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # NOTE: one table per class (a walker is made per call on hot paths); the hooks
        # a class leaves as they are cost no call per node
        cls._handlers = {kind: getattr(cls, name, None) or _unhandled(kind)
                         for kind, name in HANDLERS.items()}
        cls._before = cls.before if cls.before is not Walker.before else None
        cls._store = cls.store if cls.store is not Walker.store else None

    def walk(self, fn: Any, args: Sequence[V], env: Any, depth: int) -> list[V]:
        """Run ``fn`` on ``args`` (one per parameter) and return its results."""
        frame: Frame[V] = Frame(fn, env, depth)
        values = frame.values
        for p, a in zip(fn.params, args):
            values[id(p)] = a
        self.enter(frame)
        cls = type(self)  # NOTE: the class's plain functions, called with self
        handlers, primitive, before, store = cls._handlers, cls.primitive, cls._before, \
            cls._store
        try:
            for i, node in enumerate(fn.nodes):
                frame.index = i
                frame.node = node
                try:
                    ins = [values[id(v)] for v in node.inputs]
                except KeyError:
                    self.undefined(frame, node)
                    raise
                if before is not None:
                    before(self, frame, node)
                outs = handlers.get(node.op, primitive)(self, frame, node, ins)
                if store is not None:
                    store(self, frame, node, outs)
                else:
                    for v, out in zip(node.outputs, outs):
                        values[id(v)] = out
            return self.results(frame)
        finally:
            self.leave(frame)

    # -- steps around the handlers (defaults: none) ------------------------------------
    def enter(self, frame: Frame[V]) -> None:
        """Before the first node (the parameters are bound)."""

    def leave(self, frame: Frame[V]) -> None:
        """After the walk, also when it failed."""

    def before(self, frame: Frame[V], node: Any) -> None:
        """Before a node's handler runs."""

    def undefined(self, frame: Frame[V], node: Any) -> None:
        """An input of ``node`` has no value yet; may raise a clearer error (else the
        ``KeyError`` propagates)."""

    def store(self, frame: Frame[V], node: Any, outs: Sequence[V]) -> None:
        """Bind ``node``'s outputs to ``outs``."""
        values = frame.values
        for v, out in zip(node.outputs, outs):
            values[id(v)] = out

    def results(self, frame: Frame[V]) -> list[V]:
        """The function's results, after the last node."""
        values = frame.values
        return [values[id(v)] for v in frame.fn.results]

    def primitive(self, frame: Frame[V], node: Any, ins: list[V]) -> Sequence[V]:
        """The handler of every op that is not a builtin."""
        return _unhandled(node.op)(self, frame, node, ins)


def _unhandled(kind: str) -> Callable[..., Sequence[Any]]:
    def handler(self: Walker[Any], frame: Frame[Any], node: Any, ins: list[Any]
                ) -> Sequence[Any]:
        raise NotImplementedError(f"{type(self).__name__} handles no {kind!r} nodes")

    return handler


__all__ = ["HANDLERS", "Frame", "Walker"]
