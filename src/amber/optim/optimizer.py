"""``Optimizer``: the base class, with PyTorch's parameter groups and state format.

Updates run under ``am.no_grad()`` and are written with amber ops; parameters are
updated with the in-place helpers (``p.copy_``), which replace a tensor's buffer, so
views taken before a step keep their old values."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .. import _dtype as D
from ..errors import AmberError
from ..ops.registry import no_grad
from ..tensor import Tensor


def _replace(p: Tensor, new: Tensor) -> None:
    """``p.copy_(new)`` for a ``new`` that an op just produced: eagerly, the fresh buffer
    is adopted without a second copy (this is the training hot path)."""
    d, nd = p._data, new._data
    if (d is not None and nd is not None and type(nd) is np.ndarray and nd.dtype == d.dtype
            and nd.shape == d.shape and nd.flags.writeable and nd.flags.c_contiguous):
        p._data = nd
    else:
        p.copy_(new)


class _Required:
    def __repr__(self) -> str:
        return "<required parameter>"


required: Any = _Required()


class Optimizer:
    """Base class: holds ``param_groups`` (list of dicts with a ``"params"`` list and the
    group's hyper-parameters) and per-parameter ``state``. Subclasses implement
    ``_update(group)``."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise AmberError(f"{type(self).__name__}: params must be an iterable of tensors or "
                             f"dicts, got a single Tensor; pass [tensor] or model.parameters()")
        groups = list(params)
        if not groups:
            raise AmberError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (the defaults fill in
        the rest)."""
        if not isinstance(param_group, dict):
            raise AmberError(f"param group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise AmberError(f"{type(self).__name__} can only optimize Tensors, got "
                                 f"{type(p).__name__}")
            if not p.is_leaf:
                raise AmberError(f"{type(self).__name__}: can't optimize a non-leaf Tensor")
            if not p.dtype.is_floating:
                raise D.DTypeError(f"{type(self).__name__}: can only optimize floating-point "
                                   f"tensors, got {p.dtype.name}")
        group["params"] = params
        for k, v in self.defaults.items():
            if v is required and k not in group:
                raise AmberError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {k}")
            group.setdefault(k, v)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise AmberError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset gradients of all optimized parameters (to None, or to zeros)."""
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = Tensor._wrap(np.zeros_like(p.grad.numpy()))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient. ``closure`` (optional)
        re-evaluates the model and returns the loss, which ``step`` returns."""
        loss = None
        if closure is not None:
            from ..ops.registry import enable_grad

            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._update(group)
        return loss

    def _update(self, group: dict[str, Any]) -> None:
        raise AmberError(f"{type(self).__name__} does not implement an update")

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: value}}, "param_groups": [{..., "params": [index]}]}``
        with parameters numbered in group order, as PyTorch does."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: (v.detach() if isinstance(v, Tensor) else v)
                                           for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and state saved by ``state_dict`` (values may be amber
        Tensors or NumPy arrays; they are converted to each parameter's dtype)."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise AmberError(f"loaded state dict has {len(saved)} parameter groups, the "
                             f"optimizer has {len(self.param_groups)}")
        for i, (g, s) in enumerate(zip(self.param_groups, saved, strict=True)):
            if len(g["params"]) != len(s["params"]):
                raise AmberError(f"loaded state dict's parameter group {i} has "
                                 f"{len(s['params'])} parameters, the optimizer's has "
                                 f"{len(g['params'])}")
        new_state: dict[Tensor, dict[str, Any]] = {}
        saved_state = state_dict["state"]
        for g, s in zip(self.param_groups, saved, strict=True):
            for p, idx in zip(g["params"], s["params"], strict=True):
                entry = saved_state.get(idx, saved_state.get(str(idx)))
                if entry is not None:
                    new_state[p] = {k: self._restore(p, k, v) for k, v in entry.items()}
            for k, v in s.items():  # every saved key, as PyTorch (e.g. "initial_lr")
                if k != "params":
                    g[k] = tuple(v) if k == "betas" else copy.deepcopy(v)
        self.state = new_state

    @staticmethod
    def _restore(p: Tensor, key: str, value: Any) -> Any:
        if value is None or isinstance(value, (int, float)):
            return value
        arr = value.detach().numpy() if isinstance(value, Tensor) else np.asarray(value)
        if key == "step":
            return float(arr)
        if tuple(arr.shape) != tuple(p.shape):
            raise AmberError(f"optimizer state {key!r} has shape {tuple(arr.shape)}, the "
                             f"parameter has {tuple(p.shape)}")
        return Tensor._wrap(np.array(arr, dtype=p.detach().numpy().dtype))

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)
