"""A/B of float32 matrix products against constant weights: builds of ``libamber``
(``--lib name=path``, each loaded through ``AMBER_LIBRARY`` in its own process), ONNX
Runtime's MatMul with the weight as an initializer, and NumPy's BLAS (``OPENBLAS_CORETYPE``
and ``OPENBLAS_L2_SIZE`` dropped so OpenBLAS picks its own kernels; the kernel
threadpoolctl reports is printed).

Shapes (``--shapes``): ``bert``, the transformer's Linear products ``x[m, k] @ W[k, n]``
(16 or 128 rows, 384 / 1536 wide); ``gpt2``, the decoder block's (256 rows, 768 / 2304 /
3072 wide); ``lstm``, the recurrent step ``16 x 128 @ 128 x 512``;
``resnet``, the product shapes of ResNet-50's convolutions at batch 1, ``W[m, k] @ cols[k,
n]`` (m output channels, k = in channels x kernel taps, n output pixels), here on stored
columns (the runtime packs them from the image, and multiplies a 7x7 image transposed);
``all``. A call runs ``r`` independent products of the shape (r weights; r chosen so a
call does ~40 MFLOP), so call overhead does not dominate small products.

Every repeat runs each runtime in a fresh process, rotating the order, with ``--threads``
threads; figures are GFLOP/s from the median process CPU time per product at 1 thread
(the reliable figure on a shared machine), from the median wall time at more threads
(CPU time sums the threads).

    python bench/bench_matmul_ab.py --lib before=/tmp/old/libamber.so \\
        --lib after=build/runtime/libamber.so --shapes all --threads 2
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import blas_kernel, cpu_model, numpy_default_kernels, pin_threads, sample

_THREADS = pin_threads(sys.argv[1:], default=1)
numpy_default_kernels()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402

# (m, k, n, weight on the left)
SHAPES = {
    "bert": [(16, 384, 384, False), (16, 384, 1536, False), (16, 1536, 384, False),
             (128, 384, 384, False), (128, 384, 1536, False), (128, 1536, 384, False),
             (2048, 384, 1536, False), (2048, 1536, 384, False)],
    "gpt2": [(256, 768, 2304, False), (256, 768, 768, False), (256, 768, 3072, False),
             (256, 3072, 768, False)],
    "lstm": [(16, 128, 512, False)],
    "resnet": [(64, 147, 12544, True), (64, 576, 3136, True), (256, 64, 3136, True),
               (64, 256, 3136, True), (128, 1152, 784, True), (512, 128, 784, True),
               (128, 512, 784, True), (256, 2304, 196, True), (1024, 256, 196, True),
               (256, 1024, 196, True), (512, 4608, 49, True), (2048, 512, 49, True),
               (512, 2048, 49, True)],
}


def _reps(m: int, k: int, n: int) -> int:
    return max(1, min(32, round(4e7 / (2.0 * m * k * n))))


def _child(runtime: str, m: int, k: int, n: int, left: bool, budget: float) -> list:
    """[wall, CPU] seconds per product of one runtime (and NumPy's kernel)."""
    rng = np.random.default_rng(0)
    r = _reps(m, k, n)
    ws = [rng.standard_normal((m, k) if left else (k, n)).astype(np.float32) for _ in range(r)]
    x = rng.standard_normal((k, n) if left else (m, k)).astype(np.float32)
    xshape = list(x.shape)
    if runtime == "NumPy":
        fn = (lambda: [w @ x for w in ws]) if left else (lambda: [x @ w for w in ws])
        return [t / r for t in sample(fn, budget, 0.0)] + [blas_kernel()]
    if runtime == "ORT":
        import onnxruntime as ort

        from onnx import TensorProto, helper, numpy_helper

        nodes = [helper.make_node("MatMul", [f"W{i}", "x"] if left else ["x", f"W{i}"],
                                  [f"y{i}"]) for i in range(r)]
        yshape = [m, n]
        g = helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, xshape)],
            [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, yshape)
             for i in range(r)],
            [numpy_helper.from_array(w, f"W{i}") for i, w in enumerate(ws)])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = _THREADS, 1
        sess = ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        return [t / r for t in sample(lambda: sess.run(None, {"x": x}), budget, 0.0)] + [""]
    import amber as am

    wt = [am.tensor(w) for w in ws]
    path = f"/tmp/bench_matmul_{os.getpid()}.amber"
    fn = (lambda a: tuple(w @ a for w in wt)) if left else (lambda a: tuple(a @ w for w in wt))
    am.export(fn, am.spec(*xshape)).save(path)
    s = am.load(path, backend="native", threads=_THREADS).native.session()
    os.unlink(path)
    return [t / r for t in sample(lambda: s.run("forward", [x]), budget, 0.0)] + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", action="append", default=[], help="name=path of a libamber")
    ap.add_argument("--shapes", choices=[*SHAPES, "all"], default="bert")
    ap.add_argument("--no-numpy", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", nargs=5, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        m, k, n, left = map(int, args.child[1:])
        print(json.dumps(_child(args.child[0], m, k, n, bool(left), args.budget)))
        return
    libs = dict(item.split("=", 1) for item in args.lib) or {"amber": ""}
    runtimes = [*libs, "ORT"] + ([] if args.no_numpy else ["NumPy"])
    shapes = [s for name, v in SHAPES.items() if args.shapes in (name, "all") for s in v]
    col, kind = (1, "CPU") if args.threads == 1 else (0, "wall")
    kernel = ""
    print(f"CPU: {cpu_model()}, threads {args.threads}, load average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"GFLOP/s from the median {kind} time per product")
    print("| m x k x n | " + " | ".join(runtimes) + f" | {runtimes[0]} / ORT | "
          f"{runtimes[0]} / NumPy |" * 1)
    print("|---" * (len(runtimes) + 3) + "|")
    for m, k, n, left in shapes:
        t: dict[str, list[float]] = {r: [] for r in runtimes}
        for rep in range(args.repeats):
            for r in runtimes[rep % len(runtimes):] + runtimes[:rep % len(runtimes)]:
                env = dict(os.environ)
                if libs.get(r):
                    env["AMBER_LIBRARY"] = libs[r]
                name = r if r in ("ORT", "NumPy") else "amber"
                out = subprocess.run(
                    [sys.executable, __file__, "--threads", str(args.threads), "--budget",
                     str(args.budget), "--child", name, str(m), str(k), str(n), str(int(left))],
                    env=env, capture_output=True, text=True, check=True)
                res = json.loads(out.stdout.strip().splitlines()[-1])
                t[r].append(res[col])
                kernel = res[2] or kernel
        gf = {r: 2.0 * m * k * n / statistics.median(v) / 1e9 for r, v in t.items()}
        ratio = [f"{gf[o] / gf[runtimes[0]]:.2f}x" if o in gf else "-" for o in ("ORT", "NumPy")]
        label = f"{m}x{k}x{n}" + (" (W @ x)" if left else "")
        print(f"| {label} | " + " | ".join(f"{gf[r]:.1f}" for r in runtimes)
              + f" | {ratio[0]} | {ratio[1]} |", flush=True)
    print(f"NumPy's BLAS: {kernel}")
    print(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
