"""Adam and AdamW."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .. import functional as _F
from ..errors import AmberError
from .optimizer import Optimizer, _replace


class Adam(Optimizer):
    """PyTorch's Adam: ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 * v + (1 - beta2) g^2``,
    ``p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``; ``weight_decay``
    adds ``weight_decay * p`` to the gradient (L2); ``amsgrad`` uses the running maximum
    of ``v``."""

    _decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        if lr < 0.0:
            raise AmberError(f"{type(self).__name__}: invalid learning rate {lr}")
        if eps < 0.0:
            raise AmberError(f"{type(self).__name__}: invalid epsilon value {eps}")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise AmberError(f"{type(self).__name__}: invalid beta parameter at index "
                                 f"{i}: {b}")
        if weight_decay < 0.0:
            raise AmberError(f"{type(self).__name__}: invalid weight_decay value "
                             f"{weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def _update(self, group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        wd, amsgrad, maximize = group["weight_decay"], group["amsgrad"], group["maximize"]
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            if maximize:
                g = -g
            st = self.state.get(p)
            if st is None:
                zeros = _F.zeros_like(p.detach())
                st = {"step": 0.0, "exp_avg": zeros, "exp_avg_sq": zeros}
                if amsgrad:
                    st["max_exp_avg_sq"] = zeros
                self.state[p] = st
            if wd != 0:
                if self._decoupled:
                    _replace(p, p * (1.0 - lr * wd))
                else:
                    g = g + p * wd
            step = st["step"] + 1.0
            st["step"] = step
            m = st["exp_avg"]
            m = m + (g - m) * (1.0 - beta1)
            v = st["exp_avg_sq"] * beta2 + g * g * (1.0 - beta2)
            st["exp_avg"], st["exp_avg_sq"] = m, v
            if amsgrad:
                v = _F.maximum(st["max_exp_avg_sq"], v)
                st["max_exp_avg_sq"] = v
            step_size = lr / (1.0 - beta1 ** step)
            bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
            denom = _F.sqrt(v) / bc2_sqrt + eps
            _replace(p, p - m / denom * step_size)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * weight_decay`` before the Adam
    update (default ``weight_decay=1e-2``)."""

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
