"""Shared by the model benchmarks. Imports nothing heavy: ``pin_threads`` must run
before NumPy (and its BLAS) is imported."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any


def pin_threads(argv: list[str], default: int) -> int:
    """Read ``--threads N`` from ``argv`` (else ``default``) and pin the BLAS/OpenMP thread
    counts to it through the environment; returns N."""
    threads = default
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            threads = int(argv[i + 1])
        elif a.startswith("--threads="):
            threads = int(a.split("=", 1)[1])
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    return threads


def numpy_default_kernels() -> None:
    """For a benchmark that compares against NumPy: drop ``OPENBLAS_CORETYPE`` and
    ``OPENBLAS_L2_SIZE`` from this process's environment (some machines set them to force
    OpenBLAS's older kernels), so NumPy runs the kernels it would pick itself. Call before
    NumPy is imported; :func:`blas_kernel` reports what it picked."""
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        os.environ.pop(var, None)


def blas_kernel() -> str:
    """The BLAS that NumPy runs, as threadpoolctl reports it (library, version, kernel
    architecture, threads)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed (pip install '.[bench]')"
    rows = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
            f"{i.get('num_threads')} threads)" for i in threadpool_info()
            if i.get("user_api") == "blas"]
    return "; ".join(rows) or "no BLAS loaded"


def sample(fn: Callable[[], Any], budget: float, pause: float) -> tuple[float, float]:
    """(wall seconds per call, process CPU seconds per call) over a loop of about
    ``budget`` seconds, after ``pause`` seconds idle and one untimed call."""
    time.sleep(pause)
    fn()
    n = 0
    w0, c0 = time.perf_counter(), time.process_time()
    while True:
        fn()
        n += 1
        w = time.perf_counter() - w0
        if w >= budget:
            break
    return w / n, (time.process_time() - c0) / n


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def shown_command(script: str, argv: list[str]) -> str:
    """The command line to record: ``python bench/<script>`` and its arguments, without
    ``--append FILE`` (or ``--append=FILE``)."""
    shown = [a for i, a in enumerate(argv) if not a.startswith("--append")
             and not (i > 0 and argv[i - 1] == "--append")]
    return " ".join([f"python bench/{script}", *shown])


def bn_statistics(state: dict[str, Any]) -> dict[str, Any]:
    """A module's state as arrays, with BatchNorm's running statistics and shifts drawn at
    random (seed 1; variances in [0.5, 1.5], means and shifts in [-0.2, 0.2]) so that its
    eval arithmetic is not the identity."""
    import numpy as np

    rng = np.random.default_rng(1)
    out = {}
    for k, v in state.items():
        arr = v.numpy()
        if k.endswith("running_var"):
            arr = rng.uniform(0.5, 1.5, arr.shape).astype(arr.dtype)
        elif k.endswith("running_mean") or (k.endswith("bias") and "bn" in k):
            arr = rng.uniform(-0.2, 0.2, arr.shape).astype(arr.dtype)
        out[k] = arr
    return out


def export_cache(name: str) -> str:
    """A folder for a benchmark's exported files, named after the amber sources that wrote
    them: after a change to the package (a composite, the exporter) the models are
    exported again instead of timing stale files."""
    import hashlib
    import tempfile

    import amber

    root = os.path.dirname(amber.__file__)
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".py"):
                digest.update(os.path.relpath(os.path.join(folder, f), root).encode())
                with open(os.path.join(folder, f), "rb") as fh:
                    digest.update(fh.read())
    return os.path.join(tempfile.gettempdir(), f"{name}-{digest.hexdigest()[:12]}")


def peer_run_head(title: str, script: str, versions: str, load0: tuple[float, ...],
                  repeats: int, budget: float, threads: int) -> list[str]:
    """The opening lines of a section comparing runtimes: title, the command that
    reproduces it, machine, versions, load average at start and now, and the method."""
    load1 = os.getloadavg()
    return [title, "", f"Command: `{shown_command(script, sys.argv[1:])}`", "",
            f"- machine: nproc={os.cpu_count()}, CPU: {cpu_model()}",
            f"- {versions}",
            f"- load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
            f"at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}",
            f"- medians of {repeats} alternating blocks of ~{budget} s; "
            + ("each block in its own process" if threads > 1 else "one process"), ""]


def emit(text: str, append: str | os.PathLike[str] | None) -> None:
    """Print a Markdown section and, with ``--append FILE``, add it to FILE."""
    print(text)
    if append:
        with open(append, "a") as f:
            f.write("\n" + text)
