"""MobileNetV2's depthwise layers one by one: a 3x3 depthwise convolution, BatchNorm
(eval mode, random statistics) and ReLU6 as clamp, at every (channels, size, stride) the
network has at 224x224, in one or more builds of libamber against ONNX Runtime on the
``torch.onnx`` export of the same layer (which folds the BatchNorm into the weights and
the clamp into the convolution, and reorders to its blocked layout and back around it).

Each build runs through the bare C API (``bench_native_ab.Runner``: one session, 1
thread); every output is first checked against ONNX Runtime's. Blocks of about
``--budget`` seconds alternate between the runtimes (the order reversed every other
repeat); figures are medians over ``--repeats`` blocks of the process CPU time per call.
The last row weights each layer by how often MobileNetV2 has it.

Usage (from the repository root, with the ``onnx`` and ``torch`` extras)::

    python bench/bench_depthwise.py --lib new=build/runtime/libamber.so
    python bench/bench_depthwise.py --lib main=/tmp/main.so --lib new=/tmp/new.so
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import bn_statistics, cpu_model, emit, export_cache, pin_threads, shown_command

pin_threads(sys.argv[1:], default=1)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from bench_native_ab import Runner, load  # noqa: E402

import amber as am  # noqa: E402

# (channels, input size, stride): times in MobileNetV2
LAYERS = {(32, 112, 1): 1, (96, 112, 2): 1, (144, 56, 1): 1, (144, 56, 2): 1, (192, 28, 1): 2,
          (192, 28, 2): 1, (384, 14, 1): 4, (576, 14, 1): 2, (576, 14, 2): 1, (960, 7, 1): 3}
WORK = Path(export_cache("amber_bench_depthwise"))


def _layer(lib: Any, c: int, stride: int) -> Any:
    nn = lib.nn

    class DwBnClip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False)
            self.bn = nn.BatchNorm2d(c)

        def forward(self, x: Any) -> Any:
            return nn.functional.hardtanh(self.bn(self.conv(x)), 0.0, 6.0)

    return DwBnClip()


def prepare(c: int, size: int, stride: int) -> tuple[Path, Path]:
    """The .amber file and the torch.onnx export of one layer (same weights)."""
    import torch

    base = WORK / f"dw_{c}_{size}_{stride}"
    paths = base.with_suffix(".amber"), base.with_suffix(".onnx")
    if all(p.exists() for p in paths):
        return paths
    WORK.mkdir(exist_ok=True)
    am.manual_seed(0)
    a_mod, t_mod = _layer(am, c, stride), _layer(torch, c, stride)
    state = bn_statistics(a_mod.state_dict())
    a_mod.load_state_dict({k: am.tensor(v) for k, v in state.items()})
    t_mod.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    a_mod.eval(), t_mod.eval()
    am.export(a_mod, am.spec("batch", c, size, size)).save(str(paths[0]))
    torch.onnx.export(t_mod, (torch.zeros(1, c, size, size),), str(paths[1]),
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
    return paths


def cpu_per_call(fn: Callable[[], Any], budget: float) -> float:
    fn()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < budget:
        fn()
        n += 1
    return (time.process_time() - c0) / n


def main() -> None:
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", action="append", required=True, metavar="LABEL=PATH")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.25)
    ap.add_argument("--append", default=None, help="append the Markdown section here")
    args = ap.parse_args()
    libs = {lab: load(path) for lab, path in (s.split("=", 1) for s in args.lib)}
    load0 = os.getloadavg()
    names = ["ORT", *libs]
    lines = ["| layer | x | " + " | ".join(f"{n} ms" for n in names) + " | "
             + " | ".join(f"{n} / ORT" for n in libs) + " |",
             "|---|---|" + "---:|" * (2 * len(names) - 1)]
    total = dict.fromkeys(names, 0.0)
    for (c, size, stride), times in LAYERS.items():
        amber_path, onnx_path = prepare(c, size, stride)
        x = np.random.default_rng(2).standard_normal((args.batch, c, size, size)).astype(
            np.float32)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        runners = {lab: Runner(lib, amber_path, x, 1, 0) for lab, lib in libs.items()}
        want = sess.run(None, {"x": x})[0]
        for lab, r in runners.items():
            err = float(np.max(np.abs(r.outputs()[0] - want)))
            if err > 1e-3:
                raise AssertionError(f"{c}x{size} stride {stride}: {lab} differs by {err:.2e}")
        fns: dict[str, Callable[[], Any]] = {"ORT": lambda s=sess, xi=x: s.run(None, {"x": xi})}
        fns.update(runners)
        samples: dict[str, list[float]] = {n: [] for n in names}
        for rep in range(args.repeats):
            for n in names if rep % 2 == 0 else names[::-1]:
                samples[n].append(cpu_per_call(fns[n], args.budget))
        med = {n: statistics.median(v) * 1e3 for n, v in samples.items()}
        for n in names:
            total[n] += med[n] * times
        row = (f"| {c}x{size}x{size} stride {stride} | {times} | "
               + " | ".join(f"{med[n]:.4f}" for n in names) + " | "
               + " | ".join(f"{med[n] / med['ORT']:.2f}x" for n in libs) + " |")
        print(row, flush=True)
        lines.append(row)
    lines.append("| MobileNetV2's 17, weighted | | " + " | ".join(f"{total[n]:.3f}" for n in names)
                 + " | " + " | ".join(f"{total[n] / total['ORT']:.2f}x" for n in libs) + " |")
    load1 = os.getloadavg()
    head = [f"Command: `{shown_command('bench_depthwise.py', sys.argv[1:]).strip()}`", "",
            f"- machine: nproc={os.cpu_count()}, CPU: {cpu_model()}; batch {args.batch}, "
            f"1 thread, process CPU ms per call, medians of {args.repeats} blocks",
            f"- load average at start {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, "
            f"at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}", ""]
    emit("\n".join(head + lines) + "\n", args.append)


if __name__ == "__main__":
    main()
