"""amber.optim against hand-written NumPy implementations of the update rules."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.nn as nn
from amber.errors import AmberError, DTypeError

SHAPES = [(3, 4), (4,)]
STEPS = 5


def grads_at(step: int) -> list[np.ndarray]:
    r = np.random.default_rng(100 + step)
    return [r.standard_normal(s) for s in SHAPES]


def initial() -> list[np.ndarray]:
    r = np.random.default_rng(0)
    return [r.standard_normal(s) for s in SHAPES]


def run_amber(cls, **kw) -> list[np.ndarray]:
    params = [nn.Parameter(am.tensor(a)) for a in initial()]
    opt = cls(params, **kw)
    for step in range(STEPS):
        opt.zero_grad()
        for p, g in zip(params, grads_at(step)):
            p.grad = am.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in params]


def sgd_ref(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
            maximize=False):
    params = initial()
    bufs = [None] * len(params)
    for step in range(STEPS):
        for i, g in enumerate(grads_at(step)):
            g = -g if maximize else g
            g = g + weight_decay * params[i]
            if momentum:
                bufs[i] = g.copy() if bufs[i] is None else \
                    momentum * bufs[i] + (1 - dampening) * g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            params[i] = params[i] - lr * g
    return params


def adam_ref(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
             decoupled=False, maximize=False):
    b1, b2 = betas
    params = initial()
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    vmax = [np.zeros_like(p) for p in params]
    for step in range(1, STEPS + 1):
        for i, g in enumerate(grads_at(step - 1)):
            g = -g if maximize else g
            if decoupled:
                params[i] = params[i] * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * params[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            mhat = m[i] / (1 - b1 ** step)
            vv = v[i]
            if amsgrad:
                vmax[i] = np.maximum(vmax[i], v[i])
                vv = vmax[i]
            vhat = vv / (1 - b2 ** step)
            params[i] = params[i] - lr * mhat / (np.sqrt(vhat) + eps)
    return params


def assert_params(got, want):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kw", [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, dampening=0.5),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.5, weight_decay=0.1),
    dict(lr=0.05, maximize=True, weight_decay=0.1),
])
def test_sgd(kw):
    assert_params(run_amber(am.optim.SGD, **kw), sgd_ref(**kw))


@pytest.mark.parametrize("kw", [
    dict(lr=0.01),
    dict(lr=0.01, betas=(0.5, 0.9), eps=1e-4),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.01, maximize=True),
])
def test_adam(kw):
    assert_params(run_amber(am.optim.Adam, **kw), adam_ref(**kw))


@pytest.mark.parametrize("kw", [dict(lr=0.01), dict(lr=0.01, weight_decay=0.3, amsgrad=True)])
def test_adamw(kw):
    ref_kw = dict(kw)
    ref_kw.setdefault("weight_decay", 1e-2)
    assert_params(run_amber(am.optim.AdamW, **kw), adam_ref(decoupled=True, **ref_kw))


def test_parameters_without_grad_are_skipped_and_zero_grad():
    a, b = nn.Parameter(am.ones(2)), nn.Parameter(am.ones(2))
    opt = am.optim.Adam([a, b], lr=0.1)
    a.grad = am.ones(2)
    opt.step()
    assert np.all(b.detach().numpy() == 1) and np.all(a.detach().numpy() < 1)
    assert b not in opt.state
    opt.zero_grad(set_to_none=False)
    assert np.all(a.grad.numpy() == 0)
    opt.zero_grad()
    assert a.grad is None


def test_param_groups_have_their_own_hyperparameters():
    a, b = nn.Parameter(am.ones(1)), nn.Parameter(am.ones(1))
    opt = am.optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1, momentum=0.0)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 1.0
    a.grad, b.grad = am.ones(1), am.ones(1)
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), [0.9], rtol=1e-6)
    np.testing.assert_allclose(b.detach().numpy(), [0.0], atol=1e-7)
    opt.param_groups[0]["lr"] = 0.5
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), [0.4], rtol=1e-6)


def test_state_dict_round_trip_continues_identically():
    def make():
        ps = [nn.Parameter(am.tensor(x)) for x in initial()]
        return ps, am.optim.Adam(ps, lr=0.01, amsgrad=True)

    ps1, o1 = make()
    for step in range(2):
        for p, g in zip(ps1, grads_at(step)):
            p.grad = am.tensor(g)
        o1.step()
    sd = o1.state_dict()
    assert sd["param_groups"][0]["params"] == [0, 1]
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    ps2, o2 = make()
    with am.no_grad():
        for p2, p1 in zip(ps2, ps1):
            p2.copy_(p1.detach())
    o2.load_state_dict({"state": {i: {k: (v.numpy() if isinstance(v, am.Tensor) else v)
                                      for k, v in s.items()} for i, s in sd["state"].items()},
                        "param_groups": sd["param_groups"]})
    for step in range(2, 4):
        for o, ps in ((o1, ps1), (o2, ps2)):
            for p, g in zip(ps, grads_at(step)):
                p.grad = am.tensor(g)
            o.step()
    for p1, p2 in zip(ps1, ps2):
        np.testing.assert_array_equal(p1.detach().numpy(), p2.detach().numpy())


def test_load_state_dict_errors():
    p = nn.Parameter(am.ones(2))
    opt = am.optim.SGD([p], lr=0.1, momentum=0.9)
    with pytest.raises(AmberError, match="parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(AmberError, match="has 2 parameters"):
        opt.load_state_dict({"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]})
    with pytest.raises(AmberError, match="momentum_buffer"):
        opt.load_state_dict({"state": {0: {"momentum_buffer": np.zeros(3)}},
                             "param_groups": [{"lr": 0.1, "params": [0]}]})


def test_closure_and_updates_do_not_record_history():
    p = nn.Parameter(am.tensor([2.0]))
    opt = am.optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 4.0
    np.testing.assert_allclose(p.detach().numpy(), [1.0])
    assert p.is_leaf and p.requires_grad


def test_constructor_errors():
    p = nn.Parameter(am.ones(1))
    with pytest.raises(AmberError, match="learning rate"):
        am.optim.SGD([p], lr=-1.0)
    with pytest.raises(AmberError, match="Nesterov"):
        am.optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(AmberError, match="beta"):
        am.optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(AmberError, match="empty parameter list"):
        am.optim.Adam([])
    with pytest.raises(AmberError, match="single Tensor"):
        am.optim.Adam(p)
    with pytest.raises(AmberError, match="more than one parameter group"):
        am.optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(DTypeError):
        am.optim.SGD([am.tensor([1, 2])], lr=0.1)
    assert "lr: 0.1" in repr(am.optim.SGD([p], lr=0.1))


def test_float32_parameters_stay_float32():
    lin = nn.Linear(3, 2)
    opt = am.optim.AdamW(lin.parameters(), lr=0.1)
    lin(am.randn(4, 3)).sum().backward()
    opt.step()
    assert all(p.dtype is am.float32 for p in lin.parameters())
    assert all(v.dtype is am.float32 for s in opt.state.values()
               for v in s.values() if isinstance(v, am.Tensor))
