"""F.grid_sample and F.affine_grid against PyTorch: values and gradients for the input
and the grid, every mode, padding and corner alignment."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.nn.functional as F
from amber.errors import AmberError, ShapeError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def _case(dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    spatial = (3, 4, 5)[-dims:]
    x = rng.normal(size=(2, 3, *spatial))
    out = (2, 3, 4)[-dims:]
    grid = rng.uniform(-1.3, 1.3, size=(2, *out, dims))  # some points outside
    return x, grid


@pytest.mark.parametrize("mode,dims", [("bilinear", 2), ("nearest", 2), ("bicubic", 2),
                                       ("bilinear", 3), ("nearest", 3)])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [False, True])
def test_grid_sample_matches_pytorch(mode: str, padding: str, align: bool, dims: int) -> None:
    x, grid = _case(dims)
    tx = torch.tensor(x, requires_grad=True)
    tg = torch.tensor(grid, requires_grad=True)
    ref = torch.nn.functional.grid_sample(tx, tg, mode=mode, padding_mode=padding,
                                          align_corners=align)
    ref.pow(2).sum().backward()
    ax = am.tensor(x, requires_grad=True)
    ag = am.tensor(grid, requires_grad=True)
    got = F.grid_sample(ax, ag, mode=mode, padding_mode=padding, align_corners=align)
    np.testing.assert_allclose(got.detach().numpy(), ref.detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    (got * got).sum().backward()
    np.testing.assert_allclose(ax.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    if mode != "nearest":  # PyTorch's nearest grid gradient is zero, as amber's
        np.testing.assert_allclose(ag.grad.numpy(), tg.grad.numpy(), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("size", [(2, 1, 3, 4), (2, 1, 2, 3, 4)])
def test_affine_grid_matches_pytorch(align: bool, size: tuple[int, ...]) -> None:
    nd = len(size) - 2
    theta = np.random.default_rng(1).normal(size=(2, nd, nd + 1))
    ref = torch.nn.functional.affine_grid(torch.tensor(theta), list(size),
                                          align_corners=align)
    got = F.affine_grid(am.tensor(theta), size, align_corners=align)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)


def test_grid_sample_exports_and_runs_natively(tmp_path) -> None:
    x, grid = _case(2)
    x32, g32 = x.astype(np.float32), grid.astype(np.float32)

    def warp(img, g):
        return F.grid_sample(img, g, align_corners=False)

    program = am.export(warp, am.spec(x32.shape), am.spec(g32.shape))
    program.save(str(tmp_path / "warp.amber"))
    loaded = am.load(str(tmp_path / "warp.amber"))
    expected = warp(am.tensor(x32), am.tensor(g32)).numpy()
    np.testing.assert_allclose(loaded(x32, g32).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_bad_arguments_are_named() -> None:
    x, grid = _case(2)
    with pytest.raises(AmberError, match="mode 'area'"):
        F.grid_sample(am.tensor(x), am.tensor(grid), mode="area")
    with pytest.raises(ShapeError, match="do not fit"):
        F.grid_sample(am.tensor(x), am.tensor(grid[..., :1]))
    with pytest.raises(ShapeError, match="do not fit"):
        F.affine_grid(am.tensor(np.zeros((1, 2, 3))), (1, 1, 2, 2, 2))
