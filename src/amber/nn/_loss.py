"""More losses: binary cross entropy on probabilities, Huber and smooth L1, KL
divergence, cosine embedding and triplet margin losses."""

from __future__ import annotations

from .. import functional as _F
from ..errors import AmberError, ShapeError
from ..tensor import Tensor
from ._norm import pairwise_distance
from .functional import _pointwise_operands, _reduce, _reduction


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean") -> Tensor:
    """``-(t log p + (1 - t) log(1 - p))`` for probabilities ``input``; each log is
    clamped at -100, as in PyTorch."""
    red = _reduction(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(f"binary_cross_entropy: target shape {tuple(target.shape)} must "
                         f"equal input shape {tuple(input.shape)}")
    t = _F.cast(target, input.dtype)
    logp = _F.maximum(_F.log(input), -100.0)
    log1mp = _F.maximum(_F.log(1.0 - input), -100.0)
    loss = -(t * logp + (1.0 - t) * log1mp)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, red)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean",
               delta: float = 1.0, weight: Tensor | None = None) -> Tensor:
    """``0.5 d**2`` where ``|d| < delta``, ``delta (|d| - delta / 2)`` elsewhere."""
    red = _reduction(None, None, reduction)
    x, t = _pointwise_operands("huber_loss", input, target)
    d = x - t
    ad = _F.abs(d)
    loss = _F.where(ad < delta, d * d * 0.5, (ad - 0.5 * delta) * delta)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, red)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None,
                   reduce: bool | None = None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """``0.5 d**2 / beta`` where ``|d| < beta``, ``|d| - beta / 2`` elsewhere (L1 for
    ``beta=0``)."""
    red = _reduction(size_average, reduce, reduction)
    x, t = _pointwise_operands("smooth_l1_loss", input, target)
    d = x - t
    ad = _F.abs(d)
    if beta == 0:
        return _reduce(ad, red)
    return _reduce(_F.where(ad < beta, d * d * (0.5 / beta), ad - 0.5 * beta), red)


def kl_div(input: Tensor, target: Tensor, size_average: bool | None = None,
           reduce: bool | None = None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """Pointwise KL divergence ``t (log t - input)`` of log-probabilities ``input`` from
    ``target`` (probabilities, or log-probabilities with ``log_target``); 0 where t = 0.
    ``reduction='batchmean'`` divides the sum by the batch size."""
    if reduction == "batchmean":
        if size_average is not None or reduce is not None:
            raise AmberError("kl_div: reduction='batchmean' cannot be combined with "
                             "size_average or reduce")
        red = "batchmean"
    else:
        red = _reduction(size_average, reduce, reduction)
    x, t = _pointwise_operands("kl_div", input, target)
    if log_target:
        loss = _F.exp(t) * (t - x)
    else:
        pos = t > 0
        logt = _F.log(_F.where(pos, t, 1.0))
        loss = _F.where(pos, t * (logt - x), 0.0)
    if red == "batchmean":
        total = _F.sum(loss)
        return total / loss.shape[0] if loss.ndim else total
    return _reduce(loss, red)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          size_average: bool | None = None, reduce: bool | None = None,
                          reduction: str = "mean") -> Tensor:
    """``1 - cos(x1, x2)`` for target 1, ``max(0, cos(x1, x2) - margin)`` for target -1
    (cosine along the last dim, each squared norm offset by 1e-12 as in PyTorch)."""
    red = _reduction(size_average, reduce, reduction)
    if input1.ndim not in (1, 2) or tuple(input1.shape) != tuple(input2.shape):
        raise ShapeError(f"cosine_embedding_loss: inputs must be (N, D) or (D,) of one shape, "
                         f"got {tuple(input1.shape)} and {tuple(input2.shape)}")
    dim = input1.ndim - 1
    eps = 1e-12
    prod = _F.sum(input1 * input2, dim)
    m1 = _F.sum(input1 * input1, dim) + eps
    m2 = _F.sum(input2 * input2, dim) + eps
    cos = prod / _F.sqrt(m1 * m2)
    t = _F.cast(target, input1.dtype)
    zero = _F.zeros_like(cos)
    pos = _F.where(t == 1, 1.0 - cos, zero)
    neg = _F.where(t == -1, _F.maximum(cos - margin, 0.0), zero)
    return _reduce(pos + neg, red)


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor,
                        margin: float = 1.0, p: float = 2, eps: float = 1e-6,
                        swap: bool = False, size_average: bool | None = None,
                        reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """``max(d(a, p) - d(a, n) + margin, 0)`` with ``pairwise_distance`` d; ``swap`` uses
    ``min(d(a, n), d(p, n))`` as the negative distance."""
    red = _reduction(size_average, reduce, reduction)
    d_ap = pairwise_distance(anchor, positive, p, eps)
    d_an = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_an = _F.minimum(d_an, pairwise_distance(positive, negative, p, eps))
    return _reduce(_F.maximum(d_ap - d_an + margin, 0.0), red)


