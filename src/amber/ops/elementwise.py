"""Elementwise primitives: unary math, binary arithmetic with broadcasting, comparisons,
logic, ``where`` and ``cast``. Binary primitives take operands of one dtype; the
front end (``amber.functional``) promotes mixed dtypes with explicit casts first."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from .._dtype import BOOLS, DTYPES, FLOATS, NUMERIC, DType, as_dtype, bfloat16, float16
from . import _infer as I
from . import registry as _registry
from .registry import Aval, Primitive, primitive

# ----------------------------------------------------------------------------- helpers


def unbroadcast(g: Any, shape: tuple) -> Any:
    """Sum ``g`` down to ``shape`` (the VJP of NumPy broadcasting)."""
    if tuple(g.shape) == tuple(shape):
        return g  # the common case: checked before the (per-call) import below
    from .. import functional as _F

    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1
    )
    if axes:
        from .reduce import reduce_sum

        g = reduce_sum(g, axes=axes, keepdims=False)
    return _F.reshape_exact(g, tuple(shape)) if tuple(g.shape) != tuple(shape) else g


def _quiet(fn: Any) -> Any:
    @functools.wraps(fn)
    def kernel(*args: Any, **kw: Any) -> Any:
        with np.errstate(all="ignore"):
            return fn(*args, **kw)

    return kernel


# ----------------------------------------------------------------------------- unary

def unary(name: str, dtypes: tuple[DType, ...], fn: Any, doc: str, *, vjp: Any = None,
          accuracy: str = "exact", onnx: str | None = None, quiet: bool = False,
          since: int = 1) -> Primitive:
    """Register the unary elementwise primitive ``name``: ``fn`` (a NumPy function of one
    array) on operands of ``dtypes``; ``vjp(g, out, x) -> (cotangent,)``; ``quiet``
    silences NumPy's floating-point warnings. The rest of the schema as in ``primitive``."""

    # NOTE: fn itself is the kernel (no wrapper call: eager ops pay for every call).
    p = primitive(name, infer=I.unary(name, dtypes), dtypes=dtypes, accuracy=accuracy,
                  onnx=onnx, since=since)(_quiet(fn) if quiet else fn)
    p.doc = doc
    if vjp is not None:
        p.def_vjp(vjp)
    return p


def _zero_cotangent(g: Any) -> Any:
    from .. import functional as _F

    return _F.zeros_like(g)


def _zero_vjp(g: Any, out: Any, x: Any) -> Any:
    return (_zero_cotangent(g),)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


