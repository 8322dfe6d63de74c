"""A BERT encoder (HuggingFace ``BertModel`` without the pooler) and a GPT-2-style causal
decoder block, written once against the PyTorch-style API that amber and PyTorch share:
``build(lib)`` returns constructors for ``lib`` = :data:`AMBER` or :func:`torch_lib`.

The encoder's layer names are ``transformers.BertModel``'s, so a HuggingFace state dict
loads by key (:func:`bert_state`). The decoder block keeps GPT-2's names but uses
``nn.Linear`` (GPT-2's ``Conv1D`` is a transposed Linear)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

import amber as am

AMBER = SimpleNamespace(nn=am.nn, F=am.nn.functional, arange=am.arange)

# all-MiniLM-L6-v2's shape
MINILM = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
              intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2)
# one GPT-2 small block
GPT2 = dict(hidden=768, heads=12, inner=3072)


def torch_lib() -> SimpleNamespace:
    import torch

    return SimpleNamespace(nn=torch.nn, F=torch.nn.functional, arange=torch.arange)


def build(lib: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(Bert=_bert(lib), DecoderBlock=_decoder(lib))


def _bert(lib: SimpleNamespace) -> Any:
    nn, F = lib.nn, lib.F

    class Embeddings(nn.Module):
        def __init__(self, c: dict) -> None:
            super().__init__()
            h = c["hidden_size"]
            self.word_embeddings = nn.Embedding(c["vocab_size"], h)
            self.position_embeddings = nn.Embedding(c["max_position_embeddings"], h)
            self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], h)
            self.LayerNorm = nn.LayerNorm(h, eps=1e-12)

        def forward(self, ids: Any) -> Any:
            pos = self.position_embeddings(lib.arange(ids.shape[1]))
            x = self.word_embeddings(ids) + pos
            return self.LayerNorm(x + self.token_type_embeddings.weight[0])

    class SelfAttention(nn.Module):
        def __init__(self, c: dict) -> None:
            super().__init__()
            h = c["hidden_size"]
            self.heads = c["num_attention_heads"]
            self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

        def forward(self, x: Any, keep: Any) -> Any:
            n, s, h = x.shape
            hd = h // self.heads

            def split(t: Any) -> Any:
                return t.reshape(n, s, self.heads, hd).permute(0, 2, 1, 3)

            o = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)),
                                               split(self.value(x)), attn_mask=keep)
            return o.permute(0, 2, 1, 3).reshape(n, s, h)

    class Output(nn.Module):
        def __init__(self, cin: int, h: int) -> None:
            super().__init__()
            self.dense = nn.Linear(cin, h)
            self.LayerNorm = nn.LayerNorm(h, eps=1e-12)

        def forward(self, x: Any, residual: Any) -> Any:
            return self.LayerNorm(self.dense(x) + residual)

    class Attention(nn.Module):
        def __init__(self, c: dict) -> None:
            super().__init__()
            self.self = SelfAttention(c)
            self.output = Output(c["hidden_size"], c["hidden_size"])

        def forward(self, x: Any, keep: Any) -> Any:
            return self.output(self.self(x, keep), x)

    class Intermediate(nn.Module):
        def __init__(self, c: dict) -> None:
            super().__init__()
            self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

        def forward(self, x: Any) -> Any:
            return F.gelu(self.dense(x))

    class Layer(nn.Module):
        def __init__(self, c: dict) -> None:
            super().__init__()
            self.attention = Attention(c)
            self.intermediate = Intermediate(c)
            self.output = Output(c["intermediate_size"], c["hidden_size"])

        def forward(self, x: Any, keep: Any) -> Any:
            a = self.attention(x, keep)
            return self.output(self.intermediate(a), a)

    class Encoder(nn.Module):
        def __init__(self, c: dict) -> None:
            super().__init__()
            self.layer = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])

    class Bert(nn.Module):
        """``(input_ids, attention_mask)`` (batch, seq) int64 -> last hidden state."""

        def __init__(self, c: dict) -> None:
            super().__init__()
            self.embeddings = Embeddings(c)
            self.encoder = Encoder(c)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            x = self.embeddings(input_ids)
            keep = (attention_mask != 0)[:, None, None, :]
            for layer in self.encoder.layer:
                x = layer(x, keep)
            return x

    return Bert


def _decoder(lib: SimpleNamespace) -> Any:
    nn, F = lib.nn, lib.F

    class CausalSelfAttention(nn.Module):
        def __init__(self, h: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.c_attn = nn.Linear(h, 3 * h)
            self.c_proj = nn.Linear(h, h)

        def forward(self, x: Any) -> Any:
            n, s, h = x.shape
            hd = h // self.heads
            qkv = self.c_attn(x).reshape(n, s, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
            o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
            return self.c_proj(o.permute(0, 2, 1, 3).reshape(n, s, h))

    class MLP(nn.Module):
        def __init__(self, h: int, inner: int) -> None:
            super().__init__()
            self.c_fc = nn.Linear(h, inner)
            self.c_proj = nn.Linear(inner, h)

        def forward(self, x: Any) -> Any:
            return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))

    class DecoderBlock(nn.Module):
        """GPT-2's pre-norm block: x + attn(ln_1(x)), then + mlp(ln_2(.))."""

        def __init__(self, hidden: int, heads: int, inner: int) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(hidden)
            self.attn = CausalSelfAttention(hidden, heads)
            self.ln_2 = nn.LayerNorm(hidden)
            self.mlp = MLP(hidden, inner)

        def forward(self, x: Any) -> Any:
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    return DecoderBlock


def hf_bert(seed: int = 0) -> Any:
    """A randomly initialised ``transformers.BertModel`` of the MiniLM shape (no download,
    no pooler), in eval mode."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(**MINILM, hidden_act="gelu", attn_implementation="eager")
    return BertModel(cfg, add_pooling_layer=False).eval()


def bert_state(hf: Any) -> dict[str, np.ndarray]:
    """The HuggingFace model's weights by key, as NumPy arrays (buffers left out)."""
    return {k: v.detach().numpy().copy() for k, v in hf.named_parameters()}


def amber_bert(state: dict[str, np.ndarray]) -> Any:
    """The amber encoder holding ``state``."""
    am.manual_seed(0)
    m = build(AMBER).Bert(MINILM)
    m.load_state_dict({k: am.tensor(v) for k, v in state.items()})
    return m.eval()


def decoder_state(seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights for the decoder block (LayerNorm affine parameters near 1 and 0)."""
    am.manual_seed(seed)
    m = build(AMBER).DecoderBlock(**GPT2)
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in m.state_dict().items():
        arr = v.numpy()
        if k.startswith("ln_"):
            base = 1.0 if k.endswith("weight") else 0.0
            arr = (base + rng.uniform(-0.1, 0.1, arr.shape)).astype(arr.dtype)
        out[k] = arr
    return out
