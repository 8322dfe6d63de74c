"""ONNX Resize and Upsample: nearest, linear and cubic interpolation, separable, as a
weighted sum of ``take`` s along each resized axis (sizes known while importing)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _dtype as D
from ..capture.dims import DimExpr
from ..ops import elementwise as E
from ..ops import shape as S
from ..tensor import Tensor
from ._graph import Ctx, op
from ._ops_elementwise import need


def _source(c: Ctx, mode: str, x: np.ndarray, n_in: int, n_out: int, scale: float,
            roi: tuple[float, float] | None = None) -> np.ndarray:
    """Output coordinates ``x`` mapped into the input (coordinate_transformation_mode)."""
    if mode == "tf_crop_and_resize":
        assert roi is not None
        width = n_in * scale  # NOTE: the real-valued output length, as the reference
        if width == 1:
            src = np.full_like(x, (roi[1] - roi[0]) * (n_in - 1) / 2)
        else:
            src = x * (roi[1] - roi[0]) * (n_in - 1) / (width - 1)
        return src + roi[0] * (n_in - 1)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adj = n_out / (scale * n_in)
        center = n_in / 2
        return center * (1 - adj) + (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if n_out > 1 else np.zeros_like(x)
    if mode == "align_corners":  # NOTE: the real-valued output length n_in * scale
        return x * (n_in - 1) / (n_in * scale - 1) if n_out > 1 else np.zeros_like(x)
    if mode == "asymmetric":
        return x / scale
    raise c.unsupported(f"coordinate_transformation_mode {mode!r}")


def _nearest(c: Ctx, src: np.ndarray, n_in: int, how: str) -> tuple[np.ndarray, np.ndarray]:
    if how == "round_prefer_floor":
        i = np.where(src - np.floor(src) == 0.5, np.floor(src), np.round(src))
    elif how == "round_prefer_ceil":
        i = np.where(src - np.floor(src) == 0.5, np.ceil(src), np.round(src))
    elif how == "floor":
        i = np.floor(src)
    elif how == "ceil":
        i = np.ceil(src)
    else:
        raise c.unsupported(f"nearest_mode {how!r}")
    return np.clip(i, 0, n_in - 1).astype(np.int64)[:, None], np.ones((len(src), 1))


def _cubic_w(t: np.ndarray, a: float) -> np.ndarray:
    t = np.abs(t)
    return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                    np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))


def _antialias_taps(c: Ctx, kind: str, src: np.ndarray, n_in: int, scale: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Downsampling with antialias: the kernel stretched by 1 / scale, normalised."""
    lo = np.ceil(src) - 1  # the left neighbour; an integral src counts as ratio 1
    ratio = src - lo
    if kind == "linear":
        start = int(np.floor(-1 / scale) + 1)
        offs = np.arange(start, 2 - start)
        w = np.clip(1 - np.abs((offs[None, :] - ratio[:, None]) * scale), 0, 1)
    else:
        start = int(np.floor(-2 / scale) + 1)
        offs = np.arange(start, 2 - start)
        w = _cubic_w((offs[None, :] - ratio[:, None]) * scale, c.a("cubic_coeff_a", -0.75))
    w = w / w.sum(1, keepdims=True)
    pos = lo[:, None] + offs[None, :]
    if c.a("exclude_outside", 0):
        w = np.where((pos < 0) | (pos > n_in - 1), 0.0, w)
        w = w / w.sum(1, keepdims=True)
    return np.clip(pos, 0, n_in - 1).astype(np.int64), w


