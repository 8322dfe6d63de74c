"""Removable hook handles (``handle.remove()``), shared by ``Tensor.register_hook``
and the ``Module.register_*_hook`` methods."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

_ids = itertools.count()


class RemovableHandle:
    """Returned by every ``register_*hook``: ``remove()`` takes the hook out (again is
    harmless); also a context manager that removes it on exit."""

    def __init__(self, table: dict[int, Any]) -> None:
        self.id = next(_ids)
        self._table = table

    def remove(self) -> None:
        self._table.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def add_hook(table: dict[int, Any], hook: Callable[..., Any], prepend: bool = False
             ) -> RemovableHandle:
    """Put ``hook`` into ``table`` (last, or first with ``prepend``) and return its
    handle."""
    if not callable(hook):
        from .errors import AmberError

        raise AmberError(f"a hook must be callable, got {type(hook).__name__}")
    handle = RemovableHandle(table)
    if prepend:
        items = list(table.items())
        table.clear()
        table[handle.id] = hook
        table.update(items)
    else:
        table[handle.id] = hook
    return handle


__all__ = ["RemovableHandle"]
