"""Eager cross entropy of (N, C) logits and class indices on arrays, as one autograd entry.

The composed ``cross_entropy`` (log_softmax, a one-hot pick, a sum and a division) is a
dozen ops and as many autograd entries; a training step of a small model spends more time
dispatching them than computing. Outside capture, for the common case (2-D float logits,
integer targets, no class weights, no label smoothing, no ignored target, 'mean' or 'sum'),
this module runs the same kernels on arrays in the composed ops' order, so the loss is the
same bits, and records it with the composed ops' backward collapsed to its two live
terms, ``(g / N) * (exp(s) / sum(exp(s)) - onehot)`` in their operations and order (the
same bits again: exported training steps match eager ones).
Under capture the composed ops are traced, so files keep that graph."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as _F
from ..control import eager_kernel, record_call
from ..ops.registry import TraceHooks
from ..tensor import Tensor, _wrap_array

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def applies(input: Tensor, target: Tensor, ignore_index: int) -> bool:
    """Whether :func:`cross_entropy` computes this call (the caller has checked the
    reduction, weight and label smoothing)."""
    x, t = input._data, target._data
    return (x is not None and t is not None and not TraceHooks.active and x.ndim == 2
            and x.dtype in _FLOATS and t.dtype.kind in "iu" and t.shape == x.shape[:1]
            and x.size > 0 and not (t == ignore_index).any())


def cross_entropy(input: Tensor, target: Tensor, mean: bool) -> Tensor:
    """The mean (or sum) over rows of ``-log_softmax(input)[i, target[i]]``; targets in
    range (the caller checked them)."""
    x: Any = input._data
    idx = np.asarray(target._data, dtype=np.int64)
    m, c = x.shape
    reduce_max, reduce_sum = eager_kernel("max"), eager_kernel("sum")
    s = x - reduce_max(x, axes=(1,), keepdims=True)
    e = eager_kernel("exp")(s)
    se = reduce_sum(e, axes=(1,), keepdims=True)
    logp = s - eager_kernel("log")(se)
    onehot = idx[:, None] == np.arange(c)
    # the composed pick: a row sum of the one-hot selection, times the weight 1
    picked = reduce_sum(np.where(onehot, logp, np.zeros((), x.dtype)), axes=(1,),
                        keepdims=False)
    loss = -(picked * np.ones((), x.dtype))
    total = reduce_sum(loss, axes=(0,), keepdims=False)
    scale = x.dtype.type(m) if mean else None
    out = _wrap_array(total / scale if scale is not None else total)

    def backward(g: Tensor, create_graph: bool) -> tuple[Tensor | None]:
        if create_graph:
            hot = _wrap_array(onehot.astype(x.dtype))
            dg = (_F.softmax(input, 1) - hot) * g
            return (dg / float(m) if mean else dg,)
        # the composed ops' backward, op by op (the same bits as an exported training
        # step): the pick's cotangent -dt at the targets plus exp's (dt / se) * e
        gv: Any = g._data
        dt = gv / scale if scale is not None else gv
        d = np.where(onehot, -dt, np.zeros((), x.dtype))
        d += (dt / se) * e
        return (_wrap_array(d),)

    return record_call((input,), [out], backward)[0]
