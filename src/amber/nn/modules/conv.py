"""``Conv2d``."""

from __future__ import annotations

from typing import Any

from ...creation import empty
from ...errors import AmberError, ShapeError
from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module


class Conv2d(Module):
    """2-D convolution over (N, C, H, W) input; weight (out_channels,
    in_channels/groups, kH, kW), initialised like PyTorch. ``padding_mode`` is 'zeros',
    'reflect', 'replicate' or 'circular'."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ShapeError(f"Conv2d: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise AmberError(f"Conv2d: padding_mode must be 'zeros', 'reflect', 'replicate' "
                             f"or 'circular', got {padding_mode!r}")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise AmberError(f"Conv2d: padding must be an int, a pair, 'same' or 'valid', got "
                             f"{padding!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = F._pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = F._pair(stride, "stride", "Conv2d")
        self.padding: str | tuple[int, int] = (
            padding if isinstance(padding, str) else F._pair(padding, "padding", "Conv2d"))
        self.dilation = F._pair(dilation, "dilation", "Conv2d")
        self.groups = groups
        self.padding_mode = padding_mode
        kh, kw = self.kernel_size
        self.weight = Parameter(empty(out_channels, in_channels // groups, kh, kw, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw weight and bias with the default initialisation."""
        init._reset_layer(self.weight, self.bias)

    def forward(self, input: Any) -> Any:
        if self.padding_mode == "zeros":
            return F.conv2d(input, self.weight, self.bias, self.stride, self.padding,
                            self.dilation, self.groups)
        if self.padding == "valid":
            amounts: tuple[int, ...] = (0, 0, 0, 0)
        elif self.padding == "same":
            th = self.dilation[0] * (self.kernel_size[0] - 1)
            tw = self.dilation[1] * (self.kernel_size[1] - 1)
            amounts = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        else:
            ph, pw = F._pair(self.padding, "padding", "Conv2d")
            amounts = (pw, pw, ph, ph)
        x = F.pad(input, amounts, mode=self.padding_mode)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


def _tuple(v: Any, n: int, name: str, op: str) -> tuple[int, ...]:
    t = (int(v),) * n if isinstance(v, int) else tuple(int(a) for a in v)
    if len(t) == 1 and n > 1:
        t = t * n
    if len(t) != n:
        raise ShapeError(f"{op}: {name} must be an int or a {n}-tuple, got {v!r}")
    return t


class _ConvNd(Module):
    """Parameters, initialisation and repr shared by Conv1d and the transposed convs."""

    _nd = 1
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any,
                 padding: Any, dilation: Any, groups: int, bias: bool, padding_mode: str,
                 output_padding: Any = 0, dtype: Any = None) -> None:
        super().__init__()
        op = type(self).__name__
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ShapeError(f"{op}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise AmberError(f"{op}: padding_mode must be 'zeros', 'reflect', 'replicate' or "
                             f"'circular', got {padding_mode!r}")
        if self._transposed and padding_mode != "zeros":
            raise AmberError(f"{op}: only padding_mode='zeros' is supported for transposed "
                             f"convolutions")
        if isinstance(padding, str) and (self._transposed or padding not in ("same", "valid")):
            raise AmberError(f"{op}: padding must be an int or a tuple"
                             + ("" if self._transposed else ", 'same' or 'valid'")
                             + f", got {padding!r}")
        n = self._nd
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _tuple(kernel_size, n, "kernel_size", op)
        self.stride = _tuple(stride, n, "stride", op)
        self.padding: Any = padding if isinstance(padding, str) else \
            _tuple(padding, n, "padding", op)
        self.dilation = _tuple(dilation, n, "dilation", op)
        self.output_padding = _tuple(output_padding, n, "output_padding", op)
        self.groups = groups
        self.padding_mode = padding_mode
        shape = ((in_channels, out_channels // groups) if self._transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = Parameter(empty(*shape, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw weight and bias with the default initialisation."""
        init._reset_layer(self.weight, self.bias)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L) input; weight (out_channels, in_channels/groups, kL),
    initialised like PyTorch. ``padding_mode`` is 'zeros', 'reflect', 'replicate' or
    'circular'."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, dtype=dtype)

    def forward(self, input: Any) -> Any:
        if self.padding_mode == "zeros":
            return F.conv1d(input, self.weight, self.bias, self.stride, self.padding,
                            self.dilation, self.groups)
        if self.padding == "valid":
            amounts: tuple[int, ...] = (0, 0)
        elif self.padding == "same":
            t = self.dilation[0] * (self.kernel_size[0] - 1)
            amounts = (t // 2, t - t // 2)
        else:
            amounts = (self.padding[0], self.padding[0])
        x = F.pad(input, amounts, mode=self.padding_mode)
        return F.conv1d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def _output_padding(self, input: Any, output_size: Any) -> tuple[int, ...]:
        if output_size is None:
            return self.output_padding
        n = self._nd
        want = tuple(int(s) for s in output_size)[-n:]
        if len(want) != n:
            raise ShapeError(f"{type(self).__name__}: output_size must have at least {n} "
                             f"entries, got {output_size!r}")
        pads = []
        for i in range(n):
            size = input.shape[input.ndim - n + i]
            least = ((size - 1) * self.stride[i] - 2 * self.padding[i]
                     + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            extra = want[i] - least
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ShapeError(f"{type(self).__name__}: output_size {tuple(want)} is not "
                                 f"reachable from input {tuple(input.shape)} (dim {i} can be "
                                 f"{least} to {least + max(self.stride[i], self.dilation[i]) - 1})")
            pads.append(extra)
        return tuple(pads)


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution over (N, C_in, L) input; weight (in_channels,
    out_channels/groups, kL). ``forward(input, output_size=None)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, dtype=dtype)

    def forward(self, input: Any, output_size: Any = None) -> Any:
        return F.conv_transpose1d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups,
                                  self.dilation)


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution over (N, C_in, H, W) input; weight (in_channels,
    out_channels/groups, kH, kW). ``forward(input, output_size=None)``."""

    _nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, dtype=dtype)

    def forward(self, input: Any, output_size: Any = None) -> Any:
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups,
                                  self.dilation)
