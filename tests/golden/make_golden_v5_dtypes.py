"""Write the golden .amber files of opset version 5 for the storage dtypes (float16,
bfloat16, int8, uint8, int16).

    python tests/golden/make_golden_v5_dtypes.py

Each file ``v5/NAME.amber`` gets ``v5/NAME.npz`` beside it holding inputs and the
expected outputs of its ``forward`` entry point; other entry points (bfloat16, whose
arrays ``.npz`` cannot name) are checked through the file's own test vectors. Golden
files are never rewritten: the script refuses to overwrite an existing file.
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

OUT_DIR = os.path.join(HERE, "v5")


class _HalfNet(nn.Module):
    """A float16 CNN head: convolution, pooling, layer norm, GELU, a linear layer and a
    softmax; every weight stored as float16."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv(x)), 2)                      # 4x4 -> 2x2
        h = F.gelu(self.norm(h.reshape(x.shape[0], -1)))
        return F.softmax(self.head(h), -1)


def dtypes_half() -> tuple[am.Program, dict[str, np.ndarray]]:
    """float16 weights and activations, batch symbolic; entry point ``bf16`` runs the
    same network with bfloat16 weights."""
    am.manual_seed(51)
    net = _HalfNet()
    bnet = _HalfNet()
    bnet.load_state_dict(net.state_dict())
    net.half()
    bnet.bfloat16()
    p = am.export(net, am.spec("batch", 2, 4, 4, dtype=am.float16))
    holder = nn.Module()
    holder.bf16 = bnet  # weights named bf16.*
    p.add(lambda x: holder.bf16(x), am.spec("batch", 2, 4, 4, dtype=am.bfloat16), name="bf16",
          weights=holder)
    rng = np.random.default_rng(51)
    return p, {"x": rng.standard_normal((3, 2, 4, 4)).astype(np.float16)}


def dtypes_int() -> tuple[am.Program, dict[str, np.ndarray]]:
    """Wrapping int8/uint8/int16 arithmetic, floor division, matmul, sums and the casts
    between every storage dtype (saturating float -> int, rounding to float16/bfloat16)."""
    w = am.tensor(np.array([[3, -7, 100], [-128, 5, 9]], dtype=np.int8))

    def f(q, u):
        a = q @ w                               # int8 matmul: wraps
        b = (q * 3 - 100) // am.tensor(np.int8(-7))  # floor division, wrapping
        c = (u + 200).sum(1)                    # uint8: wraps modulo 256
        s = q.to(am.int16) * 300                # int16: wraps
        h = (s.to(am.float32) / 7).to(am.float16)
        back = (h.to(am.bfloat16) * 1.5).to(am.uint8)  # saturates to 0..255
        return a, b, c, s, h, back

    rng = np.random.default_rng(52)
    q = rng.integers(-128, 128, (4, 2)).astype(np.int8)
    u = rng.integers(0, 256, (4, 3)).astype(np.uint8)
    p = am.export(f, am.spec("n", 2, dtype=am.int8), am.spec("n", 3, dtype=am.uint8))
    return p, {"q": q, "u": u}


GOLDEN: dict[str, Callable[[], tuple[am.Program, dict[str, np.ndarray]]]] = {
    "dtypes_half": dtypes_half, "dtypes_int": dtypes_int,
}


def write(name: str, out_dir: str = OUT_DIR) -> None:
    """Write ``name``.amber and ``name``.npz; refuse to overwrite either."""
    write_golden(name, lambda: GOLDEN[name](), out_dir)


if __name__ == "__main__":
    for n in sys.argv[1:] or GOLDEN:
        write(n)
