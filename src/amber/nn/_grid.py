"""``grid_sample`` and ``affine_grid`` (PyTorch's, and ONNX's GridSample and AffineGrid):
sampling at normalised coordinates, composed from elementwise ops and one gather per
interpolation tap, so gradients reach both the input and the grid. The steps follow the
ONNX reference implementation (itself PyTorch's GridSampler)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .. import _dtype as D
from .. import functional as _F
from ..errors import AmberError, DTypeError, ShapeError
from ..ops import shape as S
from ..tensor import Tensor

_CUBIC_A = -0.75  # Keys' cubic convolution, as the reference


def _denormalize(g: Tensor, size: int, align: bool) -> Tensor:
    if align:
        return (g + 1.0) * ((size - 1) / 2.0)
    return ((g + 1.0) * float(size) - 1.0) / 2.0


def _reflect(x: Tensor, lo: float, hi: float) -> Tensor:
    """Reflect x off the nearer border until it lies in [lo, hi]."""
    span = hi - lo
    if span <= 0:
        return _F.full_like(x, lo)

    def fold(dist: Tensor, near: float, far: float, toward: float) -> Tensor:
        turns = _F.floor(dist / span)
        rest = dist - turns * span
        even = (turns - _F.floor(turns * 0.5) * 2.0) == 0.0
        return _F.where(even, near + toward * rest, far - toward * rest)

    below = fold(lo - x, lo, hi, 1.0)
    above = fold(x - hi, hi, lo, -1.0)
    return _F.where(x < lo, below, _F.where(x > hi, above, x))


def _cubic_weights(t: Tensor) -> list[Tensor]:
    a = _CUBIC_A

    def near(x: Tensor) -> Tensor:  # |x| <= 1
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0

    def far(x: Tensor) -> Tensor:  # 1 < |x| < 2
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a

    return [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]


def _taps(x: Tensor, mode: str) -> list[tuple[Tensor, Tensor | None]]:
    """(integral position, weight) pairs of one dim's interpolation."""
    if mode == "nearest":
        return [(_F.trunc(x), None)]
    base = _F.floor(x)
    t = x - base
    if mode == "linear":
        return [(base, 1.0 - t), (base + 1.0, t)]
    weights = _cubic_weights(t)
    return [(base + float(k - 1), w) for k, w in enumerate(weights)]


def _index(pos: Tensor, size: int, padding: str, lo: float, hi: float
           ) -> tuple[Tensor, Tensor | None]:
    """An in-range int64 index for an integral position, and (zeros padding) whether the
    position was inside."""
    inside = None
    if padding == "zeros":
        inside = _F.logical_and(pos >= 0.0, pos <= float(size - 1))
    elif padding == "reflection":
        pos = _F.trunc(_reflect(pos, lo, hi))
    pos = _F.clamp(pos, 0.0, float(size - 1))
    return _F.cast(pos, D.int64), inside


def _coords(grid: Tensor, sizes: list[int], mode: str, padding: str, align: bool,
            bounds: list[tuple[float, float]]) -> list[Tensor]:
    """Each spatial dim's sampling positions (N, *out), in input-pixel units."""
    nd = len(sizes)
    coords = []
    for i in range(nd):  # the grid lists the fastest dim first
        g = S.slice_(grid, starts=(0,) * (grid.ndim - 1) + (nd - 1 - i,),
                     stops=tuple(grid.shape[:-1]) + (nd - i,), steps=(1,) * grid.ndim)
        c = _denormalize(_F.reshape_exact(g, tuple(grid.shape[:-1])), sizes[i], align)
        if mode == "nearest":
            c = _F.round(c)
        lo, hi = bounds[i]
        if mode == "cubic":
            pass  # NOTE: as PyTorch: cubic pads each tap's index, not the coordinate
        elif padding == "border":
            c = _F.where(_F.logical_or(c < lo, c > hi), _F.clamp(c, 0.0, sizes[i] - 1.0), c)
        elif padding == "reflection":
            c = _reflect(c, lo, hi)
        coords.append(c)
    return coords


def _sample(x: Tensor, grid: Tensor, mode: str, padding: str, align: bool) -> Tensor:
    """(N, C, *spatial) sampled at grid (N, *out, nd)."""
    sizes = [int(s) for s in x.shape[2:]]
    n, ch = x.shape[0], x.shape[1]
    out = tuple(grid.shape[1:-1])
    bounds = [(0.0, s - 1.0) if align else (-0.5, s - 0.5) for s in sizes]
    strides = [int(np.prod(sizes[i + 1:], dtype=np.int64)) for i in range(len(sizes))]
    points = int(np.prod([int(d) for d in out], dtype=np.int64))
    flat_x = _F.reshape_exact(x, (n, ch, int(np.prod(sizes, dtype=np.int64))))
    total: Tensor | None = None
    for combo in itertools.product(*(_taps(c, mode) for c in
                                     _coords(grid, sizes, mode, padding, align, bounds))):
        flat: Any = None
        weight: Any = None
        inside: Any = None
        for i, (pos, w) in enumerate(combo):
            idx, ok = _index(pos, sizes[i], padding, *bounds[i])
            term = idx * strides[i] if strides[i] != 1 else idx
            flat = term if flat is None else flat + term
            weight = w if weight is None else (weight if w is None else weight * w)
            inside = ok if inside is None else _F.logical_and(inside, ok)
        index = S.broadcast_to(_F.reshape_exact(flat, (n, 1, points)), shape=(n, ch, points))
        picked = _F.reshape_exact(_F.gather(flat_x, 2, index), (n, ch) + out)
        if weight is not None:
            picked = picked * _F.reshape_exact(weight, (n, 1) + out)
        if inside is not None:
            picked = _F.where(_F.reshape_exact(inside, (n, 1) + out), picked,
                             _F.zeros_like(picked))
        total = picked if total is None else total + picked
    assert total is not None
    return total


