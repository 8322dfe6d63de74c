"""Composed, linked and fine-tuned files run in the C runtime (``amber-run``), equal to
eager composition."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber.cli import main


@pytest.fixture(scope="module")
def amber_run(runtime_build: Path) -> Path:
    return runtime_build / "amber-run"


def _native(tool: Path, path: Path, inputs: dict[str, np.ndarray], out: Path
            ) -> dict[str, np.ndarray]:
    out.mkdir()
    args = [str(tool), str(path), "--entry", "forward"]
    for k, a in inputs.items():
        np.save(out / f"in_{k}.npy", a)
        args += ["--input", f"{k}={out / f'in_{k}.npy'}"]
    res = subprocess.run(args + ["--output", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return {p.stem: np.load(p) for p in out.glob("*.npy") if not p.stem.startswith("in_")}


def test_composed_and_linked_files_run_natively(parts, amber_run, tmp_path):
    backbone, head = am.load(parts.backbone_path), am.load(parts.head_path)
    composed = tmp_path / "composed.amber"
    am.export(lambda x: head(backbone(x)) + head(backbone(x * 0.5)),
              am.spec("batch", 3, 4, 4)).save(composed)
    linked = tmp_path / "linked.amber"
    assert main(["link", parts.backbone_path, parts.head_path, "--connect",
                 "backbone.forward.out0 -> head.forward.in0", "-o", str(linked)],
                out=io.StringIO()) == 0
    x = np.random.default_rng(0).standard_normal((4, 3, 4, 4)).astype(np.float32)
    eager = [parts.head(parts.backbone(am.tensor(x))).detach().numpy(),
             parts.head(parts.backbone(am.tensor(x * 0.5))).detach().numpy()]
    for path, want, name in ((composed, eager[0] + eager[1], "c"), (linked, eager[0], "l")):
        res = subprocess.run([str(amber_run), str(path), "--verify"], capture_output=True,
                             text=True)
        assert res.returncode == 0, res.stdout + res.stderr
        got = _native(amber_run, path, {"x" if name == "c" else "input": x},
                      tmp_path / name)["output"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_fine_tuned_file_runs_natively(parts, amber_run, tmp_path):
    module = am.load(parts.head_path).as_module()
    with am.no_grad():
        module.get_parameter("0.weight").mul_(-1.5)
    path = tmp_path / "tuned.amber"
    module.save(path)
    res = subprocess.run([str(amber_run), str(path), "--verify"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    h = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    with am.no_grad():
        want = module(am.tensor(h)).numpy()
    got = _native(amber_run, path, {"input": h}, tmp_path / "out")["output"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
