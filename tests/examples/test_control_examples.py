"""examples/control: the LSTM over variable-length sequences (while_loop), the recursive
TreeRNN (graph-function recursion and cond) and Newton's method (a data-dependent
stopping rule, differentiated) train or run eagerly, export, and give the same results
eagerly, in the reference interpreter and in the native C runtime; each script exits
non-zero on a mismatch."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import amber as am

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "control"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"control_example_{name}",
                                                  EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


lstm = _load("lstm_while")
tree = _load("tree_rnn")
newton = _load("newton")
support = sys.modules["example_support"]  # the helpers the scripts import


@pytest.fixture(scope="module", autouse=True)
def native_runtime() -> None:
    """The examples run their files natively: build libamber once if not installed."""
    try:
        support.ensure_native_library()
    except am.AmberError as e:
        pytest.skip(f"the native runtime is unavailable: {e}")


# ----------------------------------------------------------------------------- lstm


def test_lstm_trains_exports_and_matches_natively(tmp_path: Path, capsys) -> None:
    assert lstm.main(["--steps", "25", "--hidden", "8", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("lstm_while: OK")
    path = tmp_path / "lstm_while.amber"
    model = am.load(path, backend="reference")
    assert set(model.entry_points) == {"forward", "train_step"}
    assert all(r.ok for r in model.verify())
    ops = {n.op for f in model.program.functions.values() for n in f.nodes}
    assert "while" in ops
    # the sequence length and batch stay symbolic
    xs = model.signature("forward").inputs[0]
    assert [str(d) for d in xs.shape] == ["t", "b", "3"]


def test_lstm_trip_count_follows_the_lengths_tensor(tmp_path: Path) -> None:
    am.manual_seed(1)
    model = lstm.LSTMRegressor(lstm.INPUT, 6)
    path = tmp_path / "m.amber"
    lstm.export(model, path)
    nat = lstm.open_native(path)
    rng = np.random.default_rng(5)
    xs, lengths, _ = lstm.make_batch(rng, 9, 4)
    # a sequence of length L gives the same answer as running only its first L steps
    full = nat.run("forward", xs, lengths)[0]
    for b in range(4):
        n = int(lengths[b])
        alone = nat.run("forward", np.ascontiguousarray(xs[:n, b:b + 1]), lengths[b:b + 1])[0]
        np.testing.assert_allclose(alone, full[b:b + 1], rtol=1e-5, atol=1e-6)
    eager = model(am.tensor(xs), am.tensor(lengths)).detach().numpy()
    np.testing.assert_allclose(full, eager, rtol=1e-5, atol=1e-6)
    res = lstm.check(model, path, seed=3)
    assert res["forward_native"] < 1e-5 and res["train_step"] < 1e-4


# ----------------------------------------------------------------------------- tree


def test_tree_rnn_trains_exports_and_matches_natively(tmp_path: Path, capsys) -> None:
    assert tree.main(["--steps", "20", "--dim", "6", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith("tree_rnn: OK")
    model = am.load(tmp_path / "tree_rnn.amber", backend="reference")
    assert tree.recursion_is_a_call(model.program)
    results = model.verify()
    assert all(r.ok for r in results)
    # the export was proven on real trees (internal nodes) only: every stored vector,
    # of both entry points, is one, at two forest sizes
    vectors = model.program.test_vectors
    assert {tv.entry for tv in vectors} == {"forward", "train_step"} and len(vectors) == 4
    assert all((tv.inputs["left"] >= 0).any() for tv in vectors)
    assert len({tv.dims["r"] for tv in vectors}) == 2


def test_tree_forest_encoding() -> None:
    forest = tree.make_forest(np.random.default_rng(0), 5)
    assert len(forest.roots) == 5 and forest.labels.shape == (5,)
    n = len(forest.left)
    leaves = forest.left < 0
    assert np.array_equal(leaves, forest.right < 0)
    assert (forest.left[~leaves] < np.arange(n)[~leaves]).all()  # children come first
    # each label is the sign of the polarity sum over the tree's leaves
    for root, label in zip(forest.roots, forest.labels):
        stack, total = [int(root)], 0
        while stack:
            i = stack.pop()
            if forest.left[i] < 0:
                total += int(tree.POLARITY[forest.word[i]])
            else:
                stack += [int(forest.left[i]), int(forest.right[i])]
        assert total != 0 and label == (1.0 if total > 0 else 0.0)


# ----------------------------------------------------------------------------- newton


def test_newton_solution_and_gradients(tmp_path: Path, capsys) -> None:
    assert newton.main(["--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().endswith("newton: OK")
    model = am.load(tmp_path / "newton.amber", backend="reference")
    assert all(r.ok for r in model.verify())


def test_newton_iterations_depend_on_the_data_and_gradients_match_theory() -> None:
    a = np.array([1.0, 2.0, 0.5])
    _, k_easy = newton.solve(am.tensor(a), am.tensor(np.array([1e-3, 0.0, 0.0])))
    x, k_hard = newton.solve(am.tensor(a), am.tensor(np.array([30.0, -10.0, 4.0])))
    assert 0 < int(k_easy.item()) < int(k_hard.item())
    ga, gb = newton.solution_grads(am.tensor(a), am.tensor(np.array([30.0, -10.0, 4.0])))
    want_a, want_b = newton.implicit_grads(x.numpy(), a)
    np.testing.assert_allclose(ga.numpy(), want_a, rtol=1e-10)
    np.testing.assert_allclose(gb.numpy(), want_b, rtol=1e-10)
    # no iteration at all (b = 0 is solved by the start x = 0): still the exact derivative
    x0, k0 = newton.solve(am.tensor(a), am.tensor(np.zeros(3)))
    assert int(k0.item()) == 0 and not x0.numpy().any()
    _, gb0 = newton.solution_grads(am.tensor(a), am.tensor(np.zeros(3)))
    np.testing.assert_allclose(gb0.numpy(), 1.0 / a, rtol=1e-12)


def test_newton_script_exit_status() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(EXAMPLES / "newton.py")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # an impossible tolerance cannot be met within the iteration limit: exit status 1
    proc = subprocess.run([sys.executable, str(EXAMPLES / "newton.py"), "--tol", "0"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "FAILED" in proc.stdout


# ----------------------------------------------------------------------------- helpers


def test_assert_close_names_the_mismatch() -> None:
    one = [np.ones(3, np.float32)]
    assert support.assert_close("x", one, one, 0.0, 0.0) == 0.0
    with pytest.raises(support.MismatchError, match=r"x: output 0 differs by up to 0\.5"):
        support.assert_close("x", [one[0] + 0.5], one, 1e-6, 1e-6)
    with pytest.raises(support.MismatchError, match="is float64"):
        support.assert_close("x", [np.ones(3)], one, 1e-6, 1e-6)
    with pytest.raises(support.MismatchError, match="2 outputs"):
        support.assert_close("x", one * 2, one, 1e-6, 1e-6)
