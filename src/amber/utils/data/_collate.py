"""``default_collate`` / ``default_convert``: PyTorch's rules for turning a list of
samples into a batch."""

from __future__ import annotations

import collections.abc as abc
from typing import Any

import numpy as np

from ... import _dtype as D
from ... import functional as _F
from ...creation import tensor as _tensor
from ...errors import AmberError
from ...tensor import Tensor


def _np_to_tensor(a: Any) -> Tensor:
    if a.dtype.kind in "OSUV":
        raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, "
                        f"numbers, dicts or lists; found an array of {a.dtype}")
    if a.dtype in D._BY_NP and a.flags.owndata:  # a fresh array of an amber dtype
        return Tensor._wrap(a)
    return _tensor(a)


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _rebuild(elem: Any, items: Any) -> Any:
    """A container like ``elem`` holding ``items`` (a plain list/dict if ``elem``'s type
    cannot be rebuilt that way)."""
    try:
        return type(elem)(items)
    except TypeError:
        return items if not isinstance(items, dict) else dict(items)


def default_collate(batch: list[Any]) -> Any:
    """Stack a list of samples into a batch, recursing into containers:

    - tensors are stacked along a new first dimension;
    - NumPy arrays and NumPy scalars become tensors, then are stacked;
    - Python floats become a float64 tensor, ints an int64 tensor, bools a bool tensor;
    - strings and bytes stay a list;
    - a mapping becomes a mapping of collated values, a namedtuple a namedtuple of
      collated fields, a tuple or list a *list* of collated positions (as PyTorch).
    """
    if not isinstance(batch, abc.Sequence) or len(batch) == 0:
        raise AmberError("default_collate expects a non-empty list of samples")
    elem = batch[0]
    if isinstance(elem, Tensor):
        shapes = {tuple(t.shape) for t in batch}
        if len(shapes) != 1:
            raise AmberError(f"default_collate: stack expects each tensor to be equal size, "
                             f"got shapes {sorted(shapes)}; pass a collate_fn that pads")
        return _F.stack(list(batch))
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "OSUV":
            _np_to_tensor(elem)  # raises the TypeError
        shapes = {a.shape for a in batch}
        if len(shapes) != 1:
            raise AmberError(f"default_collate: stack expects each array to be equal size, "
                             f"got shapes {sorted(shapes)}; pass a collate_fn that pads")
        return _np_to_tensor(np.stack(batch))
    if isinstance(elem, np.generic):
        return _np_to_tensor(np.array(batch))
    if isinstance(elem, float):
        return _tensor(batch, dtype="float64")
    if isinstance(elem, bool):
        return _tensor(batch, dtype="bool")
    if isinstance(elem, int):
        return _tensor(batch, dtype="int64")
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, abc.Mapping):
        return _rebuild(elem, {k: default_collate([d[k] for d in batch]) for k in elem})
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, abc.Sequence):
        n = len(elem)
        if any(len(s) != n for s in batch):
            raise AmberError("default_collate: each element in list of batch should be of "
                             "equal size")
        columns = [default_collate(list(s)) for s in zip(*batch)]
        return columns if isinstance(elem, tuple) else _rebuild(elem, columns)
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, "
                    f"dicts or lists; found {type(elem).__name__}")


def default_convert(data: Any) -> Any:
    """What ``DataLoader(batch_size=None)`` applies to each sample: NumPy arrays and
    scalars become tensors (recursively in containers); everything else is unchanged."""
    if isinstance(data, np.ndarray):
        return data if data.dtype.kind in "OSUV" else _tensor(data)
    if isinstance(data, np.generic):
        return _tensor(np.array(data))
    if isinstance(data, abc.Mapping):
        return _rebuild(data, {k: default_convert(v) for k, v in data.items()})
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild(data, [default_convert(d) for d in data])
    return data


__all__ = ["default_collate", "default_convert"]
