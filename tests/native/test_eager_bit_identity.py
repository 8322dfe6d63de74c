"""One kernel library: eager execution runs libamber's kernels, so an exported model run
by the native runtime gives the same bits as the eager run it was captured from, forward
and backward (on one machine). With the NumPy reference kernels in eager mode these
comparisons fail (rounding of exp, tanh, erf and the summation order of sums and
products differ)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am
from amber import native as N
from amber import nn
from amber.nn import functional as F
from amber.ops import ckernels
from capture.test_roundtrip import BATCHES, CASES, _eager, _make_args


def _same_bits(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert np.array_equal(g, w, equal_nan=True), f"max |diff| {np.max(np.abs(g - w))}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_bit_identical(lib: N.NativeLibrary, name: str, tmp_path: Path) -> None:
    fn, arg_specs = CASES[name]
    am.export(fn, *arg_specs).save(tmp_path / "m.amber")
    model = N.NativeModel(tmp_path / "m.amber")
    rng = np.random.default_rng(7)
    for batch in BATCHES:
        arrays = _make_args(arg_specs, batch, rng)
        _same_bits(model.run("forward", *arrays), _eager(fn, [am.tensor(a) for a in arrays]))


class _Block(nn.Module):
    """A transformer encoder layer written out: attention by matmul and softmax, GELU."""

    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: Any) -> Any:
        b, t, d = x.shape
        h = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = h[0], h[1], h[2]
        att = am.softmax(q @ k.transpose(-1, -2) * (d // self.heads) ** -0.5, -1)
        x = self.ln1(x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d)))
        return self.ln2(x + self.down(F.gelu(self.up(x))))


def _cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1),
                         nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, stride=2), nn.Tanh(),
                         nn.Flatten(), nn.Linear(8, 10))


def _train_grads(model: nn.Module, loss: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def step(x: Any, y: Any) -> Any:
        model.zero_grad()
        loss(model(x), y).backward()
        return tuple(p.grad for p in model.parameters())

    return step


STEPS = {
    "mlp": (lambda: nn.Sequential(nn.Linear(6, 32), nn.GELU(), nn.Linear(32, 5)),
            (4, 6), "class"),
    "cnn_batchnorm": (_cnn, (4, 1, 8, 8), "class"),
    "transformer_block": (_Block, (2, 5, 16), "regress"),
}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_training_step_bit_identical(lib: N.NativeLibrary, name: str, tmp_path: Path) -> None:
    am.manual_seed(3)
    make, shape, task = STEPS[name]
    model = make()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    if task == "class":
        y = rng.integers(0, 5, shape[0])
        loss = F.cross_entropy
    else:
        y = rng.standard_normal(shape).astype(np.float32)
        loss = F.mse_loss
    step = _train_grads(model, loss)
    am.export(step, am.tensor(x), am.tensor(y), weights=model).save(tmp_path / "s.amber")
    want = [g.numpy() for g in step(am.tensor(x), am.tensor(y))]
    _same_bits(N.NativeModel(tmp_path / "s.amber").run("forward", x, y), want)
    with ckernels.reference_kernels():  # the test can fail: NumPy's rounding differs
        ref = [g.numpy() for g in step(am.tensor(x), am.tensor(y))]
    assert any(not np.array_equal(r, w) for r, w in zip(ref, want))


def test_folded_constants_have_the_eager_bits(lib: N.NativeLibrary, tmp_path: Path) -> None:
    """Capture folds subexpressions of constants with the eager kernels, so a folded
    value is the one eager execution computed."""
    c = am.tensor(np.linspace(-3, 3, 64, dtype=np.float32).reshape(8, 8))

    def fn(x: Any) -> Any:
        return x @ am.erf(c) + am.tanh(c).sum(0) * am.exp(c[0])

    program = am.export(fn, am.spec("batch", 8))
    assert not {"erf", "tanh", "exp"} & {n.op for n in program.functions["forward"].nodes}
    program.save(tmp_path / "f.amber")
    x = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    _same_bits(N.NativeModel(tmp_path / "f.amber").run("forward", x), [fn(am.tensor(x)).numpy()])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_eager_loop_bit_identical(lib: N.NativeLibrary, bidirectional: bool,
                                       tmp_path: Path) -> None:
    """Eager ``nn.LSTM`` runs its time loop in one call (not a traced scan); the exported
    scan run natively gives the same bits."""
    am.manual_seed(4)
    m = nn.LSTM(5, 7, 2, bidirectional=bidirectional)
    am.export(m, am.spec("t", "b", 5), sizes={"t": (2, 6), "b": (1, 4)}).save(
        tmp_path / "lstm.amber")
    model = N.NativeModel(tmp_path / "lstm.amber")
    x = np.random.default_rng(1).standard_normal((4, 3, 5)).astype(np.float32)
    with am.no_grad():
        y, (h, c) = m(am.tensor(x))
    _same_bits(model.run("forward", x), [y.numpy(), h.numpy(), c.numpy()])
