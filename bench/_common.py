"""Shared by the model benchmarks. Imports nothing heavy: ``pin_threads`` must run
before NumPy (and its BLAS) is imported."""

from __future__ import annotations

import os
import platform
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
