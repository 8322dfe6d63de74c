"""amber.nn modules: registration, state_dict, modes, containers, and each layer's
forward against NumPy with parameter gradients against finite differences."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
from nn_reference import conv2d_ref, cross_entropy_ref, num_grads, randn

import amber as am
import amber.nn as nn
import amber.nn.functional as F
from amber.errors import AmberError, DTypeError, OutOfRangeError, ShapeError


def assert_close(a, b, tol=1e-9):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def check_param_grads(module: nn.Module, x: np.ndarray, tol: float = 1e-6) -> None:
    """Every parameter's gradient of sum(module(x) * cot) matches finite differences."""
    module.to(am.float64)
    names = [k for k, _ in module.named_parameters()]
    params = [p.detach().numpy().copy() for _, p in module.named_parameters()]
    y = module(am.tensor(x))
    cot = randn(*y.shape, seed=11)
    module.zero_grad()
    (y * am.tensor(cot)).sum().backward()
    got = [p.grad.numpy() for p in module.parameters()]

    def f(*ps):
        module.load_state_dict(dict(zip(names, ps)), strict=False)
        return module(am.tensor(x))

    expected = num_grads(f, params, cot)
    module.load_state_dict(dict(zip(names, params)), strict=False)
    for name, g, e in zip(names, got, expected):
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol, err_msg=name)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)
        self.scale = nn.Parameter(am.ones(4))
        self.register_buffer("steps", am.zeros(1))
        self.register_buffer("cache", am.zeros(2), persistent=False)

    def forward(self, x):
        return self.bn(self.fc(x)) * self.scale


# ----------------------------------------------------------------------------- Module


def test_registration_and_traversal():
    m = nn.Sequential(Block(), nn.ReLU(), nn.Linear(4, 2))
    assert [k for k, _ in m.named_parameters()] == [
        "0.scale", "0.fc.weight", "0.fc.bias", "0.bn.weight", "0.bn.bias", "2.weight", "2.bias"]
    assert [k for k, _ in m.named_buffers()] == [
        "0.steps", "0.cache", "0.bn.running_mean", "0.bn.running_var",
        "0.bn.num_batches_tracked"]
    assert list(m.state_dict()) == [
        "0.scale", "0.steps", "0.fc.weight", "0.fc.bias", "0.bn.weight", "0.bn.bias",
        "0.bn.running_mean", "0.bn.running_var", "0.bn.num_batches_tracked", "2.weight",
        "2.bias"]
    assert [type(c).__name__ for c in m.children()] == ["Block", "ReLU", "Linear"]
    assert [n for n, _ in m.named_modules()] == ["", "0", "0.fc", "0.bn", "1", "2"]
    assert len(list(m.parameters())) == 7
    assert all(p.requires_grad for p in m.parameters())
    assert m.get_submodule("0.fc") is m[0].fc
    assert m.get_parameter("0.fc.weight") is m[0].fc.weight


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    m = nn.Sequential(lin, lin)
    assert len(list(m.parameters())) == 2


def test_attribute_rules():
    m = nn.Linear(2, 3)
    with pytest.raises(AmberError, match="parameter 'weight'"):
        m.weight = am.zeros(3, 2)
    m.weight = nn.Parameter(am.zeros(3, 2))
    assert np.all(m.weight.detach().numpy() == 0)
    m.extra = 5
    assert m.extra == 5 and "extra" not in dict(m.named_parameters())
    del m.bias
    assert "bias" not in dict(m.named_parameters())
    with pytest.raises(AttributeError, match="nothing"):
        _ = m.nothing

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(am.zeros(1))

    with pytest.raises(AmberError, match="super"):
        Early()


def test_parameter_is_a_leaf_tensor():
    p = nn.Parameter(am.tensor([1.0, 2.0]))
    assert isinstance(p, am.Tensor) and p.requires_grad and p.is_leaf
    assert "Parameter containing" in repr(p)
    q = nn.Parameter(am.zeros(2), requires_grad=False)
    assert not q.requires_grad
    with pytest.raises(DTypeError):
        nn.Parameter(am.tensor([1, 2]))
    assert isinstance(p * 2, am.Tensor) and not isinstance(p * 2, nn.Parameter)


