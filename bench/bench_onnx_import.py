"""ONNX import benchmark: how long conversion takes, and whether an imported model runs
as fast as the same model written in amber.

* **Conversion**: ResNet-50 (the model-zoo network shipped with ``onnx``, its constant
  weights replaced by random ones: 25.6 M parameters) through ``am.from_onnx`` without
  the proof, plus ``Program.save``; and the proof (ONNX's reference evaluator on one
  random input) on its own.
* **Speed**: a small ResNet-style CNN (conv/BN/ReLU blocks, max-pool, global average
  pool, linear; batch 8, 3x32x32) and the MLP 784-512-512-10 (batch 64), each written in
  amber (``am.export``), then taken through ONNX (``am.onnx.export``) and back
  (``am.from_onnx``). Both files run on the native runtime; runs alternate between the
  two in blocks, each figure is the median over ``--repeats`` samples of the mean wall
  time per call (``--budget`` seconds each), with process CPU time per call; the ratio
  imported / written is the result (target: within 5%).

Usage (from the repository root, ``onnx`` extra installed)::

    python bench/bench_onnx_import.py --threads 1
    python bench/bench_onnx_import.py --threads 2 --append bench/RESULTS.md
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_model, emit, pin_threads, sample

_THREADS = pin_threads(sys.argv[1:], default=1)

import argparse  # noqa: E402
import datetime  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import amber as am  # noqa: E402
import onnx  # noqa: E402

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


def resnet50() -> Any:
    model = onnx.load(os.path.join(LIGHT, "light_resnet50.onnx"))
    rng = np.random.default_rng(0)
    shapes = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    keep, inits = [], []
    for n in model.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in shapes:
            shape = tuple(int(d) for d in shapes[n.input[0]])
            w = (rng.random(shape, dtype=np.float32) - 0.5) * 0.1
            if "var" in n.output[0]:
                w = np.abs(w) + 1
            inits.append(onnx.numpy_helper.from_array(w, n.output[0]))
        else:
            keep.append(n)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    model.graph.initializer.extend(inits)
    return model


def conversion(tmp: str) -> list[str]:
    model = resnet50()
    data = model.SerializeToString()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        p = am.from_onnx(data, check=False)
        p.save(os.path.join(tmp, "r50.amber"))
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    proved = am.from_onnx(data, example={"gpu_0/data_0": x})
    proof = time.perf_counter() - t
    oracle = proved.metadata["onnx"]["proved_against"]
    n = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    return [f"| ResNet-50 ({n / 1e6:.1f} M parameters): import + save, no proof | "
            f"{statistics.median(times):.2f} s (runs: "
            f"{', '.join(f'{v:.2f}' for v in times)}) |",
            f"| ResNet-50: import + proof on one input (against {oracle}) | "
            f"{proof:.1f} s |"]


def cnn() -> Any:
    nn = am.nn

    class Block(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

        def forward(self, x: Any) -> Any:
            y = am.relu(self.b1(self.c1(x)))
            return am.relu(self.b2(self.c2(y)) + x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.blocks = nn.Sequential(Block(16), Block(16))
            self.fc = nn.Linear(16, 10)

        def forward(self, x: Any) -> Any:
            y = self.blocks(self.pool(am.relu(self.stem(x))))
            return self.fc(y.mean(dim=(2, 3)))

    net = Net()
    net.eval()
    return am.export(net, am.spec("batch", 3, 32, 32)), (8, 3, 32, 32)


def mlp() -> Any:
    nn = am.nn
    net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                        nn.Linear(512, 10))
    return am.export(net, am.spec("batch", 784)), (64, 784)


def speed(tmp: str, repeats: int, budget: float) -> list[str]:
    rows = []
    for name, build in (("small ResNet CNN, batch 8", cnn), ("MLP 784-512-512-10, batch 64",
                                                             mlp)):
        prog, shape = build()
        a = os.path.join(tmp, "written.amber")
        b = os.path.join(tmp, "imported.amber")
        prog.save(a)
        am.from_onnx(am.onnx.export(prog, None)).save(b)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        sessions = {}
        for key, path in (("written", a), ("imported", b)):
            m = am.load(path, backend="native", threads=_THREADS)
            s = m.native.session()
            sessions[key] = (lambda s=s, x=x: s.run("forward", [x]))
        ref = sessions["written"]()[0]
        np.testing.assert_allclose(sessions["imported"]()[0], ref, rtol=1e-4, atol=1e-5)
        wall: dict[str, list[float]] = {"written": [], "imported": []}
        cpu: dict[str, list[float]] = {"written": [], "imported": []}
        for r in range(repeats):
            order = ["written", "imported"] if r % 2 == 0 else ["imported", "written"]
            for key in order:
                w, c = sample(sessions[key], budget, 0.2)
                wall[key].append(w)
                cpu[key].append(c)
        mw = {k: statistics.median(v) * 1e3 for k, v in wall.items()}
        mc = {k: statistics.median(v) * 1e3 for k, v in cpu.items()}
        rows.append(f"| {name} | {mw['written']:.3f} ms ({mc['written']:.3f} CPU) | "
                    f"{mw['imported']:.3f} ms ({mc['imported']:.3f} CPU) | "
                    f"{mw['imported'] / mw['written']:.3f} ({mc['imported'] / mc['written']:.3f}"
                    f" CPU) |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--budget", type=float, default=0.5)
    ap.add_argument("--append", metavar="RESULTS.md")
    args = ap.parse_args()
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        conv = conversion(tmp)
        rows = speed(tmp, args.repeats, args.budget)
    load1 = os.getloadavg()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join([
        f"## ONNX import ({now}, {_THREADS} thread{'s' if _THREADS > 1 else ''})",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores; load average "
        f"{load0[0]:.1f} before, {load1[0]:.1f} after. Command: `python "
        f"bench/bench_onnx_import.py --threads {_THREADS} --repeats {args.repeats} "
        f"--budget {args.budget}`.",
        "",
        "| conversion | time |", "|---|---|", *conv, "",
        "Native runtime, the model written in amber against the same model through ONNX "
        "and back (median wall time per call, CPU time in brackets):", "",
        "| model | written in amber | imported from ONNX | imported / written |",
        "|---|---|---|---|", *rows, ""])
    emit(text, args.append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
