"""Distributed benchmark: amber.distributed against raw mpi4py, and DistributedDataParallel.

Three measurements, each run under ``mpiexec -n 2`` on this machine (loopback, shared
memory; two processes on two cores):

* **all-reduce bandwidth**: ``amber.distributed.all_reduce`` (SUM, in place) against
  ``mpi4py``'s ``Allreduce(IN_PLACE, ...)`` on the same float32 buffer, 1 KB to 100 MB;
  the two alternate in blocks; medians; algorithm bandwidth = bytes / time.
* **communication hidden behind backward**: for an MLP (784-512-512-10, batch 64 per
  rank) and a ResNet-18 (CIFAR-sized input 3x32x32, batch 8 per rank), the backward pass
  alone (``t_local``, no DDP), with DDP (``t_ddp``: backward + averaging), and one
  all-reduce of all gradients (``t_comm``). Hidden share = 1 - (t_ddp - t_local) / t_comm.
* **throughput 1 -> 2 processes**: training steps per second at the same per-rank batch,
  one process against two (weak scaling); with 2 cores, the ideal is 2x.

Usage::

    python bench/bench_distributed.py                            # print a Markdown section
    python bench/bench_distributed.py --append bench/RESULTS.md  # and append it

(the script launches itself with the ``mpiexec`` beside its Python; each rank pins BLAS
to 1 thread)."""

from __future__ import annotations

import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

SIZES = [1 << 10, 1 << 14, 1 << 17, 1 << 20, 1 << 23, 100 << 20]


def _median_time(fn, repeats: int, inner: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def worker_allreduce(blocks: int) -> dict:
    from mpi4py import MPI

    import amber as am
    import amber.distributed as dist

    dist.init_process_group("mpi")
    comm = MPI.COMM_WORLD
    rows = []
    for nbytes in SIZES:
        buf = np.ones(nbytes // 4, dtype=np.float32)
        t = am.tensor(buf.copy())
        inner = max(1, min(200, (8 << 20) // nbytes))
        amber_t, raw_t = [], []
        for _ in range(blocks):  # alternate in blocks
            comm.Barrier()
            raw_t.append(_median_time(lambda b=buf: comm.Allreduce(MPI.IN_PLACE, b), 3, inner))
            comm.Barrier()
            amber_t.append(_median_time(lambda x=t: dist.all_reduce(x), 3, inner))
        rows.append({"bytes": nbytes, "amber": statistics.median(amber_t),
                     "mpi4py": statistics.median(raw_t)})
    return {"allreduce": rows}


def _mlp():
    import amber.nn as nn

    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10)), (64, 784)


def _resnet18():
    import amber.nn as nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else None)

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(y + (x if self.down is None else self.down(x)))

    layers = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1) if hasattr(nn, "AdaptiveAvgPool2d")
               else nn.AvgPool2d(4), nn.Flatten(), nn.Linear(512, 10)]
    return nn.Sequential(*layers), (8, 3, 32, 32)


def worker_overlap(model_name: str, repeats: int) -> dict:
    import amber as am
    import amber.distributed as dist
    import amber.nn.functional as F
    from amber.nn.parallel import DistributedDataParallel

    dist.init_process_group("mpi")
    am.manual_seed(0)
    model, shape = {"mlp": _mlp, "resnet18": _resnet18}[model_name]()
    rng = np.random.default_rng(dist.get_rank())
    x = am.tensor(rng.normal(size=shape).astype(np.float32))
    y = am.tensor(rng.integers(0, 10, shape[0]))
    ddp = DistributedDataParallel(model)
    grads = [p for p in model.parameters()]

    def backward(use_ddp: bool) -> float:
        net = ddp if use_ddp else model
        loss = F.cross_entropy(net(x), y)
        for p in grads:
            p.grad = None
        dist.barrier()
        t0 = time.perf_counter()
        if use_ddp:
            loss.backward()
        else:
            with ddp.no_sync():
                loss.backward()
        return time.perf_counter() - t0

    flat = am.tensor(np.zeros(sum(p.numel() for p in grads), dtype=np.float32))

    def comm() -> float:
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(flat)
        return time.perf_counter() - t0

    local, with_ddp, alone = [], [], []
    backward(True)
    for _ in range(repeats):  # alternate in blocks
        local.append(backward(False))
        with_ddp.append(backward(True))
        alone.append(comm())
    t_local, t_ddp, t_comm = map(statistics.median, (local, with_ddp, alone))
    return {"model": model_name, "params": int(flat.numel()), "t_local": t_local,
            "t_ddp": t_ddp, "t_comm": t_comm, "buckets": len(ddp._buckets)}


