"""The primitive test table: every primitive in ``amber.ops.REGISTRY`` maps to its cases.

A case names a sample-input generator, an independent reference (tests/helpers/refs.py,
element-by-element Python), the attributes, the dtypes it runs with, which inputs are
differentiable (checked in float64 against finite differences) and to what order.
``test_primitives.py`` fails if this table and the registry ever disagree."""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

from amber.ops import REGISTRY
from helpers import refs

Array = np.ndarray
Make = Callable[[np.random.Generator, np.dtype], list[Array]]

FLOATS = ("float32", "float64", "float16", "bfloat16")
INTS = ("int32", "int64", "int8", "uint8", "int16")
NUMERIC = FLOATS + INTS
ALL = NUMERIC + ("bool",)


@dataclass(frozen=True)
class Case:
    prim: str
    make: Make
    ref: Callable[..., Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    dtypes: tuple[str, ...] = FLOATS
    grad: bool = False  # float inputs differentiable: FD check in float64
    order: int = 1  # 2: also grad of grad (w.r.t. inputs and the output cotangent)
    kind: str = "exact"  # forward tolerance class (see helpers.forward_tol)
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.prim}-{self.label}" if self.label else self.prim


# --------------------------------------------------------------------------- generators


def values(rng: np.random.Generator, shape: tuple[int, ...], dt: Any, lo: float = -2.0,
           hi: float = 2.0) -> Array:
    dt = np.dtype(dt)
    if refs.is_float(dt):
        return rng.uniform(lo, hi, shape).astype(dt)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(-20, 21, shape).astype(dt)


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...], dt: Any) -> Array:
    """Values with |v| in [0.25, 2] (and non-zero integers): kinks and poles avoided."""
    dt = np.dtype(dt)
    mag = rng.uniform(0.25, 2.0, shape)
    sgn = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    if refs.is_float(dt):
        return (mag * sgn).astype(dt)
    if dt.kind == "b":
        return np.ones(shape, dtype=bool)
    return (np.ceil(mag * 5) * sgn).astype(dt)


def positive(rng: np.random.Generator, shape: tuple[int, ...], dt: Any) -> Array:
    return rng.uniform(0.3, 2.5, shape).astype(dt)


def distinct(rng: np.random.Generator, shape: tuple[int, ...], dt: Any) -> Array:
    """Distinct values spaced >= 0.1 apart (no ties: max/min are differentiable)."""
    n = int(np.prod(shape))
    v = (rng.permutation(n) - n / 2) * 0.37 + rng.uniform(-0.05, 0.05, n)
    dt = np.dtype(dt)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        return (rng.permutation(n) - n // 2).reshape(shape).astype(dt)
    return v.reshape(shape).astype(dt)


def special(dt: Any) -> Array:
    """Edge values of a dtype: NaN, infinities, signed zero, extremes."""
    dt = np.dtype(dt)
    if refs.is_float(dt):
        fi = ml_dtypes.finfo(dt)
        return np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0,
                         fi.max, -fi.max, fi.tiny, 1e-3, 88.0, -88.0, 710.0, -745.0], dtype=dt)
    if dt.kind == "b":
        return np.array([False, True, True, False], dtype=dt)
    ii = np.iinfo(dt)
    return np.array([ii.min, ii.max, 0, -1, 1, 7, -7, ii.min + 1, ii.max - 1, 2, -3]
                    ).astype(dt)  # -1 of an unsigned dtype wraps to its maximum


def unary(gen: Callable[..., Array] = values, shape: tuple[int, ...] = (2, 3)) -> Make:
    return lambda rng, dt: [gen(rng, shape, dt)]


def binary(shape_a: tuple[int, ...], shape_b: tuple[int, ...],
           gen: Callable[..., Array] = values, gen_b: Callable[..., Array] | None = None
           ) -> Make:
    return lambda rng, dt: [gen(rng, shape_a, dt), (gen_b or gen)(rng, shape_b, dt)]


def special_unary() -> Make:
    return lambda rng, dt: [special(dt)]


def special_pairs() -> Make:
    """Every pair of special values (as a (n, 1) x (1, n) broadcast)."""
    return lambda rng, dt: [special(dt)[:, None], special(dt)[None, :]]


