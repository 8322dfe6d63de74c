"""A piecewise-linear fit by recursive halving with a data-dependent stopping rule,
exported as one recursive function and run by amber's native C runtime.

    python examples/control/piecewise_fit.py [--tol TOL] [--out DIR] [--seed S]

``fit(t, y, tol)`` fits samples ``y`` at times ``t``: a run of samples is one piece, the
straight line through its first and last sample, if every sample is within ``tol`` of
that line; otherwise the run is split in halves (``y[:n // 2]``, ``y[n // 2:]``) and
each half is fitted the same way. It returns the sum of the fitted values and the number
of pieces. How deep the recursion goes depends on the data (a straight signal is one
piece, a bumpy one is split down to short runs), and a run of one or two samples always
fits, so the recursion never reaches an empty slice.

The recursive calls take slices whose sizes differ from the caller's, so capture traces
``fit`` once with its length as a symbol and records the recursion as a ``call`` of that
one function (not one function per length). The file has two entry points with a
symbolic number of samples ``n``: ``forward`` (``t, y, tol -> total, pieces``) and
``grad`` (``d total / d y``, by reverse mode through the recursion, checked against
central finite differences in float64). Eager execution, the reference interpreter and
the native runtime must agree (piece counts exactly). It prints a summary and exits
with status 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import amber as am

sys.path.insert(0, str(Path(__file__).resolve().parent))
from example_support import (
    MismatchError,
    add_test_vector,
    assert_close,
    flat,
    open_native,
    reference_run,
)

TOL = 0.05
"""Default tolerance: the largest distance of a sample from its piece's line."""


