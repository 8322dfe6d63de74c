"""amber-run's command line (docs/c-api.md, "amber-run"): options in any order, usage
errors exit 64, and .npy files written through a temporary file, never over the model
or an input."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MLP = ROOT / "tests" / "golden" / "v1" / "mlp.amber"  # forward(input: float32[batch, 16])


@pytest.fixture(scope="module")
def exe(runtime_build: Path) -> str:
    return str(runtime_build / "amber-run")


def _run(exe: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_options_in_any_order(exe: str, tmp_path: Path) -> None:
    for args in ([MLP, "--verify"], ["--verify", MLP], ["--skip-hashes", "--verify", MLP],
                 ["--verify", MLP, "--skip-hashes"], ["--verify", "--", MLP]):
        res = _run(exe, *args)
        assert res.returncode == 0 and "4 test vectors passed" in res.stdout, (args, res.stderr)
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 16), np.float32))
    res = _run(exe, "--output", tmp_path, "--input", f"input={x}", "--entry", "forward", MLP)
    assert res.returncode == 0, res.stderr
    assert np.load(tmp_path / "output.npy").shape == (2, 10)
    res = _run(exe, "--tensor", "weights/0.bias", tmp_path / "b.npy", MLP)
    assert res.returncode == 0 and np.load(tmp_path / "b.npy").shape == (32,)


@pytest.mark.parametrize("args", [
    ["--bogus"], [MLP, "--bogus"], [], [MLP, MLP], [MLP, "--entry"],
    [MLP, "--tensor", "x"], [MLP, "--verify", "--tensor", "a", "b.npy"],
    [MLP, "--entry", "forward"], [MLP, "--verify", "--output", "d"],
], ids=["bogus", "bogus-after-file", "nothing", "two-files", "no-entry-value",
        "tensor-one-value", "two-modes", "entry-without-output", "verify-and-output"])
def test_usage_errors_exit_64(exe: str, args: list) -> None:
    res = _run(exe, *args)
    assert res.returncode == 64, res.stderr
    assert "usage: " in res.stderr and res.stderr.startswith("amber-run: ")


def test_never_writes_over_the_model(exe: str, tmp_path: Path) -> None:
    model = tmp_path / "m.amber"
    model.write_bytes(MLP.read_bytes())
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    for target in (model, tmp_path / "." / "m.amber"):
        res = _run(exe, model, "--tensor", "weights/0.bias", target)
        assert res.returncode == 1 and "refusing to write over" in res.stderr, res.stderr
        assert hashlib.sha256(model.read_bytes()).hexdigest() == digest
    assert _run(exe, "--verify", model).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.amber"]  # no temporaries left


def test_never_writes_over_an_input(exe: str, tmp_path: Path) -> None:
    x = tmp_path / "output.npy"  # the name the run's output would take
    np.save(x, np.ones((2, 16), np.float32))
    before = x.read_bytes()
    res = _run(exe, MLP, "--entry", "forward", "--input", f"input={x}", "--output", tmp_path)
    assert res.returncode == 1 and "refusing to write over" in res.stderr
    assert x.read_bytes() == before


def test_npy_replaces_a_file_atomically(exe: str, tmp_path: Path) -> None:
    out = tmp_path / "b.npy"
    out.write_bytes(b"old contents")
    held = out.open("rb")  # a reader of the old file keeps its contents
    res = _run(exe, MLP, "--tensor", "weights/0.bias", out)
    assert res.returncode == 0, res.stderr
    assert held.read() == b"old contents"
    held.close()
    assert np.load(out).shape == (32,)
    assert out.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.npy"]
