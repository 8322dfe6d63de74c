"""amber.native exposes amber_session_get_stats and AMBER_OPEN_NO_FUSION: plans are
counted per session, fused groups per model, and fusion does not change results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import amber as am
import amber.nn as nn
from amber import native as N


def test_stats_and_fusion_switch(lib: N.NativeLibrary, tmp_path: Path) -> None:
    path = tmp_path / "mlp.amber"
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    am.export(model, am.spec("batch", 8)).save(str(path))
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    fused, plain = N.NativeModel(path), N.NativeModel(path, fuse=False)
    a, b = fused.run("forward", x), plain.run("forward", x)
    assert a[0].tobytes() == b[0].tobytes()
    fused.run("forward", x)
    st = fused.stats()
    assert (st.runs, st.plans, st.plan_reuses) == (2, 1, 1)
    # per hidden layer: matmul, bias add, le, where; then matmul and bias add
    assert st.fused_groups == 4 and st.fused_nodes == 3 * 4 + 2
    assert 0 < st.plan_bytes < st.plan_value_bytes and st.plan_bytes <= st.block_bytes
    assert plain.stats().fused_groups == 0
    fused.close()
    plain.close()


class _LoopOverWeight(am.nn.Module):
    """h <- tanh(h @ w), five times: the loop body reads the module's weight as it is."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(am.randn(32, 32) * 0.2)

    def forward(self, x: am.Tensor) -> am.Tensor:
        return am.fori_loop(0, 5, lambda i, h: am.tanh(h @ self.w), x)


class _LoopOverTransposedWeight(_LoopOverWeight):
    """h <- tanh(h @ w.T): the transpose is computed once, outside the loop, and reaches
    the body as a loop-invariant argument."""

    def forward(self, x: am.Tensor) -> am.Tensor:
        wt = self.w.T
        return am.fori_loop(0, 5, lambda i, h: am.tanh(h @ wt), x)


@pytest.mark.parametrize("module, kept_at_least", [
    (_LoopOverWeight, 32 * 32 * 4),                # the packed weight
    (_LoopOverTransposedWeight, 2 * 32 * 32 * 4),  # the cached transpose, packed
])
def test_a_fixed_operand_inside_a_loop_is_packed_once(lib: N.NativeLibrary, tmp_path: Path,
                                                      module: type, kept_at_least: int) -> None:
    """A loop body's matmul operand that is a weight or a value the session computed
    from weights, passed unchanged to every iteration: the session keeps one packed copy,
    as for an operand the entry function reads itself, and results equal the reference
    interpreter's. (A weight the body transposes itself is a new value every iteration,
    packed for each product.)"""
    path = tmp_path / "loop.amber"
    am.export(module().eval(), am.spec("batch", 32)).save(str(path))
    x = np.random.default_rng(1).standard_normal((4, 32)).astype(np.float32)
    native = N.NativeModel(path)
    got = native.run("forward", x)[0]
    want = am.load(path, backend="reference").run("forward", x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    kept = native.stats().cached_bytes
    assert kept >= kept_at_least
    native.run("forward", x)
    assert native.stats().cached_bytes == kept  # packed once, not per run or iteration
    native.close()
