"""Tensor basics: creation, seeding, NumPy and DLPack interop, operators, shape methods."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
from helpers import assert_close

# Every primitive the front end binds must agree with its infer rule.
pytestmark = pytest.mark.usefixtures("check_infer")

# --------------------------------------------------------------------------- creation


def test_tensor_copies_its_input() -> None:
    a = np.array([1.0, 2.0], dtype=np.float32)
    t = am.tensor(a)
    a[0] = 9.0
    assert t.tolist() == [1.0, 2.0]
    assert am.tensor([[1, 2], [3, 4]]).shape == (2, 2)
    assert am.tensor(3.5).shape == () and am.tensor(3.5).item() == 3.5
    assert am.tensor([1, 2], dtype=am.float64).dtype is am.float64
    assert am.tensor([], dtype=am.float32).shape == (0,)


def test_creation_functions() -> None:
    assert_close(am.zeros(2, 3).numpy(), np.zeros((2, 3), np.float32))
    assert_close(am.zeros((2, 3)).numpy(), np.zeros((2, 3), np.float32))
    assert_close(am.ones(2, dtype=am.int32).numpy(), np.ones(2, np.int32))
    assert am.full((2, 2), 7).dtype is am.int64 and am.full((2, 2), 7).tolist() == [[7, 7]] * 2
    assert am.full((1,), 0.5).dtype is am.float32
    assert am.full((1,), True).dtype is am.bool_
    assert am.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert am.arange(2, 8, 3).tolist() == [2, 5]
    assert am.arange(0, 1, 0.25).tolist() == [0.0, 0.25, 0.5, 0.75]
    assert_close(am.eye(3).numpy(), np.eye(3, dtype=np.float32))
    assert am.eye(2, 3).shape == (2, 3)
    assert am.linspace(0, 1, 5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    x = am.ones(2, 3, dtype=am.float64)
    for like, value in ((am.zeros_like(x), 0.0), (am.ones_like(x), 1.0),
                        (am.full_like(x, 4.0), 4.0)):
        assert like.shape == (2, 3) and like.dtype is am.float64
        assert np.all(like.numpy() == value)
    assert am.zeros_like(x, dtype=am.int32).dtype is am.int32
    assert am.zeros(0, 4).shape == (0, 4)
    assert am.zeros(2, requires_grad=True).requires_grad


def test_random_creation_shapes_and_ranges() -> None:
    am.manual_seed(0)
    u = am.rand(1000)
    assert u.dtype is am.float32 and u.shape == (1000,)
    assert 0.0 <= float(am.min(u).item()) and float(am.max(u).item()) < 1.0
    n = am.randn(2000, dtype=am.float64)
    assert n.dtype is am.float64 and abs(float(am.mean(n).item())) < 0.1
    assert 0.9 < float(am.std(n).item()) < 1.1
    r = am.randint(3, 7, (100,))
    assert r.dtype is am.int64 and 3 <= int(am.min(r).item()) and int(am.max(r).item()) < 7
    assert sorted(am.randperm(6).tolist()) == list(range(6))
    x = am.zeros(3, 2, dtype=am.float64)
    assert am.rand_like(x).shape == (3, 2) and am.randn_like(x).dtype is am.float64


def test_manual_seed_reproduces_the_default_stream() -> None:
    am.manual_seed(42)
    a, b = am.randn(5), am.rand(3)
    am.manual_seed(42)
    assert am.randn(5).tolist() == a.tolist() and am.rand(3).tolist() == b.tolist()
    am.manual_seed(43)
    assert am.randn(5).tolist() != a.tolist()


def test_explicit_generator_is_independent_of_the_default_one() -> None:
    g1 = am.Generator().manual_seed(7)
    first = am.randn(4, generator=g1)
    am.manual_seed(0)
    am.randn(10)  # advancing the default stream does not touch g1
    g2 = am.Generator(7)
    assert am.randn(4, generator=g2).tolist() == first.tolist()
    state = g1.get_state()
    nxt = am.rand(3, generator=g1)
    g1.set_state(state)
    assert am.rand(3, generator=g1).tolist() == nxt.tolist()
    assert g2.initial_seed() == 7


# --------------------------------------------------------------------------- interop


def test_numpy_and_asarray() -> None:
    t = am.tensor([[1.0, 2.0]])
    a = t.numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (1, 2)
    assert np.asarray(t).tolist() == [[1.0, 2.0]]
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert np.array(t, copy=True) is not a
    assert (np.ones(2) + am.tensor([1.0, 2.0])).tolist() == [2.0, 3.0]  # defers to Tensor


def test_from_numpy_shares_memory() -> None:
    a = np.arange(4, dtype=np.int32)
    t = am.from_numpy(a)
    assert t.dtype is am.int32
    a[0] = 100
    assert t.tolist()[0] == 100
    assert np.shares_memory(t.numpy(), a)
    with pytest.raises(TypeError):
        am.from_numpy([1, 2])  # type: ignore[arg-type]


def test_dlpack_both_ways() -> None:
    t = am.tensor([1.0, 2.0, 3.0])
    a = np.from_dlpack(t)
    assert a.tolist() == [1.0, 2.0, 3.0] and np.shares_memory(a, t.numpy())
    src = np.arange(6, dtype=np.float64).reshape(2, 3)
    u = am.from_dlpack(src)
    assert u.dtype is am.float64 and u.shape == (2, 3)
    src[1, 2] = -1.0
    assert u.tolist()[1][2] == -1.0  # shares memory
    assert t.__dlpack_device__()[0] == 1  # kDLCPU


def test_python_conversions() -> None:
    assert am.tensor([2.5]).item() == 2.5 and float(am.tensor(2.5)) == 2.5
    assert int(am.tensor(3)) == 3 and [1, 2, 3][am.tensor(1)] == 2
    assert bool(am.tensor([True])) is True
    with pytest.raises(am.AmberError, match="ambiguous"):
        bool(am.tensor([1, 2]))
    with pytest.raises(am.AmberError, match="exactly 1"):
        am.tensor([1, 2]).item()
    assert len(am.zeros(3, 2)) == 3
    assert [r.tolist() for r in am.tensor([[1, 2], [3, 4]])] == [[1, 2], [3, 4]]
    with pytest.raises(am.AmberError):
        len(am.tensor(1.0))
    assert "tensor(" in repr(am.tensor([1.0])) and "float64" in repr(am.zeros(1, dtype="double"))


# --------------------------------------------------------------------------- operators


def test_operators_match_numpy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.uniform(0.5, 2, (3, 4))
    x, y = am.tensor(a, dtype=am.float64), am.tensor(b, dtype=am.float64)
    assert_close((x + y).numpy(), a + b)
    assert_close((x - y).numpy(), a - b)
    assert_close((x * y).numpy(), a * b)
    assert_close((x / y).numpy(), a / b)
    assert_close((y ** x).numpy(), b ** a, rtol=1e-15)
    assert_close((-x).numpy(), -a)
    assert_close((x @ y.T).numpy(), a @ b.T, rtol=1e-12, atol=1e-12)
    assert_close((2.0 - x).numpy(), 2.0 - a)
    assert_close((1.0 / y).numpy(), 1.0 / b)
    assert_close((2.0 ** x).numpy(), 2.0 ** a, rtol=1e-15)
    assert_close(abs(x).numpy(), np.abs(a))
    assert (x > y).tolist() == (a > b).tolist() and (x <= y).tolist() == (a <= b).tolist()
    m, n = am.tensor([True, False]), am.tensor([True, True])
    assert (m & n).tolist() == [True, False] and (m | n).tolist() == [True, True]
    assert (~m).tolist() == [False, True]


def test_matmul_vector_rules() -> None:
    rng = np.random.default_rng(1)
    a, v = rng.standard_normal((2, 3, 4)), rng.standard_normal(4)
    ta, tv = am.tensor(a, dtype=am.float64), am.tensor(v, dtype=am.float64)
    assert_close((ta @ tv).numpy(), a @ v, rtol=1e-12, atol=1e-12)
    assert (tv @ tv).shape == ()
    assert (am.tensor(v[:3], dtype=am.float64) @ ta).shape == (2, 4)
    with pytest.raises(am.ShapeError, match="matmul"):
        tv @ am.zeros(3, dtype=am.float64)


def test_shape_methods() -> None:
    x = am.arange(24).reshape(2, 3, 4)
    a = np.arange(24).reshape(2, 3, 4)
    assert x.reshape(4, -1).shape == (4, 6) and x.view(-1).shape == (24,)
    assert_close(x.permute(2, 0, 1).numpy(), a.transpose(2, 0, 1))
    assert_close(x.transpose(0, 2).numpy(), a.swapaxes(0, 2))
    assert_close(x.flatten(1).numpy(), a.reshape(2, 12))
    assert x.unsqueeze(1).shape == (2, 1, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert am.zeros(1, 3, 1).squeeze().shape == (3,)
    assert am.zeros(1, 3, 1).squeeze(0).shape == (3, 1)
    assert am.zeros(3, 1).expand(2, 3, 4).shape == (2, 3, 4)
    assert am.zeros(3, 1).expand(-1, 5).shape == (3, 5)
    assert_close(am.stack([x, x], dim=1).numpy(), np.stack([a, a], axis=1))
    assert_close(am.cat([x, x], dim=-1).numpy(), np.concatenate([a, a], axis=-1))
    assert [p.shape for p in x.split(2, dim=2)] == [(2, 3, 2), (2, 3, 2)]
    assert [p.shape for p in x.chunk(2, dim=1)] == [(2, 2, 4), (2, 1, 4)]
    assert_close(x.repeat(1, 2, 1).numpy(), np.tile(a, (1, 2, 1)))
    assert_close(am.t(am.arange(6).reshape(2, 3)).numpy(), np.arange(6).reshape(2, 3).T)
    idx = am.tensor([[0, 2], [1, 1]])
    m = am.arange(6).reshape(2, 3)
    assert_close(am.gather(m, 1, idx).numpy(), np.take_along_axis(np.arange(6).reshape(2, 3),
                                                                  idx.numpy(), 1))
    with pytest.raises(am.ShapeError, match="reshape"):
        x.reshape(5, 5)
    with pytest.raises(am.ShapeError):
        x.permute(0, 1)


def test_reductions_front_end() -> None:
    a = np.arange(12, dtype=np.float64).reshape(3, 4) - 5
    x = am.tensor(a)
    assert_close(x.sum().numpy(), np.array(a.sum()))
    assert_close(x.sum(dim=1, keepdim=True).numpy(), a.sum(1, keepdims=True))
    assert_close(x.mean(dim=(0, 1)).numpy(), np.array(a.mean()), rtol=1e-15)
    assert_close(x.var(dim=0).numpy(), a.var(0, ddof=1), rtol=1e-13)
    assert_close(x.var(dim=0, unbiased=False).numpy(), a.var(0), rtol=1e-13)
    assert_close(x.std().numpy(), np.array(a.std(ddof=1)), rtol=1e-13)
    values, indices = x.max(dim=0)
    assert_close(values.numpy(), a.max(0))
    assert indices.tolist() == [2, 2, 2, 2]
    assert am.any(am.tensor([0, 0, 1])).item() and not am.all(am.tensor([0, 1])).item()
    assert not am.any(am.zeros(0)).item() and am.all(am.zeros(0)).item()
    assert am.sum(am.tensor([True, True, False])).item() == 2
    assert_close(x.prod(1).numpy(), a.prod(1), rtol=1e-13)
    assert_close(am.logsumexp(x, 1).numpy(), np.log(np.exp(a).sum(1)), rtol=1e-14)


def test_inplace_updates() -> None:
    x = am.zeros(3)
    x.add_(1.0).mul_(3.0)
    assert x.tolist() == [3.0, 3.0, 3.0]
    x[1] = 5.0
    assert x.tolist() == [3.0, 5.0, 3.0]
    p = am.zeros(2, requires_grad=True)
    with pytest.raises(am.AmberError, match="in place"):
        p.add_(1.0)
    with am.no_grad():
        p.sub_(1.0)
    assert p.tolist() == [-1.0, -1.0] and p.requires_grad


@pytest.mark.parametrize(
    ("fn", "op", "shapes"),
    [
        (lambda: am.zeros(2, 3) + am.zeros(4, 3), "add", ("(2, 3)", "(4, 3)")),
        (lambda: am.zeros(2, 3) * am.zeros(2), "mul", ("(2, 3)", "(2,)")),
        (lambda: am.zeros(2, 3) @ am.zeros(4, 5), "matmul", ("(2, 3)", "(4, 5)")),
        (lambda: am.where(am.zeros(3, dtype=am.bool_), am.zeros(2), 1.0), "where",
         ("(3,)", "(2,)")),
        (lambda: am.cat([am.zeros(2, 3), am.zeros(3, 2)], dim=0), "concat",
         ("(2, 3)", "(3, 2)")),
        (lambda: am.zeros(2, 3).reshape(4, 2), "reshape", ("(2, 3)", "(4, 2)")),
        (lambda: am.zeros(2, 3).expand(3, 3), "broadcast_to", ("(2, 3)", "(3, 3)")),
    ],
    ids=["add", "mul", "matmul", "where", "cat", "reshape", "expand"],
)
def test_shape_errors_name_the_op_and_both_shapes(fn: object, op: str,
                                                 shapes: tuple[str, str]) -> None:
    with pytest.raises(am.ShapeError) as info:
        fn()  # type: ignore[operator]
    msg = str(info.value)
    assert op in msg and shapes[0] in msg and shapes[1] in msg, msg


def test_randint_call_forms() -> None:
    g = am.Generator(3)
    assert am.randint(10, (4,), generator=g).shape == (4,)  # randint(high, size)
    assert am.randint(0, 10, (2, 2), generator=g).shape == (2, 2)
    r = am.randint(5, 6, (3,), generator=g)
    assert r.tolist() == [5, 5, 5]
    assert am.randint(2, size=(3,), dtype=am.int32, generator=g).dtype is am.int32


def test_reductions_of_a_0d_tensor_accept_dim_0_and_minus_1() -> None:
    x = am.tensor(3.0)
    for d in (0, -1):
        assert am.sum(x, dim=d).item() == 3.0
        assert am.mean(x, dim=d, keepdim=True).shape == ()
        assert am.amax(x, dim=d).item() == 3.0
    with pytest.raises(am.ShapeError, match="out of range"):
        am.sum(x, dim=1)
