"""The newer layers and ops against independent NumPy loops (float64), with gradients
against central finite differences: triu/tril/flip/einsum, conv1d and transposed
convolutions, group/instance/RMS norm, 1-D and adaptive pooling, interpolation, pixel
shuffle, attention, the recurrent cells and the new losses; plus their refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nn_reference import check_grads, conv2d_ref, randn

import amber as am
import amber.nn as nn
import amber.nn.functional as F
from amber.errors import AmberError, ShapeError


def T(a):
    return am.tensor(np.asarray(a, dtype=np.float64))


def close(a, b, tol=1e-10):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- front-end ops


def test_triu_tril_flip_forward_and_gradients():
    x = randn(3, 4, 5)
    for k in (-2, 0, 1, 7):
        close(am.triu(T(x), k).numpy(), np.triu(x, k))
        close(am.tril(T(x), k).numpy(), np.tril(x, k))
    close(am.flip(T(x), (0, 2)).numpy(), x[::-1, :, ::-1])
    assert am.triu(am.tensor(x > 0)).dtype == am.bool
    check_grads(lambda t: am.triu(t, 1), randn(3, 4))
    check_grads(lambda t: t.tril(-1), randn(4, 3))
    check_grads(lambda t: am.flip(t, [1]), randn(2, 5))
    with pytest.raises(ShapeError, match="rank >= 2"):
        am.triu(T(randn(3)))


@pytest.mark.parametrize("eq, shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bkj->bik", [(2, 3, 4), (2, 5, 4)]),
    ("ii->i", [(4, 4)]), ("ii", [(3, 3)]), ("i,j->ij", [(3,), (2,)]),
    ("abc->cba", [(2, 3, 4)]), ("ij,ij,ij->", [(2, 3)] * 3),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]), ("ijk,kj->", [(2, 3, 4), (4, 3)]),
    ("abc,cd->dba", [(2, 3, 4), (4, 2)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]), ("...ii->...i", [(2, 3, 3)]),
    ("b...,b...->b...", [(2, 3, 4), (2, 3, 4)]), ("...,...", [(3,), (2, 3)]),
    ("i...->...i", [(2, 3, 4)]), ("...ij", [(2, 1, 3, 4)]),
    ("ij...,jk->...ik", [(2, 3, 5), (3, 4)]),
])
def test_einsum_against_numpy(eq, shapes):
    xs = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    close(am.einsum(eq, *[T(x) for x in xs]).numpy(), np.einsum(eq, *xs), 1e-12)
    check_grads(lambda *ts: am.einsum(eq, *ts), *xs)


def test_einsum_errors():
    with pytest.raises(ShapeError, match="ellipsis"):
        am.einsum("..ij->ij", T(randn(2, 3)))
    with pytest.raises(ShapeError, match=r"need '\.\.\.'"):
        am.einsum("b...->b", T(randn(2, 3)))
    with pytest.raises(ShapeError, match="fewer dims"):
        am.einsum("...ijk->ij", T(randn(2, 3)))
    with pytest.raises(ShapeError, match="subscripts"):
        am.einsum("ijk->i", T(randn(2, 3)))
    with pytest.raises(ShapeError, match="operands"):
        am.einsum("ij,jk->ik", T(randn(2, 3)))


# ----------------------------------------------------------------------------- convolution


def conv_transpose2d_ref(x, w, stride, padding, output_padding, dilation, groups):
    """Scatter every input element times the kernel into the (cropped) output."""
    n, cin, h, wd = x.shape
    _, og, kh, kw = w.shape
    oh = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh - 1) + output_padding[0] + 1
    ow = (wd - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw - 1) + output_padding[1] + 1
    full = np.zeros((n, og * groups, oh + 2 * padding[0] + kh * dilation[0],
                     ow + 2 * padding[1] + kw * dilation[1]))
    cg = cin // groups
    for b in range(n):
        for c in range(cin):
            g = c // cg
            for i in range(h):
                for j in range(wd):
                    for p in range(kh):
                        for q in range(kw):
                            full[b, g * og:(g + 1) * og, i * stride[0] + p * dilation[0],
                                 j * stride[1] + q * dilation[1]] += x[b, c, i, j] * w[c, :, p, q]
    return full[:, :, padding[0]:padding[0] + oh, padding[1]:padding[1] + ow]


@pytest.mark.parametrize("s, p, op, d, g", [
    ((1, 1), (0, 0), (0, 0), (1, 1), 1), ((2, 3), (1, 0), (1, 2), (1, 1), 1),
    ((2, 2), (1, 1), (0, 1), (2, 1), 2),
])
def test_conv_transpose2d_against_loops(s, p, op, d, g):
    x, w, b = randn(2, 4, 3, 3), randn(4, 3, 2, 3, seed=1), randn(3 * g, seed=2)
    want = conv_transpose2d_ref(x, w, s, p, op, d, g) + b.reshape(1, -1, 1, 1)
    got = F.conv_transpose2d(T(x), T(w), T(b), s, p, op, g, d)
    close(got.numpy(), want)
    check_grads(lambda a, k: F.conv_transpose2d(a, k, None, s, p, op, g, d), x[:1], w)


def test_conv1d_and_conv_transpose1d_against_2d_references():
    x, w = randn(2, 4, 9), randn(6, 2, 3, seed=1)
    want = conv2d_ref(x[:, :, None], w[:, :, None], stride=(1, 2), padding=(0, 0, 1, 1),
                      dilation=(1, 1), groups=2)[:, :, 0]
    close(F.conv1d(T(x), T(w), None, 2, 1, 1, 2).numpy(), want)
    check_grads(lambda a, k: F.conv1d(a, k, stride=2, padding=1, groups=2), x[:1], w)
    wt = randn(4, 3, 3, seed=3)
    want = conv_transpose2d_ref(x[:, :, None], wt[:, :, None], (1, 2), (0, 1), (0, 1), (1, 1),
                                1)[:, :, 0]
    close(F.conv_transpose1d(T(x), T(wt), None, 2, 1, 1).numpy(), want)
    with pytest.raises(ShapeError, match="weight must be"):
        F.conv1d(T(x), T(randn(6, 4)))


# ----------------------------------------------------------------------------- normalisation


def test_group_instance_rms_norm_against_numpy():
    x = randn(2, 6, 3, 4)
    w, b = randn(6, seed=1), randn(6, seed=2)
    g = x.reshape(2, 3, -1)
    want = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5))
    want = want.reshape(x.shape) * w.reshape(1, 6, 1, 1) + b.reshape(1, 6, 1, 1)
    close(F.group_norm(T(x), 3, T(w), T(b)).numpy(), want)
    check_grads(lambda a, ww, bb: F.group_norm(a, 2, ww, bb), randn(2, 4, 3), randn(4, seed=3),
                randn(4, seed=4), tol=1e-5)
    m, v = x.mean((2, 3), keepdims=True), x.var((2, 3), keepdims=True)
    close(F.instance_norm(T(x)).numpy(), (x - m) / np.sqrt(v + 1e-5))
    check_grads(lambda a: F.instance_norm(a), randn(2, 3, 4), tol=1e-5)
    r = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6)
    close(F.rms_norm(T(x), 4, None, 1e-6).numpy(), r)
    check_grads(lambda a, ww: F.rms_norm(a, (3,), ww), randn(2, 3), randn(3, seed=5), tol=1e-5)
    with pytest.raises(ShapeError, match="divisible by num_groups"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ShapeError, match="normalized_shape"):
        F.rms_norm(T(x), 5)


def test_instance_norm_running_stats_update_and_capture_refusal():
    m = nn.InstanceNorm1d(3, track_running_stats=True).double()
    x = randn(4, 3, 5)
    m(T(x))
    inst_var = x.var(2, ddof=1).mean(0)
    close(m.running_mean.numpy(), 0.1 * x.mean(2).mean(0))
    close(m.running_var.numpy(), 0.9 + 0.1 * inst_var)
    with pytest.raises(am.CaptureError, match="eval"):
        am.export(m, am.spec("batch", 3, 5))
    m.eval()
    am.export(m, am.spec("batch", 3, 5))


# ----------------------------------------------------------------------------- pooling


def _adaptive_ref(x, out, fn):
    n = x.shape[-1]
    return np.stack([fn(x[..., (i * n) // out: -((-(i + 1) * n) // out)], -1)
                     for i in range(out)], -1)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 12), out=st.integers(1, 6))
def test_adaptive_pool_1d_property(n, out):
    x = randn(2, 3, n)
    close(F.adaptive_avg_pool1d(T(x), out).numpy(), _adaptive_ref(x, out, np.mean))
    close(F.adaptive_max_pool1d(T(x), out).numpy(), _adaptive_ref(x, out, np.max))


def test_adaptive_pool_2d_and_1d_pools():
    x = randn(2, 3, 5, 7)
    rows = _adaptive_ref(np.swapaxes(x, -1, -2), 3, np.mean)
    want = _adaptive_ref(np.swapaxes(rows, -1, -2), 4, np.mean)
    close(F.adaptive_avg_pool2d(T(x), (3, 4)).numpy(), want)
    check_grads(lambda a: F.adaptive_avg_pool2d(a, (3, 4)), x[:1, :1])
    check_grads(lambda a: F.adaptive_max_pool2d(a, (2, 3)), x[:1, :1])
    y = randn(2, 3, 8)
    close(F.max_pool1d(T(y), 2).numpy(), y.reshape(2, 3, 4, 2).max(-1))
    close(F.avg_pool1d(T(y), 4).numpy(), y.reshape(2, 3, 2, 4).mean(-1))
    with pytest.raises(ShapeError, match="symbolic size"):
        am.export(lambda a: F.adaptive_avg_pool1d(a, 3), am.spec(2, 3, "n"))
    am.export(lambda a: F.adaptive_avg_pool1d(a, 1), am.spec(2, 3, "n"))


# ----------------------------------------------------------------------------- resampling


def _linear_ref(n, out, align):
    """Interpolation weights by PyTorch's formula, one output index at a time."""
    m = np.zeros((out, n))
    for j in range(out):
        if align:
            src = j * (n - 1) / (out - 1) if out > 1 else 0.0
        else:
            src = max((j + 0.5) * n / out - 0.5, 0.0)
        i0 = min(math.floor(src), n - 1)
        i1 = min(i0 + 1, n - 1)
        m[j, i0] += 1 - (src - i0)
        m[j, i1] += src - i0
    return m


