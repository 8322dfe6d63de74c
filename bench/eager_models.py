"""The models bench_eager.py times, each written twice (amber.nn and torch.nn, the same
structure and parameter names) and given the same weights:

* a MiniLM-shape BERT encoder (hidden 384, 12 heads, intermediate 1536, 6 layers, vocab
  30522), written out: embeddings, multi-head attention via matmul and softmax,
  LayerNorm, exact (erf) GELU;
* the digits CNN (conv, batch norm, ReLU, max-pool twice, then two linear layers) on
  8x8 images;
* the 784-512-512-10 MLP;
* an LSTM sequence classifier (``nn.LSTM`` 32 -> 64, batch first, then a linear layer on
  the last hidden state), batch 64, 10 time steps;
* a causal transformer block (pre-norm: ``nn.MultiheadAttention`` with 4 heads and a
  causal mask, then a GELU MLP; width 64) with a per-token classifier, batch 32 x 16
  tokens.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

HIDDEN, HEADS, INTERMEDIATE, LAYERS, VOCAB, MAX_POS = 384, 12, 1536, 6, 30522, 512


def _encoder_classes(nn: Any, F: Any, softmax: Any) -> type:
    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query = nn.Linear(HIDDEN, HIDDEN)
            self.key = nn.Linear(HIDDEN, HIDDEN)
            self.value = nn.Linear(HIDDEN, HIDDEN)
            self.attn_out = nn.Linear(HIDDEN, HIDDEN)
            self.attn_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
            self.intermediate = nn.Linear(HIDDEN, INTERMEDIATE)
            self.output = nn.Linear(INTERMEDIATE, HIDDEN)
            self.out_norm = nn.LayerNorm(HIDDEN, eps=1e-12)

        def heads(self, x: Any) -> Any:
            b, t, _ = x.shape
            return x.reshape(b, t, HEADS, HIDDEN // HEADS).transpose(1, 2)

        def forward(self, x: Any) -> Any:
            b, t, _ = x.shape
            q, k, v = self.heads(self.query(x)), self.heads(self.key(x)), self.heads(self.value(x))
            scores = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(HIDDEN // HEADS))
            ctx = (softmax(scores, -1) @ v).transpose(1, 2).reshape(b, t, HIDDEN)
            x = self.attn_norm(x + self.attn_out(ctx))
            return self.out_norm(x + self.output(F.gelu(self.intermediate(x))))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word_embeddings = nn.Embedding(VOCAB, HIDDEN)
            self.position_embeddings = nn.Embedding(MAX_POS, HIDDEN)
            self.token_type_embeddings = nn.Embedding(2, HIDDEN)
            self.embed_norm = nn.LayerNorm(HIDDEN, eps=1e-12)
            self.layers = nn.ModuleList([Layer() for _ in range(LAYERS)])

        def forward(self, ids: Any, positions: Any, types: Any) -> Any:
            x = (self.word_embeddings(ids) + self.position_embeddings(positions)
                 + self.token_type_embeddings(types))
            x = self.embed_norm(x)
            for layer in self.layers:
                x = layer(x)
            return x

    return Encoder


def _cnn_classes(nn: Any) -> type:
    class DigitsCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                nn.MaxPool2d(2))
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(),
                                            nn.Linear(64, 10))

        def forward(self, x: Any) -> Any:
            return self.classifier(self.features(x))

    return DigitsCNN


def _mlp(nn: Any) -> Any:
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


LSTM_IN, LSTM_HIDDEN, LSTM_STEPS, LSTM_BATCH = 32, 64, 10, 64
BLOCK_WIDTH, BLOCK_HEADS, BLOCK_TOKENS, BLOCK_BATCH = 64, 4, 16, 32


def _lstm_classes(nn: Any) -> type:
    class LSTMClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(LSTM_IN, LSTM_HIDDEN, batch_first=True)
            self.head = nn.Linear(LSTM_HIDDEN, 10)

        def forward(self, x: Any) -> Any:
            out, _ = self.lstm(x)
            return self.head(out[:, -1])

    return LSTMClassifier


def _block_classes(nn: Any) -> type:
    class CausalBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1 = nn.LayerNorm(BLOCK_WIDTH)
            self.attn = nn.MultiheadAttention(BLOCK_WIDTH, BLOCK_HEADS, batch_first=True)
            self.norm2 = nn.LayerNorm(BLOCK_WIDTH)
            self.up = nn.Linear(BLOCK_WIDTH, 4 * BLOCK_WIDTH)
            self.act = nn.GELU()
            self.down = nn.Linear(4 * BLOCK_WIDTH, BLOCK_WIDTH)
            self.head = nn.Linear(BLOCK_WIDTH, 10)

        def forward(self, x: Any, mask: Any) -> Any:
            h = self.norm1(x)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
            x = x + self.down(self.act(self.up(self.norm2(x))))
            return self.head(x).reshape(-1, 10)

    return CausalBlock


def build(kind: str, framework: str, seed: int = 0) -> Any:
    """Model ``kind`` ("encoder", "cnn", "mlp", "lstm", "block") in ``framework``
    ("amber" or "torch"), with weights drawn from ``seed`` (the same in both frameworks)."""
    if framework == "amber":
        import amber as am

        nn, F = am.nn, am.nn.functional
        softmax = am.softmax
    else:
        import torch

        nn, F = torch.nn, torch.nn.functional
        softmax = torch.softmax
    model = {"encoder": lambda: _encoder_classes(nn, F, softmax)(),
             "cnn": lambda: _cnn_classes(nn)(), "mlp": lambda: _mlp(nn),
             "lstm": lambda: _lstm_classes(nn)(), "block": lambda: _block_classes(nn)()}[kind]()
    rng = np.random.default_rng(seed)
    state = {}
    for name, value in model.state_dict().items():
        shape = tuple(value.shape)
        if name.endswith("running_var"):
            arr = np.ones(shape, np.float32)
        elif name.endswith(("running_mean", "bias")) or "bias_" in name or "num_batches" in name:
            arr = (np.zeros(shape) if "num_batches" in name else
                   rng.uniform(-0.05, 0.05, shape)).astype(np.float32)
        elif "norm" in name or (kind == "cnn" and len(shape) == 1):
            arr = rng.uniform(0.9, 1.1, shape).astype(np.float32)
        else:
            bound = 1.0 / math.sqrt(shape[-1] if len(shape) == 2 else
                                    int(np.prod(shape[1:])) if len(shape) > 1 else 1)
            arr = rng.uniform(-bound, bound, shape).astype(np.float32)
        if "num_batches" in name:
            arr = np.zeros(shape, np.int64)
        state[name] = arr
    if framework == "amber":
        import amber as am

        model.load_state_dict({k: am.tensor(v) for k, v in state.items()})
    else:
        import torch

        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return model


def encoder_inputs(batch: int, tokens: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, (batch, tokens)).astype(np.int64)
    pos = np.broadcast_to(np.arange(tokens, dtype=np.int64), (batch, tokens)).copy()
    types = np.zeros((batch, tokens), np.int64)
    return [ids, pos, types]


def train_batch(kind: str, seed: int = 1) -> list[np.ndarray]:
    """The model's inputs and int64 targets for one training step of ``kind`` ("lstm" or
    "block"; the block's second input is its causal mask, True above the diagonal)."""
    rng = np.random.default_rng(seed)
    if kind == "lstm":
        x = rng.standard_normal((LSTM_BATCH, LSTM_STEPS, LSTM_IN)).astype(np.float32)
        return [x, rng.integers(0, 10, LSTM_BATCH).astype(np.int64)]
    x = rng.standard_normal((BLOCK_BATCH, BLOCK_TOKENS, BLOCK_WIDTH)).astype(np.float32)
    mask = np.triu(np.ones((BLOCK_TOKENS, BLOCK_TOKENS), dtype=bool), 1)
    return [x, mask, rng.integers(0, 10, BLOCK_BATCH * BLOCK_TOKENS).astype(np.int64)]
