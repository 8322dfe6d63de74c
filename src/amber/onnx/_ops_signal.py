"""ONNX signal operators: DFT and STFT as products with cosine and sine matrices, and the
window functions (whose sizes are known while importing) as constants."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _dtype as D
from .. import functional as _F
from ..capture.dims import DimExpr
from ..ops import elementwise as E
from ..ops import linalg as L
from ..ops import shape as S
from ..tensor import Tensor
from ._graph import Ctx, op
from ._ops_elementwise import need, onnx_dtype, sc


def _dft_matrices(n_in: int, n_out: int, dt: D.DType) -> tuple[Tensor, Tensor]:
    """cos and sin of 2 pi j k / n for j < n_in (input index), k < n_out (output index),
    with j k reduced modulo n first so large products keep full precision."""
    n = n_in
    jk = np.outer(np.arange(n_in, dtype=np.int64), np.arange(n_out, dtype=np.int64)) % n
    angle = 2.0 * np.pi * jk / n
    return (Tensor._wrap(np.cos(angle).astype(dt.np)),
            Tensor._wrap(np.sin(angle).astype(dt.np)))


def _move_last(x: Tensor, axis: int) -> tuple[Tensor, tuple[int, ...]]:
    """x with ``axis`` moved to the end, and the permutation that undoes it."""
    perm = tuple(d for d in range(x.ndim) if d != axis) + (axis,)
    back = tuple(int(i) for i in np.argsort(perm))
    return S.transpose(x, perm=perm), back


def _fit(x: Tensor, axis: int, n: int) -> Tensor:
    """x zero-padded or cut to length n along axis."""
    have = x.shape[axis]
    if have == n:
        return x
    if have > n:
        stops = tuple(n if d == axis else x.shape[d] for d in range(x.ndim))
        return S.slice_(x, starts=(0,) * x.ndim, stops=stops, steps=(1,) * x.ndim)
    lo = (0,) * x.ndim
    hi = tuple(n - have if d == axis else 0 for d in range(x.ndim))
    return S.pad(x, lo=lo, hi=hi, interior=(0,) * x.ndim, value=0.0)


def dft(x: Tensor, axis: int, length: int | None, inverse: bool, onesided: bool) -> Tensor:
    """ONNX DFT of x (..., 1 or 2 as real or complex) along ``axis`` (a signal dim)."""
    complex_in = x.shape[-1] == 2
    parts = [S.slice_(x, starts=(0,) * (x.ndim - 1) + (i,),
                      stops=tuple(x.shape[:-1]) + (i + 1,), steps=(1,) * x.ndim)
             for i in range(2 if complex_in else 1)]
    parts = [_F.reshape_exact(p, tuple(x.shape[:-1])) for p in parts]
    n = int(length if length is not None else x.shape[axis])
    parts = [_fit(p, axis, n) for p in parts]
    n_out = n // 2 + 1 if onesided else n
    cos, sin = _dft_matrices(n, n_out, x.dtype)
    moved = [_move_last(p, axis) for p in parts]
    back = moved[0][1]
    re_in = moved[0][0]
    sign = 1.0 if inverse else -1.0
    # (a + ib)(cos + i sign sin) = a cos - sign b sin + i (b cos + sign a sin)
    re = L.matmul(re_in, cos)
    im = E.mul(L.matmul(re_in, sin), sc(sign, x.dtype))
    if complex_in:
        im_in = moved[1][0]
        re = E.sub(re, E.mul(L.matmul(im_in, sin), sc(sign, x.dtype)))
        im = E.add(im, L.matmul(im_in, cos))
    if inverse:
        re, im = E.div(re, sc(n, x.dtype)), E.div(im, sc(n, x.dtype))
    re, im = S.transpose(re, perm=back), S.transpose(im, perm=back)
    return _F.stack([re, im], -1)


def irfft(x: Tensor, axis: int, n: int) -> Tensor:
    """The real signal of length n whose spectrum's first n // 2 + 1 entries are x's
    (complex, last dim 2), as NumPy's irfft: the other half is the conjugate mirror, and
    the imaginary parts of the zero and Nyquist frequencies are ignored."""
    m = n // 2 + 1
    re_x, im_x = (_F.reshape_exact(S.slice_(x, starts=(0,) * (x.ndim - 1) + (i,),
                                           stops=tuple(x.shape[:-1]) + (i + 1,),
                                           steps=(1,) * x.ndim), tuple(x.shape[:-1]))
                  for i in range(2))
    re_x, im_x = _fit(re_x, axis, m), _fit(im_x, axis, m)
    k = np.arange(m, dtype=np.int64)
    weight = np.where((k == 0) | ((n % 2 == 0) & (k == n // 2)), 1.0, 2.0) / n
    jk = np.outer(k, np.arange(n, dtype=np.int64)) % n
    angle = 2.0 * np.pi * jk / n
    cos = Tensor._wrap((weight[:, None] * np.cos(angle)).astype(x.dtype.np))
    sin = Tensor._wrap((weight[:, None] * np.sin(angle)).astype(x.dtype.np))
    re_m, back = _move_last(re_x, axis)
    im_m, _ = _move_last(im_x, axis)
    out = E.sub(L.matmul(re_m, cos), L.matmul(im_m, sin))
    out = S.transpose(out, perm=back)
    return _F.reshape_exact(out, tuple(out.shape) + (1,))


@op("DFT", since=17, notes="real or complex input, inverse, onesided (inverse: NumPy's "
                           "irfft), dft_length and axis known while importing; a static "
                           "signal length")
def _dft(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    if c.opset >= 20:
        axis = int(np.asarray(c.s(2)).reshape(()).item()) if c.has(2) else -2
    else:
        axis = int(c.a("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    if not 0 < axis < x.ndim - 1:
        raise c.unsupported(f"DFT axis {axis} of a {x.ndim}-D signal (batch first, "
                            f"real/imaginary last)")
    if x.shape[-1] not in (1, 2):
        raise c.unsupported(f"DFT input's last dim is {x.shape[-1]}; it must be 1 (real) "
                            f"or 2 (complex)")
    length = int(np.asarray(c.s(1)).reshape(()).item()) if c.has(1) else None
    if length is None and isinstance(x.shape[axis], DimExpr):
        raise c.unsupported("DFT over a symbolic signal length")
    inverse, onesided = bool(c.a("inverse", 0)), bool(c.a("onesided", 0))
    if inverse and onesided:
        if x.shape[-1] != 2 or isinstance(x.shape[axis], DimExpr):
            raise c.unsupported("an inverse one-sided DFT needs a complex input of static "
                                "length")
        return irfft(x, axis, length if length is not None else 2 * (x.shape[axis] - 1))
    return dft(x, axis, length, inverse, onesided)


def _window(kind: str) -> Any:
    def fn(c: Ctx) -> Tensor:
        size = int(np.asarray(c.s(0)).reshape(()).item())
        periodic = bool(c.a("periodic", 1))
        dt = onnx_dtype(c, int(c.a("output_datatype", 1)))
        if size <= 0:
            return Tensor._wrap(np.zeros((0,), dt.np))
        denom = size if periodic else max(size - 1, 1)
        phase = 2.0 * np.pi * np.arange(size, dtype=np.float64) / denom
        if kind == "Hann":
            w = 0.5 - 0.5 * np.cos(phase)
        elif kind == "Hamming":
            a0 = 25.0 / 46.0
            w = a0 - (1.0 - a0) * np.cos(phase)
        else:
            w = 0.42 - 0.5 * np.cos(phase) + 0.08 * np.cos(2.0 * phase)
        return Tensor._wrap(w.astype(dt.np))
    return fn


for _kind in ("Hann", "Hamming", "Blackman"):
    op(f"{_kind}Window", since=17, notes="size known while importing (a constant)")(
        _window(_kind))


@op("STFT", since=17, notes="frame_step, frame_length and the signal length known while "
                            "importing; window, onesided")
def _stft(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    if x.ndim != 3 or isinstance(x.shape[1], DimExpr):
        raise c.unsupported("STFT needs a (batch, static length, 1 or 2) signal")
    step = int(np.asarray(c.s(1)).reshape(()).item())
    window = c.t(2) if c.has(2) else None
    if c.has(3):
        length = int(np.asarray(c.s(3)).reshape(()).item())
    else:
        length = int(window.shape[0]) if window is not None else int(x.shape[1])
    if step <= 0 or length <= 0 or length > x.shape[1]:
        raise c.unsupported(f"STFT frame_step {step}, frame_length {length} on a signal of "
                            f"length {x.shape[1]}")
    n_frames = 1 + (x.shape[1] - length) // step
    frames = [S.slice_(x, starts=(0, f * step, 0), stops=(x.shape[0], f * step + length,
                                                          x.shape[2]), steps=(1, 1, 1))
              for f in range(n_frames)]
    stacked = _F.stack(frames, 1)  # (batch, frames, length, 1 or 2)
    if window is not None:
        if int(window.shape[0]) != length:
            raise c.unsupported(f"STFT window of length {window.shape[0]} for frames of "
                                f"{length}")
        stacked = E.mul(stacked, _F.reshape_exact(window, (1, 1, length, 1)))
    return dft(stacked, 2, None, False, bool(c.a("onesided", 1)))


def mel_weight_matrix(bins: int, dft_length: int, rate: float, low: float, high: float
                      ) -> np.ndarray:
    """[dft_length // 2 + 1, bins] triangular filters, as ONNX's definition computes them
    (mel = 2595 log10(1 + f / 700); the bin edges floored to DFT bins)."""
    edges = np.arange(bins + 2, dtype=np.float64)
    low_mel = 2595 * np.log1p(low / 700) / np.log(10)
    high_mel = 2595 * np.log1p(high / 700) / np.log(10)
    edges = edges * ((high_mel - low_mel) / (bins + 2)) + low_mel
    edges = 700 * np.expm1(edges / 2595 * np.log(10))
    idx = (((dft_length + 1) * edges) // rate).astype(np.int64)
    out = np.zeros((dft_length // 2 + 1, bins))
    for i in range(bins):
        left, centre, right = int(idx[i]), int(idx[i + 1]), int(idx[i + 2])
        if centre == left:
            out[centre, i] = 1.0
        else:
            out[left:centre + 1, i] = (np.arange(left, centre + 1) - left) / (centre - left)
        if right > centre:
            out[centre:right, i] = (right - np.arange(centre, right)) / (right - centre)
    return out


@op("MelWeightMatrix", since=17, notes="every input known while importing (a constant)")
def _mel_weight_matrix(c: Ctx) -> Tensor:
    bins, length = (int(np.asarray(c.s(i)).reshape(()).item()) for i in range(2))
    rate = float(np.asarray(c.s(2)).reshape(()).item())
    low, high = (float(np.asarray(c.s(i)).reshape(()).item()) for i in (3, 4))
    if bins <= 0 or length <= 0 or rate <= 0 or not 0 <= low < high:
        raise c.unsupported(f"MelWeightMatrix of {bins} bins, dft_length {length}, sample "
                            f"rate {rate}, edges {low}..{high}")
    dt = onnx_dtype(c, int(c.a("output_datatype", 1)))
    return Tensor._wrap(mel_weight_matrix(bins, length, rate, low, high).astype(dt.np))
