"""The eager cross entropy on arrays (``nn.functional._ce_eager``): the same loss and
gradient bits as the composed ops, gradients against central finite differences (float64),
double backward, the cases it leaves to the composed ops, and capture keeping the plain
graph."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.nn.functional as F
from amber.nn import functional as nnF
from helpers import check_grad


def _composed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nnF, "_ce_eager_applies", lambda *a: False)


def _data(n: int, c: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n * 31 + c)
    return (rng.standard_normal((n, c)) * 3).astype(dtype), rng.integers(0, c, n)


def _loss_and_grad(x: np.ndarray, t: np.ndarray, **kw: object) -> tuple[np.ndarray, ...]:
    xt = am.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, am.tensor(t), **kw)
    (loss * 1.7).backward()
    return loss.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (64, 10), (7, 300)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_and_gradient_are_the_composed_bits(
        shape: tuple[int, int], dtype: type, reduction: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    x, t = _data(*shape, dtype)
    calls = []
    real = nnF._ce_eager
    monkeypatch.setattr(nnF, "_ce_eager",
                        lambda *a: calls.append(1) or real(*a))  # type: ignore[func-returns-value]
    fused = _loss_and_grad(x, t, reduction=reduction)
    assert calls, "the fused path did not run"
    _composed(monkeypatch)
    plain = _loss_and_grad(x, t, reduction=reduction)
    assert fused[0].dtype == fused[1].dtype == dtype
    np.testing.assert_array_equal(fused[0], plain[0])
    np.testing.assert_array_equal(fused[1], plain[1])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradients_against_finite_differences(reduction: str) -> None:
    x, t = _data(4, 5, np.float64)
    check_grad(lambda x: F.cross_entropy(x, am.tensor(t), reduction=reduction), [x], order=2)


def test_left_to_the_composed_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    x, t = _data(6, 4, np.float64)
    t[2] = -100
    calls = []
    monkeypatch.setattr(nnF, "_ce_eager", lambda *a: calls.append(1))
    for kw in ({}, {"reduction": "none"}, {"label_smoothing": 0.1},
               {"weight": am.tensor(np.ones(4))}):
        F.cross_entropy(am.tensor(x), am.tensor(t), **kw)  # an ignored target
    t[2] = 1
    F.cross_entropy(am.tensor(x[None].transpose(1, 2, 0)), am.tensor(t[:, None]))  # (N, C, d)
    F.cross_entropy(am.tensor(x[0]), am.tensor(t[0]))  # (C,)
    F.cross_entropy(am.tensor(x), am.tensor(np.eye(4)[t]))  # probabilities
    assert not calls


def test_out_of_range_target_is_refused() -> None:
    x, t = _data(3, 4, np.float32)
    t[1] = 4
    with pytest.raises(am.AmberError, match="out of bounds for 4 classes"):
        F.cross_entropy(am.tensor(x), am.tensor(t))


def test_capture_keeps_the_composed_graph() -> None:
    t = np.array([1, 0, 2])
    prog = am.export(lambda x: F.cross_entropy(x, am.tensor(t)), am.spec(3, 4))
    ops = [n.op for n in prog.functions["forward"].nodes]
    assert "exp" in ops and "log" in ops
    x = _data(3, 4, np.float32)[0]
    got = np.asarray(prog.run("forward", x)[0])
    np.testing.assert_allclose(got, F.cross_entropy(am.tensor(x), am.tensor(t)).numpy(),
                               rtol=1e-6)
