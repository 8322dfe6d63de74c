"""The recurrent, attention, convolution, normalisation, pooling and resampling layers
export with symbolic batch (and sequence) sizes, and the native runtime's results on
fresh sizes equal eager execution."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am
import amber.nn as nn
import amber.nn.functional as F

TOL = 2e-5


def _native(program: am.Program, tmp_path: Path) -> am.Model:
    path = tmp_path / "m.amber"
    program.save(path)
    model = am.load(path, backend="native")
    assert model.backend == "native"
    return model


def _check(fn: Callable[..., Any], specs: list[Any], inputs: list[np.ndarray],
           tmp_path: Path, **export_kw: Any) -> None:
    model = _native(am.export(fn, *specs, **export_kw), tmp_path)
    want = am.tree_flatten(fn(*[am.tensor(x) for x in inputs]))[0]
    got = am.tree_flatten(model(*inputs))[0]
    assert len(want) == len(got)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(np.asarray(g), w.detach().numpy(), rtol=TOL, atol=TOL)


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("cls, kw", [
    (nn.LSTM, dict(num_layers=2, bidirectional=True)),
    (nn.LSTM, dict(proj_size=3, batch_first=True)),
    (nn.GRU, dict(num_layers=2, bidirectional=True, batch_first=True)),
    (nn.RNN, dict(nonlinearity="relu", bias=False)),
])
def test_recurrent_layers_export_with_symbolic_batch_and_length(cls, kw, tmp_path):
    am.manual_seed(0)
    m = cls(4, 6, **kw).eval()
    spec = am.spec("batch", "seq", 4) if kw.get("batch_first") else am.spec("seq", "batch", 4)

    def run(x):
        out, h = m(x)
        return out, h

    shape = (3, 7, 4) if kw.get("batch_first") else (7, 3, 4)
    _check(run, [spec], [_x(*shape)], tmp_path)


def test_recurrent_layer_with_initial_state_and_cells_export(tmp_path):
    am.manual_seed(1)
    lstm, cell = nn.LSTM(3, 5).eval(), nn.GRUCell(3, 5).eval()

    def run(x, h0, c0):
        out, (h, c) = lstm(x, (h0, c0))
        return out, h, c, cell(x[0], h[0])

    _check(run, [am.spec("seq", "batch", 3), am.spec(1, "batch", 5), am.spec(1, "batch", 5)],
           [_x(4, 2, 3), _x(1, 2, 5, seed=1), _x(1, 2, 5, seed=2)], tmp_path)


def test_attention_and_transformer_layers_export(tmp_path):
    am.manual_seed(2)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True).eval()
    dec = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.1, norm_first=True,
                                     activation="gelu", batch_first=True).eval()

    def run(x, mem):
        a, w = mha(x, mem, mem)
        y = enc(x, is_causal=False)
        z = dec(x, mem)
        s = F.scaled_dot_product_attention(x, mem, mem, is_causal=True)
        return a, w, y, z, s

    _check(run, [am.spec("batch", "seq", 8), am.spec("batch", "mem", 8)],
           [_x(3, 5, 8), _x(3, 6, 8, seed=1)], tmp_path)


def test_causal_mask_of_symbolic_length_exports(tmp_path):
    am.manual_seed(3)
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True).eval()

    def run(x):
        mask = am.triu(am.ones_like(x[0, :, :1]).expand(-1, x.shape[1]), 1) != 0
        return layer(x, src_mask=mask)

    _check(run, [am.spec("batch", "seq", 8)], [_x(2, 5, 8)], tmp_path)


def test_convolution_norm_pool_and_resampling_layers_export(tmp_path):
    am.manual_seed(4)
    net1 = nn.Sequential(nn.Conv1d(3, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.PReLU(4),
                         nn.MaxPool1d(2), nn.ConvTranspose1d(4, 2, 3, stride=2),
                         nn.InstanceNorm1d(2, affine=True), nn.AdaptiveAvgPool1d(5),
                         nn.Hardswish()).eval()
    net2 = nn.Sequential(nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1),
                         nn.RMSNorm([4, 10, 10]), nn.Upsample(scale_factor=2,
                                                              mode="bilinear"),
                         nn.AvgPool2d(2), nn.AdaptiveMaxPool2d(3), nn.PixelShuffle(1),
                         nn.Upsample(size=(4, 5)), nn.InstanceNorm2d(4), nn.Mish()).eval()

    def run(a, b):
        return net1(a), net2(b), F.interpolate(b, scale_factor=1.5, mode="bilinear",
                                               align_corners=True)

    _check(run, [am.spec("batch", 3, 8), am.spec("batch", 3, 5, 5)],
           [_x(2, 3, 8), _x(2, 3, 5, 5, seed=1)], tmp_path)


def test_gradients_of_recurrent_and_attention_layers_export(tmp_path):
    am.manual_seed(5)
    gru = nn.GRU(3, 4, bidirectional=True, batch_first=True)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)

    def grads(x, y):
        gru.zero_grad()
        mha.zero_grad()
        out, _ = gru(x)
        a, _ = mha(y, y, y, need_weights=False)
        loss = (out * out).sum() + (a * a).mean()
        loss.backward()
        return loss, gru.weight_hh_l0.grad, gru.bias_ih_l0_reverse.grad, mha.in_proj_weight.grad

    _check(grads, [am.spec("batch", "seq", 3), am.spec("batch", "seq", 8)],
           [_x(2, 5, 3), _x(2, 5, 8, seed=1)], tmp_path)


def test_upsampling_by_an_integer_factor_exports_with_symbolic_spatial_sizes(tmp_path):
    am.manual_seed(6)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Upsample(scale_factor=2),
                        nn.Conv2d(3, 2, 3, padding=1), nn.AdaptiveAvgPool2d(1)).eval()

    def run(x, y):
        return (net(x), F.interpolate(y, scale_factor=3),
                F.interpolate(x, scale_factor=(2, 3), mode="bilinear"),
                F.interpolate(y, scale_factor=4, mode="linear"))

    _check(run, [am.spec("batch", 2, "h", "w"), am.spec("batch", 2, "l")],
           [_x(2, 2, 5, 4), _x(2, 2, 3, seed=1)], tmp_path, sizes={"batch": (1, 3),
                                                                  "h": (3, 6), "w": (4, 5),
                                                                  "l": (2, 7)})


def test_transposed_convolutions_export_with_symbolic_spatial_sizes(tmp_path):
    am.manual_seed(7)
    net2 = nn.Sequential(nn.ConvTranspose2d(2, 4, 3, stride=2, padding=1, output_padding=1),
                         nn.ReLU(), nn.ConvTranspose2d(4, 2, (2, 3), stride=(1, 2), padding=(1, 0),
                                                       dilation=2, groups=2)).eval()
    net1 = nn.ConvTranspose1d(2, 3, 4, stride=3, padding=1).eval()
    _check(lambda a, b: (net2(a), net1(b)),
           [am.spec("batch", 2, "h", "w"), am.spec("batch", 2, "l")],
           [_x(2, 2, 4, 5), _x(2, 2, 6, seed=1)], tmp_path,
           sizes={"batch": (1, 2), "h": (3, 5), "w": (2, 4), "l": (3, 5)})
