"""Symbolic dimensions: exact integer expressions over named sizes.

A symbolic dimension is a polynomial with integer coefficients over *atoms*; an atom is
a symbol (a named size such as ``batch``, whose runtime value is an integer >= 1) or a
floor division ``(e // k)`` of an expression by a positive integer constant. Arithmetic
(``+ - *``, ``//`` and ``%`` by constants, exact division by a monomial) keeps the
expression exact and canonical, so two expressions are equal exactly when their
canonical forms are, and an expression whose value is known is a plain ``int``.

Anything that needs the runtime value of a symbolic size (``int()``, ``range()``,
``float()``, a comparison whose answer depends on the size) raises
:class:`amber.CaptureError` naming the user's line.

The serialised form is a string in this grammar (``docs/format.md``)::

    expr   := ["-"] term (("+" | "-") term)*
    term   := factor (("*" | "//") factor)*      # right operand of "//" is an INT >= 1
    factor := INT | NAME | "(" expr ")"
    NAME   := [A-Za-z_][A-Za-z0-9_]*
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Union

from ..errors import CaptureError, LimitError

Dim = Union[int, "DimExpr"]

# Frames report the path a module was imported under (maybe not normalised): match both.
_AMBER_DIR = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
              os.path.dirname(os.path.dirname(__file__)) + os.sep)
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_EXPR_CHARS = 4096
MAX_EXPR_DEPTH = 64
MAX_EXPR_TERMS = 1024
"""Most terms an expression may have, expanded (docs/format.md H.2): parsing refuses a
text whose expansion could exceed it (products of sums multiply their term counts), so
that a file cannot make the canonical form blow up."""


def is_symbol_name(name: object) -> bool:
    """True if ``name`` is a valid symbol name."""
    return isinstance(name, str) and bool(_NAME_RE.match(name))


def _refusal(what: str, fix: str | None = None) -> CaptureError:
    from ..capture_errors import user_frame

    path, line, text = user_frame()
    where = f"{path}:{line}" + (f": {text}" if text else "")
    fix = fix or (
        "Give the dimension a static size in am.spec(...), or keep the computation in "
        "tensor ops (a symbolic size used in tensor arithmetic is captured exactly); for a "
        "data-dependent branch or loop use am.cond / am.while_loop."
    )
    return CaptureError(f"{where}\n  {what}: the answer depends on the runtime size, which is "
                        f"symbolic during capture. {fix}")


def _called_from_amber() -> bool:
    """True if the comparison was made by amber's own code (frame 2 = the caller)."""
    f = sys._getframe(2)
    return f.f_code.co_filename.startswith(_AMBER_DIR)


class FloorDiv:
    """Atom ``(expr // k)`` with ``k >= 2`` and ``expr`` not divisible by ``k``."""

    __slots__ = ("expr", "k", "_key")

    def __init__(self, expr: DimExpr, k: int) -> None:
        self.expr = expr
        self.k = k
        self._key = ("~", expr._key(), k)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FloorDiv) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def sort_key(self) -> tuple:
        return (1, str(self))

    def __str__(self) -> str:
        inner = str(self.expr)
        if not _NAME_RE.match(inner):
            inner = f"({inner})"
        return f"{inner}//{self.k}"


Atom = str | FloorDiv
Monomial = tuple[tuple[Atom, int], ...]  # sorted atoms with positive powers


def _atom_key(a: Atom) -> tuple:
    return (0, a) if isinstance(a, str) else a.sort_key()


def _mono_key(m: Monomial) -> tuple:
    return tuple((_atom_key(a), p) for a, p in m)


def _mono_mul(a: Monomial, b: Monomial) -> Monomial:
    powers: dict[Atom, int] = dict(a)
    for atom, p in b:
        powers[atom] = powers.get(atom, 0) + p
    return tuple(sorted(powers.items(), key=lambda ap: _atom_key(ap[0])))


