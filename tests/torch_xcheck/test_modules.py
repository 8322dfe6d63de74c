"""amber.nn, amber.nn.functional and amber.optim agree with PyTorch (float32, 1e-5).

Weights go from the PyTorch module to the amber one through ``state_dict`` converted to
NumPy, then forward values, input gradients and parameter gradients are compared."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import amber as am  # noqa: E402
import amber.nn as nn  # noqa: E402
import amber.nn.functional as F  # noqa: E402

pytestmark = [pytest.mark.torch,
              pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")]
TF = torch.nn.functional
TOL = 1e-5


@pytest.fixture(autouse=True)
def _seeded(request):
    """Reproducible PyTorch initial weights and amber randomness for every test."""
    seed = int(os.environ.get("AMBER_XCHECK_SEED", "0")) + len(request.node.name)
    torch.manual_seed(seed)
    am.manual_seed(seed)


def close(a, b, tol=TOL):
    a = a.detach().numpy() if isinstance(a, am.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def rand(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def both(arr, grad=True):
    """The same float32 data as an amber tensor and a torch tensor (leafs)."""
    a = am.tensor(arr, requires_grad=grad)
    t = torch.tensor(arr, requires_grad=grad)
    return a, t


def check_fn(fa, ft, *arrays, seed=1, tol=TOL):
    """Compare f(x...) forward and the gradients of sum(f * cotangent) for all inputs."""
    pairs = [both(a) for a in arrays]
    ya = fa(*[p[0] for p in pairs])
    yt = ft(*[p[1] for p in pairs])
    close(ya, yt, tol)
    cot = rand(*yt.shape, seed=seed)
    (ya * am.tensor(cot)).sum().backward()
    (yt * torch.tensor(cot)).sum().backward()
    for (a, t) in pairs:
        close(a.grad, t.grad, tol)


def check_module(ma, mt, *arrays, tol=TOL, train=True):
    """Load ``mt``'s weights into ``ma`` and compare forward and all gradients."""
    ma.load_state_dict({k: v.detach().numpy() for k, v in mt.state_dict().items()})
    ma.train(train)
    mt.train(train)
    check_fn(ma, mt, *arrays, tol=tol)
    pa, pt = dict(ma.named_parameters()), dict(mt.named_parameters())
    assert list(pa) == list(pt)
    for k in pt:
        close(pa[k].grad, pt[k].grad, tol)
    sa, st = ma.state_dict(), mt.state_dict()
    assert list(sa) == list(st)
    for k in st:
        close(sa[k], st[k], tol)


# ----------------------------------------------------------------------------- modules


@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    check_module(nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias), rand(4, 5))
    check_module(nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias), rand(2, 4, 5))


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3),
    dict(kernel_size=3, padding=1, stride=2),
    dict(kernel_size=(2, 3), padding=(1, 0), dilation=(2, 1)),
    dict(kernel_size=3, padding="same", dilation=2),
    dict(kernel_size=2, padding="same"),
    dict(kernel_size=3, padding="valid", bias=False),
    dict(kernel_size=3, padding=1, padding_mode="reflect"),
    dict(kernel_size=3, padding=1, padding_mode="replicate"),
    dict(kernel_size=3, padding=(2, 1), padding_mode="circular"),
])
def test_conv2d(kw):
    check_module(nn.Conv2d(4, 6, **kw), torch.nn.Conv2d(4, 6, **kw), rand(2, 4, 7, 6))


def test_conv2d_groups_and_unbatched():
    check_module(nn.Conv2d(4, 6, 3, groups=2), torch.nn.Conv2d(4, 6, 3, groups=2),
                 rand(2, 4, 5, 5))
    check_module(nn.Conv2d(3, 2, 3), torch.nn.Conv2d(3, 2, 3), rand(3, 5, 5))


