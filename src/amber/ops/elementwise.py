"""Elementwise primitives: unary math, binary arithmetic with broadcasting, comparisons,
logic, ``where`` and ``cast``. Binary primitives take operands of one dtype; the
front end (``amber.functional``) promotes mixed dtypes with explicit casts first."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._dtype import DTYPES, FLOATS, NUMERIC, DType, as_dtype, bfloat16, bool_, float16
from . import _infer as I
from .registry import Aval, primitive

# ----------------------------------------------------------------------------- helpers


def unbroadcast(g: Any, shape: tuple) -> Any:
    """Sum ``g`` down to ``shape`` (the VJP of NumPy broadcasting)."""
    if tuple(g.shape) == tuple(shape):
        return g  # the common case: checked before the (per-call) import below
    from .. import functional as F

    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1
    )
    if axes:
        from .reduce import reduce_sum

        g = reduce_sum(g, axes=axes, keepdims=False)
    return F.reshape_exact(g, tuple(shape)) if tuple(g.shape) != tuple(shape) else g


def _quiet(fn: Any) -> Any:
    def kernel(*args: Any, **kw: Any) -> Any:
        with np.errstate(all="ignore"):
            return fn(*args, **kw)

    kernel.__doc__ = fn.__doc__
    return kernel


# ----------------------------------------------------------------------------- unary

@primitive("neg", infer=I.unary("neg", NUMERIC))
def neg(x: np.ndarray) -> np.ndarray:
    """-x. Integers wrap on overflow (two's complement)."""
    return np.negative(x)


@neg.def_vjp
def _(g, out, x):
    return (-g,)


@primitive("abs", infer=I.unary("abs", NUMERIC))
def abs_(x: np.ndarray) -> np.ndarray:
    """|x|. Gradient at 0 is 0."""
    return np.abs(x)


@abs_.def_vjp
def _(g, out, x):
    return (g * sign(x),)


@primitive("sign", infer=I.unary("sign", NUMERIC))
def sign(x: np.ndarray) -> np.ndarray:
    """-1, 0 or 1 by the sign of x; NaN stays NaN. Gradient is 0."""
    return np.sign(x)


@sign.def_vjp
def _(g, out, x):
    return (_zero_cotangent(g),)


def _zero_cotangent(g: Any) -> Any:
    from .. import functional as F

    return F.zeros_like(g)


@primitive("floor", infer=I.unary("floor", FLOATS))
def floor(x: np.ndarray) -> np.ndarray:
    """Largest integer <= x (as a float); NaN and inf pass through. Gradient is 0."""
    return np.floor(x)


@floor.def_vjp
def _(g, out, x):
    return (_zero_cotangent(g),)


@primitive("exp", infer=I.unary("exp", FLOATS))
@_quiet
def exp(x: np.ndarray) -> np.ndarray:
    """e**x."""
    return np.exp(x)


@exp.def_vjp
def _(g, out, x):
    return (g * out,)


@primitive("log", infer=I.unary("log", FLOATS))
@_quiet
def log(x: np.ndarray) -> np.ndarray:
    """Natural log; log(0) = -inf, log(x<0) = NaN."""
    return np.log(x)


@log.def_vjp
def _(g, out, x):
    return (g / x,)


@primitive("sqrt", infer=I.unary("sqrt", FLOATS))
@_quiet
def sqrt(x: np.ndarray) -> np.ndarray:
    """Square root; NaN for x < 0."""
    return np.sqrt(x)


@sqrt.def_vjp
def _(g, out, x):
    return (g / (out * 2),)


@primitive("tanh", infer=I.unary("tanh", FLOATS))
def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(x)


@tanh.def_vjp
def _(g, out, x):
    return (g * (1 - out * out),)


@primitive("sigmoid", infer=I.unary("sigmoid", FLOATS))
@_quiet
def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e**-x), computed without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


@sigmoid.def_vjp
def _(g, out, x):
    return (g * out * (1 - out),)


@primitive("sin", infer=I.unary("sin", FLOATS))
def sin(x: np.ndarray) -> np.ndarray:
    """Sine (radians)."""
    return np.sin(x)


@sin.def_vjp
def _(g, out, x):
    return (g * cos(x),)


@primitive("cos", infer=I.unary("cos", FLOATS))
def cos(x: np.ndarray) -> np.ndarray:
    """Cosine (radians)."""
    return np.cos(x)


@cos.def_vjp
def _(g, out, x):
    return (-(g * sin(x)),)


