"""Serving benchmark: ``amber serve`` over loopback, driven by NVIDIA Triton's clients.

* **latency**: batch-1 round trips for the MLP 784-512-512-10 (HTTP with the binary-data
  extension, HTTP JSON, gRPC), one client, p50 and p99 over ``--requests`` calls;
* **throughput**: requests per second with 1, 4 and 16 concurrent clients (threads, one
  client each, batch-1 requests), without and with dynamic batching (``--max-batch 16
  --max-delay-ms 1``);
* **saturation**: ``--soak`` seconds (default 60) of 16 clients as fast as they go: error
  count, and the server's resident memory before and after.

The server runs in its own process (``--workers 2``, one intra-op thread per session);
clients run in this one. Both share the machine's 2 cores, so throughput figures bound the
server from below.

Usage::

    python bench/bench_serving.py                            # print a Markdown section
    python bench/bench_serving.py --append bench/RESULTS.md  # and append it
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit

import amber as am
import amber.nn as nn
from serve.server import running


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _clients(server, kind: str):
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    if kind == "grpc":
        c = grpcclient.InferenceServerClient(server.grpc)

        def call(x):
            i = grpcclient.InferInput("input", list(x.shape), "FP32")
            i.set_data_from_numpy(x)
            return c.infer("mlp", [i]).as_numpy("output")
        return call
    c = httpclient.InferenceServerClient(server.http)

    def call_http(x):
        i = httpclient.InferInput("input", list(x.shape), "FP32")
        i.set_data_from_numpy(x, binary_data=(kind == "http-binary"))
        return c.infer("mlp", [i]).as_numpy("output")
    return call_http


def latency(server, kind: str, n: int) -> tuple[float, float]:
    call = _clients(server, kind)
    x = np.random.default_rng(0).normal(size=(1, 784)).astype(np.float32)
    for _ in range(20):
        call(x)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - t0)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def throughput(server, clients: int, seconds: float) -> tuple[float, int]:
    x = np.random.default_rng(0).normal(size=(1, 784)).astype(np.float32)
    counts, errors = [0] * clients, [0]
    stop = threading.Event()

    def worker(k: int) -> None:
        call = _clients(server, "http-binary")
        while not stop.is_set():
            try:
                call(x)
                counts[k] += 1
            except Exception:
                errors[0] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / seconds, errors[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--append", type=Path)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--soak", type=float, default=60.0)
    args = ap.parse_args()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "mlp.amber")
    am.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10)).eval()
    am.export(model, am.spec("batch", 784)).save(path)
    lines = ["## Serving: amber serve over loopback (bench_serving.py)", "",
             f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores "
             f"(server and clients share them), MLP 784-512-512-10, server `--workers 2`. "
             f"Load average before the run: {load}.", "",
             "Command: `python bench/bench_serving.py --append bench/RESULTS.md`", ""]
    with running(path, "--workers", "2", log_dir=tmp) as s:
        lines += ["| batch-1 round trip | p50 | p99 |", "|---|---|---|"]
        for kind in ("http-binary", "http-json", "grpc"):
            p50, p99 = latency(s, kind, args.requests)
            lines.append(f"| {kind} | {p50 * 1e3:.2f} ms | {p99 * 1e3:.2f} ms |")
        plain = {c: throughput(s, c, args.seconds) for c in (1, 4, 16)}
    with running(path, "--workers", "2", "--max-batch", "16", "--max-delay-ms", "1",
                 log_dir=tmp) as s:
        batched = {c: throughput(s, c, args.seconds) for c in (1, 4, 16)}
        rss0 = _rss_kb(s.proc.pid)
        soak_rate, soak_errors = throughput(s, 16, args.soak)
        rss1 = _rss_kb(s.proc.pid)
    lines += ["", "| concurrent clients | requests/s | with dynamic batching (16, 1 ms) |",
              "|---|---|---|"]
    for c in (1, 4, 16):
        lines.append(f"| {c} | {plain[c][0]:.0f} (errors: {plain[c][1]}) | "
                     f"{batched[c][0]:.0f} (errors: {batched[c][1]}) |")
    lines += ["", f"Saturation, {args.soak:.0f} s of 16 clients with dynamic batching: "
              f"{soak_rate:.0f} requests/s, {soak_errors} errors; server resident memory "
              f"{rss0 / 1024:.1f} MB before, {rss1 / 1024:.1f} MB after."]
    text = "\n".join(lines) + "\n"
    emit(text, args.append)


if __name__ == "__main__":
    main()
