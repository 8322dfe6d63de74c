"""A bidirectional LSTM tagger: tag each token of a random sequence with whether it is
larger than both of its neighbours (a local peak), which needs context from both sides.
Written for PyTorch; with the import lines changed to amber it runs unchanged."""

import torch
import torch.nn as nn

torch.manual_seed(0)
VOCAB, LENGTH = 8, 10


def make_data(n):
    x = torch.randint(0, VOCAB, (n, LENGTH))
    left = torch.cat([torch.full((n, 1), VOCAB), x[:, :-1]], dim=1)
    right = torch.cat([x[:, 1:], torch.full((n, 1), VOCAB)], dim=1)
    peak = (x > left) & (x > right)
    return x, peak.long()


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.lstm = nn.LSTM(16, 24, num_layers=1, bidirectional=True, batch_first=True)
        self.out = nn.Linear(48, 2)

    def forward(self, tokens):
        h, _ = self.lstm(self.embed(tokens))
        return self.out(h)


x_train, y_train = make_data(1024)
x_test, y_test = make_data(512)
model = Tagger()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

for epoch in range(8):
    model.train()
    for i in range(0, len(x_train), 64):
        xb, yb = x_train[i:i + 64], y_train[i:i + 64]
        scores = model(xb)
        loss = criterion(scores.reshape(-1, 2), yb.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: loss {loss.item():.4f}")

model.eval()
with torch.no_grad():
    accuracy = (model(x_test).argmax(-1) == y_test).float().mean().item()
print(f"final accuracy {accuracy:.4f}")
