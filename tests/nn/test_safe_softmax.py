"""Attention's safe softmax in eager mode: without a fully masked row it skips its two
``where`` and its second maximum, which must change no bit of the result or the gradient;
with one, that row gives zeros and finite gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

import amber as am
from amber.nn import functional as F
from amber.nn._attention import _safe_softmax
from helpers import check_grad


def _scores(dtype: str, dead_row: bool) -> np.ndarray:
    s = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(dtype)
    s[..., np.triu(np.ones((5, 5), bool), 1)] = -np.inf  # causal: no row fully masked
    if dead_row:
        s[1, 2, 3] = -np.inf
    return s


def _value_and_grad(fn: object, s: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, ...]:
    t = am.tensor(s, requires_grad=True)
    out = fn(t)  # type: ignore[operator]
    out.backward(am.tensor(g))
    return out.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_without_a_masked_row_it_is_softmax_bit_for_bit(dtype: str) -> None:
    s = _scores(dtype, dead_row=False)
    g = np.random.default_rng(1).standard_normal(s.shape).astype(dtype)
    got = _value_and_grad(_safe_softmax, s, g)
    want = _value_and_grad(lambda t: am.softmax(t, -1), s, g)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_a_fully_masked_row_gives_zeros_and_finite_gradients() -> None:
    s = _scores("float64", dead_row=True)
    g = np.random.default_rng(1).standard_normal(s.shape)
    p, grad = _value_and_grad(_safe_softmax, s, g)
    assert not p[1, 2, 3].any() and np.isfinite(grad).all() and not grad[1, 2, 3].any()
    np.testing.assert_allclose(p[0].sum(-1), 1.0, rtol=1e-12)


def test_masked_attention_gradients_against_finite_differences() -> None:
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((2, 4, 3)) for _ in range(3))
    keep = np.tril(np.ones((4, 4), bool))

    def fn(q: am.Tensor, k: am.Tensor, v: am.Tensor) -> am.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=am.tensor(keep))

    check_grad(fn, [q, k, v])
    out = fn(*(am.tensor(a) for a in (q, k, v))).numpy()
    sc = q @ k.transpose(0, 2, 1) / math.sqrt(3) + np.where(keep, 0.0, -np.inf)
    w = np.exp(sc - sc.max(-1, keepdims=True))
    np.testing.assert_allclose(out, (w / w.sum(-1, keepdims=True)) @ v, rtol=1e-12)
