"""Write the golden .amber files of opset version 3 (format 1): ``while`` nodes whose
per-iteration outputs are stacked along the trip count they bind (the O(n) gradient of
``while_loop``).

    python tests/golden/make_golden_v3.py

Each file ``v3/NAME.amber`` gets ``v3/NAME.npz`` beside it holding inputs
(``in.<input name>``) and the expected outputs (``out.<output name>``) of its
``forward`` entry point; other entry points are checked through the file's own test
vectors. Golden files are never rewritten: the script refuses to overwrite an existing
file (``v1`` and ``v2`` are written by their own generators and stay as they are).
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

OUT_DIR = os.path.join(HERE, "v3")
F64 = am.float64


def _loop(x, w):
    """A data-dependent trip count, an integer carry, a closed-over weight and a cond in
    the body."""
    def body(c):
        k, v = c
        v2 = am.cond(v.sum() > 0, lambda: (v * w).sin() + v, lambda: v * 1.5 - w * 0.1)
        return k + 1, v2

    k, v = am.while_loop(lambda c: (c[1] * c[1]).sum() < 9.0, body,
                         (am.tensor(np.int64(0)), x))
    return (v * v).sum() + k.to(F64)


def while_grad() -> tuple[am.Program, dict[str, np.ndarray]]:
    """The gradient of a while loop: a stacking while and a reverse scan of its length."""
    rng = np.random.default_rng(31)
    specs = (am.spec("n", dtype=F64, low=0.2, high=0.6), am.spec("n", dtype=F64, low=0.8,
                                                                   high=1.2))
    p = am.export(am.grad(_loop, argnums=(0, 1)), *specs)
    p.add(_loop, *specs, name="loss")
    return p, {"x": rng.uniform(0.2, 0.6, 3), "w": rng.uniform(0.8, 1.2, 3)}


def while_grad2() -> tuple[am.Program, dict[str, np.ndarray]]:
    """A second-order gradient: the stacking while and its backward scan differentiated
    again (the residuals themselves receive cotangents)."""
    rng = np.random.default_rng(32)

    def hvp(x, w):
        return am.grad(lambda v: am.grad(_loop)(v, w).sum())(x)

    specs = (am.spec("n", dtype=F64, low=0.2, high=0.6), am.spec("n", dtype=F64, low=0.8,
                                                                   high=1.2))
    return am.export(hvp, *specs), {"x": rng.uniform(0.2, 0.6, 4),
                                    "w": rng.uniform(0.8, 1.2, 4)}


GOLDEN: dict[str, Callable[[], tuple[am.Program, dict[str, np.ndarray]]]] = {
    "while_grad": while_grad, "while_grad2": while_grad2,
}


def write(name: str, out_dir: str = OUT_DIR) -> None:
    """Write ``name``.amber and ``name``.npz; refuse to overwrite either."""
    write_golden(name, lambda: GOLDEN[name](), out_dir)


if __name__ == "__main__":
    for n in sys.argv[1:] or GOLDEN:
        write(n)
