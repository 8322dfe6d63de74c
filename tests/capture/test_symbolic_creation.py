"""Creation functions with symbolic sizes inside capture: position ids, causal masks and
filled tensors of a symbolic length export exactly."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am


def with_sizes(x):
    b, s = x.shape[0], x.shape[1]
    pos = am.arange(s)                        # HuggingFace-style position ids
    mask = am.triu(am.ones(s, s), 1)          # a causal mask
    filled = am.zeros(b, s) + am.full((b, 1), 2.0)
    odd = am.arange(1, s + 1, 2).sum()        # start, end and step
    return x + pos + filled + mask.sum(0) + am.tensor(s) + am.eye(s).sum(1) + odd


@pytest.mark.parametrize("shape", [(2, 3), (1, 6), (3, 1)])
def test_creation_with_symbolic_sizes_exports(tmp_path, shape) -> None:
    path = str(tmp_path / "s.amber")
    am.export(with_sizes, am.spec("b", "s")).save(path)
    m = am.load(path)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    np.testing.assert_allclose(m(x).numpy(), with_sizes(am.tensor(x)).numpy(), rtol=1e-6)


def test_symbolic_sizes_as_values() -> None:
    def f(x):
        n = am.tensor(x.shape[0])
        assert n.dtype == am.int64
        return x * n.to(x.dtype)

    program = am.export(f, am.spec("n"))
    assert any(node.op == "dim_value" for fn in program.functions.values()
               for node in fn.nodes)
