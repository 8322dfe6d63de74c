"""Distributed benchmark: amber.distributed against raw mpi4py, and DistributedDataParallel.

Three measurements, each run under ``mpiexec -n 2`` on this machine (loopback, shared
memory; two processes on two cores):

* **all-reduce overhead**: ``amber.distributed.all_reduce`` (SUM and AVG, in place)
  against what a mpi4py user writes on the same float32 buffer (``Allreduce(IN_PLACE)``,
  then for AVG ``np.divide`` by the world size), 1 KB to 100 MB; the four alternate in
  blocks (order reversed every other block); medians of wall and CPU time per call.
* **communication hidden behind backward**: for an MLP (784-512-512-10, batch 64 per
  rank) and a ResNet-18 (CIFAR-sized input 3x32x32, batch 8 per rank), one forward and
  backward under ``no_sync`` (compute only), with DDP (by default, with
  ``gradient_as_bucket_view=True``, and with the polling of reductions in flight
  switched off), DDP's bucket all-reduces alone, and backward followed by those
  all-reduces (no overlap). Hidden share = (compute + communication - step) /
  communication, and against the step without overlap.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit  # noqa: E402

SIZES = [1 << 10, 1 << 14, 1 << 17, 1 << 20, 1 << 23, 100 << 20]


def _timed(fn, inner: int) -> tuple[float, float]:
    """(wall, CPU) seconds per call over ``inner`` calls."""
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - w0) / inner, (time.process_time() - c0) / inner


def _alternate(comm, fns: dict, blocks: int, inner: int) -> dict:
    """Median (wall, CPU) per call of each function, run in blocks that alternate
    between them (the order reversed every other block), every block behind a barrier
    so both ranks run the same call at the same time."""
    samples: dict = {k: [] for k in fns}
    names = list(fns)
    for i in range(blocks):
        for k in names if i % 2 == 0 else names[::-1]:
            comm.Barrier()
            samples[k].append(_timed(fns[k], inner))
    return {k: [statistics.median(x) for x in zip(*v)] for k, v in samples.items()}


def _per_call(comm, fns: dict, calls: int) -> dict:
    """Median wall seconds of single calls, the functions taking turns call by call (so
    both see the same moments of the machine; a call that lost the processor to another
    process is an outlier the median leaves out)."""
    samples: dict = {k: [] for k in fns}
    items = list(fns.items())
    clock = time.perf_counter
    comm.Barrier()
    for i in range(calls):
        for k, f in items if i % 2 == 0 else items[::-1]:
            t0 = clock()
            f()
            samples[k].append(clock() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


def worker_allreduce(blocks: int) -> dict:
    """amber's SUM and AVG against what a mpi4py user writes: ``Allreduce(IN_PLACE)`` on
    the same float32 buffer (and, for AVG, a division by the world size after it)."""
    from mpi4py import MPI

    import amber as am
    import amber.distributed as dist

    dist.init_process_group("mpi")
    comm = MPI.COMM_WORLD
    world = np.float32(comm.Get_size())
    rows = []
    for nbytes in SIZES:
        t = am.tensor(np.zeros(nbytes // 4, dtype=np.float32))  # zeros: sums stay finite
        buf = t.numpy()  # the same buffer for both
        inner = max(1, min(500, (16 << 20) // nbytes))

        def raw_avg(b=buf) -> None:
            comm.Allreduce(MPI.IN_PLACE, b)
            np.divide(b, world, b)

        fns = {"mpi4py SUM": lambda b=buf: comm.Allreduce(MPI.IN_PLACE, b),
               "amber SUM": lambda x=t: dist.all_reduce(x),
               "mpi4py AVG": raw_avg,
               "amber AVG": lambda x=t: dist.all_reduce(x, dist.ReduceOp.AVG)}
        for f in fns.values():
            f()
        wall = _per_call(comm, fns, max(9, min(2000, (1 << 30) // nbytes)))
        cpu = _alternate(comm, fns, blocks, inner)
        rows.append({"bytes": nbytes, **{k: [wall[k], *cpu[k]] for k in fns}})
    return {"allreduce": rows}


def worker_overhead(calls: int) -> dict:
    """On one rank (the collective returns at once): the thread CPU time amber's SUM and
    AVG add to the mpi4py calls on a 1 KB buffer, best of 7 runs (CPU time does not count
    the moments another process holds the processor)."""
    from mpi4py import MPI

    import amber as am
    import amber.distributed as dist

    dist.init_process_group("mpi")
    comm, avg = MPI.COMM_WORLD, dist.ReduceOp.AVG
    t = am.tensor(np.zeros(256, dtype=np.float32))
    buf, world = t.numpy(), np.float32(1)

    def raw_avg() -> None:
        comm.Allreduce(MPI.IN_PLACE, buf)
        np.divide(buf, world, buf)

    fns = {"mpi4py SUM": lambda: comm.Allreduce(MPI.IN_PLACE, buf),
           "amber SUM": lambda: dist.all_reduce(t), "mpi4py AVG": raw_avg,
           "amber AVG": lambda: dist.all_reduce(t, avg)}
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(7):
        for k, f in fns.items():
            c0 = time.thread_time()
            for _ in range(calls):
                f()
            best[k] = min(best[k], (time.thread_time() - c0) / calls)
    return best


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


def worker_overlap(model_name: str, blocks: int) -> dict:
    """One training step's forward and backward: compute only (``no_sync``), with DDP
    (default, and ``gradient_as_bucket_view=True``; also with the polling of the
    reductions in flight switched off), and DDP's communication alone (its bucket
    all-reduces started together and awaited, no compute)."""
    from mpi4py import MPI

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
    am.manual_seed(0)  # a second replica: each DDP hooks its own module's parameters
    view = DistributedDataParallel({"mlp": _mlp, "resnet18": _resnet18}[model_name]()[0],
                                   gradient_as_bucket_view=True)
    group = ddp._group
    buffers = [np.zeros(b.numel, b.dtype) for b in ddp._buckets]

    def step(net, sync: bool = True) -> None:
        for p in net.module.parameters():
            p.grad = None
        loss = F.cross_entropy(net(x), y)
        if sync:
            loss.backward()
        else:
            with net.no_sync():
                loss.backward()

    def no_poll() -> None:
        group.test_all = lambda requests: False
        try:
            step(ddp)
        finally:
            del group.test_all

    def comm_only() -> None:
        MPI.Request.Waitall([group.start_all_reduce(b) for b in buffers])

    def sequential() -> None:  # no overlap: backward, then the same all-reduces
        step(ddp, sync=False)
        comm_only()

    fns = {"compute": lambda: step(ddp, sync=False), "sequential": sequential,
           "ddp": lambda: step(ddp),
           "ddp_view": lambda: step(view), "ddp_no_poll": no_poll, "comm": comm_only}
    for f in fns.values():
        f()
    res = _alternate(MPI.COMM_WORLD, fns, blocks, 1)
    return {"model": model_name, "params": sum(b.numel for b in ddp._buckets),
            "buckets": len(ddp._buckets), **res}


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


def _size(nbytes: int) -> str:
    return f"{nbytes >> 20} MB" if nbytes >= 1 << 20 else f"{nbytes >> 10} KB"


def _allreduce_rows(ar: dict) -> list[str]:
    out = ["All-reduce of a float32 buffer, in place: the median wall time of single calls, "
           "the four taking turns call by call (a call that lost the processor to another "
           "process is an outlier the median leaves out). The CPU ratio comes from "
           "alternating blocks of calls (process time; MPICH polls while it waits). "
           "mpi4py AVG is `Allreduce(IN_PLACE)` then `np.divide` by the world size.", "",
           "| buffer | mpi4py SUM | amber SUM | ratio | CPU ratio | mpi4py AVG | amber AVG | "
           "ratio | CPU ratio | amber SUM GB/s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in ar["allreduce"]:
        cells = [_size(r["bytes"])]
        for op in ("SUM", "AVG"):
            raw, ours = r[f"mpi4py {op}"], r[f"amber {op}"]
            cells += [f"{raw[0] * 1e6:.1f} us", f"{ours[0] * 1e6:.1f} us",
                      f"{ours[0] / raw[0]:.3f}", f"{ours[2] / raw[2]:.2f}"]
        cells.append(f"{r['bytes'] / r['amber SUM'][0] / 1e9:.2f}")
        out.append("| " + " | ".join(cells) + " |")
    o = {k: v * 1e9 for k, v in ar["overhead"].items()}
    out += ["", f"What amber adds per call, as thread CPU time on one rank (1 KB, best "
            f"of 7 runs of 100000 calls): SUM {o['amber SUM'] - o['mpi4py SUM']:.0f} ns "
            f"({o['mpi4py SUM']:.0f} -> {o['amber SUM']:.0f} ns), AVG "
            f"{o['amber AVG'] - o['mpi4py AVG']:.0f} ns ({o['mpi4py AVG']:.0f} -> "
            f"{o['amber AVG']:.0f} ns).", ""]
    return out


def _overlap_rows(overlaps: list[dict]) -> list[str]:
    out = ["One step's forward and backward (wall ms, CPU ms in brackets; the optimizer "
           "is not included). Hidden share = (compute + communication - step) / "
           "communication; in brackets the share against the step without overlap "
           "(compute, then the same all-reduces): (sequential - step) / communication.", "",
           "| model | gradients | compute only (no_sync) | DDP's communication alone | "
           "compute, then communication | DDP step | hidden | DDP, "
           "gradient_as_bucket_view | hidden | DDP without polling | hidden |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for o in overlaps:
        c, m, q = o["compute"][0], o["comm"][0], o["sequential"][0]
        cells = [o["model"], f"{o['params'] / 1e6:.2f} M float32 in {o['buckets']} buckets"]
        cells += [f"{o[k][0] * 1e3:.2f} ({o[k][1] * 1e3:.2f})"
                  for k in ("compute", "comm", "sequential")]
        for k in ("ddp", "ddp_view", "ddp_no_poll"):
            cells += [f"{o[k][0] * 1e3:.2f} ({o[k][1] * 1e3:.2f})",
                      f"{(c + m - o[k][0]) / m:.0%} ({(q - o[k][0]) / m:.0%})"]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def _report(ar: dict, overlaps: list[dict], thr: list[dict], load: str, after: str,
            only: str | None) -> str:
    flag = f" --only {only}" if only else ""
    out = ["## Distributed: all-reduce, DDP overlap and 1 -> 2 processes "
           "(bench_distributed.py)", "",
           f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
           f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, MPICH "
           f"over shared memory (2 processes on one machine), BLAS 1 thread per rank. Load "
           f"average before the run: {load}; after: {after}.", "",
           f"Command: `python bench/bench_distributed.py{flag} --append bench/RESULTS.md`", ""]
    if ar["allreduce"]:
        out += _allreduce_rows(ar)
    if overlaps:
        out += _overlap_rows(overlaps)
    if thr:
        out += ["| model | 1 process | 2 processes | speed-up |", "|---|---|---|---|"]
    for one, two in zip(thr[0::2], thr[1::2]):
        out.append(f"| {one['model']} | {one['samples_per_s']:.0f} samples/s | "
                   f"{two['samples_per_s']:.0f} samples/s | "
                   f"{two['samples_per_s'] / one['samples_per_s']:.2f}x |")
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", nargs="+")
    ap.add_argument("--append", type=Path)
    ap.add_argument("--blocks", type=int, default=15)
    ap.add_argument("--only", choices=("allreduce", "overlap", "throughput"))
    args = ap.parse_args()
    if args.worker:
        kind, *rest = args.worker
        res = {"allreduce": lambda: worker_allreduce(int(rest[0])),
               "overhead": lambda: worker_overhead(int(rest[0])),
               "overlap": lambda: worker_overlap(rest[0], int(rest[1])),
               "throughput": lambda: worker_throughput(rest[0], int(rest[1]))}[kind]()
        import amber.distributed as dist

        if dist.get_rank() == 0:
            print("RESULT " + json.dumps(res), flush=True)
        return
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    ar = {"allreduce": []}
    overlaps: list[dict] = []
    thr: list[dict] = []
    if args.only in (None, "allreduce"):
        ar = _launch(2, "allreduce", str(args.blocks))
        ar["overhead"] = _launch(1, "overhead", "100000")
    if args.only in (None, "overlap"):
        overlaps = [_launch(2, "overlap", m, str(r))
                    for m, r in (("mlp", args.blocks * 3), ("resnet18", args.blocks))]
    if args.only in (None, "throughput"):
        for m, steps in (("mlp", 40), ("resnet18", 4)):
            thr += [_launch(1, "throughput", m, str(steps)),
                    _launch(2, "throughput", m, str(steps))]
    after = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    text = _report(ar, overlaps, thr, load, after, args.only)
    emit(text, args.append)


if __name__ == "__main__":
    main()
