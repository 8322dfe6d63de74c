"""docs/opset.md is normative: its summary table must list exactly the registered
primitives, each with exactly its registered attributes and accepted dtypes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from primitive_cases import ACCEPTS

import amber._dtype as D
from amber.ops import REGISTRY

DOC = Path(__file__).resolve().parents[2] / "docs" / "opset.md"
# the dtype groups of docs/opset.md section 1.1
GROUPS = {group: {d.name for d in dtypes} for group, dtypes in (
    ("numeric", D.NUMERIC), ("float", D.FLOATS), ("int", D.INTS), ("integer", D.INTEGERS),
    ("bool", D.BOOLS), ("any", D.DTYPES))}


def _summary() -> dict[str, tuple[set[str], str]]:
    """primitive name -> (attribute names, dtype column) from the table in section 2."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## 2. Summary", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[set[str], str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        attrs = {a.strip() for a in cells[2].split(",") if a.strip()}
        for name in re.findall(r"`([a-z0-9_]+)`", cells[0]):
            rows[name] = (attrs, cells[3])
    return rows


def test_summary_lists_exactly_the_registry() -> None:
    rows = _summary()
    assert set(rows) == set(REGISTRY), (
        f"missing from docs/opset.md: {sorted(set(REGISTRY) - set(rows))}; "
        f"documented but not registered: {sorted(set(rows) - set(REGISTRY))}"
    )


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_documented_attributes_match(name: str) -> None:
    attrs, _ = _summary()[name]
    assert attrs == set(REGISTRY[name].attrs), (name, attrs, REGISTRY[name].attrs)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_documented_dtypes_match(name: str) -> None:
    _, column = _summary()[name]
    # The data-operand group is the first group word in the column (e.g. "base, src numeric").
    words = re.findall(r"\b(numeric|float|int|bool|any)\b", column)
    want = set(ACCEPTS[name])
    if not want:
        assert column in ("—", "-"), (name, column)
        return
    data_groups = [w for w in words if GROUPS[w] == want]
    assert data_groups, f"{name}: docs say {column!r}, the registry accepts {sorted(want)}"


def test_every_primitive_has_a_definition_section() -> None:
    text = DOC.read_text(encoding="utf-8")
    body = text.split("## 3.", 1)[1].split("## 5.", 1)[0]
    for name in REGISTRY:
        assert f"`{name}`" in body or f"**`{name}" in body, f"{name}: no definition in docs"
