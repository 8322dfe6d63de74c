"""1x1 convolutions on images whose pixels are not a multiple of 16 (a last partial sliver
of columns: 49 and 196 pixels in ResNet-50): with AVX-512 those last columns are computed
with the rows as vector lanes, four columns at a time, then one at a time (a last 17: one
sliver and the column in the same tile). Each must
have the bits of the same column computed in a whole sliver of a wider image (one chain
of multiply-adds over the channels from +0 per depth block), of the plain plan (fusion
off), the same at 1, 2, 3 and 8 threads, and the reference's values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am
import amber.nn as nn
import amber.nn.functional as F
from amber import native as N
from helpers.programs import randomise_norm_state


class Bottleneck(nn.Module):
    """relu(x), a 1x1 reduce (bn, relu), a 1x1 expand whose bn adds the first relu's result
    (written over it) before its relu, then a 1x1 head."""

    def __init__(self, c: int, mid: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(c, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.expand = nn.Conv2d(mid, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.head = nn.Conv2d(c, 7, 1)

    def forward(self, x: Any) -> Any:
        r = F.relu(x)
        h = F.relu(self.bn1(self.reduce(r)))
        return self.head(F.relu(self.bn2(self.expand(h)) + r))


# (input channels, output channels): one depth block and two (600: accumulated into C);
# 61 output rows (not a multiple of 12: a group of fewer than four panels, a short panel)
SHAPES = [(96, 61), (600, 100)]


@pytest.mark.parametrize("cin,cout", SHAPES)
def test_last_columns_have_the_bits_of_a_whole_sliver(lib: N.NativeLibrary, cin: int,
                                                      cout: int, tmp_path: Path) -> None:
    am.manual_seed(4)
    conv = nn.Conv2d(cin, cout, 1, bias=False)
    am.export(conv, am.spec(1, cin, "h", "w")).save(tmp_path / "c.amber")
    rng = np.random.default_rng(cin)
    x = rng.standard_normal((1, cin, 1, 224)).astype(np.float32)
    w = conv.weight.detach().numpy().reshape(cout, cin).astype(np.float64)
    models = {t: N.NativeModel(tmp_path / "c.amber", threads=t) for t in (1, 2, 3, 8)}
    wide = models[1].run("forward", x[..., :64])[0]
    # 17 to 31 and 49 to 63 pixels: 1 to 15 last columns; 7x7 and 14x14 images
    for n in [*range(17, 32), *range(50, 64), 49, 196]:
        xi = x[..., :n].reshape(1, cin, *((7, 7) if n == 49 else (14, 14) if n == 196
                                         else (1, n)))
        want = wide[..., :n] if n < 64 else models[1].run("forward", x)[0][..., :n]
        for t, model in models.items():
            got = model.run("forward", xi)[0].reshape(1, cout, 1, n)
            assert got.tobytes() == np.ascontiguousarray(want).tobytes(), (n, t)
        ref = w @ x[0, :, 0, :n].astype(np.float64)
        np.testing.assert_allclose(want[0, :, 0], ref, rtol=1e-4, atol=1e-4 * np.sqrt(cin))


# 49, 17 and 81 pixels: a last 17 columns as one sliver and a column in the tile
@pytest.mark.parametrize("hw", [(7, 7), (14, 14), (1, 21), (3, 13), (1, 45), (1, 17), (3, 27)])
def test_epilogue_and_residual_over_on_the_last_columns(lib: N.NativeLibrary, tmp_path: Path,
                                                        hw: tuple[int, int]) -> None:
    am.manual_seed(6)
    net = Bottleneck(100, 61)
    randomise_norm_state(net, 7)
    net = net.eval()
    am.export(net, am.spec("batch", 100, *hw)).save(tmp_path / "b.amber")
    x = np.random.default_rng(8).standard_normal((2, 100, *hw)).astype(np.float32)
    want = N.NativeModel(tmp_path / "b.amber", fuse=False, threads=1).run("forward", x)[0]
    for t in (1, 2, 3, 8):
        got = N.NativeModel(tmp_path / "b.amber", threads=t).run("forward", x)[0]
        assert got.tobytes() == want.tobytes(), t
    np.testing.assert_allclose(want, net(am.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-4)