@pytest.mark.parametrize("size, align", [((7, 3), False), ((2, 9), True), ((4, 6), False)])
def test_bilinear_and_nearest_against_loops(size, align):
    x = randn(2, 3, 4, 6)
    mh, mw = _linear_ref(4, size[0], align), _linear_ref(6, size[1], align)
    want = np.einsum("ph,nchw,qw->ncpq", mh, x, mw)
    close(F.interpolate(T(x), size, mode="bilinear", align_corners=align).numpy(), want)
    check_grads(lambda a: F.interpolate(a, size, mode="bilinear", align_corners=align), x[:1])
    ih = np.minimum(np.floor(np.arange(size[0]) * 4 / size[0]).astype(int), 3)
    iw = np.minimum(np.floor(np.arange(size[1]) * 6 / size[1]).astype(int), 5)
    close(F.interpolate(T(x), size).numpy(), x[:, :, ih][:, :, :, iw])


def test_pixel_shuffle_roundtrip_and_layout():
    x = randn(2, 8, 3, 5)
    y = F.pixel_shuffle(T(x), 2).numpy()
    assert y.shape == (2, 2, 6, 10)
    close(y[0, 1, 3, 4], x[0, 1 * 4 + 1 * 2 + 0, 1, 2])
    close(F.pixel_unshuffle(T(y), 2).numpy(), x)
    with pytest.raises(ShapeError, match="divisible"):
        F.pixel_shuffle(T(randn(1, 3, 2, 2)), 2)


