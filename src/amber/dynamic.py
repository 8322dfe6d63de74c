"""Ops whose output shape depends on the values: ``nonzero``, ``unique``,
``masked_select``. They run eagerly; during capture they raise ``CaptureError`` naming
the user's line and a shape-static alternative. Gradients flow where PyTorch has them
(``masked_select``): the data-dependent part only chooses constant indices."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional as _F
from .errors import ShapeError
from .ops import shape as S
from .tensor import Tensor


def eager_only(x: Tensor, what: str, instead: str) -> np.ndarray:
    """``x``'s values, or the capture refusal for ``what`` if ``x`` is symbolic."""
    if x._data is None:
        from .capture_errors import eager_only_error

        raise eager_only_error(what, instead)
    return x._data


_MASK_HINT = ("keep the shape static with am.where(mask, x, 0) or x.masked_fill(~mask, 0), "
              "or reduce over the mask (e.g. (x * mask).sum())")


def _int64(a: np.ndarray) -> Tensor:
    return Tensor._wrap(np.ascontiguousarray(a, dtype=np.int64))


def nonzero(x: Tensor, *, as_tuple: bool = False) -> Any:
    """Indices of the non-zero elements: an int64 tensor of shape (count, ndim) in
    row-major order, or with ``as_tuple`` one 1-D tensor per dim (eager only)."""
    a = eager_only(_F._as_tensor(x), "am.nonzero", _MASK_HINT)
    if as_tuple:
        return tuple(_int64(i) for i in np.nonzero(np.atleast_1d(a)))
    return _int64(np.argwhere(a))


def argwhere(x: Tensor) -> Tensor:
    """``nonzero(x)`` (eager only)."""
    return nonzero(x)  # type: ignore[no-any-return]


def masked_select(x: Tensor, mask: Tensor) -> Tensor:
    """The elements of ``x`` where ``mask`` is True (both broadcast) as a 1-D tensor, in
    row-major order; differentiable in ``x``. Eager only, unless the mask is a constant."""
    x, mask = _F._as_tensor(x), _F._as_tensor(mask)
    m = eager_only(mask, "am.masked_select", _MASK_HINT)
    if m.dtype != np.bool_:
        raise ShapeError(f"masked_select: mask must be bool, got {mask.dtype.name}")
    xb, mb = _F.broadcast_tensors(x, mask)
    flat = _F.reshape_exact(xb, (xb.numel(),))
    return S.take(flat, _int64(np.flatnonzero(np.broadcast_to(m, tuple(mb.shape)))), axis=0)


def unique(x: Tensor, sorted: bool = True, return_inverse: bool = False,
           return_counts: bool = False, dim: int | None = None) -> Any:
    """The distinct values of ``x`` in ascending order (always sorted; ``sorted=False``
    is allowed, as PyTorch's order is then unspecified), flattened unless ``dim`` is
    given (then the distinct slices along ``dim``). ``return_inverse`` adds, for each
    input element (or slice), the position of its value in the output;
    ``return_counts`` adds how often each value occurs (eager only)."""
    x = _F._as_tensor(x)
    a = eager_only(x, "am.unique", "compute it before capture and pass the result in as "
                   "an input, or keep a fixed-size vocabulary")
    if dim is None:
        vals, inv, counts = np.unique(a.reshape(-1), return_inverse=True, return_counts=True,
                                      equal_nan=False)  # each NaN is distinct, as in PyTorch
        inv = inv.reshape(a.shape)
    else:
        d = _F._norm_dim(dim, x.ndim, "unique")
        vals, inv, counts = np.unique(a, return_inverse=True, return_counts=True, axis=d)
        inv = inv.reshape(-1)
    out: list[Tensor] = [Tensor._wrap(np.ascontiguousarray(vals))]
    if return_inverse:
        out.append(_int64(inv))
    if return_counts:
        out.append(_int64(counts))
    return out[0] if len(out) == 1 else tuple(out)
