"""Every round-trip model of tests/capture, exported, saved, and run by the native
runtime at several batch sizes, equals eager execution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import native as N
from capture.test_roundtrip import BATCHES, CASES, _eager, _make_args


@pytest.mark.parametrize("name", sorted(CASES))
def test_roundtrip_native_equals_eager(lib: N.NativeLibrary, name: str, tmp_path: Path
                                       ) -> None:
    fn, arg_specs = CASES[name]
    program = am.export(fn, *arg_specs)
    path = tmp_path / f"{name}.amber"
    program.save(path)
    model = am.load(path, backend="native")
    assert model.native is not None
    n, failed = model.native.verify()
    assert n > 0 and failed == 0
    rng = np.random.default_rng(7)
    for batch in BATCHES:
        arrays = _make_args(arg_specs, batch, rng)
        want = _eager(fn, [am.tensor(a) for a in arrays])
        got = model.native.run("forward", *arrays)
        leaves, _ = am.tree_flatten(model(*arrays))
        assert len(got) == len(want) == len(leaves)
        for g, leaf, w in zip(got, leaves, want):
            assert g.dtype == w.dtype
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(leaf.numpy(), g)
