"""Collectives that autograd differentiates through (PyTorch's
``torch.distributed.nn.functional``): the result is a new tensor, and the gradient of a
sum over ranks is the sum over ranks of the gradients."""

from __future__ import annotations

from typing import Any

from ..autograd_function import Function
from ..errors import DistributedError
from ..tensor import Tensor
from ._mpi import Group, ReduceOp, group_or_default

__all__ = ["all_reduce"]


class _AllReduce(Function):
    @staticmethod
    def forward(ctx: Any, tensor: Tensor, op: ReduceOp, group: Group) -> Tensor:
        ctx.op, ctx.group = op, group
        out = Tensor._wrap(tensor.detach().numpy().copy())
        group.all_reduce(out.numpy(), op, blocking=True)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Any, ...]:
        # Every rank's result depends on every rank's input, with weight 1 (SUM) or
        # 1/world (AVG): the input's gradient reduces the output gradients the same way.
        return _AllReduce.apply(g, ctx.op, ctx.group), None, None


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM,
               group: Group | None = None) -> Tensor:
    """The reduction of ``tensor`` over the ranks, as a new tensor on every rank (the
    input is left alone); differentiable for SUM and AVG."""
    if op not in (ReduceOp.SUM, ReduceOp.AVG):
        raise DistributedError(f"amber.distributed.nn.all_reduce differentiates SUM and AVG, "
                               f"not {op.name}; use amber.distributed.all_reduce for values "
                               "without gradients")
    if not isinstance(tensor, Tensor) or tensor._data is None:
        raise DistributedError("amber.distributed.nn.all_reduce takes a concrete tensor "
                               "(collectives run eagerly, they are not captured)")
    return _AllReduce.apply(tensor, op, group_or_default(group))
