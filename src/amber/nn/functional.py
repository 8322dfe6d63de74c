"""``amber.nn.functional``: PyTorch's ``torch.nn.functional`` in amber.

Signatures follow PyTorch's, so code ports by changing the import. Every function is a
composite of amber primitives (no NumPy on tensor data in a differentiable path), so it
is differentiable to any order and can be captured into a graph."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _dtype as D
from .. import functional as _F
from ..creation import Generator, arange, rand
from ..errors import AmberError, CaptureError, DTypeError, OutOfRangeError, ShapeError
from ..functional import log_softmax, sigmoid, softmax, tanh
from ..ops import elementwise as E
from ..ops import linalg as L
from ..ops import pool as P
from ..ops import reduce as R
from ..ops import shape as S
from ..ops._infer import broadcast_shapes
from ..ops.registry import REGISTRY, Node, Primitive, TraceHooks, is_grad_enabled, no_grad
from ..tensor import Tensor, _wrap_array

__all__ = [
    "avg_pool2d", "batch_norm", "binary_cross_entropy_with_logits", "conv2d", "cross_entropy",
    "dropout", "elu", "embedding", "gelu", "hardtanh", "l1_loss", "layer_norm", "leaky_relu",
    "linear", "log_softmax", "logsigmoid", "max_pool2d", "mse_loss", "nll_loss", "one_hot",
    "pad", "relu", "sigmoid", "silu", "softmax", "softplus", "tanh",
]


def _pair(v: Any, name: str, op: str) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    t = tuple(int(a) for a in v)
    if len(t) == 1:
        return t[0], t[0]
    if len(t) != 2:
        raise ShapeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    return t[0], t[1]


def _check_rank(op: str, x: Tensor, ranks: Sequence[int], what: str) -> None:
    if x.ndim not in ranks:
        raise ShapeError(f"{op}: expects {what}, got shape {tuple(x.shape)}")


def _capture_refused(why: str) -> CaptureError:
    """A CaptureError naming the user's line and why the construct cannot be captured."""
    from ..capture_errors import user_frame

    path, line, text = user_frame()
    return CaptureError(f"{path}:{line}" + (f": {text}" if text else "") + f"\n  {why}")


_BN_CAPTURE = ("batch norm in training mode updates its running statistics in place, "
               "which a captured program cannot do; call model.eval() before capturing")


# ----------------------------------------------------------------------------- linear, conv


