"""Write the golden .amber files of opset version 5 for the ``round`` primitive.

    python tests/golden/make_golden_v5_arch.py

Each file ``v5/NAME.amber`` gets ``v5/NAME.npz`` beside it holding inputs and the
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

sys.path.insert(0, HERE)
from golden_writer import write_golden  # noqa: E402

OUT_DIR = os.path.join(HERE, "v5")


def arch_round() -> tuple[am.Program, dict[str, np.ndarray]]:
    """Fake quantisation to a step of 1/8 (round, halves to even, clamped), batch
    symbolic, float32; and float64 rounding of halves, signed zeros, NaN and infinities."""

    def forward(x):
        return (x * 8.0).round().clamp(-64.0, 63.0) / 8.0

    def exact(v):
        return am.round(v) * 2.0

    p = am.export(forward, am.spec("batch", 5))
    p.add(exact, am.spec(10, dtype=am.float64), name="exact")
    rng = np.random.default_rng(51)
    x = (rng.standard_normal((4, 5)) * 4).astype(np.float32)
    x[0, :4] = [0.0625, -0.0625, 0.1875, -7.99]  # halves of a step, both rounding ways
    return p, {"x": x}


GOLDEN: dict[str, Callable[[], tuple[am.Program, dict[str, np.ndarray]]]] = {
    "arch_round": arch_round,
}


def write(name: str, out_dir: str = OUT_DIR) -> None:
    """Write ``name``.amber and ``name``.npz; refuse to overwrite either."""
    write_golden(name, lambda: GOLDEN[name](), out_dir)


if __name__ == "__main__":
    for n in sys.argv[1:] or GOLDEN:
        write(n)