@am.function
def fit(t: am.Tensor, y: am.Tensor, tol: am.Tensor) -> tuple[am.Tensor, am.Tensor]:
    """``(sum of the fitted values, number of pieces)`` of the piecewise-linear fit of
    samples ``y`` at times ``t`` (float64 vectors of one length ``n >= 1``)."""
    n = y.shape[0]
    span = t[-1] - t[0]
    slope = (y[-1] - y[0]) / am.where(span > 0, span, am.ones_like(span))
    line = y[0] + slope * (t - t[0])
    one_piece = (y - line).abs().max() <= tol  # always true for n <= 2

    def split() -> tuple[am.Tensor, am.Tensor]:
        total_a, pieces_a = fit(t[:n // 2], y[:n // 2], tol)
        total_b, pieces_b = fit(t[n // 2:], y[n // 2:], tol)
        return total_a + total_b, pieces_a + pieces_b

    return am.cond(one_piece, lambda: (line.sum(), am.tensor(np.int64(1))), split)


def fit_reference(t: np.ndarray, y: np.ndarray, tol: float) -> tuple[float, int, int]:
    """NumPy: total, pieces and the recursion depth."""
    n = len(y)
    span = t[-1] - t[0]
    line = y[0] + (y[-1] - y[0]) / (span if span > 0 else 1.0) * (t - t[0])
    if np.abs(y - line).max() <= tol:
        return float(line.sum()), 1, 1
    a = fit_reference(t[:n // 2], y[:n // 2], tol)
    b = fit_reference(t[n // 2:], y[n // 2:], tol)
    return a[0] + b[0], a[1] + b[1], 1 + max(a[2], b[2])


def total_grad(t: am.Tensor, y: am.Tensor, tol: am.Tensor) -> am.Tensor:
    """``d total / d y`` by reverse mode through the recursion."""
    return am.grad(lambda y_: fit(t, y_, tol)[0])(y)


def signals(seed: int, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Sampled signals of ``n`` points: straight, smooth, and smooth with a bump."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0.0, 10.0, n))
    return {"straight": (t, 0.3 * t - 1.0),
            "smooth": (t, np.sin(t)),
            "bumpy": (t, np.sin(t) + 0.8 * np.exp(-((t - 6.0) / 0.3) ** 2))}


def export(path: Path, seed: int) -> am.Program:
    """Export ``forward`` and ``grad`` with a symbolic number ``n`` of samples, and store
    the example signals as test vectors."""
    specs = (am.spec("n", dtype=am.float64, low=0.0, high=10.0),
             am.spec("n", dtype=am.float64, low=-1.0, high=1.0),
             am.spec(dtype=am.float64, low=0.05, high=0.5))
    program = am.export(fit, *specs)
    program.add(total_grad, *specs, name="grad")
    tol = np.float64(TOL)
    for t, y in signals(seed, 64).values():
        add_test_vector(program, "forward", [t, y, tol],
                        flat(fit(am.tensor(t), am.tensor(y), am.tensor(tol))))
        add_test_vector(program, "grad", [t, y, tol],
                        flat(total_grad(am.tensor(t), am.tensor(y), am.tensor(tol))))
    program.save(path)
    return program


def finite_difference_grad(t: np.ndarray, y: np.ndarray, tol: float, eps: float = 1e-6
                           ) -> np.ndarray:
    """Central differences of the eager total with respect to each sample."""
    g = np.zeros_like(y)
    for i in range(len(y)):
        vals = []
        for sgn in (1.0, -1.0):
            yk = y.copy()
            yk[i] += sgn * eps
            vals.append(fit(am.tensor(t), am.tensor(yk), am.tensor(np.float64(tol)))[0].item())
        g[i] = (vals[0] - vals[1]) / (2 * eps)
    return g


def check(path: Path, tol: float, seed: int) -> dict[str, dict[str, float]]:
    """Fit every example signal with each runner and compare; returns, per signal, the
    pieces, the recursion depth and the largest errors.

    Raises:
        MismatchError: a runner disagrees with eager execution or with NumPy, or the
            gradient differs from finite differences.
    """
    ref = am.load(path, backend="reference")
    nat = open_native(path)
    out: dict[str, dict[str, float]] = {}
    for name, (t, y) in signals(seed, 64).items():
        tol_a = np.float64(tol)
        total, pieces = fit(am.tensor(t), am.tensor(y), am.tensor(tol_a))
        eager = flat((total, pieces))
        want_total, want_pieces, depth = fit_reference(t, y, tol)
        res = {"pieces": float(pieces.item()), "depth": float(depth)}
        if int(pieces.item()) != want_pieces:
            raise MismatchError(f"{name}: {int(pieces.item())} pieces, NumPy gives "
                                f"{want_pieces}")
        res["numpy"] = assert_close(f"{name}: eager vs NumPy", [eager[0]],
                                    [np.float64(want_total)], 1e-12, 1e-12)
        res["reference"] = assert_close(f"{name}: reference vs eager",
                                        reference_run(ref, "forward", t, y, tol_a), eager,
                                        1e-12, 1e-12)
        res["native"] = assert_close(f"{name}: native vs eager",
                                     nat.run("forward", t, y, tol_a), eager, 1e-12, 1e-12)
        grad = total_grad(am.tensor(t), am.tensor(y), am.tensor(tol_a)).numpy()
        res["grad_fd"] = assert_close(f"{name}: gradient vs finite differences", [grad],
                                      [finite_difference_grad(t, y, tol)], 1e-6, 1e-8)
        res["grad_native"] = assert_close(f"{name}: gradient, native vs eager",
                                          nat.run("grad", t, y, tol_a), [grad], 1e-12, 1e-12)
        res["grad_reference"] = assert_close(
            f"{name}: gradient, reference vs eager", reference_run(ref, "grad", t, y, tol_a),
            [grad], 1e-12, 1e-12)
        out[name] = res
    return out


def recursion_is_one_function(program: am.Program) -> bool:
    """``fit`` is one function of the program, and calls itself."""
    fns = [name for name in program.functions if name == "fit"]
    calls = [n for f in program.functions.values() for n in f.nodes
             if n.op == "call" and n.attrs["callee"] == "fit"]
    return len(fns) == 1 and any(n for n in program.functions["fit"].nodes
                                 if n.op == "cond") and len(calls) >= 3


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tol", type=float, default=TOL)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="directory for piecewise_fit.amber")
    args = ap.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or Path(tmp)
            out.mkdir(parents=True, exist_ok=True)
            path = out / "piecewise_fit.amber"
            program = export(path, args.seed)
            if not recursion_is_one_function(program):
                raise MismatchError(f"fit was not captured as one recursive function: "
                                    f"{sorted(program.functions)}")
            length = program.functions["fit"].params[0].aval.shape[0]
            print(f"piecewise_fit: exported {path.name}: entries "
                  f"{', '.join(program.entries)}; fit(t: float64[{length}], ...) is one "
                  f"function that calls itself")
            res = check(path, args.tol, args.seed)
    except am.AmberError as e:  # a mismatch (ExampleError) or a failed export or run
        print(f"piecewise_fit: FAILED: {e}")
        return 1
    for name, r in res.items():
        print(f"{name:>8}: {int(r['pieces']):2d} pieces, recursion depth {int(r['depth'])}; "
              f"reference {r['reference']:.1e}, native {r['native']:.1e} from eager; "
              f"gradient vs finite differences {r['grad_fd']:.1e}, native {r['grad_native']:.1e}")
    print("piecewise_fit: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
