"""Prints the float32 polynomials of runtime/src/k_transcendental.inc, each interpolated at
Chebyshev points (close to the minimax polynomial), converted to monomials and rounded to
float32, lowest power first, with its largest error on a fine grid (in double; relative,
but absolute for erfc, whose result is subtracted from 1):

- exp:  e^r = 1 + r + r^2 P(r) for |r| <= ln2 / 2 (about 0.347; 0.35 here); also e^r - 1
  = r + r^2 P(r), from which tanh is formed
- erf (near): erf x = x P(z), z = x^2, for |x| < 1
- erf (far): erfc x = P(s), s = x - 2.5 (exact in float), for 1 <= x <= 4

The exhaustive check of the resulting functions is tests/runtime/ulp_transcendental.c.

    python scripts/transcendental_coefficients.py
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as P

Fn = Callable[[float], float]


def _small(f: Fn, series: Fn) -> Fn:
    """f, with its series near 0 where f cancels."""
    return lambda v: series(v) if abs(v) < 1e-4 else f(v)


def _exp_p(r: float) -> float:
    return (math.exp(r) - 1 - r) / r**2


def _erf_p(z: float) -> float:
    return math.erf(math.sqrt(z)) / math.sqrt(z)


FITS: dict[str, tuple[Fn, float, float, int, float]] = {
    # name: (function, lo, hi, degree, shift: the polynomial is in x - shift)
    "exp": (_small(_exp_p, lambda r: 0.5 + r / 6), -0.35, 0.35, 4, 0.0),
    "erf_near": (_small(_erf_p, lambda z: 2 / math.sqrt(math.pi) * (1 - z / 3)), 0.0, 1.0, 5, 0.0),
    "erf_far": (math.erfc, 1.0, 4.0, 15, 2.5),
}


def coefficients(name: str) -> tuple[np.ndarray, float]:
    f, lo, hi, degree, shift = FITS[name]
    half, mid = (hi - lo) / 2, (hi + lo) / 2

    def g(t: np.ndarray) -> np.ndarray:
        return np.array([f(v) for v in np.atleast_1d(half * t + mid)])

    cheb = C.chebinterpolate(g, degree)  # type: ignore[arg-type, type-var]
    in_t = np.polynomial.Polynomial(C.cheb2poly(cheb))
    mono = in_t(np.polynomial.Polynomial([(shift - mid) / half, 1 / half])).coef  # in x - shift
    c = np.asarray(mono, dtype=np.float32).astype(np.float64)
    t = np.linspace(-1.0, 1.0, 20001)
    err = P.polyval(half * t + mid - shift, c) - g(t)
    return c, float(np.max(np.abs(err if shift else err / g(t))))


def _hex(v: float) -> str:
    """v as a C float literal: 0x1.555556p-3f."""
    mant, exp = float(v).hex().split("p")
    return f"{mant.rstrip('0').rstrip('.')}p{exp}f"


def main() -> None:
    for name in FITS:
        c, err = coefficients(name)
        print(f"{name}: max error {err:.3g}")
        print("    " + ", ".join(_hex(v) for v in c))


if __name__ == "__main__":
    main()
