"""An LSTM over variable-length sequences, written with ``am.while_loop``: trained in
Python, exported with symbolic sequence length and batch size, and run by amber's native
C runtime with the same results as eager execution.

    python examples/control/lstm_while.py [--steps N] [--hidden H] [--out DIR] [--seed S]

The LSTM cell is composed from primitives (PyTorch's gate order i, f, g, o and its
parameter names). A batch holds sequences of different lengths, padded to a common
length ``T``; the loop runs while ``t < max(lengths)`` -- a trip count read from an input
tensor, not fixed at export -- and a sequence that has ended keeps its state
(``am.where``). A linear head reads the final hidden state. The toy task is to output
the mean of a sequence's first feature.

The script trains with ``am.optim.Adam`` (the loss must fall), then exports one file with
two entry points: ``forward`` (the trained model; weights stored in the file) and
``train_step`` (parameters in, ``(loss, parameters after one SGD step)`` out: forward,
backward through the data-dependent loop, and the update). It checks on fresh shapes
that eager execution, the reference interpreter and the native runtime agree, that the
padding does not matter, and that three ``train_step`` calls chained in C follow eager
training step by step. It prints a summary and exits with status 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import amber as am
import amber.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from example_support import (
    MismatchError,
    assert_close,
    flat,
    open_native,
    reference_run,
)

INPUT = 3
"""Features per time step."""

SGD_LR = 0.05
"""Learning rate of the exported ``train_step``."""

Params = dict[str, am.Tensor]


def lstm_cell(x: am.Tensor, h: am.Tensor, c: am.Tensor, p: Params
              ) -> tuple[am.Tensor, am.Tensor]:
    """One LSTM step: ``x`` (B, I), ``h`` and ``c`` (B, H) -> new ``(h, c)``."""
    gates = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    i, f, g, o = gates.chunk(4, dim=1)
    c_new = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c_new.tanh(), c_new


def final_state(p: Params, xs: am.Tensor, lengths: am.Tensor) -> am.Tensor:
    """The hidden state of every sequence after its last step. ``xs`` is (T, B, I)
    padded, ``lengths`` (B,) int64 with ``0 <= lengths <= T``."""
    hidden = p["weight_hh"].shape[1]
    h0 = am.zeros(hidden, dtype=xs.dtype).broadcast_to((xs.shape[1], hidden))
    steps = lengths.max()

    def more(carry: tuple[am.Tensor, am.Tensor, am.Tensor]) -> am.Tensor:
        return carry[0] < steps

    def step(carry: tuple[am.Tensor, am.Tensor, am.Tensor]
             ) -> tuple[am.Tensor, am.Tensor, am.Tensor]:
        t, h, c = carry
        h_new, c_new = lstm_cell(xs[t], h, c, p)
        live = (t < lengths).unsqueeze(1)  # sequences still running keep stepping
        return t + 1, am.where(live, h_new, h), am.where(live, c_new, c)

    _, h, _ = am.while_loop(more, step, (am.tensor(np.int64(0)), h0, h0))
    return h


def predict(p: Params, xs: am.Tensor, lengths: am.Tensor) -> am.Tensor:
    """One output per sequence, shape (B,)."""
    return (final_state(p, xs, lengths) @ p["head.weight"].T + p["head.bias"]).squeeze(1)


def loss_fn(p: Params, xs: am.Tensor, lengths: am.Tensor, targets: am.Tensor) -> am.Tensor:
    """Mean squared error of :func:`predict`."""
    d = predict(p, xs, lengths) - targets
    return (d * d).mean()


def train_step(p: Params, xs: am.Tensor, lengths: am.Tensor, targets: am.Tensor
               ) -> tuple[am.Tensor, Params]:
    """The loss and the parameters after one SGD step (learning rate ``SGD_LR``)."""
    loss, grads = am.value_and_grad(loss_fn)(p, xs, lengths, targets)
    return loss, {k: p[k] - SGD_LR * grads[k] for k in p}


class LSTMRegressor(nn.Module):
    """An LSTM layer (PyTorch's parameter names and initialisation) and a linear head."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        k = 1.0 / float(np.sqrt(hidden_size))
        self.weight_ih = nn.Parameter(am.rand(4 * hidden_size, input_size) * (2 * k) - k)
        self.weight_hh = nn.Parameter(am.rand(4 * hidden_size, hidden_size) * (2 * k) - k)
        self.bias_ih = nn.Parameter(am.rand(4 * hidden_size) * (2 * k) - k)
        self.bias_hh = nn.Parameter(am.rand(4 * hidden_size) * (2 * k) - k)
        self.head = nn.Linear(hidden_size, 1)

    def params(self) -> Params:
        """The parameters by name (``weight_ih``, ..., ``head.weight``, ``head.bias``)."""
        return dict(self.named_parameters())

    def forward(self, xs: am.Tensor, lengths: am.Tensor) -> am.Tensor:
        return predict(self.params(), xs, lengths)


def make_batch(rng: np.random.Generator, steps: int, batch: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded sequences (T, B, I), lengths in [1, T] and targets: the mean of the first
    feature over each sequence's own steps. Padding holds noise, which must not matter."""
    xs = rng.standard_normal((steps, batch, INPUT)).astype(np.float32)
    lengths = rng.integers(1, steps + 1, size=batch).astype(np.int64)
    mask = np.arange(steps)[:, None] < lengths[None, :]
    targets = ((xs[:, :, 0] * mask).sum(0) / lengths).astype(np.float32)
    return xs, lengths, targets


def train(model: LSTMRegressor, steps: int, seed: int, seq: int = 10, batch: int = 32
          ) -> list[float]:
    """Adam on fresh random batches; returns the loss of every step."""
    rng = np.random.default_rng(seed)
    opt = am.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(steps):
        xs, lengths, targets = make_batch(rng, seq, batch)
        opt.zero_grad()
        loss = loss_fn(model.params(), am.tensor(xs), am.tensor(lengths), am.tensor(targets))
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return losses


def export(model: LSTMRegressor, path: Path) -> am.Program:
    """Export ``forward`` (weights in the file) and ``train_step`` (parameters as inputs)
    with symbolic ``t`` (padded length) and ``b`` (batch) and save to ``path``."""
    sizes = {"t": (6, 9), "b": (2, 3)}
    seq = am.spec("t", "b", INPUT)
    lengths = am.spec("b", dtype=am.int64, low=1, high=7)  # within the smallest t
    program = am.export(model, seq, lengths, sizes=sizes)
    pspecs = {k: am.spec(*v.shape) for k, v in model.params().items()}
    program.add(train_step, pspecs, seq, lengths, am.spec("b"), name="train_step",
                sizes=sizes)
    program.save(path)
    return program


def check(model: LSTMRegressor, path: Path, seed: int, sgd_steps: int = 3) -> dict[str, float]:
    """Compare eager, reference and native on shapes the export never saw; returns the
    largest errors and the losses of the native SGD steps.

    Raises:
        MismatchError: two runners disagree, or the padding changes a prediction.
    """
    rng = np.random.default_rng(seed + 1)
    xs, lengths, targets = make_batch(rng, 11, 7)
    ref = am.load(path, backend="reference")
    nat = open_native(path)
    eager = flat(model(am.tensor(xs), am.tensor(lengths)))
    err_ref = assert_close("forward: reference vs eager", reference_run(ref, "forward", xs,
                                                                          lengths), eager,
                           1e-5, 1e-6)
    err_nat = assert_close("forward: native vs eager", nat.run("forward", xs, lengths), eager,
                           1e-5, 1e-6)
    noisy = xs.copy()
    noisy[np.arange(11)[:, None] >= lengths[None, :]] = 100.0
    assert_close("forward: native with other padding", nat.run("forward", noisy, lengths),
                 eager, 1e-5, 1e-6)
    # a batch whose longest sequence is short runs fewer iterations, same answers
    short = np.minimum(lengths, 2)
    assert_close("forward: native, lengths <= 2",
                 nat.run("forward", xs[:2], short), flat(model(am.tensor(xs[:2]),
                                                               am.tensor(short))), 1e-5, 1e-6)

    # train_step chained: eager vs reference vs native, parameters fed back each step
    names = sorted(model.params())
    p_eager = {k: v.detach() for k, v in model.params().items()}
    p_native = [p_eager[k].numpy() for k in names]
    p_ref = list(p_native)
    losses, err_step = [], 0.0
    for s in range(sgd_steps):
        loss, p_eager = train_step(p_eager, am.tensor(xs), am.tensor(lengths),
                                   am.tensor(targets))
        want = flat((loss, p_eager))
        got_ref = reference_run(ref, "train_step", *p_ref, xs, lengths, targets)
        got_nat = nat.run("train_step", *p_native, xs, lengths, targets)
        err_step = max(err_step,
                       assert_close(f"train_step {s}: reference vs eager", got_ref, want,
                                    1e-4, 1e-5),
                       assert_close(f"train_step {s}: native vs eager", got_nat, want,
                                    1e-4, 1e-5))
        p_ref, p_native = got_ref[1:], got_nat[1:]
        losses.append(float(got_nat[0]))
    if not losses[-1] < losses[0]:
        raise MismatchError(f"native SGD steps did not lower the loss: {losses}")
    return {"forward_ref": err_ref, "forward_native": err_nat, "train_step": err_step,
            "sgd_first": losses[0], "sgd_last": losses[-1]}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150, help="Adam training steps")
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="directory for lstm_while.amber")
    args = ap.parse_args(argv)
    am.manual_seed(args.seed)
    model = LSTMRegressor(INPUT, args.hidden)
    t0 = time.perf_counter()
    losses = train(model, args.steps, args.seed)
    k = max(1, min(10, args.steps // 5))
    first, last = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    print(f"lstm_while: {args.steps} Adam steps in {time.perf_counter() - t0:.1f} s, "
          f"loss {first:.4f} -> {last:.4f} (mean of the first/last {k})")
    try:
        if not last < first:
            raise MismatchError(f"training did not lower the loss ({first} -> {last})")
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or Path(tmp)
            out.mkdir(parents=True, exist_ok=True)
            path = out / "lstm_while.amber"
            program = export(model, path)
            n_while = sum(1 for f in program.functions.values() for n in f.nodes
                          if n.op == "while")
            print(f"exported {path.name}: entries {', '.join(program.entries)}, "
                  f"{len(program.functions)} functions, {n_while} while nodes")
            res = check(model, path, args.seed)
    except am.AmberError as e:  # a mismatch (ExampleError) or a failed export or run
        print(f"lstm_while: FAILED: {e}")
        return 1
    print(f"forward (T=11, B=7): eager == reference (max err {res['forward_ref']:.2e}) == "
          f"native (max err {res['forward_native']:.2e}); padding ignored")
    print(f"train_step x3 chained in C == eager (max err {res['train_step']:.2e}), "
          f"loss {res['sgd_first']:.4f} -> {res['sgd_last']:.4f}")
    print("lstm_while: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
