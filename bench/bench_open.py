"""Model open time against weight size, in the native runtime (libamber through its C API).

DESIGN: weights are used in place from an mmap, so opening a file should cost the same
whatever the weights weigh, once the per-tensor SHA-256 checks are skipped
(``verify_hashes=False``; bounds checks always run). With the hashes checked, open time
grows with the bytes hashed. Usage::

    python bench/bench_open.py [--sizes-mb 1 16 128] [--repeats 15]

``--headers`` measures ``am.load`` instead on files whose header is large in one
direction (tests/helpers/big_headers.py: many functions, nodes, symbols, ...), each load
in a fresh process, on both backends (the Python reader type-checks the program on
both), with the process's peak resident memory::

    python bench/bench_open.py --headers [--header-mb 8 60] [--shapes functions nodes]

``--one-loader`` measures ``am.load(path)`` plus its first call on the native backend
(libamber alone reads the file; the Python program is built on first need) against the
two readers a native load ran before (the Python reader and verifier, then libamber),
each in a fresh process, on an exported ResNet-50 and an 8 MiB header of nodes::

    python bench/bench_open.py --one-loader [--repeats 5]

``--calls`` measures the Python cost of calling a loaded model (a 4x3 linear layer) by
how the arguments are given, in process CPU time per call::

    python bench/bench_open.py --calls
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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


_LOAD = """
import json, resource, sys, time
import amber as am
t, c = time.perf_counter(), time.process_time()
model = am.load(sys.argv[1], backend=sys.argv[2])
print(json.dumps({"s": time.perf_counter() - t, "cpu": time.process_time() - c,
                  "backend": model.backend,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def header_rows(header_mb: list[int], shapes: list[str], repeats: int) -> None:
    """Median ``am.load`` wall and process CPU seconds (and peak RSS) per shape, size
    and backend."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers.big_headers import sized

    print(f"load average: {os.getloadavg()}")
    print("| shape | header | backend | am.load wall (s) | CPU (s) | peak RSS (MB) |")
    print("|---|---:|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for mb in header_mb:
            for shape in shapes:
                path = Path(tmp) / f"{shape}{mb}.amber"
                path.write_bytes(sized(shape, mb << 20))
                for backend in ("reference", "native"):
                    runs = [json.loads(subprocess.run(
                        [sys.executable, *(["-S"] if sys.flags.no_site else []), "-c", _LOAD,
                         str(path), backend], check=True,
                        capture_output=True, text=True).stdout) for _ in range(repeats)]
                    print(f"| {shape} | {mb} MiB | {backend} | "
                          f"{statistics.median(r['s'] for r in runs):.2f} | "
                          f"{statistics.median(r['cpu'] for r in runs):.2f} | "
                          f"{max(r['rss_mb'] for r in runs):.0f} |", flush=True)
                path.unlink()
    print(f"load average: {os.getloadavg()}")


_ONE = """
import json, sys, time
import numpy as np
import amber as am
from amber.capture.serialize import program_from_header
from amber.format import read_container
from amber.native import NativeModel
path, how, shape = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
c0 = time.process_time()
t0 = time.perf_counter()
if how == "one loader":
    model = am.load(path, backend="native")
elif how == "two readers":  # what a native am.load did before: Python, then libamber
    cont = read_container(path)
    program_from_header(cont.header, cont.tensors)
    model = NativeModel(path, verify_hashes=False)
else:  # libamber alone
    model = NativeModel(path)
t1, c1 = time.perf_counter(), time.process_time()
model.run("forward", np.zeros(shape, np.float32))
print(json.dumps({"load": t1 - t0, "cpu": c1 - c0, "call": time.perf_counter() - t1}))
"""


def one_loader_rows(repeats: int) -> None:
    """Median wall and CPU seconds of a native ``am.load`` (and its first call) against
    the two readers it replaced, alternating per repeat, each in a fresh process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from models.cnn import AMBER, build

    from helpers.big_headers import sized

    print(f"load average: {os.getloadavg()}")
    print("| file | size | loader | load wall (s) | load CPU (s) | first call (s) |")
    print("|---|---:|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        resnet = Path(tmp) / "resnet50.amber"
        am.export(build(AMBER).resnet50().eval(), am.spec("batch", 3, 224, 224)).save(resnet)
        nodes = Path(tmp) / "nodes8.amber"
        nodes.write_bytes(sized("nodes", 8 << 20))
        files = [("ResNet-50", resnet, [1, 3, 224, 224]), ("8 MiB of nodes", nodes, [1])]
        hows = ("one loader", "two readers", "libamber alone")
        for label, path, shape in files:
            runs: dict[str, list[dict[str, float]]] = {h: [] for h in hows}
            for _ in range(repeats):
                for how in hows:
                    runs[how].append(json.loads(subprocess.run(
                        [sys.executable, "-c", _ONE, str(path), how, json.dumps(shape)],
                        check=True, capture_output=True, text=True).stdout))
            size = f"{path.stat().st_size / 2**20:.0f} MiB"
            for how in hows:
                med = {k: statistics.median(r[k] for r in runs[how]) for k in runs[how][0]}
                print(f"| {label} | {size} | {how} | {med['load']:.3f} | {med['cpu']:.3f} | "
                      f"{med['call']:.3f} |", flush=True)
    print(f"load average: {os.getloadavg()}")


def call_rows(repeats: int) -> None:
    """Median process CPU microseconds per call of a tiny model, per argument form."""
    import numpy as np

    print(f"load average: {os.getloadavg()}")
    print("| backend | arguments | CPU per call (us) |")
    print("|---|---|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "linear.amber"
        am.export(am.nn.Linear(4, 3), am.spec(2, 4)).save(path)
        for backend in ("native", "reference"):
            model = am.load(path, backend=backend)
            name = model.signature().inputs[0].name
            x = np.ones((2, 4), np.float32)
            forms = {"ndarray": ((x,), {}), "tensor": ((am.tensor(x),), {}),
                     "keyword": ((), {name: x}), "nested list": ((x.tolist(),), {})}
            for form, (args, kwargs) in forms.items():
                model(*args, **kwargs)
                samples = []
                for _ in range(repeats):
                    c = time.process_time()
                    for _ in range(1000):
                        model(*args, **kwargs)
                    samples.append((time.process_time() - c) * 1e3)
                print(f"| {backend} | {form} | {statistics.median(samples):.1f} |")
    print(f"load average: {os.getloadavg()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes-mb", type=int, nargs="+", default=[1, 16, 128])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--headers", action="store_true",
                   help="measure am.load on large headers instead")
    p.add_argument("--header-mb", type=int, nargs="+", default=[8, 60])
    p.add_argument("--shapes", nargs="+", default=["functions", "nodes", "symbols"])
    p.add_argument("--calls", action="store_true",
                   help="measure the Python cost of calling a loaded model instead")
    p.add_argument("--one-loader", action="store_true",
                   help="measure a native am.load against the two readers it replaced")
    args = p.parse_args()
    if args.one_loader:
        one_loader_rows(args.repeats)
        return
    if args.calls:
        call_rows(args.repeats)
        return
    if args.headers:
        header_rows(args.header_mb, args.shapes, args.repeats)
        return
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