def _taps(c: Ctx, kind: str, src: np.ndarray, n_in: int, scale: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """Input indices [n_out, K] and weights [n_out, K] for each output position."""
    if c.a("antialias", 0) and scale < 1:
        return _antialias_taps(c, kind, src, n_in, scale)
    if kind == "linear":
        s = np.clip(src, 0, n_in - 1)
        lo = np.floor(s)
        w = s - lo
        idx = np.stack([lo, np.minimum(lo + 1, n_in - 1)], 1).astype(np.int64)
        return idx, np.stack([1 - w, w], 1)
    a = c.a("cubic_coeff_a", -0.75)
    lo = np.floor(src)
    offs = np.arange(-1, 3)
    pos = lo[:, None] + offs[None, :]
    w = _cubic_w(src[:, None] - pos, a)
    if c.a("exclude_outside", 0):
        w = np.where((pos < 0) | (pos > n_in - 1), 0.0, w)
        w = w / w.sum(1, keepdims=True)
    return np.clip(pos, 0, n_in - 1).astype(np.int64), w


def _plan(c: Ctx, x: Tensor, axes: list[int], scales: list[float] | None,
          sizes: list[int] | None) -> list[tuple[int, float]]:
    """(output size, scale) per resized axis; keep_aspect_ratio_policy applies one scale
    to every axis (the output rounded half up), as the reference."""
    n_in = [x.shape[a] for a in axes]
    if any(isinstance(n, DimExpr) for n in n_in):
        raise c.unsupported("Resize of a symbolic dim")
    if sizes is None:
        assert scales is not None
        return [(math.floor(n * float(s)), float(s)) for n, s in zip(n_in, scales,
                                                                    strict=True)]
    policy = c.a("keep_aspect_ratio_policy", "stretch")
    if policy == "stretch":
        return [(int(o), int(o) / n) for o, n in zip(sizes, n_in, strict=True)]
    ratios = [int(o) / n for o, n in zip(sizes, n_in, strict=True)]
    if policy not in ("not_larger", "not_smaller"):
        raise c.unsupported(f"keep_aspect_ratio_policy {policy!r}")
    scale = min(ratios) if policy == "not_larger" else max(ratios)
    return [(int(scale * n + 0.5), scale) for n in n_in]


def _resize(c: Ctx, x: Tensor, scales: list[float] | None, sizes: list[int] | None,
            kind: str, coord: str, nearest: str, roi: list[float] | None = None) -> Tensor:
    axes = list(c.a("axes", range(x.ndim)))
    axes = [a % x.ndim for a in axes]
    if c.a("antialias", 0) and kind == "nearest":
        raise c.unsupported("antialias with nearest")
    if coord == "tf_crop_and_resize" and (roi is None or len(roi) != 2 * len(axes)):
        raise c.unsupported("tf_crop_and_resize without an roi for every resized axis")
    y = x
    for j, (a, (n_out, scale)) in enumerate(zip(axes, _plan(c, x, axes, scales, sizes),
                                                strict=True)):
        n_in = int(x.shape[a])
        box = None if roi is None else (float(roi[j]), float(roi[len(axes) + j]))
        if n_out == n_in and scale == 1.0 and box in (None, (0.0, 1.0)):
            continue
        src = _source(c, coord, np.arange(n_out, dtype=np.float64), n_in, n_out, scale, box)
        if kind == "nearest":
            idx, w = _nearest(c, src, n_in, nearest)
        else:
            idx, w = _taps(c, kind, src, n_in, scale)
        y = _weighted_take(y, a, idx, w, kind != "nearest", x.dtype)
        if coord == "tf_crop_and_resize":
            outside = (src < 0) | (src > n_in - 1)
            if outside.any():
                shape = [1] * y.ndim
                shape[a] = n_out
                fill = np.full(shape, c.a("extrapolation_value", 0.0), x.dtype.np)
                y = E.where(Tensor._wrap(outside.reshape(shape)), Tensor._wrap(fill), y)
    return y


def _weighted_take(y: Tensor, a: int, idx: np.ndarray, w: np.ndarray, weighted: bool,
                   dt: D.DType) -> Tensor:
    shape = [1] * y.ndim
    shape[a] = idx.shape[0]
    out = None
    for k in range(idx.shape[1]):
        part = S.take(y, Tensor._wrap(idx[:, k].copy()), axis=a)
        if weighted:
            part = E.mul(part, Tensor._wrap(w[:, k].astype(dt.np).reshape(shape)))
        out = part if out is None else E.add(out, part)
    assert out is not None
    return out


@op("Resize", since=10, notes="nearest (all nearest_mode s), linear and cubic "
                             "(cubic_coeff_a, exclude_outside, antialias); every coordinate "
                             "mode; keep_aspect_ratio_policy; scales, sizes and roi known "
                             "while importing")
def _resize_op(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    kind = c.a("mode", "nearest")
    if kind not in ("nearest", "linear", "cubic"):
        raise c.unsupported(f"mode {kind!r}")
    if c.opset < 11:
        old = [float(v) for v in np.asarray(c.s(1)).reshape(-1)]
        return _resize(c, x, old, None, kind, "asymmetric", "floor")
    scales: list[float] | None = None
    sizes: list[int] | None = None
    if c.has(3):
        sizes = [int(v) for v in c.ints(3)]
    elif c.has(2) and np.asarray(c.s(2)).size:
        scales = [float(v) for v in np.asarray(c.s(2)).reshape(-1)]
    else:
        raise c.unsupported("Resize without scales or sizes")
    coord = c.a("coordinate_transformation_mode", "half_pixel")
    roi = None
    if coord == "tf_crop_and_resize":
        roi = [float(v) for v in np.asarray(c.s(1)).reshape(-1)] if c.has(1) else None
    return _resize(c, x, scales, sizes, kind, coord, c.a("nearest_mode", "round_prefer_floor"),
                   roi)


@op("Upsample", since=7, notes="nearest and linear; scales known while importing")
def _upsample(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    kind = c.a("mode", "nearest")
    if kind not in ("nearest", "linear"):
        raise c.unsupported(f"mode {kind!r}")
    scales = c.a("scales") if c.opset < 9 else [float(v) for v in
                                                 np.asarray(c.s(1)).reshape(-1)]
    return _resize(c, x, list(scales), None, kind, "asymmetric", "floor")


__all__: list[Any] = []
