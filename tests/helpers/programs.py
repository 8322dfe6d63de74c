"""Programs several test modules exercise."""

from __future__ import annotations

import numpy as np

import amber as am


@am.function
def cond_in_while_in_recursion(n: am.Tensor, x: am.Tensor, w: am.Tensor) -> am.Tensor:
    """A ``cond`` inside a ``while_loop`` inside a recursive graph function: ``n`` levels,
    the loop at level ``n`` running ``n`` steps."""
    def body(c: tuple[am.Tensor, am.Tensor]) -> tuple[am.Tensor, am.Tensor]:
        k, v = c
        v2 = am.cond(v.sum() > 0, lambda: v * 0.5 + w, lambda: v * w - 0.1)
        return k + 1, v2

    def step() -> am.Tensor:
        _, v = am.while_loop(lambda c: c[0] < n, body, (am.tensor(np.int64(0)), x))
        return cond_in_while_in_recursion(n - 1, v.sin(), w)

    return am.cond(n > 0, step, lambda: x * w)


def randomise_norm_state(model: am.nn.Module, seed: int) -> None:
    """Random running statistics and biases (so that a BatchNorm or a bias is not an
    identity), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    state = {}
    for k, v in model.state_dict().items():
        a = v.numpy()
        if k.endswith("running_var"):
            a = rng.uniform(0.5, 1.5, a.shape).astype(a.dtype)
        elif k.endswith(("running_mean", "bias")):
            a = rng.uniform(-0.5, 0.5, a.shape).astype(a.dtype)
        state[k] = am.tensor(a)
    model.load_state_dict(state)