def test_layer_norm():
    check_module(nn.LayerNorm(6), torch.nn.LayerNorm(6), rand(3, 6))
    mt = torch.nn.LayerNorm((4, 5))
    with torch.no_grad():
        mt.weight.copy_(torch.tensor(rand(4, 5, seed=3)))
        mt.bias.copy_(torch.tensor(rand(4, 5, seed=4)))
    check_module(nn.LayerNorm((4, 5)), mt, rand(2, 3, 4, 5))
    check_module(nn.LayerNorm(5, elementwise_affine=False),
                 torch.nn.LayerNorm(5, elementwise_affine=False), rand(3, 5))


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_training_and_eval(momentum):
    for cls_a, cls_t, shape in [(nn.BatchNorm1d, torch.nn.BatchNorm1d, (8, 3)),
                                (nn.BatchNorm1d, torch.nn.BatchNorm1d, (4, 3, 5)),
                                (nn.BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 5, 2))]:
        ma, mt = cls_a(3, momentum=momentum), cls_t(3, momentum=momentum)
        with torch.no_grad():
            mt.weight.copy_(torch.tensor(rand(3, seed=5)))
            mt.bias.copy_(torch.tensor(rand(3, seed=6)))
        check_module(ma, mt, rand(*shape, seed=1, scale=2.0) + 1.0)
        # a second training batch moves the running statistics again
        ma(am.tensor(rand(*shape, seed=7)))
        mt(torch.tensor(rand(*shape, seed=7)))
        for k, v in mt.state_dict().items():
            close(ma.state_dict()[k], v)
        assert int(ma.num_batches_tracked.item()) == 2
        # eval mode uses the running statistics
        x = rand(*shape, seed=8)
        close(ma.eval()(am.tensor(x)), mt.eval()(torch.tensor(x)))


def test_batchnorm_without_running_stats():
    ma = nn.BatchNorm2d(3, track_running_stats=False)
    mt = torch.nn.BatchNorm2d(3, track_running_stats=False)
    check_module(ma, mt, rand(2, 3, 4, 4))
    x = rand(2, 3, 4, 4, seed=3)
    close(ma.eval()(am.tensor(x)), mt.eval()(torch.tensor(x)))


@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding(padding_idx):
    ma = nn.Embedding(6, 4, padding_idx=padding_idx)
    mt = torch.nn.Embedding(6, 4, padding_idx=padding_idx)
    ma.load_state_dict({k: v.detach().numpy() for k, v in mt.state_dict().items()})
    idx = np.array([[0, 2, 5], [2, 2, 1]])
    ya, yt = ma(am.tensor(idx)), mt(torch.tensor(idx))
    close(ya, yt)
    cot = rand(2, 3, 4)
    (ya * am.tensor(cot)).sum().backward()
    (yt * torch.tensor(cot)).sum().backward()
    close(ma.weight.grad, mt.weight.grad)


def test_embedding_default_init_zeroes_padding_row():
    am.manual_seed(0)
    e = nn.Embedding(5, 3, padding_idx=1)
    assert np.all(e.weight.detach().numpy()[1] == 0)
    assert e.weight.detach().numpy().std() > 0.3


@pytest.mark.parametrize("am_mod, t_mod", [
    (nn.ReLU(), torch.nn.ReLU()),
    (nn.GELU(), torch.nn.GELU()),
    (nn.GELU("tanh"), torch.nn.GELU("tanh")),
    (nn.SiLU(), torch.nn.SiLU()),
    (nn.Sigmoid(), torch.nn.Sigmoid()),
    (nn.Tanh(), torch.nn.Tanh()),
    (nn.Softmax(dim=1), torch.nn.Softmax(dim=1)),
    (nn.LogSoftmax(dim=-1), torch.nn.LogSoftmax(dim=-1)),
    (nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
    (nn.ELU(0.7), torch.nn.ELU(0.7)),
    (nn.Softplus(), torch.nn.Softplus()),
    (nn.Softplus(beta=2.0, threshold=3.0), torch.nn.Softplus(beta=2.0, threshold=3.0)),
    (nn.Identity(), torch.nn.Identity()),
    (nn.Flatten(), torch.nn.Flatten()),
    (nn.Flatten(0, 1), torch.nn.Flatten(0, 1)),
    (nn.MaxPool2d(2), torch.nn.MaxPool2d(2)),
    (nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
     torch.nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)),
    (nn.MaxPool2d((2, 3), stride=1, dilation=2), torch.nn.MaxPool2d((2, 3), stride=1, dilation=2)),
    (nn.AvgPool2d(2), torch.nn.AvgPool2d(2)),
    (nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True),
     torch.nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True)),
    (nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
     torch.nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)),
    (nn.AvgPool2d(2, divisor_override=3), torch.nn.AvgPool2d(2, divisor_override=3)),
])
def test_parameterless_modules(am_mod, t_mod):
    x = rand(2, 3, 7, 6, scale=3.0)
    check_fn(am_mod, t_mod, x)


