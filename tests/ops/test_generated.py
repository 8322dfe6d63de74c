"""The files derived from the primitives' schema (``amber.ops.REGISTRY``) are current:
``runtime/src/ops.def``, the primitive counts in ``runtime/include/amber.h`` and the
summary table of ``docs/opset.md``. Regenerate them with ``python scripts/gen_ops.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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
    assert (p.dtypes == ()) == (p.n_inputs == 0), f"{name}: dtypes of its first operand"


def test_op_table_order_is_stable() -> None:
    """C op ids follow (opset, registration order): a new primitive only appends."""
    since = [p.since for p in GEN.ordered()]
    assert since == sorted(since)
    assert [p.name for p in GEN.ordered()][:3] == ["neg", "abs", "sign"]


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