_TAYLOR_ERF = tuple((-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(28))


def _erf(x: np.ndarray) -> np.ndarray:
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


# One statement per primitive: name, dtypes, NumPy kernel, semantics, VJP, schema.
neg = unary("neg", NUMERIC, np.negative, "-x. Integers wrap on overflow (two's complement).",
            vjp=lambda g, out, x: (-g,), onnx="Neg")
abs_ = unary("abs", NUMERIC, np.abs, "|x|. Gradient at 0 is 0.",
             vjp=lambda g, out, x: (g * sign(x),), onnx="Abs")
sign: Primitive = unary("sign", NUMERIC, np.sign, "-1, 0 or 1 by the sign of x; NaN stays NaN. "
             "Gradient is 0.", vjp=_zero_vjp, onnx="Sign")
floor = unary("floor", FLOATS, np.floor, "Largest integer <= x (as a float); NaN and inf "
              "pass through. Gradient is 0.", vjp=_zero_vjp, onnx="Floor")
exp = unary("exp", FLOATS, np.exp, "e**x.", vjp=lambda g, out, x: (g * out,),
            accuracy="ulp4", onnx="Exp", quiet=True)
log = unary("log", FLOATS, np.log, "Natural log; log(0) = -inf, log(x<0) = NaN.",
            vjp=lambda g, out, x: (g / x,), accuracy="ulp4", onnx="Log", quiet=True)
sqrt = unary("sqrt", FLOATS, np.sqrt, "Square root; NaN for x < 0.",
             vjp=lambda g, out, x: (g / (out * 2),), onnx="Sqrt", quiet=True)
tanh = unary("tanh", FLOATS, np.tanh, "Hyperbolic tangent.",
             vjp=lambda g, out, x: (g * (1 - out * out),), accuracy="ulp4")
sigmoid = unary("sigmoid", FLOATS, _sigmoid, "1 / (1 + e**-x), computed without overflow "
                "for large |x|.", vjp=lambda g, out, x: (g * out * (1 - out),),
                accuracy="ulp4", quiet=True)
sin = unary("sin", FLOATS, np.sin, "Sine (radians).", vjp=lambda g, out, x: (g * cos(x),),
            accuracy="ulp4", onnx="Sin")
cos: Primitive = unary("cos", FLOATS, np.cos, "Cosine (radians).",
            vjp=lambda g, out, x: (-(g * sin(x)),), accuracy="ulp4", onnx="Cos")
erf = unary("erf", FLOATS, _erf, "Gauss error function (C99 ``erf`` semantics).",
            vjp=lambda g, out, x: (g * exp(-(x * x)) * (2.0 / math.sqrt(math.pi)),),
            accuracy="ulp4", onnx="Erf", quiet=True)
logical_not = unary("logical_not", BOOLS, np.logical_not, "Boolean negation.",
                    onnx="Not")
round_ = unary("round", FLOATS, np.round, "Nearest integer (as a float), halves to even; "
               "NaN, inf and signed zeros pass through. Gradient is 0.", vjp=_zero_vjp,
               onnx="Round", since=5)


# ----------------------------------------------------------------------------- binary

def binary(name: str, dtypes: tuple[DType, ...], *, compare: bool = False,
           **schema: Any) -> Any:
    """Decorator registering a broadcasting binary primitive on operands of ``dtypes``
    (``compare``: its result is bool); ``schema`` as in ``primitive``."""
    rule = I.compare(name, dtypes) if compare else I.binary(name, dtypes)
    return primitive(name, infer=rule, n_inputs=2, dtypes=dtypes, **schema)


@binary("add", NUMERIC, onnx="Add")
def add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x + y with broadcasting; integers wrap."""
    return np.add(x, y)


@add.def_vjp
def _(g, out, x, y):
    return unbroadcast(g, x.shape), unbroadcast(g, y.shape)


@binary("sub", NUMERIC, onnx="Sub")
def sub(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x - y with broadcasting; integers wrap."""
    return np.subtract(x, y)


@sub.def_vjp
def _(g, out, x, y):
    return unbroadcast(g, x.shape), unbroadcast(-g, y.shape)


@binary("mul", NUMERIC, onnx="Mul")
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


@binary("div", NUMERIC)
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


@binary("pow", FLOATS, accuracy="ulp4", onnx="Pow")
@_quiet
def pow_(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x ** y (C99 ``pow`` semantics: pow(x, 0) = 1 even for NaN x; NaN for x < 0 with
    a non-integer y)."""
    return np.power(x, y)


@pow_.def_vjp
def _(g, out, x, y):
    from .. import functional as _F

    gx = unbroadcast(g * y * pow_(x, y - 1), x.shape) if x.requires_grad else None
    if not y.requires_grad:
        return gx, None
    # d/dy x**y = x**y log x; defined as 0 where x == 0 (the limit for y > 0).
    safe_log = log(_F.where(x == 0, _F.ones_like(x), x))
    gy = g * out * safe_log
    return gx, unbroadcast(gy, y.shape)


def _minmax_vjp(g, out, x, y):
    from .. import functional as _F

    # Ties split the gradient evenly, as torch.maximum does.
    wx = _F.where(x == out, _F.ones_like(out), _F.zeros_like(out))
    wy = _F.where(y == out, _F.ones_like(out), _F.zeros_like(out))
    total = wx + wy
    total = _F.where(total == 0, _F.ones_like(total), total)
    return (unbroadcast(g * wx / total, x.shape) if x.requires_grad else None,
            unbroadcast(g * wy / total, y.shape) if y.requires_grad else None)


@binary("maximum", DTYPES)
def maximum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise max; NaN if either operand is NaN."""
    return np.maximum(x, y)


@binary("minimum", DTYPES)
def minimum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Elementwise min; NaN if either operand is NaN."""
    return np.minimum(x, y)


maximum.def_vjp(_minmax_vjp)
minimum.def_vjp(_minmax_vjp)


def _comparison(name: str, ufunc: Any, doc: str) -> Any:
    def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return ufunc(x, y)

    kernel.__doc__ = doc
    return binary(name, DTYPES, compare=True, onnx="Equal" if name == "eq" else None)(kernel)


eq = _comparison("eq", np.equal, "x == y (bool); NaN compares unequal to everything.")
ne = _comparison("ne", np.not_equal, "x != y (bool); true where either is NaN.")
lt = _comparison("lt", np.less, "x < y (bool); false where either is NaN.")
le = _comparison("le", np.less_equal, "x <= y (bool); false where either is NaN.")
gt = _comparison("gt", np.greater, "x > y (bool); false where either is NaN.")
ge = _comparison("ge", np.greater_equal, "x >= y (bool); false where either is NaN.")


@binary("logical_and", BOOLS, onnx="And")
def logical_and(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean and with broadcasting."""
    return np.logical_and(x, y)


@binary("logical_or", BOOLS, onnx="Or")
def logical_or(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean or with broadcasting."""
    return np.logical_or(x, y)


# ----------------------------------------------------------------------------- where, cast

def _where_infer(c: Aval, x: Aval, y: Aval) -> Aval:
    I.check_declared("where", c)
    dt = I.same_dtype("where", x, y)
    return Aval(I.broadcast_shapes("where", c.shape, x.shape, y.shape), dt)


@primitive("where", infer=_where_infer, n_inputs=3, dtypes=BOOLS,
           doc_dtypes="cond bool; x, y any", doc_out="x")
def where(cond: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x where cond else y, all three broadcast together."""
    return np.where(cond, x, y)


@where.def_vjp
def _(g, out, c, x, y):
    from .. import functional as _F

    z = _F.scalar(0, g.dtype)  # broadcasts: the shapes of where(c, g, zeros_like(g))
    return (None, unbroadcast(where(c, g, z), x.shape) if x.requires_grad else None,
            unbroadcast(where(c, z, g), y.shape) if y.requires_grad else None)


_NARROW_FLOATS = (float16, bfloat16)
_WIDE_VIA_F32 = frozenset(d.np for d in _NARROW_FLOATS)


def _cast_infer(x: Aval, *, dtype: str) -> Aval:
    return Aval(x.shape, as_dtype(dtype))


_RELU_ZEROS: dict[Any, Any] = {}  # NumPy float dtype -> relu's 0-d zero (never changed)
_RELU_WHERE_MIN = 1024  # elements from which where(x <= 0, 0, x) runs as the where kernel


def relu_eager(x: Any) -> Any:
    """relu of a concrete float tensor: its composition ``where(le(x, 0), 0, x)`` (see
    ``amber.relu``) run in one step, with the same bits and the same tape (one ``where``
    node), without dispatching each primitive."""
    R = _registry
    d = x._data
    zero = _RELU_ZEROS.get(d.dtype)
    if zero is None:
        zero = R._wrap(np.zeros((), d.dtype))
        _RELU_ZEROS[d.dtype] = zero
    z: np.ndarray = zero._data  # type: ignore[assignment]
    # (le of two floats is exact in any float dtype: NumPy's comparison is le's bits)
    mask = None
    if d.size >= _RELU_WHERE_MIN:  # the where kernel itself (libamber's from this size)
        mask = np.less_equal(d, z)
        m = where.eager(mask, z, d)
    else:
        # NOTE: max(x, 0) + 0 has where(x <= 0, 0, x)'s bits (the + 0 turns max's -0 into
        # +0, NaN stays x's NaN) and costs a third of np.where's call on a small tensor.
        m = np.maximum(d, z)
        if type(m) is np.ndarray:
            np.add(m, z, out=m)
        else:  # a 0-d input gives a NumPy scalar
            m = np.asarray(m + z)
    out = R._wrap(m)
    if x.requires_grad and R._grad_state.enabled:
        out.requires_grad = True
        if mask is None:
            mask = np.less_equal(d, z)
        out._node = R.Node(where, (R._wrap(mask), zero, x), {}, out)
    return out


@primitive("cast", infer=_cast_infer, attrs={"dtype": "dtype"}, dtypes=DTYPES,
           doc_out="`dtype`", any_dtype=True)
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
