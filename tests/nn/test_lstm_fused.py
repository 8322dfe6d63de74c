"""The eager LSTM time loop (``nn.modules.rnn_fused``): the same bits as the composed
cell's ``scan`` forward, its gradients against the composed cell's and against central
finite differences (float64), double backward, and capture keeping the plain graph."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.nn as nn
from amber.nn.modules import rnn as rnn_mod
from helpers import check_grad


def _composed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rnn_mod, "_fusable", lambda *ts: False)


CONFIGS = [  # (batch, hidden, steps, layers, bidirectional, bias, batch_first)
    (1, 5, 1, 1, False, True, False),
    (3, 7, 4, 2, True, True, False),
    (2, 3, 6, 1, False, False, True),
    (4, 9, 3, 1, True, True, True),
]


def _run(m: nn.LSTM, x: np.ndarray, hx: tuple[np.ndarray, np.ndarray] | None,
         grad: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    xt = am.tensor(x, requires_grad=grad)
    h = None if hx is None else tuple(am.tensor(v, requires_grad=grad) for v in hx)
    y, (hn, cn) = m(xt, h)
    outs = [t.detach().numpy() for t in (y, hn, cn)]
    if not grad:
        return outs, []
    rng = np.random.default_rng(5)
    loss = sum((t * am.tensor(rng.standard_normal(t.shape).astype(x.dtype))).sum()
               for t in (y, hn, cn))
    m.zero_grad()
    loss.backward()
    grads = [p.grad.numpy() for p in m.parameters()] + [xt.grad.numpy()]
    if h is not None:
        grads += [t.grad.numpy() for t in h]
    return outs, grads


def _model(cfg: tuple, dtype: np.dtype) -> tuple[nn.LSTM, np.ndarray, tuple | None]:
    n, hid, steps, layers, bi, bias, bf = cfg
    am.manual_seed(3)
    m = nn.LSTM(4, hid, layers, bias=bias, batch_first=bf, bidirectional=bi)
    if dtype == np.float64:
        m = m.double()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, steps, 4) if bf else (steps, n, 4)).astype(dtype)
    dirs = 2 if bi else 1
    hx = tuple(rng.standard_normal((layers * dirs, n, hid)).astype(dtype) for _ in range(2))
    return m, x, (hx if n != 2 else None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_forward_is_the_composed_cells_bits(cfg: tuple, dtype: np.dtype,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    m, x, hx = _model(cfg, dtype)
    fused, _ = _run(m, x, hx, grad=False)
    fused_g, _ = _run(m, x, hx, grad=True)
    _composed(monkeypatch)
    plain, _ = _run(m, x, hx, grad=False)
    for a, b in zip(fused + fused_g, plain + plain):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_gradients_match_the_composed_cell(cfg: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    m, x, hx = _model(cfg, np.float64)
    _, fused = _run(m, x, hx, grad=True)
    _composed(monkeypatch)
    _, plain = _run(m, x, hx, grad=True)
    assert len(fused) == len(plain)
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_float32_gradients_close_to_the_composed_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    m, x, hx = _model(CONFIGS[1], np.float32)
    _, fused = _run(m, x, hx, grad=True)
    _composed(monkeypatch)
    _, plain = _run(m, x, hx, grad=True)
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_layer_gradients_and_second_order_against_finite_differences(
        bidirectional: bool) -> None:
    am.manual_seed(0)
    m = nn.LSTM(3, 2, bidirectional=bidirectional).double()
    rng = np.random.default_rng(2)
    dirs = 2 if bidirectional else 1
    x = rng.standard_normal((3, 2, 3))
    h0, c0 = (rng.standard_normal((dirs, 2, 2)) for _ in range(2))

    def f(x: am.Tensor, h0: am.Tensor, c0: am.Tensor) -> am.Tensor:
        y, (hn, cn) = m(x, (h0, c0))
        return am.cat([y.reshape(-1), hn.reshape(-1), cn.reshape(-1)])

    check_grad(f, [x, h0, c0], order=2, rtol=1e-5, atol=1e-7)
    # the weights' gradients against central differences of the parameters in place
    cot = rng.standard_normal(f(am.tensor(x), am.tensor(h0), am.tensor(c0)).shape)
    m.zero_grad()
    (f(am.tensor(x), am.tensor(h0), am.tensor(c0)) * am.tensor(cot)).sum().backward()
    for name, p in m.named_parameters():
        data, got, eps = p.detach().numpy(force=True), p.grad.numpy(), 1e-6
        for idx in [(0,), (3,)] if data.ndim == 1 else [(0, 0), (5, 1), (7, 0)]:
            vals = []
            for sgn in (1, -1):
                data[idx] += sgn * eps
                vals.append(float(np.sum(f(am.tensor(x), am.tensor(h0),
                                           am.tensor(c0)).detach().numpy() * cot)))
                data[idx] -= sgn * eps
            np.testing.assert_allclose(got[idx], (vals[0] - vals[1]) / (2 * eps), rtol=1e-6,
                                       atol=1e-8, err_msg=name)


def test_cell_matches_the_composed_cell_and_finite_differences(
        monkeypatch: pytest.MonkeyPatch) -> None:
    am.manual_seed(1)
    cell = nn.LSTMCell(3, 5).double()
    rng = np.random.default_rng(3)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 5)), rng.standard_normal((2, 5))

    def f(x: am.Tensor, h: am.Tensor, c: am.Tensor) -> am.Tensor:
        hn, cn = cell(x, (h, c))
        return am.cat([hn, cn], -1)

    check_grad(f, [x, h, c], rtol=1e-6, atol=1e-8)
    fused = f(am.tensor(x), am.tensor(h), am.tensor(c)).detach().numpy()
    unbatched = cell(am.tensor(x[0]))
    _composed(monkeypatch)
    plain = f(am.tensor(x), am.tensor(h), am.tensor(c)).detach().numpy()
    np.testing.assert_array_equal(fused, plain)
    for a, b in zip(unbatched, cell(am.tensor(x[0]))):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_capture_keeps_the_plain_scan() -> None:
    m = nn.LSTM(4, 6)
    prog = am.export(m, am.spec("t", "b", 4), sizes={"t": (2, 4), "b": (1, 3)})
    assert "scan" in [n.op for n in prog.functions["forward"].nodes]
    x = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32)
    with am.no_grad():
        want = m(am.tensor(x))
    got = prog.run("forward", x)  # the NumPy reference interpreter
    np.testing.assert_allclose(np.asarray(got[0]), want[0].numpy(), rtol=1e-5, atol=1e-6)


def test_weight_gradients_without_an_input_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    """A training step's input needs no gradient: the weights' still match the composed
    cell's, and the input gets none."""
    m, x, _ = _model(CONFIGS[3], np.float64)

    def grads() -> list[np.ndarray]:
        xt = am.tensor(x)
        y, (hn, cn) = m(xt)
        m.zero_grad()
        (y.sum() + (hn * hn).sum() + cn.sum()).backward()
        assert xt.grad is None
        return [p.grad.numpy() for p in m.parameters()]

    fused = grads()
    _composed(monkeypatch)
    for a, b in zip(fused, grads(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
