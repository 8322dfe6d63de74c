"""``Tensor.__getitem__`` against NumPy's indexing (amber builds it from slice, reshape,
transpose and take), with gradients checked by finite differences."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import amber as am
from helpers import assert_close, check_grad, infer_checked

# Every primitive the front end binds must agree with its infer rule.
pytestmark = pytest.mark.usefixtures("check_infer")

A = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
I = np.array

KEYS: list[tuple[str, Any]] = [
    ("int", 1),
    ("negative-int", -1),
    ("slice", slice(1, None)),
    ("negative-slice", slice(-3, -1)),
    ("step", (slice(None), slice(None, None, 2))),
    ("int-and-slices", (0, slice(1, 3), slice(None, None, 3))),
    ("ellipsis", (Ellipsis, 2)),
    ("ellipsis-middle", (1, Ellipsis, slice(0, 2))),
    ("none", (None, 0, None, slice(1, 2))),
    ("none-ellipsis", (Ellipsis, None)),
    ("empty-slice", (slice(2, 1),)),
    ("out-of-range-slice", (slice(-10, 10), slice(5, 10))),
    ("gather", I([1, 0, 1])),
    ("gather-negative", (slice(None), I([-1, 0, -3]))),
    ("gather-2d-index", (slice(None), slice(None), I([[0, 3], [3, 1]]))),
    ("gather-repeated", (0, 0, I([2, 2, 2]))),
    ("adjacent", (slice(None), I([0, 2]), I([1, 3]))),
    ("adjacent-broadcast", (slice(None), I([[0], [2]]), I([1, 3, 0]))),
    ("non-adjacent", (I([0, 1]), slice(None), I([1, 3]))),
    ("non-adjacent-with-int", (I([1, 0]), slice(1, 3), 2)),
    ("int-joins-advanced", (slice(None), 1, I([0, 2]))),
    ("none-splits-advanced", (I([0, 1]), None, I([1, 2]))),
    ("advanced-ellipsis", (Ellipsis, I([4, 0]))),
    ("bool-mask", I([True, False])),
    ("bool-mask-2d", (slice(None), I([[True, False, True, False]] * 3))),
    ("bool-mask-and-slice", (I([False, True]), slice(None), I([True, False, True, False]))),
    ("tensor-index", am.tensor([1, -2, 0])),
    ("int32-tensor-index", (slice(None), am.tensor([1, 2], dtype=am.int32))),
    ("bool-tensor-mask", am.tensor([True, True])),
    ("list-index", [0, 1, 1]),
    ("empty-list-index", []),
    ("0d-array-index", I(1)),
    ("0d-arrays-non-adjacent", (I(1), slice(None), I(2))),
    ("three-advanced", ([0, 1], [1, 2], [2, 3])),
    ("int-slice-int", (1, slice(None), I([0, 2]), 1)),
    ("two-masks", (I([True, True]), slice(None), I([True, False, False, True]))),
    ("advanced-after-slices", (slice(1, None), [0, 2], slice(None, 2))),
]


def _np_key(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(_np_key(k) for k in key)
    return key.numpy() if isinstance(key, am.Tensor) else key


@pytest.mark.parametrize(("name", "key"), KEYS, ids=[k[0] for k in KEYS])
def test_getitem_matches_numpy(name: str, key: Any) -> None:
    with infer_checked():
        got = am.tensor(A)[key]
    want = A[_np_key(key)]
    assert got.shape == want.shape
    assert_close(got.numpy(), want)


@pytest.mark.parametrize(("name", "key"), KEYS, ids=[k[0] for k in KEYS])
def test_getitem_gradients(name: str, key: Any) -> None:
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    check_grad(lambda t: t[key], [x])


def test_getitem_on_int_and_bool_tensors() -> None:
    b = np.array([[True, False], [False, True]])
    assert am.tensor(b)[1].tolist() == [False, True]
    assert am.tensor(b)[am.tensor(b)].tolist() == [True, True]
    i = am.arange(10, dtype=am.int32)
    assert i[2:8:3].tolist() == [2, 5] and i[am.tensor([9, -10])].tolist() == [9, 0]


def test_indexing_a_0d_tensor() -> None:
    s = am.tensor(5.0)
    assert s[None].shape == (1,) and s[..., None].shape == (1,) and s[()].shape == ()
    assert s[...].item() == 5.0


def test_repeated_gather_accumulates_gradient() -> None:
    x = am.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[am.tensor([0, 0, 2, 0])].sum().backward()
    assert x.grad.tolist() == [3.0, 0.0, 1.0]


def test_index_errors() -> None:
    x = am.zeros(2, 3)
    with pytest.raises(am.OutOfRangeError, match="out of range"):
        x[2]
    with pytest.raises(am.OutOfRangeError, match="out of range"):
        x[-3]
    with pytest.raises(am.OutOfRangeError, match="out of range"):
        x[:, am.tensor([0, 3])]
    with pytest.raises(am.ShapeError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(am.ShapeError, match="ellipsis"):
        x[..., ...]
    with pytest.raises(am.ShapeError, match="step"):
        x[::-1]
    with pytest.raises(am.ShapeError, match="boolean index did not match"):
        x[am.tensor([True, False, True])]
    with pytest.raises(am.ShapeError):
        x[am.tensor([0.5])]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_basic_and_advanced_keys(data: Any) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    x = np.arange(int(np.prod(shape))).reshape(shape)
    key: list[Any] = []
    for n in shape[:data.draw(st.integers(1, len(shape)))]:
        kind = data.draw(st.sampled_from(["int", "slice", "array", "none"]))
        if kind == "int":
            key.append(data.draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            key.append(slice(data.draw(st.none() | st.integers(-n - 1, n + 1)),
                             data.draw(st.none() | st.integers(-n - 1, n + 1)),
                             data.draw(st.none() | st.integers(1, 3))))
        elif kind == "array":
            key.append(data.draw(hnp.arrays(np.int64, data.draw(st.sampled_from([(2,), (1,)])),
                                            elements=st.integers(-n, n - 1))))
        else:
            key.append(None)
            key.append(slice(None))
    got = am.tensor(x)[tuple(key)]
    want = x[tuple(key)]
    assert got.shape == want.shape
    assert_close(got.numpy(), want)


def test_symbolic_slice_of_a_static_buffer_exports(tmp_path) -> None:
    """``buffer[:, :seq]`` (HuggingFace's position_ids): a take of a symbolic arange;
    beyond the buffer the exported program raises, where Python would clamp."""
    import amber.errors as errors

    table = am.tensor(np.arange(32.0).reshape(2, 16))

    def head(x):
        seq = x.shape[1]
        return table[:, :seq] + x, table[:, 2:seq:3]

    program = am.export(head, am.spec(2, "seq", dtype=np.float64), sizes={"seq": (3, 8)})
    program.save(str(tmp_path / "head.amber"))
    loaded = am.load(str(tmp_path / "head.amber"))
    for seq in (3, 9, 16):
        x = np.random.default_rng(seq).normal(size=(2, seq))
        got = loaded(x)
        want = head(am.tensor(x))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g.numpy(), w.numpy())
    with pytest.raises(errors.OutOfRangeError):
        loaded(np.zeros((2, 17)))


def test_negative_symbolic_bound_on_a_static_dim_is_refused() -> None:
    table = am.tensor(np.arange(16.0))

    def tail(x):
        return table[-x.shape[0]:] * 1.0

    with pytest.raises(am.errors.CaptureError,
                       match=r"(?s)test_indexing.py:\d+.*bounds in \[0, 16\]"):
        am.export(tail, am.spec("n"))
