"""The eager hot path: a primitive's direct application (``apply``, what the front end
calls for same-dtype float operands) behaves as its general call does (the result, the
tape, the typed errors, the infer-checking intercept), and malloc keeps freed tensor
memory."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import amber as am
from amber.ops import elementwise as E
from amber.ops import linalg as L
from amber.ops import reduce as R
from amber.ops import registry
from helpers import infer_checked

RNG = np.random.default_rng(0)


def _pair(shape_a: tuple, shape_b: tuple, dtype: str = "float32",
          grad: bool = False) -> tuple[am.Tensor, am.Tensor]:
    return (am.tensor(RNG.standard_normal(shape_a).astype(dtype), requires_grad=grad),
            am.tensor(RNG.standard_normal(shape_b).astype(dtype), requires_grad=grad))


@pytest.mark.parametrize("prim", [E.add, E.sub, E.mul, E.div, L.matmul])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_apply_of_two_is_the_general_call(prim: registry.Primitive, dtype: str) -> None:
    shape_b = (5, 3) if prim is L.matmul else (4, 5)
    a, b = _pair((4, 5), shape_b, dtype, grad=True)
    fast, slow = prim.apply(a, b), prim(a, b)
    np.testing.assert_array_equal(fast.detach().numpy(), slow.detach().numpy())
    assert fast.dtype is slow.dtype and fast.requires_grad
    assert fast._node.prim is prim and fast._node.inputs == (a, b)
    fast.sum().backward()
    ga, gb = a.grad.numpy(), b.grad.numpy()
    a.grad = b.grad = None
    slow.sum().backward()
    np.testing.assert_array_equal(ga, a.grad.numpy())
    np.testing.assert_array_equal(gb, b.grad.numpy())


def test_apply_of_one_is_the_general_call() -> None:
    x = am.tensor(RNG.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    attrs = {"axes": (1,), "keepdims": True}
    for prim, kw in ((E.exp, None), (E.tanh, None), (R.reduce_sum, attrs)):
        fast = prim.apply(x, None, kw)
        slow = prim(x, **(kw or {}))
        np.testing.assert_array_equal(fast.detach().numpy(), slow.detach().numpy())
        assert fast._node.prim is prim and fast._node.attrs == (kw or {})


def test_no_tape_without_grad_or_for_integer_results() -> None:
    a, b = _pair((3,), (3,), grad=True)
    with am.no_grad():
        assert not E.mul.apply(a, b).requires_grad
        assert E.exp.apply(a)._node is None
    assert not E.lt(a, b).requires_grad  # a bool result carries no gradient
    c, d = _pair((3,), (3,))
    assert not (c + d).requires_grad and (c + d)._node is None


def test_front_end_fast_paths_keep_mixed_operands_working() -> None:
    a = am.tensor(np.arange(3, dtype=np.float32))
    assert (a + 1).dtype is am.float32 and (1 + a).numpy().tolist() == [1, 2, 3]
    assert (a * am.tensor([2, 2, 2])).dtype is am.float32  # int64 operand promoted
    assert (a - a.double()).dtype is am.float64
    assert am.add(a, a, alpha=2).numpy().tolist() == [0, 3, 6]
    assert am.sub(a, a, alpha=0.5).numpy().tolist() == [0, 0.5, 1]
    assert (am.tensor([1, 2]) * am.tensor([3, 4])).dtype is am.int64
    m = am.tensor(np.eye(2, dtype=np.float32))
    assert (m @ am.tensor([1.0, 2.0])).numpy().tolist() == [1, 2]  # 1-D operand


def test_fast_paths_raise_the_typed_errors() -> None:
    a, b = _pair((2, 3), (2, 3))
    with pytest.raises(am.ShapeError, match="matmul"):
        a @ b
    with pytest.raises(am.ShapeError, match="add"):
        a + am.tensor(np.ones((4,), np.float32))
    with pytest.raises(am.ShapeError, match="matmul"):
        L.matmul.apply(a, b)


def test_infer_checks_see_the_fast_paths() -> None:
    a, b = _pair((2, 3), (3, 2))
    with infer_checked() as log:
        (a @ b).exp().sum() * 2.0 - a.sum()
    assert {"matmul", "exp", "sum", "mul", "sub"} <= log.names


def test_methods_are_the_functions() -> None:
    assert am.Tensor.exp is am.exp and am.Tensor.sum is am.sum
    a = am.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert a.sum(1).numpy().tolist() == [3, 7] and a.sum(dim=0, keepdim=True).shape == (1, 2)
    assert (a / 2).numpy().tolist() == [[0.5, 1], [1.5, 2]] and (-a).numpy()[0, 0] == -1


def _tuned(env: dict[str, str]) -> str:
    code = "import amber._memory as m; print(m.TUNED)"
    full = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    res = subprocess.run([sys.executable, "-c", code], env={**full, **env},
                         capture_output=True, text=True, check=True)
    return res.stdout.strip()


@pytest.mark.skipif(not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"),
                    reason="glibc's mallopt")
def test_malloc_tuning_and_its_opt_outs() -> None:
    assert _tuned({}) == "True"
    assert _tuned({"AMBER_MALLOC_TUNING": "0"}) == "False"
    assert _tuned({"MALLOC_ARENA_MAX_": "2"}) == "False"  # the process's own choice stands