def _normalise(terms: Mapping[Monomial, int]) -> Dim:
    items = [(m, c) for m, c in terms.items() if c != 0]
    if not items:
        return 0
    if len(items) == 1 and items[0][0] == ():
        return items[0][1]
    items.sort(key=lambda mc: (mc[0] == (), _mono_key(mc[0])))
    e = object.__new__(DimExpr)
    e._terms = tuple(items)
    e._hash = None
    return e


def _terms_of(x: Dim) -> dict[Monomial, int]:
    if isinstance(x, DimExpr):
        return dict(x._terms)
    return {(): int(x)} if x else {}


def _as_dim(x: Any) -> Dim | None:
    """``x`` as an int or DimExpr, or None if it is neither (bools are not dims)."""
    if isinstance(x, DimExpr):
        return x
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    try:
        import numpy as np

        if isinstance(x, np.integer):
            return int(x)
    except ImportError:  # pragma: no cover
        pass
    return None


def symbol(name: str) -> DimExpr:
    """The symbolic size called ``name``."""
    if not is_symbol_name(name):
        raise ValueError(f"invalid symbol name {name!r}: use letters, digits and _, not "
                         f"starting with a digit")
    e = _normalise({((name, 1),): 1})
    assert isinstance(e, DimExpr)
    return e


def add(a: Dim, b: Dim) -> Dim:
    t = _terms_of(a)
    for m, c in _terms_of(b).items():
        t[m] = t.get(m, 0) + c
    return _normalise(t)


def mul(a: Dim, b: Dim) -> Dim:
    ta, tb = _terms_of(a), _terms_of(b)
    if len(ta) * len(tb) > MAX_EXPR_TERMS:
        raise LimitError(f"a product of dim expressions with {len(ta)} and {len(tb)} terms "
                         f"would expand to more than {MAX_EXPR_TERMS} terms")
    t: dict[Monomial, int] = {}
    for ma, ca in ta.items():
        for mb, cb in tb.items():
            m = _mono_mul(ma, mb)
            t[m] = t.get(m, 0) + ca * cb
    return _normalise(t)


def neg(a: Dim) -> Dim:
    return _normalise({m: -c for m, c in _terms_of(a).items()})


