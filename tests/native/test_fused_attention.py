"""Fused attention: the native runtime recognises attention as
``F.scaled_dot_product_attention`` writes it and runs it as one kernel over blocks of
query rows. The kernel must give the bits of the nodes it replaces (AMBER_OPEN_NO_FUSION
runs those), of eager execution, and of every thread count, and agree with a NumPy
reference of attention (float32 and float64; boolean, additive and causal masks; odd
sizes; sequences of length 1; broadcast batch dims; fully masked rows)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am
from amber import native as N
from amber import nn
from amber.nn import functional as F


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None,
              causal: bool = False, scale: float | None = None) -> np.ndarray:
    """Attention in float64 NumPy: masked rows give zeros (PyTorch's safe softmax)."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if causal:
        mask = np.tril(np.ones(s.shape[-2:], bool))
    if mask is not None and mask.dtype == bool:
        s = np.where(mask, s, -np.inf)
    elif mask is not None:
        s = s + mask
    top = s.max(-1, keepdims=True)
    dead = top == -np.inf
    e = np.exp(np.where(dead, 0.0, s) - np.where(dead, 0.0, top))
    p = np.where(dead, 0.0, e / e.sum(-1, keepdims=True))
    return p @ v


def _run(path: Path, args: list[np.ndarray], **opts: Any) -> tuple[np.ndarray, int]:
    model = N.NativeModel(path, **opts)
    out = model.run("forward", *args)[0]
    return out, model.stats().fused_attention


def check(fn: Callable[..., Any], args: list[np.ndarray], want: np.ndarray, tmp_path: Path,
          fused: int = 1, rtol: float = 1e-5) -> None:
    """Exported fn: fused as expected, the unfused bits, the eager bits, every thread
    count's bits, and close to the reference."""
    specs = [am.spec(*a.shape, dtype=a.dtype.name) for a in args]
    am.export(fn, *specs).save(tmp_path / "m.amber")
    got, n = _run(tmp_path / "m.amber", args)
    assert n == fused
    plain, n0 = _run(tmp_path / "m.amber", args, fuse=False)
    assert n0 == 0
    np.testing.assert_array_equal(got, plain)
    np.testing.assert_array_equal(got, fn(*(am.tensor(a) for a in args)).numpy())
    for threads in (2, 8):
        np.testing.assert_array_equal(got, _run(tmp_path / "m.amber", args, threads=threads)[0])
    atol = 1e-5 if got.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=rtol if got.dtype == np.float32 else 1e-10,
                               atol=atol)


def _qkv(shape_q: tuple, shape_k: tuple, ev: int, dtype: Any, seed: int = 0
         ) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shape_v = shape_k[:-1] + (ev,)
    return [rng.standard_normal(s).astype(dtype) for s in (shape_q, shape_k, shape_v)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
# (5, 37, 7, 3): K^T packed by 4 x 4 transposes for 4 of its 7 rows, two whole slivers
# of 16 keys and a partial one
@pytest.mark.parametrize("L,S,E,Ev", [(7, 13, 5, 3), (1, 1, 4, 4), (1, 9, 8, 2),
                                      (20, 1, 3, 6), (33, 40, 16, 16), (5, 37, 7, 3)])
def test_unmasked(dtype: Any, L: int, S: int, E: int, Ev: int, tmp_path: Path) -> None:
    q, k, v = _qkv((2, 3, L, E), (2, 3, S, E), Ev, dtype)
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), [q, k, v],
          reference(q, k, v), tmp_path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_boolean_mask_with_dead_rows(dtype: Any, tmp_path: Path) -> None:
    q, k, v = _qkv((2, 2, 6, 4), (2, 2, 11, 4), 5, dtype, seed=1)
    keep = np.random.default_rng(2).random((2, 1, 6, 11)) < 0.6
    keep[0, 0, 3] = False  # a row with nothing to attend to gives zeros
    check(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
          [q, k, v, keep], reference(q, k, v, keep), tmp_path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_additive_mask_and_scale(dtype: Any, tmp_path: Path) -> None:
    q, k, v = _qkv((3, 5, 4), (3, 17, 4), 2, dtype, seed=3)
    add = np.random.default_rng(4).standard_normal((5, 17)).astype(dtype)
    check(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=0.3),
          [q, k, v, add], reference(q, k, v, add, scale=0.3), tmp_path)


