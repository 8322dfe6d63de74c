"""The C runtime under AddressSanitizer + UndefinedBehaviorSanitizer (and LeakSanitizer):
the unit tests, every kernel conformance case and the loader on every corpus file must
run without a report. Any sanitizer finding aborts the process, which fails the test."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from kernel_cases import GENERATORS, check_op

from amber.ops import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.sanitize

SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=98"}


@pytest.fixture(autouse=True)
def _sanitizer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SAN_ENV.items():
        monkeypatch.setenv(k, v)


def test_unit_tests(sanitize_build: Path) -> None:
    res = subprocess.run(["ctest", "--output-on-failure"], cwd=sanitize_build,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_kernels(sanitize_build: Path, name: str) -> None:
    assert name in GENERATORS
    check_op(sanitize_build / "amber-kernel-test", name, seed=1)


def test_loader_on_corpus(sanitize_build: Path) -> None:
    files = sorted((ROOT / "tests" / "format").glob("*/*.amber"))
    assert files
    for f in files:
        for args in ([str(f)], ["--skip-hashes", str(f)]):
            res = subprocess.run([str(sanitize_build / "amber-run"), *args],
                                 capture_output=True, text=True, env={**os.environ, **SAN_ENV})
            assert res.returncode in (0, 1), f"{f.name}: exit {res.returncode}\n{res.stderr}"


@pytest.mark.parametrize("path", sorted((ROOT / "tests" / "golden").glob("v*/*.amber")),
                         ids=lambda p: p.name)
def test_programs_and_threads(sanitize_build: Path, path: Path) -> None:
    _verify_and_threads(sanitize_build, path, runs=20)


def test_hand_made_programs(sanitize_build: Path, tmp_path: Path) -> None:
    """Control flow, calls, recursion limits and refused programs under the sanitizers."""
    import numpy as np

    from helpers.program_files import control_flow_program, fn, node, p, program_file

    env = {**os.environ, **SAN_ENV}
    exe = str(sanitize_build / "amber-run")
    x = tmp_path / "x.npy"
    np.save(x, np.array([1.0, -2.0, 3.5], np.float32))
    forever = fn("loop", [p("x")], [node("call", ["x"], "y", {"callee": "loop"})], ["y"])
    bad = fn("f", [p("x")], [node("neg", ["later"], "y")], ["y"])
    cases = [
        (control_flow_program(tmp_path / "cf.amber", True), 0),
        (control_flow_program(tmp_path / "cf2.amber", False), 0),
        (program_file(tmp_path / "rec.amber", [forever]), 1),
    ]
    for path, want in cases:
        res = subprocess.run([exe, str(path), "--entry", "forward", "--input", f"x={x}",
                              "--output", str(tmp_path)], capture_output=True, text=True, env=env)
        assert res.returncode == want, f"{path.name}: exit {res.returncode}\n{res.stderr}"
    bad_sig = {"forward": {"function": "f", "inputs": [p("x")], "outputs": [p("out")],
                           "output_structure": "out"}}
    path = program_file(tmp_path / "bad.amber", [bad], signatures=bad_sig)
    res = subprocess.run([exe, str(path)], capture_output=True, text=True, env=env)
    assert res.returncode == 1 and "defined before" in res.stderr, res.stderr


def _verify_and_threads(sanitize_build: Path, path: Path, runs: int = 5) -> None:
    """A file's test vectors, then 4 concurrent sessions x ``runs`` runs, under the
    sanitizers."""
    env = {**os.environ, **SAN_ENV}
    for cmd in ([str(sanitize_build / "amber-run"), str(path), "--verify"],
                [str(sanitize_build / "amber-thread-test"), str(path), "4", str(runs)]):
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert res.returncode == 0, f"{cmd}: exit {res.returncode}\n{res.stdout}{res.stderr}"


def test_fused_attention(sanitize_build: Path, tmp_path: Path) -> None:
    """The fused attention kernel (boolean, additive and causal masks, odd sizes, one
    query row, heads read and written in place) and layer norm kernel on their test
    vectors, and under concurrent sessions."""
    import numpy as np

    import amber as am
    from amber.nn import functional as F

    def heads(x: am.Tensor) -> am.Tensor:  # read and written in place, causal
        qkv = x.reshape(2, 7, 3, 2, 2).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        return o.permute(0, 2, 1, 3).reshape(2, 7, 4)

    def fn(q: am.Tensor, k: am.Tensor, v: am.Tensor, keep: am.Tensor, add: am.Tensor) -> tuple:
        return (heads(q[:, :, :, :4].reshape(2, 7, 12)),
                F.scaled_dot_product_attention(q, k, v, attn_mask=keep),
                F.scaled_dot_product_attention(q, k, v, attn_mask=add),
                F.scaled_dot_product_attention(q, k, v, is_causal=True),
                F.scaled_dot_product_attention(q[:, :, :1], k, v),
                F.layer_norm(q, (5,), k[0, 0, 0], v[0, 0, 0]), F.layer_norm(v, (5,)))

    rng = np.random.default_rng(0)
    q, k, v = (am.tensor(rng.standard_normal((2, 3, 7, 5)).astype(np.float32)) for _ in "qkv")
    keep = am.tensor(rng.random((2, 1, 7, 7)) < 0.5)
    add = am.tensor(rng.standard_normal((7, 7)).astype(np.float32))
    am.export(fn, q, k, v, keep, add).save(tmp_path / "attn.amber")
    _verify_and_threads(sanitize_build, tmp_path / "attn.amber")


def test_gelu_epilogue(sanitize_build: Path, tmp_path: Path) -> None:
    """A Linear's product with its bias and tanh GELU applied in registers as the product
    is written (AVX-512): rows of 70 (whole vectors and a partial one), one with no step
    before the GELU, on their test vectors and under concurrent sessions."""
    import numpy as np

    import amber as am
    from amber import nn

    am.manual_seed(0)
    fc, bare = nn.Linear(9, 70), nn.Linear(9, 70, bias=False)

    def fn(x: am.Tensor) -> tuple:
        gelu = nn.functional.gelu
        return gelu(fc(x), approximate="tanh"), gelu(bare(x), approximate="tanh")

    x = am.tensor(np.random.default_rng(0).standard_normal((2, 11, 9)).astype(np.float32))
    am.export(fn, x).save(tmp_path / "gelu.amber")
    _verify_and_threads(sanitize_build, tmp_path / "gelu.amber")


def test_convolution_paths(sanitize_build: Path, tmp_path: Path) -> None:
    """Convolutions packed from padded and stride-phased images, small images side by
    side, one small image as the transposed product (weights kept per session), one
    larger image split between the session's threads and 3x3 ones computed directly (on
    AVX-512; 80 output channels: a whole block of 64 and a partial one; stride 2 on an 8x8
    output; at stride 1 by rows, 15 wide: a pair past each row's end; three 8x8 images at a
    time), on their test vectors and under concurrent sessions."""
    import numpy as np

    import amber as am

    nn, F = am.nn, am.nn.functional
    am.manual_seed(0)
    c1, c2 = nn.Conv2d(5, 16, 3, 2, 1), nn.Conv2d(16, 16, 3, 1, 1)
    c3, c4 = nn.Conv2d(16, 16, 1), nn.Conv2d(16, 80, 3, 1, 1)
    c5 = nn.Conv2d(16, 40, 3, 2, 1)

    def fn(x: am.Tensor, y: am.Tensor, z: am.Tensor) -> tuple:
        h = c3(F.relu(c2(F.relu(c1(x)))))  # 15x15 -> 8x8: batch 1 of 64 pixels
        return (h, c3(F.relu(c2(F.relu(c1(y))))),  # 13x13 -> 7x7: transposed at batch 1
                c3(F.relu(c2(F.relu(c1(z))))),  # 29x29 -> 15x15: c2 split between threads
                F.relu(c4(F.relu(c1(z)))),  # direct, its blocks split between threads
                c5(F.relu(c1(z))),  # direct at stride 2: 15x15 -> 8x8
                F.relu(c4(F.relu(c1(x)))))  # direct, the three 8x8 images in one band

    rng = np.random.default_rng(0)
    x = am.tensor(rng.standard_normal((3, 5, 15, 15)).astype(np.float32))
    y = am.tensor(rng.standard_normal((1, 5, 13, 13)).astype(np.float32))
    z = am.tensor(rng.standard_normal((1, 5, 29, 29)).astype(np.float32))
    am.export(fn, x, y, z).save(tmp_path / "conv.amber")
    _verify_and_threads(sanitize_build, tmp_path / "conv.amber")


def test_images_side_by_side(sanitize_build: Path, tmp_path: Path) -> None:
    """A batch run image by image with its images side by side, a session per thread
    (test vectors at batch 2 and 5: whole rounds, then a rest; the first run's first
    image alone), on the test vectors and under concurrent sessions."""
    import amber as am

    nn = am.nn
    am.manual_seed(0)
    mod = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                        nn.Conv2d(32, 16, 3, padding=1), nn.MaxPool2d(2)).eval()
    am.export(mod, am.spec("batch", 32, 48, 48)).save(tmp_path / "side.amber")
    _verify_and_threads(sanitize_build, tmp_path / "side.amber")


def test_max_pool_paths(sanitize_build: Path, tmp_path: Path) -> None:
    """3x3 stride-2 max pools (AVX-512): rows of more than 32 outputs a row at a time (ceil
    mode, padding, a NaN in one plane: its second pass) and narrower ones down strips, on
    their test vectors and under concurrent sessions."""
    import numpy as np

    import amber as am

    F = am.nn.functional

    def fn(x: am.Tensor, y: am.Tensor) -> tuple:
        return (F.max_pool2d(x, 3, 2, ceil_mode=True), F.max_pool2d(x, 3, 2, 1),
                F.max_pool2d(y, 3, 2, ceil_mode=True))

    rng = np.random.default_rng(0)
    xv = rng.standard_normal((2, 3, 21, 109)).astype(np.float32)
    xv[1, 2, 7, 50] = np.nan
    x = am.tensor(xv)
    y = am.tensor(rng.standard_normal((1, 4, 27, 27)).astype(np.float32))
    am.export(fn, x, y).save(tmp_path / "pool.amber")
    _verify_and_threads(sanitize_build, tmp_path / "pool.amber")


def test_fused_lstm_cell(sanitize_build: Path, tmp_path: Path) -> None:
    """The fused LSTM cell (a scan body; float64; 16 x 64 cells, split between the two
    threads amber-run gives a session on two cores) on its test vectors, and under
    concurrent sessions."""
    import numpy as np

    import amber as am
    from amber import nn

    am.manual_seed(0)
    rng = np.random.default_rng(0)
    for name, hidden, shape, dtype in (("lstm32", 64, (3, 16, 8), np.float32),
                                       ("lstm64", 5, (2, 3, 4), np.float64)):
        layer = nn.LSTM(shape[-1], hidden).eval()
        layer = layer.double() if dtype == np.float64 else layer
        x = am.tensor(rng.standard_normal(shape).astype(dtype))
        am.export(layer, x).save(tmp_path / f"{name}.amber")
    for name in ("lstm32", "lstm64"):
        _verify_and_threads(sanitize_build, tmp_path / f"{name}.amber")
