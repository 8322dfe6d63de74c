"""Front-end dtype semantics: promotion, weak Python scalars, integer division, NaN
rules, casts (truncation, saturation, wrap-around) and dtype errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import amber as am

# Every primitive the front end binds must agree with its infer rule.
pytestmark = pytest.mark.usefixtures("check_infer")

DTYPES = [am.bool_, am.int32, am.int64, am.float32, am.float64]  # promotion order
NAN = math.nan
INF = math.inf


def _rank(dt: am.DType) -> int:
    return DTYPES.index(dt)


def _t(values: list, dtype: am.DType) -> am.Tensor:
    return am.tensor(values, dtype=dtype)


@pytest.mark.parametrize(("a", "b"), list(itertools.product(DTYPES, DTYPES)),
                         ids=lambda d: d.name)
def test_tensor_tensor_promotion(a: am.DType, b: am.DType) -> None:
    x, y = _t([1, 0], a), _t([1, 1], b)
    want = a if _rank(a) >= _rank(b) else b
    arith = am.int64 if want is am.bool_ else want  # bool arithmetic computes in int64
    assert (x + y).dtype is arith
    assert (x * y).dtype is arith
    assert (x - y).dtype is arith
    assert am.maximum(x, y).dtype is want
    assert am.where(am.tensor([True, False]), x, y).dtype is want
    assert am.cat([x, y]).dtype is want
    assert (x == y).dtype is am.bool_ and (x < y).dtype is am.bool_


@pytest.mark.parametrize(
    ("dtype", "scalar", "want"),
    [
        (am.int32, 3, am.int32),  # a Python int does not widen int32
        (am.int32, 2.5, am.float32),  # a Python float makes an int tensor default float
        (am.int64, 2.5, am.float32),
        (am.float32, 2.5, am.float32),  # a Python float does not widen float32
        (am.float64, 2, am.float64),
        (am.float32, 7, am.float32),
        (am.bool_, 2, am.int64),
        (am.bool_, 1.5, am.float32),
        (am.bool_, True, am.int64),
        (am.int32, True, am.int32),
    ],
)
def test_python_scalars_are_weak(dtype: am.DType, scalar: object, want: am.DType) -> None:
    x = _t([1, 0], dtype)
    assert (x + scalar).dtype is want
    assert (scalar + x).dtype is want
    assert (x * scalar).dtype is want


def test_creation_defaults() -> None:
    assert am.tensor(1.0).dtype is am.float32
    assert am.tensor([1, 2]).dtype is am.int64
    assert am.tensor([True]).dtype is am.bool_
    assert am.tensor(np.zeros(2, np.float16)).dtype is am.float16  # as torch.tensor
    assert am.tensor(np.zeros(2, np.int32)).dtype is am.int32
    assert am.tensor(np.zeros(2, np.uint8)).dtype is am.uint8
    assert am.tensor(np.zeros(2, np.uint16)).dtype is am.int64  # no amber uint16
    assert am.zeros(2).dtype is am.float32 and am.arange(3).dtype is am.int64
    assert am.arange(0, 1, 0.5).dtype is am.float32


# --------------------------------------------------------------------------- integer division

_INT_PAIRS = [(a, b) for a in (-7, -6, -1, 0, 1, 6, 7) for b in (-3, -2, -1, 1, 2, 3)]


@pytest.mark.parametrize("dtype", [am.int32, am.int64])
def test_integer_floor_division(dtype: am.DType) -> None:
    a = _t([p[0] for p in _INT_PAIRS], dtype)
    b = _t([p[1] for p in _INT_PAIRS], dtype)
    q = a // b
    assert q.dtype is dtype
    assert q.tolist() == [x // y for x, y in _INT_PAIRS]  # Python // floors too
    assert am.floor_divide(a, b).tolist() == q.tolist()
    assert am.div(a, b, rounding_mode="floor").tolist() == q.tolist()


@pytest.mark.parametrize("dtype", [am.int32, am.int64])
def test_integer_division_by_zero_and_overflow(dtype: am.DType) -> None:
    lo = int(np.iinfo(dtype.np).min)
    a = _t([5, -5, 0, lo, lo], dtype)
    b = _t([0, 0, 0, -1, 1], dtype)
    assert (a // b).tolist() == [0, 0, 0, lo, lo]  # x // 0 == 0; INT_MIN // -1 wraps
    assert (a // 0).tolist() == [0] * 5


def test_true_division_of_integers_gives_default_float() -> None:
    q = am.tensor([1, 2, 7]) / am.tensor([2, 2, 2])
    assert q.dtype is am.float32
    assert q.tolist() == [0.5, 1.0, 3.5]
    assert (am.tensor([1], dtype=am.int32) / 2).dtype is am.float32
    assert (am.tensor([1], dtype=am.int32) / am.tensor([0], dtype=am.int32)).tolist() == [INF]
    assert (am.tensor([True]) / am.tensor([True])).dtype is am.float32


def test_float_floor_division() -> None:
    q = am.tensor([7.0, -7.0, 7.5, 1.0]) // am.tensor([2.0, 2.0, -2.0, 0.0])
    assert q.tolist() == [3.0, -4.0, -4.0, INF]


def test_integer_arithmetic_wraps() -> None:
    hi = int(np.iinfo(np.int32).max)
    lo = int(np.iinfo(np.int32).min)
    x = am.tensor([hi, lo], dtype=am.int32)
    assert (x + 1).tolist() == [lo, lo + 1]
    assert (x * 2).tolist() == [-2, 0]
    assert (-x).tolist() == [lo + 1, lo]
    assert am.abs(x).tolist() == [hi, lo]
    assert am.sum(am.tensor([hi, hi], dtype=am.int32), dtype=am.int32).tolist() == -2
    total = am.sum(am.tensor([hi, hi], dtype=am.int32))
    assert total.dtype is am.int64 and total.tolist() == 2 * hi


def test_integer_power_stays_integer() -> None:
    x = am.tensor([2, -3], dtype=am.int32)
    assert (x ** 3).dtype is am.int32 and (x ** 3).tolist() == [8, -27]
    assert (x ** 0).tolist() == [1, 1]
    assert (x ** 0.5).dtype is am.float32
    assert (am.tensor([2.0]) ** am.tensor([3])).dtype is am.float32


# --------------------------------------------------------------------------- NaN rules


def test_nan_propagates_through_max_min_maximum_clamp() -> None:
    x = am.tensor([1.0, NAN, 3.0])
    assert math.isnan(am.max(x).item()) and math.isnan(am.min(x).item())
    assert math.isnan(am.amax(x, 0).item())
    vals, idx = am.max(am.tensor([[1.0, NAN, 3.0], [1.0, 2.0, 0.0]]), dim=1)
    assert math.isnan(vals[0].item()) and vals[1].item() == 2.0
    assert idx.tolist() == [1, 1]
    m = am.maximum(x, am.tensor([2.0, 0.0, NAN]))
    assert m[0].item() == 2.0 and math.isnan(m[1].item()) and math.isnan(m[2].item())
    m = am.minimum(x, am.tensor([2.0, 0.0, NAN]))
    assert m[0].item() == 1.0 and math.isnan(m[1].item()) and math.isnan(m[2].item())
    c = am.clamp(x, 0.0, 2.0)
    assert c[0].item() == 1.0 and math.isnan(c[1].item()) and c[2].item() == 2.0
    assert math.isnan(am.relu(am.tensor([NAN])).item())


def test_nan_comparisons() -> None:
    x, y = am.tensor([NAN, NAN, 1.0]), am.tensor([NAN, 1.0, NAN])
    assert (x == y).tolist() == [False] * 3
    assert (x != y).tolist() == [True] * 3
    for r in (x < y, x <= y, x > y, x >= y):
        assert r.tolist() == [False] * 3


def test_argmax_first_nan_and_first_tie() -> None:
    x = am.tensor([[1.0, 5.0, 5.0, 2.0], [1.0, NAN, 9.0, NAN], [0.0, 0.0, 0.0, 0.0]])
    assert am.argmax(x, dim=1).tolist() == [1, 1, 0]
    assert am.argmin(x, dim=1).tolist() == [0, 1, 0]
    assert am.argmax(am.tensor([3, 7, 7], dtype=am.int32)).item() == 1
    assert am.argmax(am.tensor([False, True, True])).item() == 1
    assert am.argmax(x).item() == 5  # flattened: the first NaN
    with pytest.raises(am.ShapeError, match="argmax"):
        am.argmax(am.zeros(0))


# --------------------------------------------------------------------------- casts


@pytest.mark.parametrize("dtype", [am.float32, am.float64])
def test_float_to_int_cast_truncates_saturates_and_zeroes_nan(dtype: am.DType) -> None:
    x = am.tensor([1.9, -1.9, 0.5, -0.5, NAN, INF, -INF, 3e9, -3e9, 1e30], dtype=dtype)
    i32 = np.iinfo(np.int32)
    i64 = np.iinfo(np.int64)
    assert x.to(am.int32).tolist() == [1, -1, 0, 0, 0, i32.max, i32.min, i32.max, i32.min,
                                       i32.max]
    assert x.to(am.int64).tolist() == [1, -1, 0, 0, 0, i64.max, i64.min, 3000000000,
                                       -3000000000, i64.max]


def test_other_casts() -> None:
    assert am.tensor([0.0, -0.0, NAN, 2.0]).to(am.bool_).tolist() == [False, False, True, True]
    assert am.tensor([0, 3, -1]).to(am.bool_).tolist() == [False, True, True]
    assert am.tensor([True, False]).to(am.float32).tolist() == [1.0, 0.0]
    assert am.tensor([2**31, 2**32 + 5, -(2**31) - 1]).to(am.int32).tolist() == [
        -(2**31), 5, 2**31 - 1]  # int -> narrower int wraps
    assert am.tensor([1e300, -1e300], dtype=am.float64).to(am.float32).tolist() == [INF, -INF]
    assert am.tensor([2**24 + 1], dtype=am.int64).to(am.float32).tolist() == [2.0**24]
    x = am.tensor([1.5])
    assert x.to(am.float32) is x  # same dtype: no-op


# --------------------------------------------------------------------------- errors


def test_dtype_errors() -> None:
    with pytest.raises(am.DTypeError, match="floating"):
        am.tensor([1, 2]).requires_grad_()
    with pytest.raises(am.DTypeError, match="mean"):
        am.mean(am.tensor([1, 2]))
    with pytest.raises(am.DTypeError, match="uint16"):
        am.from_numpy(np.zeros(2, np.uint16))
    with pytest.raises(am.DTypeError):
        am.as_dtype("complex64")
    with pytest.raises(am.DTypeError):
        am.tensor(["a", "b"])
    assert issubclass(am.DTypeError, am.AmberError) and issubclass(am.DTypeError, TypeError)


def test_dtype_names_and_aliases() -> None:
    assert am.float is am.float32 and am.double is am.float64
    assert am.long is am.int64 and am.int is am.int32 and am.bool is am.bool_
    assert am.as_dtype("float64") is am.float64 and am.as_dtype(np.int32) is am.int32
    assert am.as_dtype(float) is am.float32 and am.as_dtype(int) is am.int64
    assert str(am.float32) == "amber.float32"


def test_python_scalar_out_of_range_is_a_dtype_error() -> None:
    x = am.tensor([1], dtype=am.int32)
    with pytest.raises(am.DTypeError, match="does not fit in int32"):
        x + 2**40


# --------------------------------------------------------------------------- storage dtypes
# float16, bfloat16, int8, uint8, int16 (opset 5): stored as themselves, computed in
# float32 / int32 and rounded (wrapped) once (docs/opset.md section 1.1.1).

STORAGE = (am.float16, am.bfloat16, am.int8, am.uint8, am.int16)


@pytest.mark.parametrize(("a", "b", "want"), [
    (am.uint8, am.int8, am.int16), (am.int8, am.int16, am.int16), (am.uint8, am.int16, am.int16),
    (am.uint8, am.int64, am.int64), (am.int8, am.float16, am.float16),
    (am.float16, am.bfloat16, am.float32), (am.bfloat16, am.float32, am.float32),
    (am.float16, am.float64, am.float64), (am.bool_, am.uint8, am.uint8),
])
def test_promotion_follows_pytorch(a: am.DType, b: am.DType, want: am.DType) -> None:
    x, y = am.zeros(2, dtype=a), am.ones(2, dtype=b)
    assert (x + y).dtype is want and (y + x).dtype is want


def test_storage_dtype_names_and_conversions() -> None:
    x = am.tensor([1.5, -2.25, 300.0])
    assert x.half().dtype is am.float16 and am.half is am.float16
    assert x.bfloat16().dtype is am.bfloat16 and x.to("bfloat16").dtype is am.bfloat16
    assert x.char().tolist() == [1, -2, 127]          # int8 saturates from float
    assert x.byte().tolist() == [1, 0, 255]            # uint8 saturates from float
    assert x.short().dtype is am.int16 and am.short is am.int16
    assert am.tensor(np.array([1, 2], np.int8)).dtype is am.int8
    assert am.from_numpy(np.zeros(2, am.bfloat16.np)).dtype is am.bfloat16
    assert am.as_dtype("half") is am.float16
    for dt in STORAGE:
        assert am.zeros(2, 3, dtype=dt).dtype is dt and am.ones(2, dtype=dt).dtype is dt
        assert am.full((2,), 3, dtype=dt).tolist() == [3, 3]
        assert am.arange(4, dtype=dt).tolist() == [0, 1, 2, 3]
    assert am.randn(3, dtype=am.float16).dtype is am.float16
    assert am.finfo(am.bfloat16).eps == 2.0**-7 and am.finfo(am.float16).max == 65504.0
    assert (am.iinfo(am.uint8).min, am.iinfo(am.int8).max, am.iinfo(am.int16).bits) == (0, 127, 16)


def test_integer_storage_dtypes_wrap() -> None:
    i8 = am.tensor([127, -128, -7], dtype=am.int8)
    assert (i8 + 1).tolist() == [-128, -127, -6]
    assert (i8 // -1).tolist() == [-127, -128, 7]       # INT_MIN div -1 = INT_MIN
    assert (i8 // am.zeros(3, dtype=am.int8)).tolist() == [0, 0, 0]
    assert (-i8).tolist() == [-127, -128, 7] and i8.abs().tolist() == [127, -128, 7]
    u8 = am.tensor([0, 255, 16], dtype=am.uint8)
    assert (u8 - 1).tolist() == [255, 254, 15] and (u8 * 16).tolist() == [0, 240, 0]
    assert (u8 @ am.tensor([[1], [1], [1]], dtype=am.uint8)).tolist() == [15]  # 271 mod 256
    assert u8.sum().dtype is am.int64 and u8.sum().item() == 271  # as PyTorch
    i16 = am.tensor([30000], dtype=am.int16)
    assert (i16 * 2).tolist() == [-5536]


def test_float_storage_dtypes_round_once_from_float32() -> None:
    h = am.tensor([60000.0, 1.0, 2.0**-24], dtype=am.float16)
    assert (h + h).tolist() == [float("inf"), 2.0, 2.0**-23]  # overflow, subnormals kept
    b = am.tensor([1.0, 3.0], dtype=am.bfloat16)
    assert (b / 3).tolist() == [float(np.float32(1 / 3).astype(am.bfloat16.np)), 1.0]
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    for dt in (am.float16, am.bfloat16):
        xs = x.astype(np.float32).astype(dt.np)
        a = am.tensor(xs)
        want = (xs.astype(np.float32) @ xs.T.astype(np.float32)).astype(dt.np)
        got = (a @ a.T).numpy()
        assert got.dtype == dt.np
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32),
                                   rtol=float(am.finfo(dt).eps), atol=1e-3)


def test_storage_float_gradients_keep_their_dtype() -> None:
    x = am.tensor([1.0, 2.0, 3.0], dtype=am.bfloat16, requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.dtype is am.bfloat16 and x.grad.tolist() == [2.0, 4.0, 6.0]


@pytest.mark.parametrize("dt", STORAGE)
def test_eager_exported_native_and_reference_agree_bit_for_bit(tmp_path, dt) -> None:
    """One kernel library: eager, the native runtime and the reference interpreter give
    the same bits on a program using the dtype (exact ops, and exp/sum/matmul whose eager
    kernels are libamber's)."""
    rng = np.random.default_rng(1)
    w = am.tensor((rng.standard_normal((4, 3)) * 3).astype(np.float32)).to(dt)

    def f(x):
        y = x @ w
        z = (y.exp() if dt.is_floating else y * y) + y
        return z.sum(1), z > 0, z.to(am.float32)

    x = am.tensor((rng.standard_normal((5, 4)) * 3).astype(np.float32)).to(dt)
    path = tmp_path / f"{dt.name}.amber"
    am.export(f, am.spec("n", 4, dtype=dt)).save(path)
    model = am.load(path)
    assert model.program.opset_version == 5
    assert all(r.ok for r in model.verify())
    eager = [t.numpy() for t in f(x)]
    native = [t.numpy() for t in model(x)]
    ref = model.program.run("forward", x=x.numpy())
    for e, n, r in zip(eager, native, ref, strict=True):
        assert e.dtype == n.dtype == r.dtype
        assert e.tobytes() == n.tobytes()
        if not (dt.is_floating and e.dtype == dt.np):  # reference exp/sum: NumPy's
            assert e.tobytes() == r.tobytes()


def test_programs_without_storage_dtypes_keep_their_opset(tmp_path) -> None:
    p = am.export(lambda x: x * 2, am.spec(3))
    assert "opset 1" in str(p)
    p.save(tmp_path / "old.amber")
    assert am.load(tmp_path / "old.amber").program.opset_version == 1
    q = am.export(lambda x: x * 2, am.spec(3, dtype=am.int8))
    assert "opset 5" in str(q)
