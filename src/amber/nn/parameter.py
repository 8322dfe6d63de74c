"""``Parameter``: a tensor that a ``Module`` registers as trainable."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad (unless told otherwise) and that a ``Module``
    lists in ``parameters()`` when assigned as an attribute. Shares memory with ``data``."""

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            arr = np.zeros((0,), dtype=np.float32)
        elif isinstance(data, Tensor):
            arr = data._concrete("Parameter(tensor)")
        else:
            from ..creation import _to_array

            arr = _to_array(data)
        self._data = arr
        self.requires_grad = False
        self.grad = None
        self._node = None
        self._aval = None
        self._value = None
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (Parameter, (np.array(self._data), self.requires_grad))