def test_train_eval_apply_zero_grad_and_repr():
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    assert m.training and m[1].training
    m.eval()
    assert not m.training and not m[1].training
    m.train()
    assert m[1].training
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "Dropout", "Sequential"]
    m(am.randn(3, 2)).sum().backward()
    assert m[0].weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert np.all(m[0].weight.grad.numpy() == 0)
    m.zero_grad()
    assert m[0].weight.grad is None
    assert repr(m) == ("Sequential(\n  (0): Linear(in_features=2, out_features=2, bias=True)\n"
                       "  (1): Dropout(p=0.5, inplace=False)\n)")


def test_to_dtype():
    m = Block().to(am.float64)
    assert all(p.dtype is am.float64 for p in m.parameters())
    assert m.bn.num_batches_tracked.dtype is am.int64
    assert m(am.randn(5, 3, dtype=am.float64)).dtype is am.float64
    m.float()
    assert m.fc.weight.dtype is am.float32
    with pytest.raises(DTypeError):
        m.to(am.int32)


# ----------------------------------------------------------------------------- state_dict


def test_state_dict_round_trip_numpy_and_tensors():
    am.manual_seed(0)
    a = nn.Sequential(Block(), nn.Linear(4, 2))
    am.manual_seed(1)
    b = nn.Sequential(Block(), nn.Linear(4, 2))
    b.load_state_dict({k: v.numpy() for k, v in a.state_dict().items()})
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert_close(va, vb)
        assert va.dtype is vb.dtype, k
    b.load_state_dict(a.state_dict())
    x = am.randn(5, 3)
    a.eval()
    b.eval()
    assert_close(a(x), b(x))


def test_state_dict_is_a_snapshot_and_detached():
    m = nn.Linear(2, 2)
    sd = m.state_dict()
    assert not sd["weight"].requires_grad
    before = sd["weight"].numpy().copy()
    opt = am.optim.SGD(m.parameters(), lr=1.0)
    m(am.ones(1, 2)).sum().backward()
    opt.step()
    assert_close(sd["weight"], before)
    assert not np.allclose(m.weight.detach().numpy(), before)


def test_load_state_dict_errors():
    m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    missing = dict(sd)
    del missing["1.bias"]
    with pytest.raises(AmberError, match=r"missing key\(s\): '1.bias'"):
        m.load_state_dict(missing)
    extra = dict(sd, **{"2.weight": np.zeros(1)})
    with pytest.raises(AmberError, match=r"unexpected key\(s\): '2.weight'"):
        m.load_state_dict(extra)
    bad = dict(sd, **{"0.weight": np.zeros((4, 5))})
    with pytest.raises(ShapeError, match=r"0.weight: the checkpoint has shape \(4, 5\), the "
                                         r"module has \(4, 3\)"):
        m.load_state_dict(bad)
    result = m.load_state_dict(extra, strict=False)
    assert result.unexpected_keys == ["2.weight"] and result.missing_keys == []
    result = m.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["1.bias"]


def test_load_state_dict_converts_dtype():
    m = nn.Linear(2, 2)
    m.load_state_dict({"weight": np.eye(2, dtype=np.float64), "bias": [1, 2]})
    assert m.weight.dtype is am.float32
    assert_close(m.bias, [1.0, 2.0])


# ----------------------------------------------------------------------------- containers


