"""Prints the polynomial of runtime/src/k_transcendental.inc's float32 erf for 1 <= |x| < 4:
G(x) = erfc(x) * exp(x^2) interpolated at Chebyshev points of [1, 4] (degree 16), as
monomial coefficients in t = (2x - 5) / 3, lowest first; and its largest relative error on
a fine grid (about 6e-12: far below float32's half ULP of 3e-8).

    python scripts/erf_coefficients.py
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import chebyshev as C

DEGREE, LO, HI = 16, 1.0, 4.0


def g(t: np.ndarray) -> np.ndarray:
    x = (HI - LO) / 2 * t + (HI + LO) / 2
    return np.array([math.erfc(v) * math.exp(v * v) for v in np.atleast_1d(x)])


def main() -> None:
    mono = C.cheb2poly(C.chebinterpolate(g, DEGREE))
    t = np.linspace(-1.0, 1.0, 20001)
    approx = np.zeros_like(t) + mono[-1]
    for c in mono[-2::-1]:
        approx = approx * t + c
    print("coefficients (t^0 first):")
    for c in mono:
        print(f"    {c:.17g},")
    print(f"max relative error: {np.max(np.abs(approx / g(t) - 1)):.3g}")


if __name__ == "__main__":
    main()
