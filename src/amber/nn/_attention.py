"""Attention: ``F.scaled_dot_product_attention`` and ``F.multi_head_attention_forward``.

``scaled_dot_product_attention`` is the composite whose body is the meaning of
attention: ``softmax(q @ k.T * scale + mask) @ v`` over the last two dims, with PyTorch's
mask conventions (a boolean mask marks the positions that *take part*; a floating mask is
added). A row whose every position is masked out gives zeros (PyTorch's safe softmax),
and no NaN reaches the gradients."""

from __future__ import annotations

import math
from typing import Any

from .. import _dtype as D
from .. import functional as _F
from ..errors import AmberError, ShapeError
from ..ops import reduce as R
from ..tensor import Tensor
from .functional import dropout, linear, pad


def _causal_keep(n_q: Any, n_k: Any) -> Tensor:
    """(L, S) bool: query i may attend to keys j <= i (top-left aligned, as PyTorch)."""
    rows = _F.unsqueeze(_F._iota(n_q), 1)
    cols = _F.unsqueeze(_F._iota(n_k), 0)
    return cols <= rows


def _safe_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last dim that gives 0 (not NaN) on a row of only -inf."""
    d = scores.ndim - 1
    top = R.reduce_max(scores, axes=(d,), keepdims=True)
    dead = top == -math.inf
    if dead._data is not None and not dead._data.any():
        # NOTE: eager, no row fully masked: both wheres below are the identity (in value
        # and gradient), and softmax's maximum is `top`; the same bits, four fewer ops
        e = _F.exp(scores - top.detach())
        return e / R.reduce_sum(e, axes=(d,), keepdims=True)
    p = _F.softmax(_F.where(dead, 0.0, scores), -1)
    return _F.where(dead, 0.0, p)


def _expand_heads(k: Tensor, hq: Any, op: str) -> Tensor:
    hk = k.shape[-3]
    if hq == hk:
        return k
    if hq % hk:
        raise ShapeError(f"{op}: enable_gqa needs the query heads ({hq}) to be a multiple of "
                         f"the key/value heads ({hk})")
    lead = tuple(k.shape[:-3])
    s, e = k.shape[-2], k.shape[-1]
    k = _F.unsqueeze(k, -3)
    k = _F.broadcast_to(k, lead + (hk, hq // hk, s, e))
    return _F.reshape(k, lead + (hq, s, e))


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor,
                                 attn_mask: Tensor | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """``softmax(query @ key.T * scale + mask) @ value`` for (..., L, E) queries,
    (..., S, E) keys and (..., S, Ev) values. ``attn_mask`` broadcasts to (..., L, S): a
    bool mask keeps the True positions, a float mask is added to the scores.
    ``is_causal`` lets query i see keys 0..i. ``scale`` defaults to ``1 / sqrt(E)``.
    ``dropout_p`` drops attention weights (eagerly; always applied when > 0, as PyTorch).
    ``enable_gqa`` shares each key/value head among a group of query heads."""
    op = "scaled_dot_product_attention"
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ShapeError(f"{op}: query, key and value need at least 2 dims, got "
                         f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(f"{op}: query {tuple(query.shape)} and key {tuple(key.shape)} must "
                         f"share the embedding dim, and key and value {tuple(value.shape)} "
                         f"the sequence dim")
    if is_causal and attn_mask is not None:
        raise AmberError(f"{op}: pass either attn_mask or is_causal=True, not both")
    if enable_gqa and query.ndim >= 3:
        key = _expand_heads(key, query.shape[-3], op)
        value = _expand_heads(value, query.shape[-3], op)
    e = query.shape[-1]
    sc = 1.0 / math.sqrt(e) if scale is None else float(scale)
    scores = _F.matmul(query, _F.transpose(key, -2, -1)) * sc
    if is_causal:
        scores = _F.where(_causal_keep(query.shape[-2], key.shape[-2]), scores, -math.inf)
    elif attn_mask is not None:
        if attn_mask.dtype is D.bool_:
            scores = _F.where(attn_mask, scores, -math.inf)
        else:
            scores = scores + _F.cast(attn_mask, scores.dtype)
    weights = _safe_softmax(scores)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, True)
    return _F.matmul(weights, value)


def _additive(mask: Tensor | None, dtype: D.DType) -> Tensor | None:
    """A bool mask (True = masked out) as 0 / -inf; a float mask as it is."""
    if mask is None:
        return None
    if mask.dtype is D.bool_:
        return _F.where(mask, -math.inf, _F.zeros_like(mask, dtype))
    if not mask.dtype.is_floating:
        raise AmberError(f"multi_head_attention_forward: masks must be bool or floating, got "
                         f"{mask.dtype.name}")
    return _F.cast(mask, dtype)


def _projections(query: Tensor, key: Tensor, value: Tensor, in_proj_weight: Any,
                 in_proj_bias: Any, separate: bool, qw: Any, kw: Any, vw: Any
                 ) -> tuple[Tensor, Tensor, Tensor]:
    bq = bk = bv = None
    if in_proj_bias is not None:
        bq, bk, bv = _F.chunk(in_proj_bias, 3, 0)
    if separate:
        if qw is None or kw is None or vw is None:
            raise AmberError("multi_head_attention_forward: use_separate_proj_weight needs "
                             "q_proj_weight, k_proj_weight and v_proj_weight")
        return linear(query, qw, bq), linear(key, kw, bk), linear(value, vw, bv)
    wq, wk, wv = _F.chunk(in_proj_weight, 3, 0)
    return linear(query, wq, bq), linear(key, wk, bk), linear(value, wv, bv)


def _masks(attn_mask: Tensor | None, key_padding_mask: Tensor | None, n: Any, h: int,
           dtype: D.DType) -> Tensor | None:
    am_ = _additive(attn_mask, dtype)
    if am_ is not None and am_.ndim == 3:
        am_ = _F.reshape(am_, (n, h) + tuple(am_.shape[1:]))
    kp = _additive(key_padding_mask, dtype)
    if kp is not None:
        kp = _F.reshape(kp, (n, 1, 1, kp.shape[-1]))
        return kp if am_ is None else am_ + kp
    return am_


def multi_head_attention_forward(
        query: Tensor, key: Tensor, value: Tensor, embed_dim_to_check: int, num_heads: int,
        in_proj_weight: Tensor | None, in_proj_bias: Tensor | None, bias_k: Tensor | None,
        bias_v: Tensor | None, add_zero_attn: bool, dropout_p: float,
        out_proj_weight: Tensor, out_proj_bias: Tensor | None, training: bool = True,
        key_padding_mask: Tensor | None = None, need_weights: bool = True,
        attn_mask: Tensor | None = None, use_separate_proj_weight: bool = False,
        q_proj_weight: Tensor | None = None, k_proj_weight: Tensor | None = None,
        v_proj_weight: Tensor | None = None, static_k: Tensor | None = None,
        static_v: Tensor | None = None, average_attn_weights: bool = True,
        is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
    """Multi-head attention over (L, N, E) query and (S, N, kdim/vdim) key and value (or
    unbatched (L, E), (S, E)), as PyTorch's function of the same name. Masks: ``attn_mask``
    (L, S) or (N * num_heads, L, S) and ``key_padding_mask`` (N, S); True (bool) masks a
    position out, floats are added. Returns the output and, with ``need_weights``, the
    attention weights (N, L, S) averaged over heads (or (N, num_heads, L, S))."""
    op = "multi_head_attention_forward"
    if static_k is not None or static_v is not None:
        raise AmberError(f"{op}: static_k and static_v are not supported")
    if is_causal and attn_mask is None:
        raise AmberError(f"{op}: is_causal is a hint that attn_mask is the causal mask; pass "
                         f"the mask too (nn.Transformer.generate_square_subsequent_mask)")
    unbatched = query.ndim == 2
    if unbatched:
        query, key, value = (_F.unsqueeze(t, 1) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = _F.unsqueeze(key_padding_mask, 0)
    if query.ndim != 3 or query.shape[-1] != embed_dim_to_check:
        raise ShapeError(f"{op}: query must be (L, N, {embed_dim_to_check}) or "
                         f"(L, {embed_dim_to_check}), got {tuple(query.shape)}")
    lq, n, e = query.shape
    h = int(num_heads)
    if e % h:
        raise ShapeError(f"{op}: embed_dim {e} must be divisible by num_heads {h}")
    hd = e // h
    q, k, v = _projections(query, key, value, in_proj_weight, in_proj_bias,
                           use_separate_proj_weight, q_proj_weight, k_proj_weight,
                           v_proj_weight)
    if bias_k is not None and bias_v is not None:
        k = _F.cat([k, _F.broadcast_to(_F.reshape(bias_k, (1, 1, e)), (1, n, e))], 0)
        v = _F.cat([v, _F.broadcast_to(_F.reshape(bias_v, (1, 1, e)), (1, n, e))], 0)
        attn_mask = None if attn_mask is None else pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else pad(key_padding_mask, (0, 1))

    def heads(t: Tensor) -> Tensor:  # (S, N, E) -> (N, H, S, hd)
        return _F.permute(_F.reshape(t, (t.shape[0], n, h, hd)), (1, 2, 0, 3))

    qh, kh, vh = heads(q), heads(k), heads(v)
    if add_zero_attn:
        zeros = _F.zeros_like(kh[:, :, :1])
        kh, vh = _F.cat([kh, zeros], 2), _F.cat([vh, zeros], 2)
        attn_mask = None if attn_mask is None else pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else pad(key_padding_mask, (0, 1))
    mask = _masks(attn_mask, key_padding_mask, n, h, qh.dtype)
    p = dropout_p if training else 0.0
    weights = None
    if need_weights:
        scores = _F.matmul(qh * (1.0 / math.sqrt(hd)), _F.transpose(kh, -2, -1))
        if mask is not None:
            scores = scores + mask
        weights = _F.softmax(scores, -1)
        if p > 0:  # NOTE: PyTorch returns the weights after dropout
            weights = dropout(weights, p, True)
        out = _F.matmul(weights, vh)
    else:
        out = scaled_dot_product_attention(qh, kh, vh, mask, p)
    out = _F.reshape(_F.permute(out, (2, 0, 1, 3)), (lq, n, e))
    out = linear(out, out_proj_weight, out_proj_bias)
    if weights is not None and average_attn_weights:
        weights = _F.mean(weights, 1)
    if unbatched:
        out = _F.squeeze(out, 1)
        weights = None if weights is None else _F.squeeze(weights, 0)
    return out, weights