def test_activations_on_special_values():
    x = np.array([-30.0, -1.0, 0.0, 1e-3, 1.0, 25.0, 80.0], dtype=np.float32)
    for fa, ft in [(F.softplus, TF.softplus), (F.elu, TF.elu), (F.silu, TF.silu),
                   (F.gelu, TF.gelu), (F.leaky_relu, TF.leaky_relu), (F.relu, TF.relu),
                   (F.logsigmoid, TF.logsigmoid)]:
        check_fn(fa, ft, x)


def test_max_pool_return_indices_and_ties():
    x = np.zeros((1, 2, 4, 4), dtype=np.float32)
    x[0, 1] = rand(4, 4)
    ya, ia = F.max_pool2d(am.tensor(x), 2, return_indices=True)
    yt, it = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    close(ya, yt)
    np.testing.assert_array_equal(ia.numpy(), it.numpy())
    # all-equal windows send the whole gradient to the first element, as PyTorch does
    check_fn(lambda t: F.max_pool2d(t, 2), lambda t: TF.max_pool2d(t, 2), x)


def test_sequential_and_state_dict_names():
    def t_net():
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 3, 5),
            torch.nn.Dropout(0.0), torch.nn.LayerNorm(5), torch.nn.Linear(5, 3))

    a_net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5),
                          nn.Dropout(0.0), nn.LayerNorm(5), nn.Linear(5, 3))
    t1 = t_net()
    assert list(a_net.state_dict()) == list(t1.state_dict())
    check_module(a_net, t1, rand(3, 1, 6, 6))
    # and back: amber's state_dict (as NumPy) loads into a fresh PyTorch model
    t2 = t_net()
    t2.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                        a_net.state_dict().items()})
    x = rand(2, 1, 6, 6, seed=5)
    close(a_net.eval()(am.tensor(x)), t2.eval()(torch.tensor(x)))


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("kw", [
    {}, dict(reduction="sum"), dict(reduction="none"), dict(ignore_index=1),
    dict(label_smoothing=0.2), dict(label_smoothing=0.1, ignore_index=0),
    dict(label_smoothing=0.1, reduction="none"), dict(label_smoothing=0.1, reduction="sum"),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_indices(kw, weighted):
    w = np.array([0.5, 2.0, 1.0, 1.5], dtype=np.float32) if weighted else None
    target = np.array([0, 3, 1, 1, 2])
    kw_a = dict(kw, weight=am.tensor(w) if weighted else None)
    kw_t = dict(kw, weight=torch.tensor(w) if weighted else None)
    check_fn(lambda x: F.cross_entropy(x, am.tensor(target), **kw_a),
             lambda x: TF.cross_entropy(x, torch.tensor(target), **kw_t), rand(5, 4))
    # spatial (N, C, d1, d2)
    tgt = np.random.default_rng(1).integers(0, 4, size=(2, 3, 2))
    check_fn(lambda x: F.cross_entropy(x, am.tensor(tgt), **kw_a),
             lambda x: TF.cross_entropy(x, torch.tensor(tgt), **kw_t), rand(2, 4, 3, 2))
    # unbatched (C,)
    check_fn(lambda x: F.cross_entropy(x, am.tensor(np.int64(2)), **kw_a),
             lambda x: TF.cross_entropy(x, torch.tensor(2), **kw_t), rand(4))


@pytest.mark.parametrize("kw", [{}, dict(reduction="sum"), dict(reduction="none"),
                                dict(label_smoothing=0.3)])
def test_cross_entropy_probabilities(kw):
    p = np.random.default_rng(3).random((5, 4)).astype(np.float32)
    p /= p.sum(1, keepdims=True)
    w = np.array([0.5, 2.0, 1.0, 1.5], dtype=np.float32)
    check_fn(lambda x: F.cross_entropy(x, am.tensor(p), **kw),
             lambda x: TF.cross_entropy(x, torch.tensor(p), **kw), rand(5, 4))
    check_fn(lambda x: F.cross_entropy(x, am.tensor(p), weight=am.tensor(w), **kw),
             lambda x: TF.cross_entropy(x, torch.tensor(p), weight=torch.tensor(w), **kw),
             rand(5, 4))


@pytest.mark.parametrize("kw", [{}, dict(reduction="sum"), dict(reduction="none"),
                                dict(ignore_index=2)])
def test_nll_loss(kw):
    target = np.array([0, 2, 1, 2])
    w = np.array([1.0, 0.5, 3.0], dtype=np.float32)
    check_fn(lambda x: F.nll_loss(x, am.tensor(target), **kw),
             lambda x: TF.nll_loss(x, torch.tensor(target), **kw), rand(4, 3))
    check_fn(lambda x: nn.NLLLoss(weight=am.tensor(w), **kw)(x, am.tensor(target)),
             lambda x: torch.nn.NLLLoss(weight=torch.tensor(w), **kw)(x, torch.tensor(target)),
             rand(4, 3))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_and_binary_losses(reduction):
    t = rand(3, 4, seed=9)
    for ma, mt in [(nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction)),
                   (nn.L1Loss(reduction=reduction), torch.nn.L1Loss(reduction=reduction))]:
        check_fn(lambda x, ma=ma: ma(x, am.tensor(t)),
                 lambda x, mt=mt: mt(x, torch.tensor(t)), rand(3, 4))
    y = (np.random.default_rng(2).random((3, 4)) > 0.5).astype(np.float32)
    w = rand(3, 4, seed=4)
    pw = np.abs(rand(4, seed=5)) + 0.5
    for kw_a, kw_t in [({}, {}),
                       (dict(weight=am.tensor(w)), dict(weight=torch.tensor(w))),
                       (dict(pos_weight=am.tensor(pw)), dict(pos_weight=torch.tensor(pw)))]:
        check_fn(lambda x, k=kw_a: F.binary_cross_entropy_with_logits(
                     x, am.tensor(y), reduction=reduction, **k),
                 lambda x, k=kw_t: TF.binary_cross_entropy_with_logits(
                     x, torch.tensor(y), reduction=reduction, **k),
                 rand(3, 4, scale=4.0))


def test_cross_entropy_loss_module():
    w = np.array([0.5, 2.0, 1.0], dtype=np.float32)
    ma = nn.CrossEntropyLoss(weight=am.tensor(w), label_smoothing=0.1)
    mt = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1)
    target = np.array([0, 2, 1, 1])
    check_fn(lambda x: ma(x, am.tensor(target)), lambda x: mt(x, torch.tensor(target)),
             rand(4, 3))
    assert list(ma.state_dict()) == list(mt.state_dict()) == ["weight"]


