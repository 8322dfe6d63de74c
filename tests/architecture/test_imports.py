"""The import graph may not grow new cycles: every import edge that lies on a cycle must be
one of the known ones (``known_cycles.txt``), and the list shrinks as cycles are untied
(docs/architecture.md draws the layers the package is moving to)."""

from __future__ import annotations

from pathlib import Path

from .imports import cyclic_edges, graph

KNOWN = Path(__file__).with_name("known_cycles.txt")
REGENERATE = "python tests/architecture/imports.py > tests/architecture/known_cycles.txt"


def _known() -> set[tuple[str, str]]:
    out = set()
    for line in KNOWN.read_text().splitlines():
        a, _, b = line.partition(" -> ")
        out.add((a.strip(), b.strip()))
    return out


def test_no_new_import_cycle() -> None:
    new = sorted(cyclic_edges(graph()) - _known())
    assert not new, (
        "these imports close a cycle in the import graph; import downward only "
        "(docs/architecture.md), or move the shared helper below both modules:\n  "
        + "\n  ".join(f"{a} -> {b}" for a, b in new))


def test_known_cycles_are_current() -> None:
    gone = sorted(_known() - cyclic_edges(graph()))
    assert not gone, ("these imports no longer lie on a cycle; shrink the list with "
                      f"`{REGENERATE}`:\n  " + "\n  ".join(f"{a} -> {b}" for a, b in gone))


def test_the_graph_sees_function_local_imports() -> None:
    edges = graph()
    assert "amber.functional" in edges["amber.tensor"] or any(
        e.startswith("amber.functional") for e in edges["amber.tensor"])