def test_sequential_container():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    s = nn.Sequential(*layers)
    assert len(s) == 3 and list(s) == layers and s[-1] is layers[2]
    assert isinstance(s[1:], nn.Sequential) and list(s[1:]) == layers[1:]
    assert list(s[1:].state_dict()) == ["2.weight", "2.bias"]  # keys kept, as in PyTorch
    s.append(nn.Sigmoid())
    assert [n for n, _ in s.named_children()] == ["0", "1", "2", "3"]
    del s[1]
    assert [n for n, _ in s.named_children()] == ["0", "1", "2"]
    with pytest.raises(OutOfRangeError, match="Sequential"):
        s[5]
    named = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.Tanh()))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    x = am.randn(4, 2)
    assert_close(named(x), am.tanh(named.fc(x)))


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(ml) == 3 and list(ml.state_dict())[0] == "0.weight"
    ml.append(nn.Linear(2, 1))
    assert len(list(ml.parameters())) == 8
    ml.insert(0, nn.Identity())
    assert isinstance(ml[0], nn.Identity) and isinstance(ml[4], nn.Linear)
    md = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.ReLU()})
    assert "a" in md and list(md.keys()) == ["a", "b"]
    assert list(md.state_dict()) == ["a.weight", "a.bias"]
    with pytest.raises(AmberError, match="container"):
        ml(am.zeros(1))


# ----------------------------------------------------------------------------- layers


def test_linear_layer():
    am.manual_seed(0)
    m = nn.Linear(20, 7)
    bound = 1 / math.sqrt(20)
    assert m.weight.shape == (7, 20) and m.bias.shape == (7,)
    assert np.abs(m.weight.detach().numpy()).max() <= bound
    assert np.abs(m.bias.detach().numpy()).max() <= bound
    x = randn(3, 20)
    assert_close(m(am.tensor(x, dtype=am.float32)).detach().numpy(),
                 x @ m.weight.detach().numpy().T + m.bias.detach().numpy(), 1e-5)
    check_param_grads(nn.Linear(3, 2), randn(4, 3))
    check_param_grads(nn.Linear(3, 2, bias=False), randn(2, 5, 3))
    am.manual_seed(0)
    again = nn.Linear(20, 7)
    assert_close(again.weight, m.weight)


