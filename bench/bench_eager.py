"""Eager benchmarks: amber against PyTorch in the same process.

Two benchmarks:

* ``ops``: per-op overhead on tiny tensors (1 and 16 elements) for add, mul, matmul,
  relu and sum, with and without ``requires_grad``, plus a forward+backward of a small
  graph. Tiny tensors make the kernel time negligible, so the figure is the framework's
  dispatch overhead. Target: at most 10 us per op.
* ``mlp``: one training step of a 784-512-512-10 MLP at batch 64 (forward,
  cross-entropy, backward, SGD step) from identical initial weights. Target: at most
  2x PyTorch's time.

Runs of the two frameworks are interleaved; each figure is the median over repeats.
Needs the ``bench`` extra (``torch==2.13.0``). Usage::

    python bench/bench_eager.py               # both benchmarks, markdown on stdout
    python bench/bench_eager.py ops --repeats 31
    python bench/bench_eager.py mlp --optim adam
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def _blas_threads_from_argv(argv: list[str]) -> None:
    """``--threads N`` also limits NumPy's BLAS (OpenBLAS) to N threads; that has to be
    set before NumPy is imported. Without the flag both libraries use every core."""
    for i, a in enumerate(argv):
        value = a.split("=", 1)[1] if a.startswith("--threads=") else (
            argv[i + 1] if a == "--threads" and i + 1 < len(argv) else None)
        if value is not None:
            for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
                os.environ[var] = value


_blas_threads_from_argv(sys.argv[1:])

import numpy as np  # noqa: E402

import amber as am  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover - the benchmark needs the 'bench' extra
    sys.exit("bench_eager.py needs PyTorch: pip install 'amber[bench]' (torch==2.13.0)")

TARGET_OP_US = 10.0
TARGET_MLP_RATIO = 2.0


# ----------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def numpy_blas() -> str:
    try:
        cfg = np.show_config(mode="dicts")  # type: ignore[call-arg]
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no dict mode
        return "unknown"


def machine_lines(threads: int) -> list[str]:
    return [
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: nproc={os.cpu_count()}, CPU: {cpu_model()}",
        f"- Python {platform.python_version()}, NumPy {np.__version__} (BLAS: {numpy_blas()}), "
        f"torch {torch.__version__}, amber {am.__version__}",
        f"- threads: torch {threads} (torch.set_num_threads); NumPy's BLAS "
        f"{os.environ.get('OPENBLAS_NUM_THREADS', f'default ({os.cpu_count()})')}; "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}",
        f"- load average at start (other processes share these cores): "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}",
    ]


# ----------------------------------------------------------------------------- timing


def per_call_us(fn: Callable[[], Any], number: int) -> tuple[float, float]:
    """Mean wall time and mean process CPU time (all threads) of one ``fn()`` over
    ``number`` back-to-back calls, in microseconds."""
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(number):
        fn()
    t1, c1 = time.perf_counter(), time.process_time()
    return (t1 - t0) / number * 1e6, (c1 - c0) / number * 1e6


Pair = tuple[float, float]  # (amber, torch)


def calibrate(fn: Callable[[], Any], budget_s: float) -> int:
    """Calls per sample so that one sample takes about ``budget_s`` seconds."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= budget_s / 4 or n >= 1 << 20:
            return max(1, int(n * budget_s / max(dt, 1e-9)))
        n *= 4


def interleaved(cases: dict[str, tuple[Callable[[], Any], Callable[[], Any]]], repeats: int,
                budget_s: float) -> dict[str, tuple[Pair, Pair]]:
    """Median per-call wall and CPU time (us) of each case's (amber, torch) pair; every
    repeat runs all cases, alternating which framework goes first."""
    numbers = {k: (calibrate(a, budget_s), calibrate(t, budget_s)) for k, (a, t) in cases.items()}
    samples: dict[str, tuple[list[tuple[float, float]], ...]] = {
        k: ([], []) for k in cases}
    for r in range(repeats):
        for k, (fa, ft) in cases.items():
            na, nt = numbers[k]
            if r % 2 == 0:
                samples[k][0].append(per_call_us(fa, na))
                samples[k][1].append(per_call_us(ft, nt))
            else:
                samples[k][1].append(per_call_us(ft, nt))
                samples[k][0].append(per_call_us(fa, na))
    med = statistics.median
    return {k: ((med(w for w, _ in a), med(w for w, _ in t)),
                (med(c for _, c in a), med(c for _, c in t)))
            for k, (a, t) in samples.items()}


