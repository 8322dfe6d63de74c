"""``LayerNorm``, ``BatchNorm1d`` and ``BatchNorm2d``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import functional as _F
from ...creation import ones, tensor, zeros
from ...errors import ShapeError
from ...ops.registry import no_grad
from .. import functional as F
from ..parameter import Parameter
from .module import Module


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dims, with learnable per-element
    ``weight`` (ones) and ``bias`` (zeros)."""

    def __init__(self, normalized_shape: Any, eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.normalized_shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                                 else tuple(normalized_shape))
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(*self.normalized_shape, dtype=dtype))
            if bias:
                self.bias = Parameter(zeros(*self.normalized_shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Any) -> Any:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


def _channel_state(m: Module, num_features: int, affine: bool, track: bool,
                   dtype: Any) -> None:
    """Batch and instance norm's per-channel ``weight``/``bias`` (ones, zeros) and running
    statistics with their counter, or None for each, as PyTorch registers them."""
    if affine:
        m.weight = Parameter(ones(num_features, dtype=dtype))
        m.bias = Parameter(zeros(num_features, dtype=dtype))
    else:
        m.register_parameter("weight", None)
        m.register_parameter("bias", None)
    if track:
        m.register_buffer("running_mean", zeros(num_features, dtype=dtype))
        m.register_buffer("running_var", ones(num_features, dtype=dtype))
        m.register_buffer("num_batches_tracked", tensor(0, dtype="int64"))
    else:
        m.register_buffer("running_mean", None)
        m.register_buffer("running_var", None)
        m.register_buffer("num_batches_tracked", None)


class _BatchNorm(Module):
    _ranks: tuple[int, ...] = ()
    _what = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _channel_state(self, num_features, affine, track_running_stats, dtype)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, counter 0."""
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1.0)
                self.num_batches_tracked.zero_()

    def forward(self, input: Any) -> Any:
        if input.ndim not in self._ranks:
            raise ShapeError(f"{type(self).__name__}: expected {self._what} input, got shape "
                             f"{tuple(input.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            nbt = self.num_batches_tracked
            if input._data is None or nbt._data is None:
                raise F._capture_refused(F._BN_CAPTURE)
            nbt._assign(np.asarray(nbt.numpy() + 1))
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(nbt.item())
        use_batch = self.training or not self.track_running_stats
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) input, with running statistics and a
    ``num_batches_tracked`` counter as in PyTorch."""

    _ranks = (2, 3)
    _what = "2-D (N, C) or 3-D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) input, with running statistics and a
    ``num_batches_tracked`` counter as in PyTorch."""

    _ranks = (4,)
    _what = "4-D (N, C, H, W)"


class GroupNorm(Module):
    """Group normalisation of (N, C, ...) input over ``num_groups`` channel groups, with a
    learnable per-channel ``weight`` (ones) and ``bias`` (zeros)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise ShapeError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = Parameter(ones(num_channels, dtype=dtype))
            self.bias = Parameter(zeros(num_channels, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Any) -> Any:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _InstanceNorm(Module):
    _nd = 1

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _channel_state(self, num_features, affine, track_running_stats, dtype)

    def forward(self, input: Any) -> Any:
        name = type(self).__name__
        nd = self._nd
        if input.ndim not in (nd + 1, nd + 2):
            raise ShapeError(f"{name}: expected a {nd + 1}-D (unbatched) or {nd + 2}-D input, "
                             f"got {tuple(input.shape)}")
        unbatched = input.ndim == nd + 1
        x = _F.unsqueeze(input, 0) if unbatched else input
        use_stats = self.training or not self.track_running_stats
        y = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_stats, 0.0 if self.momentum is None else self.momentum,
                            self.eps)
        return _F.squeeze(y, 0) if unbatched else y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of (N, C, L) (or (C, L)) input: each channel of each sample
    over its length. ``affine`` and ``track_running_stats`` default to False, as PyTorch."""

    _nd = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of (N, C, H, W) (or (C, H, W)) input: each channel of each
    sample over its positions."""

    _nd = 2


class RMSNorm(Module):
    """Root-mean-square normalisation over the trailing ``normalized_shape`` dims with a
    learnable ``weight`` (ones); ``eps=None`` uses the dtype's machine epsilon."""

    def __init__(self, normalized_shape: Any, eps: float | None = None,
                 elementwise_affine: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.normalized_shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                                 else tuple(normalized_shape))
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(ones(*self.normalized_shape, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def forward(self, input: Any) -> Any:
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
