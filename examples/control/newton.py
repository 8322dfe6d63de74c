"""Newton's method with a data-dependent stopping rule, differentiated with respect to
the equation's parameters, exported and run by amber's native C runtime.

    python examples/control/newton.py [--tol TOL] [--out DIR] [--seed S]

For parameters ``a > 0`` and ``b`` (vectors: one equation per element) the script
solves ``x**3 + a*x - b = 0`` (one real root, since ``a > 0`` makes the cubic
increasing) with ``am.while_loop``: Newton steps from ``x = 0`` until
``max |f(x)| < tol``, so the number of iterations depends on the data (zero when every
``b`` is 0). After the loop, one more Newton step is taken: it changes ``x`` by less than
``tol / f'(x)`` but makes reverse-mode gradients through the solver exact to that order
even when the loop ran no iteration at all (the derivative of a Newton step at a root is
the implicit-function-theorem derivative).

``am.grad`` of the solution is checked against that theorem -- ``dx/da = -x / (3x^2 + a)``
and ``dx/db = 1 / (3x^2 + a)`` -- and against central finite differences of the eager
solver, in float64. The file has two entry points, ``forward`` (``a, b -> x,
iterations``) and ``grad`` (``a, b -> dx/da, dx/db``), both with a symbolic number of
equations; eager execution, the reference interpreter and the native runtime must agree
(iteration counts exactly). It prints a summary and exits with status 1 on a mismatch.
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
    assert_close,
    flat,
    open_native,
    reference_run,
)

TOL = 1e-12
"""Default stopping tolerance on ``max |f(x)|``."""

MAX_ITERATIONS = 200
"""A loop past this many Newton steps ends in ``am.IterationLimitError`` (an error
status in C), never a hang."""


def residual(x: am.Tensor, a: am.Tensor, b: am.Tensor) -> am.Tensor:
    """``f(x) = x^3 + a x - b``."""
    return x * x * x + a * x - b


def newton_step(x: am.Tensor, a: am.Tensor, b: am.Tensor) -> am.Tensor:
    """``x - f(x) / f'(x)``."""
    return x - residual(x, a, b) / (3.0 * x * x + a)


def solve(a: am.Tensor, b: am.Tensor, tol: float = TOL) -> tuple[am.Tensor, am.Tensor]:
    """The root of ``x^3 + a x - b`` for every element (``a > 0``), and the number of
    Newton steps the loop took (an int64 scalar)."""

    def unconverged(carry: tuple[am.Tensor, am.Tensor]) -> am.Tensor:
        converged = residual(carry[1], a, b).abs() < tol  # NaN: never converged
        return converged.logical_not().any()

    def step(carry: tuple[am.Tensor, am.Tensor]) -> tuple[am.Tensor, am.Tensor]:
        k, x = carry
        return k + 1, newton_step(x, a, b)

    x0 = am.zeros(1, dtype=a.dtype).broadcast_to(a.shape)  # a's shape may be symbolic
    k, x = am.while_loop(unconverged, step, (am.tensor(np.int64(0)), x0),
                         max_iterations=MAX_ITERATIONS)
    return newton_step(x, a, b), k  # the extra step: exact first-order sensitivities


def solution_grads(a: am.Tensor, b: am.Tensor, tol: float = TOL
                   ) -> tuple[am.Tensor, am.Tensor]:
    """``(dx/da, dx/db)`` elementwise, by reverse mode through the solver (each ``x_i``
    depends only on ``a_i`` and ``b_i``, so the gradient of ``sum(x)`` is the
    diagonal)."""
    return am.grad(lambda a_, b_: solve(a_, b_, tol)[0].sum(), argnums=(0, 1))(a, b)