def floordiv_const(a: Dim, k: int) -> Dim:
    """``a // k`` for an integer constant ``k >= 1`` (floor division, exact)."""
    if k < 1:
        raise ValueError(f"a symbolic dimension can only be floor-divided by a positive "
                         f"constant, got {k}")
    if not isinstance(a, DimExpr):
        return a // k
    if k == 1:
        return a
    exact: dict[Monomial, int] = {}
    rest: dict[Monomial, int] = {}
    for m, c in a._terms:
        if m == ():
            # keep the constant's remainder in [0, k) inside the atom
            exact[()] = (c // k) * k
            if c % k:
                rest[()] = c % k
        elif c % k == 0:
            exact[m] = c
        else:
            rest[m] = c
    q = _normalise({m: c // k for m, c in exact.items()})
    r = _normalise(rest)
    if not isinstance(r, DimExpr):
        return add(q, r // k)
    # (e // a) // b == e // (a * b) for positive a, b
    if len(r._terms) == 1 and r._terms[0][1] == 1:
        (mono, _), = r._terms
        if len(mono) == 1 and isinstance(mono[0][0], FloorDiv) and mono[0][1] == 1:
            inner = mono[0][0]
            return add(q, floordiv_const(inner.expr, inner.k * k))
    return add(q, _normalise({((FloorDiv(r, k), 1),): 1}))


def exact_div(a: Dim, b: Dim) -> Dim | None:
    """``a / b`` if ``b`` (a monomial) divides ``a`` exactly as polynomials, else None."""
    if not isinstance(b, DimExpr):
        if b == 0:
            return None
        ta = _terms_of(a)
        if all(c % b == 0 for c in ta.values()):
            return _normalise({m: c // b for m, c in ta.items()})
        return None
    if len(b._terms) != 1:
        return None
    (mb, cb), = b._terms
    need = dict(mb)
    out: dict[Monomial, int] = {}
    for m, c in _terms_of(a).items():
        have = dict(m)
        if c % cb or any(have.get(atom, 0) < p for atom, p in need.items()):
            return None
        rest = {atom: p - need.get(atom, 0) for atom, p in have.items()}
        mono = tuple(sorted(((x, p) for x, p in rest.items() if p),
                            key=lambda ap: _atom_key(ap[0])))
        out[mono] = out.get(mono, 0) + c // cb
    return _normalise(out)


# ----------------------------------------------------------------------------- bounds

_INF = math.inf


def _imul(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
    """Product of intervals whose ends are ints, Fractions or +-inf."""
    prods = []
    for x in a:
        for y in b:
            prods.append(0 if x == 0 or y == 0 else x * y)  # 0 * inf is 0 here
    return min(prods), max(prods)


def _interval_bounds(a: DimExpr) -> tuple[float, float]:
    lo, hi = 0.0, 0.0
    for m, c in a._terms:
        iv: tuple[float, float] = (1.0, 1.0)
        for atom, p in m:
            if isinstance(atom, str):
                ab: tuple[float, float] = (1.0, _INF)
            else:
                el, eh = bounds(atom.expr)
                ab = (math.floor(el / atom.k) if el != -_INF else -_INF,
                      math.floor(eh / atom.k) if eh != _INF else _INF)
            for _ in range(p):
                iv = _imul(iv, ab)
        iv = _imul(iv, (float(c), float(c)))
        lo, hi = lo + iv[0], hi + iv[1]
    return lo, hi


# A polynomial with rational coefficients over variables: symbols (names) and remainders
# ("%0", "%1", ...: not valid names), keyed by sorted ((variable, power), ...).
_RPoly = dict[tuple[tuple[str, int], ...], Fraction]
_MAX_RPOLY_TERMS = 64


def _rmul(a: _RPoly, b: _RPoly) -> _RPoly | None:
    out: _RPoly = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            powers = dict(ma)
            for v, p in mb:
                powers[v] = powers.get(v, 0) + p
            m = tuple(sorted(powers.items()))
            out[m] = out.get(m, Fraction(0)) + ca * cb
    out = {m: c for m, c in out.items() if c}
    return out if len(out) <= _MAX_RPOLY_TERMS else None


def _remainder_form(d: Dim, rem: dict[FloorDiv, tuple[str, int]]) -> _RPoly | None:
    """``d`` with every atom ``(e // k)`` written as ``(e - r) / k`` for its remainder
    variable ``r`` in ``[0, k - 1]`` (``rem``: atom -> (r, k - 1)): exact, and terms
    that the atoms hid from each other cancel (``n - n//2`` is ``n/2 + r/2``). None if the
    expression grows past a small bound."""
    if not isinstance(d, DimExpr):
        return {(): Fraction(int(d))} if d else {}
    total: _RPoly = {}
    for m, c in d._terms:
        prod: _RPoly | None = {(): Fraction(c)}
        for atom, p in m:
            if isinstance(atom, str):
                x: _RPoly = {((atom, 1),): Fraction(1)}
            else:
                inner = _remainder_form(atom.expr, rem)
                if inner is None:
                    return None
                r = rem.setdefault(atom, (f"%{len(rem)}", atom.k - 1))[0]
                x = {mm: cc / atom.k for mm, cc in inner.items()}
                x[((r, 1),)] = Fraction(-1, atom.k)
            for _ in range(p):
                prod = _rmul(prod, x) if prod is not None else None
        if prod is None:
            return None
        for mm, cc in prod.items():
            total[mm] = total.get(mm, Fraction(0)) + cc
    return {m: c for m, c in total.items() if c}


def bounds(a: Dim) -> tuple[float, float]:
    """An interval containing every value of ``a`` when each symbol is >= 1. Floor
    divisions are bounded twice, as atoms and by their remainders (``n - n//2 >= 1``),
    and the tighter ends are kept."""
    if not isinstance(a, DimExpr):
        return (a, a)
    lo, hi = _interval_bounds(a)
    if all(isinstance(atom, str) for m, _ in a._terms for atom, _ in m):
        return lo, hi
    rem: dict[FloorDiv, tuple[str, int]] = {}
    poly = _remainder_form(a, rem)
    if poly is not None:
        top = {r: k1 for r, k1 in rem.values()}
        # NOTE: exact (Fractions, and inf for unbounded ends): a float rounding error
        # would be rounded up to a wrong integer bound below
        one, zero = Fraction(1), Fraction(0)
        rlo: Any = zero
        rhi: Any = zero
        for m, c in poly.items():
            iv: tuple[Any, Any] = (one, one)
            for v, p in m:
                vb = (zero, Fraction(top[v])) if v in top else (one, _INF)
                for _ in range(p):
                    iv = _imul(iv, vb)
            iv = _imul(iv, (c, c))
            rlo, rhi = rlo + iv[0], rhi + iv[1]
        # the value is an integer: round the ends inwards
        lo = max(lo, math.ceil(rlo) if math.isfinite(rlo) else rlo)
        hi = min(hi, math.floor(rhi) if math.isfinite(rhi) else rhi)
    return lo, hi


# ----------------------------------------------------------------------------- DimExpr

class DimExpr:
    """A symbolic dimension (see the module docstring). Immutable and hashable."""

    __amber_dim__ = True  # creation functions recognise symbolic sizes by this

    __slots__ = ("_terms", "_hash")
    _amber_symbolic_int = True

    _terms: tuple[tuple[Monomial, int], ...]
    _hash: int | None

    def _key(self) -> tuple:
        return tuple((_mono_key(m), c) for m, c in self._terms)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(("dim", self._key()))
        return self._hash

    @property
    def symbols(self) -> frozenset[str]:
        """Names of the symbols the expression depends on."""
        return free_symbols(self)

    def is_symbol(self) -> bool:
        """True if the expression is exactly one symbol (``batch``)."""
        return (len(self._terms) == 1 and self._terms[0][1] == 1
                and len(self._terms[0][0]) == 1 and isinstance(self._terms[0][0][0][0], str)
                and self._terms[0][0][0][1] == 1)

    @property
    def name(self) -> str:
        """The symbol's name (only for a plain symbol)."""
        if not self.is_symbol():
            raise ValueError(f"{self} is not a plain symbol")
        return self._terms[0][0][0][0]  # type: ignore[return-value]

    # -- arithmetic --------------------------------------------------------------
    def __add__(self, o: Any) -> Any:
        d = _as_dim(o)
        if d is None:
            return self._other(o, "+")
        return add(self, d)

    __radd__ = __add__

    def __sub__(self, o: Any) -> Any:
        d = _as_dim(o)
        if d is None:
            return self._other(o, "-")
        return add(self, neg(d))

    def __rsub__(self, o: Any) -> Any:
        d = _as_dim(o)
        if d is None:
            return self._other(o, "-")
        return add(d, neg(self))

    def __mul__(self, o: Any) -> Any:
        d = _as_dim(o)
        if d is None:
            return self._other(o, "*")
        return mul(self, d)

    __rmul__ = __mul__

    def __neg__(self) -> Dim:
        return neg(self)

    def __pos__(self) -> DimExpr:
        return self

    def __abs__(self) -> Dim:
        lo, hi = bounds(self)
        if lo >= 0:
            return self
        if hi <= 0:
            return neg(self)
        raise _refusal(f"abs() of the symbolic size {self}")

    def __floordiv__(self, o: Any) -> Any:
        d = _as_dim(o)
        if d is None:
            return self._other(o, "//")
        if isinstance(d, int):
            if d < 1:
                raise _refusal(f"{self} // {d}", "A symbolic size can only be divided by a "
                               "positive constant.")
            return floordiv_const(self, d)
        q = exact_div(self, d)
        if q is None:
            raise _refusal(f"{self} // {d} (division by a symbolic size that does not divide "
                           f"exactly)")
        return q

    def __rfloordiv__(self, o: Any) -> Any:
        d = _as_dim(o)
        if d is None:
            return self._other(o, "//")
        q = exact_div(d, self)
        if q is None:
            raise _refusal(f"{d} // {self} (division by a symbolic size)")
        return q

    def __mod__(self, o: Any) -> Any:
        d = _as_dim(o)
        if d is None:
            return self._other(o, "%")
        if isinstance(d, int):
            if d < 1:
                raise _refusal(f"{self} % {d}")
            return add(self, neg(mul(d, floordiv_const(self, d))))
        if exact_div(self, d) is not None:
            return 0
        raise _refusal(f"{self} % {d} (remainder by a symbolic size)")

    def __rmod__(self, o: Any) -> Any:
        d = _as_dim(o)
        if d is None:
            return self._other(o, "%")
        if isinstance(d, int):
            lo, _ = bounds(self)
            if 0 <= d < lo:
                return d
            if d < 0 and lo >= -d:
                return add(self, d)  # e.g. -1 % n == n - 1 for n >= 1
        elif exact_div(d, self) is not None:
            return 0
        raise _refusal(f"{d} % {self} (e.g. an index that may be out of range of the "
                       f"symbolic size)")

    def __pow__(self, o: Any) -> Any:
        if isinstance(o, int) and not isinstance(o, bool) and o >= 0:
            r: Dim = 1
            for _ in range(o):
                r = mul(r, self)
            return r
        raise _refusal(f"{self} ** {o!r}")

    def __truediv__(self, o: Any) -> Any:
        raise _refusal(f"true division {self} / {o!r} (a float from a symbolic size)",
                       "Use // for an exact size, or divide a tensor by the size (x / "
                       "x.shape[0] is captured exactly).")

    def __rtruediv__(self, o: Any) -> Any:
        raise _refusal(f"true division {o!r} / {self} (a float from a symbolic size)",
                       "Divide a tensor by the size instead (x / x.shape[0] is captured "
                       "exactly).")

    def _other(self, o: Any, op: str) -> Any:
        if isinstance(o, float):
            raise _refusal(f"{self} {op} {o!r} (mixing a symbolic size with a Python float)",
                           "Use the size in tensor arithmetic instead (x * x.shape[0] is "
                           "captured exactly), or give it a static size in am.spec(...).")
        return NotImplemented

    # -- conversions that need a value ------------------------------------------
    def __int__(self) -> int:
        raise _refusal(f"int() of the symbolic size {self}")

    def __index__(self) -> int:
        raise _refusal(f"using the symbolic size {self} as a Python integer (range(), "
                       f"indexing, a creation function's size)",
                       "Use tensor ops that follow the input's shape (am.zeros_like, "
                       "broadcasting, reshape(x.shape[0], -1)), or give the dimension a "
                       "static size in am.spec(...); for a data-dependent loop use "
                       "am.while_loop.")

    def __float__(self) -> float:
        raise _refusal(f"float() of the symbolic size {self}")

    def __complex__(self) -> complex:
        raise _refusal(f"complex() of the symbolic size {self}")

    def __round__(self, n: Any = None) -> Any:
        if n is None:
            return self
        raise _refusal(f"round() of the symbolic size {self}")

    def __trunc__(self) -> Any:
        return self

    def __floor__(self) -> Any:
        return self

    def __ceil__(self) -> Any:
        return self

    def __iter__(self) -> Any:
        raise _refusal(f"iterating over the symbolic size {self}")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise _refusal(f"converting the symbolic size {self} to an array (np.asarray, "
                       f"am.tensor, a constant)",
                       "Use it in tensor arithmetic instead (x * x.shape[0] is captured "
                       "exactly), or give the dimension a static size in am.spec(...).")

    def __bool__(self) -> bool:
        lo, hi = bounds(self)
        if lo > 0 or hi < 0:
            return True
        raise _refusal(f"bool() of the symbolic size {self}")

    # -- comparisons --------------------------------------------------------------
    def _decide(self, o: Any, op: str) -> bool | None:
        d = _as_dim(o)
        if d is None:
            return None
        diff = add(self, neg(d))
        lo, hi = bounds(diff)
        if op == "==":
            if not isinstance(diff, DimExpr):
                return diff == 0
            if lo > 0 or hi < 0:
                return False
            return None
        if op == "<":
            return True if hi < 0 else False if lo >= 0 else None
        if op == "<=":
            return True if hi <= 0 else False if lo > 0 else None
        if op == ">":
            return True if lo > 0 else False if hi <= 0 else None
        return True if lo >= 0 else False if hi < 0 else None  # ">="

    def __eq__(self, o: Any) -> bool:  # type: ignore[override]
        d = _as_dim(o)
        if d is None:
            return NotImplemented
        r = self._decide(d, "==")
        if r is not None:
            return r
        if _called_from_amber():
            return False  # structural: amber's shape rules treat distinct sizes as distinct
        raise _refusal(f"comparing the symbolic size {self} with {d}")

    def __ne__(self, o: Any) -> bool:  # type: ignore[override]
        d = _as_dim(o)
        if d is None:
            return NotImplemented
        r = self._decide(d, "==")
        if r is not None:
            return not r
        if _called_from_amber():
            return True
        raise _refusal(f"comparing the symbolic size {self} with {d}")

    def _order(self, o: Any, op: str) -> bool:
        r = self._decide(o, op)
        if r is None:
            if _as_dim(o) is None:
                return NotImplemented  # type: ignore[return-value]
            raise _refusal(f"the comparison {self} {op} {o}")
        return r

    def __lt__(self, o: Any) -> bool:
        return self._order(o, "<")

    def __le__(self, o: Any) -> bool:
        return self._order(o, "<=")

    def __gt__(self, o: Any) -> bool:
        return self._order(o, ">")

    def __ge__(self, o: Any) -> bool:
        return self._order(o, ">=")

    # -- text ---------------------------------------------------------------------
    def __str__(self) -> str:
        return format_dim(self)

    def __repr__(self) -> str:
        return format_dim(self)

    def __reduce__(self) -> Any:
        return (parse_dim, (format_dim(self),))


# ----------------------------------------------------------------------------- helpers

def free_symbols(d: Any) -> frozenset[str]:
    """Symbols occurring in a dim (empty for an int)."""
    if not isinstance(d, DimExpr):
        return frozenset()
    out: set[str] = set()
    for m, _ in d._terms:
        for atom, _p in m:
            if isinstance(atom, str):
                out.add(atom)
            else:
                out |= free_symbols(atom.expr)
    return frozenset(out)


def symbols_in(v: Any) -> frozenset[str]:
    """Symbols occurring in a dim or a (nested) tuple or list of them (an attribute, a
    shape)."""
    if isinstance(v, DimExpr):
        return free_symbols(v)
    if isinstance(v, (tuple, list)):
        out: frozenset[str] = frozenset()
        for x in v:
            out |= symbols_in(x)
        return out
    return frozenset()


def is_static(d: Any) -> bool:
    return not isinstance(d, DimExpr)


def dim_equal(a: Dim, b: Dim) -> bool:
    """Structural (canonical-form) equality of two dims, without refusing."""
    return _terms_of(a) == _terms_of(b) if (isinstance(a, DimExpr) or isinstance(b, DimExpr)) \
        else a == b


def evaluate(d: Any, env: Mapping[str, int]) -> int:
    """The integer value of ``d`` with symbols bound by ``env`` (KeyError names a missing
    symbol)."""
    if not isinstance(d, DimExpr):
        return int(d)
    total = 0
    for m, c in d._terms:
        v = c
        for atom, p in m:
            if isinstance(atom, str):
                x = env[atom]
            else:
                x = evaluate(atom.expr, env) // atom.k
            v *= x ** p
        total += v
    return total


def substitute(d: Any, env: Mapping[str, Dim]) -> Dim:
    """Replace symbols in ``d`` by dims (symbols missing from ``env`` stay)."""
    if not isinstance(d, DimExpr):
        return d
    total: Dim = 0
    for m, c in d._terms:
        v: Dim = c
        for atom, p in m:
            x: Dim
            if isinstance(atom, str):
                x = env.get(atom, symbol(atom))
            else:
                x = floordiv_const(substitute(atom.expr, env), atom.k)
            for _ in range(p):
                v = mul(v, x)
        total = add(total, v)
    return total


def fresh_symbol(taken: set[str], base: str = "d") -> DimExpr:
    """A symbol ``base0``, ``base1``, ... whose name is not in ``taken`` (which gets it)."""
    k = 0
    while f"{base}{k}" in taken:
        k += 1
    taken.add(f"{base}{k}")
    return symbol(f"{base}{k}")


Shape = tuple[Dim, ...]


def generalise(a: list[Shape], b: list[Shape], taken: set[str]) -> list[Shape]:
    """Shapes of which both ``a`` and ``b`` (lists of shapes of equal ranks) are
    instances: where the two agree on a static size or a plain symbol the dim is kept,
    and so is an expression they agree on whose symbols are all kept; every other dim
    becomes a fresh symbol (not in ``taken``), one per distinct pair of dims, so that
    positions that had equal sizes in both stay equal (``([n], [n])`` and
    ``([n-1], [n-1])`` give ``([d0], [d0])``). Every symbol of the result is bound by a
    dim that is a plain symbol. The symbols of ``a`` and ``b`` are added to ``taken``."""
    for shape in (*a, *b):
        for x in shape:
            taken |= free_symbols(x)
    kept: set[str] = set()
    for sa, sb in zip(a, b):
        for x, y in zip(sa, sb):
            if isinstance(x, DimExpr) and x.is_symbol() and dim_equal(x, y):
                kept.add(x.name)
    fresh: dict[tuple[str, str], DimExpr] = {}
    out: list[Shape] = []
    for sa, sb in zip(a, b):
        dims: list[Dim] = []
        for x, y in zip(sa, sb):
            if dim_equal(x, y) and free_symbols(x) <= kept:
                dims.append(x)
                continue
            pair = (format_dim(x), format_dim(y))
            if pair not in fresh:
                fresh[pair] = fresh_symbol(taken)
            dims.append(fresh[pair])
        out.append(tuple(dims))
    return out


def _format_monomial(m: Monomial, coef: int) -> str:
    factors: list[str] = []
    single = len(m) == 1 and m[0][1] == 1 and abs(coef) == 1
    for atom, p in m:
        s = str(atom)
        if isinstance(atom, FloorDiv) and not single:
            s = f"({s})"
        factors.extend([s] * p)
    if abs(coef) != 1 or not factors:
        factors.insert(0, str(abs(coef)))
    return "*".join(factors)


def format_dim(d: Any) -> str:
    """The canonical text of a dim (an int prints as itself)."""
    if not isinstance(d, DimExpr):
        return str(int(d))
    terms = list(d._terms)
    # Positive terms first so the text rarely needs a leading minus.
    terms.sort(key=lambda mc: mc[1] < 0)
    out = ""
    for i, (m, c) in enumerate(terms):
        body = _format_monomial(m, c)
        if i == 0:
            out = ("-" if c < 0 else "") + body
        else:
            out += ("-" if c < 0 else "+") + body
    return out


# ----------------------------------------------------------------------------- parsing

_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(//|[-+*()]))")
_PLAIN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(\d{1,19}))\s*")
"""A dim that is one symbol or one integer (most are), parsed without the parser."""


def parse_dim(text: Any) -> Dim:
    """Parse a dim: an int, or a string in the dim-expression grammar. Raises ValueError
    with the reason on anything else."""
    if isinstance(text, bool):
        raise ValueError(f"a dim must be an integer or an expression string, got {text!r}")
    if isinstance(text, int):
        return text
    if not isinstance(text, str):
        raise ValueError(f"a dim must be an integer or an expression string, got "
                         f"{type(text).__name__}")
    if len(text) > MAX_EXPR_CHARS:
        raise ValueError(f"dim expression is longer than {MAX_EXPR_CHARS} characters")
    plain = _PLAIN.fullmatch(text)
    if plain:  # NOTE: the parser's closures form reference cycles: garbage for the GC
        return symbol(plain[1]) if plain[1] is not None else int(plain[2])
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        mt = _TOKEN.match(text, pos)
        if not mt:
            raise ValueError(f"dim expression {text!r}: unexpected character at {pos}")
        if mt.group(1) is not None:
            tokens.append(("int", mt.group(1)))
        elif mt.group(2) is not None:
            tokens.append(("name", mt.group(2)))
        else:
            tokens.append(("op", mt.group(3)))
        pos = mt.end()
    if not tokens:
        raise ValueError("empty dim expression")
    i = 0

    def peek() -> tuple[str, str] | None:
        return tokens[i] if i < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal i
        if i >= len(tokens):
            raise ValueError(f"dim expression {text!r} ends unexpectedly")
        tok = tokens[i]
        i += 1
        return tok

    def factor(depth: int) -> tuple[Dim, int]:
        kind, val = take()
        if kind == "int":
            if len(val) > 19:
                raise ValueError(f"dim expression {text!r}: integer {val} is too large")
            return int(val), 1
        if kind == "name":
            return symbol(val), 1
        if val == "(":
            e = expr(depth + 1)
            if take() != ("op", ")"):
                raise ValueError(f"dim expression {text!r}: expected ')'")
            return e
        raise ValueError(f"dim expression {text!r}: unexpected {val!r}")

    def term(depth: int) -> tuple[Dim, int]:
        v, n = factor(depth)
        while peek() in (("op", "*"), ("op", "//")):
            _, op = take()
            if op == "*":
                f, m = factor(depth)
                n = _check_terms(n * m, text)
                v = mul(v, f)
            else:
                kind, k = take()
                if kind != "int" or int(k) < 1 or len(k) > 19:
                    raise ValueError(f"dim expression {text!r}: '//' must be followed by a "
                                     f"positive integer")
                v = floordiv_const(v, int(k))
        return v, n

    def expr(depth: int) -> tuple[Dim, int]:
        if depth > MAX_EXPR_DEPTH:
            raise ValueError(f"dim expression nests deeper than {MAX_EXPR_DEPTH} levels")
        sign = 1
        if peek() == ("op", "-"):
            take()
            sign = -1
        v, n = term(depth)
        if sign < 0:
            v = neg(v)
        while peek() in (("op", "+"), ("op", "-")):
            _, op = take()
            t, m = term(depth)
            n = _check_terms(n + m, text)
            v = add(v, t if op == "+" else neg(t))
        return v, n

    result, _ = expr(0)
    if i != len(tokens):
        raise ValueError(f"dim expression {text!r}: unexpected {tokens[i][1]!r}")
    return result


def _check_terms(n: int, text: str) -> int:
    """``n``, the bound on the expanded terms of a part of ``text`` (a sum adds its
    terms' bounds, a product multiplies its factors', ``//`` keeps its left operand's):
    over :data:`MAX_EXPR_TERMS`, :class:`amber.LimitError`."""
    if n > MAX_EXPR_TERMS:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise LimitError(f"dim expression {shown!r} may expand to more than "
                         f"{MAX_EXPR_TERMS} terms (the limit of docs/format.md H.2)")
    return n


def dim_to_json(d: Any) -> int | str:
    """A dim in the header: an int, or its canonical expression string."""
    return format_dim(d) if isinstance(d, DimExpr) else int(d)