# ----------------------------------------------------------------------------- attention, rnn


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_sdpa_against_numpy_and_gradients():
    q, k, v = randn(2, 3, 4), randn(2, 5, 4, seed=1), randn(2, 5, 6, seed=2)
    mask = np.tril(np.ones((3, 5), bool))
    s = q @ k.transpose(0, 2, 1) / 2.0
    close(F.scaled_dot_product_attention(T(q), T(k), T(v)).numpy(), _softmax(s) @ v)
    close(F.scaled_dot_product_attention(T(q), T(k), T(v), is_causal=True).numpy(),
          _softmax(np.where(mask, s, -np.inf)) @ v)
    check_grads(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True), q, k, v)
    with pytest.raises(AmberError, match="not both"):
        F.scaled_dot_product_attention(T(q), T(k), T(v), am.tensor(mask), is_causal=True)


def test_lstm_and_gru_cells_against_numpy_and_gradients():
    am.manual_seed(0)
    cell = nn.LSTMCell(3, 2).double()
    x, h, c = randn(4, 3), randn(4, 2, seed=1), randn(4, 2, seed=2)
    p = {k: v.numpy() for k, v in cell.state_dict().items()}
    gates = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    i, f, g, o = np.split(gates, 4, 1)
    sig = lambda z: 1 / (1 + np.exp(-z))
    c2 = sig(f) * c + sig(i) * np.tanh(g)
    hn, cn = cell(T(x), (T(h), T(c)))
    close(cn.detach().numpy(), c2)
    close(hn.detach().numpy(), sig(o) * np.tanh(c2))
    gru = nn.GRU(3, 2, batch_first=True).double()
    check_grads(lambda a: gru(a)[0], randn(2, 4, 3), tol=1e-5)
    rnn = nn.RNNCell(3, 2).double()
    check_grads(lambda a: rnn(a), randn(2, 3), tol=1e-5)


