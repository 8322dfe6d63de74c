"""Write the golden .amber files of opset version 5 for outputs whose size the data
decide: entry points returning a list grown in a loop, stacked, so that an output dim is
the loop's trip count (docs/format.md H.2).

    python tests/golden/make_golden_v5_decoder.py

Each file ``v5/NAME.amber`` gets ``v5/NAME.npz`` beside it holding inputs and the
expected outputs of its ``forward`` entry point; other entry points are checked through
the file's own test vectors. Golden files are never rewritten: the script refuses to
overwrite an existing file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..", "src")))

import amber as am  # noqa: E402
from amber import nn  # noqa: E402

sys.path.insert(0, HERE)
from golden_writer import write_golden  # noqa: E402

OUT_DIR = os.path.join(HERE, "v5")
BOS, EOS, PAD, VOCAB, MAX_LEN = 1, 2, 0, 9, 6


class _Greedy(nn.Module):
    """A GRU encoder, dot-product attention and a GRU-cell decoder, decoding greedily
    until every row emitted EOS or MAX_LEN tokens: tokens int64[b, trips0]."""

    def __init__(self) -> None:
        super().__init__()
        self.src_emb = nn.Embedding(VOCAB, 6)
        self.enc = nn.GRU(6, 8, batch_first=True)
        self.tgt_emb = nn.Embedding(VOCAB, 6)
        self.cell = nn.GRUCell(6 + 8, 8)
        self.out = nn.Linear(16, VOCAB)

    def forward(self, src):
        mem, h = self.enc(self.src_emb(src))
        h = h[0]
        token = am.full((src.shape[0],), BOS, dtype=am.int64)
        done = am.zeros(src.shape[0], dtype=am.bool_)
        tokens = []
        step = 0
        while step < MAX_LEN and not done.all():
            weights = am.softmax(am.bmm(mem, h.unsqueeze(2)).squeeze(2), 1)
            context = am.bmm(weights.unsqueeze(1), mem).squeeze(1)
            h = self.cell(am.cat([self.tgt_emb(token), context], 1), h)
            token = self.out(am.cat([h, context], 1)).argmax(1).masked_fill(done, PAD)
            tokens.append(token)
            done = done | (token == EOS)
            step += 1
        return am.stack(tokens, 1)


def _halvings(x):
    hs = [x]
    while x.abs().sum() > 1:
        x = x * 0.5
        hs.append(x.tanh())
    return am.stack(hs, 1), x


def decoder_greedy() -> tuple[am.Program, dict[str, np.ndarray]]:
    """``forward``: the greedy decoder (batch and source length symbolic), test vectors of
    several output lengths; ``halvings``: float64[n, trips0+1] with a zero-trip vector."""
    am.manual_seed(14)
    model = _Greedy().eval()
    rng = np.random.default_rng(14)
    src = rng.integers(3, VOCAB, (6, 4))
    examples = [src, src[:1], rng.integers(3, VOCAB, (3, 2))]
    p = am.export(model, am.spec("b", "s", dtype=am.int64, low=3, high=VOCAB),
                  examples=examples)
    p.add(_halvings, am.spec("n", dtype=am.float64), name="halvings",
          examples=[np.array([0.25, 0.5]), np.array([3.0, -2.0, 1.0])])
    return p, {"src": src}


GOLDEN: dict[str, Callable[[], tuple[am.Program, dict[str, np.ndarray]]]] = {
    "decoder_greedy": decoder_greedy,
}


def write(name: str, out_dir: str = OUT_DIR) -> None:
    """Write ``name``.amber and ``name``.npz; refuse to overwrite either."""
    write_golden(name, lambda: GOLDEN[name](), out_dir)


if __name__ == "__main__":
    for n in sys.argv[1:] or GOLDEN:
        write(n)