# ----------------------------------------------------------------------------- functional


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad(mode):
    pads = (1, 2, 2, 1)
    check_fn(lambda x: F.pad(x, pads, mode=mode), lambda x: TF.pad(x, pads, mode=mode),
             rand(2, 3, 4, 5))


def test_layer_norm_batch_norm_functional():
    w, b = rand(5, seed=2), rand(5, seed=3)
    check_fn(lambda x, w, b: F.layer_norm(x, (5,), w, b, 1e-3),
             lambda x, w, b: TF.layer_norm(x, (5,), w, b, 1e-3), rand(3, 5), w, b)
    rm, rv = rand(4, seed=4), np.abs(rand(4, seed=5)) + 0.5
    check_fn(lambda x, w, b: F.batch_norm(x, am.tensor(rm), am.tensor(rv), w, b, False),
             lambda x, w, b: TF.batch_norm(x, torch.tensor(rm), torch.tensor(rv), w, b, False),
             rand(6, 4, 3), rand(4, seed=6), rand(4, seed=7))


def test_one_hot_and_linear_functional():
    idx = np.array([[0, 3], [2, 1]])
    np.testing.assert_array_equal(F.one_hot(am.tensor(idx), 5).numpy(),
                                  TF.one_hot(torch.tensor(idx), 5).numpy())
    np.testing.assert_array_equal(F.one_hot(am.tensor(idx)).numpy(),
                                  TF.one_hot(torch.tensor(idx)).numpy())
    check_fn(F.linear, TF.linear, rand(4, 3), rand(5, 3, seed=1), rand(5, seed=2))


# ----------------------------------------------------------------------------- optimizers


OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5,
                     eps=1e-6)),
]


def _mlp_pair():
    mt = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    ma = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    ma.load_state_dict({k: v.detach().numpy() for k, v in mt.state_dict().items()})
    return ma, mt


