"""Fused LSTM cell: the native runtime recognises an LSTM step's gate arithmetic (four
column slices of the pre-activations, sigmoid/tanh, ``c = f * c + i * g``, ``h = o *
tanh(c)``) and computes ``c`` and ``h`` in one pass, inside ``scan`` and ``while`` bodies
and outside loops. It must give the bits of the nodes it replaces (AMBER_OPEN_NO_FUSION)
at every thread count, and agree with a NumPy LSTM."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am
from amber import native as N
from amber import nn


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def reference_lstm(x: np.ndarray, p: dict[str, np.ndarray]) -> list[np.ndarray]:
    """``(output, h_n, c_n)`` of one LSTM layer in float64 (gate order i, f, g, o)."""
    w = {k: v.astype(np.float64) for k, v in p.items()}
    h = np.zeros((x.shape[1], w["weight_hh_l0"].shape[1]))
    c = np.zeros_like(h)
    ys = []
    for t in range(x.shape[0]):
        z = x[t] @ w["weight_ih_l0"].T + w["bias_ih_l0"] + h @ w["weight_hh_l0"].T + w["bias_hh_l0"]
        i, f, g, o = np.split(z, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        ys.append(h)
    return [np.stack(ys), h[None], c[None]]


def _lstm(dtype: Any, hidden: int = 24, inputs: int = 5) -> tuple[nn.Module, dict[str, Any]]:
    am.manual_seed(7)
    layer = nn.LSTM(inputs, hidden)
    layer = (layer.double() if dtype == np.float64 else layer).eval()
    return layer, {k: v.detach().numpy() for k, v in layer.named_parameters()}


def _runs(path: Path, args: list[np.ndarray], fused: tuple[int, int]) -> list[np.ndarray]:
    """The outputs with fusion, checked against the unfused nodes and thread counts."""
    model = N.NativeModel(path, threads=1)
    got = model.run("forward", *args)
    stats = model.stats()
    assert (stats.fused_groups, stats.fused_nodes) == fused
    plain = N.NativeModel(path, fuse=False, threads=1).run("forward", *args)
    for threads in (1, 2, 8):
        again = N.NativeModel(path, threads=threads).run("forward", *args)
        for a, b, p in zip(got, again, plain):
            assert a.tobytes() == b.tobytes() == p.tobytes(), threads
    return got


# the input projection for every step (a rank-3 product) with its bias add as epilogue
# (matmul + add); in the scan body the cell (the 2 adds of x_t + (h @ W + b_hh), 4
# slices, 3 sigmoids, 2 tanhs, 3 muls, 1 add)
LSTM_FUSED = (2, 2 + 15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_layer_fused_cell_matches_numpy(dtype: Any, tmp_path: Path) -> None:
    layer, params = _lstm(dtype)
    am.export(layer, am.spec("t", "b", 5, dtype=np.dtype(dtype).name),
              sizes={"t": (1, 3), "b": (1, 2)}).save(tmp_path / "lstm.amber")
    rng = np.random.default_rng(0)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for steps, batch in ((1, 1), (1, 5), (6, 1), (6, 3), (4, 17)):
        x = (rng.standard_normal((steps, batch, 5)) * 2).astype(dtype)
        got = _runs(tmp_path / "lstm.amber", [x], LSTM_FUSED)
        for g, w in zip(got, reference_lstm(x, params)):
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def test_large_cell_splits_between_threads(tmp_path: Path) -> None:
    """16 x 128 cells: enough to run on the pool (the bits stay those of one thread)."""
    layer, params = _lstm(np.float32, hidden=128, inputs=8)
    am.export(layer, am.spec("t", "b", 8), sizes={"t": (1, 2), "b": (1, 2)}).save(
        tmp_path / "lstm.amber")
    x = np.random.default_rng(1).standard_normal((3, 16, 8)).astype(np.float32)
    got = _runs(tmp_path / "lstm.amber", [x], LSTM_FUSED)
    for g, w in zip(got, reference_lstm(x, params)):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)


def _cell(pre: am.Tensor, c: am.Tensor) -> tuple[am.Tensor, am.Tensor]:
    """The cell written out by hand, operands in another order than nn.LSTM's."""
    i, f, g, o = pre.chunk(4, dim=-1)
    c = i.sigmoid() * g.tanh() + c * f.sigmoid()
    return c.tanh() * o.sigmoid(), c


def _broadcast_c(pre: am.Tensor, c: am.Tensor) -> tuple[am.Tensor, am.Tensor]:
    """c broadcast along the rows: not the cell's shape, so left to the plain nodes."""
    return _cell(pre, c[0])


