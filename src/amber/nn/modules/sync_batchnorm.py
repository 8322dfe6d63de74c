"""``SyncBatchNorm``: batch normalisation whose training statistics are those of the
global batch, summed over the ranks of a process group."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import distributed as dist
from ... import functional as _F
from ...creation import full
from ...distributed import nn as dist_nn
from ...errors import ShapeError
from ...ops import reduce as R
from ...ops.registry import no_grad
from .module import Module
from .normalization import _BatchNorm


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation of (N, C, ...) input. In training on a process group of more
    than one rank, the mean and variance are those of the global batch (every rank's
    samples), so two ranks at batch 16 normalise as one process at batch 32, gradients
    included; the running statistics are updated with them on every rank alike. In
    evaluation, outside a process group or on one rank it is ``BatchNorm``.

    NOTE: two small all-reduces per call in training (the sums, then the centred sums of
    squares: two passes, as one process computes them, not ``E[x^2] - E[x]^2``)."""

    _ranks = tuple(range(2, 9))
    _what = "(N, C, ...)"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 process_group: Any = None, device: Any = None, dtype: Any = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats,
                         device, dtype)
        self.process_group = process_group

    def _group(self) -> Any:
        if not dist.is_initialized():
            return None
        group = dist.group_or_default(self.process_group)
        return group if group.size > 1 else None

    def forward(self, input: Any) -> Any:
        group = self._group() if self.training else None
        if group is None:
            return super().forward(input)
        if input.ndim not in self._ranks:
            raise ShapeError(f"SyncBatchNorm: expected {self._what} input, got shape "
                             f"{tuple(input.shape)}")
        c = input.shape[1]
        axes = (0,) + tuple(range(2, input.ndim))
        bshape = (1, c) + (1,) * (input.ndim - 2)
        local = input.numel() // c
        counts = full((1,), float(local), dtype=input.dtype)
        sums = dist_nn.all_reduce(_F.cat([R.reduce_sum(input, axes=axes, keepdims=False), counts]),
                                  group=group)
        count = float(sums[c].item())
        if count <= 1:
            raise ShapeError(f"SyncBatchNorm: expected more than 1 value per channel when "
                             f"training, got {int(count)} over the group")
        mean = sums[:c] / count
        xc = input - _F.reshape(mean, bshape)
        squares = R.reduce_sum(xc * xc, axes=axes, keepdims=False)
        var = dist_nn.all_reduce(squares, group=group) / count
        if self.track_running_stats:
            self._update_running(mean, var, count)
        y = xc * _F.reshape(_F.rsqrt(var + self.eps), bshape)
        if self.weight is not None:
            y = y * _F.reshape(self.weight, bshape) + _F.reshape(self.bias, bshape)
        return y

    def _update_running(self, mean: Any, var: Any, count: float) -> None:
        with no_grad():
            nbt = self.num_batches_tracked
            nbt._assign(np.asarray(nbt.numpy() + 1))
            factor = (1.0 / float(nbt.item()) if self.momentum is None else self.momentum)
            unbiased = var.detach() * (count / (count - 1))
            self.running_mean.copy_(self.running_mean * (1.0 - factor)
                                    + mean.detach() * factor)
            self.running_var.copy_(self.running_var * (1.0 - factor) + unbiased * factor)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: Any = None) -> Module:
        """``module`` with every ``BatchNorm*d`` replaced by a ``SyncBatchNorm`` holding
        the same parameters, buffers and training mode (as PyTorch's)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            out = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, process_group)
            with no_grad():
                for name, p in module.named_parameters(recurse=False):
                    setattr(out, name, p)
                for name, b in module.named_buffers(recurse=False):
                    setattr(out, name, b)
            out.train(module.training)
            return out
        for name, child in list(module.named_children()):
            setattr(module, name, cls.convert_sync_batchnorm(child, process_group))
        return module