def worker_throughput(model_name: str, steps: int) -> dict:
    import amber as am
    import amber.distributed as dist
    import amber.nn.functional as F
    from amber.nn.parallel import DistributedDataParallel

    dist.init_process_group("mpi")
    am.manual_seed(0)
    model, shape = {"mlp": _mlp, "resnet18": _resnet18}[model_name]()
    ddp = DistributedDataParallel(model)
    opt = am.optim.SGD(ddp.parameters(), lr=0.01)
    rng = np.random.default_rng(dist.get_rank())
    x = am.tensor(rng.normal(size=shape).astype(np.float32))
    y = am.tensor(rng.integers(0, 10, shape[0]))

    def step() -> None:
        loss = F.cross_entropy(ddp(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dist.barrier()
    took = time.perf_counter() - t0
    return {"model": model_name, "world": dist.get_world_size(),
            "samples_per_s": steps * shape[0] * dist.get_world_size() / took}


def _launch(n: int, *args: str) -> dict:
    mpiexec = str(Path(sys.executable).parent / "mpiexec")
    proc = subprocess.run([mpiexec, "-n", str(n), sys.executable, __file__, "--worker",
                           *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"worker {args} failed:\n{proc.stdout}\n{proc.stderr}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(lines[0][len("RESULT "):])


def _report(ar: dict, overlaps: list[dict], thr: list[dict], load: str) -> str:
    out = ["## Distributed: all-reduce, DDP overlap and 1 -> 2 processes "
           "(bench_distributed.py)", "",
           f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
           f"{os.cpu_count()} cores, MPICH over shared memory (2 processes on one "
           f"machine), BLAS 1 thread per rank. Load average before the run: {load}.", "",
           "Command: `python bench/bench_distributed.py --append bench/RESULTS.md`", "",
           "| buffer | amber all_reduce | raw mpi4py Allreduce | amber / mpi4py | "
           "amber GB/s |", "|---|---|---|---|---|"]
    for r in ar["allreduce"]:
        size = r["bytes"]
        label = f"{size >> 20} MB" if size >= 1 << 20 else f"{size >> 10} KB"
        out.append(f"| {label} | {r['amber'] * 1e6:.1f} us | {r['mpi4py'] * 1e6:.1f} us | "
                   f"{r['amber'] / r['mpi4py']:.2f} | {size / r['amber'] / 1e9:.2f} |")
    out += ["", "| model | gradients | backward alone | backward with DDP | one all-reduce "
            "of all gradients | hidden share |", "|---|---|---|---|---|---|"]
    for o in overlaps:
        hidden = 1 - (o["t_ddp"] - o["t_local"]) / o["t_comm"]
        out.append(f"| {o['model']} | {o['params'] / 1e6:.2f} M float32 in {o['buckets']} "
                   f"buckets | {o['t_local'] * 1e3:.2f} ms | {o['t_ddp'] * 1e3:.2f} ms | "
                   f"{o['t_comm'] * 1e3:.2f} ms | {hidden:.0%} |")
    out += ["", "| model | 1 process | 2 processes | speed-up |", "|---|---|---|---|"]
    for one, two in zip(thr[0::2], thr[1::2]):
        out.append(f"| {one['model']} | {one['samples_per_s']:.0f} samples/s | "
                   f"{two['samples_per_s']:.0f} samples/s | "
                   f"{two['samples_per_s'] / one['samples_per_s']:.2f}x |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", nargs="+")
    ap.add_argument("--append", type=Path)
    ap.add_argument("--blocks", type=int, default=5)
    args = ap.parse_args()
    if args.worker:
        kind, *rest = args.worker
        res = {"allreduce": lambda: worker_allreduce(int(rest[0])),
               "overlap": lambda: worker_overlap(rest[0], int(rest[1])),
               "throughput": lambda: worker_throughput(rest[0], int(rest[1]))}[kind]()
        import amber.distributed as dist

        if dist.get_rank() == 0:
            print("RESULT " + json.dumps(res), flush=True)
        return
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    ar = _launch(2, "allreduce", str(args.blocks))
    overlaps = [_launch(2, "overlap", m, str(r)) for m, r in (("mlp", 30), ("resnet18", 5))]
    thr = []
    for m, steps in (("mlp", 40), ("resnet18", 4)):
        thr += [_launch(1, "throughput", m, str(steps)), _launch(2, "throughput", m, str(steps))]
    text = _report(ar, overlaps, thr, load)
    print(text)
    if args.append:
        with open(args.append, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
