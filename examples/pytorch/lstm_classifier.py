"""An Embedding + LSTM sequence classifier with a step learning-rate schedule, on
synthetic token sequences: is the token 3 more frequent than the token 5? Written for
PyTorch; with the import lines changed to amber it runs unchanged (see README.md)."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import StepLR

torch.manual_seed(0)
VOCAB, LENGTH = 10, 12


def make_data(n):
    x = torch.randint(0, VOCAB, (n, LENGTH))
    y = ((x == 3).sum(1) > (x == 5).sum(1)).long()
    return x, y


x_train, y_train = make_data(1024)
x_test, y_test = make_data(512)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.head = nn.Linear(32, 2)

    def forward(self, tokens):
        out, (h, c) = self.lstm(self.embed(tokens))
        return self.head(h[-1])


model = Classifier()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
scheduler = StepLR(optimizer, step_size=4, gamma=0.5)

for epoch in range(10):
    model.train()
    perm = torch.randperm(len(x_train))
    for i in range(0, len(x_train), 64):
        idx = perm[i:i + 64]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        loss.backward()
        optimizer.step()
    scheduler.step()
    print(f"epoch {epoch}: loss {loss.item():.4f} lr {scheduler.get_last_lr()[0]:.5f}")

model.eval()
with torch.no_grad():
    accuracy = (model(x_test).argmax(-1) == y_test).float().mean().item()
print(f"final accuracy {accuracy:.4f}")
