"""Recurrent, attention, Transformer, convolution, normalisation, pooling, resampling,
activation and loss layers against PyTorch 2.13 (float32): state-dict keys and shapes,
loading a PyTorch state dict, forward values, and input and parameter gradients."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import amber as am  # noqa: E402
import amber.nn as nn  # noqa: E402
import amber.nn.functional as F  # noqa: E402

from .test_modules import check_fn, check_module, close, rand  # noqa: E402

pytestmark = [pytest.mark.torch,
              pytest.mark.filterwarnings("ignore::UserWarning")]
TF = torch.nn.functional
TN = torch.nn


def _tree(out):
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tree(o)]
    return [] if out is None else [out]


def check_multi(ma, mt, inputs, tol=1e-5, train=False, args_a=(), args_t=(), kwargs_a=None,
                kwargs_t=None):
    """Load ``mt``'s weights into ``ma``; compare every output and the gradients of a
    random projection of all outputs with respect to the inputs and parameters."""
    assert list(ma.state_dict()) == list(mt.state_dict())
    for k, v in mt.state_dict().items():
        assert tuple(ma.state_dict()[k].shape) == tuple(v.shape), k
    ma.load_state_dict({k: v.detach().numpy() for k, v in mt.state_dict().items()})
    ma.train(train)
    mt.train(train)
    xa = [am.tensor(x, requires_grad=x.dtype.kind == "f") for x in inputs]
    xt = [torch.tensor(x, requires_grad=x.dtype.kind == "f") for x in inputs]
    oa = _tree(ma(*xa, *args_a, **(kwargs_a or {})))
    ot = _tree(mt(*xt, *args_t, **(kwargs_t or {})))
    assert len(oa) == len(ot)
    total_a, total_t = am.tensor(0.0), torch.tensor(0.0)
    for i, (a, t) in enumerate(zip(oa, ot)):
        close(a, t, tol)
        cot = rand(*t.shape, seed=10 + i)
        total_a = total_a + (a * am.tensor(cot)).sum()
        total_t = total_t + (t * torch.tensor(cot)).sum()
    total_a.backward()
    total_t.backward()
    for a, t in zip(xa, xt):
        if t.requires_grad:
            close(a.grad, t.grad, tol)
    pa = dict(ma.named_parameters())
    for k, p in mt.named_parameters():
        if p.grad is not None:
            close(pa[k].grad, p.grad, tol)


# ----------------------------------------------------------------------------- recurrent


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("kw", [
    dict(),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=2, batch_first=True, bias=False),
    dict(bidirectional=True, batch_first=True),
])
def test_recurrent_layers(name, kw):
    ma, mt = getattr(nn, name)(4, 5, **kw), getattr(TN, name)(4, 5, **kw)
    x = rand(3, 6, 4) if kw.get("batch_first") else rand(6, 3, 4)
    check_multi(ma, mt, [x])


def test_rnn_relu_and_initial_states():
    ma, mt = nn.RNN(3, 4, 2, nonlinearity="relu"), TN.RNN(3, 4, 2, nonlinearity="relu")
    check_multi(ma, mt, [rand(5, 2, 3), rand(2, 2, 4, seed=1)])
    ma, mt = nn.GRU(3, 4, bidirectional=True), TN.GRU(3, 4, bidirectional=True)
    check_multi(ma, mt, [rand(5, 2, 3), rand(2, 2, 4, seed=2)])


def test_lstm_initial_state_projection_and_unbatched():
    ma, mt = nn.LSTM(3, 6, 2, proj_size=2), TN.LSTM(3, 6, 2, proj_size=2)
    h0, c0 = rand(2, 4, 2, seed=1), rand(2, 4, 6, seed=2)
    check_multi(ma, mt, [rand(5, 4, 3)], args_a=((am.tensor(h0), am.tensor(c0)),),
                args_t=((torch.tensor(h0), torch.tensor(c0)),))
    ma, mt = nn.LSTM(3, 4, bidirectional=True), TN.LSTM(3, 4, bidirectional=True)
    ma.flatten_parameters()
    check_multi(ma, mt, [rand(5, 3)])


def test_recurrent_dropout_between_layers_is_identity_in_eval_and_random_in_training():
    ma, mt = nn.LSTM(3, 4, 3, dropout=0.5), TN.LSTM(3, 4, 3, dropout=0.5)
    check_multi(ma, mt, [rand(4, 2, 3)])
    ma.train()
    am.manual_seed(0)
    y1 = ma(am.tensor(rand(4, 2, 3)))[0].detach().numpy()
    y2 = ma(am.tensor(rand(4, 2, 3)))[0].detach().numpy()
    assert not np.allclose(y1, y2)


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("bias", [True, False])
def test_cells(name, bias):
    ma, mt = getattr(nn, name)(3, 5, bias=bias), getattr(TN, name)(3, 5, bias=bias)
    check_multi(ma, mt, [rand(4, 3)])
    check_multi(ma, mt, [rand(3)])
    h = rand(4, 5, seed=3)
    if name == "LSTMCell":
        c = rand(4, 5, seed=4)
        check_multi(ma, mt, [rand(4, 3)], args_a=((am.tensor(h), am.tensor(c)),),
                    args_t=((torch.tensor(h), torch.tensor(c)),))
    else:
        check_multi(ma, mt, [rand(4, 3), h])


@pytest.mark.parametrize("kw", [{}, dict(batch_first=True, padding_value=-1.0),
                                dict(batch_first=True, padding_side="left")])
def test_pad_sequence(kw):
    pad_a, pad_t = nn.utils.rnn.pad_sequence, TN.utils.rnn.pad_sequence
    check_fn(lambda a, b, c: pad_a([a, b, c], **kw), lambda a, b, c: pad_t([a, b, c], **kw),
             rand(3, 2), rand(5, 2, seed=1), rand(1, 2, seed=2))
    check_fn(lambda a, b: pad_a([a, b], **kw), lambda a, b: pad_t([a, b], **kw), rand(2),
             rand(4, seed=1))


def test_recurrent_default_init_statistics():
    am.manual_seed(0)
    m = nn.LSTM(10, 50, 2, bidirectional=True)
    names = [k for k, _ in TN.LSTM(10, 50, 2, bidirectional=True).named_parameters()]
    assert [k for k, _ in m.named_parameters()] == names
    bound = 1 / np.sqrt(50)
    w = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    assert np.abs(w).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound


def test_packed_sequences_and_bad_arguments_are_refused():
    packed = TN.utils.rnn.pack_padded_sequence(torch.zeros(4, 2, 3), [4, 2])
    with pytest.raises(am.AmberError, match="PackedSequence"):
        nn.LSTM(3, 4)(packed)
    for fn, args in [(nn.utils.rnn.pack_padded_sequence, (am.zeros(4, 2, 3), [4, 2])),
                     (nn.utils.rnn.pack_sequence, ([am.zeros(4, 3)],)),
                     (nn.utils.rnn.pad_packed_sequence, (None,))]:
        with pytest.raises(am.AmberError, match="pad_sequence"):
            fn(*args)
    with pytest.raises(am.AmberError, match="proj_size is only supported by LSTM"):
        nn.RNNBase("GRU", 3, 4, proj_size=2)
    with pytest.raises(am.AmberError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(am.ShapeError, match="h_0 must have shape"):
        nn.GRU(3, 4)(am.zeros(5, 2, 3), am.zeros(1, 3, 4))
    with pytest.raises(am.ShapeError, match="input_size=3"):
        nn.RNN(3, 4)(am.zeros(5, 2, 2))


# ----------------------------------------------------------------------------- attention


def _sdpa_pair(kw):
    ka = {k: am.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    kt = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    return (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **ka),
            lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, **kt))


@pytest.mark.parametrize("kw", [
    {}, dict(is_causal=True), dict(scale=0.3),
    dict(attn_mask=np.random.default_rng(0).random((5, 6)) > 0.3),
    dict(attn_mask=rand(2, 1, 5, 6, seed=4)),
])
def test_scaled_dot_product_attention(kw):
    fa, ft = _sdpa_pair(kw)
    check_fn(fa, ft, rand(2, 3, 5, 4), rand(2, 3, 6, 4, seed=2), rand(2, 3, 6, 7, seed=3))


def test_sdpa_fully_masked_rows_give_zeros_and_finite_gradients():
    mask = np.ones((4, 5), bool)
    mask[2] = False
    fa, ft = _sdpa_pair(dict(attn_mask=mask))
    check_fn(fa, ft, rand(3, 4, 4), rand(3, 5, 4, seed=2), rand(3, 5, 2, seed=3))


def test_sdpa_grouped_query_attention():
    fa, ft = _sdpa_pair(dict(enable_gqa=True))
    check_fn(fa, ft, rand(2, 4, 5, 4), rand(2, 2, 6, 4, seed=2), rand(2, 2, 6, 3, seed=3))


@pytest.mark.parametrize("kw", [
    dict(), dict(batch_first=True), dict(kdim=3, vdim=5), dict(bias=False),
    dict(add_bias_kv=True, add_zero_attn=True),
])
def test_multihead_attention(kw):
    ma, mt = nn.MultiheadAttention(8, 2, **kw), TN.MultiheadAttention(8, 2, **kw)
    q, k, v = rand(4, 3, 8), rand(5, 3, kw.get("kdim", 8), seed=1), \
        rand(5, 3, kw.get("vdim", 8), seed=2)
    if kw.get("batch_first"):
        q, k, v = (np.ascontiguousarray(a.transpose(1, 0, 2)) for a in (q, k, v))
    kpm = np.zeros((3, 5), bool)
    kpm[1, 3:] = True
    mask = np.random.default_rng(1).random((4, 5)) > 0.8
    for avg in (True, False):
        kwa = dict(key_padding_mask=am.tensor(kpm), attn_mask=am.tensor(mask),
                   average_attn_weights=avg)
        kwt = dict(key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(mask),
                   average_attn_weights=avg)
        check_multi(ma, mt, [q, k, v], kwargs_a=kwa, kwargs_t=kwt)
    check_multi(ma, mt, [q, k, v], kwargs_a=dict(need_weights=False),
                kwargs_t=dict(need_weights=False))


def test_multihead_attention_float_masks_unbatched_and_errors():
    ma, mt = nn.MultiheadAttention(6, 3), TN.MultiheadAttention(6, 3)
    fmask = rand(3 * 2, 4, 4, seed=5)
    check_multi(ma, mt, [rand(4, 2, 6), rand(4, 2, 6, seed=1), rand(4, 2, 6, seed=2)],
                kwargs_a=dict(attn_mask=am.tensor(fmask)),
                kwargs_t=dict(attn_mask=torch.tensor(fmask)))
    check_multi(ma, mt, [rand(4, 6), rand(3, 6, seed=1), rand(3, 6, seed=2)])
    with pytest.raises(am.ShapeError, match="divisible by num_heads"):
        nn.MultiheadAttention(7, 2)
    with pytest.raises(am.AmberError, match="is_causal"):
        ma(am.zeros(4, 2, 6), am.zeros(4, 2, 6), am.zeros(4, 2, 6), is_causal=True)


@pytest.mark.parametrize("kw", [
    dict(), dict(norm_first=True, activation="gelu", batch_first=True),
    dict(activation=TN.functional.silu, bias=False),
])
def test_transformer_encoder_and_decoder_layers(kw):
    kw_a = dict(kw, activation=F.silu) if "activation" in kw and callable(kw["activation"]) \
        else kw
    bf = kw.get("batch_first")
    src = rand(2, 5, 8) if bf else rand(5, 2, 8)
    tgt = rand(2, 4, 8, seed=1) if bf else rand(4, 2, 8, seed=1)
    mask = TN.Transformer.generate_square_subsequent_mask(4).numpy()
    ma = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, **kw_a)
    mt = TN.TransformerEncoderLayer(8, 2, 16, dropout=0.0, **kw)
    check_multi(ma, mt, [src], tol=1e-4)
    kpm = np.zeros((2, 5), bool)
    kpm[0, 4] = True
    check_multi(ma, mt, [src], tol=1e-4, kwargs_a=dict(src_key_padding_mask=am.tensor(kpm)),
                kwargs_t=dict(src_key_padding_mask=torch.tensor(kpm)))
    ma = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, **kw_a)
    mt = TN.TransformerDecoderLayer(8, 2, 16, dropout=0.0, **kw)
    check_multi(ma, mt, [tgt, src], tol=1e-4, kwargs_a=dict(tgt_mask=am.tensor(mask)),
                kwargs_t=dict(tgt_mask=torch.tensor(mask)))


def test_transformer_and_stacks():
    ma = nn.Transformer(8, 2, 2, 2, 16, dropout=0.0, batch_first=True)
    mt = TN.Transformer(8, 2, 2, 2, 16, dropout=0.0, batch_first=True)
    mask = nn.Transformer.generate_square_subsequent_mask(4)
    close(mask, TN.Transformer.generate_square_subsequent_mask(4))
    check_multi(ma, mt, [rand(2, 5, 8), rand(2, 4, 8, seed=1)], tol=1e-4,
                kwargs_a=dict(tgt_mask=mask),
                kwargs_t=dict(tgt_mask=torch.tensor(mask.numpy())))
    enc_t = TN.TransformerEncoder(TN.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 3,
                                  TN.LayerNorm(8), enable_nested_tensor=False)
    enc_a = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 3,
                                  nn.LayerNorm(8))
    check_multi(enc_a, enc_t, [rand(5, 2, 8)], tol=1e-4)
    # the copies are independent modules
    assert enc_a.layers[0].linear1.weight is not enc_a.layers[1].linear1.weight


def test_transformer_default_init_is_xavier():
    am.manual_seed(0)
    m = nn.Transformer(32, 4, 1, 1, 64)
    w = m.encoder.layers[0].linear1.weight.detach().numpy()
    bound = np.sqrt(6 / (32 + 64))
    assert np.abs(w).max() <= bound and abs(w.std() - bound / np.sqrt(3)) < 0.1 * bound


# ----------------------------------------------------------------------------- convolution


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=2, dilation=2, groups=2, bias=False), dict(kernel_size=3, padding="same"),
    dict(kernel_size=3, padding=2, padding_mode="reflect"),
    dict(kernel_size=3, padding=1, padding_mode="circular"),
])
def test_conv1d(kw):
    check_module(nn.Conv1d(4, 6, **kw), TN.Conv1d(4, 6, **kw), rand(2, 4, 9))
    check_module(nn.Conv1d(4, 6, **kw), TN.Conv1d(4, 6, **kw), rand(4, 9))


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3), dict(kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1), dilation=(1, 2), groups=2),
    dict(kernel_size=4, stride=3, padding=2, bias=False, dilation=2, output_padding=2),
])
def test_conv_transpose(kw):
    check_module(nn.ConvTranspose2d(4, 6, **kw), TN.ConvTranspose2d(4, 6, **kw),
                 rand(2, 4, 5, 4))
    check_module(nn.ConvTranspose2d(4, 6, **kw), TN.ConvTranspose2d(4, 6, **kw), rand(4, 3, 5))
    kw1 = {k: (v[0] if isinstance(v, tuple) else v) for k, v in kw.items()}
    check_module(nn.ConvTranspose1d(4, 6, **kw1), TN.ConvTranspose1d(4, 6, **kw1),
                 rand(2, 4, 5))


def test_conv_transpose_output_size_and_errors():
    ma, mt = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1), \
        TN.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    ma.load_state_dict({k: v.detach().numpy() for k, v in mt.state_dict().items()})
    x = rand(1, 2, 4, 4)
    close(ma(am.tensor(x), output_size=[8, 8]), mt(torch.tensor(x), output_size=[8, 8]))
    with pytest.raises(am.ShapeError, match="not reachable"):
        ma(am.tensor(x), output_size=[10, 10])
    with pytest.raises(am.ShapeError, match="output_padding"):
        F.conv_transpose2d(am.tensor(x), ma.weight, stride=2, output_padding=2)


# ----------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("affine", [True, False])
def test_group_norm(affine):
    ma, mt = nn.GroupNorm(2, 6, affine=affine), TN.GroupNorm(2, 6, affine=affine)
    if affine:
        with torch.no_grad():
            mt.weight.copy_(torch.tensor(rand(6, seed=3)))
            mt.bias.copy_(torch.tensor(rand(6, seed=4)))
    check_module(ma, mt, rand(3, 6, 4, 5))
    check_module(ma, mt, rand(3, 6, 7))


@pytest.mark.parametrize("kw", [dict(), dict(affine=True),
                                dict(affine=True, track_running_stats=True)])
def test_instance_norm(kw):
    for cls_a, cls_t, shape in [(nn.InstanceNorm1d, TN.InstanceNorm1d, (3, 4, 6)),
                                (nn.InstanceNorm2d, TN.InstanceNorm2d, (2, 4, 3, 5)),
                                (nn.InstanceNorm1d, TN.InstanceNorm1d, (4, 6))]:
        ma, mt = cls_a(4, **kw), cls_t(4, **kw)
        check_module(ma, mt, rand(*shape, scale=2.0) + 1.0)
        x = rand(*shape, seed=9)
        close(ma.eval()(am.tensor(x)), mt.eval()(torch.tensor(x)))


@pytest.mark.parametrize("kw", [dict(normalized_shape=5), dict(normalized_shape=(4, 5), eps=1e-3),
                                dict(normalized_shape=5, elementwise_affine=False)])
def test_rms_norm(kw):
    ma, mt = nn.RMSNorm(**kw), TN.RMSNorm(**kw)
    if mt.weight is not None:
        with torch.no_grad():
            mt.weight.copy_(torch.tensor(rand(*mt.weight.shape, seed=2)))
    check_module(ma, mt, rand(3, 4, 5))


def test_vector_norms():
    check_fn(lambda x: F.normalize(x), TF.normalize, rand(4, 5))
    check_fn(lambda x: F.normalize(x, p=1.0, dim=-1), lambda x: TF.normalize(x, p=1.0, dim=-1),
             rand(3, 4))
    check_fn(lambda x: F.normalize(x, p=3.0, dim=0), lambda x: TF.normalize(x, p=3.0, dim=0),
             rand(3, 4))
    check_fn(F.cosine_similarity, TF.cosine_similarity, rand(4, 5), rand(4, 5, seed=1))
    check_fn(lambda a, b: F.cosine_similarity(a, b, dim=-1),
             lambda a, b: TF.cosine_similarity(a, b, dim=-1), rand(3, 4, 5), rand(4, 5, seed=1))
    check_fn(F.pairwise_distance, TF.pairwise_distance, rand(4, 5), rand(4, 5, seed=1))
    check_fn(lambda a, b: F.pairwise_distance(a, b, p=1.0, keepdim=True),
             lambda a, b: TF.pairwise_distance(a, b, p=1.0, keepdim=True), rand(4, 5),
             rand(4, 5, seed=1))
    zero = np.zeros((2, 3), np.float32)
    check_fn(lambda x: F.normalize(x), TF.normalize, zero)


# ----------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("am_mod, t_mod", [
    (nn.MaxPool1d(2), TN.MaxPool1d(2)),
    (nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True),
     TN.MaxPool1d(3, stride=2, padding=1, ceil_mode=True)),
    (nn.MaxPool1d(2, stride=1, dilation=2), TN.MaxPool1d(2, stride=1, dilation=2)),
    (nn.AvgPool1d(3), TN.AvgPool1d(3)),
    (nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False),
     TN.AvgPool1d(3, stride=2, padding=1, count_include_pad=False)),
    (nn.AdaptiveAvgPool1d(1), TN.AdaptiveAvgPool1d(1)),
    (nn.AdaptiveAvgPool1d(3), TN.AdaptiveAvgPool1d(3)),
    (nn.AdaptiveAvgPool1d(4), TN.AdaptiveAvgPool1d(4)),
    (nn.AdaptiveMaxPool1d(3), TN.AdaptiveMaxPool1d(3)),
    (nn.AdaptiveMaxPool1d(4), TN.AdaptiveMaxPool1d(4)),
])
def test_pooling_1d(am_mod, t_mod):
    check_fn(am_mod, t_mod, rand(2, 3, 12, scale=3.0))
    check_fn(am_mod, t_mod, rand(3, 10, scale=3.0))


@pytest.mark.parametrize("size", [1, 3, (2, 5), (None, 4), (7, 6)])
def test_adaptive_pooling_2d(size):
    x = rand(2, 3, 7, 10, scale=3.0)
    check_fn(nn.AdaptiveAvgPool2d(size), TN.AdaptiveAvgPool2d(size), x)
    check_fn(nn.AdaptiveMaxPool2d(size), TN.AdaptiveMaxPool2d(size), x)
    check_fn(nn.AdaptiveAvgPool2d(size), TN.AdaptiveAvgPool2d(size), x[0])


def test_pooling_indices():
    x = rand(2, 3, 8)
    ya, ia = F.max_pool1d(am.tensor(x), 2, return_indices=True)
    yt, it = TF.max_pool1d(torch.tensor(x), 2, return_indices=True)
    close(ya, yt)
    np.testing.assert_array_equal(ia.numpy(), it.numpy())
    x = rand(2, 3, 6, 4)
    ya, ia = F.adaptive_max_pool2d(am.tensor(x), (3, 2), return_indices=True)
    yt, it = TF.adaptive_max_pool2d(torch.tensor(x), (3, 2), return_indices=True)
    close(ya, yt)
    np.testing.assert_array_equal(ia.numpy(), it.numpy())
    with pytest.raises(am.AmberError, match="return_indices"):
        F.adaptive_max_pool2d(am.tensor(x), (4, 3), return_indices=True)


# ----------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("kw", [
    dict(scale_factor=2), dict(scale_factor=1.5), dict(size=(5, 9)), dict(size=3),
    dict(scale_factor=3), dict(scale_factor=(2, 1)), dict(scale_factor=(1.0, 2.5)),
    dict(scale_factor=0.5), dict(scale_factor=2, mode="bilinear"),
    dict(scale_factor=1.7, mode="bilinear"), dict(size=(9, 4), mode="bilinear"),
    dict(scale_factor=2, mode="bilinear", align_corners=True),
    dict(size=(5, 1), mode="bilinear", align_corners=True),
    dict(size=(3, 11), mode="bilinear", align_corners=False),
    dict(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True),
    dict(scale_factor=1.3, mode="nearest-exact"),
    dict(scale_factor=2, mode="bicubic"), dict(size=(9, 4), mode="bicubic"),
    dict(scale_factor=(1.5, 0.7), mode="bicubic", align_corners=True),
    dict(size=(3, 11), mode="bicubic", align_corners=False),
])
def test_interpolate_2d(kw):
    check_fn(lambda x: F.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw),
             rand(2, 3, 4, 6))
    check_fn(nn.Upsample(**kw), TN.Upsample(**kw), rand(1, 2, 5, 3))


@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(scale_factor=4), dict(size=10),
                                dict(size=7, mode="linear"),
                                dict(scale_factor=2.5, mode="linear", align_corners=True),
                                dict(scale_factor=0.6, mode="linear")])
def test_interpolate_1d(kw):
    check_fn(lambda x: F.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw), rand(2, 3, 5))


@pytest.mark.parametrize("kw", [dict(scale_factor=2), dict(size=(2, 7, 3)),
                                dict(scale_factor=(2, 1.5, 0.6), mode="trilinear"),
                                dict(size=(5, 3, 8), mode="trilinear", align_corners=True)])
def test_interpolate_3d(kw):
    check_fn(lambda x: F.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw),
             rand(1, 2, 3, 4, 5))


def test_interpolate_errors():
    x = am.tensor(rand(1, 1, 4, 4))
    with pytest.raises(am.AmberError, match="exactly one"):
        F.interpolate(x)
    with pytest.raises(am.AmberError, match="mode"):
        F.interpolate(x, scale_factor=2, mode="area")
    with pytest.raises(am.ShapeError, match="5-D input"):
        F.interpolate(x, scale_factor=2, mode="trilinear")
    with pytest.raises(am.ShapeError, match="3-D input"):
        F.interpolate(x, scale_factor=2, mode="linear")


@pytest.mark.parametrize("r", [1, 2, 3])
def test_pixel_shuffle(r):
    check_fn(nn.PixelShuffle(r), TN.PixelShuffle(r), rand(2, 2 * r * r, 3, 4))
    check_fn(nn.PixelUnshuffle(r), TN.PixelUnshuffle(r), rand(2, 2, 3 * r, 2 * r))
    check_fn(nn.PixelShuffle(r), TN.PixelShuffle(r), rand(r * r, 2, 3))


# ----------------------------------------------------------------------------- activations


@pytest.mark.parametrize("am_mod, t_mod", [
    (nn.Hardswish(), TN.Hardswish()), (nn.Hardsigmoid(), TN.Hardsigmoid()),
    (nn.Mish(), TN.Mish()), (nn.GLU(), TN.GLU()), (nn.GLU(1), TN.GLU(1)),
    (nn.SELU(), TN.SELU()), (nn.CELU(0.5), TN.CELU(0.5)), (nn.ReLU6(), TN.ReLU6()),
    (nn.Softsign(), TN.Softsign()), (nn.Hardtanh(-0.5, 2.0), TN.Hardtanh(-0.5, 2.0)),
    (nn.SiLU(), TN.SiLU()), (nn.ELU(), TN.ELU()), (nn.LeakyReLU(0.1), TN.LeakyReLU(0.1)),
])
def test_activations(am_mod, t_mod):
    check_fn(am_mod, t_mod, rand(2, 4, 6, scale=4.0))


def test_prelu_and_channel_dropout():
    check_module(nn.PReLU(), TN.PReLU(), rand(2, 3, 4))
    mt = TN.PReLU(3, init=0.1)
    with torch.no_grad():
        mt.weight.copy_(torch.tensor(rand(3, seed=2)))
    check_module(nn.PReLU(3, init=0.1), mt, rand(2, 3, 4, 5))
    check_module(nn.PReLU(3), TN.PReLU(3), rand(5, 3))
    x = np.abs(rand(50, 40, 3)) + 1.0
    for cls, shape in [(nn.Dropout1d, (50, 40, 3)), (nn.Dropout2d, (50, 40, 3, 1))]:
        y = cls(0.3)(am.tensor(x.reshape(shape))).numpy().reshape(50, 40, 3)
        kept = (y != 0).all(-1)
        assert ((y != 0).any(-1) == kept).all()  # whole channels
        assert abs(1 - kept.mean() - 0.3) < 0.03
        np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
        close(cls(0.3).eval()(am.tensor(x.reshape(shape))), torch.tensor(x.reshape(shape)))


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses(reduction):
    t = rand(4, 5, seed=9)
    for ma, mt in [(nn.HuberLoss(reduction, delta=0.7), TN.HuberLoss(reduction, delta=0.7)),
                   (nn.SmoothL1Loss(reduction=reduction, beta=0.5),
                    TN.SmoothL1Loss(reduction=reduction, beta=0.5)),
                   (nn.SmoothL1Loss(reduction=reduction, beta=0.0),
                    TN.SmoothL1Loss(reduction=reduction, beta=0.0))]:
        check_fn(lambda x, ma=ma: ma(x, am.tensor(t)), lambda x, mt=mt: mt(x, torch.tensor(t)),
                 rand(4, 5))
    p = 1 / (1 + np.exp(-rand(4, 5, seed=2)))
    y = (np.random.default_rng(3).random((4, 5)) > 0.5).astype(np.float32)
    w = np.abs(rand(4, 5, seed=4))
    check_fn(lambda x: nn.BCELoss(reduction=reduction)(x, am.tensor(y)),
             lambda x: TN.BCELoss(reduction=reduction)(x, torch.tensor(y)), p)
    check_fn(lambda x: nn.BCELoss(am.tensor(w), reduction=reduction)(x, am.tensor(y)),
             lambda x: TN.BCELoss(torch.tensor(w), reduction=reduction)(x, torch.tensor(y)), p)
    x1, x2 = rand(6, 4), rand(6, 4, seed=1)
    tgt = np.array([1, -1, 1, -1, -1, 1])
    check_fn(lambda a, b: nn.CosineEmbeddingLoss(0.2, reduction=reduction)(a, b, am.tensor(tgt)),
             lambda a, b: TN.CosineEmbeddingLoss(0.2, reduction=reduction)(
                 a, b, torch.tensor(tgt)), x1, x2)
    for kw in (dict(), dict(margin=0.5, p=1.0, swap=True)):
        check_fn(lambda a, b, c, kw=kw: nn.TripletMarginLoss(reduction=reduction, **kw)(a, b, c),
                 lambda a, b, c, kw=kw: TN.TripletMarginLoss(reduction=reduction, **kw)(a, b, c),
                 rand(5, 4), rand(5, 4, seed=1), rand(5, 4, seed=2))


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    q = np.random.default_rng(5).random((4, 6)).astype(np.float32)
    q[0, :2] = 0.0  # zero probabilities contribute 0
    q /= q.sum(1, keepdims=True)
    tgt = np.log(q + 1e-8).astype(np.float32) if log_target else q
    x = TF.log_softmax(torch.tensor(rand(4, 6)), 1).numpy()
    check_fn(lambda a: nn.KLDivLoss(reduction=reduction, log_target=log_target)(a, am.tensor(tgt)),
             lambda a: TN.KLDivLoss(reduction=reduction, log_target=log_target)(
                 a, torch.tensor(tgt)), x)


def test_loss_state_dicts_and_existing_losses_keep_working():
    w = np.array([0.5, 2.0, 1.0], np.float32)
    assert list(nn.BCELoss(am.tensor(w)).state_dict()) == \
        list(TN.BCELoss(torch.tensor(w)).state_dict()) == ["weight"]
    tgt = np.array([0, 2, 1, -100, 2])
    check_fn(lambda x: nn.CrossEntropyLoss(label_smoothing=0.1)(x, am.tensor(tgt)),
             lambda x: TN.CrossEntropyLoss(label_smoothing=0.1)(x, torch.tensor(tgt)),
             rand(5, 3))
    check_fn(lambda x: nn.NLLLoss(ignore_index=2)(F.log_softmax(x, 1), am.tensor(tgt[:3])),
             lambda x: TN.NLLLoss(ignore_index=2)(TF.log_softmax(x, 1), torch.tensor(tgt[:3])),
             rand(3, 3))


# ----------------------------------------------------------------------------- shape variation


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 2), cin=st.integers(1, 3), cout=st.integers(1, 3),
       h=st.integers(1, 5), w=st.integers(1, 5), k=st.integers(1, 3), s=st.integers(1, 3),
       p=st.integers(0, 2), d=st.integers(1, 2), op=st.integers(0, 2))
def test_conv_transpose2d_shapes_property(n, cin, cout, h, w, k, s, p, d, op):
    op = min(op, max(s, d) - 1)
    if (h - 1) * s - 2 * p + d * (k - 1) + op + 1 < 1 or (w - 1) * s - 2 * p + d * (k - 1) \
            + op + 1 < 1:
        return
    check_module(nn.ConvTranspose2d(cin, cout, k, s, p, op, dilation=d),
                 TN.ConvTranspose2d(cin, cout, k, s, p, op, dilation=d), rand(n, cin, h, w))


@settings(max_examples=15, deadline=None)
@given(t=st.integers(1, 5), n=st.integers(1, 3), layers=st.integers(1, 2),
       bidir=st.booleans(), name=st.sampled_from(["RNN", "LSTM", "GRU"]))
def test_recurrent_shapes_property(t, n, layers, bidir, name):
    kw = dict(num_layers=layers, bidirectional=bidir)
    check_multi(getattr(nn, name)(3, 2, **kw), getattr(TN, name)(3, 2, **kw), [rand(t, n, 3)])


@settings(max_examples=15, deadline=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), oh=st.integers(1, 9), ow=st.integers(1, 9),
       align=st.booleans())
def test_bilinear_and_adaptive_shapes_property(h, w, oh, ow, align):
    x = rand(1, 2, h, w)
    check_fn(lambda a: F.interpolate(a, (oh, ow), mode="bilinear", align_corners=align),
             lambda a: TF.interpolate(a, (oh, ow), mode="bilinear", align_corners=align), x)
    check_fn(lambda a: F.interpolate(a, (oh, ow)), lambda a: TF.interpolate(a, (oh, ow)), x)
    check_fn(lambda a: F.adaptive_avg_pool2d(a, (oh, ow)),
             lambda a: TF.adaptive_avg_pool2d(a, (oh, ow)), x)
    check_fn(lambda a: F.adaptive_max_pool2d(a, (oh, ow)),
             lambda a: TF.adaptive_max_pool2d(a, (oh, ow)), x)


def test_multihead_attention_dropout_in_training_returns_dropped_weights():
    am.manual_seed(0)
    m = nn.MultiheadAttention(8, 2, dropout=0.5)
    x = am.tensor(rand(6, 2, 8))
    _, w = m(x, x, x, average_attn_weights=False)
    w = w.detach().numpy()
    assert (w == 0).mean() > 0.3  # dropped entries, as PyTorch returns them
    m.eval()
    _, w = m(x, x, x, average_attn_weights=False)
    np.testing.assert_allclose(w.detach().numpy().sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(am.CaptureError, match="eval"):
        am.export(nn.MultiheadAttention(8, 2, dropout=0.5).train(), am.spec(6, 2, 8),
                  am.spec(6, 2, 8), am.spec(6, 2, 8))


@pytest.mark.parametrize("s, p, o, d, g, k", [
    (1, 0, 0, 1, 1, 3), (2, 1, 1, 1, 2, 3), (3, 3, 2, 1, 1, 2), (2, 0, 1, 2, 1, 3),
    (1, 2, 0, 2, 2, 3),
])
def test_transposed_convolution_for_symbolic_sizes_matches_torch(s, p, o, d, g, k):
    """The form used when spatial sizes are symbolic: a direct convolution of the spread
    input with the flipped kernel."""
    from amber.nn._conv import _transposed_by_conv

    check_fn(lambda x, w: _transposed_by_conv(x, w, (s, s), (p, p), (o, o), (d, d), g),
             lambda x, w: TF.conv_transpose2d(x, w, None, s, p, o, g, d),
             rand(2, 4, 5, 4), rand(4, 3, k, 2, seed=1))


@pytest.mark.parametrize("k, shape", [(2, (2, 3, 1, 5)), (3, (1, 2, 4, 2)), (4, (1, 1, 3, 3))])
def test_linear_upsampling_for_symbolic_sizes_matches_torch(k, shape):
    """The form used when spatial sizes are symbolic: phases of neighbour blends."""
    from amber.nn._sampling import _linear_by_phases

    check_fn(lambda x: _linear_by_phases(_linear_by_phases(x, 2, k), 3, k),
             lambda x: TF.interpolate(x, scale_factor=k, mode="bilinear"), rand(*shape))
    check_fn(lambda x: _linear_by_phases(x, 2, k),
             lambda x: TF.interpolate(x, scale_factor=k, mode="linear"), rand(*shape[1:]))