@pytest.mark.parametrize("L", [1, 9, 64])
def test_causal(L: int, tmp_path: Path) -> None:
    q, k, v = _qkv((1, 4, L, 8), (1, 4, L, 8), 8, np.float32, seed=5)
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
          [q, k, v], reference(q, k, v, causal=True), tmp_path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocks_past_the_last_kept_column(dtype: Any, tmp_path: Path) -> None:
    """Long keys split the queries into blocks of rows; columns no row of a block keeps
    (causal, or a mask keeping a prefix, one row keeping nothing) change no bit."""
    q, k, v = _qkv((1, 2, 100, 8), (1, 2, 1100, 8), 6, dtype, seed=8)
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
          [q, k, v], reference(q, k, v, causal=True), tmp_path)
    keep = np.random.default_rng(9).random((100, 1100)) < 0.5
    keep[:, 40:] = False
    keep[35] = False
    check(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
          [q, k, v, keep], reference(q, k, v, keep), tmp_path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("L,S", [(100, 100), (30, 70), (49, 49)])
def test_causal_blocks_stop_at_their_last_kept_column(dtype: Any, L: int, S: int,
                                                      tmp_path: Path) -> None:
    """A causal mask shared by every head: blocks of query rows compute the scores and the
    product with V only up to their last kept column. Values past it that are not finite
    (0 * inf is NaN in the unfused product) keep the whole product; a row keeping nothing
    gives zeros."""
    q, k, v = _qkv((1, 3, L, 8), (1, 3, S, 8), 5, dtype, seed=13)
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
          [q, k, v], reference(q, k, v, causal=True), tmp_path)
    v[0, 1, S - 3, 2] = np.inf
    v[0, 2, S // 2, 0] = np.nan
    keep = np.tril(np.ones((L, S), bool))
    keep[L // 3] = False
    with np.errstate(invalid="ignore"):
        want = reference(q, k, v, keep)
    check(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
          [q, k, v, keep], want, tmp_path)


def test_broadcast_batch_dims(tmp_path: Path) -> None:
    """Keys and values shared by the heads' batch dim (size 1) are broadcast."""
    q, _, _ = _qkv((2, 3, 5, 4), (2, 3, 5, 4), 4, np.float32, seed=6)
    _, k, v = _qkv((1, 3, 7, 4), (1, 3, 7, 4), 6, np.float32, seed=7)
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), [q, k, v],
          reference(q, k, v), tmp_path)


def test_transposed_operands_read_in_place(tmp_path: Path) -> None:
    """Heads split by reshape and permute, as a multi-head layer does."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 10, 12)).astype(np.float32)

    def fn(x: Any) -> Any:
        h = x.reshape(2, 10, 3, 4).permute(0, 2, 1, 3)
        return F.scaled_dot_product_attention(h, h * 0.5, h + 1.0)

    h = x.reshape(2, 10, 3, 4).transpose(0, 2, 1, 3)
    check(fn, [x], reference(h, h * 0.5, h + 1.0), tmp_path)


def test_weights_used_elsewhere_are_not_fused(tmp_path: Path) -> None:
    """Attention weights that are also a result stay an ordinary softmax and matmul."""
    q, k, v = _qkv((4, 6), (5, 6), 3, np.float32, seed=9)

    def fn(q: Any, k: Any, v: Any) -> Any:
        w = F.softmax(q @ k.T, -1)
        return w @ v, w

    am.export(fn, am.tensor(q), am.tensor(k), am.tensor(v)).save(tmp_path / "w.amber")
    model = N.NativeModel(tmp_path / "w.amber")
    out, w = model.run("forward", q, k, v)
    assert model.stats().fused_attention == 0
    np.testing.assert_allclose(out, reference(q, k, v, scale=1.0), rtol=1e-5, atol=1e-6)


def test_transformer_encoder_same_bits_at_any_thread_count(lib: N.NativeLibrary,
                                                           tmp_path: Path) -> None:
    am.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2).eval()
    am.export(enc, am.spec("batch", "seq", 32)).save(tmp_path / "enc.amber")
    x = np.random.default_rng(10).standard_normal((3, 37, 32)).astype(np.float32)
    outs = [N.NativeModel(tmp_path / "enc.amber", threads=t) for t in (1, 2, 8)]
    got = [m.run("forward", x)[0] for m in outs]
    assert outs[0].stats().fused_attention == 2
    for g in got[1:]:
        np.testing.assert_array_equal(g, got[0])
    with am.no_grad():
        np.testing.assert_array_equal(got[0], enc(am.tensor(x)).numpy())


@pytest.mark.parametrize("nq,L,S,Ev", [(2, 1, 9, 3), (3, 1, 9, 3), (1, 2, 5, 20), (2, 1, 40, 7)])
def test_few_rows_shared_keys(nq: int, L: int, S: int, Ev: int, tmp_path: Path) -> None:
    """Products of at most two rows (with the batches a shared key matrix merges) take the
    runtime's GEMV path unfused; the kernel must round as it does."""
    q, _, _ = _qkv((nq, 1, L, 4), (nq, 1, S, 4), Ev, np.float32, seed=11)
    _, k, v = _qkv((1, 1, S, 4), (1, 1, S, 4), Ev, np.float32, seed=12)
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), [q, k, v],
          reference(q, k, v), tmp_path)


