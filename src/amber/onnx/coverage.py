"""The importer's coverage of the default ``ai.onnx`` domain, as the table docs/onnx.md
shows (a test checks that the document holds exactly this table)."""

from __future__ import annotations

from . import importer  # noqa: F401  (fills the op table)
from ._graph import MIN_IMPORT_OPSET, OPS


def _newest() -> int:
    import onnx

    return int(onnx.defs.onnx_opset_version())


def unsupported_ops() -> list[str]:
    """Operators of the default domain the installed ``onnx`` knows and amber does not
    import."""
    import onnx

    names = {s.name for s in onnx.defs.get_all_schemas_with_history()
             if s.domain in ("", "ai.onnx") and not s.deprecated}
    return sorted(n for n in names if n not in OPS)


def _introduced() -> dict[str, int]:
    import onnx

    first: dict[str, int] = {}
    for s in onnx.defs.get_all_schemas_with_history():
        if s.domain in ("", "ai.onnx"):
            first[s.name] = min(first.get(s.name, 10**6), int(s.since_version))
    return first


def coverage_markdown() -> str:
    """The op table: operator, opsets it is imported for, notes."""
    newest = _newest()
    first = _introduced()
    lines = ["| op | opsets | notes |", "|---|---|---|"]
    for name in sorted(OPS):
        defs = OPS[name]
        since = max(defs[0].since, MIN_IMPORT_OPSET, first.get(name, 1))
        notes = "; ".join(d.notes for d in defs if d.notes).replace("|", "/")
        lines.append(f"| `{name}` | {since}–{newest} | {notes} |")
    lines.append("")
    lines.append("Not imported (raise `am.UnsupportedError`): " +
                 ", ".join(f"`{n}`" for n in unsupported_ops()) + ".")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(coverage_markdown())
