"""Write the golden .amber files of opset version 4 for the pooling primitives
(``max_pool2d``, ``avg_pool2d`` and their transposes ``max_pool2d_grad`` and
``avg_pool2d_grad``).

    python tests/golden/make_golden_v4_cnn.py

Each file ``v4/NAME.amber`` gets ``v4/NAME.npz`` beside it holding inputs and the
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
import amber.nn.functional as F  # noqa: E402
from amber import nn  # noqa: E402

sys.path.insert(0, HERE)
from golden_writer import write_golden  # noqa: E402

OUT_DIR = os.path.join(HERE, "v4")


class _Net(nn.Module):
    """Every pooling form: max with padding, dilation and ceil_mode; avg with and without
    counting the padding."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.head = nn.Linear(4 * 2 * 2 * 2, 3)

    def forward(self, x):
        h = F.relu(self.conv(x))
        a = F.max_pool2d(h, 3, stride=2, padding=1, ceil_mode=True)         # 9 -> 5
        a = F.max_pool2d(a, 2, stride=2, dilation=2, ceil_mode=False)        # 5 -> 2
        b = F.avg_pool2d(h, 3, stride=3, padding=1, ceil_mode=True,
                         count_include_pad=False)                             # 9 -> 4
        b = F.avg_pool2d(b, 2, stride=2)                                      # 4 -> 2
        return self.head(am.cat([a, b], 1).reshape(x.shape[0], -1))


def cnn_pool() -> tuple[am.Program, dict[str, np.ndarray]]:
    """A small CNN's forward pass with the four pooling forms, batch symbolic."""
    am.manual_seed(41)
    net = _Net()
    rng = np.random.default_rng(41)
    return (am.export(net, am.spec("batch", 2, 9, 9)),
            {"x": rng.standard_normal((3, 2, 9, 9)).astype(np.float32)})


def cnn_pool_grad() -> tuple[am.Program, dict[str, np.ndarray]]:
    """The input gradient of a pooled loss (max_pool2d_grad, avg_pool2d_grad), float64,
    and its second derivative in a direction (the pooling gradients differentiated)."""
    am.manual_seed(42)

    def loss(x):
        a = F.max_pool2d(x.sin(), 3, stride=2, padding=1, ceil_mode=True)
        b = F.avg_pool2d(x * x, 2, stride=1, padding=1, count_include_pad=True)
        return (a * a).sum() + (b * b).sum()

    def hvp(x, v):
        return am.grad(lambda y: (am.grad(loss)(y) * v).sum())(x)

    specs = (am.spec(1, 2, 6, 7, dtype=am.float64), am.spec(1, 2, 6, 7, dtype=am.float64))
    p = am.export(am.grad(loss), specs[0])
    p.add(hvp, *specs, name="hvp")
    rng = np.random.default_rng(42)
    return p, {"x": rng.standard_normal((1, 2, 6, 7))}


GOLDEN: dict[str, Callable[[], tuple[am.Program, dict[str, np.ndarray]]]] = {
    "cnn_pool": cnn_pool, "cnn_pool_grad": cnn_pool_grad,
}


def write(name: str, out_dir: str = OUT_DIR) -> None:
    """Write ``name``.amber and ``name``.npz; refuse to overwrite either."""
    write_golden(name, lambda: GOLDEN[name](), out_dir)


if __name__ == "__main__":
    for n in sys.argv[1:] or GOLDEN:
        write(n)
