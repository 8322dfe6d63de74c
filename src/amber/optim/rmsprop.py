"""RMSprop."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import functional as _F
from ..errors import ArgumentError
from .optimizer import Optimizer, _replace


class RMSprop(Optimizer):
    """PyTorch's RMSprop: ``v = alpha * v + (1 - alpha) g^2``; ``centered`` subtracts
    the squared running mean of ``g`` (``m = lerp(m, g, 1 - alpha)``) from ``v``;
    ``avg = sqrt(v) + eps``; with ``momentum`` ``buf = momentum * buf + g / avg`` and
    ``p -= lr * buf``, else ``p -= lr * g / avg``. ``weight_decay`` adds
    ``weight_decay * p`` to the gradient. State: ``step``, ``square_avg``,
    ``momentum_buffer`` (momentum > 0), ``grad_avg`` (centered)."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, *, maximize: bool = False) -> None:
        for name, v in (("learning rate", lr), ("epsilon value", eps),
                        ("momentum value", momentum), ("weight_decay value", weight_decay),
                        ("alpha value", alpha)):
            if v < 0.0:
                raise ArgumentError(f"RMSprop: invalid {name} {v}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered,
                                      maximize=maximize))

    def _update(self, group: dict[str, Any]) -> None:
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        wd, momentum, centered = group["weight_decay"], group["momentum"], group["centered"]
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            if group["maximize"]:
                g = -g
            st = self.state.get(p)
            if st is None:
                zeros = _F.zeros_like(p.detach())
                st = {"step": 0.0, "square_avg": zeros}
                if momentum > 0:
                    st["momentum_buffer"] = zeros
                if centered:
                    st["grad_avg"] = zeros
                self.state[p] = st
            st["step"] = st["step"] + 1.0
            if wd != 0:
                g = g + p * wd
            v = st["square_avg"] * alpha + g * g * (1.0 - alpha)
            st["square_avg"] = v
            if centered:
                m = st["grad_avg"]
                m = m + (g - m) * (1.0 - alpha)
                st["grad_avg"] = m
                avg = _F.sqrt(v - m * m) + eps
            else:
                avg = _F.sqrt(v) + eps
            if momentum > 0:
                buf = st["momentum_buffer"] * momentum + g / avg
                st["momentum_buffer"] = buf
                _replace(p, p - buf * lr)
            else:
                _replace(p, p - g / avg * lr)
