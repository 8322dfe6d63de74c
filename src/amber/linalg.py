"""``am.linalg``: vector and matrix norms (torch.linalg's names and rules), composed from
amber ops. Norms of an all-zero input have gradient 0 there, as in PyTorch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _dtype as D
from . import functional as _F
from .errors import AmberError, ShapeError
from .tensor import Tensor


def _float_input(x: Any, dtype: Any, op: str) -> Tensor:
    x = _F._as_tensor(x)
    if dtype is not None:
        x = _F.cast(x, dtype)
    if not x.dtype.is_floating:
        raise D.DTypeError(f"{op}: expects a floating tensor, got {x.dtype.name}; pass "
                           f"dtype=am.float32 or call .float()")
    return x


def _root(s: Tensor, p: float) -> Tensor:
    """``s ** (1/p)`` with gradient 0 where ``s`` is 0 (instead of inf * 0)."""
    zero = _F.eq(s, 0)
    safe = _F.where(zero, 1.0, s)
    root = _F.sqrt(safe) if p == 2 else _F.pow(safe, 1.0 / p)
    return _F.where(zero, 0.0, root)


def vector_norm(x: Any, ord: Any = 2, dim: Any = None, keepdim: bool = False, *,
                dtype: Any = None) -> Tensor:
    """``(sum |x|**ord) ** (1/ord)`` over ``dim`` (all elements if None); ``ord`` inf /
    -inf give the largest / smallest ``|x|``, 0 the number of non-zero elements."""
    x = _float_input(x, dtype, "vector_norm")
    if isinstance(ord, str):
        raise AmberError(f"vector_norm: ord must be a number, got {ord!r}")
    ord = float(ord)
    a = _F.abs(x)
    if ord == math.inf:
        return _F.amax(a, dim, keepdim)
    if ord == -math.inf:
        return _F.amin(a, dim, keepdim)
    if ord == 0:
        return _F.sum(_F.cast(_F.ne(x, 0), x.dtype), dim, keepdim)
    if ord == 1:
        return _F.sum(a, dim, keepdim)
    if ord == 2:
        return _root(_F.sum(x * x, dim, keepdim), 2)
    return _root(_F.sum(_F.pow(a, ord), dim, keepdim), ord)


def _two_dims(dim: Any, ndim: int, op: str) -> tuple[int, int]:
    if len(dim) != 2:
        raise ShapeError(f"{op}: dim must name two dims, got {dim}")
    r, c = (_F._norm_dim(d, ndim, op) for d in dim)
    if r == c:
        raise ShapeError(f"{op}: dim names dim {r} twice")
    return r, c


def matrix_norm(x: Any, ord: Any = "fro", dim: Any = (-2, -1), keepdim: bool = False, *,
                dtype: Any = None) -> Tensor:
    """Norm of the matrices spanned by ``dim``: ``'fro'`` (Frobenius), 1 / -1 (largest /
    smallest column sum of ``|x|``), inf / -inf (largest / smallest row sum). The
    spectral and nuclear norms (2, -2, ``'nuc'``) need an SVD and are not supported."""
    x = _float_input(x, dtype, "matrix_norm")
    if x.ndim < 2:
        raise ShapeError(f"matrix_norm: expects a tensor of rank >= 2, got {tuple(x.shape)}")
    r, c = _two_dims(tuple(dim), x.ndim, "matrix_norm")
    if ord == "fro":
        return vector_norm(x, 2, (r, c), keepdim)
    if ord in (2, -2, "nuc"):
        raise AmberError(f"matrix_norm: ord={ord!r} needs singular values, which amber does "
                         f"not compute; use 'fro', 1, -1, inf or -inf")
    if ord not in (1, -1, math.inf, -math.inf):
        raise AmberError(f"matrix_norm: ord={ord!r} is not a matrix norm ('fro', 1, -1, inf, "
                         f"-inf)")
    inner, outer = (r, c) if ord in (1, -1) else (c, r)
    sums = _F.sum(_F.abs(x), inner, keepdim=True)
    out = _F.amax(sums, outer, keepdim=True) if ord > 0 else _F.amin(sums, outer, keepdim=True)
    return out if keepdim else _F.squeeze(out, (r, c))


def norm(x: Any, ord: Any = None, dim: Any = None, keepdim: bool = False, *,
         dtype: Any = None) -> Tensor:
    """torch.linalg.norm: with ``ord`` None, the 2-norm of the flattened tensor (or over
    ``dim``; Frobenius for two dims). Otherwise ``dim`` (or the rank, when ``dim`` is
    None) chooses: one dim a vector norm, two dims a matrix norm."""
    x = _F._as_tensor(x)
    if isinstance(dim, int):
        dim = (dim,)
    if dim is None:
        if ord is None:
            return vector_norm(x, 2, None, keepdim, dtype=dtype)
        if x.ndim not in (1, 2):
            raise ShapeError(f"linalg.norm: with ord given and dim None, the input must be "
                             f"1-D or 2-D, got shape {tuple(x.shape)}")
        dim = tuple(range(x.ndim))
    dim = tuple(dim)
    if len(dim) == 1:
        return vector_norm(x, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    return matrix_norm(x, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)


def torch_norm(x: Any, p: Any = "fro", dim: Any = None, keepdim: bool = False,
               dtype: Any = None) -> Tensor:
    """torch.norm: the vector ``p``-norm over ``dim`` (all dims if None); ``'fro'`` is the
    2-norm over those dims; ``'nuc'`` is not supported."""
    if p == "nuc":
        raise AmberError("norm: p='nuc' needs singular values, which amber does not compute")
    if isinstance(p, str) and p != "fro":
        raise AmberError(f"norm: p must be a number, 'fro' or 'nuc', got {p!r}")
    if isinstance(dim, int):
        dim = (dim,)
    return vector_norm(x, 2 if p in ("fro", None) else p, dim, keepdim, dtype=dtype)


__all__ = ["det", "matrix_norm", "norm", "vector_norm"]


def _column(a: Tensor, j: int) -> Tensor:
    return _F.squeeze(_F.narrow(a, -1, j, 1), -1)


def det(A: Any) -> Tensor:
    """Determinant of each (..., n, n) matrix (torch.linalg.det), by Gaussian elimination
    with partial pivoting unrolled over the static size n; differentiable (the pivot
    choice is piecewise constant). A singular matrix gives 0."""
    a = _float_input(A, None, "det")
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"det: expects (..., n, n) matrices, got {tuple(a.shape)}")
    n = a.shape[-1]
    if not isinstance(n, int):
        raise ShapeError(f"det: the matrix size must be static, got {n}")
    batch = tuple(a.shape[:-2])
    if n == 0:
        return _F.ones_like(_F.sum(a, (-2, -1)))
    rows = Tensor._wrap(np.arange(n, dtype=np.int64))
    sign: Any = 1.0
    product: Any = None
    for j in range(n):
        column = _column(a, j)  # (..., n)
        p = _F.argmax(_F.where(rows >= j, _F.abs(column), -1.0), -1, keepdim=True)
        order = _F.where(rows == j, p, _F.where(rows == p, j, rows))  # swap rows j and p
        a = _F.gather(a, -2, _F.broadcast_to(_F.unsqueeze(order, -1), batch + (n, n)))
        sign = _F.where(_F.squeeze(p, -1) != j, -sign, sign) if j < n - 1 else sign
        pivot = _F.squeeze(_F.narrow(_column(a, j), -1, j, 1), -1)  # (...)
        product = pivot if product is None else product * pivot
        if j < n - 1:
            safe = _F.unsqueeze(_F.where(pivot == 0.0, 1.0, pivot), -1)
            factor = _F.where(rows > j, _column(a, j) / safe, 0.0)
            a = a - _F.unsqueeze(factor, -1) * _F.narrow(a, -2, j, 1)
    return product * sign
