"""NumPy reference implementations and a finite-difference gradient checker for the
amber.nn tests."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

import amber as am


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def randn(*shape: int, seed: int = 0, dtype=np.float64) -> np.ndarray:
    return rng(seed).standard_normal(shape).astype(dtype)


def num_grads(f: Callable[..., am.Tensor], arrays: Sequence[np.ndarray], cot: np.ndarray,
              eps: float = 1e-6) -> list[np.ndarray]:
    """Central differences of sum(f(*arrays) * cot) with respect to each array (float64)."""
    out = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        flat = g.reshape(-1)
        for j in range(a.size):
            vals = []
            for sgn in (1.0, -1.0):
                pert = [x.copy() for x in arrays]
                pert[i].reshape(-1)[j] += sgn * eps
                y = f(*[am.tensor(p) for p in pert]).detach().numpy()
                vals.append(float(np.sum(y * cot)))
            flat[j] = (vals[0] - vals[1]) / (2 * eps)
        out.append(g)
    return out


def check_grads(f: Callable[..., am.Tensor], *arrays: np.ndarray, seed: int = 1,
                tol: float = 1e-6) -> None:
    """amber's gradients of sum(f * cot) match central finite differences (float64)."""
    arrays = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    ts = [am.tensor(a, requires_grad=True) for a in arrays]
    y = f(*ts)
    cot = randn(*y.shape, seed=seed)
    (y * am.tensor(cot)).sum().backward()
    expected = num_grads(f, arrays, cot)
    for t, e in zip(ts, expected):
        got = np.zeros_like(e) if t.grad is None else t.grad.numpy()
        np.testing.assert_allclose(got, e, rtol=tol, atol=tol)


def conv2d_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=(1, 1),
               padding=(0, 0, 0, 0), dilation=(1, 1), groups: int = 1) -> np.ndarray:
    """Direct-loop cross-correlation with (top, bottom, left, right) zero padding."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[1]), (padding[2], padding[3])))
    oh = (xp.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow), dtype=np.float64)
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                r0, c0 = i * stride[0], j * stride[1]
                patch = xp[:, g * cg:(g + 1) * cg,
                           r0:r0 + dilation[0] * (kh - 1) + 1:dilation[0],
                           c0:c0 + dilation[1] * (kw - 1) + 1:dilation[1]]
                out[:, oc, i, j] = np.sum(patch * w[oc], axis=(1, 2, 3))
    if b is not None:
        out += b[None, :, None, None]
    return out


def _pool_out(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = n + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def max_pool2d_ref(x: np.ndarray, k, s=None, p=(0, 0), d=(1, 1), ceil_mode=False):
    s = s or k
    n, c, h, w = x.shape
    oh = _pool_out(h, k[0], s[0], p[0], d[0], ceil_mode)
    ow = _pool_out(w, k[1], s[1], p[1], d[1], ceil_mode)
    out = np.full((n, c, oh, ow), -np.inf)
    for i in range(oh):
        for j in range(ow):
            for a in range(k[0]):
                for b in range(k[1]):
                    r, cc = i * s[0] - p[0] + a * d[0], j * s[1] - p[1] + b * d[1]
                    if 0 <= r < h and 0 <= cc < w:
                        out[:, :, i, j] = np.maximum(out[:, :, i, j], x[:, :, r, cc])
    return out


def avg_pool2d_ref(x: np.ndarray, k, s=None, p=(0, 0), ceil_mode=False,
                   count_include_pad=True):
    s = s or k
    n, c, h, w = x.shape
    oh = _pool_out(h, k[0], s[0], p[0], 1, ceil_mode)
    ow = _pool_out(w, k[1], s[1], p[1], 1, ceil_mode)
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s[0] - p[0], j * s[1] - p[1]
            r1, c1 = min(r0 + k[0], h + p[0]), min(c0 + k[1], w + p[1])
            div = (r1 - r0) * (c1 - c0)
            rr0, cc0, rr1, cc1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
            if not count_include_pad:
                div = (rr1 - rr0) * (cc1 - cc0)
            out[:, :, i, j] = x[:, :, rr0:rr1, cc0:cc1].sum(axis=(2, 3)) / div
    return out


def log_softmax_ref(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def cross_entropy_ref(x: np.ndarray, t: np.ndarray, weight=None, ignore_index=-100,
                      reduction="mean", label_smoothing=0.0) -> np.ndarray:
    """Class-index cross entropy for (N, C) input, written from the definition."""
    n, c = x.shape
    logp = log_softmax_ref(x, 1)
    w = np.ones(c) if weight is None else weight
    losses, weights = np.zeros(n), np.zeros(n)
    for i in range(n):
        if t[i] == ignore_index:
            continue
        nll = -w[t[i]] * logp[i, t[i]]
        smooth = -(w * logp[i]).sum() / c
        losses[i] = (1 - label_smoothing) * nll + label_smoothing * smooth
        weights[i] = w[t[i]]
    if reduction == "none":
        return losses
    if reduction == "sum":
        return np.asarray(losses.sum())
    return np.asarray(losses.sum() / weights.sum())
