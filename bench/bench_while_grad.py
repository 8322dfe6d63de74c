"""The exported gradient of a ``while_loop`` in the native runtime, against its trip count.

DESIGN (opset 3): the forward ``while`` stacks the carries entering each iteration and a
reverse ``scan`` of the trip count applies the body's VJP, so the gradient costs O(n) body
evaluations: doubling the trips should double the time, and the gradient should cost a
fixed multiple of the forward loop at every n. The model: an RNN-like carry
``h = tanh(W @ h + x)`` (64 float64 values, W closed over) run ``n`` times, ``n`` an int64
input (a data-dependent trip count); the gradient is taken w.r.t. ``x`` and ``W``.
Timings are process CPU time per call (medians over interleaved repeats: every repeat
times every (n, program) pair once, so load changes hit all of them alike). Usage::

    python bench/bench_while_grad.py [--sizes 50 100 200] [--repeats 9] [--budget 0.3]
        [--export-to DIR]   # only write forward.amber and grad.amber to DIR, then exit
        [--peer DIR]        # also time DIR/grad.amber (e.g. exported by another amber)
"""

from __future__ import annotations

import sys

from _common import cpu_model, pin_threads, sample

THREADS = pin_threads(sys.argv, 1)

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import amber as am  # noqa: E402
from amber.native import NativeModel  # noqa: E402

H = 64
F64 = am.float64


def _loop(x: am.Tensor, w: am.Tensor, n: am.Tensor) -> am.Tensor:
    def body(c):
        k, h = c
        return k + 1, (w @ h + x).tanh()

    _, h = am.while_loop(lambda c: c[0] < n, body, (am.tensor(np.int64(0)), x * 0.0))
    return h.sum()


def export(directory: Path) -> None:
    specs = (am.spec(H, dtype=F64), am.spec(H, H, dtype=F64),
             am.spec(dtype=am.int64, low=0, high=8))
    am.export(_loop, *specs).save(directory / "forward.amber")
    am.export(am.grad(_loop, argnums=(0, 1)), *specs).save(directory / "grad.amber")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200])
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--budget", type=float, default=0.3, help="seconds per sample")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--export-to", type=Path)
    p.add_argument("--peer", type=Path, help="a directory holding another grad.amber")
    args = p.parse_args()
    if args.export_to:
        args.export_to.mkdir(parents=True, exist_ok=True)
        export(args.export_to)
        return
    rng = np.random.default_rng(0)
    x = rng.standard_normal(H) * 0.5
    w = rng.standard_normal((H, H)) / np.sqrt(H)
    with tempfile.TemporaryDirectory() as tmp:
        export(Path(tmp))
        files = {"forward": Path(tmp) / "forward.amber", "grad": Path(tmp) / "grad.amber"}
        if args.peer:
            files["peer grad"] = args.peer / "grad.amber"
        models = {k: NativeModel(str(v), threads=args.threads) for k, v in files.items()}
        opsets = {k: m.opset_version for k, m in models.items()}
        cpu: dict[tuple[str, int], list[float]] = {}
        wall: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeats):
            for n in args.sizes:
                for name, m in models.items():
                    def call(m: NativeModel = m, n: int = n) -> None:
                        m.run("forward", x, w, np.int64(n))

                    wt, ct = sample(call, args.budget, 0.05)
                    cpu.setdefault((name, n), []).append(ct)
                    wall.setdefault((name, n), []).append(wt)
        for m in models.values():
            m.close()
    print(f"CPU: {cpu_model()}, threads {args.threads}, repeats {args.repeats}, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"opset versions: {opsets}")
    print("| program | n | CPU ms/call (median) | wall ms/call (median) | CPU us per "
          "iteration | CPU vs previous n |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in models:
        prev = None
        for n in args.sizes:
            c = statistics.median(cpu[(name, n)]) * 1e3
            wt = statistics.median(wall[(name, n)]) * 1e3
            growth = f"{c / prev:.2f}x" if prev is not None else ""
            print(f"| {name} | {n} | {c:.3f} | {wt:.3f} | {c / n * 1e3:.1f} | {growth} |")
            prev = c
    ratios = [statistics.median(cpu[("grad", n)]) / statistics.median(cpu[("forward", n)])
              for n in args.sizes]
    print("| gradient / forward (CPU) | " + " | ".join(
        f"n={n}: {r:.2f}x" for n, r in zip(args.sizes, ratios)) + " |")


if __name__ == "__main__":
    main()