# --------------------------------------------------------------------------- scalar refs


def _f(dt: Any, v: float) -> Any:
    return refs.to_float(dt, v)


def _num(fn_float: Callable[[float], float],
         fn_int: Callable[[int], int] | None = None) -> Callable[..., Array]:
    def scalar(v: Any, dt: np.dtype) -> Any:
        if refs.is_float(dt):
            return _f(dt, fn_float(v))
        assert fn_int is not None
        return refs.wrap_int(fn_int(v), dt)

    return refs.elementwise(scalar)


# High-precision references (the decimal module, 50 digits): float() of a Decimal is
# correctly rounded, so these give the correctly rounded result the 4-ULP bound refers to.
_CTX = decimal.Context(prec=50, Emax=10**7, Emin=-(10**7),
                       traps=[decimal.InvalidOperation, decimal.DivisionByZero])
_D = decimal.Decimal


def _exp(v: float) -> float:
    if math.isnan(v):
        return v
    if v > 1000:
        return math.inf
    return float(_CTX.exp(_D(v)))


def _log(v: float) -> float:
    if math.isnan(v) or v < 0:
        return math.nan
    if v == 0:
        return -math.inf
    return v if math.isinf(v) else float(_CTX.ln(_D(v)))


def _sqrt(v: float) -> float:
    return math.nan if math.isnan(v) or v < 0 else math.sqrt(v)


def _tanh(v: float) -> float:
    if math.isnan(v) or v == 0:
        return v
    if abs(v) > 50:
        return math.copysign(1.0, v)
    x = _D(v)
    if abs(v) < 1e-5:
        return float(_CTX.plus(x - x ** 3 / 3 + 2 * x ** 5 / 15))
    t = _CTX.exp(2 * x)
    return float(_CTX.divide(t - 1, t + 1))


def _sigmoid(v: float) -> float:
    if math.isnan(v):
        return v
    if v >= 0:
        return 1.0 if v > 1000 else float(_CTX.divide(1, 1 + _CTX.exp(_D(-v))))
    if v < -1e6:
        return 0.0
    e = _CTX.exp(_D(v))
    return float(_CTX.divide(e, 1 + e))


def _erf(v: float) -> float:
    if math.isnan(v) or v == 0:
        return v
    if abs(v) > 3:  # erfc < 2.3e-5: its libm rounding error is far below one ULP of erf
        return math.copysign(1.0 - math.erfc(abs(v)), v)
    x = _D(v)
    total, term, n = _D(0), x, 0
    while True:  # erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
        total += _CTX.divide(term, 2 * n + 1)
        n += 1
        term = _CTX.divide(-term * x * x, n)
        if abs(term) < _D(10) ** -60:
            break
    pi = _D("3.14159265358979323846264338327950288419716939937510582097494459")
    return float(_CTX.multiply(_CTX.divide(2, _CTX.sqrt(pi)), total))


def _periodic(fn: Callable[[float], float]) -> Callable[[float], float]:
    return lambda v: math.nan if math.isinf(v) else fn(v)


