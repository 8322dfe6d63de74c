"""One model, one answer for out-of-range indices: every case runs eagerly, in the
reference interpreter and in libamber, and all three give the same values or all three
raise OutOfRangeError. Primitives keep NumPy's wrapping of negative indices in [-n, 0)
(explicit indexing ``x[-1]`` too); the layers refuse what PyTorch refuses (an embedding
id or class index of -1)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import amber as am
from amber.ops import shape as S
from amber.ops.registry import REGISTRY

F = am.nn.functional
I64 = am.int64
W = np.arange(15, dtype=np.float32).reshape(5, 3)


def _emb(i):
    am.manual_seed(0)
    return am.nn.Embedding(5, 3)(i)


# name -> (function of (x, idx), specs, x, [(idx, ok)]); ok: whether the call is valid
CASES: dict[str, tuple[Callable[..., Any], tuple, np.ndarray, list[tuple[list[int], bool]]]] = {
    "take": (lambda x, i: S.take(x, i, axis=0), (am.spec(5, 3), am.spec("k", dtype=I64)), W,
             [([0, 4], True), ([-1, -5], True), ([5], False), ([-6], False)]),
    "scatter_add": (lambda x, i: S.scatter_add(am.zeros(5, 3), i, x, axis=0),
                    (am.spec("k", 3), am.spec("k", dtype=I64)), W,
                    [([0, 0, 4, 1, 1], True), ([-1, 0, 0, 0, 0], True),
                     ([5, 0, 0, 0, 0], False), ([-6, 0, 0, 0, 0], False)]),
    "index": (lambda x, i: x[i], (am.spec(5, 3), am.spec("k", dtype=I64)), W,
              [([1, -1], True), ([5], False), ([-6], False)]),
    "embedding": (lambda x, i: _emb(i) + x.sum(), (am.spec(1), am.spec("k", dtype=I64)),
                  np.zeros(1, np.float32), [([0, 4], True), ([-1], False), ([5], False)]),
    "embedding_fn": (lambda x, i: F.embedding(i, x), (am.spec("v", 3), am.spec("k", dtype=I64)),
                     W, [([4], True), ([-1], False), ([5], False)]),
    "one_hot": (lambda x, i: F.one_hot(i, 5) * x.sum(), (am.spec(1), am.spec("k", dtype=I64)),
                np.ones(1, np.float32), [([0, 4], True), ([-1], False), ([5], False)]),
    "cross_entropy": (lambda x, i: F.cross_entropy(x, i),
                      (am.spec("k", 3), am.spec("k", dtype=I64)), W,
                      [([0, 2, 1, 0, 2], True), ([-100, 0, 1, 2, 0], True),
                       ([-1, 0, 1, 2, 0], False), ([3, 0, 1, 2, 0], False)]),
}


def test_every_index_primitive_has_cases() -> None:
    takes_index = {name for name, p in REGISTRY.items()
                   if "idx" in inspect.signature(p.impl).parameters}
    assert takes_index == {"take", "scatter_add"}
    assert takes_index <= set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_eager_reference_and_native_agree(name, tmp_path) -> None:
    fn, specs, x, cases = CASES[name]
    path = tmp_path / f"{name}.amber"
    am.export(fn, *specs, check=False).save(path)
    runners = {"eager": lambda x, i: fn(am.tensor(x), am.tensor(i)).detach().numpy(),
               "reference": am.load(path, backend="reference"),
               "native": am.load(path, backend="native")}
    for idx, ok in cases:
        i = np.array(idx, np.int64)
        got = {}
        for who, run in runners.items():
            if ok:
                got[who] = np.asarray(run(x, i) if who == "eager" else run(x, i).numpy())
            else:
                with pytest.raises(am.OutOfRangeError):
                    run(x, i)
        if ok:  # exact but for float sums (a softmax's), which may round differently
            np.testing.assert_allclose(got["reference"], got["eager"], rtol=1e-6)
            np.testing.assert_allclose(got["native"], got["eager"], rtol=1e-6)
