"""float16, bfloat16, int8, uint8 and int16 against PyTorch 2.13.0: result dtypes
(promotion), values of elementwise ops (bit for bit where both round once from float32 or
wrap), casts, reductions, matmul and convolution (within the storage dtype's rounding)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import amber as am  # noqa: E402
import amber.nn.functional as F  # noqa: E402

pytestmark = pytest.mark.torch

NAMES = ("float16", "bfloat16", "int8", "uint8", "int16", "int32", "int64", "float32",
         "float64", "bool")
STORAGE = ("float16", "bfloat16", "int8", "uint8", "int16")


def _tt(name: str) -> Any:
    return {"bool": torch.bool}.get(name, getattr(torch, name))


def _data(name: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if name in ("float16", "bfloat16"):
        return (rng.standard_normal(shape) * 3).astype(np.float32).astype(am.as_dtype(name).np)
    info = np.iinfo(name)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(name)


def _pair(x: np.ndarray) -> tuple[am.Tensor, Any]:
    a = am.tensor(x)
    t = torch.from_numpy(x.view(np.uint16)).view(torch.bfloat16) if x.dtype == \
        am.bfloat16.np else torch.from_numpy(x.copy())
    return a, t


def _np(t: Any) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy().view(am.bfloat16.np)
    return t.numpy()


def _same(got: am.Tensor, want: Any, what: str) -> None:
    g, w = got.numpy(), _np(want)
    assert g.dtype == w.dtype, f"{what}: dtype {g.dtype} vs torch {w.dtype}"
    gf, wf = g.astype(np.float64), w.astype(np.float64)
    ok = (gf == wf) | (np.isnan(gf) & np.isnan(wf))
    assert ok.all(), f"{what}: {int((~ok).sum())} differ, e.g. {g[~ok][:3]} vs {w[~ok][:3]}"


@pytest.mark.parametrize("a", NAMES)
@pytest.mark.parametrize("b", STORAGE)
def test_promotion_matches_torch(a: str, b: str) -> None:
    got = am.zeros(2, dtype=a) + am.zeros(2, dtype=b)
    assert str(_tt(got.dtype.name)) == str(torch.promote_types(_tt(a), _tt(b)))


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
    "maximum": lambda x, y: x.maximum(y) if hasattr(x, "maximum") else am.maximum(x, y),
    "lt": lambda x, y: x < y, "eq": lambda x, y: x == y,
}


@pytest.mark.parametrize("name", STORAGE)
@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_ops_bit_for_bit(name: str, op: str) -> None:
    (a, ta), (b, tb) = _pair(_data(name, (64,), 1)), _pair(_data(name, (64,), 2))
    fn = BINARY[op]
    got = am.maximum(a, b) if op == "maximum" else fn(a, b)
    _same(got, torch.maximum(ta, tb) if op == "maximum" else fn(ta, tb), f"{op} {name}")


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_float_ops_round_once(name: str) -> None:
    (a, ta), (b, tb) = _pair(_data(name, (256,), 3)), _pair(_data(name, (256,), 4))
    _same(a / b, ta / tb, "div")
    _same(a.abs().sqrt(), ta.abs().sqrt(), "sqrt")
    for fn, tfn in ((am.exp, torch.exp), (am.tanh, torch.tanh), (am.sigmoid, torch.sigmoid)):
        g, w = fn(a).numpy().astype(np.float64), _np(tfn(ta)).astype(np.float64)
        eps = float(am.finfo(name).eps)
        np.testing.assert_allclose(g, w, rtol=eps, atol=1e-6)  # one ulp at most


@pytest.mark.parametrize("name", ["int8", "uint8", "int16"])
def test_integer_division_and_negation_wrap_like_torch(name: str) -> None:
    x = _data(name, (128,), 5)
    y = _data(name, (128,), 6)
    y[y == 0] = 3  # PyTorch raises on integer division by zero
    (a, ta), (b, tb) = _pair(x), _pair(y)
    _same(a // b, torch.div(ta, tb, rounding_mode="floor"), "floor division")
    if name != "uint8":  # PyTorch refuses negation of uint8
        _same(-a, -ta, "neg")


@pytest.mark.parametrize("src", NAMES[:-1])
@pytest.mark.parametrize("dst", STORAGE)
def test_casts_match_torch_in_range(src: str, dst: str) -> None:
    vals = np.array([0.0, 1.0, -1.0, 2.5, -2.5, 7.75, 100.0, -100.0, 126.9, 1e-3, 0.1])
    if np.dtype(am.as_dtype(src).np).kind in "iu":
        vals = np.trunc(vals)
    if "uint8" in (src, dst):  # negative values: wrapped (int) or undefined (float) in C
        vals = np.abs(vals)
    x = vals.astype(np.float32).astype(am.as_dtype(src).np)
    a, t = _pair(x)
    _same(a.to(dst), t.to(_tt(dst)), f"{src} -> {dst}")


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_reductions_matmul_and_conv_accumulate_in_float32(name: str) -> None:
    eps = float(am.finfo(name).eps)
    (x, tx), (w, tw) = _pair(_data(name, (8, 64), 7)), _pair(_data(name, (64, 5), 8))
    for got, want in ((x @ w, tx @ tw), (x.sum(1), tx.sum(1)), (x.mean(0), tx.mean(0)),
                      (F.softmax(x, -1), torch.softmax(tx, -1))):
        g, t = got.numpy(), _np(want)
        assert g.dtype == t.dtype
        scale = np.abs(t.astype(np.float64)).max() + 1
        np.testing.assert_allclose(g.astype(np.float64), t.astype(np.float64),
                                   atol=4 * eps * scale)
    (c, tc), (k, tk) = _pair(_data(name, (1, 2, 6, 6), 9)), _pair(_data(name, (3, 2, 3, 3), 10))
    g, t = F.conv2d(c, k, padding=1).numpy(), _np(torch.nn.functional.conv2d(tc, tk, padding=1))
    np.testing.assert_allclose(g.astype(np.float64), t.astype(np.float64),
                               atol=4 * eps * (np.abs(t.astype(np.float64)).max() + 1))


def test_module_half_and_bfloat16_state_dicts_match_torch() -> None:
    am.manual_seed(0)
    net = am.nn.Linear(4, 3)
    tnet = torch.nn.Linear(4, 3)
    with torch.no_grad():
        tnet.weight.copy_(torch.from_numpy(net.weight.detach().numpy()))
        tnet.bias.copy_(torch.from_numpy(net.bias.detach().numpy()))
    for conv, tconv in ((net.half(), tnet.half()), (net.bfloat16(), tnet.bfloat16())):
        for k, v in conv.state_dict().items():
            _same(v, tconv.state_dict()[k], k)
