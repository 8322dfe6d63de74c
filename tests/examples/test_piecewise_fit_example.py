"""examples/control/piecewise_fit.py: a recursion by halving whose depth depends on the
data is exported as one recursive function and gives the same pieces, totals and
gradients eagerly, in the reference interpreter and in the native C runtime; the script
exits non-zero on a mismatch."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import amber as am

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "control" / "piecewise_fit.py"


def _load():
    spec = importlib.util.spec_from_file_location("control_example_piecewise_fit", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


pf = _load()


@pytest.fixture(scope="module", autouse=True)
def native_runtime() -> None:
    try:
        sys.modules["example_support"].ensure_native_library()
    except am.AmberError as e:
        pytest.skip(f"the native runtime is unavailable: {e}")


def test_exports_one_recursive_function_and_matches_natively(tmp_path: Path, capsys) -> None:
    assert pf.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("piecewise_fit: OK")
    model = am.load(tmp_path / "piecewise_fit.amber")
    assert model.backend == "native"
    assert pf.recursion_is_one_function(model.program)
    assert [str(d) for d in model.signature("forward").inputs[0].shape] == ["n"]
    assert all(r.ok for r in model.verify())  # random vectors and the example signals
    assert len(model.program.test_vectors) >= 6


def test_the_depth_follows_the_data() -> None:
    sig = pf.signals(0, 64)
    tol = np.float64(pf.TOL)
    depths = {}
    for name, (t, y) in sig.items():
        total, pieces = pf.fit(am.tensor(t), am.tensor(y), am.tensor(tol))
        want_total, want_pieces, depth = pf.fit_reference(t, y, pf.TOL)
        assert int(pieces.item()) == want_pieces
        assert total.item() == pytest.approx(want_total, rel=1e-12)
        depths[name] = depth
    assert depths["straight"] == 1 < depths["smooth"] <= depths["bumpy"]
    # one and two samples always fit: the recursion never reaches an empty slice
    for n in (1, 2):
        t, y = np.arange(float(n)), np.array([3.0, -7.0][:n])
        assert pf.fit(am.tensor(t), am.tensor(y), am.tensor(np.float64(0)))[1].item() == 1


def test_script_exit_status() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # tol = 0: finite differences cross the stopping rule's decisions, so the gradient
    # check fails, and the script says so with status 1
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tol", "0"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "FAILED" in proc.stdout