_MODES = {"bilinear": "linear", "linear": "linear", "nearest": "nearest",
          "bicubic": "cubic", "cubic": "cubic"}


def grid_sample(input: Tensor, grid: Tensor, mode: str = "bilinear",
                padding_mode: str = "zeros", align_corners: bool | None = None) -> Tensor:
    """Sample ``input`` (N, C, H, W) or (N, C, D, H, W) at ``grid`` (N, H', W', 2) or
    (N, D', H', W', 3) of (x, y[, z]) coordinates normalised to [-1, 1], as PyTorch's:
    ``mode`` bilinear, nearest (halves to even) or bicubic (2-D); ``padding_mode`` zeros,
    border or reflection. Needs static spatial sizes."""
    kind = _MODES.get(mode)
    if kind is None:
        raise AmberError(f"grid_sample: mode {mode!r}; use 'bilinear', 'nearest' or "
                         f"'bicubic'")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise AmberError(f"grid_sample: padding_mode {padding_mode!r}; use 'zeros', "
                         f"'border' or 'reflection'")
    if input.ndim not in (4, 5) or grid.ndim != input.ndim or \
            grid.shape[-1] != input.ndim - 2 or grid.shape[0] != input.shape[0]:
        raise ShapeError(f"grid_sample: input {tuple(input.shape)} and grid "
                         f"{tuple(grid.shape)} do not fit: expected (N, C, H, W) with "
                         f"(N, H', W', 2), or (N, C, D, H, W) with (N, D', H', W', 3)")
    if kind == "cubic" and input.ndim != 4:
        raise ShapeError("grid_sample: bicubic needs a 4-D (N, C, H, W) input")
    for d in (*input.shape[2:], *grid.shape[1:-1]):
        if not isinstance(d, (int, np.integer)):
            raise ShapeError(f"grid_sample: needs static spatial sizes, got "
                             f"{tuple(input.shape)} and grid {tuple(grid.shape)}")
    if not (input.dtype.is_floating and grid.dtype is input.dtype):
        raise DTypeError(f"grid_sample: input ({input.dtype}) and grid ({grid.dtype}) "
                         f"must share one floating dtype")
    return _sample(input, grid, kind, padding_mode, bool(align_corners))


def _line(steps: int, align_corners: bool) -> np.ndarray:
    """Normalised pixel centres along one dim."""
    if steps <= 1:
        return np.zeros((max(steps, 0),))
    pts = np.linspace(-1.0, 1.0, steps)
    return pts if align_corners else pts * (steps - 1) / steps


def affine_grid(theta: Tensor, size: Any, align_corners: bool | None = None) -> Tensor:
    """The sampling grid of the affine maps ``theta`` (N, 2, 3) or (N, 3, 4) for an output
    of ``size`` (N, C, H, W) or (N, C, D, H, W), as PyTorch's: (N, H, W, 2) or
    (N, D, H, W, 3) of normalised (x, y[, z])."""
    size = tuple(int(s) for s in size)
    nd = len(size) - 2
    if nd not in (2, 3) or theta.ndim != 3 or tuple(theta.shape[1:]) != (nd, nd + 1):
        raise ShapeError(f"affine_grid: theta {tuple(theta.shape)} and size {size} do not "
                         f"fit: expected (N, 2, 3) with (N, C, H, W), or (N, 3, 4) with "
                         f"(N, C, D, H, W)")
    if not theta.dtype.is_floating:
        raise DTypeError(f"affine_grid: theta must be floating, got {theta.dtype}")
    spatial = size[2:]
    mesh = np.meshgrid(*(_line(s, bool(align_corners)) for s in spatial), indexing="ij")
    base = np.stack([*mesh[::-1], np.ones_like(mesh[0])], axis=-1)  # (x, y[, z], 1)
    points = int(np.prod(spatial, dtype=np.int64))
    base_t = Tensor._wrap(base.reshape(1, points, nd + 1).astype(theta.dtype.np))
    out = _F.matmul(S.broadcast_to(base_t, shape=(size[0], points, nd + 1)),
                   S.transpose(theta, perm=(0, 2, 1)))
    return _F.reshape_exact(out, (size[0],) + spatial + (nd,))
