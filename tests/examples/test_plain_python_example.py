"""examples/control/plain_python.py: the four models export with symbolic sizes, run
natively and equal eager execution on every path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "control" / "plain_python.py"


def test_every_model_matches_eager_natively(tmp_path, capsys) -> None:
    pytest.importorskip("amber.native")
    spec = importlib.util.spec_from_file_location("plain_python_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 12 and all(line.endswith(" ok") for line in lines)