# ----------------------------------------------------------------------------- per-op overhead


def op_cases() -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    rng = np.random.default_rng(0)
    cases: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    for n in (1, 16):
        side = int(np.sqrt(n))
        for grad in (False, True):
            x_np = rng.standard_normal(n).astype(np.float32)
            y_np = rng.standard_normal(n).astype(np.float32)
            m_np = rng.standard_normal((side, side)).astype(np.float32)
            ax, ay, am_ = (am.tensor(v, requires_grad=grad) for v in (x_np, y_np, m_np))
            tx, ty, tm = (torch.tensor(v, requires_grad=grad) for v in (x_np, y_np, m_np))
            tag = f"n={n}{', grad' if grad else ''}"
            cases[f"add ({tag})"] = (lambda a=ax, b=ay: a + b, lambda a=tx, b=ty: a + b)
            cases[f"mul ({tag})"] = (lambda a=ax, b=ay: a * b, lambda a=tx, b=ty: a * b)
            cases[f"matmul {side}x{side} ({tag})"] = (lambda a=am_: a @ a, lambda a=tm: a @ a)
            cases[f"relu ({tag})"] = (lambda a=ax: am.relu(a), lambda a=tx: torch.relu(a))
            cases[f"sum ({tag})"] = (lambda a=ax: a.sum(), lambda a=tx: a.sum())
        ax, ay = (am.tensor(rng.standard_normal(n).astype(np.float32), requires_grad=True)
                  for _ in range(2))
        tx, ty = (torch.tensor(a.numpy().copy(), requires_grad=True) for a in (ax, ay))

        def a_bwd(a: am.Tensor = ax, b: am.Tensor = ay) -> None:
            a.grad = b.grad = None
            (a * b).sum().backward()

        def t_bwd(a: torch.Tensor = tx, b: torch.Tensor = ty) -> None:
            a.grad = b.grad = None
            (a * b).sum().backward()

        cases[f"mul+sum+backward (n={n})"] = (a_bwd, t_bwd)
    return cases


# ops executed per case call (for the per-op figure of the backward case:
# 2 forward ops + their 2 backward rules)
_OPS_PER_CALL = {"mul+sum+backward": 4}


def run_ops(repeats: int, budget_s: float) -> list[str]:
    res = interleaved(op_cases(), repeats, budget_s)
    lines = [
        "Medians of wall time per call; CPU columns: process CPU time per call (not "
        "inflated by other processes taking the cores).",
        "",
        "| case | amber (us) | torch (us) | amber/torch | amber per op (us) | <= 10 us "
        "| amber CPU (us) | torch CPU (us) |",
        "|---|---:|---:|---:|---:|:---:|---:|---:|",
    ]
    worst = 0.0
    for k, ((a, t), (ac, tc)) in res.items():
        per_op = a / _OPS_PER_CALL.get(k.split(" (")[0], 1)
        worst = max(worst, per_op)
        ok = "yes" if per_op <= TARGET_OP_US else "**no**"
        lines.append(f"| {k} | {a:.2f} | {t:.2f} | {a / t:.2f}x | {per_op:.2f} | {ok} "
                     f"| {ac:.2f} | {tc:.2f} |")
    lines.append("")
    lines.append(f"Worst amber per-op overhead: {worst:.2f} us (target <= {TARGET_OP_US:g} us).")
    return lines


# ----------------------------------------------------------------------------- MLP step

SIZES = (784, 512, 512, 10)
BATCH = 64


