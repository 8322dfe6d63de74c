"""amber.optim.lr_scheduler gives PyTorch's learning rates step for step (and its
momentum for OneCycleLR), and its state dicts resume the same schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import amber as am  # noqa: E402
import amber.optim.lr_scheduler as S  # noqa: E402

TS = torch.optim.lr_scheduler
pytestmark = pytest.mark.torch
STEPS = 300


def _pair(opt_name="SGD", groups=2, **kw):
    kw = kw or {"lr": 0.1, "momentum": 0.9}
    a_groups = [{"params": [am.zeros(2, requires_grad=True)], "lr": kw["lr"] * (i + 1)}
                for i in range(groups)]
    t_groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": kw["lr"] * (i + 1)}
                for i in range(groups)]
    return getattr(am.optim, opt_name)(a_groups, **kw), getattr(torch.optim, opt_name)(
        t_groups, **kw)


def _lam(e):
    return 0.95 ** e


def _mul(e):
    return 0.99


CASES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[10, 30, 30, 200], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.98),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=40, eta_min=1e-3),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(
        o, T_0=10, T_mult=2, eta_min=1e-4),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=50),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.25, total_iters=20),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lr_lambda=_lam),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lr_lambda=_mul),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=100, power=2.0),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 1.0], total_steps=STEPS + 1),
    "OneCycleLR3": lambda m, o: m.OneCycleLR(o, max_lr=0.4, total_steps=STEPS + 1,
                                             anneal_strategy="linear", three_phase=True),
    "CyclicLR": lambda m, o: m.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=0.3, step_size_up=7,
                                        step_size_down=11, mode="triangular2"),
    "CyclicLR-exp": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.3, step_size_up=9,
                                            mode="exp_range", gamma=0.995,
                                            base_momentum=[0.7, 0.75]),
    "CyclicLR-fn": lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=5,
                                           scale_fn=_lam, scale_mode="iterations",
                                           cycle_momentum=False),
    "SequentialLR": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.2, total_iters=10),
            m.CosineAnnealingLR(o, T_max=50), m.ExponentialLR(o, gamma=0.99)],
        milestones=[10, 60]),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler(
        [m.ExponentialLR(o, gamma=0.99), m.StepLR(o, step_size=13, gamma=0.5)]),
}


def _check(a_sched, t_sched, a_opt, t_opt, steps):
    for i in range(steps):
        np.testing.assert_allclose(a_sched.get_last_lr(), t_sched.get_last_lr(),
                                   rtol=1e-12, atol=1e-15, err_msg=f"step {i}")
        for ga, gt in zip(a_opt.param_groups, t_opt.param_groups):
            assert math.isclose(ga["lr"], gt["lr"], rel_tol=1e-12, abs_tol=1e-15)
            if "momentum" in gt:
                assert math.isclose(ga["momentum"], gt["momentum"], rel_tol=1e-12)
        a_opt.step()
        t_opt.step()
        a_sched.step()
        t_sched.step()


@pytest.mark.parametrize("name", sorted(CASES))
def test_schedule_matches_torch(name):
    a_opt, t_opt = _pair()
    a, t = CASES[name](S, a_opt), CASES[name](TS, t_opt)
    _check(a, t, a_opt, t_opt, STEPS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_resumes_the_schedule(name):
    a_opt, t_opt = _pair()
    a, t = CASES[name](S, a_opt), CASES[name](TS, t_opt)
    _check(a, t, a_opt, t_opt, 37)
    state, opt_state = a.state_dict(), a_opt.state_dict()
    a_opt2, _ = _pair()
    a2 = CASES[name](S, a_opt2)
    a_opt2.load_state_dict(opt_state)
    a2.load_state_dict(state)
    _check(a2, t, a_opt2, t_opt, 60)


def test_one_cycle_cycles_adam_beta1():
    a_opt, t_opt = _pair("Adam", groups=1, lr=0.01)
    a = S.OneCycleLR(a_opt, max_lr=0.1, epochs=4, steps_per_epoch=25)
    t = TS.OneCycleLR(t_opt, max_lr=0.1, epochs=4, steps_per_epoch=25)
    for _ in range(99):
        assert a_opt.param_groups[0]["betas"][0] == pytest.approx(
            t_opt.param_groups[0]["betas"][0], rel=1e-12)
        assert a.get_last_lr() == pytest.approx(t.get_last_lr(), rel=1e-12)
        a_opt.step()
        t_opt.step()
        a.step()
        t.step()


@pytest.mark.parametrize("kw", [
    {}, {"mode": "max", "threshold_mode": "abs", "threshold": 0.05},
    {"patience": 2, "cooldown": 3, "factor": 0.5, "min_lr": [0.01, 0.02]}])
def test_reduce_on_plateau_matches_torch(kw):
    a_opt, t_opt = _pair()
    a, t = S.ReduceLROnPlateau(a_opt, **kw), TS.ReduceLROnPlateau(t_opt, **kw)
    rng = np.random.default_rng(0)
    metrics = np.concatenate([np.linspace(1, 0.5, 20), 0.5 + rng.random(100) * 0.1])
    for i, m in enumerate(metrics):
        a.step(m if i % 2 else am.tensor(m))
        t.step(m)
        assert a.get_last_lr() == pytest.approx(t.get_last_lr(), rel=1e-12), i
        if i == 50:
            a2_opt, _ = _pair()
            a2 = S.ReduceLROnPlateau(a2_opt, **kw)
            a2_opt.load_state_dict(a_opt.state_dict())
            a2.load_state_dict(a.state_dict())
            a, a_opt = a2, a2_opt
    assert a.num_bad_epochs == t.num_bad_epochs and a.best == t.best


def test_closed_form_epoch_argument_matches_torch():
    a_opt, t_opt = _pair()
    a, t = S.StepLR(a_opt, step_size=3), TS.StepLR(t_opt, step_size=3)
    with pytest.warns(UserWarning):
        a.step(10)
    with pytest.warns(UserWarning):
        t.step(10)
    assert a.get_last_lr() == pytest.approx(t.get_last_lr(), rel=1e-12)


def test_warm_restarts_fractional_epochs_match_torch():
    a_opt, t_opt = _pair()
    a = S.CosineAnnealingWarmRestarts(a_opt, T_0=5, T_mult=2)
    t = TS.CosineAnnealingWarmRestarts(t_opt, T_0=5, T_mult=2)
    for e in np.arange(0, 40, 0.25):
        a.step(float(e))
        t.step(float(e))
        assert a.get_last_lr() == pytest.approx(t.get_last_lr(), rel=1e-12)
