"""1-D and adaptive pooling, interpolation and pixel shuffling.

The 1-D pools are the 2-D ones over a height of 1. Adaptive pooling uses PyTorch's windows
(``start = floor(i * n / out)``, ``end = ceil((i + 1) * n / out)``): a regular pool when
``out`` divides ``n``, otherwise averaging matrices (mean) or one window at a time (max).
Interpolation is a gather (nearest) or a matrix of interpolation weights per axis
(linear), so every mode is a composite of primitives."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _dtype as D
from .. import functional as _F
from ..errors import AmberError, ShapeError
from ..ops import shape as S
from ..tensor import Tensor
from .functional import _check_rank, avg_pool2d, max_pool2d


def _one(v: Any, name: str, op: str) -> int:
    if isinstance(v, (int, np.integer)):
        return int(v)
    t = tuple(v)
    if len(t) != 1:
        raise ShapeError(f"{op}: {name} must be an int or a 1-tuple, got {v!r}")
    return int(t[0])


def max_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """Max over windows of (N, C, L) (or (C, L)) input; see ``max_pool2d``."""
    _check_rank("max_pool1d", input, (2, 3), "a (N, C, L) or (C, L) input")
    k = _one(kernel_size, "kernel_size", "max_pool1d")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) \
        else _one(stride, "stride", "max_pool1d")
    out = max_pool2d(_F.unsqueeze(input, -2), (1, k), (1, s),
                     (0, _one(padding, "padding", "max_pool1d")),
                     (1, _one(dilation, "dilation", "max_pool1d")), ceil_mode, return_indices)
    if return_indices:
        return _F.squeeze(out[0], -2), _F.squeeze(out[1], -2)
    return _F.squeeze(out, -2)


def avg_pool1d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """Mean over windows of (N, C, L) (or (C, L)) input; see ``avg_pool2d``."""
    _check_rank("avg_pool1d", input, (2, 3), "a (N, C, L) or (C, L) input")
    k = _one(kernel_size, "kernel_size", "avg_pool1d")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) \
        else _one(stride, "stride", "avg_pool1d")
    y = avg_pool2d(_F.unsqueeze(input, -2), (1, k), (1, s),
                   (0, _one(padding, "padding", "avg_pool1d")), ceil_mode, count_include_pad)
    return _F.squeeze(y, -2)


# ----------------------------------------------------------------------------- adaptive


def _out_sizes(op: str, input: Tensor, output_size: Any, nd: int) -> tuple[Any, ...]:
    sizes = (output_size,) * nd if isinstance(output_size, (int, np.integer)) or \
        output_size is None else tuple(output_size)
    if len(sizes) != nd:
        raise ShapeError(f"{op}: output_size must be an int or a {nd}-tuple, got "
                         f"{output_size!r}")
    spatial = input.shape[input.ndim - nd:]
    out = tuple(n if o is None else int(o) for o, n in zip(sizes, spatial, strict=True))
    if any(isinstance(o, int) and o < 1 for o in out):
        raise ShapeError(f"{op}: output_size must be positive, got {output_size!r}")
    return out


def _windows(n: int, out: int) -> list[tuple[int, int]]:
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


def _static(op: str, n: Any) -> int:
    if not isinstance(n, (int, np.integer)):
        raise ShapeError(f"{op}: the pooled dimension has the symbolic size {n}; adaptive "
                         f"pooling to a size other than 1 needs static spatial sizes")
    return int(n)


def _avg_matrix(n: int, out: int, dtype: D.DType) -> Tensor:
    m = np.zeros((out, n), dtype=np.float64)
    for i, (a, b) in enumerate(_windows(n, out)):
        m[i, a:b] = 1.0 / (b - a)
    return Tensor._wrap(m.astype(dtype.np))


def _adaptive_avg(op: str, input: Tensor, out: tuple[Any, ...]) -> Tensor:
    x = input if input.dtype.is_floating else _F.cast(input, D.default_float())
    nd = len(out)
    dims = tuple(range(x.ndim - nd, x.ndim))
    if all(o == 1 for o in out):
        return _F.mean(x, dims, keepdim=True)
    for ax, o in zip(dims, out, strict=True):
        n = x.shape[ax]
        if o == n:
            continue
        m = _avg_matrix(_static(op, n), o, x.dtype)
        moved = _F.transpose(x, ax, -1)
        x = _F.transpose(_F.matmul(moved, _F.t(m)), ax, -1)
    return x


def adaptive_avg_pool1d(input: Tensor, output_size: Any) -> Tensor:
    """Mean over ``output_size`` adaptive windows of (N, C, L) (or (C, L)) input."""
    _check_rank("adaptive_avg_pool1d", input, (2, 3), "a (N, C, L) or (C, L) input")
    return _adaptive_avg("adaptive_avg_pool1d", input,
                         _out_sizes("adaptive_avg_pool1d", input, output_size, 1))


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Mean over adaptive windows of (N, C, H, W) (or (C, H, W)) input; ``output_size`` is
    an int or a pair (``None`` keeps that size)."""
    _check_rank("adaptive_avg_pool2d", input, (3, 4), "a (N, C, H, W) or (C, H, W) input")
    return _adaptive_avg("adaptive_avg_pool2d", input,
                         _out_sizes("adaptive_avg_pool2d", input, output_size, 2))


