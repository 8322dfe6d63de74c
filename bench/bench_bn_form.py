"""BatchNorm's eval form in exported CNNs: ``(x - mean) * rsqrt(var + eps) * weight +
bias`` (four elementwise ops, amber's form before) against ``x * alpha + beta`` (two,
PyTorch's formula and amber's now), on bench_cnn.py's ResNet-50 and MobileNetV2 at batch 1.
Each model is exported with each form; one native session per file, 1 thread; CPU time
per run, medians of interleaved samples in one process.

    python bench/bench_bn_form.py [--repeats 7] [--budget 0.4]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import pin_threads

pin_threads(sys.argv[1:], default=1)

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import bench_cnn  # noqa: E402
import numpy as np  # noqa: E402

import amber as am  # noqa: E402
import amber.nn.functional as F  # noqa: E402
from amber import functional as _F  # noqa: E402
from amber.native import NativeModel  # noqa: E402

NEW = F.batch_norm


def four_ops(input: Any, running_mean: Any, running_var: Any, weight: Any = None,
             bias: Any = None, training: bool = False, momentum: float = 0.1,
             eps: float = 1e-5) -> Any:
    """The former eval form; training goes to the current function."""
    if training or running_mean is None or running_var is None:
        return NEW(input, running_mean, running_var, weight, bias, training, momentum, eps)
    bshape = (1, input.shape[1]) + (1,) * (input.ndim - 2)
    y = (input - _F.reshape(running_mean, bshape)) * _F.reshape(_F.rsqrt(running_var + eps),
                                                               bshape)
    if weight is not None:
        y = y * _F.reshape(weight, bshape)
    return y if bias is None else y + _F.reshape(bias, bshape)


def export_both(name: str, folder: str) -> dict[str, str]:
    paths = {}
    for tag, form in (("4 ops", four_ops), ("x * alpha + beta", NEW)):
        F.batch_norm = form  # the modules call F.batch_norm
        try:
            mod, _ = bench_cnn._modules(name)
            mod.eval()
            paths[tag] = os.path.join(folder, f"{name}-{len(paths)}.amber")
            am.export(mod, am.spec(1, 3, 224, 224), check=False).save(paths[tag])
        finally:
            F.batch_norm = NEW
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--budget", type=float, default=0.4)
    args = ap.parse_args()
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| model, batch 1 | 4 ops | x * alpha + beta | ratio | max abs difference |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for name in ("resnet50", "mobilenet_v2"):
            sessions = {t: NativeModel(p, threads=1).session()
                        for t, p in export_both(name, folder).items()}
            outs = [s.run("forward", [x])[0] for s in sessions.values()]
            times: dict[str, list[float]] = {t: [] for t in sessions}
            for rep in range(args.repeats):
                for t in (list(sessions) if rep % 2 == 0 else list(sessions)[::-1]):
                    n, c0 = 0, time.process_time()
                    while time.process_time() - c0 < args.budget:
                        sessions[t].run("forward", [x])
                        n += 1
                    times[t].append((time.process_time() - c0) / n)
            old, new = (statistics.median(v) * 1e3 for v in times.values())
            print(f"| {name} | {old:.2f} ms | {new:.2f} ms | {new / old:.3f} | "
                  f"{float(np.abs(outs[0] - outs[1]).max()):.1e} |")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
