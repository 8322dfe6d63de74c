"""F.unfold / F.fold (and nn.Unfold / nn.Fold) against PyTorch: values and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.nn as nn
import amber.nn.functional as F
from amber.errors import ShapeError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

CASES = [(3, 1, 0, 1), ((2, 3), (2, 1), (1, 0), (2, 3)), (1, 1, 0, 1), (2, 1, 1, 2)]


@pytest.mark.parametrize("kernel,dilation,padding,stride", CASES)
def test_unfold_and_fold_match_pytorch(kernel, dilation, padding, stride) -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 7, 6))
    tx = torch.tensor(x, requires_grad=True)
    cols_t = torch.nn.functional.unfold(tx, kernel, dilation, padding, stride)
    back_t = torch.nn.functional.fold(cols_t, (7, 6), kernel, dilation, padding, stride)
    (back_t ** 2).sum().backward()
    ax = am.tensor(x, requires_grad=True)
    cols = F.unfold(ax, kernel, dilation, padding, stride)
    back = F.fold(cols, (7, 6), kernel, dilation, padding, stride)
    (back * back).sum().backward()
    np.testing.assert_array_equal(cols.detach().numpy(), cols_t.detach().numpy())
    np.testing.assert_allclose(back.detach().numpy(), back_t.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(ax.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_modules_and_errors() -> None:
    x = am.tensor(np.ones((1, 2, 4, 4)))
    cols = nn.Unfold(2, stride=2)(x)
    assert tuple(cols.shape) == (1, 8, 4)
    assert tuple(nn.Fold((4, 4), 2, stride=2)(cols).shape) == (1, 2, 4, 4)
    with pytest.raises(ShapeError, match="leave no block"):
        F.unfold(x, 5)
    with pytest.raises(ShapeError, match="does not hold"):
        F.fold(am.tensor(np.ones((1, 7, 4))), (4, 4), 2, stride=2)
