"""``unfold`` (im2col) and ``fold`` (col2im), as PyTorch's, from strided slices and
interior padding: exact (no products with zero weights), any number of spatial dims
inside, differentiable for free."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .. import functional as _F
from ..errors import ShapeError
from ..ops import shape as S
from ..tensor import Tensor


def _tuple(v: Any, nd: int, name: str, op: str) -> tuple[int, ...]:
    out = (int(v),) * nd if isinstance(v, (int, np.integer)) else tuple(int(x) for x in v)
    if len(out) != nd:
        raise ShapeError(f"{op}: {name} needs {nd} values, got {v!r}")
    return out


def _blocks(size: tuple[int, ...], kernel: tuple[int, ...], dilation: tuple[int, ...],
            padding: tuple[int, ...], stride: tuple[int, ...], op: str) -> tuple[int, ...]:
    out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, d, p, s in
                zip(size, kernel, dilation, padding, stride, strict=True))
    if any(o <= 0 for o in out) or any(s <= 0 for s in stride) or \
            any(k <= 0 for k in kernel) or any(d <= 0 for d in dilation):
        raise ShapeError(f"{op}: kernel {kernel}, dilation {dilation}, padding {padding} "
                         f"and stride {stride} leave no block in spatial size {size}")
    return out


def unfold_nd(x: Tensor, kernel: tuple[int, ...], dilation: tuple[int, ...],
              padding: tuple[int, ...], stride: tuple[int, ...], op: str = "unfold"
              ) -> Tensor:
    """(N, C, *spatial) -> (N, C * prod(kernel), L): every block, channel-major."""
    nd = len(kernel)
    n, ch = x.shape[0], x.shape[1]
    size = tuple(int(d) for d in x.shape[2:])
    blocks = _blocks(size, kernel, dilation, padding, stride, op)
    if any(padding):
        flat = (0,) * (nd + 2)
        x = S.pad(x, lo=(0, 0, *padding), hi=(0, 0, *padding), interior=flat, value=0.0)
    planes = []
    for offsets in itertools.product(*(range(k) for k in kernel)):
        starts = tuple(o * d for o, d in zip(offsets, dilation, strict=True))
        stops = tuple(s + (b - 1) * st + 1 for s, b, st in zip(starts, blocks, stride,
                                                                strict=True))
        planes.append(S.slice_(x, starts=(0, 0, *starts), stops=(n, ch, *stops),
                               steps=(1, 1, *stride)))
    stacked = _F.stack(planes, 2)  # (N, C, prod(kernel), *blocks)
    return _F.reshape_exact(stacked, (n, ch * len(planes), int(np.prod(blocks))))


def fold_nd(cols: Tensor, size: tuple[int, ...], kernel: tuple[int, ...],
            dilation: tuple[int, ...], padding: tuple[int, ...], stride: tuple[int, ...],
            op: str = "fold") -> Tensor:
    """(N, C * prod(kernel), L) -> (N, C, *size): every block added back in place."""
    nd = len(kernel)
    blocks = _blocks(size, kernel, dilation, padding, stride, op)
    per = int(np.prod(kernel))
    n, rows, count = cols.shape[0], int(cols.shape[1]), int(cols.shape[2])
    if rows % per or count != int(np.prod(blocks)):
        raise ShapeError(f"{op}: input {tuple(cols.shape)} does not hold (C * {per}) rows "
                         f"of {int(np.prod(blocks))} blocks for output size {size}, kernel "
                         f"{kernel}")
    ch = rows // per
    grid = _F.reshape_exact(cols, (n, ch, per, *blocks))
    padded = tuple(s + 2 * p for s, p in zip(size, padding, strict=True))
    total: Tensor | None = None
    for k, offsets in enumerate(itertools.product(*(range(kk) for kk in kernel))):
        plane = S.slice_(grid, starts=(0, 0, k) + (0,) * nd, stops=(n, ch, k + 1, *blocks),
                         steps=(1,) * (nd + 3))
        plane = _F.reshape_exact(plane, (n, ch, *blocks))
        lo = tuple(o * d for o, d in zip(offsets, dilation, strict=True))
        hi = tuple(P - lo_ - ((b - 1) * s + 1) for P, lo_, b, s in
                   zip(padded, lo, blocks, stride, strict=True))
        placed = S.pad(plane, lo=(0, 0, *lo), hi=(0, 0, *hi),
                       interior=(0, 0, *(s - 1 for s in stride)), value=0.0)
        total = placed if total is None else total + placed
    assert total is not None
    if any(padding):
        total = S.slice_(total, starts=(0, 0, *padding),
                         stops=(n, ch, *(p + s for p, s in zip(padding, size, strict=True))),
                         steps=(1,) * (nd + 2))
    return total


def unfold(input: Tensor, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
           stride: Any = 1) -> Tensor:
    """Sliding blocks of (N, C, H, W) input as columns (N, C * kh * kw, L), as PyTorch's
    ``_F.unfold`` (im2col)."""
    if input.ndim != 4:
        raise ShapeError(f"unfold: expects (N, C, H, W) input, got {tuple(input.shape)}")
    k, d, p, s = (_tuple(v, 2, nm, "unfold") for v, nm in ((kernel_size, "kernel_size"),
                  (dilation, "dilation"), (padding, "padding"), (stride, "stride")))
    return unfold_nd(input, k, d, p, s)


def fold(input: Tensor, output_size: Any, kernel_size: Any, dilation: Any = 1,
         padding: Any = 0, stride: Any = 1) -> Tensor:
    """Columns (N, C * kh * kw, L) summed back into (N, C, H, W), as PyTorch's ``_F.fold``
    (col2im; overlapping blocks add up)."""
    if input.ndim != 3:
        raise ShapeError(f"fold: expects (N, C * kh * kw, L) input, got "
                         f"{tuple(input.shape)}")
    size = _tuple(output_size, 2, "output_size", "fold")
    k, d, p, s = (_tuple(v, 2, nm, "fold") for v, nm in ((kernel_size, "kernel_size"),
                  (dilation, "dilation"), (padding, "padding"), (stride, "stride")))
    return fold_nd(input, size, k, d, p, s)
