"""A/B of the elementwise and reduction kernels of two or more ``libamber`` builds, loaded
side by side in one process and called through the single-kernel API (``amber.h``).

First every build runs every unary, binary, comparison, ``where`` and ``cast`` primitive and
``sum``, ``max``, ``min``, ``argmax``, ``argmin`` on every dtype, over contiguous, broadcast
(scalar first or second, a row, a column) and strided (every other element, transposed)
operands, values with NaNs, infinities, signed zeros and integer extremes; each result (its
bytes, or the status of a refusal) must equal the first build's. Then ``--time`` times each
op and dtype on rows of ``--n`` elements (contiguous, and a scalar second operand): CPU
time per call, builds interleaved, medians; the rows whose ratio to the first build is
furthest from 1 are printed (``--most``). For changes that must keep every bit (a kernel
compiled otherwise, loops shared)::

    python bench/bench_kernels_ab.py --lib old=/tmp/old/libamber.so \\
        --lib new=build/runtime/libamber.so --time
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_model

from amber._dtype import DTYPES  # (amber_dtype order)
from amber.native import _Tensor

NP = [d.np for d in DTYPES]
CODE = {dt: i for i, dt in enumerate(NP)}
UNARY = ("neg", "abs", "sign", "floor", "exp", "log", "sqrt", "tanh", "sigmoid", "sin", "cos",
         "erf", "round", "logical_not")
BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le",
          "gt", "ge", "logical_and", "logical_or")
Operand = tuple[np.ndarray, tuple[int, ...], "list[int] | None"]  # data, shape, strides


class Build:
    """One build's kernel context; runs an op on operands, returning bytes or a status."""

    def __init__(self, path: str) -> None:
        self.lib = lib = ctypes.CDLL(os.path.abspath(path))
        vp = ctypes.c_void_p
        lib.amber_kernel_context_create.argtypes = [ctypes.c_int32, ctypes.POINTER(vp)]
        lib.amber_kernel_prepare.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p,
                                             ctypes.POINTER(vp)]
        lib.amber_kernel_run_strided.argtypes = [vp, vp, ctypes.POINTER(_Tensor), vp,
                                                 ctypes.c_size_t, ctypes.POINTER(_Tensor)]
        self.ctx = vp()
        self.kernels: dict[tuple[str, str], Any] = {}
        assert lib.amber_kernel_context_create(1, ctypes.byref(self.ctx)) == 0

    def kernel(self, op: str, attrs: str) -> Any:
        if (op, attrs) not in self.kernels:
            k = ctypes.c_void_p()
            st = self.lib.amber_kernel_prepare(self.ctx, op.encode(), attrs.encode(),
                                               ctypes.byref(k))
            self.kernels[(op, attrs)] = k if st == 0 else None
        return self.kernels[(op, attrs)]

    def run(self, op: str, attrs: str, ops: list[Operand]) -> tuple[Any, ...]:
        k = self.kernel(op, attrs)
        if k is None:
            return ("prepare refused",)
        ins = (_Tensor * len(ops))()
        strides = (ctypes.POINTER(ctypes.c_int64) * len(ops))()
        keep = [None if st is None else (ctypes.c_int64 * len(st))(*st) for _, _, st in ops]
        for i, (t, (a, shape, _)) in enumerate(zip(ins, ops)):
            t.dtype, t.rank, t.data = CODE[a.dtype], len(shape), a.ctypes.data
            for j, d in enumerate(shape):
                t.shape[j] = d
            arr = keep[i]
            if arr is not None:
                strides[i] = ctypes.cast(arr, ctypes.POINTER(ctypes.c_int64))
        out = _Tensor()
        none = (ctypes.c_void_p * len(ops))()  # the result's description first (row-major)
        st = self.lib.amber_kernel_run_strided(self.ctx, k, ins, none, len(ops), out)
        if st != 0:
            return ("refused", st)
        buf = np.zeros(int(np.prod([out.shape[i] for i in range(out.rank)])), NP[out.dtype])
        out.data = buf.ctypes.data
        st = self.lib.amber_kernel_run_strided(self.ctx, k, ins, strides, len(ops), out)
        return ("refused", st) if st else (out.dtype, buf.tobytes())