def implicit_grads(x: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The implicit-function-theorem derivatives at a root ``x``."""
    d = 3.0 * x * x + a
    return -x / d, 1.0 / d


def finite_difference_grads(a: np.ndarray, b: np.ndarray, tol: float, eps: float = 1e-6
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of the eager solver (all elements perturbed at once: the
    equations are independent)."""

    def x_of(a_: np.ndarray, b_: np.ndarray) -> np.ndarray:
        return solve(am.tensor(a_), am.tensor(b_), tol)[0].numpy()

    return ((x_of(a + eps, b) - x_of(a - eps, b)) / (2 * eps),
            (x_of(a, b + eps) - x_of(a, b - eps)) / (2 * eps))


def export(path: Path, tol: float) -> am.Program:
    """Export ``forward`` and ``grad`` with a symbolic number ``n`` of equations."""
    specs = (am.spec("n", dtype=am.float64, low=0.5, high=3.0),
             am.spec("n", dtype=am.float64, low=-5.0, high=5.0))
    program = am.export(lambda a, b: solve(a, b, tol), *specs)
    program.add(lambda a, b: solution_grads(a, b, tol), *specs, name="grad")
    program.save(path)
    return program


def check(path: Path, tol: float, seed: int) -> dict[str, float]:
    """Solve, differentiate and compare; returns the largest errors and iteration counts.

    Raises:
        MismatchError: a runner disagrees, a root is not a root, or a gradient differs
            from the theorem or from finite differences.
    """
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.2, 4.0, 13)
    b = rng.uniform(-20.0, 20.0, 13)
    ref = am.load(path, backend="reference")
    nat = open_native(path)
    res: dict[str, float] = {}
    for label, bb in (("b", b), ("zero", np.zeros_like(b))):
        x, k = solve(am.tensor(a), am.tensor(bb), tol)
        eager = flat((x, k))
        res[f"iterations_{label}"] = float(k.item())
        res["forward_ref"] = max(res.get("forward_ref", 0.0), assert_close(
            f"forward ({label}): reference vs eager", reference_run(ref, "forward", a, bb),
            eager, 1e-12, 1e-14))
        res["forward_native"] = max(res.get("forward_native", 0.0), assert_close(
            f"forward ({label}): native vs eager", nat.run("forward", a, bb), eager,
            1e-12, 1e-14))
        xs = eager[0]
        if np.max(np.abs(xs ** 3 + a * xs - bb)) >= tol * 10:
            raise MismatchError(f"forward ({label}): x is not a root")
        grads = flat(solution_grads(am.tensor(a), am.tensor(bb), tol))
        ift = list(implicit_grads(xs, a))
        res["grad_ift"] = max(res.get("grad_ift", 0.0),
                              assert_close(f"grad ({label}) vs the implicit-function theorem",
                                           grads, ift, 1e-9, 1e-12))
        res["grad_fd"] = max(res.get("grad_fd", 0.0), assert_close(
            f"grad ({label}) vs finite differences", grads,
            list(finite_difference_grads(a, bb, tol)), 1e-6, 1e-8))
        res["grad_ref"] = max(res.get("grad_ref", 0.0), assert_close(
            f"grad ({label}): reference vs eager", reference_run(ref, "grad", a, bb), grads,
            1e-12, 1e-14))
        res["grad_native"] = max(res.get("grad_native", 0.0), assert_close(
            f"grad ({label}): native vs eager", nat.run("grad", a, bb), grads, 1e-12, 1e-14))
    try:  # outside a > 0: from x = 0, x^3 - 2x + 2 = 0 cycles 0, 1, 0, 1, ...
        nat.run("forward", np.full(3, -2.0), np.full(3, -2.0))
    except am.LimitError:
        pass
    else:
        raise MismatchError("a loop that cannot converge did not stop at the iteration limit")
    return res


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tol", type=float, default=TOL)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="directory for newton.amber")
    args = ap.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or Path(tmp)
            out.mkdir(parents=True, exist_ok=True)
            path = out / "newton.amber"
            program = export(path, args.tol)
            print(f"newton: exported {path.name}: entries {', '.join(program.entries)}, "
                  f"{sum(n.op == 'while' for f in program.functions.values() for n in f.nodes)}"
                  f" while nodes")
            res = check(path, args.tol, args.seed)
    except am.AmberError as e:  # a mismatch (ExampleError) or a failed export or run
        print(f"newton: FAILED: {e}")
        return 1
    print(f"13 equations: {int(res['iterations_b'])} Newton steps (b = 0: "
          f"{int(res['iterations_zero'])}); eager == reference (max err "
          f"{res['forward_ref']:.1e}) == native (max err {res['forward_native']:.1e})")
    print(f"dx/da, dx/db: max err vs implicit-function theorem {res['grad_ift']:.1e}, vs finite "
          f"differences {res['grad_fd']:.1e}; reference {res['grad_ref']:.1e}, native "
          f"{res['grad_native']:.1e} from eager")
    print(f"a cycling Newton iteration ends in an iteration-limit error natively after "
          f"{MAX_ITERATIONS} steps (no hang)")
    print("newton: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
