"""A tiny causal transformer language model built from nn.MultiheadAttention, with the
causal mask made by torch.triu. The "language": each sequence counts upward by a step of
1, 2 or 3 (mod 16) from a random start, so the next token is predictable after two.
Written for PyTorch; with the import lines changed to amber it runs unchanged."""

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
VOCAB, LENGTH, DIM = 16, 12, 32


def make_batch(n):
    start = torch.randint(0, VOCAB, (n, 1))
    step = torch.randint(1, 4, (n, 1))
    seq = (start + step * torch.arange(LENGTH + 1).unsqueeze(0)) % VOCAB
    return seq[:, :-1], seq[:, 1:]


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(DIM)
        self.attn = nn.MultiheadAttention(DIM, num_heads=4, batch_first=True)
        self.ln2 = nn.LayerNorm(DIM)
        self.mlp = nn.Sequential(nn.Linear(DIM, 4 * DIM), nn.GELU(), nn.Linear(4 * DIM, DIM))

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, DIM)
        self.pos = nn.Parameter(torch.zeros(1, LENGTH, DIM))
        self.blocks = nn.ModuleList([Block() for _ in range(2)])
        self.ln = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, VOCAB)

    def forward(self, idx):
        t = idx.size(1)
        mask = torch.triu(torch.ones(t, t), diagonal=1).bool()  # True: may not attend
        x = self.tok(idx) + self.pos[:, :t]
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln(x))


model = TinyGPT()
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
for step in range(150):
    x, y = make_batch(32)
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 50 == 0:
        print(f"step {step}: loss {loss.item():.4f}")

model.eval()
with torch.no_grad():
    x, y = make_batch(256)
    pred = model(x).argmax(-1)
    # positions from 2 on are determined by the first two tokens
    accuracy = (pred[:, 2:] == y[:, 2:]).float().mean().item()
print(f"final accuracy {accuracy:.4f}")
