"""Batch norm in training mode with running statistics (eager only: it updates the
statistics in place) runs in a few array passes with one tape entry; it must agree with
the composition from primitives that every other mode of batch norm uses."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.nn.functional as F
from helpers import assert_close, check_grad

SHAPES = [(6, 3), (4, 3, 5), (3, 2, 4, 5)]


def _stats(c: int) -> tuple[am.Tensor, am.Tensor]:
    return am.tensor(np.linspace(-0.5, 0.5, c)), am.tensor(np.linspace(0.5, 2.0, c))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_matches_the_composition(shape: tuple, affine: bool) -> None:
    rng = np.random.default_rng(0)
    c = shape[1]
    x = rng.standard_normal(shape) * 3 + 1
    w, b = (rng.standard_normal(c), rng.standard_normal(c)) if affine else (None, None)
    g = rng.standard_normal(shape)
    outs = []
    for stats in (True, False):  # without running statistics: the composition
        ts = [am.tensor(v, requires_grad=True) for v in (x, w, b) if v is not None]
        rm, rv = _stats(c) if stats else (None, None)
        y = F.batch_norm(ts[0], rm, rv, *(ts[1:] or [None, None]), training=True,
                         momentum=0.3, eps=1e-3)
        y.backward(am.tensor(g))
        outs.append([y.detach().numpy()] + [t.grad.numpy() for t in ts])
        if stats:
            axes = (0,) + tuple(range(2, len(shape)))
            m0, v0 = _stats(c)
            n = x.size // c
            assert_close(rm.numpy(), 0.7 * m0.numpy() + 0.3 * x.mean(axis=axes), rtol=1e-12,
                         atol=1e-12, what="running_mean")
            assert_close(rv.numpy(), 0.7 * v0.numpy() + 0.3 * x.var(axis=axes) * n / (n - 1),
                         rtol=1e-12, atol=1e-12, what="running_var")
    for got, want, what in zip(outs[0], outs[1], ["y", "dx", "dw", "db"]):
        assert_close(got, want, rtol=1e-10, atol=1e-10, what=what)


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_gradients_first_and_second_order(shape: tuple) -> None:
    c = shape[1]

    def fn(x: am.Tensor, w: am.Tensor, b: am.Tensor) -> am.Tensor:
        rm, rv = _stats(c)
        return F.batch_norm(x, rm, rv, w, b, training=True, eps=1e-3)

    rng = np.random.default_rng(1)
    check_grad(fn, [rng.standard_normal(shape), rng.standard_normal(c),
                    rng.standard_normal(c)], order=2, rtol=1e-5, atol=1e-6)


def test_float32_module_and_no_grad() -> None:
    bn = am.nn.BatchNorm2d(4)
    x = am.tensor(np.random.default_rng(2).standard_normal((8, 4, 3, 3)).astype(np.float32))
    with am.no_grad():
        y = bn(x)
    assert y.dtype is am.float32 and not y.requires_grad and y.grad_fn is None
    assert int(bn.num_batches_tracked.item()) == 1
    assert bn.running_mean.dtype is am.float32 and bn.running_var.dtype is am.float32
    assert_close(y.numpy().mean(axis=(0, 2, 3)), np.zeros(4), atol=1e-6, what="mean")
