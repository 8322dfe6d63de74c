"""A/B of one float32 MatMul against a constant weight (the transformer's Linear shapes):
builds of ``libamber`` (``--lib name=path``, each loaded through ``AMBER_LIBRARY`` in its
own process) and ONNX Runtime's MatMul with the weight as an initializer, 1 thread.
Every repeat runs each runtime in a fresh process, rotating the order; figures are
GFLOP/s from the median process CPU time per call (the reliable one on a shared machine).

    python bench/bench_matmul_ab.py --lib before=/tmp/old/libamber.so \\
        --lib after=build/runtime/libamber.so
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_model, pin_threads, sample

pin_threads(sys.argv[1:], default=1)

import numpy as np  # noqa: E402

SHAPES = [(128, 384, 384), (128, 384, 1536), (128, 1536, 384), (2048, 384, 1536),
          (2048, 1536, 384)]


def _child(runtime: str, m: int, k: int, n: int, budget: float) -> float:
    """CPU seconds per call of one runtime on x[m, k] @ W[k, n]."""
    rng = np.random.default_rng(0)
    w, x = (rng.standard_normal(s).astype(np.float32) for s in ((k, n), (m, k)))
    if runtime == "ORT":
        import onnxruntime as ort

        from onnx import TensorProto, helper, numpy_helper

        g = helper.make_graph(
            [helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
            [numpy_helper.from_array(w, "W")])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        return sample(lambda: sess.run(None, {"x": x}), budget, 0.0)[1]
    import amber as am

    wt = am.tensor(w)
    path = f"/tmp/bench_matmul_{os.getpid()}.amber"
    am.export(lambda a: a @ wt, am.spec(m, k)).save(path)
    s = am.load(path, backend="native", threads=1).native.session()
    os.unlink(path)
    return sample(lambda: s.run("forward", [x]), budget, 0.0)[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", action="append", default=[], help="name=path of a libamber")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(_child(args.child[0], *map(int, args.child[1:]), args.budget))
        return
    libs = dict(item.split("=", 1) for item in args.lib) or {"amber": ""}
    runtimes = [*libs, "ORT"]
    print(f"CPU: {cpu_model()}, load average at start {os.getloadavg()}")
    print("| m x k x n (GFLOP/s) | " + " | ".join(runtimes) + " |")
    print("|---" * (len(runtimes) + 1) + "|")
    for m, k, n in SHAPES:
        cpu: dict[str, list[float]] = {r: [] for r in runtimes}
        for rep in range(args.repeats):
            for r in runtimes[rep % len(runtimes):] + runtimes[:rep % len(runtimes)]:
                env = dict(os.environ)
                if libs.get(r):
                    env["AMBER_LIBRARY"] = libs[r]
                out = subprocess.run([sys.executable, __file__, "--budget", str(args.budget),
                                      "--child", "amber" if r in libs else r, str(m), str(k),
                                      str(n)], env=env, capture_output=True, text=True,
                                     check=True)
                cpu[r].append(float(out.stdout.split()[-1]))
        flops = 2.0 * m * k * n
        print(f"| {m}x{k}x{n} | "
              + " | ".join(f"{flops / statistics.median(cpu[r]) / 1e9:.1f}" for r in runtimes)
              + " |", flush=True)
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