def test_conv2d_layer():
    m = nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, groups=2)
    assert m.weight.shape == (6, 2, 3, 2)
    m.to(am.float64)
    x = randn(2, 4, 6, 5)
    ref = conv2d_ref(x, m.weight.detach().numpy(), m.bias.detach().numpy(), (2, 1),
                     (1, 1, 1, 1), groups=2)
    assert_close(m(am.tensor(x)), ref)
    check_param_grads(nn.Conv2d(2, 3, 2, padding="same", bias=True), randn(1, 2, 4, 3))
    check_param_grads(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), randn(1, 2, 4, 4))
    with pytest.raises(ShapeError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    assert repr(m) == ("Conv2d(4, 6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), "
                       "groups=2)")


def test_layer_norm_layer():
    m = nn.LayerNorm((2, 3)).to(am.float64)
    assert m.weight.shape == (2, 3) and np.all(m.weight.detach().numpy() == 1)
    x = randn(4, 2, 3)
    mu, var = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    assert_close(m(am.tensor(x)), (x - mu) / np.sqrt(var + 1e-5))
    m.load_state_dict({"weight": randn(2, 3, seed=1), "bias": randn(2, 3, seed=2)})
    check_param_grads(m, x)


def test_batchnorm_layers_train_and_eval():
    m = nn.BatchNorm2d(3, momentum=0.5).to(am.float64)
    x = randn(4, 3, 2, 2) * 3 + 2
    y = m(am.tensor(x))
    mu, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
    assert_close(y, (x - mu[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5))
    assert_close(m.running_mean, 0.5 * mu)
    assert_close(m.running_var, 0.5 + 0.5 * var * 16 / 15)
    assert m.num_batches_tracked.item() == 1
    m.eval()
    y2 = m(am.tensor(x))
    assert_close(y2, (x - 0.5 * mu[None, :, None, None])
                 / np.sqrt(m.running_var.numpy()[None, :, None, None] + 1e-5))
    assert m.num_batches_tracked.item() == 1
    cma = nn.BatchNorm1d(2, momentum=None).to(am.float64)
    a, b = randn(5, 2, seed=1), randn(5, 2, seed=2)
    cma(am.tensor(a))
    cma(am.tensor(b))
    assert_close(cma.running_mean, (a.mean(0) + b.mean(0)) / 2)
    with pytest.raises(ShapeError, match="BatchNorm2d: expected 4-D"):
        m(am.tensor(randn(2, 3)))
    bn = nn.BatchNorm1d(3)
    bn.load_state_dict({"weight": randn(3, seed=3), "bias": randn(3, seed=4),
                        "running_mean": np.zeros(3), "running_var": np.ones(3),
                        "num_batches_tracked": np.array(0)})
    check_param_grads(bn, randn(6, 3, 2))
    bn2 = nn.BatchNorm2d(2)
    bn2.load_state_dict({"weight": randn(2, seed=5), "bias": randn(2, seed=6)}, strict=False)
    check_param_grads(bn2, randn(3, 2, 2, 2))


def test_embedding_layer():
    am.manual_seed(0)
    e = nn.Embedding(10, 4, padding_idx=0)
    assert e.weight.shape == (10, 4) and np.all(e.weight.detach().numpy()[0] == 0)
    idx = am.tensor([[1, 0], [9, 1]])
    assert_close(e(idx), e.weight.detach().numpy()[idx.detach().numpy()])
    e(idx).sum().backward()
    assert np.all(e.weight.grad.numpy()[0] == 0)
    assert_close(e.weight.grad.numpy()[1], np.full(4, 2.0))
    with pytest.raises(OutOfRangeError):
        e(am.tensor([10]))
    pre = nn.Embedding.from_pretrained(am.tensor(randn(3, 2)))
    assert not pre.weight.requires_grad


def test_dropout_layer_modes():
    d = nn.Dropout(0.4, generator=am.Generator(0))
    x = am.ones(100, 100)
    y = d(x).numpy()
    assert abs((y == 0).mean() - 0.4) < 0.03
    d.eval()
    assert d(x) is x
    with pytest.raises(AmberError, match="between 0 and 1"):
        nn.Dropout(-0.1)


def test_shape_and_pool_modules():
    x = randn(2, 3, 4, 4)
    assert nn.Flatten()(am.tensor(x)).shape == (2, 48)
    assert nn.Flatten(0, 1)(am.tensor(x)).shape == (6, 4, 4)
    assert nn.Unflatten(1, (3, 16))(nn.Flatten()(am.tensor(x))).shape == (2, 3, 16)
    assert nn.Identity(5, k=2)(x) is x
    assert_close(nn.MaxPool2d(2)(am.tensor(x)), x.reshape(2, 3, 2, 2, 2, 2).max((3, 5)))
    assert_close(nn.AvgPool2d(2)(am.tensor(x)), x.reshape(2, 3, 2, 2, 2, 2).mean((3, 5)))


@pytest.mark.parametrize("mod, ref", [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.Tanh(), np.tanh),
    (nn.SiLU(), lambda x: x / (1 + np.exp(-x))),
    (nn.GELU(), lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    (nn.LeakyReLU(0.3), lambda x: np.where(x > 0, x, 0.3 * x)),
    (nn.ELU(), lambda x: np.where(x > 0, x, np.expm1(x))),
    (nn.Softplus(), lambda x: np.log1p(np.exp(x))),
    (nn.Softmax(dim=-1), lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    (nn.LogSoftmax(dim=1), lambda x: x - np.log(np.exp(x).sum(1, keepdims=True))),
])
def test_activation_modules(mod, ref):
    x = randn(3, 4) + 0.01
    assert_close(mod(am.tensor(x)), ref(x), 1e-8)


def test_loss_modules():
    x, t = randn(5, 3), np.array([0, 2, 1, 1, 0])
    w = np.array([1.0, 0.5, 2.0])
    assert_close(nn.CrossEntropyLoss()(am.tensor(x), am.tensor(t)), cross_entropy_ref(x, t))
    ce = nn.CrossEntropyLoss(weight=am.tensor(w), reduction="sum", label_smoothing=0.1)
    assert_close(ce(am.tensor(x), am.tensor(t)),
                 cross_entropy_ref(x, t, w, reduction="sum", label_smoothing=0.1))
    assert list(ce.state_dict()) == ["weight"]
    lp = x - np.log(np.exp(x).sum(1, keepdims=True))
    assert_close(nn.NLLLoss(ignore_index=0)(am.tensor(lp), am.tensor(t)),
                 -lp[[1, 2, 3], [2, 1, 1]].mean())
    y = randn(5, 3, seed=1)
    assert_close(nn.MSELoss(reduction="none")(am.tensor(x), am.tensor(y)), (x - y) ** 2)
    assert_close(nn.L1Loss()(am.tensor(x), am.tensor(y)), np.abs(x - y).mean())
    b = (y > 0).astype(np.float64)
    assert_close(nn.BCEWithLogitsLoss()(am.tensor(x), am.tensor(b)),
                 F.binary_cross_entropy_with_logits(am.tensor(x), am.tensor(b)))
    assert repr(nn.MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"


def test_small_model_trains():
    am.manual_seed(0)
    x = am.tensor(randn(64, 2), dtype=am.float32)
    y = am.tensor((x.numpy()[:, 0] * x.numpy()[:, 1] > 0).astype(np.int64))
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = am.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = (am.argmax(model(x), 1) == y).float().mean().item()
    assert acc > 0.95


def test_clip_grad_norm_and_value():
    a, b = nn.Parameter(am.tensor([3.0, 0.0])), nn.Parameter(am.tensor([4.0]))
    a.grad, b.grad = am.tensor([3.0, 0.0]), am.tensor([4.0])
    total = nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
    assert abs(total.item() - 5.0) < 1e-6
    assert_close(a.grad, [0.6, 0.0], 1e-6)
    assert_close(b.grad, [0.8], 1e-6)
    inf = nn.utils.clip_grad_norm_([a, b], max_norm=10.0, norm_type=math.inf)
    assert abs(inf.item() - 0.8) < 1e-6
    assert_close(b.grad, [0.8], 1e-6)
    nn.utils.clip_grad_value_([a, b], 0.5)
    assert_close(a.grad, [0.5, 0.0], 1e-6)
    assert_close(b.grad, [0.5], 1e-6)
    b.grad = am.tensor([float("nan")])
    with pytest.raises(AmberError, match="non-finite"):
        nn.utils.clip_grad_norm_([a, b], 1.0, error_if_nonfinite=True)


def test_training_mode_randomness_and_running_stats_refuse_capture():
    from amber.capture import export, spec
    from amber.errors import CaptureError

    drop = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    with pytest.raises(CaptureError, match=r"dropout in training mode.*model\.eval"):
        export(drop, spec("batch", 4))
    bn = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    with pytest.raises(CaptureError, match=r"running statistics.*model\.eval"):
        export(bn, spec("batch", 4))
    export(drop.eval(), spec("batch", 4))
    export(bn.eval(), spec("batch", 4))


def test_init_functions():
    w = am.zeros(200, 100)
    nn.init.kaiming_uniform_(w, a=0.0, nonlinearity="relu", generator=am.Generator(0))
    bound = math.sqrt(2.0) * math.sqrt(3.0 / 100)
    assert np.abs(w.numpy()).max() <= bound and abs(w.numpy().std() - bound / math.sqrt(3)) < 0.01
    nn.init.xavier_uniform_(w)
    a = math.sqrt(6.0 / 300)
    assert np.abs(w.numpy()).max() <= a
    nn.init.kaiming_normal_(w, mode="fan_out")
    assert abs(w.numpy().std() - math.sqrt(2.0 / 200)) < 0.005
    nn.init.xavier_normal_(w, gain=2.0)
    assert abs(w.numpy().std() - 2.0 * math.sqrt(2.0 / 300)) < 0.01
    nn.init.normal_(w, 3.0, 0.5)
    assert abs(w.numpy().mean() - 3.0) < 0.01
    nn.init.constant_(w, 0.25)
    assert np.all(w.numpy() == 0.25)
    nn.init.zeros_(w)
    nn.init.ones_(w)
    assert np.all(w.numpy() == 1) and w.dtype is am.float32
    assert nn.init.calculate_gain("tanh") == 5.0 / 3
    with pytest.raises(ShapeError, match="fan in"):
        nn.init.kaiming_uniform_(am.zeros(3))
    with pytest.raises(AmberError, match="nonlinearity"):
        nn.init.calculate_gain("swish")
