"""Write the golden .amber files of opset version 2 (format 1): structured control flow.

    python tests/golden/make_golden_v2.py

Each file ``v2/NAME.amber`` gets ``v2/NAME.npz`` beside it holding inputs
(``in.<input name>``) and the expected outputs (``out.<output name>``) of its
``forward`` entry point; other entry points are checked through the file's own test
vectors. Golden files are never rewritten: the script refuses to overwrite an existing
file (``tests/golden/v1`` is written by ``make_golden.py`` and stays as it is).
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

OUT_DIR = os.path.join(HERE, "v2")
F64 = am.float64


def control() -> tuple[am.Program, dict[str, np.ndarray]]:
    """cond, while_loop and scan over symbolic dims, and the gradient of all three."""
    rng = np.random.default_rng(21)
    w = am.tensor(rng.standard_normal((3, 3)) * 0.5)

    def forward(xs, h0):
        def step(h, x):
            h2 = am.cond(x.sum() > 0, lambda: (h @ w + x).tanh(), lambda: h * 0.5 - x)
            return h2, h2.sum()

        h, ys = am.scan(step, h0, xs)

        def body(c):
            k, v = c
            return k + 1, v * 1.5 + 0.1

        k, v = am.while_loop(lambda c: (c[1] * c[1]).sum() < 4.0, body,
                             (am.tensor(np.int64(0)), h))
        return {"h": v, "steps": k, "ys": ys}

    def loss(xs, h0):
        out = forward(xs, h0)
        return (out["h"] ** 2).sum() + out["ys"].sum()

    p = am.export(forward, am.spec("t", 3, dtype=F64), am.spec(3, dtype=F64, low=-0.5,
                                                                high=0.5))
    p.add(am.grad(loss, argnums=(0, 1)), am.spec("t", 3, dtype=F64),
          am.spec(3, dtype=F64, low=-0.5, high=0.5), name="grad")
    return p, {"xs": rng.standard_normal((6, 3)), "h0": rng.uniform(-0.5, 0.5, 3)}


@am.function
def _tree(node, children, value, w):
    """A TreeRNN cell applied recursively over a child-index tensor (-1: no child)."""
    def child(idx):
        return am.cond(idx >= 0, lambda: _tree(idx, children, value, w),
                       lambda: value[0] * 0.0)

    return (value[node] + (child(children[node, 0]) + child(children[node, 1])) * w).tanh()


def recursive() -> tuple[am.Program, dict[str, np.ndarray]]:
    """Recursion (a call of the function being traced) and its recursive gradient."""
    rng = np.random.default_rng(22)
    w = rng.standard_normal(4) * 0.8

    def forward(root, children, value, w):
        return _tree(root, children, value, w)

    def grad_w(root, children, value, w):
        return am.grad(lambda w_: _tree(root, children, value, w_).sum())(w)

    specs = (am.tensor(np.int64(0)), am.spec("n", 2, dtype=am.int64, low=-1, high=0),
             am.spec("n", 4, dtype=F64), am.spec(4, dtype=F64))
    p = am.export(forward, *specs)
    p.add(grad_w, *specs, name="grad_w")
    # 0 -> (1, 2), 1 -> (3, -1), 2 -> (-1, 4)
    children = np.array([[1, 2], [3, -1], [-1, 4], [-1, -1], [-1, -1]], np.int64)
    return p, {"root": np.int64(0), "children": children,
               "value": rng.standard_normal((5, 4)), "w": w}


GOLDEN: dict[str, Callable[[], tuple[am.Program, dict[str, np.ndarray]]]] = {
    "control": control, "recursive": recursive,
}


def write(name: str, out_dir: str = OUT_DIR) -> None:
    """Write ``name``.amber and ``name``.npz; refuse to overwrite either."""
    write_golden(name, lambda: GOLDEN[name](), out_dir)


if __name__ == "__main__":
    for n in sys.argv[1:] or GOLDEN:
        write(n)
