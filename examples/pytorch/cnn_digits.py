"""A small CNN on the bundled 8x8 digits: DataLoader, AdamW, a cosine learning-rate
schedule, gradient clipping and a checkpoint. Written for PyTorch; with the import lines
changed to amber it runs unchanged (see README.md)."""

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
device = "cuda" if torch.cuda.is_available() else "cpu"

data = np.load(Path(__file__).resolve().parent.parent / "data" / "digits.npz")
images = torch.from_numpy(data["images"].astype(np.float32) / 16.0).unsqueeze(1)
labels = torch.from_numpy(data["labels"].astype(np.int64))
order = np.random.default_rng(0).permutation(len(labels))
train_idx, test_idx = torch.from_numpy(order[:1400]), torch.from_numpy(order[1400:])
train = TensorDataset(images[train_idx], labels[train_idx])
test = TensorDataset(images[test_idx], labels[test_idx])
train_loader = DataLoader(train, batch_size=64, shuffle=True)
test_loader = DataLoader(test, batch_size=256)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn = nn.BatchNorm2d(32)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = self.pool(F.relu(self.bn(self.conv2(x))))
        return self.fc(torch.flatten(x, 1))


model = Net().to(device)
epochs = 6
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)

for epoch in range(epochs):
    model.train()
    total = 0.0
    for x, y in train_loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        total += loss.item() * x.size(0)
    scheduler.step()
    print(f"epoch {epoch}: train loss {total / len(train):.4f}")

model.eval()
correct = 0
with torch.no_grad():
    for x, y in test_loader:
        correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
accuracy = correct / len(test)

checkpoint = os.path.join(tempfile.mkdtemp(), "digits_cnn.pt")
torch.save(model.state_dict(), checkpoint)
restored = Net()
restored.load_state_dict(torch.load(checkpoint))
restored.eval()
x0 = test[0][0].unsqueeze(0)
with torch.no_grad():
    assert (restored(x0) - model(x0)).abs().max().item() < 1e-6
print(f"final accuracy {accuracy:.4f}")
