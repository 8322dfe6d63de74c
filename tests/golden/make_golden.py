"""Write the golden .amber files of this amber version (format 1, opset 1).

    python tests/golden/make_golden.py

Each file ``v1/NAME.amber`` gets ``v1/NAME.npz`` beside it holding inputs
(``in.<input name>``) and the expected outputs (``out.<output name>``) of its
``forward`` entry point. Golden files are never rewritten: the script refuses to
overwrite an existing file. A new amber version that changes the format or opset adds
a new directory (``v2/``, ...) and keeps every older one in the test suite forever.
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

OUT_DIR = os.path.join(HERE, "v1")


def mlp() -> tuple[am.Program, dict[str, np.ndarray]]:
    am.manual_seed(1)
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.GELU(),
                        nn.Linear(32, 10), nn.LogSoftmax(dim=1))
    net.eval()
    p = am.export(net, am.spec("batch", 16))
    p.add(lambda x: net(x).argmax(1), am.spec("batch", 16), name="predict", weights=net)
    rng = np.random.default_rng(11)
    return p, {"input": rng.standard_normal((7, 16)).astype(np.float32)}


def cnn() -> tuple[am.Program, dict[str, np.ndarray]]:
    am.manual_seed(2)
    bn = nn.BatchNorm2d(4)
    with am.no_grad():
        bn.running_mean.copy_(am.randn(4) * 0.1)
        bn.running_var.copy_(am.rand(4) + 0.5)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), bn, nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 8, 3, stride=2, groups=2), nn.Tanh(),
                        nn.AvgPool2d(1), nn.Flatten(), nn.Dropout(0.25),
                        nn.Linear(8 * 1 * 1, 5), nn.Softmax(dim=-1))
    net.eval()
    p = am.export(net, am.spec("batch", 1, 6, 6))
    rng = np.random.default_rng(12)
    return p, {"input": rng.standard_normal((3, 1, 6, 6)).astype(np.float32)}


def symbolic() -> tuple[am.Program, dict[str, np.ndarray]]:
    am.manual_seed(3)
    emb = nn.Embedding(20, 6)
    norm = nn.LayerNorm(6)

    def f(tokens, mask):
        h = norm(emb(tokens))                       # (batch, seq, 6)
        h = h * mask.reshape(mask.shape[0], -1, 1)  # symbolic reshape with -1
        pooled = h.sum(1) / mask.sum(1, keepdim=True).clamp(1.0, None)
        centred = pooled - pooled.mean(0)           # mean over a symbolic dim
        shifted = h[:, 1:] - h[:, :-1]              # slices of a symbolic dim
        flat = h.reshape(h.shape[0], h.shape[1] * 6)
        scale = h.shape[1] * 2 + 1                  # symbolic size arithmetic
        return {"pooled": centred, "diff": shifted.abs().mean(2),
                "flat_scaled": flat / scale}

    p = am.export(f, am.spec("batch", "seq", dtype=am.int64, low=0, high=20),
                  am.spec("batch", "seq"), sizes={"batch": (2, 3), "seq": (4, 7)},
                  weights={**{f"emb.{k}": v for k, v in emb.named_parameters()},
                           **{f"norm.{k}": v for k, v in norm.named_parameters()}})
    rng = np.random.default_rng(13)
    return p, {"tokens": rng.integers(0, 20, (5, 9)).astype(np.int64),
               "mask": (rng.random((5, 9)) < 0.7).astype(np.float32)}


GOLDEN: dict[str, Callable[[], tuple[am.Program, dict[str, np.ndarray]]]] = {
    "mlp": mlp, "cnn": cnn, "symbolic": symbolic,
}


def write(name: str, out_dir: str = OUT_DIR) -> None:
    """Write ``name``.amber and ``name``.npz; refuse to overwrite either."""
    amber_path = os.path.join(out_dir, f"{name}.amber")
    npz_path = os.path.join(out_dir, f"{name}.npz")
    for path in (amber_path, npz_path):
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists; golden files are never rewritten")
    program, inputs = GOLDEN[name]()
    os.makedirs(out_dir, exist_ok=True)
    program.save(amber_path, metadata={"golden": name})
    outs = program.run("forward", **inputs)
    entry = program.signature("forward")
    arrays = {f"in.{k}": v for k, v in inputs.items()}
    arrays.update({f"out.{p.name}": o for p, o in zip(entry.outputs, outs)})
    with open(npz_path, "xb") as f:
        np.savez(f, **arrays)
    print(f"wrote {amber_path} and {npz_path}")


if __name__ == "__main__":
    for n in sys.argv[1:] or GOLDEN:
        write(n)
