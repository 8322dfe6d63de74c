"""``plain_sums`` (``AMBER_OPEN_PLAIN_SUMS``): float32 3x3 stride-1 convolutions without
Winograd's F(2,3) rows, every sum within the plain sum bound of docs/opset.md (section 5),
on an image where the two forms differ: each kernel row reads only its first column and
the columns next to it are a million times larger."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import nn
from amber.native import NativeModel
from amber.ops import REGISTRY

C, O, H, W = 12, 32, 4, 16
U = 2.0**-24


def _avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    w = np.zeros((O, C, 3, 3), np.float32)
    w[..., 0] = rng.standard_normal((O, C, 3)).astype(np.float32)
    conv = nn.Conv2d(C, O, 3, padding=1, bias=False)
    conv.load_state_dict({"weight": am.tensor(w)})
    path = tmp_path_factory.mktemp("plain") / "conv.amber"
    am.export(conv.eval(), am.spec(1, C, H, W)).save(str(path))
    x = (rng.standard_normal((1, C, H, W)) * 1e3).astype(np.float32)
    x[..., 1::2] = (rng.standard_normal(x[..., 1::2].shape) * 1e-3).astype(np.float32)
    return path, x, w


def _error_over_plain_bound(got: np.ndarray, x: np.ndarray, w: np.ndarray) -> float:
    """The largest |got - sum| / (2 n u sum |t|) (1 or less: within the plain bound)."""
    kw = {"stride": (1, 1), "padding": (1, 1, 1, 1), "dilation": (1, 1), "groups": 1}
    conv = REGISTRY["conv2d"].impl
    ref = np.asarray(conv(x.astype(np.float64), w.astype(np.float64), **kw))
    mag = np.asarray(conv(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), **kw))
    bound = 2 * 2 * (C * 9) * U * mag  # twice: the float64 reference is inexact too
    return float(np.max(np.abs(got.astype(np.float64) - ref) / np.maximum(bound, 1e-300)))


def test_plain_sums_keeps_the_plain_bound(case) -> None:
    path, x, w = case
    for threads in (1, 2):
        got = NativeModel(path, plain_sums=True, threads=threads).run("forward", x)[0]
        assert _error_over_plain_bound(got, x, w) <= 1
    model = am.load(path, backend="native", plain_sums=True)
    assert _error_over_plain_bound(np.asarray(model(x).numpy()), x, w) <= 1


@pytest.mark.skipif(not _avx2(), reason="the F(2,3) rows run on AVX2 and AVX-512 only")
def test_by_default_the_rows_form_runs(case) -> None:
    """Its error scales with the neighbouring columns (the row-product form): beyond the
    plain bound here, so the option above is what keeps it."""
    path, x, w = case
    got = NativeModel(path).run("forward", x)[0]
    assert _error_over_plain_bound(got, x, w) > 1
