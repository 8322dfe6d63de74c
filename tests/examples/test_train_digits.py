"""examples/train_digits.py: data loading, evaluation, weight export, and (slow) the
full run reaching at least 95% held-out accuracy."""

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
SCRIPT = ROOT / "examples" / "train_digits.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("train_digits_example", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


digits = _load_example()


def test_data_split_is_fixed_and_disjoint():
    x_tr, y_tr, x_te, y_te = digits.load_data(seed=0)
    assert x_tr.shape[1:] == (1, 8, 8) and x_tr.dtype == np.float32
    assert len(y_tr) + len(y_te) == 1797 and abs(len(y_te) - 359) <= 1
    assert 0.0 <= x_tr.min() and x_tr.max() <= 1.0
    assert set(np.unique(y_te)) == set(range(10))
    again = digits.load_data(seed=0)
    np.testing.assert_array_equal(again[3], y_te)
    flat_tr = {a.tobytes() for a in x_tr}
    assert sum(a.tobytes() in flat_tr for a in x_te) < 20  # a few exact duplicate images


def test_model_evaluate_and_save(tmp_path):
    model = digits.build_model(0)
    x_tr, y_tr, x_te, y_te = digits.load_data()
    assert model(am.from_numpy(x_te[:5])).shape == (5, 10)
    acc = digits.evaluate(model, x_te, y_te)
    assert 0.0 <= acc <= 1.0 and model.training
    out = tmp_path / "sub" / "digits.amber"
    digits.export_model(model, str(out), metadata={"test_accuracy": acc})
    loaded = am.load(out)
    logits = model(am.from_numpy(x_te[:7])).detach().numpy()
    np.testing.assert_allclose(loaded(x_te[:7]).numpy(), logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(loaded.predict(x_te[:3]).numpy(), logits[:3].argmax(1))
    results = loaded.verify()
    assert results and all(r.ok for r in results)


def test_two_epochs_learn_something():
    x_tr, y_tr, x_te, y_te = digits.load_data()
    model = digits.train(digits.build_model(0), x_tr, y_tr, epochs=2)
    assert digits.evaluate(model, x_te, y_te) > 0.5


@pytest.mark.slow
def test_full_run_reaches_95_percent(tmp_path):
    out = tmp_path / "digits.amber"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("test accuracy: ")
    assert float(last.split(": ")[1]) >= 0.95
    assert "epoch 12/12" in proc.stderr
    verify = subprocess.run([sys.executable, "-m", "amber", "verify", str(out)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