@pytest.mark.parametrize("name, kw", OPTIMIZERS)
def test_optimizer_matches_torch(name, kw):
    ma, mt = _mlp_pair()
    oa = getattr(am.optim, name)(ma.parameters(), **kw)
    ot = getattr(torch.optim, name)(mt.parameters(), **kw)
    for step in range(6):
        x, y = rand(10, 6, seed=step), np.random.default_rng(step).integers(0, 3, 10)
        la = F.cross_entropy(ma(am.tensor(x)), am.tensor(y))
        lt = TF.cross_entropy(mt(torch.tensor(x)), torch.tensor(y))
        close(la, lt)
        oa.zero_grad()
        ot.zero_grad()
        la.backward()
        lt.backward()
        oa.step()
        ot.step()
        for (ka, pa), (kt, pt) in zip(ma.named_parameters(), mt.named_parameters()):
            assert ka == kt
            close(pa, pt)


@pytest.mark.parametrize("name, kw", [OPTIMIZERS[1], OPTIMIZERS[7], OPTIMIZERS[10],
                                      OPTIMIZERS[12], OPTIMIZERS[15]])
def test_optimizer_state_dict_from_torch(name, kw):
    ma, mt = _mlp_pair()
    ot = getattr(torch.optim, name)(mt.parameters(), **kw)
    for step in range(3):
        x, y = rand(10, 6, seed=step), np.random.default_rng(step).integers(0, 3, 10)
        ot.zero_grad()
        TF.cross_entropy(mt(torch.tensor(x)), torch.tensor(y)).backward()
        ot.step()
    ma.load_state_dict({k: v.detach().numpy() for k, v in mt.state_dict().items()})
    oa = getattr(am.optim, name)(ma.parameters(), **kw)
    sd = ot.state_dict()
    oa.load_state_dict({"state": {i: {k: (v.numpy() if isinstance(v, torch.Tensor) else v)
                                      for k, v in s.items()} for i, s in sd["state"].items()},
                        "param_groups": sd["param_groups"]})
    for step in range(3, 6):
        x, y = rand(10, 6, seed=step), np.random.default_rng(step).integers(0, 3, 10)
        oa.zero_grad()
        ot.zero_grad()
        F.cross_entropy(ma(am.tensor(x)), am.tensor(y)).backward()
        TF.cross_entropy(mt(torch.tensor(x)), torch.tensor(y)).backward()
        oa.step()
        ot.step()
    for pa, pt in zip(ma.parameters(), mt.parameters()):
        close(pa, pt)


@pytest.mark.parametrize("name, kw", OPTIMIZERS)
def test_optimizer_state_dict_layout_matches_torch(name, kw):
    """Same state keys per parameter, same parameter numbering, and every amber
    param-group key is one PyTorch has, with the same value."""
    ma, mt = _mlp_pair()
    oa = getattr(am.optim, name)(ma.parameters(), **kw)
    ot = getattr(torch.optim, name)(mt.parameters(), **kw)
    for o in (oa, ot):
        for p in (ma if o is oa else mt).parameters():
            p.grad = (am.ones_like(p) if o is oa else torch.ones_like(p))
        o.step()
    sa, st = oa.state_dict(), ot.state_dict()
    assert sorted(sa["state"]) == sorted(st["state"])
    for i in st["state"]:
        assert sorted(sa["state"][i]) == sorted(st["state"][i])
        for k, v in st["state"][i].items():
            close(am.tensor(np.asarray(sa["state"][i][k], dtype=np.float32)), v)
    for ga, gt in zip(sa["param_groups"], st["param_groups"]):
        assert set(ga) <= set(gt)
        assert all(ga[k] == gt[k] for k in ga), (ga, gt)


def test_default_initialisation_statistics_match_torch():
    """Same init distributions: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases."""
    am.manual_seed(0)
    torch.manual_seed(0)
    for ma, mt, fan_in in [(nn.Linear(300, 200), torch.nn.Linear(300, 200), 300),
                           (nn.Conv2d(16, 32, 3), torch.nn.Conv2d(16, 32, 3), 16 * 9)]:
        bound = 1 / np.sqrt(fan_in)
        for (k, pa), (_, pt) in zip(ma.named_parameters(), mt.named_parameters()):
            a, t = pa.detach().numpy(), pt.detach().numpy()
            assert a.shape == t.shape, k
            assert np.abs(a).max() <= bound and np.abs(t).max() <= bound, k
            tol = 0.05 if a.size > 1000 else 0.35
            assert abs(a.std() - bound / np.sqrt(3)) < tol * bound, k
            assert abs(t.std() - bound / np.sqrt(3)) < tol * bound, k


