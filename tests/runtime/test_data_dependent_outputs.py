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


def _halvings(x):
    hs = [x]
    while x.sum() > 1:
        x = x / 2
        hs.append(x)
    return am.stack(hs, 1)


def _header() -> tuple[dict, dict]:
    from amber.capture.serialize import header_to_json

    header, tensors = header_to_json(am.export(_halvings, am.spec("n")), None)
    header["test_vectors"] = []
    return header, tensors


def _refused_by_both(tmp_path: Path, header: dict, tensors: dict, words: str,
                     c_words: str | None = None) -> None:
    from amber.format.container import write_container

    native = pytest.importorskip("amber.native")
    path = tmp_path / "bad.amber"
    write_container(path, header, tensors)
    with pytest.raises(am.FormatError, match=words):
        am.load(path, backend="reference")
    with pytest.raises(native.NativeError, match=c_words or words) as info:
        native.NativeModel(path)
    assert info.value.status_name == "AMBER_ERR_FORMAT"


def test_readers_refuse_a_data_dependent_result_before_opset_5(tmp_path: Path) -> None:
    header, tensors = _header()
    assert header["opset_version"] == 5
    header["opset_version"] = 4
    _refused_by_both(tmp_path, header, tensors, "needs opset version 5")


def test_readers_refuse_it_outside_an_entry_points_function(tmp_path: Path) -> None:
    header, tensors = _header()
    fwd = next(f for f in header["program"]["functions"] if f["name"] == "forward")
    # another function runs it through a call: the caller's result names trips0 too
    caller = {"name": "caller", "params": fwd["params"],
              "nodes": [{"op": "call", "inputs": [fwd["params"][0]["name"]],
                         "attrs": {"callee": "forward"},
                         "outputs": [{"name": "r", "dtype": "float32",
                                      "shape": ["n", "trips0+1"]}]}],
              "results": ["r"]}
    header["program"]["functions"].append(caller)
    # (libamber already finds the caller's trips0 unbound)
    _refused_by_both(tmp_path, header, tensors, "whose results use", "trips0")
    header, tensors = _header()
    header["signatures"]["forward"]["function"] = "other"  # no entry point names it
    other = {"name": "other", "params": fwd["params"], "nodes": [],
             "results": [fwd["params"][0]["name"]]}
    header["signatures"]["forward"]["outputs"][0]["shape"] = ["n"]
    header["program"]["functions"].append(other)
    _refused_by_both(tmp_path, header, tensors, "only an entry point's function")
