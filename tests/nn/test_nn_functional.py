"""amber.nn.functional against NumPy references, with finite-difference gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nn_reference import (
    avg_pool2d_ref,
    check_grads,
    conv2d_ref,
    cross_entropy_ref,
    log_softmax_ref,
    max_pool2d_ref,
    randn,
)

import amber as am
import amber.nn.functional as F
from amber.errors import AmberError, DTypeError, OutOfRangeError, ShapeError


def T(a):
    return am.tensor(np.asarray(a, dtype=np.float64))


def assert_close(a, b, tol=1e-10):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def _erf(x):
    return np.vectorize(math.erf)(x)


# ----------------------------------------------------------------------------- linear, conv


def test_linear_forward_and_grads():
    x, w, b = randn(4, 3), randn(5, 3, seed=1), randn(5, seed=2)
    assert_close(F.linear(T(x), T(w), T(b)), x @ w.T + b)
    assert_close(F.linear(T(x), T(w)), x @ w.T)
    x3 = randn(2, 4, 3, seed=3)
    assert_close(F.linear(T(x3), T(w), T(b)), x3 @ w.T + b)
    check_grads(F.linear, x, w, b)
    check_grads(F.linear, x3, w)


def test_linear_shape_errors_name_the_op():
    with pytest.raises(ShapeError, match=r"linear.*\(4, 2\).*in_features=3"):
        F.linear(T(randn(4, 2)), T(randn(5, 3)))


CONV_CASES = [
    dict(),
    dict(stride=2, padding=1),
    dict(padding=(2, 1), dilation=(1, 2)),
    dict(padding="same"),
    dict(padding="same", dilation=2),
    dict(padding="valid", stride=(1, 2)),
    dict(groups=2),
]


def _same(k, d):
    t = d * (k - 1)
    return t // 2, t - t // 2


def _pad4(kw, kh, kwid):
    p = kw.get("padding", 0)
    d = kw.get("dilation", 1)
    d = (d, d) if isinstance(d, int) else d
    if p == "same":
        return _same(kh, d[0]) + _same(kwid, d[1])
    if p == "valid":
        return (0, 0, 0, 0)
    p = (p, p) if isinstance(p, int) else p
    return (p[0], p[0], p[1], p[1])


@pytest.mark.parametrize("kw", CONV_CASES)
def test_conv2d_matches_direct_loops(kw):
    x, w, b = randn(2, 4, 7, 6), randn(6, 4 // kw.get("groups", 1), 3, 2, seed=1), randn(6, seed=2)
    s = kw.get("stride", 1)
    d = kw.get("dilation", 1)
    ref = conv2d_ref(x, w, b, stride=(s, s) if isinstance(s, int) else s,
                     padding=_pad4(kw, 3, 2), dilation=(d, d) if isinstance(d, int) else d,
                     groups=kw.get("groups", 1))
    assert_close(F.conv2d(T(x), T(w), T(b), **kw), ref)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1, dilation=(2, 1)),
                                dict(groups=2, padding="same")])
def test_conv2d_gradients(kw):
    check_grads(lambda x, w, b: F.conv2d(x, w, b, **kw), randn(1, 2, 5, 4),
                randn(2, 2 // kw.get("groups", 1), 3, 2, seed=1), randn(2, seed=2))


def test_conv2d_unbatched_and_errors():
    x, w = randn(3, 5, 5), randn(2, 3, 3, 3, seed=1)
    assert_close(F.conv2d(T(x), T(w)), conv2d_ref(x[None], w)[0])
    with pytest.raises(ShapeError, match="conv2d"):
        F.conv2d(T(randn(1, 4, 5, 5)), T(w))
    with pytest.raises(ShapeError, match="same"):
        F.conv2d(T(x), T(w), stride=2, padding="same")
    with pytest.raises(AmberError, match="padding"):
        F.conv2d(T(x), T(w), padding="full")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(3, 7), w=st.integers(3, 7),
       k=st.integers(1, 3), s=st.integers(1, 3), p=st.integers(0, 1), d=st.integers(1, 2))
def test_conv2d_property(n, c, h, w, k, s, p, d):
    if d * (k - 1) + 1 > min(h, w) + 2 * p:
        return
    x, wt = randn(n, c, h, w), randn(2, c, k, k, seed=1)
    ref = conv2d_ref(x, wt, stride=(s, s), padding=(p,) * 4, dilation=(d, d))
    assert_close(F.conv2d(T(x), T(wt), stride=s, padding=p, dilation=d), ref)


@pytest.mark.parametrize("mode, np_mode", [("reflect", "reflect"), ("replicate", "edge"),
                                           ("circular", "wrap")])
def test_pad_modes(mode, np_mode):
    x = randn(2, 3, 4, 5)
    got = F.pad(T(x), (1, 2, 3, 0), mode=mode)
    assert_close(got, np.pad(x, ((0, 0), (0, 0), (3, 0), (1, 2)), mode=np_mode))
    check_grads(lambda t: F.pad(t, (1, 2, 2, 1), mode=mode), randn(1, 1, 3, 4))


def test_pad_constant_and_crop():
    x = randn(3, 4)
    assert_close(F.pad(T(x), (1, 1), value=2.5),
                 np.pad(x, ((0, 0), (1, 1)), constant_values=2.5))
    assert_close(F.pad(T(x), (-1, 0, 1, -2)), np.pad(x[:1, 1:], ((1, 0), (0, 0))))
    check_grads(lambda t: F.pad(t, (2, 0, 0, 1)), x)


# ----------------------------------------------------------------------------- pooling


POOL_CASES = [
    dict(k=(2, 2)),
    dict(k=(3, 3), s=(2, 2), p=(1, 1)),
    dict(k=(3, 3), s=(2, 2), p=(1, 1), ceil_mode=True),
    dict(k=(2, 3), s=(1, 2), ceil_mode=True),
    dict(k=(3, 2), s=(3, 3), p=(1, 1), ceil_mode=True),
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool2d(case):
    x = randn(2, 3, 7, 8)
    s = case.get("s")
    got = F.max_pool2d(T(x), case["k"], s, case.get("p", 0), ceil_mode=case.get("ceil_mode",
                                                                                    False))
    assert_close(got, max_pool2d_ref(x, case["k"], s, case.get("p", (0, 0)),
                                     ceil_mode=case.get("ceil_mode", False)))
    check_grads(lambda t: F.max_pool2d(t, case["k"], s, case.get("p", 0),
                                       ceil_mode=case.get("ceil_mode", False)), randn(1, 1, 5, 6))


def test_max_pool2d_dilation_indices_and_nan():
    x = randn(1, 2, 6, 6)
    assert_close(F.max_pool2d(T(x), 2, 1, dilation=2), max_pool2d_ref(x, (2, 2), (1, 1),
                                                                      d=(2, 2)))
    out, idx = F.max_pool2d(T(x), 2, return_indices=True)
    flat = x.reshape(1, 2, 36)
    assert_close(np.take_along_axis(flat, idx.numpy().reshape(1, 2, -1), 2).reshape(out.shape),
                 out.numpy())
    x[0, 0, 0, 1] = np.nan
    assert np.isnan(F.max_pool2d(T(x), 2).numpy()[0, 0, 0, 0])


def test_max_pool2d_gradient_goes_to_first_maximum():
    x = am.tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    assert_close(x.grad, [[[[1.0, 0.0], [0.0, 0.0]]]])


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d(case, count_include_pad):
    x = randn(2, 3, 7, 8)
    s = case.get("s")
    kw = dict(ceil_mode=case.get("ceil_mode", False), count_include_pad=count_include_pad)
    got = F.avg_pool2d(T(x), case["k"], s, case.get("p", 0), **kw)
    assert_close(got, avg_pool2d_ref(x, case["k"], s, case.get("p", (0, 0)), **kw))
    check_grads(lambda t: F.avg_pool2d(t, case["k"], s, case.get("p", 0), **kw),
                randn(1, 1, 5, 6))


def test_avg_pool2d_divisor_override_and_errors():
    x = randn(1, 1, 4, 4)
    assert_close(F.avg_pool2d(T(x), 2, divisor_override=3),
                 avg_pool2d_ref(x, (2, 2)) * 4 / 3)
    with pytest.raises(ShapeError, match=r"avg_pool2d.*half"):
        F.avg_pool2d(T(x), 2, padding=2)
    with pytest.raises(ShapeError, match="max_pool2d"):
        F.max_pool2d(T(randn(4, 4)), 2)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(2, 8), w=st.integers(2, 8), k=st.integers(1, 3), s=st.integers(1, 3),
       ceil=st.booleans())
def test_pools_property(h, w, k, s, ceil):
    if k > min(h, w):
        return
    p = k // 2
    x = randn(1, 2, h, w)
    assert_close(F.max_pool2d(T(x), k, s, p, ceil_mode=ceil),
                 max_pool2d_ref(x, (k, k), (s, s), (p, p), ceil_mode=ceil))
    assert_close(F.avg_pool2d(T(x), k, s, p, ceil_mode=ceil),
                 avg_pool2d_ref(x, (k, k), (s, s), (p, p), ceil_mode=ceil))


# ----------------------------------------------------------------------------- activations


def _softplus(x, beta=1.0, threshold=20.0):
    return np.where(x * beta > threshold, x, np.log1p(np.exp(x * beta)) / beta)


ACTIVATIONS = [
    (F.relu, lambda x: np.maximum(x, 0)),
    (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    (F.tanh, np.tanh),
    (F.silu, lambda x: x / (1 + np.exp(-x))),
    (F.gelu, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2)))),
    (lambda x: F.gelu(x, approximate="tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    (lambda x: F.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    (lambda x: F.elu(x, 0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    (F.softplus, _softplus),
    (lambda x: F.softplus(x, 2.0, 1.0), lambda x: _softplus(x, 2.0, 1.0)),
    (F.logsigmoid, lambda x: -np.log1p(np.exp(-x))),
    (lambda x: F.hardtanh(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5)),
    (lambda x: F.softmax(x, 1), lambda x: np.exp(log_softmax_ref(x, 1))),
    (lambda x: F.log_softmax(x, -1), lambda x: log_softmax_ref(x, -1)),
]


@pytest.mark.parametrize("fa, ref", ACTIVATIONS)
def test_activation(fa, ref):
    x = randn(3, 5) * 2 + 0.013  # keep away from kinks at 0
    assert_close(fa(T(x)), ref(x), 1e-9)
    check_grads(fa, x)


def test_activations_extreme_inputs_are_finite():
    x = T([-1000.0, -50.0, 50.0, 1000.0])
    for f in (F.softplus, F.elu, F.silu, F.logsigmoid, F.gelu, F.sigmoid):
        y = am.tensor(x.numpy(), requires_grad=True)
        out = f(y)
        out.sum().backward()
        assert np.all(np.isfinite(out.detach().numpy())), f
        assert np.all(np.isfinite(y.grad.numpy())), f


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(AmberError, match="gelu"):
        F.gelu(T([1.0]), approximate="fast")


# ----------------------------------------------------------------------------- normalisation


def test_layer_norm():
    x, w, b = randn(2, 3, 4), randn(3, 4, seed=1), randn(3, 4, seed=2)
    mu = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    ref = (x - mu) / np.sqrt(var + 1e-5) * w + b
    assert_close(F.layer_norm(T(x), (3, 4), T(w), T(b)), ref)
    check_grads(lambda x, w, b: F.layer_norm(x, (3, 4), w, b), x, w, b)
    check_grads(lambda x: F.layer_norm(x, 4, eps=1e-3), x)
    with pytest.raises(ShapeError, match=r"layer_norm.*\(2, 3, 4\).*\(5,\)"):
        F.layer_norm(T(x), 5)


def test_batch_norm_training_updates_running_stats():
    x = randn(6, 3, 4) * 2 + 1
    w, b = randn(3, seed=1), randn(3, seed=2)
    rm, rv = am.zeros(3, dtype=am.float64), am.ones(3, dtype=am.float64)
    y = F.batch_norm(T(x), rm, rv, T(w), T(b), training=True, momentum=0.2)
    mu = x.mean(axis=(0, 2))
    var = x.var(axis=(0, 2))
    ref = (x - mu[None, :, None]) / np.sqrt(var[None, :, None] + 1e-5) * w[None, :, None] \
        + b[None, :, None]
    assert_close(y, ref)
    n = 6 * 4
    assert_close(rm, 0.2 * mu)
    assert_close(rv, 0.8 + 0.2 * var * n / (n - 1))
    check_grads(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b)


def test_batch_norm_eval_uses_running_stats():
    x = randn(4, 3, 2, 2)
    rm, rv = randn(3, seed=1), np.abs(randn(3, seed=2)) + 0.1
    y = F.batch_norm(T(x), T(rm), T(rv), training=False, eps=1e-3)
    ref = (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-3)
    assert_close(y, ref)
    check_grads(lambda x: F.batch_norm(x, T(rm), T(rv), training=False), x)


def test_batch_norm_errors():
    with pytest.raises(ShapeError, match="more than 1 value per channel"):
        F.batch_norm(T(randn(1, 3)), None, None, training=True)
    with pytest.raises(ShapeError, match=r"batch_norm: running_mean has shape \(4,\)"):
        F.batch_norm(T(randn(2, 3)), am.zeros(4), am.ones(4))


# ----------------------------------------------------------------------------- dropout, embedding


def test_dropout_statistics_and_modes():
    x = am.ones(200, 100, dtype=am.float64)
    y = F.dropout(x, 0.3, training=True, generator=am.Generator(0)).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    assert_close(y[kept], np.full(kept.sum(), 1 / 0.7))
    assert F.dropout(x, 0.3, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    with pytest.raises(AmberError, match="between 0 and 1"):
        F.dropout(x, 1.5)


def test_dropout_is_reproducible_and_differentiable():
    x = am.tensor(randn(5, 5), requires_grad=True)
    a = F.dropout(x, 0.5, generator=am.Generator(3))
    b = F.dropout(x, 0.5, generator=am.Generator(3))
    assert_close(a, b)
    a.sum().backward()
    assert_close(x.grad, np.where(a.detach().numpy() != 0, 2.0, 0.0))
    am.manual_seed(7)
    c = F.dropout(x, 0.5).detach().numpy()
    am.manual_seed(7)
    assert_close(F.dropout(x, 0.5), c)


def test_embedding_lookup_and_padding_gradient():
    w = randn(5, 3)
    idx = am.tensor([[0, 4, 4], [2, 1, 0]])
    assert_close(F.embedding(idx, T(w)), w[idx.numpy()])
    wt = am.tensor(w, requires_grad=True)
    F.embedding(idx, wt, padding_idx=4).sum().backward()
    expected = np.zeros_like(w)
    for i in idx.numpy().reshape(-1):
        if i != 4:
            expected[i] += 1
    assert_close(wt.grad, expected)
    check_grads(lambda w: F.embedding(idx, w), w)


def test_embedding_errors():
    with pytest.raises(OutOfRangeError, match="embedding: index 7"):
        F.embedding(am.tensor([1, 7]), T(randn(5, 2)))
    with pytest.raises(DTypeError, match="embedding"):
        F.embedding(am.tensor([1.0]), T(randn(5, 2)))


def test_one_hot():
    t = am.tensor([2, 0, 1])
    assert_close(F.one_hot(t), np.eye(3, dtype=np.int64)[[2, 0, 1]])
    assert F.one_hot(t, 5).shape == (3, 5)
    assert F.one_hot(t).dtype is am.int64
    with pytest.raises(OutOfRangeError, match="one_hot"):
        F.one_hot(t, 2)


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("kw", [
    {}, dict(reduction="sum"), dict(reduction="none"), dict(ignore_index=2),
    dict(label_smoothing=0.25), dict(label_smoothing=0.1, ignore_index=0, reduction="sum"),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_indices(kw, weighted):
    x = randn(6, 4)
    t = np.array([0, 2, 3, 2, 1, 0])
    w = np.array([0.3, 1.0, 2.0, 0.7]) if weighted else None
    got = F.cross_entropy(T(x), am.tensor(t), weight=None if w is None else T(w), **kw)
    assert_close(got, cross_entropy_ref(x, t, w, **kw))
    check_grads(lambda x: F.cross_entropy(x, am.tensor(t), weight=None if w is None else T(w),
                                          **kw), x)


def test_cross_entropy_spatial_matches_flattened():
    x = randn(2, 3, 4, 5)
    t = np.random.default_rng(0).integers(0, 3, size=(2, 4, 5))
    flat_x = x.transpose(0, 2, 3, 1).reshape(-1, 3)
    assert_close(F.cross_entropy(T(x), am.tensor(t)), cross_entropy_ref(flat_x, t.reshape(-1)))
    none = F.cross_entropy(T(x), am.tensor(t), reduction="none")
    assert none.shape == (2, 4, 5)
    check_grads(lambda x: F.cross_entropy(x, am.tensor(t), label_smoothing=0.1), x)


def test_cross_entropy_probabilities():
    x = randn(4, 3)
    p = np.abs(randn(4, 3, seed=1))
    p /= p.sum(1, keepdims=True)
    ref = -(p * log_softmax_ref(x, 1)).sum(1)
    assert_close(F.cross_entropy(T(x), T(p), reduction="none"), ref)
    assert_close(F.cross_entropy(T(x), T(p)), ref.mean())
    ps = p * 0.8 + 0.2 / 3
    assert_close(F.cross_entropy(T(x), T(p), label_smoothing=0.2),
                 -(ps * log_softmax_ref(x, 1)).sum(1).mean())
    check_grads(lambda x, p: F.cross_entropy(x, p), x, p)


def test_cross_entropy_large_logits_are_stable():
    x = am.tensor([[1000.0, -1000.0, 0.0]], requires_grad=True)
    loss = F.cross_entropy(x, am.tensor([1]))
    loss.backward()
    assert np.isfinite(loss.item()) and abs(loss.item() - 2000.0) < 1e-3
    assert np.all(np.isfinite(x.grad.numpy()))


def test_cross_entropy_errors():
    x = T(randn(3, 4))
    with pytest.raises(OutOfRangeError, match="cross_entropy: target 4 is out of bounds"):
        F.cross_entropy(x, am.tensor([0, 4, 1]))
    with pytest.raises(ShapeError, match=r"cross_entropy: target shape \(2,\)"):
        F.cross_entropy(x, am.tensor([0, 1]))
    with pytest.raises(ShapeError, match="weight"):
        F.cross_entropy(x, am.tensor([0, 1, 2]), weight=am.ones(3))
    with pytest.raises(AmberError, match="reduction"):
        F.cross_entropy(x, am.tensor([0, 1, 2]), reduction="avg")
    with pytest.raises(DTypeError, match="nll_loss"):
        F.nll_loss(x, am.tensor([0.0, 1.0, 2.0]))


def test_nll_loss():
    lp = log_softmax_ref(randn(5, 3), 1)
    t = np.array([0, 2, 1, 1, 2])
    w = np.array([1.0, 2.0, 0.5])
    picked = -lp[np.arange(5), t]
    assert_close(F.nll_loss(T(lp), am.tensor(t)), picked.mean())
    assert_close(F.nll_loss(T(lp), am.tensor(t), reduction="sum"), picked.sum())
    assert_close(F.nll_loss(T(lp), am.tensor(t), weight=T(w)),
                 (picked * w[t]).sum() / w[t].sum())
    keep = t != 1
    assert_close(F.nll_loss(T(lp), am.tensor(t), ignore_index=1), picked[keep].mean())
    check_grads(lambda x: F.nll_loss(x, am.tensor(t), weight=T(w)), lp)


def test_regression_losses():
    x, y = randn(3, 4), randn(3, 4, seed=1)
    assert_close(F.mse_loss(T(x), T(y)), ((x - y) ** 2).mean())
    assert_close(F.mse_loss(T(x), T(y), reduction="sum"), ((x - y) ** 2).sum())
    assert_close(F.l1_loss(T(x), T(y), reduction="none"), np.abs(x - y))
    check_grads(lambda a, b: F.mse_loss(a, b), x, y)
    check_grads(lambda a, b: F.l1_loss(a, b), x, y)
    with pytest.raises(ShapeError, match="mse_loss"):
        F.mse_loss(T(x), T(randn(2, 4)))


def test_binary_cross_entropy_with_logits():
    x = randn(4, 3) * 3
    y = (np.random.default_rng(1).random((4, 3)) > 0.5).astype(np.float64)
    pw = np.array([0.5, 2.0, 1.5])
    p = 1 / (1 + np.exp(-x))
    ref = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert_close(F.binary_cross_entropy_with_logits(T(x), T(y), reduction="none"), ref)
    refw = -(pw * y * np.log(p) + (1 - y) * np.log(1 - p))
    assert_close(F.binary_cross_entropy_with_logits(T(x), T(y), pos_weight=T(pw)), refw.mean())
    check_grads(lambda x: F.binary_cross_entropy_with_logits(x, T(y), pos_weight=T(pw)), x)
    big = F.binary_cross_entropy_with_logits(T([[800.0, -800.0]]), T([[0.0, 1.0]]),
                                             reduction="sum")
    assert_close(big, 1600.0)


def test_legacy_reduction_arguments():
    x, y = randn(3), randn(3, seed=1)
    assert_close(F.mse_loss(T(x), T(y), size_average=False), ((x - y) ** 2).sum())
    assert F.mse_loss(T(x), T(y), reduce=False).shape == (3,)