def _sign(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return v
    return (v > 0) - (v < 0)


def _floor(v: float) -> float:
    return v if math.isnan(v) or math.isinf(v) else float(math.floor(v))


def _round(v: float) -> float:
    """Halves to even (Python's round); the sign of a zero result is the input's."""
    if math.isnan(v) or math.isinf(v):
        return v
    return math.copysign(float(round(v)), v)


def _fdiv(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _pow(a: float, b: float) -> float:
    if b == 0:
        return 1.0
    if a > 0 and not math.isinf(a) and not math.isinf(b) and not math.isnan(b):
        try:
            return float(_CTX.power(_D(a), _D(b)))
        except decimal.Overflow:
            return math.inf
    try:
        return math.pow(a, b)
    except ValueError:  # 0 ** negative, or negative ** non-integer
        if a == 0:
            odd = float(b).is_integer() and int(b) % 2 == 1
            return math.copysign(math.inf, a) if odd else math.inf
        return math.nan
    except OverflowError:
        neg = a < 0 and float(b).is_integer() and int(b) % 2 == 1
        return -math.inf if neg else math.inf


def _arith(op: Callable[[Any, Any], Any], int_op: Callable[[int, int, Any], int] | None = None
           ) -> Callable[..., Array]:
    def scalar(a: Any, b: Any, dt: np.dtype) -> Any:
        if refs.is_float(dt):
            return _f(dt, op(a, b))
        if int_op is not None:
            return int_op(a, b, dt)
        return refs.wrap_int(op(int(a), int(b)), dt)

    return refs.elementwise(scalar)


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _extremum2(pick: Callable[[Any, Any], Any]) -> Callable[..., Array]:
    def scalar(a: Any, b: Any, dt: np.dtype) -> Any:
        return math.nan if _nan(a) or _nan(b) else pick(a, b)

    return refs.elementwise(scalar)


def _compare(op: Callable[[Any, Any], bool]) -> Callable[..., Array]:
    return refs.elementwise(lambda a, b, dt: op(a, b), np.bool_)


def _cast_ref(target: str) -> Callable[..., Array]:
    def ref(x: Array, dtype: str = target) -> Array:
        out = np.empty(x.shape, dtype=dtype)
        for idx in np.ndindex(*x.shape):
            out[idx] = refs.cast_scalar(x[idx].item(), x.dtype, dtype)
        return out

    return ref


def _where_ref(c: Array, x: Array, y: Array) -> Array:
    return refs.elementwise(lambda cv, a, b, dt: a if cv else b)(c, x, y).astype(x.dtype)


def _attrs_ref(fn: Callable[..., Array]) -> Callable[..., Array]:
    return fn


# --------------------------------------------------------------------------- the table

_BCAST = ((2, 1, 3), (4, 1))

# Unary float primitives: scalar reference (correctly rounded, or within the accuracy
# class the registry declares) and the generator of the gradient case's inputs.
UNARY_FLOAT: dict[str, tuple[Callable[[float], float], Make]] = {
    "floor": (_floor, unary(lambda r, s, d: (values(r, s, d, -5, 5) + 0.0).astype(d))),
    "exp": (_exp, unary()),
    "log": (_log, unary(positive)),
    "sqrt": (_sqrt, unary(positive)),
    "tanh": (_tanh, unary()),
    "sigmoid": (_sigmoid, unary()),
    "sin": (_periodic(math.sin), unary()),
    "cos": (_periodic(math.cos), unary()),
    "erf": (_erf, unary()),
    "round": (_round, unary(lambda r, s, d: (values(r, s, d, -5, 5) + 0.25).astype(d))),
}


def tolerance_kind(prim: str) -> str:
    """The forward tolerance class (helpers.forward_tol) of a primitive's accuracy."""
    return {"ulp4": "transcendental", "sum": "accumulate"}.get(REGISTRY[prim].accuracy,
                                                               "exact")


CASES: list[Case] = []

for _name, (_fn, _make) in UNARY_FLOAT.items():
    _kind = tolerance_kind(_name)
    CASES += [
        Case(_name, _make, _num(_fn), grad=True, order=2, kind=_kind),
        Case(_name, special_unary(), _num(_fn), kind=_kind, label="special"),
        Case(_name, unary(shape=(0, 3)), _num(_fn), label="empty"),
        Case(_name, unary(shape=()), _num(_fn), kind=_kind, label="0d"),
    ]

CASES += [
    Case("neg", unary(), _num(lambda v: -v, lambda v: -v), dtypes=NUMERIC, grad=True, order=2),
    Case("neg", special_unary(), _num(lambda v: -v, lambda v: -v), dtypes=NUMERIC,
         label="special"),
    Case("abs", unary(away_from_zero), _num(abs, abs), dtypes=NUMERIC, grad=True, order=2),
    Case("abs", special_unary(), _num(abs, abs), dtypes=NUMERIC, label="special"),
    Case("sign", unary(away_from_zero), _num(_sign, _sign), dtypes=NUMERIC, grad=True,
         order=2),
    Case("sign", special_unary(), _num(_sign, _sign), dtypes=NUMERIC, label="special"),
    Case("logical_not", unary(), refs.elementwise(lambda v, dt: not v), dtypes=("bool",)),
]

# binary arithmetic: same shapes, broadcasting, specials
_ARITH = {
    "add": _arith(lambda a, b: a + b),
    "sub": _arith(lambda a, b: a - b),
    "mul": _arith(lambda a, b: a * b),
    "div": _arith(_fdiv, refs.floor_div_int),
}
for _name, _ref in _ARITH.items():
    _gen_b = away_from_zero if _name == "div" else values
    CASES += [
        Case(_name, binary((2, 3), (2, 3), values, _gen_b), _ref, dtypes=NUMERIC, grad=True,
             order=2),
        Case(_name, binary(*_BCAST, values, _gen_b), _ref, dtypes=NUMERIC, grad=True,
             label="broadcast"),
        Case(_name, binary((3,), (), values, _gen_b), _ref, dtypes=NUMERIC, label="scalar"),
        Case(_name, binary((0, 3), (1, 3)), _ref, dtypes=NUMERIC, label="empty"),
        Case(_name, special_pairs(), _ref, dtypes=NUMERIC, label="special"),
    ]
CASES += [
    Case("div", binary((4, 5), (4, 5), lambda r, s, d: r.integers(-9, 10, s).astype(d)),
         _ARITH["div"], dtypes=INTS, label="int-floor-and-zero"),
    Case("pow", binary((2, 3), (2, 3), positive, values), _arith(_pow), grad=True, order=2,
         kind="transcendental"),
    Case("pow", binary(*_BCAST, positive, values), _arith(_pow), grad=True,
         kind="transcendental", label="broadcast"),
    Case("pow", special_pairs(), _arith(_pow), kind="transcendental", label="special"),
]

for _name, _pick in (("maximum", max), ("minimum", min)):
    CASES += [
        Case(_name, binary((2, 3), (2, 3), distinct), _extremum2(_pick), dtypes=ALL,
             grad=True, order=2),
        Case(_name, binary(*_BCAST, distinct), _extremum2(_pick), dtypes=ALL, grad=True,
             label="broadcast"),
        Case(_name, special_pairs(), _extremum2(_pick), dtypes=ALL, label="special"),
    ]

_CMP = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
}


def _small(rng: np.random.Generator, shape: tuple[int, ...], dt: Any) -> Array:
    """Few distinct values, so ties are frequent."""
    v = values(rng, shape, dt, -2, 2)
    return v if np.dtype(dt).kind == "b" else v.round().astype(dt)


for _name, _op in _CMP.items():
    CASES += [
        Case(_name, binary(*_BCAST, _small), _compare(_op), dtypes=ALL),
        Case(_name, special_pairs(), _compare(_op), dtypes=ALL, label="special"),
    ]
for _name, _op in (("logical_and", lambda a, b: a and b), ("logical_or", lambda a, b: a or b)):
    CASES.append(Case(_name, binary(*_BCAST), refs.elementwise(lambda a, b, dt, o=_op: o(a, b),
                                                                 np.bool_), dtypes=("bool",)))


def _where_make(shapes: tuple[tuple[int, ...], ...]) -> Make:
    return lambda rng, dt: [rng.random(shapes[0]) < 0.5, values(rng, shapes[1], dt),
                            values(rng, shapes[2], dt)]


CASES += [
    Case("where", _where_make(((2, 3), (2, 3), (2, 3))), _where_ref, dtypes=ALL, grad=True,
         order=2),
    Case("where", _where_make(((2, 1, 3), (4, 1), ())), _where_ref, dtypes=ALL, grad=True,
         label="broadcast"),
]

for _src in ALL:
    for _dst in ALL:
        CASES.append(Case("cast", lambda rng, dt: [np.concatenate(
            [special(dt), values(rng, (6,), dt, -300, 300)])], _cast_ref(_dst),
            attrs={"dtype": _dst}, dtypes=(_src,), label=f"{_src}-to-{_dst}"))
CASES += [
    Case("cast", unary(), _cast_ref("float64"), attrs={"dtype": "float64"},
         dtypes=("float64",), grad=True, order=2, label="grad"),
    Case("cast", lambda rng, dt: [np.array([2.5, -2.5, 1e10, -1e10, 2**31 - 0.5, -2**31 - 1.0,
                                            2.0**31, 2.0**63, -2.0**63, 1.5e19],
                                           dtype=dt)],
         _cast_ref("int32"), attrs={"dtype": "int32"}, dtypes=FLOATS,
         label="saturate-int32"),
    Case("cast", lambda rng, dt: [np.array([2.0**63, -2.0**63, 9.2e18, -9.2e18, 1e300, -0.9],
                                           dtype=dt)],
         _cast_ref("int64"), attrs={"dtype": "int64"}, dtypes=FLOATS,
         label="saturate-int64"),
]

# ------------------------------------------------------------------ linalg

_MATMUL_SHAPES = [((2, 3), (3, 4), ""), ((2, 1, 2, 3), (3, 3, 2), "batch-broadcast"),
                  ((0, 3), (3, 2), "empty-m"), ((2, 0), (0, 3), "empty-k"),
                  ((2, 3, 4), (4, 5), "shared-matrix")]
for _a, _b, _lab in _MATMUL_SHAPES:
    CASES.append(Case("matmul", binary(_a, _b), refs.matmul, dtypes=NUMERIC,
                      grad=_lab != "empty-m", order=2 if _lab in ("", "shared-matrix") else 1,
                      kind="accumulate", label=_lab))

CASES.append(Case("matmul", lambda rng, dt: [np.full((2, 3), np.iinfo(dt).max, dtype=dt),
                                              np.array([[3, -1], [2, 2], [1, 5]]).astype(dt)],
                  refs.matmul, dtypes=INTS, label="wraps"))

_CONV_CONFIGS = [
    # x shape, w shape, stride, padding (t, b, l, r), dilation, groups, label
    ((1, 2, 5, 5), (3, 2, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, ""),
    ((2, 2, 5, 6), (2, 2, 2, 3), (2, 1), (1, 0, 2, 1), (1, 1), 1, "stride-asym-pad"),
    ((1, 4, 6, 6), (4, 2, 2, 2), (1, 2), (1, 1, 0, 0), (2, 1), 2, "groups-dilation"),
    ((1, 3, 4, 4), (3, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3, "depthwise"),
    ((1, 1, 7, 7), (1, 1, 2, 2), (3, 3), (0, 0, 0, 0), (2, 2), 1, "unused-rows"),
]


def _conv_attrs(cfg: tuple) -> dict[str, Any]:
    return {"stride": cfg[2], "padding": cfg[3], "dilation": cfg[4], "groups": cfg[5]}


def _out_hw(cfg: tuple) -> tuple[int, int]:
    (_, _, h, w), (_, _, kh, kw) = cfg[0], cfg[1]
    st, pd, dl = cfg[2], cfg[3], cfg[4]
    return ((h + pd[0] + pd[1] - dl[0] * (kh - 1) - 1) // st[0] + 1,
            (w + pd[2] + pd[3] - dl[1] * (kw - 1) - 1) // st[1] + 1)


for _cfg in _CONV_CONFIGS:
    _at = _conv_attrs(_cfg)
    _o = _cfg[1][0]
    _gshape = (_cfg[0][0], _o) + _out_hw(_cfg)
    _first = _cfg[6] == ""
    CASES += [
        Case("conv2d", binary(_cfg[0], _cfg[1]), refs.conv2d, attrs=_at, grad=True,
             order=2 if _cfg[6] in ("", "groups-dilation") else 1, kind="accumulate",
             label=_cfg[6]),
        Case("conv2d_input_grad", binary(_gshape, _cfg[1]), refs.conv2d_input_grad,
             attrs={"input_hw": _cfg[0][2:], **_at}, grad=True, order=2 if _first else 1,
             kind="accumulate", label=_cfg[6]),
        Case("conv2d_weight_grad", binary(_cfg[0], _gshape), refs.conv2d_weight_grad,
             attrs={"kernel_hw": _cfg[1][2:], **_at}, grad=True, order=2 if _first else 1,
             kind="accumulate", label=_cfg[6]),
    ]

# ------------------------------------------------------------------ pooling

_POOL_CONFIGS = [
    # x shape, kernel_hw, stride, padding (t, b, l, r), dilation, ceil_mode, label
    ((1, 2, 5, 5), (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False, ""),
    ((2, 1, 7, 6), (3, 3), (2, 2), (1, 1, 1, 0), (1, 1), True, "ceil-asym-pad"),
    ((1, 2, 6, 7), (3, 2), (1, 2), (1, 0, 0, 1), (2, 1), False, "dilation"),
    ((1, 1, 4, 5), (3, 3), (3, 3), (1, 1, 1, 1), (1, 1), True, "stride-beyond"),
    ((2, 3, 4, 6), (2, 3), (2, 3), (0, 0, 0, 0), (1, 1), False, "tiled"),
]


def _pool_out(cfg: tuple) -> tuple[int, ...]:
    (n, c, h, w), k, st, pd, dl, ceil = cfg[:6]
    return (n, c) + refs._pool_geom(h, w, k, st, pd, dl, ceil)


for _pcfg in _POOL_CONFIGS:
    _xs, _k, _st, _pd, _dl, _ceil, _lab = _pcfg
    _mx = {"kernel_hw": _k, "stride": _st, "padding": _pd, "dilation": _dl, "ceil_mode": _ceil}
    CASES += [
        Case("max_pool2d", unary(distinct, _xs), refs.max_pool2d, attrs=_mx, grad=True,
             order=2 if _lab in ("", "ceil-asym-pad") else 1, label=_lab),
        Case("max_pool2d_grad", binary(_xs, _pool_out(_pcfg), distinct), refs.max_pool2d_grad,
             attrs=_mx, grad=True, order=2 if _lab == "" else 1, label=_lab),
    ]
    if _dl != (1, 1):
        continue
    for _cip in (True, False):
        _av = {"kernel_hw": _k, "stride": _st, "padding": _pd, "ceil_mode": _ceil,
               "count_include_pad": _cip}
        _l2 = _lab + ("" if _cip else "-exclude-pad")
        CASES += [
            Case("avg_pool2d", unary(shape=_xs), refs.avg_pool2d, attrs=_av, grad=True,
                 order=2 if _l2 == "" else 1, kind="accumulate", label=_l2),
            Case("avg_pool2d_grad", unary(shape=_pool_out(_pcfg)), refs.avg_pool2d_grad,
                 attrs={"input_hw": _xs[2:], **_av}, grad=True, order=2 if _l2 == "" else 1,
                 kind="accumulate", label=_l2),
        ]
CASES.append(Case("max_pool2d", lambda rng, dt: [np.array(
    [[[[1.0, np.nan, 3.0], [np.inf, 2.0, -np.inf], [-np.inf, -np.inf, -np.inf]]]], dtype=dt)],
    refs.max_pool2d, attrs={"kernel_hw": (2, 2), "stride": (1, 1), "padding": (1, 0, 1, 0),
                            "dilation": (1, 1), "ceil_mode": False}, label="special"))
CASES.append(Case("max_pool2d_grad", lambda rng, dt: [np.array(
    [[[[1.0, 1.0, np.nan], [1.0, -np.inf, -np.inf], [2.0, -np.inf, -np.inf]]]], dtype=dt),
    np.arange(1.0, 10.0, dtype=dt).reshape(1, 1, 3, 3)],
    refs.max_pool2d_grad, attrs={"kernel_hw": (2, 2), "stride": (1, 1), "padding": (1, 0, 1, 0),
                                 "dilation": (1, 1), "ceil_mode": False}, label="ties-special"))

# ------------------------------------------------------------------ reductions

_RED = [((2, 3, 4), (1,), False, ""), ((2, 3, 4), (0, 2), True, "keepdims"),
        ((2, 3), (0, 1), False, "all"), ((3,), (), False, "no-axes"),
        ((), (), True, "0d")]
for _shape, _axes, _keep, _lab in _RED:
    _at = {"axes": _axes, "keepdims": _keep}
    CASES += [
        Case("sum", unary(shape=_shape), refs.reduce_sum, attrs=_at, dtypes=NUMERIC,
             grad=True, order=2 if _lab == "" else 1, kind="accumulate", label=_lab),
        Case("max", unary(distinct, _shape), refs.reduce_max, attrs=_at, dtypes=ALL,
             grad=True, order=2 if _lab == "" else 1, label=_lab),
        Case("min", unary(distinct, _shape), refs.reduce_min, attrs=_at, dtypes=ALL,
             grad=True, order=2 if _lab == "" else 1, label=_lab),
    ]
CASES += [
    Case("sum", unary(shape=(0, 3)), refs.reduce_sum, attrs={"axes": (0,), "keepdims": False},
         dtypes=NUMERIC, grad=True, label="empty-axis"),
    Case("sum", unary(shape=(2, 0)), refs.reduce_sum, attrs={"axes": (0,), "keepdims": True},
         dtypes=NUMERIC, label="empty-kept"),
    Case("sum", lambda rng, dt: [np.array([np.iinfo(dt).max, np.iinfo(dt).max, 3], dtype=dt)],
         refs.reduce_sum, attrs={"axes": (0,), "keepdims": False}, dtypes=INTS,
         label="wraps"),
    Case("max", special_unary(), refs.reduce_max, attrs={"axes": (0,), "keepdims": False},
         dtypes=ALL, label="special"),
    Case("min", special_unary(), refs.reduce_min, attrs={"axes": (0,), "keepdims": False},
         dtypes=ALL, label="special"),
    Case("max", lambda rng, dt: [np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], dtype=dt)],
         refs.reduce_max, attrs={"axes": (1,), "keepdims": False}, grad=True, label="ties"),
]
for _name, _ref in (("argmax", refs.argmax), ("argmin", refs.argmin)):
    CASES += [
        Case(_name, unary(_small, (3, 4)), _ref, attrs={"axis": 1, "keepdims": False},
             dtypes=ALL),
        Case(_name, unary(_small, (3, 4)), _ref, attrs={"axis": 0, "keepdims": True},
             dtypes=ALL, label="keepdims"),
        Case(_name, special_unary(), _ref, attrs={"axis": 0, "keepdims": False}, dtypes=ALL,
             label="special"),
        Case(_name, lambda rng, dt: [np.array([[1, np.nan, 5, np.nan], [2, 2, 1, 1]], dtype=dt)],
             _ref, attrs={"axis": 1, "keepdims": False}, label="nan-first"),
    ]

# ------------------------------------------------------------------ shape ops

CASES += [
    Case("reshape", unary(shape=(2, 3, 2)), refs.reshape, attrs={"shape": (3, 4)}, dtypes=ALL,
         grad=True, order=2),
    Case("reshape", unary(shape=(0, 3)), refs.reshape, attrs={"shape": (3, 0, 5)}, dtypes=ALL,
         label="empty"),
    Case("reshape", unary(shape=()), refs.reshape, attrs={"shape": (1, 1)}, dtypes=ALL,
         grad=True, label="0d"),
    Case("transpose", unary(shape=(2, 3, 4)), refs.transpose, attrs={"perm": (2, 0, 1)},
         dtypes=ALL, grad=True, order=2),
    Case("transpose", unary(shape=(0, 3)), refs.transpose, attrs={"perm": (1, 0)}, dtypes=ALL,
         label="empty"),
    Case("broadcast_to", unary(shape=(3, 1)), refs.broadcast_to, attrs={"shape": (2, 3, 4)},
         dtypes=ALL, grad=True, order=2),
    Case("broadcast_to", unary(shape=()), refs.broadcast_to, attrs={"shape": (2, 0)},
         dtypes=ALL, label="to-empty"),
    Case("slice", unary(shape=(5, 6)), refs.slice_,
         attrs={"starts": (1, 0), "stops": (5, 6), "steps": (2, 3)}, dtypes=ALL, grad=True,
         order=2),
    Case("slice", unary(shape=(4, 3)), refs.slice_,
         attrs={"starts": (2, 3), "stops": (2, 3), "steps": (1, 1)}, dtypes=ALL, grad=True,
         label="empty"),
    Case("slice", unary(shape=(7,)), refs.slice_,
         attrs={"starts": (1,), "stops": (6,), "steps": (2,)}, dtypes=ALL, grad=True,
         label="step-not-dividing"),
    Case("pad", unary(shape=(2, 3)), refs.pad,
         attrs={"lo": (1, 0), "hi": (0, 2), "interior": (1, 2), "value": 0.0}, dtypes=ALL,
         grad=True, order=2),
    Case("pad", unary(shape=(0, 2)), refs.pad,
         attrs={"lo": (1, 1), "hi": (2, 0), "interior": (3, 0), "value": 1.0}, dtypes=ALL,
         label="empty"),
    Case("pad", unary(shape=(2,)), refs.pad,
         attrs={"lo": (2,), "hi": (1,), "interior": (0,), "value": -3.0}, dtypes=NUMERIC,
         grad=True, label="value"),
    *[Case("pad", unary(shape=(2,)), refs.pad,
           attrs={"lo": (1,), "hi": (1,), "interior": (1,), "value": v}, dtypes=ALL,
           label=f"value-converted-{v}") for v in (0.7, -2.5, math.nan, 1e20, -1e300)],
    Case("concat", lambda rng, dt: [values(rng, (2, 3), dt), values(rng, (2, 1), dt),
                                    values(rng, (2, 0), dt)],
         refs.concat, attrs={"axis": 1}, dtypes=ALL, grad=True, order=2),
    Case("concat", lambda rng, dt: [values(rng, (3,), dt)], refs.concat, attrs={"axis": 0},
         dtypes=ALL, grad=True, label="single"),
    Case("take", lambda rng, dt: [values(rng, (4, 3), dt), np.array([[3, -1], [0, 0]])],
         lambda x, i, axis: refs.take(x, i, axis), attrs={"axis": 0}, dtypes=ALL, grad=True,
         order=2),
    Case("take", lambda rng, dt: [values(rng, (2, 5), dt), np.array([4, 1, -5, 4],
                                                                     dtype=np.int32)],
         lambda x, i, axis: refs.take(x, i, axis), attrs={"axis": 1}, dtypes=ALL, grad=True,
         label="int32-index"),
    Case("take", lambda rng, dt: [values(rng, (3,), dt), np.array(2)],
         lambda x, i, axis: refs.take(x, i, axis), attrs={"axis": 0}, dtypes=ALL, grad=True,
         label="0d-index"),
    Case("take", lambda rng, dt: [values(rng, (0, 2), dt), np.zeros((3, 0), dtype=np.int64)],
         lambda x, i, axis: refs.take(x, i, axis), attrs={"axis": 1}, dtypes=ALL,
         label="empty"),
    Case("scatter_add", lambda rng, dt: [values(rng, (4, 2), dt), np.array([1, -1, 1]),
                                         values(rng, (3, 2), dt)],
         lambda b, i, s, axis: refs.scatter_add(b, i, s, axis), attrs={"axis": 0},
         dtypes=NUMERIC, grad=True, order=2, kind="accumulate"),
    Case("scatter_add", lambda rng, dt: [values(rng, (2, 3), dt),
                                         np.array([[0, 2], [2, 2]], dtype=np.int32),
                                         values(rng, (2, 2, 2), dt)],
         lambda b, i, s, axis: refs.scatter_add(b, i, s, axis), attrs={"axis": 1},
         dtypes=NUMERIC, grad=True, kind="accumulate", label="2d-index"),
    Case("scatter_add", lambda rng, dt: [np.full((2,), np.iinfo(dt).max, dtype=dt)
                                         if dt.kind in "iu" else values(rng, (2,), dt),
                                         np.array([0, 0]), np.ones((2,), dtype=dt)],
         lambda b, i, s, axis: refs.scatter_add(b, i, s, axis), attrs={"axis": 0},
         dtypes=NUMERIC, label="wraps"),
]

# ------------------------------------------------------------------ symbolic sizes

CASES += [
    Case("dim_value", lambda rng, dt: [], lambda value: np.array(value, dtype=np.int64),
         attrs={"value": v}, dtypes=("int64",), label=str(v))
    for v in (0, 7, 2**40)
]

# Accepted dtypes of each primitive's data operands (index and condition operands
# excluded). A dtype outside this set must be rejected by the infer rule.
# What each primitive's data operands may be (the registry's dtypes; for where, take and
# scatter_add those of x / base, the operands after the condition or index).
ACCEPTS: dict[str, tuple[str, ...]] = {
    name: tuple(d.name for d in p.dtypes or ()) for name, p in REGISTRY.items()}
ACCEPTS["where"] = ALL

# Positions of inputs that are not data operands (their dtype is fixed by the case).
INDEX_INPUTS: dict[str, tuple[int, ...]] = {"where": (0,), "take": (1,), "scatter_add": (1,)}


def cases_for(prim: str) -> list[Case]:
    return [c for c in CASES if c.prim == prim]