def init_weights(seed: int = 0) -> list[np.ndarray]:
    """PyTorch's Linear initialisation, drawn with NumPy: [w1, b1, w2, b2, w3, b3]."""
    rng = np.random.default_rng(seed)
    out = []
    for fan_in, fan_out in itertools.pairwise(SIZES):
        bound = 1.0 / np.sqrt(fan_in)
        out.append(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32))
        out.append(rng.uniform(-bound, bound, (fan_out,)).astype(np.float32))
    return out


def _have_amber_nn() -> bool:
    nn = getattr(am, "nn", None)
    optim = getattr(am, "optim", None)
    return all(hasattr(nn, n) for n in ("Linear", "Sequential", "ReLU", "functional")) and \
        all(hasattr(optim, n) for n in ("SGD", "Adam"))


def amber_step(weights: list[np.ndarray], lr: float, optim: str,
               use_nn: bool) -> tuple[Callable[[am.Tensor, am.Tensor], float], list[am.Tensor]]:
    if use_nn:
        model = am.nn.Sequential(am.nn.Linear(784, 512), am.nn.ReLU(), am.nn.Linear(512, 512),
                                 am.nn.ReLU(), am.nn.Linear(512, 10))
        params = list(model.parameters())
        with am.no_grad():
            for p, w in zip(params, weights):
                p.copy_(am.tensor(w))
        opt = (am.optim.SGD(params, lr=lr) if optim == "sgd"
               else am.optim.Adam(params, lr=lr))
        ce = am.nn.functional.cross_entropy

        def step(x: am.Tensor, y: am.Tensor) -> float:
            opt.zero_grad()
            loss = ce(model(x), y)
            loss.backward()
            opt.step()
            return float(loss.item())

        return step, params

    if optim != "sgd":
        raise SystemExit("--optim adam needs am.optim")
    params = [am.tensor(w, requires_grad=True) for w in weights]

    def step_raw(x: am.Tensor, y: am.Tensor) -> float:
        w1, b1, w2, b2, w3, b3 = params
        h = am.relu(x @ w1.T + b1)
        h = am.relu(h @ w2.T + b2)
        logits = h @ w3.T + b3
        loss = -am.log_softmax(logits, 1)[am.arange(BATCH), y].mean()
        for p in params:
            p.grad = None
        loss.backward()
        with am.no_grad():
            for p in params:
                p.sub_(p.grad * lr)
        return float(loss.item())

    return step_raw, params


def torch_step(weights: list[np.ndarray], lr: float, optim: str,
               use_nn: bool) -> tuple[Callable[[torch.Tensor, torch.Tensor], float], list[Any]]:
    nn = torch.nn
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    params = list(model.parameters())
    with torch.no_grad():
        for p, w in zip(params, weights):
            p.copy_(torch.from_numpy(w))
    if use_nn:
        opt = (torch.optim.SGD(params, lr=lr) if optim == "sgd"
               else torch.optim.Adam(params, lr=lr))

        def step(x: torch.Tensor, y: torch.Tensor) -> float:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return float(loss.item())

        return step, params

    def step_raw(x: torch.Tensor, y: torch.Tensor) -> float:
        for p in params:
            p.grad = None
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.sub_(p.grad * lr)
        return float(loss.item())

    return step_raw, params


