"""Fused layer norm: the native runtime recognises ``F.layer_norm`` over the last axis
(with or without its scale and shift) and runs it as one kernel per row, with the bits of
the nodes it replaces (AMBER_OPEN_NO_FUSION), of eager execution and of every thread
count, close to a NumPy reference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am
from amber import native as N
from amber.nn import functional as F


def reference(x: np.ndarray, w: np.ndarray | None, b: np.ndarray | None,
              eps: float) -> np.ndarray:
    x = x.astype(np.float64)
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


def _check(fn: Callable[..., Any], args: list[np.ndarray], want: np.ndarray, fused: int,
           tmp_path: Path) -> None:
    specs = [am.spec(*a.shape, dtype=a.dtype.name) for a in args]
    am.export(fn, *specs).save(tmp_path / "m.amber")
    model = N.NativeModel(tmp_path / "m.amber")
    got = model.run("forward", *args)[0]
    assert model.stats().fused_layer_norms == fused
    plain = N.NativeModel(tmp_path / "m.amber", fuse=False).run("forward", *args)[0]
    np.testing.assert_array_equal(got, plain)
    np.testing.assert_array_equal(got, fn(*(am.tensor(a) for a in args)).numpy())
    for threads in (2, 8):
        again = N.NativeModel(tmp_path / "m.amber", threads=threads).run("forward", *args)[0]
        np.testing.assert_array_equal(got, again)
    tol = 1e-4 if got.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("h", [1, 7, 15, 16, 33])
@pytest.mark.parametrize("affine", ["none", "weight", "both"])
def test_layer_norm(dtype: Any, h: int, affine: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(h)
    x = (rng.standard_normal((3, 70, h)) * 3 + 1).astype(dtype)
    w = rng.standard_normal(h).astype(dtype)
    b = rng.standard_normal(h).astype(dtype)
    if affine == "none":
        _check(lambda x: F.layer_norm(x, (h,), eps=1e-5), [x],
               reference(x, None, None, 1e-5), 1, tmp_path)
    elif affine == "weight":
        _check(lambda x, w: F.layer_norm(x, (h,), w, eps=1e-6), [x, w],
               reference(x, w, None, 1e-6), 1, tmp_path)
    else:
        _check(lambda x, w, b: F.layer_norm(x, (h,), w, b, eps=1e-12), [x, w, b],
               reference(x, w, b, 1e-12), 1, tmp_path)


def test_not_fused_when_an_intermediate_is_used_elsewhere(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((4, 9)).astype(np.float32)

    def fn(x: Any) -> Any:
        centred = x - x.mean(-1, keepdim=True)
        y = centred / am.sqrt((centred * centred).mean(-1, keepdim=True) + 1e-5)
        return y + centred

    _check(fn, [x], fn(am.tensor(x)).numpy(), 0, tmp_path)


def test_two_norms_over_one_input(tmp_path: Path) -> None:
    """Normalised over several trailing dims is not this kernel's; over the last it is."""
    x = np.random.default_rng(1).standard_normal((2, 5, 6)).astype(np.float32)

    def fn(x: Any) -> Any:
        return F.layer_norm(x, (5, 6)) + F.layer_norm(x, (6,))

    want = reference(x.reshape(2, 30), None, None, 1e-5).reshape(2, 5, 6) + \
        reference(x, None, None, 1e-5)
    _check(fn, [x], want, 1, tmp_path)
