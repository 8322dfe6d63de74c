"""1-D convolution and transposed convolutions (``F.conv1d``, ``F.conv_transpose1d``,
``F.conv_transpose2d``), composed from the ``conv2d`` primitives: a 1-D convolution is a
2-D one over a height of 1, and a transposed convolution is the input-gradient of a
convolution (``conv2d_input_grad``), which is what PyTorch's definition says it is."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _dtype as D
from .. import functional as _F
from ..errors import ShapeError
from ..ops import linalg as L
from ..ops import shape as S
from ..tensor import Tensor
from .functional import _check_rank, _pair, conv2d


def _single(v: Any, name: str, op: str) -> int:
    if isinstance(v, (int, np.integer)):
        return int(v)
    t = tuple(int(a) for a in v)
    if len(t) != 1:
        raise ShapeError(f"{op}: {name} must be an int or a 1-tuple, got {v!r}")
    return t[0]


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """1-D cross-correlation over (N, C, L) (or unbatched (C, L)) input with weight
    (out_channels, in_channels/groups, kL); ``padding`` is an int, 'same' or 'valid'."""
    _check_rank("conv1d", input, (2, 3), "a (N, C, L) or (C, L) input")
    if weight.ndim != 3:
        raise ShapeError(f"conv1d: weight must be (out_channels, in_channels/groups, kL), got "
                         f"{tuple(weight.shape)}")
    pad = padding if isinstance(padding, str) else (0, _single(padding, "padding", "conv1d"))
    y = conv2d(_F.unsqueeze(input, -2), _F.unsqueeze(weight, 2), bias,
               (1, _single(stride, "stride", "conv1d")), pad,
               (1, _single(dilation, "dilation", "conv1d")), groups)
    return _F.squeeze(y, -2)


def _transposed_size(op: str, n: Any, k: int, s: int, p: int, op_: int, d: int) -> Any:
    if op_ >= max(s, d) or op_ < 0:
        raise ShapeError(f"{op}: output_padding ({op_}) must be smaller than either stride "
                         f"({s}) or dilation ({d})")
    out = (n - 1) * s - 2 * p + d * (k - 1) + op_ + 1
    if isinstance(out, int) and out < 1:
        raise ShapeError(f"{op}: the output size {out} is not positive (input size {n}, "
                         f"kernel {k}, stride {s}, padding {p})")
    return out


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None,
                     stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                     groups: int = 1, dilation: Any = 1) -> Tensor:
    """Transposed 2-D convolution over (N, C_in, H, W) (or (C_in, H, W)) input with weight
    (in_channels, out_channels/groups, kH, kW): the gradient of ``conv2d`` with respect to
    its input. Output size ``(H - 1) * stride - 2 * padding + dilation * (kH - 1) +
    output_padding + 1`` (each spatial dim)."""
    op = "conv_transpose2d"
    _check_rank(op, input, (3, 4), "a (N, C, H, W) or (C, H, W) input")
    if weight.ndim != 4:
        raise ShapeError(f"{op}: weight must be (in_channels, out_channels/groups, kH, kW), "
                         f"got {tuple(weight.shape)}")
    unbatched = input.ndim == 3
    x = _F.unsqueeze(input, 0) if unbatched else input
    if x.shape[1] != weight.shape[0]:
        raise ShapeError(f"{op}: input has {x.shape[1]} channels but weight "
                         f"{tuple(weight.shape)} expects in_channels={weight.shape[0]}")
    if groups < 1 or weight.shape[0] % groups:
        raise ShapeError(f"{op}: in_channels ({weight.shape[0]}) must be divisible by "
                         f"groups ({groups})")
    s, p = _pair(stride, "stride", op), _pair(padding, "padding", op)
    o, d = _pair(output_padding, "output_padding", op), _pair(dilation, "dilation", op)
    if min(s) < 1 or min(d) < 1 or min(p) < 0:
        raise ShapeError(f"{op}: need stride, dilation >= 1 and padding >= 0 (stride={s}, "
                         f"dilation={d}, padding={p})")
    hw = tuple(_transposed_size(op, x.shape[2 + i], weight.shape[2 + i], s[i], p[i], o[i], d[i])
               for i in range(2))
    if x.dtype is not weight.dtype:
        dt = D.promote(x.dtype, weight.dtype)
        x, weight = _F.cast(x, dt), _F.cast(weight, dt)
    if all(isinstance(n, int) for n in hw):
        y = L.conv2d_input_grad(x, weight, input_hw=hw, stride=s,
                                padding=(p[0], p[0], p[1], p[1]), dilation=d, groups=int(groups))
    else:
        y = _transposed_by_conv(x, weight, s, p, o, d, int(groups))
    if bias is not None:
        y = y + _F.reshape(bias, (1, -1, 1, 1))
    return _F.squeeze(y, 0) if unbatched else y


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None,
                     stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                     groups: int = 1, dilation: Any = 1) -> Tensor:
    """Transposed 1-D convolution over (N, C_in, L) (or (C_in, L)) input with weight
    (in_channels, out_channels/groups, kL)."""
    op = "conv_transpose1d"
    _check_rank(op, input, (2, 3), "a (N, C, L) or (C, L) input")
    if weight.ndim != 3:
        raise ShapeError(f"{op}: weight must be (in_channels, out_channels/groups, kL), got "
                         f"{tuple(weight.shape)}")
    y = conv_transpose2d(_F.unsqueeze(input, -2), _F.unsqueeze(weight, 2), bias,
                         (1, _single(stride, "stride", op)), (0, _single(padding, "padding", op)),
                         (0, _single(output_padding, "output_padding", op)), groups,
                         (1, _single(dilation, "dilation", op)))
    return _F.squeeze(y, -2)


def _transposed_by_conv(x: Tensor, w: Tensor, s: tuple[int, int], p: tuple[int, int],
                        o: tuple[int, int], d: tuple[int, int], groups: int) -> Tensor:
    """The same transposed convolution as a direct one, for symbolic spatial sizes: spread
    the input ``stride - 1`` apart, pad by ``dilation * (k - 1) - padding`` (plus
    ``output_padding`` at the end), and convolve with the flipped kernel whose in/out
    channels are swapped per group."""
    cin, og, kh, kw = w.shape
    wf = _F.flip(w, (2, 3))
    wf = _F.reshape(wf, (groups, cin // groups, og, kh, kw))
    wf = _F.reshape(_F.transpose(wf, 1, 2), (groups * og, cin // groups, kh, kw))
    lo = [d[i] * (k - 1) - p[i] for i, k in enumerate((kh, kw))]
    hi = [lo[i] + o[i] for i in range(2)]
    crop_lo, crop_hi = [max(-v, 0) for v in lo], [max(-v, 0) for v in hi]
    x = S.pad(x, lo=(0, 0, max(lo[0], 0), max(lo[1], 0)), hi=(0, 0, max(hi[0], 0), max(hi[1], 0)),
              interior=(0, 0, s[0] - 1, s[1] - 1), value=0.0)
    if any(crop_lo) or any(crop_hi):
        x = S.slice_(x, starts=(0, 0, crop_lo[0], crop_lo[1]),
                     stops=(x.shape[0], x.shape[1], x.shape[2] - crop_hi[0],
                            x.shape[3] - crop_hi[1]), steps=(1, 1, 1, 1))
    return L.conv2d(x, wf, stride=(1, 1), padding=(0, 0, 0, 0), dilation=d, groups=groups)
