"""The C op table (runtime/src/ops.def, one X-macro list) matches amber.ops.REGISTRY:
same primitives, input counts and attribute schemas; the built library reports the same
names through the public API."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

from amber.ops import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r'^X\(\s*(\w+),\s*"(\w+)",\s*(-?\d+),\s*(\w+),\s*"([^"]*)"', re.M)


def c_table() -> dict[str, tuple[int | None, dict[str, str]]]:
    text = (ROOT / "runtime" / "src" / "ops.def").read_text()
    text = re.sub(r"\n\s+", " ", text)  # rows may continue on indented lines
    rows = {}
    text = re.sub(r'"\s+"', "", text)  # adjacent string literals join
    for _id, name, nin, _dts, attrs in ROW.findall(text):
        schema = dict(a.split(":", 1) for a in attrs.split(",")) if attrs else {}
        rows[name] = (None if int(nin) < 0 else int(nin), schema)
    return rows


def test_ops_def_matches_registry() -> None:
    table = c_table()
    assert sorted(table) == sorted(REGISTRY), (
        f"missing in C: {sorted(set(REGISTRY) - set(table))}, "
        f"unknown to the registry: {sorted(set(table) - set(REGISTRY))}")
    for name, prim in REGISTRY.items():
        nin, attrs = table[name]
        assert nin == prim.n_inputs, f"{name}: ops.def takes {nin} inputs, registry {prim.n_inputs}"
        assert attrs == prim.attrs, f"{name}: ops.def attrs {attrs}, registry {prim.attrs}"


def test_library_reports_the_table(runtime_build: Path) -> None:
    lib = ctypes.CDLL(str(runtime_build / "libamber.so"))
    lib.amber_op_count.restype = ctypes.c_size_t
    lib.amber_op_name.restype = ctypes.c_char_p
    lib.amber_op_name.argtypes = [ctypes.c_size_t]
    n = lib.amber_op_count()
    names = [lib.amber_op_name(i).decode() for i in range(n)]
    assert lib.amber_op_name(n) is None
    assert sorted(names) == sorted(REGISTRY)
    header = (ROOT / "runtime" / "include" / "amber.h").read_text()
    assert f"#define AMBER_PRIMITIVES {n}\n" in header
