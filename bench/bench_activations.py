"""Activations after a convolution: amber's native runtime against ONNX Runtime.

Each activation of ``amber.nn`` that PyTorch has too, after conv + BatchNorm (eval) in two
layers: a 1x1 convolution 64->256 on 56x56 (the GEMM path) and a depthwise 3x3 on 64x56x56,
batch 1. amber runs the chain as its epilogue (in the kernel's registers where it can, else
a pass over each finished block); ONNX Runtime fuses some activations into its convolution
(ReLU, Clip, LeakyRelu, Sigmoid, Tanh, HardSigmoid) and runs the others as nodes. The
same layer without an activation is the first row, so each row's cost over it is the
activation's. Both are built from the same definition (amber's exported as .amber,
PyTorch's through ``torch.onnx.export``, which ONNX Runtime folds the batch norm into);
their outputs are compared first. Timing as ``bench_resnet_layers.py``: one process,
``--threads`` intra-op threads (1 by default), medians of ``--repeats`` alternating blocks of
process CPU time per run.

Usage: ``python bench/bench_activations.py [--threads 1] [--repeats 5] [--append FILE]``
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

ACTIVATIONS = ["none", "ReLU", "ReLU6", "Hardtanh", "LeakyReLU", "ELU", "SiLU", "GELU",
               "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh"]
LAYERS = {"1x1 64->256": (64, 256, 1, 1), "depthwise 3x3 64": (64, 64, 3, 64)}


def _module(nn: Any, layer: str, act: str) -> Any:
    c, o, k, groups = LAYERS[layer]
    mods = [nn.Conv2d(c, o, k, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(o)]
    if act == "Hardtanh":
        mods.append(nn.Hardtanh(0.0, 6.0))
    elif act == "LeakyReLU":
        mods.append(nn.LeakyReLU(0.1))
    elif act != "none":
        mods.append(getattr(nn, act)())
    return nn.Sequential(*mods).eval()


def _files(layer: str, act: str) -> tuple[str, str]:
    """The .amber file and the torch.onnx file of one case (written once)."""
    import torch

    folder = export_cache("amber_bench_activations")
    os.makedirs(folder, exist_ok=True)
    base = os.path.join(folder, f"{layer.replace(' ', '_').replace('>', '')}_{act}")
    if not os.path.exists(base + ".onnx"):
        am.manual_seed(0)
        amod = _module(am.nn, layer, act)
        am.export(amod, am.spec("batch", 64, 56, 56)).save(base + ".amber")
        tmod = _module(torch.nn, layer, act)
        tmod.load_state_dict({k: torch.from_numpy(np.array(v.numpy()))
                              for k, v in amod.state_dict().items()})
        torch.onnx.export(tmod, (torch.zeros(1, 64, 56, 56),), base + ".onnx", input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    return base + ".amber", base + ".onnx"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.25)
    ap.add_argument("--append", default=None, help="append the Markdown section here")
    args = ap.parse_args()
    import onnxruntime as ort

    load0 = os.getloadavg()
    x = np.random.default_rng(0).standard_normal((1, 64, 56, 56)).astype(np.float32)
    rows = []
    for layer in LAYERS:
        base = [0.0, 0.0]
        for act in ACTIVATIONS:
            paths = _files(layer, act)
            model = am.load(paths[0], backend="native", threads=args.threads)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
            sess = ort.InferenceSession(paths[1], opts, providers=["CPUExecutionProvider"])
            want = np.asarray(model(x))
            err = float(np.max(np.abs(sess.run(None, {"x": x})[0] - want)))
            if err > 1e-3 * max(1.0, float(np.max(np.abs(want)))):
                raise AssertionError(f"{layer} {act}: ONNX Runtime differs by {err:.2e}")
            fns = [lambda m=model: m(x), lambda s=sess: s.run(None, {"x": x})]
            cpu: list[list[float]] = [[], []]
            for _ in range(args.repeats):
                for i, fn in enumerate(fns):
                    cpu[i].append(sample(fn, args.budget, 0.01)[1])
            a, r = (statistics.median(v) * 1e3 for v in cpu)
            if act == "none":
                base = [a, r]
            rows.append(f"| {layer} | {act} | {a:.3f} | {r:.3f} | {a / r:.2f}x | "
                        f"{a - base[0]:+.3f} | {r - base[1]:+.3f} |")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = peer_run_head(f"## Activations after a convolution, {args.threads} thread(s) ({now})",
                         "bench_activations.py",
                         f"amber {am.__version__}, onnxruntime {ort.__version__}",
                         load0, args.repeats, args.budget, 1)
    table = ["| layer (+BN) | activation | amber CPU ms | ORT CPU ms | ratio | "
             "amber: the activation's cost | ORT: the activation's cost |",
             "|---|---|---|---|---|---|---|", *rows]
    emit("\n".join(head + table) + "\n", args.append)


if __name__ == "__main__":
    main()
