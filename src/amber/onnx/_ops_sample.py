"""ONNX GridSample, AffineGrid and Col2Im, on ``F.grid_sample``, ``F.affine_grid`` and
``F.fold``'s N-D form."""

from __future__ import annotations

from .. import _dtype as D
from ..capture.dims import DimExpr
from ..nn import functional as NF
from ..nn._fold import fold_nd
from ..ops import elementwise as E
from ..tensor import Tensor
from ._graph import Ctx, op
from ._ops_elementwise import need


@op("GridSample", since=16, notes="2-D and 3-D (20); nearest, linear, cubic (2-D); zeros, "
                                  "border, reflection padding; static spatial sizes")
def _grid_sample(c: Ctx) -> Tensor:
    x, grid = c.t(0), c.t(1)
    need(c, x, D.FLOATS)
    need(c, grid, D.FLOATS, "grid")
    mode = str(c.a("mode", "linear" if c.opset >= 20 else "bilinear"))
    padding = str(c.a("padding_mode", "zeros"))
    if mode not in ("bilinear", "linear", "nearest", "bicubic", "cubic") or \
            padding not in ("zeros", "border", "reflection"):
        raise c.unsupported(f"GridSample mode {mode!r}, padding {padding!r}")
    if x.ndim not in (4, 5) or grid.ndim != x.ndim or grid.shape[-1] != x.ndim - 2:
        raise c.unsupported(f"GridSample of a {x.ndim}-D input with a {grid.ndim}-D grid "
                            f"(2-D and 3-D sampling)")
    if mode in ("bicubic", "cubic") and x.ndim != 4:
        raise c.unsupported("cubic GridSample in 3-D")
    if any(isinstance(d, DimExpr) for d in (*x.shape[2:], *grid.shape[1:-1])):
        raise c.unsupported("GridSample with symbolic spatial sizes")
    if grid.dtype is not x.dtype:
        grid = E.cast(grid, dtype=x.dtype.name)
    return NF.grid_sample(x, grid, mode, padding, bool(c.a("align_corners", 0)))


@op("AffineGrid", since=20, notes="2-D and 3-D; the size known while importing")
def _affine_grid(c: Ctx) -> Tensor:
    theta = c.t(0)
    need(c, theta, D.FLOATS, "theta")
    size = c.ints(1)
    if any(isinstance(d, DimExpr) for d in size):
        raise c.unsupported("AffineGrid of a symbolic size")
    return NF.affine_grid(theta, size, bool(c.a("align_corners", 0)))


@op("Col2Im", since=18, notes="any number of spatial dims; image and block shapes known "
                              "while importing")
def _col2im(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    image, block = c.ints(1), c.ints(2)
    if any(isinstance(d, DimExpr) for d in (*image, *block)) or x.ndim != 3:
        raise c.unsupported("Col2Im needs a 3-D input and static image and block shapes")
    nd = len(block)
    pads = [int(p) for p in c.a("pads", [0] * (2 * nd))]
    if pads[:nd] != pads[nd:]:
        raise c.unsupported(f"Col2Im with unequal begin and end pads {pads}")
    return fold_nd(x, tuple(image), tuple(block), tuple(c.a("dilations", [1] * nd)),
                   tuple(pads[:nd]), tuple(c.a("strides", [1] * nd)), op="Col2Im")
