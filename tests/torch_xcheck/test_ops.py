"""Forward values, gradients and result dtypes of amber's ops against PyTorch 2.13.0.

Each :class:`Case` runs one amber expression and the equivalent PyTorch expression on the
same float32 inputs, then compares outputs (values, shapes, dtypes) and the gradients of
``sum(output * cotangent)`` with respect to every floating input, to 1e-5. A few cases
also compare second-order gradients. ``test_every_primitive_is_cross_checked`` runs all
cases with instrumented kernels and fails for a registered primitive that no case
executes, so a new primitive needs a case here."""

from __future__ import annotations

import importlib
import inspect
import operator
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import amber as am  # noqa: E402
import amber.functional as AF  # noqa: E402
from amber.ops import REGISTRY, ckernels  # noqa: E402
from amber.ops import linalg as L  # noqa: E402
from amber.ops import shape as S  # noqa: E402

pytestmark = pytest.mark.torch

RTOL = 1e-5
ATOL = 1e-5

# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Spec:
    """One input: shape, dtype and value range (floats uniform in [lo, hi))."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    lo: float = -2.0
    hi: float = 2.0
    discrete: bool = False  # floats drawn from integers (so ties and equality occur)
    grad: bool = True  # requires_grad when the case checks gradients (floats only)


def f(*shape: int, **kw: Any) -> Spec:
    """A float32 input."""
    return Spec(tuple(shape), **kw)


def pos(*shape: int, **kw: Any) -> Spec:
    """A positive float32 input (domain of log, sqrt, divisors, pow bases)."""
    return Spec(tuple(shape), lo=0.5, hi=2.5, **kw)


def i64(*shape: int, lo: int = -5, hi: int = 6) -> Spec:
    return Spec(tuple(shape), "int64", lo, hi)


def i32(*shape: int, lo: int = -5, hi: int = 6) -> Spec:
    return Spec(tuple(shape), "int32", lo, hi)


def b(*shape: int) -> Spec:
    return Spec(tuple(shape), "bool")


@dataclass
class Case:
    id: str
    amber: Callable[..., Any]
    torch: Callable[..., Any]
    inputs: tuple[Spec, ...]
    grad: bool = True  # compare first-order gradients
    second: bool = False  # also compare second-order gradients
    rtol: float = RTOL
    atol: float = ATOL
    extra: dict[str, Any] = field(default_factory=dict)


CASES: list[Case] = []


def case(id: str, fa: Callable[..., Any], ft: Callable[..., Any] | None, *inputs: Spec,
         **kw: Any) -> None:
    """Register a case; ``ft=None`` means the torch expression is spelled the same."""
    if any(c.id == id for c in CASES):
        raise AssertionError(f"duplicate case id {id}")
    CASES.append(Case(id, fa, fa if ft is None else ft, tuple(inputs), **kw))


# ----- binary arithmetic, with broadcasting and Python scalars

_BIN_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1)), ((), (3,)), ((5,), ())]
for _name, _op in [("add", operator.add), ("sub", operator.sub), ("mul", operator.mul)]:
    for _sa, _sb in _BIN_SHAPES:
        case(f"{_name}{_sa}{_sb}", _op, None, f(*_sa), f(*_sb), second=_name == "mul")
for _sa, _sb in _BIN_SHAPES:
    case(f"truediv{_sa}{_sb}", operator.truediv, None, f(*_sa), pos(*_sb), second=True)

case("add-alpha", lambda x, y: am.add(x, y, alpha=2.5), lambda x, y: torch.add(x, y, alpha=2.5),
     f(3, 4), f(4))
case("sub-alpha", lambda x, y: am.sub(x, y, alpha=-0.5),
     lambda x, y: torch.sub(x, y, alpha=-0.5), f(3, 4), f(3, 1))
case("add-method", lambda x, y: x.add(y), None, f(2, 3), f(2, 3))
case("sub-method", lambda x, y: x.sub(y), None, f(2, 3), f(3))
case("mul-method", lambda x, y: x.mul(y), None, f(2, 3), f(2, 1))
case("div-method", lambda x, y: x.div(y), None, f(2, 3), pos(2, 3))
case("am.mul", am.mul, torch.mul, f(4), f(2, 4))
case("am.div", am.div, torch.div, f(4), pos(2, 4))
case("am.true_divide", am.true_divide, torch.true_divide, f(4), pos(4))
case("am.divide", am.divide, torch.divide, f(3, 4), pos(4))
case("add-scalar", lambda x: x + 2.5, None, f(3, 4))
case("radd-scalar", lambda x: 2.5 + x, None, f(3, 4))
case("sub-scalar", lambda x: x - 1.5, None, f(3, 4))
case("rsub-scalar", lambda x: 1.5 - x, None, f(3, 4))
case("mul-scalar", lambda x: x * -3, None, f(3, 4))
case("rmul-scalar", lambda x: 0.5 * x, None, f(3, 4))
case("div-scalar", lambda x: x / 4.0, None, f(3, 4))
case("rdiv-scalar", lambda x: 3.0 / x, None, pos(3, 4))
case("neg-op", lambda x: -x, None, f(3, 4))
case("pos-op", lambda x: +x, None, f(3, 4))
case("floor_divide-float", am.floor_divide, torch.floor_divide, f(3, 4), pos(4), grad=False)
case("floordiv-op-int", operator.floordiv, None, i64(3, 4, lo=-20, hi=20), i64(4, lo=1, hi=6),
     grad=False)
case("floordiv-op-neg-int", operator.floordiv, None, i64(3, 4, lo=-20, hi=20),
     i64(4, lo=-6, hi=-1), grad=False)
case("div-floor-int", lambda x, y: am.div(x, y, rounding_mode="floor"),
     lambda x, y: torch.div(x, y, rounding_mode="floor"), i64(6, lo=-9, hi=9),
     i64(6, lo=1, hi=4), grad=False)
case("div-int-true", operator.truediv, None, i64(6), i64(6, lo=1, hi=4), grad=False)
case("remainder", lambda x, y: x.remainder(y), None, f(3, 4), pos(4))
case("am.remainder-neg", am.remainder, torch.remainder, f(3, 4), f(4, lo=-3, hi=-0.5))
case("mod-op-int", operator.mod, None, i64(3, 4, lo=-20, hi=20), i64(4, lo=1, hi=6), grad=False)
case("mod-op-neg-int", operator.mod, None, i64(3, 4, lo=-20, hi=20), i64(4, lo=-6, hi=-1),
     grad=False)
case("mod-scalar", lambda x: x % 1.5, None, f(3, 4))
case("rmod-scalar", lambda x: 7 % x, None, i64(5, lo=1, hi=9), grad=False)
case("add-int", operator.add, None, i64(3, 4), i64(4), grad=False)
case("sub-int32", operator.sub, None, i32(3, 4), i32(3, 4), grad=False)
case("mul-int", operator.mul, None, i64(3, 4), i64(3, 1), grad=False)
case("add-int-scalar", lambda x: x + 3, None, i32(5), grad=False)
case("mul-int-floatscalar", lambda x: x * 1.5, None, i64(5), grad=False)

# pow
case("pow-tensor", operator.pow, None, pos(3, 4), f(3, 4), second=True)
case("pow-broadcast", operator.pow, None, pos(3, 1), f(4))
case("pow-scalar2", lambda x: x ** 2, None, f(3, 4), second=True)
case("pow-scalar3", lambda x: x ** 3, None, f(3, 4), second=True)
case("pow-scalar1", lambda x: x ** 1, None, f(3, 4))
case("pow-scalar-half", lambda x: x ** 0.5, None, pos(3, 4))
case("pow-scalar-neg", lambda x: x ** -1.5, None, pos(3, 4))
case("rpow-scalar", lambda x: 2.0 ** x, None, f(3, 4))
case("am.pow", am.pow, torch.pow, pos(5), f(5))
case("pow-method", lambda x: x.pow(3.0), None, f(5))
case("pow-int", lambda x: x ** 3, None, i64(5), grad=False)
case("pow-int-zero", lambda x: x ** 0, None, i64(5), grad=False)
case("square", am.square, torch.square, f(3, 4))
case("square-method", lambda x: x.square(), None, f(3, 4))
case("rsqrt", am.rsqrt, torch.rsqrt, pos(3, 4))
case("rsqrt-method", lambda x: x.rsqrt(), None, pos(3, 4))

# maximum/minimum (no ties in random floats)
for _fn in ("maximum", "minimum"):
    case(f"{_fn}", getattr(am, _fn), getattr(torch, _fn), f(3, 4), f(4))
    case(f"{_fn}-int", getattr(am, _fn), getattr(torch, _fn), i64(3, 4), i64(3, 4), grad=False)
    case(f"{_fn}-method", lambda x, y, n=_fn: getattr(x, n)(y), None, f(3, 4), f(3, 1))

# ----- comparisons and logic

_CMP = [("eq", operator.eq), ("ne", operator.ne), ("lt", operator.lt), ("le", operator.le),
        ("gt", operator.gt), ("ge", operator.ge)]
for _name, _op in _CMP:
    case(f"{_name}-op", _op, None, f(3, 4, discrete=True), f(4, discrete=True), grad=False)
    case(f"{_name}-scalar", lambda x, _op=_op: _op(x, 1.0), None, f(3, 4, discrete=True),
         grad=False)
    case(f"am.{_name}", getattr(am, _name), getattr(torch, _name), i64(3, 4), i64(4),
         grad=False)
    case(f"{_name}-method", lambda x, y, n=_name: getattr(x, n)(y), None, i32(6), i32(6),
         grad=False)
for _alias, _tname in [("less", "less"), ("less_equal", "less_equal"), ("greater", "greater"),
                       ("greater_equal", "greater_equal"), ("equal", "eq"),
                       ("not_equal", "not_equal")]:
    case(f"am.{_alias}", getattr(am, _alias), getattr(torch, _tname), f(6, discrete=True),
         f(6, discrete=True), grad=False)
case("logical_and", am.logical_and, torch.logical_and, b(3, 4), b(4), grad=False)
case("logical_or", am.logical_or, torch.logical_or, b(3, 4), b(3, 1), grad=False)
case("logical_not", am.logical_not, torch.logical_not, b(3, 4), grad=False)
case("logical_and-float", am.logical_and, torch.logical_and, f(6, discrete=True),
     f(6, discrete=True), grad=False)
case("logical_not-int", am.logical_not, torch.logical_not, i64(6), grad=False)
case("logical-methods", lambda x, y: (x.logical_and(y), x.logical_or(y), x.logical_not()),
     None, b(3, 4), b(4), grad=False)
case("and-op", operator.and_, None, b(3, 4), b(3, 4), grad=False)
case("or-op", operator.or_, None, b(3, 4), b(4), grad=False)
case("invert-op", operator.invert, None, b(3, 4), grad=False)

# where, masked_fill
case("where", am.where, torch.where, b(3, 4), f(3, 4), f(3, 4))
case("where-broadcast", am.where, torch.where, b(3, 1), f(4), f(2, 1, 1))
case("where-scalar", lambda c, x: am.where(c, x, 0.5), lambda c, x: torch.where(c, x, 0.5),
     b(3, 4), f(3, 4))
case("where-int", am.where, torch.where, b(5), i64(5), i64(5), grad=False)
case("where-method", lambda x, c, y: x.where(c, y), None, f(3, 4), b(3, 4), f(4))
case("masked_fill", lambda x, m: x.masked_fill(m, 1.5), None, f(3, 4), b(4))
case("am.masked_fill", lambda x, m: am.masked_fill(x, m, -2.0),
     lambda x, m: torch.masked_fill(x, m, -2.0), f(3, 4), b(3, 4))

# ----- unary math

_UNARY = [
    ("exp", f), ("log", pos), ("sqrt", pos), ("tanh", f), ("sigmoid", f), ("sin", f),
    ("cos", f), ("erf", f), ("relu", f), ("neg", f), ("abs", f), ("sign", f), ("floor", f),
    ("ceil", f), ("round", f), ("trunc", f),
]
for _name, _spec in _UNARY:
    case(f"am.{_name}", getattr(am, _name), getattr(torch, _name), _spec(3, 4),
         second=_name in ("exp", "log", "sqrt", "tanh", "sigmoid", "sin", "cos", "erf"))
    case(f"{_name}-method", lambda x, n=_name: getattr(x, n)(), None, _spec(5))
case("sigmoid-large", am.sigmoid, torch.sigmoid, f(40, lo=-40.0, hi=40.0))
case("tanh-large", am.tanh, torch.tanh, f(40, lo=-20.0, hi=20.0))
case("exp-int", am.exp, torch.exp, i64(5), grad=False)
case("abs-op", operator.abs, None, f(3, 4))
case("abs-int", am.abs, torch.abs, i32(6), grad=False)
case("neg-int", am.neg, torch.neg, i64(6), grad=False)
case("sign-int", am.sign, torch.sign, i64(6), grad=False)
case("floor-int", am.floor, torch.floor, i64(6), grad=False)
case("round-decimals", lambda x: am.round(x, decimals=2), lambda x: torch.round(x, decimals=2),
     f(3, 4, lo=-20.0, hi=20.0))
case("round-int", am.round, torch.round, i64(6), grad=False)
case("trunc-int", am.trunc, torch.trunc, i64(6), grad=False)
case("clamp", lambda x: am.clamp(x, -0.5, 1.0), lambda x: torch.clamp(x, -0.5, 1.0), f(3, 4))
case("clamp-min", lambda x: am.clamp(x, min=0.25), lambda x: torch.clamp(x, min=0.25), f(3, 4))
case("clamp-max", lambda x: x.clamp(max=0.25), None, f(3, 4))
case("clamp-tensor", lambda x, lo, hi: am.clamp(x, lo, hi),
     lambda x, lo, hi: torch.clamp(x, lo, hi), f(3, 4), f(4, lo=-2, hi=-1), f(3, 1, lo=1, hi=2))
case("clip", lambda x: am.clip(x, -1.0, 1.0), lambda x: torch.clip(x, -1.0, 1.0), f(3, 4))
case("clip-method", lambda x: x.clip(-1.0, 1.0), None, f(3, 4))
case("clamp-int", lambda x: x.clamp(-2, 3), None, i64(8), grad=False)

# casts
case("to-float64", lambda x: x.to(am.float64), lambda x: x.to(torch.float64), f(3, 4))
case("double", lambda x: x.double(), None, f(3, 4))
case("float-from-64", lambda x: x.double().float(), None, f(3, 4))
case("to-int64", lambda x: x.long(), None, f(3, 4, lo=-9, hi=9), grad=False)
case("to-int32", lambda x: x.int(), None, f(3, 4, lo=-9, hi=9), grad=False)
case("to-bool", lambda x: x.bool(), None, f(3, 4, discrete=True), grad=False)
case("int-to-float", lambda x: x.float(), None, i64(5), grad=False)
case("bool-to-float", lambda x: x.float(), None, b(5), grad=False)
case("cast-method", lambda x: x.cast(am.float64), lambda x: x.to(torch.float64), f(3, 4))
case("am.cast", lambda x: am.cast(x, "int32"), lambda x: x.to(torch.int32),
     f(3, 4, lo=-9, hi=9), grad=False)
case("type_as", lambda x, y: x.type_as(y), None, i32(4), f(4), grad=False)
case("clone", am.clone, torch.clone, f(3, 4))
case("clone-method", lambda x: x.clone(), None, f(3, 4))
case("detach", lambda x, y: x.detach() * y, None, f(3, 4), f(3, 4))

# ----- reductions

_RED_X = (2, 3, 4)
for _name in ("sum", "mean"):
    fa, ft = getattr(am, _name), getattr(torch, _name)
    case(f"{_name}-all", fa, ft, f(*_RED_X))
    case(f"{_name}-dim1", lambda x, fa=fa: fa(x, 1), lambda x, ft=ft: ft(x, 1), f(*_RED_X))
    case(f"{_name}-dim-neg-keep", lambda x, fa=fa: fa(x, -1, keepdim=True),
         lambda x, ft=ft: ft(x, -1, keepdim=True), f(*_RED_X))
    case(f"{_name}-dims", lambda x, n=_name: getattr(x, n)(dim=(0, 2)),
         lambda x, n=_name: getattr(x, n)(dim=(0, 2)), f(*_RED_X))
    case(f"{_name}-dims-keep", lambda x, n=_name: getattr(x, n)((2, 0), keepdim=True),
         lambda x, n=_name: getattr(x, n)((2, 0), keepdim=True), f(*_RED_X))
    case(f"{_name}-0d", fa, ft, f())
case("sum-int", lambda x: x.sum(1), None, i64(3, 4), grad=False)
case("sum-bool", lambda x: x.sum(), None, b(3, 4), grad=False)
case("sum-int32", lambda x: x.sum(), None, i32(3, 4), grad=False)
case("sum-int32-dim", lambda x: am.sum(x, 1), lambda x: torch.sum(x, 1), i32(3, 4), grad=False)
case("sum-dtype", lambda x: am.sum(x, 0, dtype=am.float64),
     lambda x: torch.sum(x, 0, dtype=torch.float64), f(3, 4))
case("mean-dtype", lambda x: x.mean(dtype=am.float32), lambda x: x.mean(dtype=torch.float32),
     i64(3, 4), grad=False)
case("sum-empty", lambda x: x.sum(0), None, f(0, 3))

for _name in ("var", "std"):
    fa, ft = getattr(am, _name), getattr(torch, _name)
    case(f"{_name}-all", fa, ft, f(*_RED_X), second=_name == "var")
    case(f"{_name}-dim", lambda x, fa=fa: fa(x, 1), lambda x, ft=ft: ft(x, 1), f(*_RED_X))
    case(f"{_name}-biased", lambda x, fa=fa: fa(x, 2, unbiased=False, keepdim=True),
         lambda x, ft=ft: ft(x, 2, unbiased=False, keepdim=True), f(*_RED_X))
    case(f"{_name}-correction0", lambda x, fa=fa: fa(x, (0, 1), correction=0),
         lambda x, ft=ft: ft(x, (0, 1), correction=0), f(*_RED_X))
    case(f"{_name}-method", lambda x, n=_name: getattr(x, n)(dim=0),
         lambda x, n=_name: getattr(x, n)(dim=0), f(5, 3))

for _name in ("max", "min"):
    fa, ft = getattr(am, _name), getattr(torch, _name)
    case(f"{_name}-all", fa, ft, f(*_RED_X), second=True)
    case(f"{_name}-dim", lambda x, fa=fa: fa(x, 1), lambda x, ft=ft: ft(x, 1), f(*_RED_X))
    case(f"{_name}-dim-keep", lambda x, fa=fa: fa(x, -1, keepdim=True),
         lambda x, ft=ft: ft(x, -1, keepdim=True), f(*_RED_X))
    case(f"{_name}-binary", fa, ft, f(3, 4), f(4))
    case(f"{_name}-method", lambda x, n=_name: getattr(x, n)(0),
         lambda x, n=_name: getattr(x, n)(0), f(4, 3))
    case(f"{_name}-int", lambda x, n=_name: getattr(x, n)(), lambda x, n=_name: getattr(x, n)(),
         i64(3, 4), grad=False)
    case(f"a{_name}-dims", lambda x, n=_name: getattr(am, "a" + n)(x, (0, 2)),
         lambda x, n=_name: getattr(torch, "a" + n)(x, (0, 2)), f(*_RED_X))
    case(f"a{_name}-keep", lambda x, n=_name: getattr(x, "a" + n)(1, keepdim=True),
         lambda x, n=_name: getattr(x, "a" + n)(1, keepdim=True), f(*_RED_X))
    case(f"a{_name}-ties", lambda x, n=_name: getattr(am, "a" + n)(x, 1),
         lambda x, n=_name: getattr(torch, "a" + n)(x, 1), f(4, 6, lo=-1, hi=2, discrete=True))
    case(f"arg{_name}-all", lambda x, n=_name: getattr(am, "arg" + n)(x),
         lambda x, n=_name: getattr(torch, "arg" + n)(x), f(*_RED_X), grad=False)
    case(f"arg{_name}-dim", lambda x, n=_name: getattr(x, "arg" + n)(1),
         lambda x, n=_name: getattr(x, "arg" + n)(1), f(*_RED_X), grad=False)
    case(f"arg{_name}-keep", lambda x, n=_name: getattr(am, "arg" + n)(x, 0, keepdim=True),
         lambda x, n=_name: getattr(torch, "arg" + n)(x, 0, keepdim=True), f(*_RED_X),
         grad=False)
    case(f"arg{_name}-int", lambda x, n=_name: getattr(am, "arg" + n)(x, 1),
         lambda x, n=_name: getattr(torch, "arg" + n)(x, 1), i64(4, 5, lo=-100, hi=100),
         grad=False)

for _name in ("any", "all"):
    fa, ft = getattr(am, _name), getattr(torch, _name)
    case(f"{_name}-all", fa, ft, b(3, 4), grad=False)
    case(f"{_name}-dim", lambda x, fa=fa: fa(x, 1), lambda x, ft=ft: ft(x, 1), b(3, 4),
         grad=False)
    case(f"{_name}-keep", lambda x, n=_name: getattr(x, n)(0, keepdim=True),
         lambda x, n=_name: getattr(x, n)(0, keepdim=True), b(3, 4), grad=False)
    case(f"{_name}-float", fa, ft, f(3, 4, lo=0, hi=2, discrete=True), grad=False)
    case(f"{_name}-empty", lambda x, fa=fa: fa(x, 0), lambda x, ft=ft: ft(x, 0), b(0, 3),
         grad=False)

case("prod-all", am.prod, torch.prod, f(2, 3))
case("prod-dim", lambda x: am.prod(x, 1), lambda x: torch.prod(x, 1), f(3, 4))
case("prod-keep", lambda x: x.prod(0, keepdim=True), None, f(3, 4))
case("prod-zeros", lambda x: am.prod(x, 1), lambda x: torch.prod(x, 1),
     f(6, 3, lo=-1, hi=2, discrete=True))
case("prod-one-zero", lambda x: am.prod(x * am.tensor([1.0, 0.0, 1.0, 1.0]), 1),
     lambda x: torch.prod(x * torch.tensor([1.0, 0.0, 1.0, 1.0]), 1), f(3, 4))
case("prod-two-zeros", lambda x: am.prod(x * am.tensor([0.0, 1.0, 0.0]), 0),
     lambda x: torch.prod(x * torch.tensor([0.0, 1.0, 0.0]), 0), f(3))
case("prod-zero-nan-inf", lambda x: am.prod(x * am.tensor([[0.0, np.nan], [0.0, np.inf]]), 1),
     lambda x: torch.prod(x * torch.tensor([[0.0, np.nan], [0.0, np.inf]]), 1), pos(2, 2),
     grad=False)
case("logsumexp", lambda x: am.logsumexp(x, 1), lambda x: torch.logsumexp(x, 1), f(*_RED_X),
     second=True)
case("logsumexp-keep", lambda x: x.logsumexp(-1, keepdim=True), None, f(*_RED_X))
case("logsumexp-dims", lambda x: am.logsumexp(x, (0, 2)), lambda x: torch.logsumexp(x, (0, 2)),
     f(*_RED_X))
case("logsumexp-large", lambda x: am.logsumexp(x * 100, 1),
     lambda x: torch.logsumexp(x * 100, 1), f(3, 4))

# ----- shapes

case("reshape", lambda x: x.reshape(4, 6), None, f(2, 3, 4))
case("reshape-tuple", lambda x: am.reshape(x, (6, -1)), lambda x: torch.reshape(x, (6, -1)),
     f(2, 3, 4))
case("reshape-flat", lambda x: x.reshape(-1), None, f(2, 3, 4))
case("view", lambda x: x.view(3, 8), None, f(2, 3, 4))
case("view_as", lambda x, y: x.view_as(y), None, f(2, 3, 4), f(6, 4))
case("flatten", am.flatten, torch.flatten, f(2, 3, 4))
case("flatten-1", lambda x: x.flatten(1), None, f(2, 3, 4))
case("flatten-01", lambda x: am.flatten(x, 0, 1), lambda x: torch.flatten(x, 0, 1), f(2, 3, 4))
case("flatten-0d", am.flatten, torch.flatten, f())
case("permute", lambda x: x.permute(2, 0, 1), None, f(2, 3, 4))
case("permute-list", lambda x: am.permute(x, (1, 2, 0)), lambda x: torch.permute(x, (1, 2, 0)),
     f(2, 3, 4))
case("transpose", lambda x: x.transpose(0, 2), None, f(2, 3, 4))
case("am.transpose", lambda x: am.transpose(x, -1, 0), lambda x: torch.transpose(x, -1, 0),
     f(2, 3, 4))
case("T", lambda x: x.T, None, f(3, 4))
case("mT", lambda x: x.mT, None, f(2, 3, 4))
case("am.t", am.t, torch.t, f(3, 4))
case("am.t-1d", am.t, torch.t, f(3))
case("t-method", lambda x: x.t(), None, f(3, 4))
case("squeeze", lambda x: x.squeeze(), None, f(1, 3, 1, 4))
case("squeeze-dim", lambda x: am.squeeze(x, 2), lambda x: torch.squeeze(x, 2), f(1, 3, 1, 4))
case("squeeze-noop", lambda x: x.squeeze(1), None, f(1, 3, 1, 4))
case("squeeze-dims", lambda x: x.squeeze((0, 2)), None, f(1, 3, 1, 4))
case("unsqueeze", lambda x: x.unsqueeze(0), None, f(3, 4))
case("unsqueeze-neg", lambda x: am.unsqueeze(x, -1), lambda x: torch.unsqueeze(x, -1), f(3, 4))
case("unsqueeze-mid", lambda x: x.unsqueeze(1), None, f(3, 4))
case("expand", lambda x: x.expand(3, 4), None, f(3, 1))
case("expand-neg1", lambda x: x.expand(2, -1, 4), None, f(3, 1))
case("expand_as", lambda x, y: x.expand_as(y), None, f(1, 4), f(3, 4, grad=False))
case("broadcast_to", lambda x: am.broadcast_to(x, (2, 3, 4)),
     lambda x: torch.broadcast_to(x, (2, 3, 4)), f(3, 1))
case("broadcast_to-method", lambda x: x.broadcast_to((2, 4)), None, f(4))
case("broadcast_tensors", lambda x, y: am.broadcast_tensors(x, y),
     lambda x, y: torch.broadcast_tensors(x, y), f(3, 1), f(1, 4))
case("cat0", lambda x, y, z: am.cat([x, y, z]), lambda x, y, z: torch.cat([x, y, z]),
     f(2, 3), f(1, 3), f(4, 3))
case("cat1", lambda x, y: am.cat((x, y), 1), lambda x, y: torch.cat((x, y), 1), f(2, 3), f(2, 5))
case("cat-neg", lambda x, y: am.cat([x, y], dim=-1), lambda x, y: torch.cat([x, y], dim=-1),
     f(2, 3, 1), f(2, 3, 2))
case("cat-one", lambda x: am.cat([x]), lambda x: torch.cat([x]), f(2, 3))
case("cat-promote", lambda x, y: am.cat([x, y.double()]),
     lambda x, y: torch.cat([x, y.double()]), f(2, 3), f(1, 3))
case("cat-int", lambda x, y: am.cat([x, y]), lambda x, y: torch.cat([x, y]), i64(2), i32(3),
     grad=False)
case("concat", lambda x, y: am.concat([x, y], 1), lambda x, y: torch.concat([x, y], 1),
     f(2, 3), f(2, 1))
case("concatenate", lambda x, y: am.concatenate([x, y]),
     lambda x, y: torch.concatenate([x, y]), f(2, 3), f(2, 3))
case("stack0", lambda x, y: am.stack([x, y]), lambda x, y: torch.stack([x, y]), f(3, 4),
     f(3, 4))
case("stack1", lambda x, y, z: am.stack([x, y, z], 1), lambda x, y, z: torch.stack([x, y, z], 1),
     f(3, 4), f(3, 4), f(3, 4))
case("stack-neg", lambda x, y: am.stack([x, y], dim=-1), lambda x, y: torch.stack([x, y], dim=-1),
     f(3, 4), f(3, 4))
case("split-int", lambda x: x.split(2, 1), None, f(3, 5))
case("split-sizes", lambda x: am.split(x, [1, 4], dim=1),
     lambda x: torch.split(x, [1, 4], dim=1), f(3, 5))
case("split-dim0", lambda x: am.split(x, 2), lambda x: torch.split(x, 2), f(5, 2))
case("chunk", lambda x: x.chunk(3, 1), None, f(3, 7))
case("am.chunk", lambda x: am.chunk(x, 2), lambda x: torch.chunk(x, 2), f(4, 3))
case("narrow", lambda x: x.narrow(1, 1, 2), None, f(3, 5))
case("am.narrow", lambda x: am.narrow(x, 0, 2, 1), lambda x: torch.narrow(x, 0, 2, 1), f(3, 5))
case("repeat", lambda x: x.repeat(2, 1, 3), None, f(3, 2))
case("repeat-same-rank", lambda x: am.repeat(x, 2, 2), lambda x: x.repeat(2, 2), f(3, 2))
case("gather", lambda x, i: x.gather(1, i), lambda x, i: x.gather(1, i), f(3, 5),
     i64(3, 4, lo=0, hi=5))
case("am.gather-dim0", lambda x, i: am.gather(x, 0, i), lambda x, i: torch.gather(x, 0, i),
     f(3, 5), i64(2, 5, lo=0, hi=3))
case("triu", lambda x: x.triu(), None, f(4, 5))
case("am.triu-diagonal", lambda x: am.triu(x, 2), lambda x: torch.triu(x, 2), f(2, 4, 5))
case("am.triu-negative", lambda x: am.triu(x, diagonal=-1), lambda x: torch.triu(x, diagonal=-1),
     f(5, 3))
case("triu-bool", lambda x: am.triu(x > 0), lambda x: torch.triu(x > 0), f(4, 4), grad=False)
case("triu-int", lambda x: am.triu(x, 1), lambda x: torch.triu(x, 1), i64(3, 4), grad=False)
case("tril", lambda x: x.tril(), None, f(4, 5))
case("am.tril-diagonal", lambda x: am.tril(x, 1), lambda x: torch.tril(x, 1), f(3, 4, 5))
case("tril-bool", lambda x: am.tril(x > 0, -1), lambda x: torch.tril(x > 0, -1), f(4, 4),
     grad=False)
case("flip", lambda x: x.flip(1), None, f(3, 5))
case("am.flip-dims", lambda x: am.flip(x, (0, 2)), lambda x: torch.flip(x, (0, 2)), f(3, 4, 2))
case("flip-int", lambda x: am.flip(x, [-1]), lambda x: torch.flip(x, [-1]), i64(2, 3),
     grad=False)
case("flip-varargs", lambda x: x.flip(0, 1), None, f(3, 4))
case("einsum-matmul", lambda x, y: am.einsum("ij,jk->ik", x, y),
     lambda x, y: torch.einsum("ij,jk->ik", x, y), f(3, 4), f(4, 5), second=True)
case("einsum-batched", lambda x, y: am.einsum("bij,bkj->bik", x, y),
     lambda x, y: torch.einsum("bij,bkj->bik", x, y), f(2, 3, 4), f(2, 5, 4))
case("einsum-implicit", lambda x, y: am.einsum("ij,kj", x, y),
     lambda x, y: torch.einsum("ij,kj", x, y), f(3, 4), f(2, 4))
case("einsum-trace-diag", lambda x: am.einsum("ii->i", x), lambda x: torch.einsum("ii->i", x),
     f(4, 4))
case("einsum-sum-outer", lambda x, y, z: am.einsum("i,j,k->", x, y, z),
     lambda x, y, z: torch.einsum("i,j,k->", x, y, z), f(3), f(2), f(4))
case("einsum-list-transpose", lambda x: am.einsum("abc->cab", [x]),
     lambda x: torch.einsum("abc->cab", [x]), f(2, 3, 4))
case("einsum-attention", lambda q, k: am.einsum("bhqd,bhkd->bhqk", q, k),
     lambda q, k: torch.einsum("bhqd,bhkd->bhqk", q, k), f(2, 3, 4, 5), f(2, 3, 6, 5))
case("einsum-sum-within", lambda x, y: am.einsum("ijk,jl->li", x, y),
     lambda x, y: torch.einsum("ijk,jl->li", x, y), f(3, 4, 2), f(4, 5))
case("einsum-outer-batch", lambda x, y: am.einsum("bi,bj->bij", x, y),
     lambda x, y: torch.einsum("bi,bj->bij", x, y), f(2, 3), f(2, 4))
case("einsum-int", lambda x, y: am.einsum("ij,jk->ik", x, y),
     lambda x, y: torch.einsum("ij,jk->ik", x, y), i64(2, 3), i64(3, 2), grad=False)
case("einsum-broadcast-one", lambda x, y: am.einsum("ij,ij->i", x, y),
     lambda x, y: torch.einsum("ij,ij->i", x, y), f(3, 4), f(1, 4))

# ----- indexing


def _idx(*key: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """getitem with a fixed key in which ``"I<n>"`` strings name the n-th extra input."""

    def resolve(args: Sequence[Any]) -> Any:
        out = tuple(args[int(k[1:])] if isinstance(k, str) else k for k in key)
        return out[0] if len(out) == 1 else out

    return (lambda x, *a: x[resolve(a)]), (lambda x, *a: x[resolve(a)])


for _id, _key in [
    ("int", (1,)), ("neg-int", (-1,)), ("slice", (slice(1, 3),)),
    ("step", (slice(None), slice(None, None, 2))), ("ellipsis", (Ellipsis, 1)),
    ("none", (None, slice(1, None), slice(-2, None))), ("scalar", (1, 2, 0)),
    ("neg-slice", (slice(-3, -1), -2)), ("empty-slice", (slice(3, 1),)),
    ("past-end", (slice(1, 100), slice(None), slice(-100, None))),
    ("list", ([0, 2],)), ("list-2", (slice(None), [3, 0, 0])),
]:
    fa_, ft_ = _idx(*_key)
    case(f"index-{_id}", fa_, ft_, f(4, 5, 3))
for _id, _key, _extra in [
    ("tensor", ("I0",), [i64(2, 3, lo=-4, hi=4)]),
    ("tensor-dim1", (slice(None), "I0"), [i64(6, lo=-5, hi=5)]),
    ("tensor-pair", ("I0", "I1"), [i64(2, 1, lo=0, hi=4), i64(3, lo=-5, hi=5)]),
    ("tensor-split", ("I0", slice(None), "I1"), [i64(3, lo=0, hi=4), i64(3, lo=0, hi=3)]),
    ("tensor-int", ("I0", 2), [i64(4, lo=0, hi=4)]),
    ("tensor-dup", ("I0",), [i64(7, lo=0, hi=2)]),
    ("mask-rows", ("I0",), [b(4)]),
    ("mask-2d", ("I0",), [b(4, 5)]),
    ("mask-dim1", (slice(None), "I0"), [b(5)]),
]:
    fa_, ft_ = _idx(*_key)
    case(f"index-{_id}", fa_, ft_, f(4, 5, 3), *_extra)
# An int and an index tensor separated by a slice: amber follows NumPy (the advanced
# dims go first, docs/opset.md); PyTorch treats the int as a basic index instead.
case("index-int-tensor-split-numpy-rule", lambda x, i: x[1, :, i],
     lambda x, i: x[1][:, i].permute(1, 2, 0), f(4, 5, 3), i64(2, 2, lo=0, hi=3))
case("index-mask-cmp", lambda x: x[x > 0], None, f(4, 5))
case("index-0d-tensor", lambda x, i: x[i], None, f(4, 5), i64(lo=0, hi=4))

# ----- linear algebra

for _sa, _sb in [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)),
                 ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((2, 1, 3, 4), (5, 4, 2)),
                 ((5, 2, 3), (3,)), ((4,), (5, 4, 2)), ((1, 3), (3, 1))]:
    case(f"matmul{_sa}{_sb}", operator.matmul, None, f(*_sa), f(*_sb), second=len(_sa) == 2)
case("am.matmul", am.matmul, torch.matmul, f(2, 3), f(3, 2))
case("matmul-method", lambda x, y: x.matmul(y), None, f(2, 3), f(3, 2))
case("rmatmul-ndarray", lambda x: np.ones((2, 3), np.float32) @ x,
     lambda x: torch.ones(2, 3) @ x, f(3, 2))
case("radd-ndarray", lambda x: np.full((3, 1), 2.0, np.float32) + x,
     lambda x: torch.full((3, 1), 2.0) + x, f(4))
case("mm", am.mm, torch.mm, f(2, 3), f(3, 4))
case("bmm", am.bmm, torch.bmm, f(5, 2, 3), f(5, 3, 4))
case("dot", am.dot, torch.dot, f(6), f(6))
case("outer", am.outer, torch.outer, f(3), f(4))
case("matmul-int", operator.matmul, None, i64(2, 3), i64(3, 4), grad=False)
case("linear", lambda x, w, b_: AF.einsum_linear(x, w, b_),
     lambda x, w, b_: torch.nn.functional.linear(x, w, b_), f(5, 3), f(4, 3), f(4))
case("linear-nobias", lambda x, w: AF.einsum_linear(x, w, None),
     lambda x, w: torch.nn.functional.linear(x, w), f(2, 5, 3), f(4, 3))

# ----- softmax family

for _fn in ("softmax", "log_softmax"):
    fa, ft = getattr(am, _fn), getattr(torch, _fn)
    case(f"{_fn}-last", lambda x, fa=fa: fa(x, -1), lambda x, ft=ft: ft(x, -1), f(3, 5),
         second=True)
    case(f"{_fn}-dim0", lambda x, fa=fa: fa(x, 0), lambda x, ft=ft: ft(x, 0), f(3, 5))
    case(f"{_fn}-3d", lambda x, fa=fa: fa(x, 1), lambda x, ft=ft: ft(x, 1), f(2, 4, 3))
    case(f"{_fn}-large", lambda x, fa=fa: fa(x * 60, 1), lambda x, ft=ft: ft(x * 60, 1),
         f(3, 5), atol=1e-4)
    case(f"{_fn}-method", lambda x, n=_fn: getattr(x, n)(1), None, f(2, 6))
    case(f"{_fn}-dtype", lambda x, fa=fa: fa(x, 1, dtype=am.float64),
         lambda x, ft=ft: ft(x, 1, dtype=torch.float64), f(2, 6))

# ----- like-constructors (values and dtypes)

case("zeros_like", lambda x: AF.zeros_like(x) + x, lambda x: torch.zeros_like(x) + x, f(3, 4))
case("ones_like", lambda x: AF.ones_like(x, dtype=am.int32),
     lambda x: torch.ones_like(x, dtype=torch.int32), f(3, 4), grad=False)
case("full_like", lambda x: AF.full_like(x, 2.5) * x, lambda x: torch.full_like(x, 2.5) * x,
     f(3, 4))

# ----- primitives without a front-end function of their own


def _conv_amber(stride: tuple[int, int], padding: tuple[int, int, int, int],
                dilation: tuple[int, int], groups: int) -> Callable[..., Any]:
    def fn(x: Any, w: Any) -> Any:
        return L.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)

    return fn


def _conv_torch(stride: tuple[int, int], padding: tuple[int, int, int, int],
                dilation: tuple[int, int], groups: int) -> Callable[..., Any]:
    def fn(x: Any, w: Any) -> Any:
        top, bottom, left, right = padding
        if top == bottom and left == right:
            return torch.nn.functional.conv2d(x, w, None, stride, (top, left), dilation, groups)
        x = torch.nn.functional.pad(x, (left, right, top, bottom))
        return torch.nn.functional.conv2d(x, w, None, stride, 0, dilation, groups)

    return fn


for _id, _st, _pd, _dl, _g, _cin, _cout in [
    ("basic", (1, 1), (0, 0, 0, 0), (1, 1), 1, 3, 4),
    ("stride", (2, 3), (0, 0, 0, 0), (1, 1), 1, 3, 4),
    ("padding", (1, 1), (1, 1, 2, 2), (1, 1), 1, 3, 4),
    ("padding-asym", (1, 1), (2, 0, 1, 3), (1, 1), 1, 2, 3),
    ("dilation", (1, 1), (0, 0, 0, 0), (2, 2), 1, 3, 2),
    ("groups", (1, 1), (1, 1, 1, 1), (1, 1), 2, 4, 6),
    ("depthwise", (1, 1), (1, 1, 1, 1), (1, 1), 4, 4, 8),
    ("all", (2, 1), (1, 2, 0, 1), (2, 1), 2, 4, 4),
    ("1x1", (1, 1), (0, 0, 0, 0), (1, 1), 1, 5, 3),
]:
    _k = (1, 1) if _id == "1x1" else (3, 2)
    case(f"conv2d-{_id}", _conv_amber(_st, _pd, _dl, _g), _conv_torch(_st, _pd, _dl, _g),
         f(2, _cin, 7, 6), f(_cout, _cin // _g, *_k), second=_id in ("basic", "all", "groups"))
case("conv2d-float64", lambda x, w: _conv_amber((1, 1), (1, 1, 1, 1), (1, 1), 1)(
    x.double(), w.double()), lambda x, w: _conv_torch((1, 1), (1, 1, 1, 1), (1, 1), 1)(
    x.double(), w.double()), f(1, 2, 5, 5), f(3, 2, 3, 3))

for _id, _k, _s, _p, _d, _ceil in [("basic", 2, 2, 0, 1, False), ("ceil-pad", 3, 2, 1, 1, True),
                                   ("dilation", 2, 1, 1, 2, False)]:
    case(f"max_pool2d-{_id}",
         lambda x, k=_k, s=_s, p=_p, d=_d, c=_ceil: am.nn.functional.max_pool2d(x, k, s, p, d, c),
         lambda x, k=_k, s=_s, p=_p, d=_d, c=_ceil: torch.nn.functional.max_pool2d(x, k, s, p, d,
                                                                                 c),
         f(2, 3, 7, 6), second=_id != "dilation")
    if _d == 1:
        case(f"avg_pool2d-{_id}",
             lambda x, k=_k, s=_s, p=_p, c=_ceil: am.nn.functional.avg_pool2d(
                 x, k, s, p, c, count_include_pad=not c),
             lambda x, k=_k, s=_s, p=_p, c=_ceil: torch.nn.functional.avg_pool2d(
                 x, k, s, p, c, count_include_pad=not c),
             f(2, 3, 7, 6))  # linear: no second derivative

case("pad-primitive", lambda x: S.pad(x, lo=(1, 0), hi=(2, 3), interior=(0, 0), value=1.5),
     lambda x: torch.nn.functional.pad(x, (0, 3, 1, 2), value=1.5), f(3, 4))
case("pad-interior", lambda x: S.pad(x, lo=(0,), hi=(0,), interior=(2,), value=0.0),
     lambda x: torch.zeros(10).index_put((torch.arange(0, 10, 3),), x), f(4))
case("take-primitive", lambda x, i: S.take(x, i, axis=1),
     lambda x, i: torch.index_select(x, 1, i), f(3, 5), i64(4, lo=0, hi=5))
case("take-negative", lambda x, i: S.take(x, i, axis=0), lambda x, i: x[i], f(5, 2),
     i64(2, 3, lo=-5, hi=5))
case("scatter_add-primitive", lambda base, i, src: S.scatter_add(base, i, src, axis=1),
     lambda base, i, src: base.index_add(1, i, src), f(3, 4), i64(5, lo=0, hi=4), f(3, 5))
case("slice-primitive",
     lambda x: S.slice_(x, starts=(1, 0), stops=(3, 5), steps=(1, 2)),
     lambda x: x[1:3, 0:5:2], f(4, 5))
if "dim_value" in REGISTRY:
    case("dim_value-primitive", lambda x: x * REGISTRY["dim_value"](value=4),
         lambda x: x * torch.tensor(4), f(3))
case("broadcast_to-primitive", lambda x: S.broadcast_to(x, shape=(2, 3, 4)),
     lambda x: x.expand(2, 3, 4), f(3, 1))


# --------------------------------------------------------------------------- running


def _seed(case_id: str) -> int:
    return zlib.crc32(case_id.encode())


def _make_inputs(c: Case) -> list[np.ndarray]:
    rng = np.random.default_rng(_seed(c.id))
    out = []
    for s in c.inputs:
        if s.dtype == "bool":
            out.append(rng.random(s.shape) < 0.5)
        elif s.dtype in ("int32", "int64"):
            out.append(np.asarray(rng.integers(int(s.lo), int(s.hi), s.shape), dtype=s.dtype))
        elif s.discrete:
            out.append(np.asarray(rng.integers(int(s.lo), int(s.hi) + 1, s.shape),
                                  dtype=s.dtype))
        else:
            out.append(np.asarray(rng.uniform(s.lo, s.hi, s.shape), dtype=s.dtype))
    return out


def _flat(out: Any) -> list[Any]:
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [out]


def _torch_dtype_name(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def _assert_close(what: str, got: np.ndarray, want: np.ndarray, rtol: float,
                  atol: float) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape}, torch {want.shape}"
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def _inputs_pair(c: Case, arrays: list[np.ndarray]) -> tuple[list[Any], list[Any]]:
    a_in, t_in = [], []
    for s, x in zip(c.inputs, arrays, strict=True):
        rg = c.grad and s.grad and s.dtype.startswith("float")
        a_in.append(am.tensor(x, requires_grad=rg))
        t_in.append(torch.tensor(x, requires_grad=rg))
    return a_in, t_in


def run_case(c: Case) -> None:
    arrays = _make_inputs(c)
    a_in, t_in = _inputs_pair(c, arrays)
    a_out, t_out = _flat(c.amber(*a_in)), _flat(c.torch(*t_in))
    assert len(a_out) == len(t_out), f"{c.id}: {len(a_out)} outputs, torch {len(t_out)}"
    for k, (ao, to) in enumerate(zip(a_out, t_out, strict=True)):
        assert isinstance(ao, am.Tensor), f"{c.id}: output {k} is {type(ao).__name__}"
        assert ao.dtype.name == _torch_dtype_name(to), (
            f"{c.id}: output {k} dtype {ao.dtype.name}, torch {_torch_dtype_name(to)}")
        _assert_close(f"{c.id}: output {k}", ao.detach().numpy(), to.detach().numpy(),
                      c.rtol, c.atol)
    if not c.grad:
        return
    rng = np.random.default_rng(_seed(c.id) + 1)
    pairs = [(ao, to) for ao, to in zip(a_out, t_out, strict=True) if to.requires_grad]
    assert pairs, f"{c.id}: no differentiable output"
    for ao, _ in pairs:
        assert ao.requires_grad, f"{c.id}: amber output does not require grad, torch's does"
    cts = [rng.standard_normal(tuple(to.shape)).astype(_torch_dtype_name(to)) for _, to in pairs]
    am.autograd.backward([ao for ao, _ in pairs], cts)
    torch.autograd.backward([to for _, to in pairs], [torch.from_numpy(ct) for ct in cts])
    checked = 0
    for k, (ai, ti) in enumerate(zip(a_in, t_in, strict=True)):
        if not ti.requires_grad:
            continue
        want = np.zeros(arrays[k].shape, arrays[k].dtype) if ti.grad is None else ti.grad.numpy()
        got = np.zeros_like(want) if ai.grad is None else ai.grad.numpy()
        if ai.grad is not None:
            assert ai.grad.dtype.name == str(want.dtype), f"{c.id}: grad {k} dtype"
        _assert_close(f"{c.id}: grad of input {k}", got, want, c.rtol, c.atol)
        checked += 1
    assert checked, f"{c.id}: no input requires grad"


def run_second_order(c: Case) -> None:
    """d/dx <v, d<ct, f(x)>/dx>: the gradient of a gradient, for every floating input."""
    arrays = _make_inputs(c)
    a_in, t_in = _inputs_pair(c, arrays)
    rng = np.random.default_rng(_seed(c.id) + 2)
    a_out, t_out = _flat(c.amber(*a_in)), _flat(c.torch(*t_in))
    ct = rng.standard_normal(tuple(t_out[0].shape)).astype(np.float32)
    wrt = [k for k, t in enumerate(t_in) if t.requires_grad]
    ga = am.autograd.grad(a_out[0], [a_in[k] for k in wrt], am.tensor(ct), create_graph=True)
    gt = torch.autograd.grad(t_out[0], [t_in[k] for k in wrt], torch.from_numpy(ct),
                             create_graph=True)
    vs = [rng.standard_normal(arrays[k].shape).astype(np.float32) for k in wrt]
    sa = sum(((g * am.tensor(v)).sum() for g, v in zip(ga, vs, strict=True)), am.tensor(0.0))
    st = sum(((g * torch.from_numpy(v)).sum() for g, v in zip(gt, vs, strict=True)),
             torch.tensor(0.0))
    if not st.requires_grad:  # linear in every input: the second derivative is zero
        assert not sa.requires_grad or all(
            g is None or not np.any(g.numpy())
            for g in am.autograd.grad(sa, [a_in[k] for k in wrt], allow_unused=True))
        return
    hga = am.autograd.grad(sa, [a_in[k] for k in wrt], allow_unused=True)
    hgt = torch.autograd.grad(st, [t_in[k] for k in wrt], allow_unused=True)
    for k, a, t in zip(wrt, hga, hgt, strict=True):
        want = np.zeros(arrays[k].shape, np.float32) if t is None else t.numpy()
        got = np.zeros_like(want) if a is None else a.numpy()
        _assert_close(f"{c.id}: second-order grad of input {k}", got, want, 1e-4, 1e-4)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_op(c: Case) -> None:
    run_case(c)


SECOND = [c for c in CASES if c.second]


# Gradients at ties, where amber's documented rule differs from PyTorch's. Kept as strict
# expected failures: they start passing (and must then be moved into CASES) if amber
# adopts PyTorch's rule.
_TIES = np.array([[1.0, 2.0, 2.0], [0.5, 0.5, 3.0]], np.float32)
TIE_CASES = [
    Case("max-dim-tie", lambda x: am.max(x, 1).values, lambda x: torch.max(x, 1).values,
         (f(2, 3),)),
    Case("min-dim-tie", lambda x: am.min(x, 1).values, lambda x: torch.min(x, 1).values,
         (f(2, 3),)),
    Case("clamp-at-bound", lambda x: am.clamp(x, 0.5, 2.0), lambda x: torch.clamp(x, 0.5, 2.0),
         (f(2, 3),)),
]


@pytest.mark.xfail(strict=True, reason="max/min(x, dim) share a tied gradient evenly and "
                   "clamp gives half the gradient at a bound (amber's maximum/minimum tie "
                   "rule); PyTorch gives all of it to the selected element")
@pytest.mark.parametrize("c", TIE_CASES, ids=[c.id for c in TIE_CASES])
def test_tie_gradients(c: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "_make_inputs", lambda _c: [_TIES.copy()])
    run_case(c)


@pytest.mark.parametrize("c", SECOND, ids=[c.id for c in SECOND])
def test_second_order(c: Case) -> None:
    run_second_order(c)


# --------------------------------------------------------------------------- coverage


@contextmanager
def _recording() -> Iterator[set[str]]:
    """Record the name of every primitive whose kernel runs inside the block."""
    seen: set[str] = set()
    ckernels.settle()  # eager kernels decided: the recorder wraps what eager mode runs
    saved = {name: p.eager for name, p in REGISTRY.items()}

    def recorder(name: str, impl: Callable[..., Any]) -> Callable[..., Any]:
        def kernel(*args: Any, **kw: Any) -> Any:
            seen.add(name)
            return impl(*args, **kw)

        return kernel

    try:
        for name, p in REGISTRY.items():
            p.eager = recorder(name, saved[name])
        yield seen
    finally:
        for name, p in REGISTRY.items():
            p.eager = saved[name]


def test_every_primitive_is_cross_checked() -> None:
    """Every registered primitive runs (forward or in a VJP) in some case above."""
    with _recording() as seen:
        for c in CASES:  # failures are reported by test_op / test_second_order
            try:
                run_case(c)
            except Exception:
                pass
        for c in SECOND:
            try:
                run_second_order(c)
            except Exception:
                pass
    missing = sorted(set(REGISTRY) - seen)
    assert not missing, (
        f"primitives without a PyTorch cross-check: {missing}; add a case to "
        f"tests/torch_xcheck/test_ops.py that runs each of them (forward and gradient)"
    )


def _front_end_names() -> list[str]:
    return sorted(
        n for n, o in vars(AF).items()
        if inspect.isfunction(o) and o.__module__ == AF.__name__ and not n.startswith("_")
    )


# Front-end helpers that are not user-facing ops (or are checked through another name).
_NOT_OPS = {"scalar", "reshape_exact"}
# Case-id prefixes that exercise a front-end function under another spelling.
_COVERED_BY = {
    "cast": ("to-", "double", "float-from", "int-to", "bool-to", "type_as"),
    "einsum_linear": ("linear",), "div": ("truediv", "div-", "am.div", "rdiv"),
    "floor_divide": ("floordiv", "floor_divide"), "neg": ("neg",), "pow": ("pow", "rpow"),
    "view": ("view",), "max": ("max-",), "min": ("min-",), "any": ("any-",), "all": ("all-",),
    "sum": ("sum-",), "mean": ("mean-",), "var": ("var-",), "std": ("std-",),
    "matmul": ("matmul", "rmatmul"), "mm": ("mm",), "t": ("am.t", "T", "t-method"),
    "transpose": ("transpose", "am.transpose", "mT"), "prod": ("prod-",),
    "logical_and": ("logical_and", "and-op"), "logical_or": ("logical_or", "or-op"),
    "logical_not": ("logical_not", "invert-op"), "abs": ("am.abs", "abs-"),
    "getitem": ("index-",), "split": ("split-",), "cat": ("cat",),
    "stack": ("stack",), "add": ("add", "radd"), "sub": ("sub", "rsub"),
    "mul": ("mul", "rmul", "am.mul"), "gather": ("gather", "am.gather"),
}


def _tensor_method_names() -> list[str]:
    tensor_module = importlib.import_module("amber.tensor")  # am.tensor is the function
    return sorted(set(tensor_module.FUNCTIONAL_METHODS) | {
        "where", "view_as", "to", "float", "double", "long", "int", "bool", "type_as", "detach"})


def test_every_tensor_method_is_cross_checked() -> None:
    """Every forwarding Tensor method is called by some case (checked by instrumenting
    the class while all cases run)."""
    names = _tensor_method_names()
    called: set[str] = set()
    saved = {n: am.Tensor.__dict__[n] for n in names}

    def recorder(n: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def method(self: Any, *args: Any, **kw: Any) -> Any:
            called.add(n)
            return fn(self, *args, **kw)

        return method

    try:
        for n in names:
            setattr(am.Tensor, n, recorder(n, saved[n]))
        for c in CASES:
            try:
                run_case(c)
            except Exception:
                pass
    finally:
        for n in names:
            setattr(am.Tensor, n, saved[n])
    missing = sorted(set(names) - called)
    assert not missing, f"Tensor methods without a PyTorch cross-check: {missing}"


def test_every_front_end_function_is_cross_checked() -> None:
    """Each public function of amber.functional has at least one case (by case id)."""
    ids = [c.id for c in CASES]
    missing = []
    for name in _front_end_names():
        if name in _NOT_OPS:
            continue
        prefixes = _COVERED_BY.get(name, ())
        if not any(i == name or i.startswith((name + "-", name + "(", f"am.{name}"))
                   or i.startswith(prefixes) for i in ids):
            missing.append(name)
    assert not missing, f"amber.functional functions without a PyTorch cross-check: {missing}"


# --------------------------------------------------------------------------- dtype promotion

_DT = ["bool", "int32", "int64", "float32", "float64"]


def _sample(dt: str, shape: tuple[int, ...] = (4,)) -> np.ndarray:
    rng = np.random.default_rng(7)
    if dt == "bool":
        return rng.random(shape) < 0.5
    return np.asarray(rng.integers(1, 5, shape), dtype=dt)


def _result(fn_a: Callable[..., Any], fn_t: Callable[..., Any], *xs: Any) -> tuple[Any, Any]:
    a = fn_a(*[am.tensor(x) if isinstance(x, np.ndarray) else x for x in xs])
    t = fn_t(*[torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in xs])
    return a, t


def _same(a: Any, t: Any, what: str) -> None:
    assert a.dtype.name == _torch_dtype_name(t), (
        f"{what}: amber {a.dtype.name}, torch {_torch_dtype_name(t)}")
    _assert_close(what, a.numpy(), t.numpy(), RTOL, ATOL)


_PROMOTING = {
    "add": (operator.add, operator.add), "sub": (operator.sub, operator.sub),
    "mul": (operator.mul, operator.mul), "truediv": (operator.truediv, operator.truediv),
    "maximum": (am.maximum, torch.maximum), "minimum": (am.minimum, torch.minimum),
    "eq": (operator.eq, operator.eq), "lt": (operator.lt, operator.lt),
    "where": (lambda x, y: am.where(x > 2, x, y), lambda x, y: torch.where(x > 2, x, y)),
    "matmul": (operator.matmul, operator.matmul),
    "cat": (lambda x, y: am.cat([x, y]), lambda x, y: torch.cat([x, y])),
}


@pytest.mark.parametrize("op", sorted(_PROMOTING))
@pytest.mark.parametrize("da", _DT)
@pytest.mark.parametrize("db", _DT)
def test_tensor_tensor_promotion(op: str, da: str, db: str) -> None:
    """bool < int32 < int64 < float32 < float64, as torch for tensors of rank >= 1."""
    if "bool" in (da, db) and op in ("sub", "matmul", "where"):
        pytest.skip("torch rejects or special-cases bool here")
    if op == "matmul" and da != db:
        pytest.skip("torch.matmul does not promote (amber does)")
    if da == db == "bool" and op in ("add", "mul", "truediv"):
        pytest.skip("amber computes bool arithmetic in int64 (torch keeps bool)")
    _same(*_result(*_PROMOTING[op], _sample(da), _sample(db)), f"{op}({da}, {db})")


@pytest.mark.parametrize("scalar", [True, 3, 2.5], ids=["bool", "int", "float"])
@pytest.mark.parametrize("op", ["add", "mul", "truediv", "maximum", "eq", "pow"])
@pytest.mark.parametrize("dt", _DT)
def test_tensor_scalar_promotion(op: str, dt: str, scalar: Any) -> None:
    """Python scalars are weak: they only raise the category (bool < int < float)."""
    if dt == "bool" and isinstance(scalar, bool) and op in ("add", "mul", "pow"):
        pytest.skip("amber computes bool arithmetic in int64 (torch keeps bool)")
    if op == "pow" and (dt == "bool" or isinstance(scalar, bool)):
        pytest.skip("pow with bool operands: amber computes in float, torch in the int dtype")
    if op == "maximum":
        fa, ft = (lambda x: am.maximum(x, scalar)), (lambda x: torch.clamp_min(x, scalar))
        if isinstance(scalar, bool) or dt == "bool":
            pytest.skip("torch.clamp_min on bool is not defined")
    else:
        fn = {"add": operator.add, "mul": operator.mul, "truediv": operator.truediv,
              "eq": operator.eq, "pow": operator.pow}[op]
        fa = ft = lambda x: fn(x, scalar)
    _same(*_result(fa, ft, _sample(dt)), f"{op}({dt}, {scalar!r})")
    if op in ("add", "mul", "truediv") and not (dt == "bool" and isinstance(scalar, bool)):
        rfn = {"add": operator.add, "mul": operator.mul, "truediv": operator.truediv}[op]
        r = lambda x: rfn(scalar, x)
        _same(*_result(r, r, _sample(dt)), f"{op}({scalar!r}, {dt})")


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "tanh", "sigmoid", "sin", "cos",
                                  "erf", "softmax"])
@pytest.mark.parametrize("dt", ["int32", "int64"])
def test_float_ops_on_integers(name: str, dt: str) -> None:
    """Floating-only ops convert integer inputs to the default float dtype, as torch."""
    if name == "softmax":
        fa, ft = (lambda x: am.softmax(x, 0)), (lambda x: torch.softmax(x.float(), 0))
    else:
        fa, ft = getattr(am, name), getattr(torch, name)
    _same(*_result(fa, ft, _sample(dt)), f"{name}({dt})")


@pytest.mark.parametrize("name", ["abs", "neg", "sign", "floor", "clamp", "argmax", "max",
                                  "sum-bool", "any", "all", "floor_divide"])
@pytest.mark.parametrize("dt", ["int32", "int64", "float64"])
def test_dtype_preserving_ops(name: str, dt: str) -> None:
    """Ops that keep the input dtype (or return int64/bool) agree with torch."""
    x = _sample(dt, (3, 4))
    table: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "abs": (am.abs, torch.abs), "neg": (am.neg, torch.neg), "sign": (am.sign, torch.sign),
        "floor": (am.floor, torch.floor),
        "clamp": (lambda v: am.clamp(v, 2, 3), lambda v: torch.clamp(v, 2, 3)),
        "argmax": (lambda v: am.argmax(v, 1), lambda v: torch.argmax(v, 1)),
        "max": (lambda v: am.max(v), lambda v: torch.max(v)),
        "sum-bool": (lambda v: (v > 2).sum(), lambda v: (v > 2).sum()),
        "any": (lambda v: am.any(v, 0), lambda v: torch.any(v, 0)),
        "all": (lambda v: am.all(v, 1), lambda v: torch.all(v, 1)),
        "floor_divide": (lambda v: am.floor_divide(v, 2), lambda v: torch.floor_divide(v, 2)),
    }
    if name == "floor" and dt != "float64":
        pytest.skip("torch.floor on integers keeps the dtype; checked in test_op")
    _same(*_result(*table[name], x), f"{name}({dt})")
