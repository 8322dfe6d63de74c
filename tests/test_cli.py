"""The ``amber`` command line tool: inspect, verify, run."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import amber as am
from amber.cli import main
from amber.format.container import read_container, write_container


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    am.manual_seed(0)
    net = am.nn.Sequential(am.nn.Linear(4, 8), am.nn.ReLU(), am.nn.Linear(8, 3))
    p = am.export(net, am.spec("batch", 4))
    p.add(lambda x: net(x).argmax(1), am.spec("batch", 4), name="predict", weights=net)
    path = tmp_path_factory.mktemp("cli") / "net.amber"
    p.save(path, metadata={"dataset": "digits"})
    return path


def run(*argv):
    out = io.StringIO()
    code = main([str(a) for a in argv], out=out)
    return code, out.getvalue()


def test_inspect(model_file):
    code, text = run("inspect", model_file)
    assert code == 0
    assert "format version:  1" in text and "opset version:   1" in text  # no control flow
    assert "producer:        amber " + am.__version__ in text
    assert "dataset: digits" in text
    assert "forward(input: float32[batch, 4]) -> (output: float32[batch, 3])" in text
    assert "predict(x: float32[batch, 4]) -> (output: int64[batch])" in text
    assert "parameters:      67 in 4 tensors (268 bytes" in text
    assert "ops in forward" in text and "matmul 2" in text
    code, text = run("inspect", model_file, "--program")
    assert "func @predict" in text


def test_verify(model_file):
    code, text = run("verify", "--backend", "reference", model_file)
    assert code == 0
    # the vectors hold eager results (libamber's kernels): the NumPy reference rounds a
    # little differently, the native runtime not at all (atol: at least 1e-5, with a floor
    # of rtol x the output's largest magnitude)
    assert re.search(r"vector 0 forward \[batch=2\] output: max error \S+ "
                     r"\(rtol=0.0001, atol=\S+\) ok", text), text
    assert "4/4 test vectors passed" in text
    code, text = run("verify", "--backend", "native", model_file)
    assert code == 0
    assert re.search(r"vector 0 forward \[batch=2\] output: max error 0 \(rtol=0.0001, "
                     r"atol=\S+\) ok", text), text


def test_verify_fails_on_wrong_expected_outputs(model_file, tmp_path):
    c = read_container(model_file)
    tensors = {k: np.array(v) for k, v in c.tensors.items()}
    key = next(k for k in tensors if k.startswith("test_vectors/0/outputs/"))
    tensors[key] = tensors[key] + 1.0
    bad = tmp_path / "bad.amber"
    write_container(bad, dict(c.header), tensors)
    code, text = run("verify", bad)
    assert code == 1
    assert "max error 1 " in text and "FAIL" in text
    assert "3/4 test vectors passed" in text


def test_run(model_file, tmp_path):
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    code, text = run("run", model_file, "--entry", "predict", "--input",
                     f"x={tmp_path / 'x.npy'}", "--output", out)
    assert code == 0, text
    got = np.load(out)["output"]
    want = am.load(model_file).predict(x).numpy()
    np.testing.assert_array_equal(got, want)
    code, text = run("run", model_file, "--input", f"input={tmp_path / 'x.npy'}")
    assert code == 0 and "output: float32[5, 3]" in text


def test_errors(model_file, tmp_path, capsys):
    assert run("run", model_file, "--input", "nonsense")[0] == 2
    assert run("run", model_file, "--input", f"input={tmp_path / 'missing.npy'}")[0] == 2
    np.save(tmp_path / "x64.npy", np.zeros((2, 4)))
    assert run("run", model_file, "--input", f"input={tmp_path / 'x64.npy'}")[0] == 2
    assert "float32" in capsys.readouterr().err  # the C or the Python message
    junk = tmp_path / "junk.amber"
    junk.write_bytes(b"not an amber file")
    assert run("inspect", junk)[0] == 2
    assert "invalid file" in capsys.readouterr().err
    assert run("verify", tmp_path / "nope.amber")[0] == 2


def test_python_dash_m(model_file):
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(src), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-m", "amber", "verify", str(model_file)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "test vectors passed" in r.stdout


def test_diff_names_the_invalid_file(model_file, tmp_path, capsys):
    junk = tmp_path / "junk.amber"
    junk.write_bytes(b"not an amber file")
    assert run("diff", model_file, junk)[0] == 2
    err = capsys.readouterr().err
    assert f"invalid file {junk}:" in err and f"{model_file}:" not in err
    assert run("diff", junk, model_file)[0] == 2
    assert f"invalid file {junk}:" in capsys.readouterr().err


def test_run_output_is_the_file_it_names(model_file, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
    x = f"input={tmp_path / 'x.npy'}"
    # a name without .npz (np.savez would write model.amber.npz) is refused, writing nothing
    code, _ = run("run", model_file, "--input", x, "--output", tmp_path / "model.amber")
    assert code == 2 and ".npz" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["x.npy"]
    code, text = run("run", model_file, "--input", x, "--output", tmp_path / "y.npz")
    assert code == 0 and f"to {tmp_path / 'y.npz'}" in text
    assert np.load(tmp_path / "y.npz")["output"].shape == (2, 3)
