"""ResNet-50's convolutions one by one: amber's native runtime against ONNX Runtime.

Each distinct convolution of torchvision's ResNet-50 at 224x224 (input channels, output
channels, kernel, stride, input size) as conv + BatchNorm (eval) + ReLU, built in amber
and in PyTorch with the same shape (``torch.onnx.export``, which ONNX Runtime folds the
batch norm into), timed in one process at ``--threads`` intra-op threads: medians of
``--repeats`` alternating blocks of process CPU time per run. ``x N`` is how often the
shape occurs in the network; "loss" is N times the difference (what the shape costs amber
over ONNX Runtime per image). NOTE: at more than one thread both runtimes share the
process, so their spinning workers distort each other; read those rows as amber against
itself (``bench_native_ab.py``) rather than against ONNX Runtime.

Usage: ``python bench/bench_resnet_layers.py [--threads 1] [--batch 1] [--append FILE]``
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import emit, export_cache, peer_run_head, pin_threads, sample

pin_threads(sys.argv[1:], default=1)

import argparse  # noqa: E402
import datetime  # noqa: E402
import statistics  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import amber as am  # noqa: E402

# (in, out, kernel, stride, input size, occurrences) of ResNet-50's convolutions
SHAPES = [(3, 64, 7, 2, 224, 1), (64, 64, 1, 1, 56, 3), (64, 64, 3, 1, 56, 3),
          (64, 256, 1, 1, 56, 4), (256, 64, 1, 1, 56, 2), (256, 128, 1, 1, 56, 1),
          (128, 128, 3, 2, 56, 1), (128, 512, 1, 1, 28, 4), (256, 512, 1, 2, 56, 1),
          (512, 128, 1, 1, 28, 3), (128, 128, 3, 1, 28, 3), (512, 256, 1, 1, 28, 1),
          (256, 256, 3, 2, 28, 1), (256, 1024, 1, 1, 14, 6), (512, 1024, 1, 2, 28, 1),
          (1024, 256, 1, 1, 14, 5), (256, 256, 3, 1, 14, 5), (1024, 512, 1, 1, 14, 1),
          (512, 512, 3, 2, 14, 1), (512, 2048, 1, 1, 7, 3), (1024, 2048, 1, 2, 14, 1),
          (2048, 512, 1, 1, 7, 2), (512, 512, 3, 1, 7, 2)]
# MobileNetV2's 1x1 convolutions (expand and project; ``--shapes mobilenet``)
MOBILENET_SHAPES = [(32, 16, 1, 1, 112, 1), (16, 96, 1, 1, 112, 1), (96, 24, 1, 1, 56, 1),
                    (24, 144, 1, 1, 56, 2), (144, 24, 1, 1, 56, 1), (144, 32, 1, 1, 28, 1),
                    (32, 192, 1, 1, 28, 3), (192, 32, 1, 1, 28, 2), (192, 64, 1, 1, 14, 1),
                    (64, 384, 1, 1, 14, 4), (384, 64, 1, 1, 14, 3), (384, 96, 1, 1, 14, 1),
                    (96, 576, 1, 1, 14, 3), (576, 96, 1, 1, 14, 2), (576, 160, 1, 1, 7, 1),
                    (160, 960, 1, 1, 7, 3), (960, 160, 1, 1, 7, 2), (960, 320, 1, 1, 7, 1),
                    (320, 1280, 1, 1, 7, 1)]


def _files(c: int, o: int, k: int, s: int, h: int) -> tuple[str, str]:
    """The .amber file and the torch.onnx file of one shape (written once)."""
    import torch

    folder = export_cache("amber_bench_resnet_layers")
    os.makedirs(folder, exist_ok=True)
    base = os.path.join(folder, f"conv_{c}_{o}_{k}_{s}_{h}")
    if not os.path.exists(base + ".onnx"):
        am.manual_seed(0)
        nn = am.nn
        mod = nn.Sequential(nn.Conv2d(c, o, k, stride=s, padding=k // 2, bias=False),
                            nn.BatchNorm2d(o), nn.ReLU()).eval()
        am.export(mod, am.spec("batch", c, h, h)).save(base + ".amber")
        tnn = torch.nn
        tmod = tnn.Sequential(tnn.Conv2d(c, o, k, stride=s, padding=k // 2, bias=False),
                              tnn.BatchNorm2d(o), tnn.ReLU()).eval()
        torch.onnx.export(tmod, (torch.zeros(1, c, h, h),), base + ".onnx", input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    return base + ".amber", base + ".onnx"


def _runners(paths: tuple[str, str], threads: int) -> tuple[Any, Any]:
    import onnxruntime as ort

    model = am.load(paths[0], backend="native", threads=threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(paths[1], opts, providers=["CPUExecutionProvider"])
    return model, sess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.25)
    ap.add_argument("--append", default=None, help="append the Markdown section here")
    ap.add_argument("--shapes", choices=["resnet", "mobilenet", "1x1"], default="resnet",
                    help="ResNet-50's convolutions, MobileNetV2's 1x1 ones, or the 1x1 ones of "
                         "both on 28x28 and smaller images")
    ap.add_argument("--only", default=None, metavar="TEXT", help="rows containing TEXT")
    args = ap.parse_args()
    import onnxruntime

    load0 = os.getloadavg()
    rows, total = [], [0.0, 0.0]
    shapes = {"resnet": SHAPES, "mobilenet": MOBILENET_SHAPES,
              "1x1": [t for t in SHAPES + MOBILENET_SHAPES if t[2] == 1 and t[4] <= 28]}
    for c, o, k, s, h, count in shapes[args.shapes]:
        if args.only and args.only not in f"{c}->{o} {k}x{k} s{s} {h}x{h}":
            continue
        model, sess = _runners(_files(c, o, k, s, h), args.threads)
        x = np.random.default_rng(0).standard_normal((args.batch, c, h, h)).astype(np.float32)
        fns = [lambda m=model, x=x: m(x), lambda s=sess, x=x: s.run(None, {"x": x})]
        cpu: list[list[float]] = [[], []]
        for _ in range(args.repeats):
            for i, fn in enumerate(fns):
                cpu[i].append(sample(fn, args.budget, 0.01)[1])
        a, r = (statistics.median(v) * 1e3 for v in cpu)
        gflop = 2.0 * c * o * k * k * (h // s) ** 2 * args.batch / 1e9
        total[0] += a * count
        total[1] += r * count
        rows.append(f"| {c}->{o} {k}x{k} s{s} {h}x{h} | {count} | {a:.3f} | {r:.3f} | "
                    f"{a / r:.2f}x | {(a - r) * count:+.2f} | {gflop / a * 1e3:.0f} | "
                    f"{gflop / r * 1e3:.0f} |")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    what = {"resnet": "ResNet-50's convolutions", "mobilenet": "MobileNetV2's 1x1 convolutions",
            "1x1": "1x1 convolutions on small images"}[args.shapes]
    head = peer_run_head(f"## {what} one by one, {args.threads} thread(s), "
                         f"batch {args.batch} ({now})", "bench_resnet_layers.py",
                         f"amber {am.__version__}, onnxruntime {onnxruntime.__version__}",
                         load0, args.repeats, args.budget, 1)
    table = ["| conv (+BN+ReLU) | x N | amber CPU ms | ORT CPU ms | ratio | loss ms (x N) | "
             "amber GFLOP/s | ORT GFLOP/s |", "|---|---|---|---|---|---|---|---|", *rows,
             f"| all, weighted by N | | {total[0]:.2f} | {total[1]:.2f} | "
             f"{total[0] / total[1]:.2f}x | {total[0] - total[1]:+.2f} | | |"]
    emit("\n".join(head + table) + "\n", args.append)


if __name__ == "__main__":
    main()
