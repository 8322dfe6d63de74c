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


def _source(c: Ctx, mode: str, x: np.ndarray, n_in: int, n_out: int, scale: float
            ) -> np.ndarray:
    """Output coordinates ``x`` mapped into the input (coordinate_transformation_mode)."""
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


def _taps(c: Ctx, kind: str, src: np.ndarray, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indices [n_out, K] and weights [n_out, K] for each output position."""
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


def _resize(c: Ctx, x: Tensor, scales: list[float] | None, sizes: list[int] | None,
            kind: str, coord: str, nearest: str) -> Tensor:
    axes = list(c.a("axes", range(x.ndim)))
    axes = [a % x.ndim for a in axes]
    if c.a("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise c.unsupported("keep_aspect_ratio_policy other than stretch")
    if c.a("antialias", 0):
        raise c.unsupported("antialias")
    y = x
    for j, a in enumerate(axes):
        n_in = x.shape[a]
        if isinstance(n_in, DimExpr):
            raise c.unsupported("Resize of a symbolic dim")
        if sizes is not None:
            n_out = int(sizes[j])
            scale = n_out / n_in
        else:
            scale = float(scales[j])  # type: ignore[index]
            n_out = math.floor(n_in * scale)
        if n_out == n_in and scale == 1.0:
            continue
        src = _source(c, coord, np.arange(n_out, dtype=np.float64), n_in, n_out, scale)
        if kind == "nearest":
            idx, w = _nearest(c, src, n_in, nearest)
        else:
            idx, w = _taps(c, kind, src, n_in)
        shape = [1] * y.ndim
        shape[a] = n_out
        out = None
        for k in range(idx.shape[1]):
            part = S.take(y, Tensor._wrap(idx[:, k].copy()), axis=a)
            if kind != "nearest":
                part = E.mul(part, Tensor._wrap(w[:, k].astype(x.dtype.np).reshape(shape)))
            out = part if out is None else E.add(out, part)
        assert out is not None
        y = out
    return y


@op("Resize", since=10, notes="nearest (all nearest_mode s), linear and cubic "
                             "(cubic_coeff_a, exclude_outside); every coordinate mode but "
                             "tf_crop_and_resize; scales or sizes known while importing")
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
    return _resize(c, x, scales, sizes, kind, coord, c.a("nearest_mode", "round_prefer_floor"))


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