# ----------------------------------------------------------------------------- shape variation


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3), cin=st.integers(1, 4), cout=st.integers(1, 4),
       h=st.integers(3, 8), w=st.integers(3, 8), k=st.integers(1, 3), s=st.integers(1, 2),
       p=st.integers(0, 2), d=st.integers(1, 2))
def test_conv2d_shapes_property(n, cin, cout, h, w, k, s, p, d):
    if d * (k - 1) + 1 > min(h, w) + 2 * p:
        return
    check_module(nn.Conv2d(cin, cout, k, s, p, d), torch.nn.Conv2d(cin, cout, k, s, p, d),
                 rand(n, cin, h, w))


@settings(max_examples=20, deadline=None)
@given(h=st.integers(2, 9), w=st.integers(2, 9), k=st.integers(1, 3), s=st.integers(1, 3),
       ceil=st.booleans(), pad=st.booleans(), include=st.booleans())
def test_pooling_shapes_property(h, w, k, s, ceil, pad, include):
    if k > min(h, w):
        return
    p = k // 2 if pad else 0
    x = rand(2, 2, h, w)
    check_fn(lambda t: F.max_pool2d(t, k, s, p, ceil_mode=ceil),
             lambda t: TF.max_pool2d(t, k, s, p, ceil_mode=ceil), x)
    check_fn(lambda t: F.avg_pool2d(t, k, s, p, ceil_mode=ceil, count_include_pad=include),
             lambda t: TF.avg_pool2d(t, k, s, p, ceil_mode=ceil, count_include_pad=include), x)


@settings(max_examples=20, deadline=None)
@given(batch=st.lists(st.integers(1, 4), min_size=0, max_size=2), fin=st.integers(1, 6),
       fout=st.integers(1, 6))
def test_linear_and_layer_norm_shapes_property(batch, fin, fout):
    x = rand(*batch, fin)
    check_module(nn.Linear(fin, fout), torch.nn.Linear(fin, fout), x)
    check_module(nn.LayerNorm(fin), torch.nn.LayerNorm(fin), x)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm(norm_type):
    ma, mt = _mlp_pair()
    x, y = rand(10, 6), np.random.default_rng(0).integers(0, 3, 10)
    (F.cross_entropy(ma(am.tensor(x)), am.tensor(y)) * 50.0).backward()
    (TF.cross_entropy(mt(torch.tensor(x)), torch.tensor(y)) * 50.0).backward()
    na = nn.utils.clip_grad_norm_(ma.parameters(), 0.5, norm_type)
    nt = torch.nn.utils.clip_grad_norm_(mt.parameters(), 0.5, norm_type)
    close(na, nt)
    for pa, pt in zip(ma.parameters(), mt.parameters()):
        close(pa.grad, pt.grad)


def test_dropout_semantics_match():
    x = np.abs(rand(200, 50)) + 0.5
    for p in (0.2, 0.7):
        ya = nn.Dropout(p)(am.tensor(x)).numpy()
        yt = torch.nn.Dropout(p)(torch.tensor(x)).numpy()
        for y in (ya, yt):
            kept = y != 0
            assert abs(1 - kept.mean() - p) < 0.02
            np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-6)
    close(nn.Dropout(0.5).eval()(am.tensor(x)), torch.nn.Dropout(0.5).eval()(torch.tensor(x)))


def test_container_state_dict_names():
    class A(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(3, 3), nn.LayerNorm(3)])
            self.heads = nn.ModuleDict({"cls": nn.Linear(3, 2), "reg": nn.Linear(3, 1)})
            self.bce = nn.BCEWithLogitsLoss(pos_weight=am.ones(2))

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return self.heads["cls"](x), self.heads["reg"](x)

    class B(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(3, 3), torch.nn.LayerNorm(3)])
            self.heads = torch.nn.ModuleDict({"cls": torch.nn.Linear(3, 2),
                                              "reg": torch.nn.Linear(3, 1)})
            self.bce = torch.nn.BCEWithLogitsLoss(pos_weight=torch.ones(2))

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return self.heads["cls"](x), self.heads["reg"](x)

    a, b = A(), B()
    assert list(a.state_dict()) == list(b.state_dict())
    a.load_state_dict({k: v.detach().numpy() for k, v in b.state_dict().items()})
    x = rand(4, 3)
    for ya, yb in zip(a(am.tensor(x)), b(torch.tensor(x))):
        close(ya, yb)
