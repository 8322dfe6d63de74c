"""A convolutional autoencoder for the bundled 8x8 digits: strided convolutions down to
2x2, then ConvTranspose2d and Upsample back to 8x8. Written for PyTorch; with the import
lines changed to amber it runs unchanged."""

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
data = np.load(Path(__file__).resolve().parent.parent / "data" / "digits.npz")
images = torch.tensor(data["images"].astype(np.float32) / 16.0).unsqueeze(1)
train, test = images[:1400], images[1400:]

model = nn.Sequential(
    nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),        # 8x8 -> 4x4
    nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),       # 4x4 -> 2x2
    nn.ConvTranspose2d(16, 8, 2, stride=2), nn.ReLU(),         # 2x2 -> 4x4
    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),  # 4x4 -> 8x8
    nn.Conv2d(8, 1, 3, padding=1), nn.Sigmoid(),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

for epoch in range(10):
    perm = torch.randperm(len(train))
    for i in range(0, len(train), 100):
        batch = train[perm[i:i + 100]]
        loss = F.mse_loss(model(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: loss {loss.item():.5f}")

with torch.no_grad():
    test_loss = F.mse_loss(model(test), test).item()
print(f"final loss {test_loss:.5f}")
