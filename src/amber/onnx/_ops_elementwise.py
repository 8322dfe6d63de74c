"""ONNX elementwise operators (arithmetic, comparisons, logic, activations, casts) as
amber primitives."""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from .. import _dtype as D
from .. import functional as _F
from ..ops import elementwise as E
from ..ops import shape as S
from ..tensor import Tensor
from ._graph import ONNX_DTYPES, Ctx, Sym, as_object, dtype_name, op, sym_op, sym_or_tensor


def sc(v: float, dt: D.DType) -> Tensor:
    """A 0-d constant of dtype ``dt``."""
    return Tensor._wrap(np.array(v, dtype=dt.np))


def need(c: Ctx, x: Tensor, allowed: tuple, what: str = "input") -> None:
    if x.dtype not in allowed:
        raise c.unsupported(f"{what} of dtype {x.dtype.name} is not supported (accepted: "
                            f"{', '.join(d.name for d in allowed)})")


# ----------------------------------------------------------------------------- arithmetic


def _trunc_div(a: Tensor, b: Tensor) -> Tensor:
    """Integer division rounding toward zero (ONNX Div/Mod on integers)."""
    q = E.div(a, b)  # floor division; x div 0 = 0
    r = E.sub(a, E.mul(q, b))
    zero = sc(0, a.dtype)
    fix = E.logical_and(E.ne(r, zero), E.ne(E.lt(a, zero), E.lt(b, zero)))
    return E.where(fix, E.add(q, sc(1, a.dtype)), q)


@op("Add", notes="integers wrap")
def _add(c: Ctx) -> Tensor:
    return E.add(c.t(0), c.t(1))


@op("Sub", notes="integers wrap")
def _sub(c: Ctx) -> Tensor:
    return E.sub(c.t(0), c.t(1))


@op("Mul", notes="integers wrap")
def _mul(c: Ctx) -> Tensor:
    return E.mul(c.t(0), c.t(1))


@op("Div", notes="integers truncate toward zero; x / 0 = 0 for integers")
def _div(c: Ctx) -> Tensor:
    a, b = c.t(0), c.t(1)
    if a.dtype.is_integer:
        return _trunc_div(a, b)
    need(c, a, D.FLOATS)
    return E.div(a, b)


@op("Mod", notes="integers (fmod 0 and 1); float Mod is refused (no exact fmod)")
def _mod(c: Ctx) -> Tensor:
    a, b = c.t(0), c.t(1)
    if not a.dtype.is_integer:
        raise c.unsupported(f"Mod on {a.dtype.name} is not supported: amber has no exact "
                            f"floating-point remainder")
    q = _trunc_div(a, b) if c.a("fmod", 0) else E.div(a, b)
    r = E.sub(a, E.mul(q, b))
    return E.where(E.eq(b, sc(0, a.dtype)), a, r)


_SYM_BIN = {"Add": operator.add, "Sub": operator.sub, "Mul": operator.mul,
            "Div": operator.floordiv}


@sym_op("Add", "Sub", "Mul", "Div")
def _sym_arith(c: Ctx) -> Any:
    a, b = as_object(c.v(0)), as_object(c.v(1))  # type: ignore[arg-type]
    fn = _SYM_BIN[c.node.op_type]
    if c.node.op_type == "Div":
        for x in list(a.flat) + list(b.flat):
            if not isinstance(x, int) and not hasattr(x, "symbols"):
                return None
        if any(isinstance(v, int) and v <= 0 for v in b.flat):
            return None  # floor and truncation differ for negative divisors
        if any(not isinstance(v, int) for v in b.flat):
            return None
    out = np.frompyfunc(fn, 2, 1)(a, b)
    return sym_or_tensor(np.asarray(out, dtype=object))


@op("Pow", notes="float base: the exponent cast to the base's dtype; integer base: exact "
                 "(wrapping) powers for integer exponents, float exponents through float64")
def _pow(c: Ctx) -> Tensor:
    a, b = c.t(0), c.t(1)
    if a.dtype.is_floating:
        return E.pow_(a, _F.cast(b, a.dtype))
    need(c, a, (D.int32, D.int64))
    if b.dtype.is_floating:  # as the reference: the float64 power, truncated
        return _F.cast(E.pow_(_F.cast(a, D.float64), _F.cast(b, D.float64)), a.dtype)
    return _int_pow(a, _F.cast(b, D.int64))


