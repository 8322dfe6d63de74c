"""Eager benchmarks: amber against PyTorch, 1 thread and 2 in the same run, wall and CPU time.

Cases (models in bench/eager_models.py, the same weights in both frameworks):

* ``ops``: per-op cost on tiny tensors (16 elements; matmul 4x4) for add, mul, matmul,
  relu, sum and exp, with and without ``requires_grad``, and a forward+backward of
  ``(a * b).sum()``. The kernel costs almost nothing, so the figure is dispatch and
  autograd bookkeeping. Target: at most 1.5x PyTorch.
* ``encoder``: forward (no grad) of a MiniLM-shape BERT encoder (6 layers, hidden 384,
  12 heads, GELU) at 4x32 and 16x128 tokens. Target: at most 1.5x PyTorch.
* ``cnn``: one training step (forward, cross-entropy, backward, SGD) of the digits CNN
  (conv, batch norm, ReLU, max-pool, linear) at batch 32 on the 8x8 digits. Target 1.5x.
* ``mlp``: one training step of the 784-512-512-10 MLP at batch 64 (SGD). Target 1.2x.
* ``lstm``: one training step of an ``nn.LSTM`` sequence classifier at batch 64 over 10
  time steps (SGD). Target 1.5x.
* ``block``: one training step of a causal transformer block (``nn.MultiheadAttention``
  with a causal mask, GELU MLP) with a per-token classifier at batch 32 x 16 tokens
  (SGD). Target 1.5x.

Every (framework, thread count) runs alone in its own process; processes of the two
frameworks alternate in blocks and each figure is the median over all samples of all
blocks. A sample is a loop of calls lasting about ``--budget`` seconds; CPU time is the
process's (all threads). Needs the ``bench`` extra (``torch==2.13.0``). Usage::

    python bench/bench_eager.py                       # every case, 1 and 2 threads
    python bench/bench_eager.py encoder cnn --threads 1 --blocks 3
    python bench/bench_eager.py --append bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_model, emit

HERE = Path(__file__).resolve().parent
CASES = ("ops", "encoder", "cnn", "mlp", "lstm", "block")
TARGETS = {"ops": 1.5, "encoder": 1.5, "cnn": 1.5, "mlp": 1.2, "lstm": 1.5, "block": 1.5}


# ----------------------------------------------------------------------------- worker side


def _setup(framework: str, threads: int) -> Any:
    sys.path.insert(0, str(HERE))
    if framework == "amber":
        import amber as am

        am.set_num_threads(threads)
        return am
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    return torch


def _sample(fn: Callable[[], Any], budget: float) -> tuple[float, float]:
    """(wall, CPU) seconds per call over a loop of about ``budget`` seconds."""
    n, w0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        fn()
        n += 1
        w = time.perf_counter() - w0
        if w >= budget:
            return w / n, (time.process_time() - c0) / n


def _op_cases(fw: str, lib: Any) -> dict[str, Callable[[], Any]]:
    import numpy as np

    rng = np.random.default_rng(0)
    x, y, m = (rng.standard_normal(s).astype(np.float32) for s in ((16,), (16,), (4, 4)))
    cases: dict[str, Callable[[], Any]] = {}
    for grad in (False, True):
        a, b, mm = (lib.tensor(v, requires_grad=grad) for v in (x, y, m))
        tag = " (grad)" if grad else ""
        relu = lib.relu
        cases["add" + tag] = lambda a=a, b=b: a + b
        cases["mul" + tag] = lambda a=a, b=b: a * b
        cases["matmul 4x4" + tag] = lambda m_=mm: m_ @ m_
        cases["relu" + tag] = lambda a=a, relu=relu: relu(a)
        cases["sum" + tag] = lambda a=a: a.sum()
        cases["exp" + tag] = lambda a=a: a.exp()
    a, b = lib.tensor(x, requires_grad=True), lib.tensor(y, requires_grad=True)

    def backward() -> None:
        a.grad = b.grad = None
        (a * b).sum().backward()

    cases["mul+sum+backward (4 ops)"] = backward
    return cases


def _encoder_case(fw: str, lib: Any, batch: int, tokens: int) -> tuple[Callable[[], Any], Any]:
    from eager_models import build, encoder_inputs

    model = build("encoder", fw)
    model.eval()
    if fw == "amber":
        xs = [lib.tensor(v) for v in encoder_inputs(batch, tokens)]
    else:
        xs = [lib.from_numpy(v) for v in encoder_inputs(batch, tokens)]

    def forward() -> Any:
        with lib.no_grad():
            return model(*xs)

    return forward, lambda: forward().numpy()[0, :4, :4].tolist()


def _train_case(fw: str, lib: Any, kind: str) -> tuple[Callable[[], Any], Any]:
    import numpy as np
    from eager_models import build, train_batch

    model = build(kind, fw)
    if kind in ("lstm", "block"):
        *xs, y = train_batch(kind)
    elif kind == "cnn":
        with np.load(HERE.parent / "examples" / "data" / "digits.npz") as d:
            x = (d["images"][:32].astype(np.float32) / 16.0)[:, None]
            y = d["labels"][:32].astype(np.int64)
    else:
        rng = np.random.default_rng(1)
        x = rng.standard_normal((64, 784)).astype(np.float32)
        y = rng.integers(0, 10, 64).astype(np.int64)
    if kind not in ("lstm", "block"):
        xs = [x]
    opt = lib.optim.SGD(model.parameters(), lr=0.01)
    ce = lib.nn.functional.cross_entropy
    if fw == "amber":
        txs, ty = [lib.tensor(v) for v in xs], lib.tensor(y)
    else:
        txs, ty = [lib.from_numpy(v) for v in xs], lib.from_numpy(y)

    def step() -> Any:
        opt.zero_grad()
        loss = ce(model(*txs), ty)
        loss.backward()
        opt.step()
        return loss

    return step, lambda: float(step().item())


def worker(args: argparse.Namespace) -> None:
    lib = _setup(args.worker, args.threads)
    out: dict[str, Any] = {}
    if args.case == "ops":
        for name, fn in _op_cases(args.worker, lib).items():
            fn()
            out[name] = [_sample(fn, args.budget / 10) for _ in range(args.samples)]
    else:
        if args.case.startswith("encoder"):
            batch, tokens = (int(v) for v in args.case.split("-")[1].split("x"))
            fn, check = _encoder_case(args.worker, lib, batch, tokens)
        else:
            fn, check = _train_case(args.worker, lib, args.case)
        out["check"] = check()  # the first output (forward) or the first loss (training)
        fn()
        out[args.case] = [_sample(fn, args.budget) for _ in range(args.samples)]
    print(json.dumps(out))


# ----------------------------------------------------------------------------- driver side


def _run_worker(fw: str, case: str, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, __file__, "--worker", fw, "--case", case, "--threads", str(threads),
           "--samples", str(args.samples), "--budget", str(args.budget)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"worker {fw} {case} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _case_names(which: list[str]) -> list[str]:
    names = []
    for c in which:
        names += ["encoder-4x32", "encoder-16x128"] if c == "encoder" else [c]
    return names


def measure(case: str, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    """Samples per sub-case for both frameworks, over alternating blocks of processes."""
    samples: dict[str, dict[str, list]] = {"amber": {}, "torch": {}}
    checks: dict[str, Any] = {}
    load = os.getloadavg()[0]
    for block in range(args.blocks):
        order = ("amber", "torch") if block % 2 == 0 else ("torch", "amber")
        for fw in order:
            res = _run_worker(fw, case, threads, args)
            checks[fw] = res.pop("check", None)
            for k, v in res.items():
                samples[fw].setdefault(k, []).extend(v)
    return {"samples": samples, "checks": checks, "load": max(load, os.getloadavg()[0])}


def _wall_verdict(ratio: float, target: float, load: float) -> str:
    """Whether the wall-time ratio meets the target; none when other work held a core:
    the 1-minute load average (which counts this benchmark's own busy threads, up to one
    per core) above the cores plus a half. The threads then wait for a CPU, and wall
    time measures the machine."""
    if load > (os.cpu_count() or 1) + 0.5:
        return f"loaded ({load:.1f})"
    return "yes" if ratio <= target else "**no**"


def _med(xs: list[list[float]], i: int) -> float:
    return statistics.median(x[i] for x in xs)


def report(results: dict[tuple[str, int], dict[str, Any]], args: argparse.Namespace,
           load_start: tuple[float, ...]) -> list[str]:
    unit = {"ops": ("us", 1e6)}
    lines = []
    for threads in args.threads:
        lines += ["", f"### {threads} thread{'s' if threads > 1 else ''}", "",
                  "| case | amber wall | torch wall | wall ratio | amber CPU | torch CPU "
                  "| CPU ratio | target | met (CPU) | met (wall) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|"]
        for case in _case_names(args.cases):
            r = results[(case, threads)]
            base = case.split("-")[0]
            name, scale = unit.get(base, ("ms", 1e3))
            target = TARGETS[base]
            for sub, a in r["samples"]["amber"].items():
                t = r["samples"]["torch"][sub]
                aw, tw, ac, tc = (_med(a, 0), _med(t, 0), _med(a, 1), _med(t, 1))
                label = sub if base == "ops" else case
                ok = "yes" if ac / tc <= target else "**no**"
                wall_ok = _wall_verdict(aw / tw, target, r["load"])
                lines.append(f"| {label} | {aw * scale:.2f} {name} | {tw * scale:.2f} {name} "
                             f"| {aw / tw:.2f}x | {ac * scale:.2f} {name} "
                             f"| {tc * scale:.2f} {name} | {ac / tc:.2f}x | <= {target}x | {ok} "
                             f"| {wall_ok} |")
        checks = [_agreement(case, results[(case, threads)]["checks"])
                  for case in _case_names(args.cases) if case != "ops"]
        if checks:
            lines += ["", "Same weights, same inputs: " + "; ".join(checks) + "."]
    head = [
        f"Command: `python bench/bench_eager.py {' '.join(args.argv)}`".replace("  ", " "),
        "",
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: nproc={os.cpu_count()}, CPU: {cpu_model()}, Python "
        f"{platform.python_version()}",
        f"- load average at start {' '.join(f'{v:.2f}' for v in load_start)}, at end "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} (other processes that take a core "
        f"inflate wall times; a row measured while the 1-minute load exceeded the cores "
        f"plus a half reads \"loaded\" instead of a wall verdict; PyTorch's idle threads spin, "
        f"so its CPU time at 2 threads counts the spinning and the wall verdict is the "
        f"one the target means)",
        f"- method: each (framework, threads) in its own process, {args.blocks} alternating "
        f"blocks x {args.samples} samples of ~{args.budget}s (per-op: ~{args.budget / 10}s); "
        f"medians; CPU = process CPU time per call, all threads",
    ]
    return head + lines


def _agreement(case: str, checks: dict[str, Any]) -> str:
    a, t = checks["amber"], checks["torch"]
    if isinstance(a, float):
        return f"{case} first loss {a:.6f} (amber) vs {t:.6f} (torch)"
    diff = max(abs(x - y) for ra, rt in zip(a, t) for x, y in zip(ra, rt))
    return f"{case} outputs differ by at most {diff:.1e} (first 4x4 values)"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="*", help=f"any of {', '.join(CASES)} (default: all)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--blocks", type=int, default=4, help="alternating process blocks")
    ap.add_argument("--samples", type=int, default=5, help="samples per process and case")
    ap.add_argument("--budget", type=float, default=0.3, help="seconds per sample")
    ap.add_argument("--append", type=Path, help="append the Markdown section to this file")
    ap.add_argument("--worker", choices=("amber", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        args.threads = int(args.threads)
        worker(args)
        return
    args.argv = argv
    args.cases = list(args.cases) or list(CASES)
    unknown = set(args.cases) - set(CASES)
    if unknown:
        ap.error(f"unknown cases {sorted(unknown)}; choose from {', '.join(CASES)}")
    args.threads = [int(t) for t in str(args.threads).split(",")]
    load_start = os.getloadavg()
    results = {}
    for threads in args.threads:
        for case in _case_names(args.cases):
            results[(case, threads)] = measure(case, threads, args)
            print(f"# done: {case}, {threads} thread(s)", file=sys.stderr)
    lines = ["## Eager benchmark: amber vs PyTorch, 1 and 2 threads (bench_eager.py)", "",
             *report(results, args, load_start)]
    text = "\n".join(lines) + "\n"
    emit(text, args.append)


if __name__ == "__main__":
    main()
