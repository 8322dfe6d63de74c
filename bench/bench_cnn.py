"""Convolutional-network inference: amber's native runtime against ONNX Runtime and
PyTorch on the same weights.

Models (bench/models/cnn.py, standard definitions, random weights, BatchNorm statistics
random too): ResNet-50, SqueezeNet 1.0, MobileNetV2 and the digits CNN, at batch 1 and 8;
and single layers (3x3, 1x1 and depthwise convolution, max- and average-pooling, and the
MLP 784-512-512-10 at batch 64). Each is written once with the API amber and PyTorch
share, built in amber, exported (symbolic batch) and saved as a .amber file; the PyTorch
twin loads the same state dict. Runtimes:

* ``amber``: the native runtime on the .amber file;
* ``ORT/amber``: ONNX Runtime on amber's own ONNX export of that file;
* ``ORT/torch``: ONNX Runtime on ``torch.onnx.export`` of the PyTorch twin (the graph
  PyTorch users hand to ONNX Runtime; the targets compare with this one);
* ``torch``: PyTorch eager (``torch.inference_mode``).

Every runtime's output is first checked against amber's. Timing: blocks alternate
between the runtimes (rotating which goes first); a block is a loop of calls lasting about
``--budget`` seconds after one untimed call; each figure is the median over ``--repeats``
blocks of the mean wall time per call (and of the process CPU time per call, which other
processes on a shared machine do not inflate). "per round" is the median over the rounds
of amber's CPU time over ORT/torch's in the same round (blocks a few seconds apart, so a
slow period of the machine tends to slow both). With ``--threads 2`` every block runs in
a fresh process of its own holding only that runtime (no other runtime's threads
compete); with 1 thread all run in one process. GFLOP/s counts 2 x the multiply-adds of
convolutions and linear layers.

A last table times one 1024 x 1024 x 1024 float32 product: amber's native runtime (a
captured ``x @ y`` of two inputs, so both operands are packed in every call) against
NumPy's BLAS (``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` dropped from this process's
environment so OpenBLAS picks its own kernels; the kernel threadpoolctl reports is
printed), each block in a process of its own.

Usage (from the repository root, with the ``onnx`` and ``torch`` extras)::

    python bench/bench_cnn.py --threads 1
    python bench/bench_cnn.py --threads 2 --append bench/RESULTS.md
    python bench/bench_cnn.py --threads 1 --only models --case mobilenet_v2
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import (  # noqa: E402
    blas_kernel,
    bn_statistics,
    emit,
    export_cache,
    numpy_default_kernels,
    peer_run_head,
    pin_threads,
)

_THREADS = pin_threads(sys.argv[1:], default=1)
numpy_default_kernels()  # the GEMM row compares with NumPy's OpenBLAS, its own kernels

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from models.cnn import AMBER, MODELS, build, layer_defs, torch_lib  # noqa: E402

import amber as am  # noqa: E402

RUNTIMES = ("amber", "ORT/amber", "ORT/torch", "torch")
WORK = export_cache("amber_bench_cnn")


# ----------------------------------------------------------------------------- cases


def cases(layers: bool, models: bool) -> list[tuple[str, tuple[int, ...], list[int]]]:
    """(name, input shape without batch, batches)."""
    out = []
    if models:
        out += [(name, shape, [1, 8]) for name, _, shape in MODELS]
    if layers:
        for name, (_, shape) in layer_defs(AMBER).items():
            out.append((name, shape, [64] if name.startswith("MLP") else [1]))
    return out


def _modules(name: str) -> tuple[Any, Any]:
    """The amber module and its PyTorch twin with the same (seeded random) weights."""
    import torch

    am.manual_seed(0)
    tl = torch_lib()
    ctor = dict((n, c) for n, c, _ in MODELS).get(name)
    if ctor:
        a_mod, t_mod = getattr(build(AMBER), ctor)(), getattr(build(tl), ctor)()
    else:
        a_mod, t_mod = layer_defs(AMBER)[name][0], layer_defs(tl)[name][0]
    state = bn_statistics(a_mod.state_dict())
    a_mod.load_state_dict({k: am.tensor(v) for k, v in state.items()})
    t_mod.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=False)
    a_mod.eval(), t_mod.eval()
    return a_mod, t_mod


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def prepare(name: str, shape: tuple[int, ...]) -> dict[str, str]:
    """Writes the .amber file, amber's ONNX export and the torch.onnx export once."""
    import torch

    os.makedirs(WORK, exist_ok=True)
    base = os.path.join(WORK, _slug(name))
    paths = {"amber": base + ".amber", "ORT/amber": base + ".amber.onnx",
             "ORT/torch": base + ".torch.onnx", "torch": base + ".pt"}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    a_mod, t_mod = _modules(name)
    program = am.export(a_mod, am.spec("batch", *shape))
    program.save(paths["amber"])
    am.onnx.export(paths["amber"], paths["ORT/amber"])
    x = torch.zeros((1,) + shape)
    torch.onnx.export(t_mod, (x,), paths["ORT/torch"], input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
    torch.save(t_mod.state_dict(), paths["torch"])
    return paths


def flops(name: str, shape: tuple[int, ...]) -> float:
    """2 x multiply-adds of the convolutions and linear layers at batch 1."""
    import torch

    _, t_mod = _modules(name)
    total = [0.0]

    def hook(mod: Any, inp: Any, out: Any) -> None:
        if isinstance(mod, torch.nn.Conv2d):
            total[0] += 2.0 * out.numel() * (mod.in_channels // mod.groups) * \
                mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, torch.nn.Linear):
            total[0] += 2.0 * out.numel() * mod.in_features

    for m in t_mod.modules():
        m.register_forward_hook(hook)
    with torch.inference_mode():
        t_mod(torch.zeros((1,) + shape))
    return total[0]


# ----------------------------------------------------------------------------- runners


def runner(runtime: str, name: str, paths: dict[str, str], threads: int) -> Any:
    """A function x -> output array for one runtime."""
    if runtime == "amber":
        model = am.load(paths["amber"], backend="native", threads=threads)
        return lambda x: np.asarray(model(x).numpy())
    if runtime.startswith("ORT"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(paths[runtime], opts, providers=["CPUExecutionProvider"])
        iname = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {iname: x})[0]
    import torch

    torch.set_num_threads(threads)
    _, t_mod = _modules(name)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return t_mod(torch.from_numpy(x)).numpy()

    return run


def block(fn: Any, x: np.ndarray, budget: float) -> tuple[float, float]:
    """(wall, process CPU) seconds per call over about ``budget`` seconds."""
    fn(x)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        fn(x)
        n += 1
        if time.perf_counter() - t0 >= budget:
            return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


GEMM_N = 1024


def _gemm_child(runtime: str, budget: float) -> None:
    """One block of the 1024^3 product in amber or NumPy, alone in this process."""
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal((GEMM_N, GEMM_N)).astype(np.float32) for _ in range(2))
    if runtime == "numpy":
        print(json.dumps([*block(lambda x: x @ b, a, budget), blas_kernel()]))
        return
    path = os.path.join(WORK, "gemm1024.amber")
    if not os.path.exists(path):
        os.makedirs(WORK, exist_ok=True)
        spec = am.spec(GEMM_N, GEMM_N)
        am.export(lambda x, y: x @ y, spec, spec, check=False).save(path)  # (no vectors)
    from amber import native

    session = native.NativeModel(path, threads=_THREADS).session()
    print(json.dumps([*block(lambda x: session.run("forward", [x, b])[0], a, budget), ""]))


