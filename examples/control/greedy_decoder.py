"""A greedy sequence-to-sequence decoder that stops on an end token, written as a PyTorch
user writes it -- only the imports changed (``import amber as torch``): a GRU encoder,
Bahdanau (additive) attention, a GRU-cell decoder that appends the argmax token of each
step to a Python list in a ``while`` loop until every sequence of the batch has emitted
EOS or a maximum length is reached, and ``torch.stack(tokens, 1)``.

The output is ``[B, T]`` with ``T`` decided by the data: the exported signature says
``int64[b, trips0]``, a size no input has (docs/control-flow.md, "Outputs whose size the
data decide"). The model is exported with a symbolic batch and source length, run by the
native runtime, and compared with eager execution on batches that take every path: the
whole batch stops at the first step, a batch reaches the maximum length, and rows of one
batch stop at different steps (padded with PAD after their EOS).

The weights are random (seeded); ``path_batches`` picks source rows by the lengths eager
decoding gives them and fails if a path cannot be found.

Usage: ``python examples/control/greedy_decoder.py [--out DIR]``; exits non-zero on a
mismatch."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

import amber as torch
import amber.nn as nn

PAD, BOS, EOS = 0, 1, 2
VOCAB, EMB, HIDDEN, MAX_LEN, SEED = 10, 8, 16, 8, 53


class Encoder(nn.Module):
    def __init__(self, vocab, emb, hidden):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.gru = nn.GRU(emb, hidden, batch_first=True)

    def forward(self, src):  # src: [B, S] token ids
        outputs, hidden = self.gru(self.embedding(src))
        return outputs, hidden[0]  # [B, S, H], [B, H]


class Attention(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.W = nn.Linear(2 * hidden, hidden)
        self.v = nn.Linear(hidden, 1, bias=False)

    def forward(self, hidden, enc_out):
        h = hidden.unsqueeze(1).expand(-1, enc_out.shape[1], -1)
        energy = torch.tanh(self.W(torch.cat([h, enc_out], 2)))
        return torch.softmax(self.v(energy).squeeze(2), 1)  # [B, S]


class Decoder(nn.Module):
    def __init__(self, vocab, emb, hidden):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.attention = Attention(hidden)
        self.cell = nn.GRUCell(emb + hidden, hidden)
        self.out = nn.Linear(2 * hidden, vocab)

    def forward(self, token, hidden, enc_out):
        weights = self.attention(hidden, enc_out)
        context = torch.bmm(weights.unsqueeze(1), enc_out).squeeze(1)
        hidden = self.cell(torch.cat([self.embedding(token), context], 1), hidden)
        return self.out(torch.cat([hidden, context], 1)), hidden


class GreedyTranslator(nn.Module):
    def __init__(self, vocab=VOCAB, emb=EMB, hidden=HIDDEN, max_len=MAX_LEN):
        super().__init__()
        self.encoder = Encoder(vocab, emb, hidden)
        self.decoder = Decoder(vocab, emb, hidden)
        self.max_len = max_len

    def forward(self, src):
        enc_out, hidden = self.encoder(src)
        batch = src.shape[0]
        token = torch.full((batch,), BOS, dtype=torch.long)
        finished = torch.zeros(batch, dtype=torch.bool)
        tokens = []
        step = 0
        while step < self.max_len and not finished.all():
            logits, hidden = self.decoder(token, hidden, enc_out)
            token = logits.argmax(1).masked_fill(finished, PAD)
            tokens.append(token)
            finished = finished | (token == EOS)
            step += 1
        return torch.stack(tokens, 1)


def build() -> GreedyTranslator:
    torch.manual_seed(SEED)
    return GreedyTranslator().eval()


def lengths(model: GreedyTranslator, src: np.ndarray) -> list[int]:
    """Steps until each row emits EOS (MAX_LEN if it never does), decoded eagerly."""
    out = model(torch.tensor(src)).numpy()
    return [int(np.argmax(r == EOS)) + 1 if (r == EOS).any() else MAX_LEN for r in out]


def path_batches(model: GreedyTranslator) -> dict[str, np.ndarray]:
    """Source batches that take every path, picked from seeded random rows."""
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    for s in (3, 6):
        rows = rng.integers(3, VOCAB, (64, s))
        by_len: dict[int, np.ndarray] = {}
        for row, n in zip(rows, lengths(model, rows)):
            by_len.setdefault(n, row)
        if 1 not in by_len or MAX_LEN not in by_len or len(by_len) < 3:
            raise RuntimeError(f"no rows of source length {s} take every path: {sorted(by_len)}")
        first = rows[[n == 1 for n in lengths(model, rows)]][:3]
        out[f"s={s} every row stops at once"] = first
        mixed = [by_len[n] for n in sorted(by_len)]
        out[f"s={s} lengths {sorted(by_len)}"] = np.stack(mixed)
        out[f"s={s} one row runs to the maximum"] = by_len[MAX_LEN][None]
    return out


def check(out_dir: str) -> bool:
    model = build()
    batches = path_batches(model)
    path = os.path.join(out_dir, "greedy_decoder.amber")
    program = torch.export(model, torch.spec("b", "s", dtype=torch.int64, low=3, high=VOCAB),
                           examples=list(batches.values()))
    program.save(path)
    print(f"signature: {program.entries['forward']}")
    native = torch.load(path, backend="native")
    ok = True
    for name, src in batches.items():
        want = model(torch.tensor(src)).numpy()
        got = native(src).numpy()
        same = want.shape == got.shape and np.array_equal(want, got)
        ok &= same
        print(f"{name:36s} src {src.shape!s:8s} -> tokens {got.shape!s:8s} "
              f"{'ok' if same else 'MISMATCH'}")
    print("greedy_decoder: OK" if ok else "greedy_decoder: MISMATCH")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="folder for the exported file (default: a temporary one)")
    args = ap.parse_args(argv)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        return 0 if check(args.out) else 1
    with tempfile.TemporaryDirectory() as d:
        return 0 if check(d) else 1


if __name__ == "__main__":
    sys.exit(main())
