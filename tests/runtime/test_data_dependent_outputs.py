"""Entry points returning a size the data decide (opset 5) in the C runtime: the port
names a symbol no input has, each run's output descriptor holds the size it produced,
amber-run writes it, and the test vectors compare against their stored shapes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import amber as am

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "v5" / "decoder_greedy.amber"


def test_ports_name_the_trip_count_and_runs_report_their_size() -> None:
    native = pytest.importorskip("amber.native")
    m = native.NativeModel(GOLDEN)
    sig = m.signature("forward")
    assert sig.inputs[0].shape == ("b", "s") and sig.outputs[0].shape == ("b", "trips0")
    assert m.signature("halvings").outputs[0].shape == ("n", "trips0+1")
    ref = am.load(GOLDEN, backend="reference")
    for tv in ref.program.test_vectors:
        got = m.run(tv.entry, *[tv.inputs[p.name] for p in ref.signature(tv.entry).inputs])
        for p, g in zip(ref.signature(tv.entry).outputs, got):
            assert g.shape == tv.outputs[p.name].shape
            np.testing.assert_allclose(g, tv.outputs[p.name], rtol=1e-9, atol=1e-12)
    assert m.verify() == (len(ref.program.test_vectors), 0)


def test_amber_run_writes_an_output_of_data_dependent_size(runtime_build: Path,
                                                          tmp_path: Path) -> None:
    exe = str(runtime_build / "amber-run")
    res = subprocess.run([exe, str(GOLDEN)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "halvings(x: float64[n]) -> (output_0: float64[n, trips0+1]" in res.stdout
    res = subprocess.run([exe, str(GOLDEN), "--verify"], capture_output=True, text=True)
    assert res.returncode == 0 and "passed" in res.stdout, res.stdout + res.stderr
    for x, cols in ((np.array([0.25, 0.5]), 1), (np.array([7.0, -1.0]), 4)):
        np.save(tmp_path / "x.npy", x)
        out = tmp_path / f"out{cols}"
        out.mkdir()
        res = subprocess.run([exe, str(GOLDEN), "--entry", "halvings", "--input",
                              f"x={tmp_path / 'x.npy'}", "--output", str(out)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert np.load(out / "output_0.npy").shape == (2, cols)


def test_a_vector_whose_stored_length_differs_fails(tmp_path: Path) -> None:
    native = pytest.importorskip("amber.native")
    program = am.load(GOLDEN, backend="reference").program
    tv = next(t for t in program.test_vectors if t.entry == "halvings")
    tv.outputs["output_0"] = tv.outputs["output_0"][:, :-1].copy()  # one step short
    path = tmp_path / "short.amber"
    program.save(path)
    with pytest.raises(native.NativeMismatchError, match=r"is float64\(2, 1\), expected "
                                                         r"float64\(2, 0\)"):
        native.NativeModel(path).verify()
    assert not all(r.ok for r in am.load(path, backend="reference").verify())