def _int_pow(base: Tensor, e: Tensor) -> Tensor:
    """base ** e in base's integer dtype (wrapping), by squaring over e's 63 bits; a
    negative e gives the truncated true power (0 unless |base| is 1)."""
    dt = base.dtype
    one, zero = sc(1, dt), sc(0, dt)
    bits = E.where(E.lt(e, sc(0, D.int64)), E.neg(e), e)
    result = S.broadcast_to(one, shape=tuple(E.mul(base, _F.cast(bits, dt)).shape))
    power = base
    for _ in range(63):
        odd = E.eq(E.sub(bits, E.mul(E.div(bits, sc(2, D.int64)), sc(2, D.int64))),
                   sc(1, D.int64))
        result = E.where(odd, E.mul(result, power), result)
        power = E.mul(power, power)
        bits = E.div(bits, sc(2, D.int64))
    negative = E.lt(e, sc(0, D.int64))
    inverse = E.where(E.eq(base, one), one, E.where(E.eq(base, E.neg(one)), result, zero))
    return E.where(negative, inverse, result)


def _variadic(prim: Any) -> Any:
    def fn(c: Ctx) -> Tensor:
        xs = c.ts()
        out = xs[0]
        for x in xs[1:]:
            out = prim(out, x)
        return out
    return fn


op("Max", notes="NaN propagates")(_variadic(E.maximum))
op("Min", notes="NaN propagates")(_variadic(E.minimum))
op("Sum")(_variadic(E.add))


@sym_op("Max", "Min")
def _sym_minmax(c: Ctx) -> Any:
    vals = [as_object(c.v(i)) for i in range(c.n_in)]  # type: ignore[arg-type]
    fn = max if c.node.op_type == "Max" else min
    out = vals[0]
    for v in vals[1:]:
        out = np.frompyfunc(lambda x, y: fn(x, y), 2, 1)(out, v)
    return sym_or_tensor(np.asarray(out, dtype=object))


@op("Mean")
def _mean(c: Ctx) -> Tensor:
    xs = c.ts()
    need(c, xs[0], D.FLOATS)
    return E.div(_variadic(E.add)(c), sc(len(xs), xs[0].dtype))


# ----------------------------------------------------------------------------- comparisons


for _name, _prim in [("Equal", E.eq), ("Less", E.lt), ("Greater", E.gt),
                     ("LessOrEqual", E.le), ("GreaterOrEqual", E.ge)]:
    op(_name)(lambda c, _p=_prim: _p(c.t(0), c.t(1)))


@sym_op("Equal")
def _sym_equal(c: Ctx) -> Any:
    a, b = as_object(c.v(0)), as_object(c.v(1))  # type: ignore[arg-type]
    out = np.frompyfunc(lambda x, y: bool(x == y), 2, 1)(a, b)
    return Tensor._wrap(np.asarray(out, dtype=np.bool_).reshape(np.broadcast_shapes(
        a.shape, b.shape)))


@op("And")
def _and(c: Ctx) -> Tensor:
    return E.logical_and(c.t(0), c.t(1))


@op("Or")
def _or(c: Ctx) -> Tensor:
    return E.logical_or(c.t(0), c.t(1))


@op("Xor")
def _xor(c: Ctx) -> Tensor:
    return E.ne(c.t(0), c.t(1))


@op("Not")
def _not(c: Ctx) -> Tensor:
    x = c.t(0)
    v = x._value
    node = getattr(v, "producer", None)
    if node is not None and node.op == "eq":  # Not(Equal(a, b)), as exporters write ne
        from ..capture.trace import make_tracer

        return E.ne(*(make_tracer(i) for i in node.inputs))
    return E.logical_not(x)


@op("Where")
def _where(c: Ctx) -> Tensor:
    return E.where(c.t(0), c.t(1), c.t(2))


@sym_op("Where")
def _sym_where(c: Ctx) -> Any:
    cond = c.t(0)
    if cond._data is None:
        return None
    a, b = as_object(c.v(1)), as_object(c.v(2))  # type: ignore[arg-type]
    return sym_or_tensor(np.where(cond._data, a, b))


