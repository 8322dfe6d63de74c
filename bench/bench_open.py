"""Model open time against weight size, in the native runtime (libamber through its C API).

DESIGN: weights are used in place from an mmap, so opening a file should cost the same
whatever the weights weigh, once the per-tensor SHA-256 checks are skipped
(``verify_hashes=False``; bounds checks always run). With the hashes checked, open time
grows with the bytes hashed. Usage::

    python bench/bench_open.py [--sizes-mb 1 16 128] [--repeats 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import amber as am
from amber.native import NativeModel


def make_file(directory: Path, megabytes: int) -> Path:
    """An exported y = x @ W with a float32 W of about ``megabytes`` MB."""
    cols = 256
    rows = max(1, megabytes * 1024 * 1024 // (4 * cols))
    w = am.tensor(np.random.default_rng(0).standard_normal((rows, cols), dtype=np.float32))
    path = directory / f"w{megabytes}mb.amber"
    am.export(lambda x: x @ w, am.spec("batch", rows), weights={"w": w}).save(path)
    return path


def open_ms(path: Path, verify_hashes: bool, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model = NativeModel(str(path), verify_hashes=verify_hashes)
        samples.append((time.perf_counter() - t0) * 1e3)
        model.close()
    return statistics.median(samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes-mb", type=int, nargs="+", default=[1, 16, 128])
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = [(mb, make_file(Path(tmp), mb)) for mb in args.sizes_mb]
        rows = []
        for mb, path in files:
            NativeModel(str(path)).close()  # page the file in once: measure opening, not disk
            rows.append((mb, os.path.getsize(path), open_ms(path, False, args.repeats),
                         open_ms(path, True, args.repeats)))
    print("| weights | file bytes | open, hashes skipped (ms) | open, hashes checked (ms) |")
    print("|---:|---:|---:|---:|")
    for mb, size, fast, checked in rows:
        print(f"| {mb} MB | {size:,} | {fast:.3f} | {checked:.2f} |")


if __name__ == "__main__":
    main()