def _packed_heads(n: int, s: int, heads: int, hd: int, causal: bool = True
                  ) -> Callable[..., Any]:
    """Attention over heads split from one packed projection, as GPT-2 writes it: the
    heads (reshape, permute, index) and the merged result (permute, reshape) are views
    the kernel reads and writes in place."""
    def fn(x: Any) -> Any:
        qkv = x.reshape(n, s, 3, heads, hd).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=causal)
        return o.permute(0, 2, 1, 3).reshape(n, s, heads * hd)
    return fn


def _packed_reference(x: np.ndarray, heads: int, causal: bool = True) -> np.ndarray:
    n, s, w = x.shape
    hd = w // (3 * heads)
    q, k, v = x.reshape(n, s, 3, heads, hd).transpose(2, 0, 3, 1, 4)
    o = reference(q, k, v, causal=causal)
    return o.transpose(0, 2, 1, 3).reshape(n, s, heads * hd)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,s,heads,hd,causal", [(1, 37, 3, 8, True), (2, 1, 2, 5, True),
                                                 (3, 9, 1, 3, False), (1, 64, 4, 16, True)])
def test_packed_heads_read_and_written_in_place(dtype: Any, n: int, s: int, heads: int,
                                                hd: int, causal: bool, tmp_path: Path) -> None:
    x = np.random.default_rng(14).standard_normal((n, s, 3 * heads * hd)).astype(dtype)
    check(_packed_heads(n, s, heads, hd, causal), [x], _packed_reference(x, heads, causal),
          tmp_path)
    model = N.NativeModel(tmp_path / "m.amber")
    model.run("forward", x)
    plain = N.NativeModel(tmp_path / "m.amber", fuse=False)
    plain.run("forward", x)
    # no copy of the heads (the size of x in all) nor of the merged result is made
    assert (plain.stats().plan_value_bytes - model.stats().plan_value_bytes
            >= x.nbytes + x.nbytes // 3)


def test_views_read_elsewhere_are_computed(tmp_path: Path) -> None:
    """A head split that is also a result stays a copy; the attention reads that copy."""
    x = np.random.default_rng(15).standard_normal((2, 11, 18)).astype(np.float32)
    heads = _packed_heads(2, 11, 2, 3, False)

    def fn(x: Any) -> Any:
        qkv = x.reshape(2, 11, 3, 2, 3).permute(2, 0, 3, 1, 4)
        return heads(x), qkv

    am.export(fn, am.spec(2, 11, 18)).save(tmp_path / "e.amber")
    model = N.NativeModel(tmp_path / "e.amber")
    out, qkv = model.run("forward", x)
    assert model.stats().fused_attention == 1
    np.testing.assert_array_equal(out, N.NativeModel(tmp_path / "e.amber", fuse=False)
                                  .run("forward", x)[0])
    np.testing.assert_allclose(out, _packed_reference(x, 2, False), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(qkv, x.reshape(2, 11, 3, 2, 3).transpose(2, 0, 3, 1, 4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_and_unit_dim_views(dtype: Any, tmp_path: Path) -> None:
    """Every other row and column as queries, keys behind an added unit dim, values
    through a slice of a transpose: strided views read in place."""
    rng = np.random.default_rng(16)
    a = rng.standard_normal((2, 3, 14, 10)).astype(dtype)
    b = rng.standard_normal((2, 3, 9, 5)).astype(dtype)
    c = rng.standard_normal((2, 3, 4, 12)).astype(dtype)

    def fn(a: Any, b: Any, c: Any) -> Any:
        q = a[:, :, 1::2, ::2]
        k = b.reshape(1, 2, 3, 9, 5)[0]
        v = c.transpose(2, 3)[:, :, 3:]
        return F.scaled_dot_product_attention(q, k, v)

    want = reference(a[:, :, 1::2, ::2], b, np.swapaxes(c, 2, 3)[:, :, 3:])
    check(fn, [a, b, c], want, tmp_path)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_fill_past_the_last_kept_column(dtype: Any, tmp_path: Path) -> None:
    """A causal mask filling a finite score: past a block's last kept column the
    probabilities are not zero, and still one value per row."""
    q, k, v = _qkv((1, 2, 100, 8), (1, 2, 100, 8), 5, dtype, seed=17)
    keep = np.tril(np.ones((100, 100), bool))

    def fn(q: Any, k: Any, v: Any, m: Any) -> Any:
        s = am.where(m, q @ k.transpose(-2, -1), am.tensor(np.array(-3.0, dtype)))
        return F.softmax(s, -1) @ v

    s = np.where(keep, q.astype(np.float64) @ np.swapaxes(k, -1, -2), -3.0)
    p = np.exp(s - s.max(-1, keepdims=True))
    check(fn, [q, k, v, keep], (p / p.sum(-1, keepdims=True)) @ v, tmp_path)


def test_elementwise_after_a_matrix_attention(tmp_path: Path) -> None:
    """Attention on matrices (no batch dims) followed by elementwise ops: its final
    matmul runs the attention kernel, not a product with an epilogue."""
    q, k, v = _qkv((5, 4), (6, 4), 3, np.float32, seed=18)
    check(lambda q, k, v: F.gelu(F.scaled_dot_product_attention(q, k, v) + 1.0), [q, k, v],
          _gelu(reference(q, k, v) + 1.0), tmp_path)


def _gelu(x: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_short_rows_with_dead_rows(dtype: Any, tmp_path: Path) -> None:
    """Blocks of more than 64 short rows (their exp runs over many rows at once), rows
    with nothing to attend to in each group of 64."""
    q, k, v = _qkv((2, 150, 4), (2, 20, 4), 3, dtype, seed=19)
    keep = np.random.default_rng(20).random((150, 20)) < 0.9
    keep[[5, 40, 64, 127, 149]] = False
    check(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
          [q, k, v, keep], reference(q, k, v, keep), tmp_path)


def test_causal_decoder_block_with_symbolic_dims(tmp_path: Path) -> None:
    """A GPT-2-style block exported with symbolic batch and sequence: the heads split off
    the packed projection (slices and reshapes whose sizes are known only per run) are
    read in place, at any thread count with the same bits as eager and unfused."""
    am.manual_seed(1)
    attn, proj, norm = nn.Linear(24, 72), nn.Linear(24, 24), nn.LayerNorm(24)

    def block(x: Any) -> Any:
        n, s, _ = x.shape
        qkv = attn(norm(x)).reshape(n, s, 3, 4, 6).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=True)
        return x + F.gelu(proj(o.permute(0, 2, 1, 3).reshape(n, s, 24)), approximate="tanh")

    am.export(block, am.spec("batch", "seq", 24)).save(tmp_path / "d.amber")
    for shape in [(2, 33, 24), (1, 1, 24)]:
        x = np.random.default_rng(21).standard_normal(shape).astype(np.float32)
        models = [N.NativeModel(tmp_path / "d.amber", threads=t) for t in (1, 2, 8)]
        got = [m.run("forward", x)[0] for m in models]
        assert models[0].stats().fused_attention == 1
        plain = N.NativeModel(tmp_path / "d.amber", fuse=False)
        for g in got[1:] + [plain.run("forward", x)[0]]:
            np.testing.assert_array_equal(g, got[0])
        with am.no_grad():
            np.testing.assert_array_equal(got[0], block(am.tensor(x)).numpy())
        # planned: the normed input, the packed projection and the merged result (5x the
        # input, no copy of the heads; each value's slot is rounded up)
        assert models[0].stats().plan_value_bytes <= 5 * x.nbytes + 2048