def values(rng: np.random.Generator, n: int, dt: np.dtype) -> np.ndarray:
    """n values of dt: floats with NaN, +-inf, +-0 and large values; integer extremes."""
    if dt.kind == "b":
        return rng.random(n) < 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        x = rng.integers(-20, 21, n).astype(dt)
        k = rng.integers(0, n, max(1, n // 6))
        x[k] = rng.choice(np.array([info.min, info.max, -1, 0, 1]).astype(dt), len(k))
        return x
    x = rng.standard_normal(n) * 3
    k = rng.integers(0, n, max(1, n // 6))
    x[k] = rng.choice([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e30, -1e30, 3e9, -3e9, 2.5, -2.5],
                      len(k))
    with np.errstate(over="ignore"):
        return x.astype(dt)


def layouts(rng: np.random.Generator, dts: list[np.dtype]) -> Iterator[list[Operand]]:
    """Operand sets: contiguous, broadcast and strided (same shape for every operand)."""
    n, k = 1037, len(dts)

    def op(dt: np.dtype, shape: tuple[int, ...], st: list[int] | None = None,
           count: int | None = None) -> Operand:
        return values(rng, count or int(np.prod(shape)), dt), shape, st

    yield [op(d, (n,)) for d in dts]
    yield [op(d, (n,), [2], 2 * n) for d in dts]
    yield [op(d, (33, 7), [1, 33]) for d in dts]
    if k >= 2:
        yield [op(dts[0], ())] + [op(d, (n,)) for d in dts[1:]]
        yield [op(dts[0], (n,))] + [op(d, ()) for d in dts[1:]]
        yield [op(d, ()) for d in dts]
        yield [op(dts[0], (7, 33)), op(dts[1], (33,))] + [op(d, (7, 33)) for d in dts[2:]]
        yield [op(dts[0], (7, 1)), op(dts[1], (7, 33))] + [op(d, (7, 33)) for d in dts[2:]]


def cases(rng: np.random.Generator) -> Iterator[tuple[str, str, list[Operand]]]:
    for dt in NP:
        for name in UNARY:
            yield from ((name, "", ops) for ops in layouts(rng, [dt]))
        for name in BINARY:
            yield from ((name, "", ops) for ops in layouts(rng, [dt, dt]))
        yield from (("where", "", ops) for ops in layouts(rng, [np.dtype(bool), dt, dt]))
        for to in NP:
            yield from (("cast", f'{{"dtype": "{to.name}"}}', ops) for ops in layouts(rng, [dt]))
        for shape in ((37, 29), (5, 3, 300), (1000,), (64, 7)):
            r = len(shape)
            x: list[Operand] = [(values(rng, int(np.prod(shape)), dt), shape, None)]
            for axes in ([0], [r - 1], list(range(r))):
                for name in ("sum", "max", "min"):
                    yield name, f'{{"axes": {axes}, "keepdims": false}}', x
            for name in ("argmax", "argmin"):
                yield name, f'{{"axis": {r - 1}, "keepdims": false}}', x
                yield name, '{"axis": 0, "keepdims": true}', x


def check(builds: list[tuple[str, Build]]) -> int:
    rng = np.random.default_rng(0)
    total = ran = 0
    bad: list[str] = []
    for name, attrs, ops in cases(rng):
        want = builds[0][1].run(name, attrs, ops)
        total, ran = total + 1, ran + isinstance(want[0], int)
        for label, b in builds[1:]:
            if b.run(name, attrs, ops) != want:
                bad.append(f"{label}: {name} {attrs} "
                           f"{[(a.dtype.name, s, st) for a, s, st in ops]}")
    print(f"- {total} calls per build ({ran} ran, the rest refused by every build alike); "
          f"results differing from {builds[0][0]}'s: {len(bad)}")
    for line in bad[:20]:
        print(f"  - {line}")
    return len(bad)


def timed(builds: list[tuple[str, Build]], n: int, repeats: int, most: int) -> None:
    rng = np.random.default_rng(1)
    rows = []
    jobs: list[tuple[str, str, str, list[Operand]]] = []
    for dt in NP[:5]:  # the compute dtypes (storage ones are widened to them first)
        x, y = (values(rng, n, dt), (n,), None), (values(rng, n, dt), (n,), None)
        s = (values(rng, 1, dt), (), None)
        jobs += [(f"{u} {dt.name}", u, "", [x]) for u in UNARY]
        jobs += [(f"{b} {dt.name}", b, "", [x, y]) for b in BINARY]
        jobs += [(f"{b} {dt.name}, scalar b", b, "", [x, s]) for b in BINARY]
        jobs += [(f"cast {dt.name} -> {to.name}", "cast", f'{{"dtype": "{to.name}"}}', [x])
                 for to in NP]
        rowsx = (x[0], (n // 256, 256), None)
        jobs += [(f"{r} {dt.name} over rows of 256", r, '{"axes": [1], "keepdims": false}',
                  [rowsx]) for r in ("sum", "max")]
    for label, name, attrs, ops in jobs:
        if not isinstance(builds[0][1].run(name, attrs, ops)[0], int):
            continue
        t: dict[str, list[float]] = {lb: [] for lb, _ in builds}
        for r in range(repeats):
            for lb, b in builds[r % len(builds):] + builds[:r % len(builds)]:
                c0 = time.process_time()
                for _ in range(3):
                    b.run(name, attrs, ops)
                t[lb].append((time.process_time() - c0) / 3)
        med = [statistics.median(v) * 1e3 for v in t.values()]
        rows.append((med, label))
    names = [lb for lb, _ in builds]
    print(f"\n{len(rows)} kernels on {n} elements, {repeats} interleaved repeats; the "
          f"{most} furthest from {names[0]} (CPU ms per call, medians):\n")
    print("| kernel | " + " | ".join(names) + " | " +
          " | ".join(f"{lb} / {names[0]}" for lb in names[1:]) + " |")
    print("|---|" + "---:|" * (2 * len(names) - 1))
    rows.sort(key=lambda r: -max(abs(np.log(m / r[0][0])) for m in r[0][1:]))
    for med, label in rows[:most]:
        print(f"| {label} | " + " | ".join(f"{m:.3f}" for m in med) + " | " +
              " | ".join(f"{m / med[0]:.2f}x" for m in med[1:]) + " |")
    for i, lb in enumerate(names[1:], 1):
        print(f"\nmedian {lb} / {names[0]} over all {len(rows)}: "
              f"{statistics.median(r[0][i] / r[0][0] for r in rows):.2f}x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", action="append", required=True, metavar="LABEL=PATH")
    ap.add_argument("--time", action="store_true", help="also time every kernel")
    ap.add_argument("--n", type=int, default=1 << 18, help="--time: elements per row")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--most", type=int, default=25, help="--time: rows printed")
    args = ap.parse_args(argv)
    builds = [(lb, Build(p)) for lb, p in (s.split("=", 1) for s in args.lib)]
    print(f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; CPU: "
          f"{cpu_model()}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    bad = check(builds)
    if args.time:
        timed(builds, args.n, args.repeats, args.most)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