# ----------------------------------------------------------------------------- activations, losses


def test_relu6_special_values_and_gradient():
    """relu6 clamps to [0, 6]; NaN stays NaN, -0 gives +0, and the gradient is 1 strictly
    inside (0, 6) and 0 elsewhere, the bounds included."""
    x = np.array([-np.inf, -2.0, -0.0, 0.0, 1e-30, 3.0, 6.0, 7.5, np.inf, np.nan])
    got = F.relu6(T(x)).numpy()
    want = np.array([0.0, 0.0, 0.0, 0.0, 1e-30, 3.0, 6.0, 6.0, 6.0, np.nan])
    np.testing.assert_array_equal(got, want)
    assert not np.signbit(got[2])
    np.testing.assert_array_equal(nn.ReLU6()(T(x)).numpy(), got)
    t = T(np.array([-1.0, 0.0, 2.0, 6.0, 9.0]))
    t.requires_grad_(True)
    F.relu6(t).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [0.0, 0.0, 1.0, 0.0, 0.0])
    check_grads(F.relu6, randn(3, 4) * 4)


def test_activations_and_losses_against_numpy():
    x = randn(3, 4) * 3
    close(F.hardswish(T(x)).numpy(), x * np.clip(x + 3, 0, 6) / 6)
    close(F.hardsigmoid(T(x)).numpy(), np.clip(x + 3, 0, 6) / 6)
    close(F.mish(T(x)).numpy(), x * np.tanh(np.log1p(np.exp(x))))
    close(F.glu(T(x)).numpy(), x[:, :2] / (1 + np.exp(-x[:, 2:])))
    check_grads(F.mish, x)
    check_grads(lambda a: F.glu(a, 0), randn(4, 3))
    t = randn(3, 4, seed=1)
    d = x - t
    close(F.huber_loss(T(x), T(t), delta=2.0).numpy(),
          np.where(np.abs(d) < 2, 0.5 * d * d, 2 * (np.abs(d) - 1)).mean())
    p = 1 / (1 + np.exp(-x))
    y = (t > 0).astype(np.float64)
    close(F.binary_cross_entropy(T(p), T(y)).numpy(),
          -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    lp = np.log(_softmax(x))
    q = _softmax(t)
    close(F.kl_div(T(lp), T(q), reduction="batchmean").numpy(), (q * (np.log(q) - lp)).sum() / 3)
    check_grads(lambda a: F.kl_div(a, T(q), reduction="sum"), lp)
    with pytest.raises(ShapeError, match="even size"):
        F.glu(T(randn(3, 5)))
