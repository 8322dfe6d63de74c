"""Adagrad."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import functional as _F
from ..errors import ArgumentError
from .optimizer import Optimizer, _replace


class Adagrad(Optimizer):
    """PyTorch's Adagrad: ``sum += g^2``, ``p -= clr * g / (sqrt(sum) + eps)`` with
    ``clr = lr / (1 + (step - 1) * lr_decay)``; ``weight_decay`` adds
    ``weight_decay * p`` to the gradient. As in PyTorch, every parameter's state
    (``step``, ``sum`` filled with ``initial_accumulator_value``) exists from the
    start."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False) -> None:
        for name, v in (("learning rate", lr), ("lr_decay value", lr_decay),
                        ("weight_decay value", weight_decay),
                        ("initial_accumulator_value", initial_accumulator_value),
                        ("epsilon value", eps)):
            if v < 0.0:
                raise ArgumentError(f"Adagrad: invalid {name} {v}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))
        for group in self.param_groups:
            init = group["initial_accumulator_value"]
            for p in group["params"]:
                self.state[p] = {"step": 0.0, "sum": _F.full_like(p.detach(), init)}

    def _update(self, group: dict[str, Any]) -> None:
        lr, lr_decay, wd, eps = group["lr"], group["lr_decay"], group["weight_decay"], \
            group["eps"]
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            if group["maximize"]:
                g = -g
            st = self.state.get(p)
            if st is None:  # a parameter group added after construction
                st = {"step": 0.0, "sum": _F.full_like(
                    p.detach(), group["initial_accumulator_value"])}
                self.state[p] = st
            step = st["step"] + 1.0
            st["step"] = step
            if wd != 0:
                g = g + p * wd
            clr = lr / (1.0 + (step - 1.0) * lr_decay)
            s = st["sum"] + g * g
            st["sum"] = s
            _replace(p, p - g / (_F.sqrt(s) + eps) * clr)
