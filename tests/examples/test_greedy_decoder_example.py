"""examples/control/greedy_decoder.py: a greedy GRU decoder with attention, written in
plain PyTorch form, returns [B, T] with T decided by the data; exported with a symbolic
batch and source length, it equals eager decoding natively on every path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import amber as am

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "control" / "greedy_decoder.py"


def _module():
    spec = importlib.util.spec_from_file_location("greedy_decoder_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_decoder_matches_eager_natively_on_every_path(tmp_path, capsys) -> None:
    native = pytest.importorskip("amber.native")
    mod = _module()
    assert mod.main(["--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "signature: forward(src: int64[b, s]) -> (output: int64[b, trips0])"
    runs = lines[1:-1]
    assert len(runs) == 6 and all(line.endswith(" ok") for line in runs)
    assert lines[-1] == "greedy_decoder: OK"
    # the stored test vectors hold outputs of several lengths; both runtimes pass them
    path = tmp_path / "greedy_decoder.amber"
    ref = am.load(path, backend="reference")
    assert ref.opset_version == 5
    lengths = {tv.outputs["output"].shape[1] for tv in ref.program.test_vectors}
    assert {1, mod.MAX_LEN} <= lengths and len(lengths) >= 3
    results = ref.verify()
    assert results and all(r.error is None and all(r.passed.values()) for r in results)
    assert native.NativeModel(path).verify() == (len(results), 0)
