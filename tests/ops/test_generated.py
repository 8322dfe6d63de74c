"""The files derived from the primitives' schema (``amber.ops.REGISTRY``) are current:
``runtime/src/ops.def``, the primitive counts in ``runtime/include/amber.h`` and the
summary table of ``docs/opset.md``. Regenerate them with ``python scripts/gen_ops.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from amber.ops import REGISTRY

ROOT = Path(__file__).resolve().parents[2]


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_ops", ROOT / "scripts" / "gen_ops.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_ops", module)
    spec.loader.exec_module(module)
    return module


GEN = _gen()


@pytest.mark.parametrize("path", sorted(GEN.outputs(), key=str), ids=lambda p: p.name)
def test_generated_file_is_current(path: Path) -> None:
    want = GEN.outputs()[path]
    assert path.read_text(encoding="utf-8") == want, (
        f"{path.relative_to(ROOT)} is out of date with amber.ops.REGISTRY: "
        f"run `{GEN.COMMAND}` and commit the result")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_primitive_declares_its_schema(name: str) -> None:
    p = REGISTRY[name]
    assert p.dtypes is not None, f"{name}: declare dtypes= on the primitive"
    GEN.dtype_set(p)  # a named dtype set (raises naming the primitive otherwise)
    assert not [w for w in GEN.WARNINGS if w.startswith(f"{name}:")], GEN.WARNINGS
    assert (p.dtypes == ()) == (p.n_inputs == 0), f"{name}: dtypes of its first operand"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_opset_version_is_declared_on_the_primitive(name: str) -> None:
    from amber.capture.verify import OP_SINCE

    assert OP_SINCE.get(name, 1) == REGISTRY[name].since, (
        f"{name}: verify.OP_SINCE says opset {OP_SINCE.get(name, 1)}, the primitive "
        f"{REGISTRY[name].since}; declare since= on the primitive and drop the entry")


def test_op_table_order_is_stable() -> None:
    """C op ids follow (opset, registration order): a new primitive only appends."""
    since = [p.since for p in GEN.ordered()]
    assert since == sorted(since)
    assert [p.name for p in GEN.ordered()][:3] == ["neg", "abs", "sign"]


def test_kind_column_follows_the_registry() -> None:
    """ops.def's kind column: CAST and MOVE are exactly the primitives that take every
    dtype as it is (any_dtype), UNARY and BINARY the ones with the shared elementwise
    rules (comparisons are BINARY), WHERE and CAST have row loops of their own."""
    kinds = {p.name: GEN.op_kind(p) for p in REGISTRY.values()}

    def named(*want: str) -> set[str]:
        return {n for n, k in kinds.items() if k in want}

    assert named("CAST", "MOVE") == {n for n, p in REGISTRY.items() if p.any_dtype}
    assert named("UNARY") == {n for n, p in REGISTRY.items() if p.kind == "unary"}
    assert named("BINARY") == {n for n, p in REGISTRY.items() if p.kind in ("binary", "compare")}
    assert named("WHERE") == {"where"} and named("CAST") == {"cast"}


def test_rows_with_and_without_a_kind_are_read(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A row from a branch written before the kind column (or since) still parses."""
    old = tmp_path / "ops.def"
    old.write_text('X(A, "a", 1, DT_ALL, "", infer_a, k_a)\n'
                   'X(B, "b", 1, DT_ALL, "", 5, infer_b, k_b)\n'
                   'X(C, "c", 1, DT_ALL, "", 5, MOVE, infer_c, k_c)\n', encoding="utf-8")
    monkeypatch.setattr(GEN, "OPS_DEF", old)
    assert GEN.current_rows() == {"a": ("DT_ALL", None, "infer_a", "k_a"),
                                  "b": ("DT_ALL", 5, "infer_b", "k_b"),
                                  "c": ("DT_ALL", 5, "infer_c", "k_c")}


def test_check_mode_names_the_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "ops.def"
    stale.write_text("/* old */\n", encoding="utf-8")
    monkeypatch.setattr(GEN, "OPS_DEF", stale)
    monkeypatch.setattr(GEN, "ROOT", tmp_path)
    assert GEN.main(["--check"]) == 1
    assert f"out of date: ops.def (run: {GEN.COMMAND})" in capsys.readouterr().out
    assert stale.read_text(encoding="utf-8") == "/* old */\n"  # --check writes nothing
    assert GEN.main([]) == 0
    assert stale.read_text(encoding="utf-8") == GEN.render_ops_def()


def test_a_primitive_without_its_schema_keeps_its_current_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A primitive merged from a branch that still wrote its facts into ops.def (7-column
    row) and verify.OP_SINCE is written out from those, with a note saying what to
    declare on it."""
    from amber.capture import verify
    from amber.ops import registry

    def infer(x: Any) -> Any:
        return x

    old = tmp_path / "ops.def"
    old.write_text(GEN.OPS_DEF.read_text(encoding="utf-8") + '/* opset 5 */\n'
                   'X(FUSED_THING,    "fused_thing",  1, DT_FLOATS,  "axis:int", '
                   'infer_fused, k_fused_thing)\n', encoding="utf-8")
    monkeypatch.setattr(GEN, "OPS_DEF", old)
    monkeypatch.setattr(GEN, "WARNINGS", [])
    monkeypatch.setitem(verify.OP_SINCE, "fused_thing", 5)
    monkeypatch.setattr(registry, "REGISTRY", dict(REGISTRY))
    monkeypatch.setattr(GEN, "REGISTRY", registry.REGISTRY)

    def kernel(x: Any, *, axis: int) -> Any:
        """Test only."""
        return x

    registry.REGISTRY["fused_thing"] = registry.Primitive(
        "fused_thing", kernel, infer, {"axis": "int"}, 1)
    text = GEN.render_ops_def()
    assert ('X(FUSED_THING,    "fused_thing",  1, DT_FLOATS,  "axis:int", 5, OTHER, '
            'infer_fused, k_fused_thing)\n') in text
    assert text.index("FUSED_THING") > text.index("ROUND")  # op ids keep their order
    assert any("declare dtypes=" in w for w in GEN.WARNINGS)
    assert any("declare c=(infer, kernel)" in w for w in GEN.WARNINGS)
    assert any("declare since=" in w for w in GEN.WARNINGS)
