"""The composed PyTorch ops (sorting, scans, scatters, norms, ...) export to ONNX with
static shapes, and ONNX Runtime's results equal amber's eager ones."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am

pytest.importorskip("onnxruntime")
from onnx_helpers import run_onnx

pytestmark = pytest.mark.onnx


def _many(x):
    s = am.sort(x, 1, descending=True)
    t = am.topk(x, 3, largest=False)
    return (s.values, s.indices, t.values, t.indices, am.argsort(x, 0), am.cumsum(x, 1),
            am.cumprod(x, 0), am.fmod(x, 0.7), am.isfinite(x / x), am.isclose(x, x + 1e-6),
            am.roll(x, (2, 1), (1, 0)), am.diag(x[0], -1), am.diag(x), am.lerp(x, -x, 0.8),
            am.index_select(x, 1, am.tensor([4, 0, -1])), am.repeat_interleave(x, 2),
            am.scatter_add(x, 1, am.tensor([[0, 0, 3]]), x[:1] * 2),
            am.scatter(x, 1, am.tensor([[4, 1], [0, 2]]), x), am.norm(x, dim=1),
            am.linalg.norm(x, ord=-1), am.gather(x, 0, am.tensor([[2, 1, 0, 0, 1, 2]])),
            am.index_add(x, 0, am.tensor([2, 2]), x[:2]), am.index_fill(x, 1, am.tensor([3]), 0),
            am.take_along_dim(x, am.tensor([[5, 0]]), 1), am.logcumsumexp(x, 1),
            am.median(x, 1), am.kthvalue(x, 3), am.searchsorted(am.tensor([-1.0, 0.0, 1.0]), x))


def test_composed_ops_export_to_onnx():
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    x[1, 2] = x[1, 4] = x[0, 0]  # ties: the sort stays stable in ONNX Runtime too
    got = run_onnx(am.export(_many, am.spec(3, 6)), [x])
    want = am.tree_flatten(_many(am.tensor(x)))[0]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=2e-6, atol=2e-6)