def _adaptive_max(op: str, input: Tensor, out: tuple[Any, ...], return_indices: bool) -> Any:
    x = input if input.ndim == len(out) + 2 else _F.unsqueeze(input, 0)
    sq = input.ndim != len(out) + 2
    spatial = x.shape[2:]
    if all(isinstance(n, int) and n % o == 0 for n, o in zip(spatial, out, strict=True)):
        k = tuple(n // o for n, o in zip(spatial, out, strict=True))
        if len(out) == 1:
            y = max_pool1d(x, k[0], k[0], return_indices=return_indices)
        else:
            y = max_pool2d(x, k, k, return_indices=return_indices)
        if return_indices:
            return (_F.squeeze(y[0], 0), _F.squeeze(y[1], 0)) if sq else y
        return _F.squeeze(y, 0) if sq else y
    if return_indices:
        raise AmberError(f"{op}: return_indices needs output sizes that divide the input "
                         f"sizes {tuple(spatial)}, got {out}")
    wins = [_windows(_static(op, n), o) for n, o in zip(spatial, out, strict=True)]
    if len(out) == 1:
        cols = [_F.amax(_F.narrow(x, 2, a, b - a), 2, keepdim=True) for a, b in wins[0]]
        y = _F.cat(cols, 2)
    else:
        rows = []
        for a, b in wins[0]:
            band = _F.narrow(x, 2, a, b - a)
            rows.append(_F.cat([_F.amax(_F.narrow(band, 3, c, d - c), (2, 3), keepdim=True)
                                for c, d in wins[1]], 3))
        y = _F.cat(rows, 2)
    return _F.squeeze(y, 0) if sq else y


def adaptive_max_pool1d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Max over ``output_size`` adaptive windows of (N, C, L) (or (C, L)) input."""
    _check_rank("adaptive_max_pool1d", input, (2, 3), "a (N, C, L) or (C, L) input")
    out = _out_sizes("adaptive_max_pool1d", input, output_size, 1)
    return _adaptive_max("adaptive_max_pool1d", input, out, return_indices)


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Max over adaptive windows of (N, C, H, W) (or (C, H, W)) input."""
    _check_rank("adaptive_max_pool2d", input, (3, 4), "a (N, C, H, W) or (C, H, W) input")
    out = _out_sizes("adaptive_max_pool2d", input, output_size, 2)
    return _adaptive_max("adaptive_max_pool2d", input, out, return_indices)


# ----------------------------------------------------------------------------- interpolate


def _interp_plan(input: Tensor, nd: int, size: Any, scale_factor: Any,
                 recompute: bool | None) -> list[tuple[Any, float | None, int | None]]:
    """Per spatial dim: (output size, PyTorch's source scale or None, integer repeat factor
    or None)."""
    if (size is None) == (scale_factor is None):
        raise AmberError("interpolate: pass exactly one of size and scale_factor")
    if size is not None:
        sizes = [int(size)] * nd if isinstance(size, (int, np.integer)) else \
            [int(s) for s in size]
        if len(sizes) != nd:
            raise ShapeError(f"interpolate: size {size!r} must have {nd} entries for input "
                             f"{tuple(input.shape)}")
        return [(o, None, None) for o in sizes]
    sf = [float(scale_factor)] * nd if isinstance(scale_factor, (int, float)) else \
        [float(s) for s in scale_factor]
    if len(sf) != nd or min(sf) <= 0:
        raise ShapeError(f"interpolate: scale_factor {scale_factor!r} must have {nd} positive "
                         f"entries")
    plan: list[tuple[Any, float | None, int | None]] = []
    for n, f in zip(input.shape[2:], sf, strict=True):
        k = int(f) if f.is_integer() and f >= 1 else None
        if k is not None:
            plan.append((n * k, None if recompute else 1.0 / f, k))
        else:
            plan.append((math.floor(_static("interpolate", n) * f),
                         None if recompute else 1.0 / f, None))
    return plan


def _linear_matrix(n: int, out: int, scale: float | None, align_corners: bool) -> np.ndarray:
    m = np.zeros((out, n), dtype=np.float64)
    dst = np.arange(out, dtype=np.float64)
    if align_corners:
        src = dst * ((n - 1) / (out - 1) if out > 1 else 0.0)
    else:
        sc = n / out if scale is None else scale
        src = np.maximum((dst + 0.5) * sc - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    lam = src - i0
    np.add.at(m, (np.arange(out), i0), 1.0 - lam)
    np.add.at(m, (np.arange(out), i1), lam)
    return m


def _cubic_matrix(n: int, out: int, scale: float | None, align_corners: bool) -> np.ndarray:
    """PyTorch's bicubic weights (Keys, A = -0.75; the source coordinate unclamped, the
    four taps clamped to the edge)."""
    a = -0.75
    m = np.zeros((out, n), dtype=np.float64)
    dst = np.arange(out, dtype=np.float64)
    if align_corners:
        src = dst * ((n - 1) / (out - 1) if out > 1 else 0.0)
    else:
        src = (dst + 0.5) * (n / out if scale is None else scale) - 0.5
    base = np.floor(src)
    t = src - base
    weights = [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
               ((a + 2) * t - (a + 3)) * t * t + 1,
               ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
               ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]
    for k, w in enumerate(weights):
        idx = np.clip(base.astype(np.int64) + k - 1, 0, n - 1)
        np.add.at(m, (np.arange(out), idx), w)
    return m


def _nearest_index(n: int, out: int, scale: float | None, exact: bool) -> np.ndarray:
    """PyTorch's source indices, computed as it does (the scale in float32)."""
    if out == n and not exact:  # PyTorch's shortcut, for 'nearest' only
        return np.arange(n, dtype=np.int64)
    sc = np.float32(n / out if scale is None else scale)
    dst = np.arange(out, dtype=np.float32)
    src = np.floor((dst + np.float32(0.5)) * sc if exact else dst * sc)
    return np.minimum(src.astype(np.int64), n - 1)


def _repeat(x: Tensor, ax: int, k: int) -> Tensor:
    """Each element along ``ax`` repeated ``k`` times (nearest upsampling by an integer
    factor; shapes may be symbolic)."""
    shape = tuple(x.shape)
    y = _F.unsqueeze(x, ax + 1)
    y = _F.broadcast_to(y, shape[:ax + 1] + (k,) + shape[ax + 1:])
    return _F.reshape(y, shape[:ax] + (shape[ax] * k,) + shape[ax + 1:])


def _linear_by_phases(x: Tensor, ax: int, k: int) -> Tensor:
    """Linear upsampling by an integer factor ``k`` (align_corners=False) for a symbolic
    size: output ``k * m + r`` blends input ``m`` with its neighbour by a weight that
    depends on ``r`` only (edges replicate, as PyTorch's clamped source index does)."""
    n = x.shape[ax]
    ext = _F.cat([_F.narrow(x, ax, 0, 1), x, _F.narrow(x, ax, n - 1, 1)], ax)
    prev, nxt = _F.narrow(ext, ax, 0, n), _F.narrow(ext, ax, 2, n)
    phases = []
    for r in range(k):
        off = (r + 0.5) / k - 0.5
        y = prev * (-off) + x * (1.0 + off) if off < 0 else x * (1.0 - off) + nxt * off
        phases.append(_F.unsqueeze(y, ax + 1))
    shape = tuple(x.shape)
    return _F.reshape(_F.cat(phases, ax + 1), shape[:ax] + (n * k,) + shape[ax + 1:])


def interpolate(input: Tensor, size: Any = None, scale_factor: Any = None,
                mode: str = "nearest", align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False) -> Tensor:
    """Resize the spatial dims of (N, C, L), (N, C, H, W) or (N, C, D, H, W) input to
    ``size`` or by ``scale_factor``. Modes: 'nearest' (source index
    ``floor(dst * scale)``), 'nearest-exact' (``floor((dst + 0.5) * scale)``), 'linear'
    (3-D), 'bilinear' and 'bicubic' (4-D), 'trilinear' (5-D), with PyTorch's
    ``align_corners`` semantics. Nearest upsampling by an integer ``scale_factor``
    repeats elements, so it works on symbolic sizes too."""
    nd = input.ndim - 2
    if nd not in (1, 2, 3):
        raise ShapeError(f"interpolate: expects (N, C, L), (N, C, H, W) or (N, C, D, H, W) "
                         f"input, got {tuple(input.shape)}")
    linear = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
    if mode in linear:
        if linear[mode] != nd:
            raise ShapeError(f"interpolate: mode {mode!r} needs a {linear[mode] + 2}-D input, "
                             f"got {tuple(input.shape)}")
    elif mode not in ("nearest", "nearest-exact"):
        raise AmberError(f"interpolate: mode must be 'nearest', 'nearest-exact', 'linear', "
                         f"'bilinear', 'bicubic' or 'trilinear', got {mode!r}")
    elif align_corners is not None:
        raise AmberError("interpolate: align_corners can only be set with the linear modes")
    if antialias:
        raise AmberError("interpolate: antialias=True is not supported")
    plan = _interp_plan(input, nd, size, scale_factor, recompute_scale_factor)
    x = input if input.dtype.is_floating or mode.startswith("nearest") else \
        _F.cast(input, D.default_float())
    for i, (o, sc, k) in enumerate(plan):
        ax = 2 + i
        if mode == "nearest" and k is not None:
            x = _repeat(x, ax, k) if k > 1 else x
            continue
        if mode in linear and mode != "bicubic" and k is not None and not align_corners and \
                not isinstance(x.shape[ax], (int, np.integer)):
            x = _linear_by_phases(x, ax, k)
            continue
        n = _static("interpolate", x.shape[ax])
        if mode in linear:
            matrix = _cubic_matrix if mode == "bicubic" else _linear_matrix
            m = matrix(n, o, sc, bool(align_corners))
            moved = _F.transpose(x, ax, -1)
            w = Tensor._wrap(m.T.astype(x.dtype.np))
            x = _F.transpose(_F.matmul(moved, w), ax, -1)
        else:
            idx = _nearest_index(n, o, sc, mode == "nearest-exact")
            x = S.take(x, Tensor._wrap(idx), axis=ax)
    return x


def upsample(input: Tensor, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
             align_corners: bool | None = None) -> Tensor:
    """``interpolate`` (PyTorch's deprecated alias)."""
    return interpolate(input, size, scale_factor, mode, align_corners)


# ----------------------------------------------------------------------------- pixel shuffle


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C * r**2, H, W) -> (*, C, H * r, W * r)."""
    r = int(upscale_factor)
    if input.ndim < 3 or input.shape[-3] % (r * r):
        raise ShapeError(f"pixel_shuffle: input {tuple(input.shape)} needs >= 3 dims and "
                         f"channels divisible by upscale_factor**2 = {r * r}")
    lead, (c, h, w) = tuple(input.shape[:-3]), tuple(input.shape[-3:])
    k = len(lead)
    x = _F.reshape(input, lead + (c // (r * r), r, r, h, w))
    x = _F.permute(x, tuple(range(k)) + (k, k + 3, k + 1, k + 4, k + 2))
    return _F.reshape(x, lead + (c // (r * r), h * r, w * r))


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H * r, W * r) -> (*, C * r**2, H, W)."""
    r = int(downscale_factor)
    if input.ndim < 3 or input.shape[-2] % r or input.shape[-1] % r:
        raise ShapeError(f"pixel_unshuffle: input {tuple(input.shape)} needs >= 3 dims and "
                         f"height and width divisible by downscale_factor = {r}")
    lead, (c, h, w) = tuple(input.shape[:-3]), tuple(input.shape[-3:])
    k = len(lead)
    x = _F.reshape(input, lead + (c, h // r, r, w // r, r))
    x = _F.permute(x, tuple(range(k)) + (k, k + 2, k + 4, k + 1, k + 3))
    return _F.reshape(x, lead + (c * r * r, h // r, w // r))
