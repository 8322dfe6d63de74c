"""Train a small convolutional network on the 8x8 handwritten digits shipped in
examples/data/digits.npz and report its held-out accuracy.

    python examples/train_digits.py [--epochs N] [--out PATH] [--seed S]

The last line printed is ``test accuracy: 0.9xxx``. With ``--out`` the trained model is
exported to PATH as one .amber file (entry points ``forward`` and ``predict``, for any
batch size, with its test vectors)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import amber as am
import amber.nn as nn
import amber.nn.functional as F

DATA = Path(__file__).resolve().parent / "data" / "digits.npz"


class DigitsNet(nn.Module):
    """conv(1->16) -> relu -> maxpool -> conv(16->32) -> relu -> maxpool -> mlp -> 10 logits,
    for (N, 1, 8, 8) images scaled to [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 2 * 2, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x: am.Tensor) -> am.Tensor:
        return self.classifier(self.features(x))


def build_model(seed: int = 0) -> DigitsNet:
    """A freshly initialised model (deterministic for a given seed)."""
    am.manual_seed(seed)
    return DigitsNet()


def load_data(path: Path = DATA, seed: int = 0, test_fraction: float = 0.2
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): float32 images (N, 1, 8, 8) in [0, 1] and int64
    labels, split at random (fixed ``seed``) into training and held-out parts."""
    with np.load(path) as d:
        images, labels = d["images"], d["labels"]
    x = (images.astype(np.float32) / 16.0)[:, None, :, :]
    y = labels.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = round(len(y) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y`` (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    correct = 0
    with am.no_grad():
        for i in range(0, len(y), batch_size):
            logits = model(am.from_numpy(x[i:i + batch_size]))
            pred = am.argmax(logits, dim=1).numpy()
            correct += int((pred == y[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(y), 1)


class Progress:
    """A one-line text progress bar on stderr (redrawn in place on a terminal)."""

    def __init__(self, total: int, label: str, width: int = 30) -> None:
        self.total, self.label, self.width = total, label, width
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()

    def update(self, done: int, info: str = "") -> None:
        if not self.tty and done != self.total:
            return
        filled = self.width * done // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        secs = time.perf_counter() - self.start
        line = f"{self.label} [{bar}] {done}/{self.total} {info} {secs:5.1f}s"
        end = "\n" if done == self.total else ""
        sys.stderr.write(("\r" if self.tty else "") + line + end)
        sys.stderr.flush()


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 12,
          batch_size: int = 32, lr: float = 3e-3, seed: int = 0,
          x_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> nn.Module:
    """Minibatch Adam on cross entropy with a cosine learning-rate schedule; prints a
    progress bar per epoch to stderr."""
    opt = am.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed + 1)
    n_batches = -(-len(y) // batch_size)
    model.train()
    for epoch in range(1, epochs + 1):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))
        bar = Progress(n_batches, f"epoch {epoch:2d}/{epochs}")
        order = rng.permutation(len(y))
        total = 0.0
        for b in range(n_batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            logits = model(am.from_numpy(x[idx]))
            loss = F.cross_entropy(logits, am.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            info = f"loss {total / (b + 1):.4f}"
            if b + 1 == n_batches and x_val is not None and y_val is not None:
                info += f" held-out acc {evaluate(model, x_val, y_val):.4f}"
            bar.update(b + 1, info)
    return model


def export_model(model: nn.Module, path: str, metadata: dict | None = None) -> am.Program:
    """Export the trained model to one self-contained .amber file with two entry points,
    ``forward`` (logits) and ``predict`` (class indices), for any batch size."""
    model.eval()
    image = am.spec("batch", 1, 8, 8)
    program = am.export(model, image)
    program.add(lambda x: model(x).argmax(1), image, name="predict")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    program.save(out, metadata=metadata)
    return program


def main(argv: Sequence[str] | None = None) -> float:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=12, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="export the trained model to this .amber file")
    args = p.parse_args(argv)
    x_train, y_train, x_test, y_test = load_data(seed=args.seed)
    model = build_model(args.seed)
    print(f"training {type(model).__name__} on {len(y_train)} digits, testing on "
          f"{len(y_test)}", file=sys.stderr)
    train(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
          lr=args.lr, seed=args.seed, x_val=x_test, y_val=y_test)
    acc = evaluate(model, x_test, y_test)
    if args.out:
        export_model(model, args.out, metadata={"dataset": "digits", "test_accuracy": acc})
        print(f"exported the model to {os.fspath(args.out)}", file=sys.stderr)
    print(f"test accuracy: {acc:.4f}")
    return acc


if __name__ == "__main__":
    main()