def gemm_table(args: argparse.Namespace) -> list[str]:
    """amber vs NumPy on the 1024^3 product: medians of alternating blocks."""
    times: dict[str, list[tuple[float, float]]] = {"amber": [], "numpy": []}
    kernel = ""
    for rep in range(args.repeats):
        for r in (("amber", "numpy") if rep % 2 == 0 else ("numpy", "amber")):
            out = subprocess.run(
                [sys.executable, __file__, "--threads", str(_THREADS), "--budget",
                 str(args.budget), "--child", r, "gemm", "0"],
                capture_output=True, text=True, check=True)
            w, c, k = json.loads(out.stdout.strip().splitlines()[-1])
            times[r].append((w, c))
            kernel = k or kernel
    g = 2.0 * GEMM_N ** 3 / 1e9
    w = {r: statistics.median(t[0] for t in v) for r, v in times.items()}
    c = {r: statistics.median(t[1] for t in v) for r, v in times.items()}
    return ["", f"NumPy's BLAS: {kernel}", "",
            "| product | amber ms | NumPy ms | amber GFLOP/s | NumPy GFLOP/s | "
            "amber / NumPy (wall) | (CPU) |", "|---|---|---|---|---|---|---|",
            f"| GEMM {GEMM_N}x{GEMM_N}x{GEMM_N} float32 | {w['amber'] * 1e3:.2f} | "
            f"{w['numpy'] * 1e3:.2f} | {g / w['amber']:.0f} | {g / w['numpy']:.0f} | "
            f"{w['amber'] / w['numpy']:.2f}x | {c['amber'] / c['numpy']:.2f}x |"]