@op("IsNaN")
def _isnan(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return E.ne(x, x)


@op("IsInf")
def _isinf(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    pos, neg = c.a("detect_positive", 1), c.a("detect_negative", 1)
    out = E.eq(x, sc(math.inf, x.dtype)) if pos else E.ne(x, x)
    if not pos:
        out = E.logical_and(out, E.eq(x, x))  # all false
    if neg:
        out = E.logical_or(out, E.eq(x, sc(-math.inf, x.dtype)))
    return out


# ----------------------------------------------------------------------------- unary math


def _float_unary(prim: Any) -> Any:
    def fn(c: Ctx) -> Tensor:
        x = c.t(0)
        need(c, x, D.FLOATS)
        return prim(x)
    return fn


for _name, _prim in [("Exp", E.exp), ("Log", E.log), ("Sqrt", E.sqrt), ("Tanh", E.tanh),
                     ("Sigmoid", E.sigmoid), ("Sin", E.sin), ("Cos", E.cos), ("Erf", E.erf),
                     ("Floor", E.floor)]:
    op(_name)(_float_unary(_prim))


@op("Abs")
def _abs(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.NUMERIC)
    return E.abs_(x)


@op("Neg")
def _neg(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.NUMERIC)
    return E.neg(x)


@sym_op("Neg")
def _sym_neg(c: Ctx) -> Any:
    return sym_or_tensor(-as_object(c.v(0)))  # type: ignore[arg-type]


@op("Sign")
def _sign(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.NUMERIC)
    return E.sign(x)


@op("Ceil")
def _ceil(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return E.neg(E.floor(E.neg(x)))


@op("Round", since=11, notes="half to even")
def _round(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    dt = x.dtype
    f = E.floor(x)
    d = E.sub(x, f)
    half = sc(0.5, dt)
    f1 = E.add(f, sc(1, dt))
    odd = E.ne(E.sub(f, E.mul(E.floor(E.mul(f, half)), sc(2, dt))), sc(0, dt))
    tie = E.where(odd, f1, f)
    return E.where(E.lt(d, half), f, E.where(E.gt(d, half), f1, tie))


@op("Reciprocal")
def _reciprocal(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return E.div(sc(1, x.dtype), x)


@op("Tan")
def _tan(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return E.div(E.sin(x), E.cos(x))


@op("Sinh")
def _sinh(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return E.mul(E.sub(E.exp(x), E.exp(E.neg(x))), sc(0.5, x.dtype))


@op("Cosh")
def _cosh(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return E.mul(E.add(E.exp(x), E.exp(E.neg(x))), sc(0.5, x.dtype))


@op("Asinh")
def _asinh(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    a = E.abs_(x)
    r = E.log(E.add(a, E.sqrt(E.add(E.mul(a, a), sc(1, x.dtype)))))
    return E.where(E.lt(x, sc(0, x.dtype)), E.neg(r), r)


@op("Acosh")
def _acosh(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return E.log(E.add(x, E.sqrt(E.sub(E.mul(x, x), sc(1, x.dtype)))))


@op("Atanh")
def _atanh(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    one = sc(1, x.dtype)
    return E.mul(E.log(E.div(E.add(one, x), E.sub(one, x))), sc(0.5, x.dtype))


# ----------------------------------------------------------------------------- activations


@op("Relu")
def _relu(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.NUMERIC)
    zero = sc(0, x.dtype)
    return E.where(E.lt(x, zero), zero, x)


@op("LeakyRelu")
def _leaky(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return E.where(E.lt(x, sc(0, x.dtype)), E.mul(x, sc(c.a("alpha", 0.01), x.dtype)), x)


@op("PRelu")
def _prelu(c: Ctx) -> Tensor:
    x, s = c.t(0), c.t(1)
    need(c, x, D.FLOATS)
    if c.opset < 7 and s.ndim == 1 and x.ndim > 2 and s.shape[0] == x.shape[1]:
        s = S.reshape(s, shape=(s.shape[0],) + (1,) * (x.ndim - 2))  # legacy channel slope
    return E.where(E.lt(x, sc(0, x.dtype)), E.mul(x, s), x)


def _expm1ish(x: Tensor) -> Tensor:
    return E.sub(E.exp(x), sc(1, x.dtype))


@op("Elu")
def _elu(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    neg = E.mul(_expm1ish(x), sc(c.a("alpha", 1.0), x.dtype))
    return E.where(E.lt(x, sc(0, x.dtype)), neg, x)


@op("Selu")
def _selu(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    alpha = c.a("alpha", 1.67326319217681884765625)
    gamma = c.a("gamma", 1.05070102214813232421875)
    neg = E.mul(_expm1ish(x), sc(alpha, x.dtype))
    return E.mul(E.where(E.le(x, sc(0, x.dtype)), neg, x), sc(gamma, x.dtype))


@op("Celu", since=12)
def _celu(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    alpha = sc(c.a("alpha", 1.0), x.dtype)
    neg = E.mul(_expm1ish(E.div(x, alpha)), alpha)
    zero = sc(0, x.dtype)
    return E.add(E.maximum(x, zero), E.minimum(neg, zero))


@op("ThresholdedRelu", since=10)
def _thresholded(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return E.where(E.gt(x, sc(c.a("alpha", 1.0), x.dtype)), x, sc(0, x.dtype))


@op("HardSigmoid")
def _hardsigmoid(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    y = E.add(E.mul(x, sc(c.a("alpha", 0.2), x.dtype)), sc(c.a("beta", 0.5), x.dtype))
    return E.minimum(E.maximum(y, sc(0, x.dtype)), sc(1, x.dtype))


@op("HardSwish", since=14)
def _hardswish(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    y = E.add(E.mul(x, sc(1 / 6, x.dtype)), sc(0.5, x.dtype))
    return E.mul(x, E.minimum(E.maximum(y, sc(0, x.dtype)), sc(1, x.dtype)))


def _softplus(x: Tensor) -> Tensor:
    # log(1 + e^x) = max(x, 0) + log(1 + e^-|x|), which never overflows
    return E.add(E.maximum(x, sc(0, x.dtype)),
                 E.log(E.add(sc(1, x.dtype), E.exp(E.neg(E.abs_(x))))))


@op("Softplus")
def _softplus_op(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return _softplus(x)


@op("Softsign")
def _softsign(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return E.div(x, E.add(sc(1, x.dtype), E.abs_(x)))


@op("Mish", since=18)
def _mish(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return E.mul(x, E.tanh(_softplus(x)))


@op("Gelu", since=20, notes="approximate 'none' and 'tanh'")
def _gelu(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    dt = x.dtype
    if c.a("approximate", "none") == "tanh":
        inner = E.mul(sc(math.sqrt(2 / math.pi), dt),
                      E.add(x, E.mul(sc(0.044715, dt), E.mul(x, E.mul(x, x)))))
        return E.mul(E.mul(sc(0.5, dt), x), E.add(sc(1, dt), E.tanh(inner)))
    return E.mul(E.mul(sc(0.5, dt), x),
                 E.add(sc(1, dt), E.erf(E.mul(x, sc(1 / math.sqrt(2), dt)))))


@op("Clip", notes="bounds as attributes (opset < 11) or inputs")
def _clip(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.NUMERIC)
    if c.opset < 11:
        lo, hi = c.a("min"), c.a("max")
        lo_t = sc(lo, x.dtype) if lo is not None else None
        hi_t = sc(hi, x.dtype) if hi is not None else None
    else:
        lo_t, hi_t = c.topt(1), c.topt(2)
    if lo_t is not None:
        x = E.maximum(x, lo_t)
    if hi_t is not None:
        x = E.minimum(x, hi_t)
    return x


# ----------------------------------------------------------------------------- casts


def onnx_dtype(c: Ctx, code: int) -> D.DType:
    dt = ONNX_DTYPES.get(int(code))
    if dt is None:
        raise c.unsupported(f"data type {dtype_name(int(code))} is not supported (amber has "
                            f"{', '.join(d.name for d in D.DTYPES)})")
    return dt


@op("Cast", notes="to float, double, int32, int64, bool; float to int saturates")
def _cast(c: Ctx) -> Tensor:
    return _F.cast(c.t(0), onnx_dtype(c, c.a("to")))


@sym_op("Cast")
def _sym_cast(c: Ctx) -> Any:
    dt = onnx_dtype(c, c.a("to"))
    return c.v(0) if dt is D.int64 else None


@op("CastLike", since=15)
def _castlike(c: Ctx) -> Tensor:
    return _F.cast(c.t(0), c.t(1).dtype)


@op("Identity")
def _identity(c: Ctx) -> Any:
    return c.v(0) if isinstance(c.v(0), Sym) else c.t(0)


@sym_op("Identity")
def _sym_identity(c: Ctx) -> Any:
    return c.v(0)


@op("Dropout", notes="inference, or training with ratio 0: the identity (the mask output "
                     "is all true)")
def _dropout(c: Ctx) -> Any:
    if c.opset >= 12 and c.has(2):
        tm = c.s(2)
        ratio = float(np.asarray(c.s(1)).reshape(-1)[0]) if c.has(1) else 0.5
        if bool(np.asarray(tm).reshape(-1)[0]) and ratio != 0.0:
            raise c.unsupported("Dropout with training_mode = true and a ratio above 0 is "
                                "not supported (random, and changes between runs)")
    x = c.t(0)
    mask = S.broadcast_to(Tensor._wrap(np.array(True)), shape=tuple(x.shape))
    return x, mask


@op("Shrink", since=9)
def _shrink(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    lambd, bias = sc(c.a("lambd", 0.5), x.dtype), sc(c.a("bias", 0.0), x.dtype)
    zero = sc(0, x.dtype)
    return E.where(E.lt(x, E.neg(lambd)), E.add(x, bias),
                   E.where(E.gt(x, lambd), E.sub(x, bias), zero))


@op("Swish", since=24)
def _swish(c: Ctx) -> Tensor:
    x = c.t(0)
    need(c, x, D.FLOATS)
    return E.mul(x, E.sigmoid(E.mul(x, sc(c.a("alpha", 1.0), x.dtype))))


@op("SwiGLU", since=28, notes="Swish(A) * B, same shapes")
def _swiglu(c: Ctx) -> Tensor:
    a, b = c.t(0), c.t(1)
    need(c, a, D.FLOATS)
    if tuple(a.shape) != tuple(b.shape) or a.dtype is not b.dtype:
        raise c.unsupported(f"SwiGLU of {tuple(a.shape)} {a.dtype} and {tuple(b.shape)} "
                            f"{b.dtype} (the spec asks for identical shapes and types)")
    gate = E.mul(a, E.sigmoid(E.mul(a, sc(c.a("alpha", 1.0), a.dtype))))
    return E.mul(gate, b)


_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64, "uint8": 8}


def _bitwise(kind: str) -> Any:
    """And, Or, Xor of two's-complement integers, bit by bit from floor divisions (exact;
    one pass per bit), and Not as -x - 1 (or the complement for unsigned)."""
    def fn(c: Ctx) -> Tensor:
        xs = c.ts()
        bits = _BITS.get(xs[0].dtype.name)
        if bits is None or xs[-1].dtype is not xs[0].dtype:
            raise c.unsupported(f"Bitwise{kind} of {xs[0].dtype.name} (amber has 8- to "
                                f"64-bit integers)")
        x = xs[0]
        dt = x.dtype
        if kind == "Not":
            if dt.name.startswith("uint"):
                return E.sub(sc((1 << bits) - 1, dt), x)
            return E.sub(E.neg(x), sc(1, dt))
        a, b = _F.broadcast_tensors(x, xs[1])
        two, out = sc(2, dt), None
        for k in range(bits):
            ka, kb = (E.sub(t, E.mul(E.div(t, two), two)) for t in (a, b))  # bit k
            bit = (E.mul(ka, kb) if kind == "And" else
                   E.sub(E.add(ka, kb), E.mul(ka, kb)) if kind == "Or" else
                   E.sub(E.add(ka, kb), E.mul(E.mul(ka, kb), two)))
            top = -(1 << k) if (k == bits - 1 and dt.name.startswith("int")) else 1 << k
            term = E.mul(bit, sc(top, dt))
            out = term if out is None else E.add(out, term)
            a, b = E.div(a, two), E.div(b, two)
        assert out is not None
        return out
    return fn


for _kind in ("And", "Or", "Xor", "Not"):
    op(f"Bitwise{_kind}", since=18, notes="integers, two's complement")(_bitwise(_kind))
