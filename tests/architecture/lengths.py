"""Function lengths, in lines from the ``def`` (or the C signature's first line) to the
last line of the body: Python's read with ``ast``, C's from the layout every file of
``runtime/src`` keeps (a definition starts at column 0, its body ends at a ``}`` alone
at column 0)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY_SRC = ROOT / "src" / "amber"
C_SRC = ROOT / "runtime" / "src"
C_SUFFIXES = (".c", ".h", ".inc")

_C_START = re.compile(r"^(?!typedef\b|struct\b|enum\b|union\b|#)[A-Za-z_][^=(;]*?\b"
                      r"([A-Za-z_]\w*)\s*\(")
# NOTE: ``__attribute__((...))`` before a name would otherwise be read as the name.
_C_ATTRIBUTE = re.compile(r"__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)")
_C_NAME = re.compile(r"([A-Za-z_]\w*)\s*\(")


def python_functions() -> Iterator[tuple[str, int]]:
    """(``path:line qualified name``, lines) of every function and method."""
    for path in sorted(PY_SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        rel = path.relative_to(ROOT)
        stack: list[tuple[ast.AST, str]] = [(tree, "")]
        while stack:
            node, prefix = stack.pop()
            for child in ast.iter_child_nodes(node):
                name = prefix
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}{child.name}."
                    if not isinstance(child, ast.ClassDef):
                        assert child.end_lineno is not None
                        yield (f"{rel}:{child.lineno} {name[:-1]}",
                               child.end_lineno - child.lineno + 1)
                stack.append((child, name))


def c_functions_of(text: str) -> Iterator[tuple[str, int, int]]:
    """(name, first line, lines) of every function defined in C source ``text``."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        head = lines[i]
        if head.startswith("__attribute__"):
            head = _C_ATTRIBUTE.sub("", head).lstrip()
        m = _C_START.match(head)
        if not m:
            i += 1
            continue
        j = i  # the signature ends at the line that opens the body (or a prototype's ;)
        while j < len(lines) and not lines[j].rstrip().endswith(("{", ";", "}")):
            j += 1
        if j == len(lines) or not lines[j].rstrip().endswith("{"):
            i = j + 1  # a prototype, or a definition on one line
            continue
        k = j
        while k < len(lines) and lines[k] != "}":
            k += 1
        if k == len(lines):
            raise ValueError(f"function {m.group(1)} at line {i + 1} has no closing brace "
                             "at column 0")
        yield _name(m.group(1), lines[i:j + 1]), i + 1, k - i + 1
        i = k + 1


def _name(first: str, signature: list[str]) -> str:
    """The defined function's name, past any ``__attribute__((...))``."""
    if first != "__attribute__":
        return first
    m = _C_NAME.search(_C_ATTRIBUTE.sub("", " ".join(signature)))
    return m.group(1) if m else first


def c_functions() -> Iterator[tuple[str, int]]:
    """(``path name``, lines) of every function in ``runtime/src``."""
    for path in sorted(C_SRC.iterdir()):
        if path.suffix in C_SUFFIXES:
            for name, _, n in c_functions_of(path.read_text()):
                yield f"{path.relative_to(ROOT)} {name}", n


if __name__ == "__main__":
    for key, n in [*python_functions(), *c_functions()]:
        if n > 100:
            print(n, key)
