"""amber.native exposes amber_session_get_stats and AMBER_OPEN_NO_FUSION: plans are
counted per session, fused groups per model, and fusion does not change results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import amber as am
import amber.nn as nn
from amber import native as N


def test_stats_and_fusion_switch(lib: N.NativeLibrary, tmp_path: Path) -> None:
    path = tmp_path / "mlp.amber"
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    am.export(model, am.spec("batch", 8)).save(str(path))
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    fused, plain = N.NativeModel(path), N.NativeModel(path, fuse=False)
    a, b = fused.run("forward", x), plain.run("forward", x)
    assert a[0].tobytes() == b[0].tobytes()
    fused.run("forward", x)
    st = fused.stats()
    assert (st.runs, st.plans, st.plan_reuses) == (2, 1, 1)
    assert st.fused_groups == 1 and st.fused_nodes == 3  # bias add, le, where
    assert 0 < st.plan_bytes < st.plan_value_bytes and st.plan_bytes <= st.block_bytes
    assert plain.stats().fused_groups == 0
    fused.close()
    plain.close()