def _child(args: argparse.Namespace) -> None:
    """--child RUNTIME NAME BATCH: one block of one runtime, alone in this process."""
    runtime, name, batch = args.child[0], args.child[1], int(args.child[2])
    if name == "gemm":
        _gemm_child(runtime, args.budget)
        return
    shape = dict((c[0], c[1]) for c in cases(True, True))[name]
    paths = prepare(name, shape)
    x = np.random.default_rng(2).standard_normal((batch,) + shape).astype(np.float32)
    print(json.dumps(block(runner(runtime, name, paths, _THREADS), x, args.budget)))


def measure(name: str, shape: tuple[int, ...], batch: int, args: argparse.Namespace
            ) -> tuple[dict[str, float], dict[str, float], float]:
    """Median wall and median CPU seconds per call of every runtime, and the median over
    the rounds of amber's CPU time over ORT/torch's in the same round."""
    paths = prepare(name, shape)
    x = np.random.default_rng(2).standard_normal((batch,) + shape).astype(np.float32)
    fns = {r: runner(r, name, paths, _THREADS) for r in RUNTIMES} if _THREADS == 1 else {}
    want = (fns.get("amber") or runner("amber", name, paths, _THREADS))(x)
    for r in RUNTIMES[1:]:  # every runtime computes the same thing
        got = (fns.get(r) or runner(r, name, paths, _THREADS))(x)
        scale = float(np.max(np.abs(want))) or 1.0
        err = float(np.max(np.abs(got - want))) / scale
        if err > 1e-3:
            raise AssertionError(f"{name} batch {batch}: {r} differs from amber by {err:.2e}")
    times: dict[str, list[tuple[float, float]]] = {r: [] for r in RUNTIMES}
    for rep in range(args.repeats):
        order = RUNTIMES[rep % len(RUNTIMES):] + RUNTIMES[:rep % len(RUNTIMES)]
        for r in order:
            if fns:
                times[r].append(block(fns[r], x, args.budget))
            else:
                out = subprocess.run(
                    [sys.executable, __file__, "--threads", str(_THREADS), "--budget",
                     str(args.budget), "--child", r, name, str(batch)],
                    capture_output=True, text=True, check=True)
                times[r].append(tuple(json.loads(out.stdout.strip().splitlines()[-1])))
    paired = statistics.median(a[1] / o[1] for a, o in zip(times["amber"], times["ORT/torch"]))
    return ({r: statistics.median(w for w, _ in v) for r, v in times.items()},
            {r: statistics.median(c for _, c in v) for r, v in times.items()}, paired)


# ----------------------------------------------------------------------------- report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.5)
    ap.add_argument("--only", choices=["models", "layers", "gemm"], default=None)
    ap.add_argument("--case", action="append", default=[], metavar="NAME",
                    help="only this model or layer (repeatable), e.g. mobilenet_v2")
    ap.add_argument("--append", default=None, help="append the Markdown section here")
    ap.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    import onnxruntime
    import torch

    load0 = os.getloadavg()
    start = datetime.datetime.now(datetime.UTC)
    lines = ["| case | batch | amber ms | ORT/amber ms | ORT/torch ms | torch ms | "
             "amber / ORT-torch (wall) | (CPU) | (CPU, per round) | amber GFLOP/s | "
             "ORT/torch GFLOP/s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    todo = [] if args.only == "gemm" else cases(args.only != "models", args.only != "layers")
    if args.case:
        unknown = set(args.case) - {c[0] for c in todo}
        if unknown:
            ap.error(f"--case: no such case {sorted(unknown)}; cases: {[c[0] for c in todo]}")
        todo = [c for c in todo if c[0] in args.case]
    if not todo:
        lines = []
    for name, shape, batches in todo:
        f1 = flops(name, shape)
        for b in batches:
            t, cpu, paired = measure(name, shape, b, args)
            g = f1 * b / 1e9
            row = (f"| {name} | {b} | " + " | ".join(f"{t[r] * 1e3:.3f}" for r in RUNTIMES)
                   + f" | {t['amber'] / t['ORT/torch']:.2f}x"
                   + f" | {cpu['amber'] / cpu['ORT/torch']:.2f}x | {paired:.2f}x | "
                   + (f"{g / t['amber']:.1f} | {g / t['ORT/torch']:.1f} |" if g else "— | — |"))
            print(row, flush=True)
            lines.append(row)
    if args.only in (None, "gemm") and not args.case:
        for row in gemm_table(args):
            print(row, flush=True)
            lines.append(row)
    title = f"## CNN inference, {_THREADS} thread(s) ({start:%Y-%m-%d %H:%M} UTC)"
    head = peer_run_head(title, "bench_cnn.py",
                         f"amber {am.__version__}, onnxruntime {onnxruntime.__version__}, "
                         f"torch {torch.__version__}",
                         load0, args.repeats, args.budget, _THREADS)
    text = "\n".join(head + lines) + "\n"
    emit(text, args.append)


if __name__ == "__main__":
    main()
