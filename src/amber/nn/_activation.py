"""More activations: ``prelu``, ``hardswish``, ``hardsigmoid``, ``relu6``, ``mish``,
``glu``, ``selu``, ``celu``, ``softsign``, composed from primitives with PyTorch's
gradients at the kinks."""

from __future__ import annotations

from .. import functional as _F
from ..errors import ShapeError
from ..tensor import Tensor
from .functional import elu, softplus

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x for x > 0, ``weight * x`` otherwise; ``weight`` has one element or one per
    channel (dim 1)."""
    n = weight.numel()
    if weight.ndim > 1 or (n != 1 and (input.ndim < 2 or input.shape[1] != n)):
        raise ShapeError(f"prelu: weight {tuple(weight.shape)} must have 1 element or one per "
                         f"channel of input {tuple(input.shape)}")
    w = weight
    if n != 1:
        w = _F.reshape(weight, (n,) + (1,) * (input.ndim - 2))
    elif weight.ndim:
        w = _F.reshape(weight, ())
    return _F.where(input > 0, input, w * input)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6); NaN stays NaN, and -0 gives +0."""
    # NOTE: each step reads the one before (x <= 0 ? 0 : x, then y >= 6 ? 6 : y: the same
    # values and gradients as testing x twice): a chain the native runtime fuses into a
    # convolution's registers.
    y = _F.where(input <= 0, 0.0, input)
    return _F.where(y >= 6, 6.0, y)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """0 for x <= -3, 1 for x >= 3, ``x / 6 + 1/2`` between."""
    return _F.where(input <= -3, 0.0, _F.where(input >= 3, 1.0, input / 6.0 + 0.5))


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * hardsigmoid(x)``: 0 for x < -3, x for x > 3, ``x (x + 3) / 6`` between."""
    return _F.where(input < -3, 0.0, _F.where(input <= 3, input * (input + 3.0) / 6.0, input))


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * tanh(softplus(x))``."""
    return input * _F.tanh(softplus(input))


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """Gated linear unit: the first half of ``dim`` times sigmoid of the second half."""
    d = _F._norm_dim(dim, input.ndim, "glu")
    if input.shape[d] % 2:
        raise ShapeError(f"glu: dim {dim} of input {tuple(input.shape)} must have an even size")
    a, b = _F.chunk(input, 2, d)
    return a * _F.sigmoid(b)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """``scale * elu(x, alpha)`` with the self-normalising constants."""
    return elu(input, _SELU_ALPHA) * _SELU_SCALE


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, ``alpha * (exp(x / alpha) - 1)`` otherwise."""
    pos = input > 0
    return _F.where(pos, input, (_F.exp(_F.where(pos, 0.0, input) / alpha) - 1.0) * alpha)


def softsign(input: Tensor) -> Tensor:
    """``x / (1 + |x|)``."""
    return input / (_F.abs(input) + 1.0)
