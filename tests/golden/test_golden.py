"""Every golden .amber file ever committed loads and computes its recorded outputs.

Golden files are written once by ``make_golden.py`` and never rewritten; this test
keeps the compatibility promise of docs/format.md: every later amber reads them."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

import amber as am

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = sorted(glob.glob(os.path.join(HERE, "v*", "*.amber")))


def test_golden_files_exist():
    names = {os.path.relpath(f, HERE) for f in FILES}
    assert {"v1/mlp.amber", "v1/cnn.amber", "v1/symbolic.amber"} <= names


@pytest.mark.parametrize("path", FILES, ids=[os.path.relpath(f, HERE) for f in FILES])
def test_golden_file(path):
    model = am.load(path)
    results = model.verify()
    assert results and all(r.ok for r in results), results
    expected = np.load(path[: -len(".amber")] + ".npz")
    inputs = {k[3:]: expected[k] for k in expected.files if k.startswith("in.")}
    outputs = {k[4:]: expected[k] for k in expected.files if k.startswith("out.")}
    got = model.program.run("forward", **inputs)
    sig = model.signature("forward")
    assert set(outputs) == {p.name for p in sig.outputs}
    for port, g in zip(sig.outputs, got):
        want = outputs[port.name]
        rtol, atol = am.capture.TOLERANCE[port.dtype.name]
        assert g.dtype == want.dtype
        np.testing.assert_allclose(g, want, rtol=rtol, atol=atol)


def test_generator_refuses_to_overwrite(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden",
                                                  os.path.join(HERE, "make_golden.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    (tmp_path / "mlp.amber").write_bytes(b"existing")
    with pytest.raises(FileExistsError):
        mod.write("mlp", str(tmp_path))
    assert (tmp_path / "mlp.amber").read_bytes() == b"existing"
    for path in FILES:
        with pytest.raises(FileExistsError):
            mod.write(os.path.basename(path)[: -len(".amber")], os.path.dirname(path))