def _c_read_first(pre: am.Tensor, c: am.Tensor) -> tuple[am.Tensor, am.Tensor]:
    """The new c read by a node that runs before h: left to the plain nodes."""
    i, f, g, o = pre.chunk(4, dim=-1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    twice = c + c
    return o.sigmoid() * c.tanh(), twice


# name: (function, fused (groups, nodes))
CELLS: dict[str, tuple[Callable[..., Any], tuple[int, int]]] = {
    "cell": (_cell, (1, 13)),
    "broadcast_c": (_broadcast_c, (2, 6 + 3)),  # the elementwise groups of c and of h
    "c_read_first": (_c_read_first, (2, 3 + 6)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_cell_outside_a_loop(name: str, dtype: Any, tmp_path: Path) -> None:
    fn, fused = CELLS[name]
    rng = np.random.default_rng(3)
    pre = (rng.standard_normal((3, 2, 4 * 9)) * 3).astype(dtype)
    c = rng.standard_normal((3, 2, 9)).astype(dtype)
    pre.flat[:4] = [np.nan, np.inf, -np.inf, 0.0]
    am.export(fn, am.spec(3, 2, 36, dtype=np.dtype(dtype).name),
              am.spec(3, 2, 9, dtype=np.dtype(dtype).name)).save(tmp_path / "cell.amber")
    got = _runs(tmp_path / "cell.amber", [pre, c], fused)
    eager = [t.numpy() for t in fn(am.tensor(pre), am.tensor(c))]
    for g, e in zip(got, eager):
        np.testing.assert_array_equal(g, e)


def _same_or_nans(a: np.ndarray, b: np.ndarray) -> bool:
    """The same bits, or NaN in both (docs/opset.md: all NaNs are equivalent)."""
    nan = np.isnan(a)
    return bool(np.array_equal(nan, np.isnan(b)) and a[~nan].tobytes() == b[~nan].tobytes())


@pytest.mark.parametrize("hidden", [5, 16, 37, 128])
def test_cell_tails_and_special_values(hidden: int, tmp_path: Path) -> None:
    """float32 cells of whole and partial vectors of hidden units, with NaN, infinities and
    signed zeros in every gate and in c: the fused pass gives the unfused nodes' and eager
    execution's bits (a NaN may keep either operand's payload)."""
    rng = np.random.default_rng(hidden)
    pre = (rng.standard_normal((3, 4 * hidden)) * 4).astype(np.float32)
    c = rng.standard_normal((3, hidden)).astype(np.float32)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, -100.0, 100.0], np.float32)
    for a in (pre, c):
        a.flat[rng.choice(a.size, a.size // 4, replace=False)] = rng.choice(specials, a.size // 4)
    am.export(_cell, am.spec(3, 4 * hidden), am.spec(3, hidden)).save(tmp_path / "cell.amber")
    fused = N.NativeModel(tmp_path / "cell.amber", threads=1)
    got = fused.run("forward", pre, c)
    assert (fused.stats().fused_groups, fused.stats().fused_nodes) == (1, 13)
    plain = N.NativeModel(tmp_path / "cell.amber", fuse=False, threads=1).run("forward", pre, c)
    eager = [t.numpy() for t in _cell(am.tensor(pre), am.tensor(c))]
    for g, p, e in zip(got, plain, eager):
        assert _same_or_nans(g, p) and _same_or_nans(g, e)
    assert any(np.isnan(g).any() for g in got) and any(np.isinf(g).any() for g in got)


class WhileCell(nn.Module):
    """The step written by hand in an ``am.while_loop`` (the product inside the body)."""

    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.w_ih = nn.Parameter(am.rand(inputs, 4 * hidden) - 0.5)
        self.w_hh = nn.Parameter(am.rand(hidden, 4 * hidden) - 0.5)

    def forward(self, xs: am.Tensor) -> tuple[am.Tensor, am.Tensor]:
        h0 = am.zeros(self.w_hh.shape[0], dtype=xs.dtype).broadcast_to(
            (xs.shape[1], self.w_hh.shape[0]))
        steps = xs.shape[0]

        def step(carry: tuple[am.Tensor, am.Tensor, am.Tensor]) -> tuple[Any, Any, Any]:
            t, h, c = carry
            i, f, g, o = (xs[t] @ self.w_ih + h @ self.w_hh).chunk(4, dim=1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            return t + 1, o.sigmoid() * c.tanh(), c

        _, h, c = am.while_loop(lambda carry: carry[0] < steps, step,
                                (am.tensor(np.int64(0)), h0, h0))
        return h, c


def test_cell_in_a_while_body(tmp_path: Path) -> None:
    am.manual_seed(2)
    cell = WhileCell(3, 11).eval()
    am.export(cell, am.spec("t", "b", 3), sizes={"t": (1, 3), "b": (1, 2)}).save(
        tmp_path / "while.amber")
    x = np.random.default_rng(5).standard_normal((4, 7, 3)).astype(np.float32)
    ref = am.load(tmp_path / "while.amber", backend="reference").program.run("forward", x)
    got = _runs(tmp_path / "while.amber", [x], (1, 14))  # the cell with its add
    for g, w in zip(got, ref):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def _sum_cell(pre: am.Tensor, c: am.Tensor) -> tuple[am.Tensor, am.Tensor]:
    """nn.LSTM's cell on pre-activations made by the caller."""
    i, f, g, o = pre.chunk(4, dim=-1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def _x_plus_hb(x: am.Tensor, hw: am.Tensor, b: am.Tensor, c: am.Tensor) -> Any:
    return _sum_cell(x + (hw + b), c)  # nn.LSTM's step: x_t + (h @ W + b_hh)


def _hb_plus_x(x: am.Tensor, hw: am.Tensor, b: am.Tensor, c: am.Tensor) -> Any:
    return _sum_cell((b + hw) + x, c)  # both adds' operands the other way round


def _xh_plus_b(x: am.Tensor, hw: am.Tensor, b: am.Tensor, c: am.Tensor) -> Any:
    return _sum_cell((x + hw) + b, c)  # the bias outside


def _x_plus_hw(x: am.Tensor, hw: am.Tensor, b: am.Tensor, c: am.Tensor) -> Any:
    del b
    return _sum_cell(x + hw, c)  # nn.LSTM(bias=False)'s step


def _sum_read_again(x: am.Tensor, hw: am.Tensor, b: am.Tensor, c: am.Tensor) -> Any:
    """pre read by a node outside the cell: the adds stay an elementwise group."""
    pre = x + (hw + b)
    h, c = _sum_cell(pre, c)
    return h, c * pre[..., 2:11]


# name: (function, fused (groups, nodes))
SUMS: dict[str, tuple[Callable[..., Any], tuple[int, int]]] = {
    "x_plus_hb": (_x_plus_hb, (1, 15)),
    "hb_plus_x": (_hb_plus_x, (1, 15)),
    "xh_plus_b": (_xh_plus_b, (1, 15)),
    "x_plus_hw": (_x_plus_hw, (1, 14)),
    "read_again": (_sum_read_again, (2, 2 + 13)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(SUMS))
def test_cell_takes_in_the_sum_of_its_pre_activations(name: str, dtype: Any,
                                                       tmp_path: Path) -> None:
    """pre = a + (b + c) or a + b read only by the gates' slices (a bias of one row among
    them): the adds run inside the cell, which gives the unfused nodes' and eager bits, also with
    NaN, infinities and signed zeros in every operand (a NaN may keep either payload)."""
    fn, fused = SUMS[name]
    rng = np.random.default_rng(11)
    x, hw = ((rng.standard_normal((3, 2, 36)) * 3).astype(dtype) for _ in range(2))
    b = rng.standard_normal(36).astype(dtype)
    c = rng.standard_normal((3, 2, 9)).astype(dtype)
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 100.0], dtype)
    for a in (x, hw, b, c):
        a.flat[rng.choice(a.size, a.size // 6, replace=False)] = rng.choice(specials, a.size // 6)
    dt = np.dtype(dtype).name
    am.export(fn, am.spec(3, 2, 36, dtype=dt), am.spec(3, 2, 36, dtype=dt),
              am.spec(36, dtype=dt), am.spec(3, 2, 9, dtype=dt)).save(tmp_path / "sum.amber")
    args = [x, hw, b, c]
    model = N.NativeModel(tmp_path / "sum.amber", threads=1)
    got = model.run("forward", *args)
    assert (model.stats().fused_groups, model.stats().fused_nodes) == fused
    plain = N.NativeModel(tmp_path / "sum.amber", fuse=False, threads=1).run("forward", *args)
    with np.errstate(invalid="ignore"):  # inf - inf in the eager adds
        eager = [t.numpy() for t in fn(*(am.tensor(a) for a in args))]
    for g, p, e in zip(got, plain, eager):
        assert _same_or_nans(g, p) and _same_or_nans(g, e)
    for threads in (2, 8):
        again = N.NativeModel(tmp_path / "sum.amber", threads=threads).run("forward", *args)
        assert all(_same_or_nans(a, g) for a, g in zip(again, got))
