"""Minimal pytrees: nested tuples, lists and dicts whose leaves are tensors (or anything)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TreeDef = Any


def tree_flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, TreeDef]:
    """Leaves in order (dicts by sorted key) and a structure for ``tree_unflatten``."""
    leaves: list[Any] = []

    def walk(t: Any) -> TreeDef:
        if is_leaf is not None and is_leaf(t):
            leaves.append(t)
            return None
        if isinstance(t, (tuple, list)):
            return (type(t), tuple(walk(x) for x in t))
        if isinstance(t, dict):
            keys = sorted(t)
            return (dict, tuple(keys), tuple(walk(t[k]) for k in keys))
        leaves.append(t)
        return None

    return leaves, walk(tree)


def tree_unflatten(treedef: TreeDef, leaves: list) -> Any:
    it = iter(leaves)

    def build(td: TreeDef) -> Any:
        if td is None:
            return next(it)
        if td[0] is dict:
            return {k: build(s) for k, s in zip(td[1], td[2], strict=True)}
        kind, subs = td
        items = [build(s) for s in subs]
        return kind(items) if kind is list else (
            kind(*items) if hasattr(kind, "_fields") else tuple(items))

    return build(treedef)


def tree_map(fn: Callable[[Any], Any], tree: Any) -> Any:
    leaves, td = tree_flatten(tree)
    return tree_unflatten(td, [fn(x) for x in leaves])


def tree_paths(tree: Any, root: str, step: Callable[[str, Any], str]) -> list[str]:
    """Names of the leaves of ``tree`` in ``tree_flatten`` order: ``root`` extended by
    ``step(name, index_or_key)`` at every level (``lambda p, k: f"{p}[{k!r}]"`` gives
    ``x[0]['h']``)."""
    out: list[str] = []

    def walk(t: Any, name: str) -> None:
        if isinstance(t, (tuple, list)):
            for i, x in enumerate(t):
                walk(x, step(name, i))
        elif isinstance(t, dict):
            for k in sorted(t):
                walk(t[k], step(name, k))
        else:
            out.append(name)

    walk(tree, root)
    return out