_TAYLOR_ERF = tuple((-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(28))


@primitive("erf", infer=I.unary("erf", FLOATS))
@_quiet
def erf(x: np.ndarray) -> np.ndarray:
    """Gauss error function (C99 ``erf`` semantics)."""
    # In float64, within 2 ULP of libm's erf: for |x| < 1 its Taylor series (alternating,
    # mild cancellation), else 1 - erfc(x) with erfc from its continued fraction
    # e^-x^2 / (sqrt(pi) (x + (1/2) / (x + (2/2) / (x + ...)))), 200 levels deep.
    a = np.abs(np.asarray(x, dtype=np.float64))
    out = np.empty_like(a)
    small = a < 1.0
    s = a[small]
    z = s * s
    t = np.full_like(s, _TAYLOR_ERF[-1])
    for c in _TAYLOR_ERF[-2::-1]:
        t = t * z + c
    out[small] = (2.0 / math.sqrt(math.pi)) * s * t
    big = ~small
    b = np.minimum(a[big], 30.0)  # erf is 1 in double well before 30; NaN stays NaN
    k = b.copy()
    for n in range(200, 0, -1):
        k = b + (n / 2.0) / k
    out[big] = 1.0 - np.exp(-b * b) / (math.sqrt(math.pi) * k)
    return np.copysign(out, x).astype(x.dtype, copy=False)


@erf.def_vjp
def _(g, out, x):
    return (g * exp(-(x * x)) * (2.0 / math.sqrt(math.pi)),)


@primitive("logical_not", infer=I.unary("logical_not", (bool_,)))
def logical_not(x: np.ndarray) -> np.ndarray:
    """Boolean negation."""
    return np.logical_not(x)


# ----------------------------------------------------------------------------- binary

@primitive("add", infer=I.binary("add", NUMERIC), n_inputs=2)
def add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x + y with broadcasting; integers wrap."""
    return np.add(x, y)


@add.def_vjp
def _(g, out, x, y):
    return unbroadcast(g, x.shape), unbroadcast(g, y.shape)


@primitive("sub", infer=I.binary("sub", NUMERIC), n_inputs=2)
def sub(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x - y with broadcasting; integers wrap."""
    return np.subtract(x, y)


@sub.def_vjp
def _(g, out, x, y):
    return unbroadcast(g, x.shape), unbroadcast(-g, y.shape)


@primitive("mul", infer=I.binary("mul", NUMERIC), n_inputs=2)
def mul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x * y with broadcasting; integers wrap."""
    return np.multiply(x, y)


@mul.def_vjp
def _(g, out, x, y):
    # NOTE: a cotangent nobody needs (input without requires_grad) is not computed.
    return (unbroadcast(g * y, x.shape) if x.requires_grad else None,
            unbroadcast(g * x, y.shape) if y.requires_grad else None)


def _int_floor_div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    shape = np.broadcast_shapes(x.shape, y.shape)
    out = np.zeros(shape, dtype=x.dtype)
    # NOTE: INT_MIN // -1 wraps to INT_MIN (as in two's complement), divide by zero gives 0.
    info = np.iinfo(x.dtype)
    safe = (y != 0) & ~((x == info.min) & (y == -1))
    np.floor_divide(x, y, out=out, where=safe)
    wrap = (x == info.min) & (y == -1)
    if np.any(wrap):
        out = np.where(wrap, x, out)
    return out


@primitive("div", infer=I.binary("div", NUMERIC), n_inputs=2)
@_quiet
def div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Floats: IEEE true division. Integers: floor division (rounds toward -inf),
    x // 0 = 0, INT_MIN // -1 = INT_MIN."""
    if x.dtype.kind == "f":
        return np.true_divide(x, y)
    return _int_floor_div(x, y)


@div.def_vjp
def _(g, out, x, y):
    if not x.dtype.is_floating:
        return None, None
    gx = g / y
    return (unbroadcast(gx, x.shape) if x.requires_grad else None,
            unbroadcast(-(gx * out), y.shape) if y.requires_grad else None)


@primitive("pow", infer=I.binary("pow", FLOATS), n_inputs=2)
@_quiet
def pow_(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x ** y (C99 ``pow`` semantics: pow(x, 0) = 1 even for NaN x; NaN for x < 0 with
    a non-integer y)."""
    return np.power(x, y)


@pow_.def_vjp
def _(g, out, x, y):
    from .. import functional as F

    gx = unbroadcast(g * y * pow_(x, y - 1), x.shape) if x.requires_grad else None
    if not y.requires_grad:
        return gx, None
    # d/dy x**y = x**y log x; defined as 0 where x == 0 (the limit for y > 0).
    safe_log = log(F.where(x == 0, F.ones_like(x), x))
    gy = g * out * safe_log
    return gx, unbroadcast(gy, y.shape)


def _minmax_vjp(g, out, x, y):
    from .. import functional as F

    # Ties split the gradient evenly, as torch.maximum does.
    wx = F.where(x == out, F.ones_like(out), F.zeros_like(out))
    wy = F.where(y == out, F.ones_like(out), F.zeros_like(out))
    total = wx + wy
    total = F.where(total == 0, F.ones_like(total), total)
    return (unbroadcast(g * wx / total, x.shape) if x.requires_grad else None,
            unbroadcast(g * wy / total, y.shape) if y.requires_grad else None)


@primitive("maximum", infer=I.binary("maximum", DTYPES), n_inputs=2)
def maximum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise max; NaN if either operand is NaN."""
    return np.maximum(x, y)


@primitive("minimum", infer=I.binary("minimum", DTYPES), n_inputs=2)
def minimum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise min; NaN if either operand is NaN."""
    return np.minimum(x, y)


maximum.def_vjp(_minmax_vjp)
minimum.def_vjp(_minmax_vjp)


def _comparison(name: str, ufunc: Any, doc: str) -> Any:
    def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return ufunc(x, y)

    kernel.__doc__ = doc
    return primitive(name, infer=I.compare(name, DTYPES), n_inputs=2)(kernel)


eq = _comparison("eq", np.equal, "x == y (bool); NaN compares unequal to everything.")
ne = _comparison("ne", np.not_equal, "x != y (bool); true where either is NaN.")
lt = _comparison("lt", np.less, "x < y (bool); false where either is NaN.")
le = _comparison("le", np.less_equal, "x <= y (bool); false where either is NaN.")
gt = _comparison("gt", np.greater, "x > y (bool); false where either is NaN.")
ge = _comparison("ge", np.greater_equal, "x >= y (bool); false where either is NaN.")


@primitive("logical_and", infer=I.binary("logical_and", (bool_,)), n_inputs=2)
def logical_and(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean and with broadcasting."""
    return np.logical_and(x, y)


@primitive("logical_or", infer=I.binary("logical_or", (bool_,)), n_inputs=2)
def logical_or(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean or with broadcasting."""
    return np.logical_or(x, y)


# ----------------------------------------------------------------------------- where, cast

def _where_infer(c: Aval, x: Aval, y: Aval) -> Aval:
    I.check_dtypes("where", (bool_,), c)
    dt = I.same_dtype("where", x, y)
    return Aval(I.broadcast_shapes("where", c.shape, x.shape, y.shape), dt)


@primitive("where", infer=_where_infer, n_inputs=3)
def where(c: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x where c else y, all three broadcast together."""
    return np.where(c, x, y)


@where.def_vjp
def _(g, out, c, x, y):
    from .. import functional as F

    z = F.zeros_like(g)
    return (None, unbroadcast(F.where(c, g, z), x.shape) if x.requires_grad else None,
            unbroadcast(F.where(c, z, g), y.shape) if y.requires_grad else None)


_NARROW_FLOATS = (float16, bfloat16)
_WIDE_VIA_F32 = frozenset(d.np for d in _NARROW_FLOATS)


def _cast_infer(x: Aval, *, dtype: str) -> Aval:
    return Aval(x.shape, as_dtype(dtype))


@primitive("cast", infer=_cast_infer, attrs={"dtype": "dtype"}, any_dtype=True)
@_quiet
def cast(x: np.ndarray, *, dtype: str) -> np.ndarray:
    """Convert to ``dtype``. float -> int truncates toward zero, NaN becomes 0 and values
    beyond the target range saturate; anything -> bool is ``x != 0`` (NaN is true);
    bool -> number is 0 or 1."""
    target: DType = as_dtype(dtype)
    # NOTE: float16/bfloat16 go through float32 both ways (exact from them; to them one
    # more rounding for float64/int32/int64 sources, as PyTorch and ml_dtypes do)
    if x.dtype in _WIDE_VIA_F32 or (target in _NARROW_FLOATS and x.dtype != np.bool_):
        x = x.astype(np.float32)
    if x.dtype.kind == "f" and target.is_integer:
        info = np.iinfo(target.np)  # type: ignore[type-var]
        t = np.trunc(x)
        hi, lo = t >= float(info.max), t <= float(info.min)
        inside = ~(hi | lo | np.isnan(t))
        out = np.zeros(x.shape, dtype=target.np)
        out[inside] = t[inside].astype(target.np)
        out[hi] = info.max
        out[lo] = info.min
        return out
    return x.astype(target.np)


@cast.def_vjp
def _(g, out, x, *, dtype):
    if not (x.dtype.is_floating and as_dtype(dtype).is_floating):
        return (None,)
    return (cast(g, dtype=x.dtype.name),)