def _same_dtype(op: str, input: Tensor, weight: Tensor, bias: Tensor | None) -> None:
    """PyTorch's rule for layers: the input has the dtype of the weight (and bias); a
    float32 input to a float64 layer is an error, not a silent float64 result (which the
    exported model, typed by its signature, would refuse)."""
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype is not input.dtype:
            raise DTypeError(
                f"{op}: input is {input.dtype.name} but {name} is {t.dtype.name}; they must "
                f"have the same dtype (as in PyTorch): convert the input with "
                f".to(am.{t.dtype.name}) or the layer with .to(am.{input.dtype.name})")


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` with weight (out_features, in_features); all three of
    one dtype (else :class:`amber.DTypeError`, as in PyTorch)."""
    if weight.ndim != 2:
        raise ShapeError(f"linear: weight must be (out_features, in_features), got "
                         f"{tuple(weight.shape)}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ShapeError(f"linear: input {tuple(input.shape)} does not end in in_features="
                         f"{weight.shape[1]} of weight {tuple(weight.shape)}")
    _same_dtype("linear", input, weight, bias)
    wt = S.transpose(weight, perm=(1, 0))
    if input.ndim == 2:
        y = L.matmul(input, wt)
    else:
        y = _F.matmul(input, wt)
    return y if bias is None else y + bias


def _conv_padding(padding: Any, kh: int, kw: int, dilation: tuple[int, int],
                  stride: tuple[int, int]) -> tuple[int, int, int, int]:
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ShapeError("conv2d: padding='same' is not supported for strided "
                                 f"convolutions (stride={stride})")
            th, tw = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
            return th // 2, th - th // 2, tw // 2, tw - tw // 2
        raise AmberError(f"conv2d: padding must be an int, a pair, 'same' or 'valid', got "
                         f"{padding!r}")
    ph, pw = _pair(padding, "padding", "conv2d")
    return ph, ph, pw, pw


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation over (N, C, H, W) (or unbatched (C, H, W)) input with weight
    (out_channels, in_channels/groups, kH, kW); ``padding`` is an int, a pair, 'same' or
    'valid' (zeros). Input, weight and bias have one dtype (else
    :class:`amber.DTypeError`, as in PyTorch)."""
    _check_rank("conv2d", input, (3, 4), "a (N, C, H, W) or (C, H, W) input")
    if weight.ndim != 4:
        raise ShapeError(f"conv2d: weight must be (out_channels, in_channels/groups, kH, kW), "
                         f"got {tuple(weight.shape)}")
    unbatched = input.ndim == 3
    x = _F.unsqueeze(input, 0) if unbatched else input
    st, dl = _pair(stride, "stride", "conv2d"), _pair(dilation, "dilation", "conv2d")
    pad4 = _conv_padding(padding, weight.shape[2], weight.shape[3], dl, st)
    _same_dtype("conv2d", x, weight, bias)
    y = L.conv2d(x, weight, stride=st, padding=pad4, dilation=dl, groups=int(groups))
    if bias is not None:
        y = y + _F.reshape(bias, (1, -1, 1, 1))
    return _F.squeeze(y, 0) if unbatched else y


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None
        ) -> Tensor:
    """Pad the last ``len(pad) // 2`` dims: ``pad = (left, right, top, bottom, ...)`` starts
    from the last dim. Modes: 'constant' (``value``, default 0), 'reflect', 'replicate',
    'circular'. Negative amounts crop (constant mode)."""
    pad = [int(p) for p in pad]
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ShapeError(f"pad: pad {tuple(pad)} must have an even length of at most "
                         f"2 * rank ({input.ndim})")
    nd = len(pad) // 2
    lo, hi = [0] * input.ndim, [0] * input.ndim
    for i in range(nd):
        lo[input.ndim - 1 - i], hi[input.ndim - 1 - i] = pad[2 * i], pad[2 * i + 1]
    if mode == "constant":
        x = input
        if any(v < 0 for v in lo + hi):  # crop first
            starts = [max(-a, 0) for a in lo]
            stops = [n - max(-b, 0) for n, b in zip(x.shape, hi)]
            x = S.slice_(x, starts=tuple(starts), stops=tuple(stops), steps=(1,) * x.ndim)
            lo, hi = [max(a, 0) for a in lo], [max(b, 0) for b in hi]
        if not any(lo + hi):
            return x
        return S.pad(x, lo=tuple(lo), hi=tuple(hi), interior=(0,) * x.ndim,
                     value=0.0 if value is None else float(value))
    if mode not in ("reflect", "replicate", "circular"):
        raise AmberError(f"pad: mode must be 'constant', 'reflect', 'replicate' or "
                         f"'circular', got {mode!r}")
    x = input
    for d in range(input.ndim - nd, input.ndim):
        a, b, n = lo[d], hi[d], x.shape[d]
        if a == 0 and b == 0:
            continue
        if min(a, b) < 0:
            raise ShapeError(f"pad: mode {mode!r} needs non-negative amounts, got {tuple(pad)}")
        body = list(range(n))
        if mode == "reflect":
            if a >= n or b >= n:
                raise ShapeError(f"pad: reflect padding ({a}, {b}) must be smaller than the "
                                 f"dimension size {n}")
            idx = list(range(a, 0, -1)) + body + list(range(n - 2, n - 2 - b, -1))
        elif mode == "replicate":
            idx = [0] * a + body + [n - 1] * b
        else:
            if a > n or b > n:
                raise ShapeError(f"pad: circular padding ({a}, {b}) must not exceed the "
                                 f"dimension size {n}")
            idx = list(range(n - a, n)) + body + list(range(b))
        x = S.take(x, Tensor._wrap(np.array(idx, dtype=np.int64)), axis=d)
    return x


# ----------------------------------------------------------------------------- pooling


def _pool_setup(op: str, input: Tensor, kernel_size: Any, stride: Any, padding: Any,
                dilation: Any, ceil_mode: bool) -> tuple:
    _check_rank(op, input, (3, 4), "a (N, C, H, W) or (C, H, W) input")
    k = _pair(kernel_size, "kernel_size", op)
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) \
        else _pair(stride, "stride", op)
    p = _pair(padding, "padding", op)
    d = _pair(dilation, "dilation", op)
    if min(k) < 1 or min(s) < 1 or min(d) < 1 or min(p) < 0:
        raise ShapeError(f"{op}: kernel_size, stride and dilation must be >= 1 and padding "
                         f">= 0 (kernel_size={k}, stride={s}, dilation={d}, padding={p})")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ShapeError(f"{op}: padding {p} should be at most half of kernel_size {k}")
    h, w = input.shape[-2], input.shape[-1]
    oh = P.out_size(h, k[0], p[0], p[0], s[0], d[0], ceil_mode)
    ow = P.out_size(w, k[1], p[1], p[1], s[1], d[1], ceil_mode)
    if (isinstance(oh, int) and oh < 1) or (isinstance(ow, int) and ow < 1):
        raise ShapeError(f"{op}: kernel {k} (dilation {d}, padding {p}) is larger than the "
                         f"input {tuple(input.shape)}")
    return k, s, p, d, oh, ow


def _as_4d(input: Tensor) -> tuple[Tensor, bool]:
    if input.ndim == 3:
        return S.reshape(input, shape=(1,) + tuple(input.shape)), True
    return input, False


def _from_4d(y: Tensor, squeeze: bool) -> Tensor:
    return S.reshape(y, shape=tuple(y.shape[1:])) if squeeze else y


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """Max over kH x kW windows of (N, C, H, W) input (padding counts as -inf). The
    gradient goes to the first maximum of each window; NaN propagates. With
    ``return_indices`` also returns each maximum's flat index into H*W (int64)."""
    k, s, p, d, oh, ow = _pool_setup("max_pool2d", input, kernel_size, stride, padding,
                                     dilation, ceil_mode)
    if not input.dtype.is_floating:
        raise DTypeError(f"max_pool2d: needs a floating input, got {input.dtype.name}")
    x, squeeze = _as_4d(input)
    pad4 = (p[0], p[0], p[1], p[1])
    out = _from_4d(P.max_pool2d(x, kernel_hw=k, stride=s, padding=pad4, dilation=d,
                                ceil_mode=bool(ceil_mode)), squeeze)
    if not return_indices:
        return out
    views, offsets = P.window_views(input, k, s, pad4, d, (oh, ow), -math.inf)
    hits = P.first_max_hits(views)
    w = input.shape[-1]
    rows = np.arange(oh)[:, None] * s[0]
    cols = np.arange(ow)[None, :] * s[1]
    idx = Tensor._wrap(((rows + offsets[-1][0]) * w + cols + offsets[-1][1]).astype(np.int64))
    for (r, c), hit in zip(reversed(offsets[:-1]), reversed(hits)):
        here = Tensor._wrap(((rows + r) * w + cols + c).astype(np.int64))
        idx = E.where(hit, here, S.broadcast_to(idx, shape=tuple(hit.shape)))
    return out, S.broadcast_to(idx, shape=tuple(out.shape)) if idx.shape != out.shape else idx


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """Mean over kH x kW windows of (N, C, H, W) input. ``count_include_pad`` counts the
    zero padding in the divisor (windows reaching past the padding in ``ceil_mode`` are
    clipped, as in PyTorch)."""
    k, s, p, d, oh, ow = _pool_setup("avg_pool2d", input, kernel_size, stride, padding, 1,
                                     ceil_mode)
    x = input if input.dtype.is_floating else _F.cast(input, D.default_float())
    pad4 = (p[0], p[0], p[1], p[1])
    if not divisor_override:
        x4, squeeze = _as_4d(x)
        return _from_4d(P.avg_pool2d(x4, kernel_hw=k, stride=s, padding=pad4,
                                     ceil_mode=bool(ceil_mode),
                                     count_include_pad=bool(count_include_pad)), squeeze)
    views, _ = P.window_views(x, k, s, pad4, d, (oh, ow), 0.0)
    total = views[0]
    for v in views[1:]:
        total = total + v
    return total / float(divisor_override)


# ----------------------------------------------------------------------------- activations


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0) (gradient 0 at 0). ``inplace`` is accepted for compatibility; amber
    always returns a new tensor."""
    return _F.relu(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, ``negative_slope * x`` otherwise."""
    return _F.where(input > 0, input, input * negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, ``alpha * (exp(x) - 1)`` otherwise."""
    pos = input > 0
    neg = (_F.exp(_F.where(pos, 0.0, input)) - 1.0) * alpha
    return _F.where(pos, input, neg)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit: ``x * Phi(x)``; ``approximate='tanh'`` uses the tanh
    approximation."""
    if approximate == "none":
        return input * 0.5 * (_F.erf(input * (1.0 / math.sqrt(2.0))) + 1.0)
    if approximate == "tanh":
        inner = (input + input * input * input * 0.044715) * math.sqrt(2.0 / math.pi)
        return input * 0.5 * (_F.tanh(inner) + 1.0)
    raise AmberError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x)."""
    return input * _F.sigmoid(input)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * x)) / beta``, and x itself where ``beta * x > threshold``."""
    bx = input * beta if beta != 1 else input
    soft = _F.maximum(bx, 0.0) + _F.log(_F.exp(-_F.abs(bx)) + 1.0)
    if beta != 1:
        soft = soft / beta
    return _F.where(bx > threshold, input, soft)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """Clamp to [min_val, max_val]."""
    return _F.clamp(input, min_val, max_val)


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)), computed stably."""
    return -(_F.maximum(-input, 0.0) + _F.log(_F.exp(-_F.abs(input)) + 1.0))


# ----------------------------------------------------------------------------- normalisation


def layer_norm(input: Tensor, normalized_shape: Any, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims (biased variance), then scale
    by ``weight`` and shift by ``bias`` (both of shape ``normalized_shape``)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    n = len(shape)
    if n == 0 or tuple(input.shape[input.ndim - n:]) != shape or input.ndim < n:
        raise ShapeError(f"layer_norm: input {tuple(input.shape)} does not end in "
                         f"normalized_shape {shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ShapeError(f"layer_norm: {name} has shape {tuple(t.shape)}, expected {shape}")
    axes = tuple(range(input.ndim - n, input.ndim))
    x = input if input.dtype.is_floating else _F.cast(input, D.default_float())
    count = math.prod(shape)
    mu = R.reduce_sum(x, axes=axes, keepdims=True) / float(count)
    xc = x - mu
    var = R.reduce_sum(xc * xc, axes=axes, keepdims=True) / float(count)
    y = xc * _F.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1) of (N, C, ...) input. In training (or without
    running statistics) with the batch's mean and biased variance, updating the running
    statistics in place (``(1 - momentum) * running + momentum * batch``, unbiased variance);
    otherwise with the running statistics, as ``input * alpha + beta`` (``alpha = weight /
    sqrt(running_var + eps)``, ``beta = bias - running_mean * alpha``), PyTorch's formula."""
    if input.ndim < 2:
        raise ShapeError(f"batch_norm: expects (N, C, ...) input, got {tuple(input.shape)}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ShapeError(f"batch_norm: {name} has shape {tuple(t.shape)}, expected ({c},) "
                             f"for input {tuple(input.shape)}")
    bshape = (1, c) + (1,) * (input.ndim - 2)
    axes = (0,) + tuple(range(2, input.ndim))
    use_batch = training or running_mean is None or running_var is None
    if use_batch:
        count = input.numel() // c
        if training and count <= 1:
            raise ShapeError(f"batch_norm: expected more than 1 value per channel when "
                             f"training, got input {tuple(input.shape)}")
        if training and running_mean is not None and running_var is not None \
                and running_mean._data is not None and running_var._data is not None \
                and batch_norm_train_applies(input, weight, bias):
            return batch_norm_train(input, running_mean, running_var, weight, bias,
                                    momentum, eps)
        mu = R.reduce_sum(input, axes=axes, keepdims=True) / count
        xc = input - mu
        var = R.reduce_sum(xc * xc, axes=axes, keepdims=True) / count
        if training and running_mean is not None and running_var is not None:
            if input._data is None or running_mean._data is None:
                raise _capture_refused(_BN_CAPTURE)
            with no_grad():
                bm = _F.reshape(mu.detach(), (c,))
                bv = _F.reshape(var.detach(), (c,)) * (count / max(count - 1, 1))
                running_mean.copy_(running_mean * (1.0 - momentum) + bm * momentum)
                running_var.copy_(running_var * (1.0 - momentum) + bv * momentum)
        y = xc * _F.rsqrt(var + eps)
    else:  # as PyTorch's CPU kernel: x * alpha + beta (2 ops an element, not 4)
        assert running_mean is not None and running_var is not None
        alpha = _F.rsqrt(running_var + eps)
        if weight is not None:
            alpha = alpha * weight
        beta = -(running_mean * alpha) if bias is None else bias - running_mean * alpha
        return input * _F.reshape(alpha, bshape) + _F.reshape(beta, bshape)
    if weight is not None:
        y = y * _F.reshape(weight, bshape)
    if bias is not None:
        y = y + _F.reshape(bias, bshape)
    return y


# ----------------------------------------------------------------------------- dropout, embedding


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
            generator: Generator | None = None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``
    (identity when not training). The mask is drawn eagerly from ``generator`` (or the
    default generator seeded by ``am.manual_seed``)."""
    if not 0.0 <= p <= 1.0:
        raise AmberError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if input._data is None:
        raise _capture_refused("dropout in training mode draws a random mask, which a "
                               "captured program cannot reproduce; call model.eval() (or "
                               "pass training=False) before capturing")
    if p == 1.0:
        return input * 0.0
    keep = rand(*input.shape, generator=generator, dtype=D.float64).numpy() >= p
    scale = np.where(keep, 1.0 / (1.0 - p), 0.0).astype(input.dtype.np)
    return input * Tensor._wrap(scale)


def _refuse_negative(idx: Tensor, n: Any) -> Tensor:
    """``idx`` for a ``take`` over ``n`` rows that refuses what PyTorch refuses: in a
    captured program a negative index becomes ``n``, which ``take`` reports as out of
    range at run time (it would wrap -1 to the last row). Concrete indices are checked
    by the caller before, with the index named."""
    if idx._data is not None:
        return idx
    return E.where(_F.lt(idx, 0), _F.zeros_like(idx) + n, idx)


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) selected by the integer tensor ``input``;
    the row at ``padding_idx`` receives no gradient."""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise AmberError("embedding: max_norm, scale_grad_by_freq and sparse are not "
                         "supported by amber")
    idx = input if isinstance(input, Tensor) else Tensor._wrap(np.asarray(input))
    if not idx.dtype.is_integer:
        raise DTypeError(f"embedding: indices must be int32 or int64, got {idx.dtype.name}")
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be (num_embeddings, embedding_dim), got "
                         f"{tuple(weight.shape)}")
    n = weight.shape[0]
    if idx._data is not None and idx._data.size and (idx._data.min() < 0
                                                     or idx._data.max() >= n):
        bad = idx._data[(idx._data < 0) | (idx._data >= n)].flat[0]
        raise OutOfRangeError(f"embedding: index {bad} is out of range for "
                              f"{n} embeddings (weight {tuple(weight.shape)})")
    out = S.take(weight, _refuse_negative(idx, n), axis=0)
    if padding_idx is not None:
        pi = padding_idx + n if padding_idx < 0 else padding_idx
        if not 0 <= pi < n:
            raise OutOfRangeError(f"embedding: padding_idx {padding_idx} is out of range for "
                                  f"{n} embeddings")
        keep = _F.unsqueeze(_F.ne(idx, pi), -1)
        out = E.where(S.broadcast_to(keep, shape=tuple(out.shape)), out, out.detach())
    return out


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 tensor with a trailing dim of size ``num_classes`` holding a 1 at each index
    (``num_classes=-1`` means ``max + 1``)."""
    if not tensor.dtype.is_integer:
        raise DTypeError(f"one_hot: needs an integer tensor, got {tensor.dtype.name}")
    data = tensor._data
    if num_classes < 0:
        if data is None:
            raise AmberError("one_hot: pass num_classes explicitly when capturing")
        num_classes = int(data.max()) + 1 if data.size else 0
    if data is not None and data.size and (data.min() < 0 or data.max() >= num_classes):
        raise OutOfRangeError(f"one_hot: class values must be in [0, {num_classes}), got "
                              f"[{data.min()}, {data.max()}]")
    classes = arange(num_classes, dtype=tensor.dtype)
    if data is None:  # values outside [0, num_classes) fail at run time, as in eager
        tensor = S.take(classes, _refuse_negative(tensor, num_classes), axis=0)
    return _F.cast(_F.eq(_F.unsqueeze(tensor, -1), classes), D.int64)


# ----------------------------------------------------------------------------- losses


def _reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    if size_average is not None or reduce is not None:  # PyTorch's deprecated arguments
        sa = True if size_average is None else size_average
        rd = True if reduce is None else reduce
        return ("mean" if sa else "sum") if rd else "none"
    if reduction not in ("mean", "sum", "none"):
        raise AmberError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    total = _F.sum(loss)
    # NOTE: numel() may be a symbolic size under capture; tensor / size captures it exactly.
    return total / loss.numel() if reduction == "mean" else total


def _flat_classes(op: str, input: Tensor, target: Tensor) -> tuple[Tensor, Tensor, tuple, int]:
    """(M, C) view of (N, C, d...) or (C,) input and the matching flat (M,) target."""
    if input.ndim == 0:
        raise ShapeError(f"{op}: input must be (C,), (N, C) or (N, C, d1, ...), got ()")
    if input.ndim == 1:
        if target.ndim != 0:
            raise ShapeError(f"{op}: target for input {tuple(input.shape)} must be 0-d, got "
                             f"{tuple(target.shape)}")
        c = input.shape[0]
        return _F.reshape(input, (1, c)), _F.reshape(target, (1,)), (), c
    c = input.shape[1]
    want = (input.shape[0],) + tuple(input.shape[2:])
    if tuple(target.shape) != want:
        raise ShapeError(f"{op}: target shape {tuple(target.shape)} does not match input "
                         f"{tuple(input.shape)} (expected {want})")
    x = input
    if input.ndim > 2:
        x = _F.permute(input, (0,) + tuple(range(2, input.ndim)) + (1,))
    m = math.prod(want)
    return _F.reshape(x, (m, c)), _F.reshape(target, (m,)), want, c


def _check_targets(op: str, target: Tensor, c: int, ignore_index: int) -> None:
    t = target._data
    if t is None or not t.size:
        return
    bad = ((t < 0) | (t >= c)) & (t != ignore_index)
    if bad.any():
        raise OutOfRangeError(f"{op}: target {t[bad].flat[0]} is out of bounds for {c} classes")


def _class_weight(op: str, weight: Tensor | None, c: int, dtype: D.DType) -> Tensor | None:
    if weight is None:
        return None
    if tuple(weight.shape) != (c,):
        raise ShapeError(f"{op}: weight must have shape ({c},) (one per class), got "
                         f"{tuple(weight.shape)}")
    return _F.cast(weight, dtype)


def _nll_flat(op: str, logp: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int
              ) -> tuple[Tensor, Tensor]:
    """Per-element losses -w[t] * logp[i, t] (0 where ignored) and per-element weights."""
    m, c = logp.shape
    if not target.dtype.is_integer:
        raise DTypeError(f"{op}: class-index targets must be int32 or int64, got "
                         f"{target.dtype.name}")
    _check_targets(op, target, c, ignore_index)
    t = _F.cast(target, D.int64)
    valid = _F.ne(t, ignore_index)
    safe = E.where(valid, t, _F.zeros_like(t))
    if t._data is None:  # targets outside [0, c) fail at run time, as in eager
        safe = S.take(arange(c, dtype=D.int64), _refuse_negative(safe, c), axis=0)
    # One-hot pick along the (static) class dim, so a symbolic batch size m is capturable.
    onehot = _F.eq(_F.unsqueeze(safe, 1), arange(c, dtype=D.int64))
    picked = _F.sum(E.where(onehot, logp, _F.zeros_like(logp)), 1)
    w = _F.cast(valid, logp.dtype)
    if weight is not None:
        w = w * S.take(weight, safe, axis=0)
    return -(picked * w), w


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
             size_average: bool | None = None, ignore_index: int = -100,
             reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """Negative log likelihood of class indices ``target`` under log-probabilities
    ``input`` (C,), (N, C) or (N, C, d1, ...). 'mean' divides by the summed weights of the
    non-ignored targets."""
    red = _reduction(size_average, reduce, reduction)
    x, t, out_shape, c = _flat_classes("nll_loss", input, target)
    w = _class_weight("nll_loss", weight, c, x.dtype)
    loss, wt = _nll_flat("nll_loss", x, t, w, ignore_index)
    if red == "none":
        return _F.reshape(loss, out_shape)
    if red == "sum":
        return _F.sum(loss)
    return _F.sum(loss) / _F.sum(wt)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  size_average: bool | None = None, ignore_index: int = -100,
                  reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross entropy between logits ``input`` ((C,), (N, C) or (N, C, d1, ...)) and either
    class indices (integer ``target``) or class probabilities (floating ``target`` of the
    input's shape), with PyTorch's ``weight``, ``ignore_index``, ``reduction`` and
    ``label_smoothing`` semantics."""
    red = _reduction(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise AmberError(f"cross_entropy: label_smoothing must be in [0, 1], got "
                         f"{label_smoothing}")
    cdim = 0 if input.ndim == 1 else 1
    if input.ndim == 0:
        raise ShapeError("cross_entropy: input must be (C,), (N, C) or (N, C, d1, ...), got ()")
    c = input.shape[cdim]
    if (weight is None and not label_smoothing and red != "none"
            and _ce_eager_applies(input, target, ignore_index)):  # eager: one entry
        _check_targets("cross_entropy", target, c, ignore_index)
        return _ce_eager(input, target, red == "mean")
    logp = log_softmax(input, cdim)
    if target.dtype.is_floating:  # class probabilities
        if tuple(target.shape) != tuple(input.shape):
            raise ShapeError(f"cross_entropy: probability targets must have the input's shape "
                             f"{tuple(input.shape)}, got {tuple(target.shape)}")
        tgt = _F.cast(target, logp.dtype)
        if label_smoothing > 0:
            tgt = tgt * (1.0 - label_smoothing) + label_smoothing / c
        prod = logp * tgt
        w = _class_weight("cross_entropy", weight, c, logp.dtype)
        if w is not None:
            prod = prod * _F.reshape(w, (c,) + (1,) * (input.ndim - 1 - cdim))
        if red == "none":
            return -R.reduce_sum(prod, axes=(cdim,), keepdims=False)
        total = -_F.sum(prod)
        return total / (input.numel() // c) if red == "mean" else total
    x, t, out_shape, _ = _flat_classes("cross_entropy", logp, target)
    w = _class_weight("cross_entropy", weight, c, x.dtype)
    loss, wt = _nll_flat("cross_entropy", x, t, w, ignore_index)
    if label_smoothing > 0:
        valid = _F.cast(_F.ne(t, ignore_index), x.dtype)
        xs = x * w if w is not None else x
        smooth = -R.reduce_sum(xs, axes=(1,), keepdims=False) * valid
        eps = label_smoothing
        if red == "none":
            return _F.reshape(loss * (1.0 - eps) + smooth * (eps / c), out_shape)
        if red == "sum":
            return _F.sum(loss) * (1.0 - eps) + _F.sum(smooth) * (eps / c)
        denom = _F.sum(wt)
        return (_F.sum(loss) * (1.0 - eps) + _F.sum(smooth) * (eps / c)) / denom
    if red == "none":
        return _F.reshape(loss, out_shape)
    if red == "sum":
        return _F.sum(loss)
    if w is None and t._data is not None and not (t._data == ignore_index).any():
        return _F.sum(loss) / float(loss.numel())
    return _F.sum(loss) / _F.sum(wt)


# ----------------------------------------------------------------------------- eager cross entropy
# The composed cross entropy (log_softmax, a one-hot pick, a sum and a division) is a dozen
# ops and tape entries; a small model's training step spends more time dispatching them
# than computing. Outside capture, for the common case (2-D float logits, integer targets,
# no class weights, no label smoothing, no ignored target, 'mean' or 'sum'), the loss runs
# the composed ops' kernels on arrays in their order (the same bits) as one tape entry,
# whose backward is the composed ops' backward collapsed to its two live terms in their
# operations and order (the same bits again: exported training steps match eager ones).
# Under capture the composed ops are traced, so files keep that graph.

_CE_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _ce_eager_applies(input: Tensor, target: Tensor, ignore_index: int) -> bool:
    x, t = input._data, target._data
    return (x is not None and t is not None and not TraceHooks.active and x.ndim == 2
            and x.dtype in _CE_FLOATS and t.dtype.kind in "iu" and t.shape == x.shape[:1]
            and x.size > 0 and not (t == ignore_index).any())


def _ce_eager(input: Tensor, target: Tensor, mean: bool) -> Tensor:
    """The mean (or sum) over rows of ``-log_softmax(input)[i, target[i]]`` (targets
    checked by the caller)."""
    x: Any = input._data
    idx = np.asarray(target._data, dtype=np.int64)
    m, c = x.shape
    reduce_max, reduce_sum = REGISTRY["max"].eager, REGISTRY["sum"].eager
    s = x - reduce_max(x, axes=(1,), keepdims=True)
    e = REGISTRY["exp"].eager(s)
    se = reduce_sum(e, axes=(1,), keepdims=True)
    logp = s - REGISTRY["log"].eager(se)
    onehot = idx[:, None] == np.arange(c)
    # the composed pick: a row sum of the one-hot selection, times the weight 1
    picked = reduce_sum(np.where(onehot, logp, np.zeros((), x.dtype)), axes=(1,),
                        keepdims=False)
    total = reduce_sum(-(picked * np.ones((), x.dtype)), axes=(0,), keepdims=False)
    scale = x.dtype.type(m) if mean else None
    out = _wrap_array(total / scale if scale is not None else total)
    if is_grad_enabled() and input.requires_grad:
        out.requires_grad = True
        out._node = Node(_CE_EAGER, (input,), {"saved": (onehot, e, se, scale)}, out)
    return out


def _ce_eager_vjp(g: Tensor, out: Tensor, input: Tensor, *,
                  saved: tuple[Any, ...]) -> tuple[Tensor]:
    onehot, e, se, scale = saved
    if is_grad_enabled():  # create_graph: differentiable all the way down
        hot = _wrap_array(onehot.astype(e.dtype))
        dg = (softmax(input, 1) - hot) * g
        return (dg / float(scale) if scale is not None else dg,)
    # the pick's cotangent -dt at the targets plus exp's (dt / se) * e
    gv: Any = g._data
    dt = gv / scale if scale is not None else gv
    d = np.where(onehot, -dt, np.zeros((), e.dtype))
    d += (dt / se) * e
    return (_wrap_array(d),)


def _no_ce_kernel(*args: Any, **kwargs: Any) -> np.ndarray:
    raise AmberError("cross entropy's eager tape entry has no kernel of its own")


def _no_ce_infer(*args: Any, **kwargs: Any) -> Any:
    raise AmberError("cross entropy's eager tape entry has no standalone type rule")


# NOTE: a tape entry, not a registered primitive: it never reaches a captured program.
_CE_EAGER = Primitive("cross_entropy_eager", _no_ce_kernel, _no_ce_infer, {}, None)
_CE_EAGER.def_vjp(_ce_eager_vjp)


def _pointwise_operands(op: str, input: Tensor, target: Any) -> tuple[Tensor, Tensor]:
    tgt = target if isinstance(target, Tensor) else Tensor._wrap(np.asarray(target))
    try:
        broadcast_shapes(op, tuple(input.shape), tuple(tgt.shape))  # symbolic-size aware
    except ShapeError:
        raise ShapeError(f"{op}: input {tuple(input.shape)} and target {tuple(tgt.shape)} "
                         f"cannot be broadcast together") from None
    return input, tgt


def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None,
             reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or elementwise) squared error."""
    red = _reduction(size_average, reduce, reduction)
    x, t = _pointwise_operands("mse_loss", input, target)
    d = x - t
    return _reduce(d * d, red)


def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None,
            reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or elementwise) absolute error."""
    red = _reduction(size_average, reduce, reduction)
    x, t = _pointwise_operands("l1_loss", input, target)
    return _reduce(_F.abs(x - t), red)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,
                                     weight: Tensor | None = None,
                                     size_average: bool | None = None,
                                     reduce: bool | None = None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross entropy of sigmoid(input) against targets in [0, 1], computed stably
    from logits; ``pos_weight`` weights the positive term (broadcast over the last dim)."""
    red = _reduction(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(f"binary_cross_entropy_with_logits: target shape "
                         f"{tuple(target.shape)} must equal input shape {tuple(input.shape)}")
    t = _F.cast(target, input.dtype)
    softplus_neg = _F.maximum(-input, 0.0) + _F.log(_F.exp(-_F.abs(input)) + 1.0)
    if pos_weight is not None:
        lw = (pos_weight - 1.0) * t + 1.0
        loss = (1.0 - t) * input + lw * softplus_neg
    else:
        loss = (1.0 - t) * input + softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, red)


# ----------------------------------------------------------------------------- more layers
# NOTE: imported last: these modules build on the functions above.
from ._activation import (  # noqa: E402
    celu,
    glu,
    hardsigmoid,
    hardswish,
    mish,
    prelu,
    relu6,
    selu,
    softsign,
)
from ._attention import multi_head_attention_forward, scaled_dot_product_attention  # noqa: E402
from ._conv import conv1d, conv_transpose1d, conv_transpose2d  # noqa: E402
from ._fold import fold, unfold  # noqa: E402
from ._grid import affine_grid, grid_sample  # noqa: E402
from ._loss import (  # noqa: E402
    binary_cross_entropy,
    cosine_embedding_loss,
    huber_loss,
    kl_div,
    smooth_l1_loss,
    triplet_margin_loss,
)
from ._norm import (  # noqa: E402
    batch_norm_train,
    batch_norm_train_applies,
    cosine_similarity,
    group_norm,
    instance_norm,
    normalize,
    pairwise_distance,
    rms_norm,
)
from ._sampling import (  # noqa: E402
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    interpolate,
    max_pool1d,
    pixel_shuffle,
    pixel_unshuffle,
    upsample,
)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
              generator: Generator | None = None) -> Tensor:
    """Zero whole channels of (N, C, L) (or (C, L)) input with probability ``p``."""
    return _channel_dropout("dropout1d", input, p, training, 1, generator)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False,
              generator: Generator | None = None) -> Tensor:
    """Zero whole channels of (N, C, H, W) (or (C, H, W)) input with probability ``p``."""
    return _channel_dropout("dropout2d", input, p, training, 2, generator)


def _channel_dropout(op: str, input: Tensor, p: float, training: bool, nd: int,
                     generator: Generator | None) -> Tensor:
    _check_rank(op, input, (nd + 1, nd + 2), f"a {nd + 2}-D batched or {nd + 1}-D input")
    if not 0.0 <= p <= 1.0:
        raise AmberError(f"{op}: probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if input._data is None:
        raise _capture_refused(f"{op} in training mode draws a random mask, which a captured "
                               f"program cannot reproduce; call model.eval() before capturing")
    shape = tuple(input.shape[:input.ndim - nd]) + (1,) * nd
    if p == 1.0:
        return input * 0.0
    keep = rand(*shape, generator=generator, dtype=D.float64).numpy() >= p
    scale = np.where(keep, 1.0 / (1.0 - p), 0.0).astype(input.dtype.np)
    return input * Tensor._wrap(scale)


__all__ += [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "affine_grid", "avg_pool1d", "binary_cross_entropy", "celu", "conv1d", "conv_transpose1d",
    "conv_transpose2d", "cosine_embedding_loss", "cosine_similarity", "dropout1d", "dropout2d",
    "fold", "glu", "grid_sample", "group_norm", "hardsigmoid", "hardswish", "huber_loss",
    "instance_norm",
    "interpolate", "kl_div", "max_pool1d", "mish", "multi_head_attention_forward", "normalize",
    "pairwise_distance", "pixel_shuffle", "pixel_unshuffle", "prelu", "relu6", "rms_norm",
    "scaled_dot_product_attention", "selu", "smooth_l1_loss", "softsign", "triplet_margin_loss",
    "unfold", "upsample",
]