def run_mlp(repeats: int, optim: str, steps_per_sample: int, pause_s: float) -> list[str]:
    use_nn = _have_amber_nn()
    weights = init_weights()
    rng = np.random.default_rng(1)
    x_np = rng.standard_normal((BATCH, 784)).astype(np.float32)
    y_np = rng.integers(0, 10, BATCH).astype(np.int64)
    lr = 0.01 if optim == "sgd" else 1e-3
    a_step, a_params = amber_step(weights, lr, optim, use_nn)
    t_step, t_params = torch_step(weights, lr, optim, use_nn)
    ax, ay = am.tensor(x_np), am.tensor(y_np)
    tx, ty = torch.from_numpy(x_np), torch.from_numpy(y_np)

    # Same weights, same data: the first losses and updated weights must agree.
    la, lt = a_step(ax, ay), t_step(tx, ty)
    max_diff = max(float(np.max(np.abs(p.detach().numpy() - q.detach().numpy())))
                   for p, q in zip(a_params, t_params))
    if abs(la - lt) > 1e-4 or max_diff > 1e-4:
        raise SystemExit(f"MLP mismatch: loss {la} vs {lt}, max weight diff {max_diff}")

    for _ in range(3):  # warm-up
        a_step(ax, ay)
        t_step(tx, ty)
    samples_a: list[tuple[float, float]] = []
    samples_t: list[tuple[float, float]] = []
    for r in range(repeats):
        runs = [(lambda: a_step(ax, ay), samples_a), (lambda: t_step(tx, ty), samples_t)]
        if r % 2:
            runs.reverse()
        for fn, out in runs:
            # Let the other framework's worker threads (OpenBLAS / OpenMP spin-waiting)
            # go idle first: on few cores they would otherwise steal this one's CPU time.
            time.sleep(pause_s)
            fn()
            w, c = per_call_us(fn, steps_per_sample)
            out.append((w / 1e3, c / 1e3))
    med = statistics.median
    a_ms, t_ms = med(w for w, _ in samples_a), med(w for w, _ in samples_t)
    a_min, t_min = min(w for w, _ in samples_a), min(w for w, _ in samples_t)
    a_cpu, t_cpu = med(c for _, c in samples_a), med(c for _, c in samples_t)
    ratio = a_ms / t_ms
    ok = "yes" if ratio <= TARGET_MLP_RATIO else "**no**"
    how = ("am.nn.Sequential/Linear/ReLU, am.nn.functional.cross_entropy, "
           f"am.optim.{'SGD' if optim == 'sgd' else 'Adam'} (torch: the same modules)"
           if use_nn else
           "raw amber ops (x @ w.T + b, am.relu, log_softmax + gather, p.sub_(lr * grad) "
           "under am.no_grad); torch: nn.Linear + F.cross_entropy + the same manual update")
    return [
        f"- model: {'-'.join(map(str, SIZES))} MLP, batch {BATCH}, float32, "
        f"{optim.upper()} lr={lr}; written with {how}",
        f"- first-step agreement: loss {la:.6f} (amber) vs {lt:.6f} (torch), "
        f"max |weight difference| after one step {max_diff:.2e}",
        "",
        "| framework | median step (ms) | fastest sample (ms) | median CPU time (ms) |",
        "|---|---:|---:|---:|",
        f"| amber | {a_ms:.3f} | {a_min:.3f} | {a_cpu:.3f} |",
        f"| torch | {t_ms:.3f} | {t_min:.3f} | {t_cpu:.3f} |",
        "",
        f"Ratio amber/torch: **{ratio:.2f}x** of the median wall times (target <= "
        f"{TARGET_MLP_RATIO:g}x: {ok}); {a_min / t_min:.2f}x of the fastest samples; "
        f"{a_cpu / t_cpu:.2f}x of the CPU times (all threads, spin-waiting included).",
    ]


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("which", nargs="?", choices=("all", "ops", "mlp"), default="all")
    ap.add_argument("--repeats", type=int, default=21, help="samples per case (median)")
    ap.add_argument("--budget", type=float, default=0.02,
                    help="seconds per per-op sample (sets the calls per sample)")
    ap.add_argument("--steps", type=int, default=5, help="MLP steps per sample")
    ap.add_argument("--pause", type=float, default=0.3,
                    help="seconds of idle time before each MLP sample (lets the other "
                         "framework's spinning worker threads sleep)")
    ap.add_argument("--optim", choices=("sgd", "adam"), default="sgd")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="torch intra-op threads and NumPy BLAS threads (default: nproc)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cmd = "python bench/bench_eager.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = ["Command: `" + cmd.strip() + "`", ""] + machine_lines(torch.get_num_threads())
    if args.which in ("all", "ops"):
        out += ["", "### Per-op overhead on tiny tensors", ""]
        out += run_ops(args.repeats, args.budget)
    if args.which in ("all", "mlp"):
        out += ["", "### MLP training step", ""]
        out += run_mlp(args.repeats, args.optim, args.steps, args.pause)
    out.append(f"- load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
