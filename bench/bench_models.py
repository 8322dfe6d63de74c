"""Model-inference benchmark: amber against ONNX Runtime and PyTorch on the same weights.

Models (see bench/README.md): an MLP 784-512-512-10 (ReLU) at batch 1 and 64 and a small
CNN (conv 1->8 3x3, ReLU, max-pool 2; conv 8->16 3x3, ReLU, max-pool 2; linear 784->10)
on 28x28 inputs at batch 1 and 32; plus a 1024x1024x1024 float32 GEMM.

Each model is built once in amber, exported with a symbolic batch (``am.export``), saved
as a .amber file and converted to ONNX with amber's own exporter (``am.onnx.export``); the
PyTorch twin loads the same weights. Runtimes:

* amber reference interpreter (NumPy kernels), through ``am.load(path, backend="reference")``;
* amber native runtime, through ``am.load(path, backend="native")`` *if this version of
  amber has it* (otherwise the column says so: no figures are made up);
* ONNX Runtime (CPU execution provider) on the exported .onnx file;
* PyTorch eager (``torch.inference_mode``).

Before timing, every runtime's output is compared with the reference interpreter's.
Runs are interleaved (every repeat times every runtime on every case, rotating which goes
first), each sample is a loop of calls lasting about ``--budget`` seconds after one untimed
call and ``--pause`` seconds of idle time, and each figure is the median over
``--repeats`` samples of the mean wall time per call; the process CPU time per call is
reported too (other processes do not inflate it). Thread counts are set explicitly
(``--threads``, default 2) for NumPy's BLAS, ONNX Runtime, PyTorch and the native runtime
where it takes an option, and reported.

Usage (from the repository root, with the ``onnx`` and ``bench`` extras installed)::

    python bench/bench_models.py                       # print a Markdown section
    python bench/bench_models.py --append bench/RESULTS.md
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import blas_kernel, cpu_model, numpy_default_kernels, pin_threads, sample

_THREADS = pin_threads(sys.argv[1:], default=2)
numpy_default_kernels()  # it compares against NumPy's OpenBLAS

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import amber as am  # noqa: E402
from amber.errors import AmberError  # noqa: E402

RUNTIMES = ("amber reference", "amber native", "onnxruntime", "ORT hand-built",
            "torch eager")
NOT_AVAILABLE = "not available in this version"


# ----------------------------------------------------------------------------- models

class SmallCNN(am.nn.Module):
    """conv(1->8, 3x3, pad 1) ReLU maxpool 2, conv(8->16, 3x3, pad 1) ReLU maxpool 2,
    linear(16*7*7 -> 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = am.nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = am.nn.Conv2d(8, 16, 3, padding=1)
        self.fc = am.nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: Any) -> Any:
        F = am.nn.functional
        x = F.max_pool2d(am.relu(self.c1(x)), 2)
        x = F.max_pool2d(am.relu(self.c2(x)), 2)
        return self.fc(x.reshape(x.shape[0], -1))


def amber_mlp() -> Any:
    """The MLP 784-512-512-10 of the benchmark, in amber."""
    return am.nn.Sequential(am.nn.Linear(784, 512), am.nn.ReLU(), am.nn.Linear(512, 512),
                            am.nn.ReLU(), am.nn.Linear(512, 10))


def torch_twin(kind: str, weights: dict[str, np.ndarray]) -> Any:
    """The PyTorch model of the same architecture, loaded with amber's weights."""
    import torch

    if kind == "mlp":
        net = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(),
                                  torch.nn.Linear(512, 512), torch.nn.ReLU(),
                                  torch.nn.Linear(512, 10))
    else:
        class TorchCNN(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.c1 = torch.nn.Conv2d(1, 8, 3, padding=1)
                self.c2 = torch.nn.Conv2d(8, 16, 3, padding=1)
                self.fc = torch.nn.Linear(16 * 7 * 7, 10)

            def forward(self, x: Any) -> Any:
                F = torch.nn.functional
                x = F.max_pool2d(torch.relu(self.c1(x)), 2)
                x = F.max_pool2d(torch.relu(self.c2(x)), 2)
                return self.fc(x.reshape(x.shape[0], -1))

        net = TorchCNN()
    state = {k: torch.from_numpy(np.array(v)) for k, v in weights.items()}
    net.load_state_dict(state, strict=True)
    return net.eval()


def hand_built_onnx(kind: str, weights: dict[str, np.ndarray], path: str) -> None:
    """The same model written by hand with ONNX Runtime's fused-friendly operators (Gemm,
    Relu, Conv with bias, MaxPool): the strongest ONNX Runtime peer for the comparison."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    h = helper
    inits = [numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in weights.items()]
    if kind == "mlp":
        nodes = [h.make_node("Gemm", ["x", "0.weight", "0.bias"], ["h1"], transB=1),
                 h.make_node("Relu", ["h1"], ["r1"]),
                 h.make_node("Gemm", ["r1", "2.weight", "2.bias"], ["h2"], transB=1),
                 h.make_node("Relu", ["h2"], ["r2"]),
                 h.make_node("Gemm", ["r2", "4.weight", "4.bias"], ["y"], transB=1)]
        x = h.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 784])
    else:
        nodes = [h.make_node("Conv", ["x", "c1.weight", "c1.bias"], ["a1"], pads=[1, 1, 1, 1],
                             kernel_shape=[3, 3]),
                 h.make_node("Relu", ["a1"], ["r1"]),
                 h.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
                 h.make_node("Conv", ["p1", "c2.weight", "c2.bias"], ["a2"], pads=[1, 1, 1, 1],
                             kernel_shape=[3, 3]),
                 h.make_node("Relu", ["a2"], ["r2"]),
                 h.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
                 h.make_node("Flatten", ["p2"], ["f"], axis=1),
                 h.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1)]
        x = h.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 28, 28])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])
    graph = h.make_graph(nodes, f"{kind}_hand_built", [x], [y], initializer=inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    onnx.save(model, path)


# ----------------------------------------------------------------------------- runtimes

@dataclass
class Runners:
    """Callables ``f(x) -> np.ndarray`` per runtime (None where unavailable), with notes."""

    fns: dict[str, Callable[[np.ndarray], np.ndarray] | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def load_native(path: str, threads: int) -> tuple[Any, str]:
    """``am.load(path, backend="native")`` if this amber has it: (model or None, note)."""
    try:
        try:
            return am.load(path, backend="native", threads=threads), f"threads={threads}"
        except TypeError:
            return am.load(path, backend="native"), "threads: runtime default"
    except AmberError as e:
        msg = str(e)
        if "unknown backend" in msg:
            return None, f"{NOT_AVAILABLE} ({msg})"
        return None, f"failed to load: {msg}"


def ort_session(onnx_path: str, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])


def _as_numpy(out: Any) -> np.ndarray:
    if isinstance(out, (list, tuple)):
        out = out[0]
    if hasattr(out, "numpy"):
        out = out.detach().numpy() if hasattr(out, "detach") else out.numpy()
    return np.asarray(out)


def build_runners(kind: str, program: Any, workdir: str, threads: int) -> Runners:
    """Save ``program`` as .amber and .onnx under ``workdir`` and open every runtime."""
    import torch

    amber_path = os.path.join(workdir, f"{kind}.amber")
    onnx_path = os.path.join(workdir, f"{kind}.onnx")
    program.save(amber_path)
    am.onnx.export(amber_path, onnx_path)
    r = Runners()

    ref = am.load(amber_path, backend="reference")
    r.fns["amber reference"] = lambda x: _as_numpy(ref.run("forward", x))
    r.notes["amber reference"] = f"NumPy BLAS threads={threads}"

    native, note = load_native(amber_path, threads)
    r.fns["amber native"] = (lambda x: _as_numpy(native.run("forward", x))) if native else None
    r.notes["amber native"] = note

    sess = ort_session(onnx_path, threads)
    in_name = sess.get_inputs()[0].name
    r.fns["onnxruntime"] = lambda x: sess.run(None, {in_name: x})[0]
    r.notes["onnxruntime"] = f"intra_op_num_threads={threads}, inter_op_num_threads=1"

    hand_path = os.path.join(workdir, f"{kind}_hand.onnx")
    hand_built_onnx(kind, program.weights, hand_path)
    hsess = ort_session(hand_path, threads)
    r.fns["ORT hand-built"] = lambda x: hsess.run(None, {"x": x})[0]
    r.notes["ORT hand-built"] = r.notes["onnxruntime"]

    net = torch_twin(kind, program.weights)

    def run_torch(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()

    r.fns["torch eager"] = run_torch
    r.notes["torch eager"] = f"set_num_threads({threads}), set_num_interop_threads(1)"
    return r


# ----------------------------------------------------------------------------- timing

@dataclass
class Case:
    """One benchmark case: its name, input and runners."""

    name: str
    x: np.ndarray
    runners: Runners
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    max_err: dict[str, float] = field(default_factory=dict)


def check_agreement(case: Case) -> None:
    """Every runtime's output against the reference interpreter's (recorded, and fatal
    beyond 1e-3 relative: timing wrong answers is pointless)."""
    want = case.runners.fns["amber reference"](case.x)  # type: ignore[misc]
    scale = float(np.max(np.abs(want))) or 1.0
    for rt, fn in case.runners.fns.items():
        if fn is None:
            continue
        got = fn(case.x)
        err = float(np.max(np.abs(got.astype(np.float64) - want))) if got.shape == \
            want.shape else float("inf")
        case.max_err[rt] = err
        if not err <= 1e-3 * scale:
            raise SystemExit(f"{case.name}: {rt} disagrees with the reference interpreter "
                             f"(max abs error {err:g}, output scale {scale:g})")


def warm_up(cases: list[Case], seconds: float) -> None:
    """Run every runtime on every case for ``seconds`` (one-time costs such as kernel
    selection, primitive caches and thread-pool start-up stay out of the samples)."""
    for case in cases:
        for fn in case.runners.fns.values():
            if fn is not None:
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    fn(case.x)


def time_cases(cases: list[Case], repeats: int, budget: float, pause: float) -> None:
    """Interleaved: every repeat times every available runtime on every case."""
    warm_up(cases, 0.5)
    for rep in range(repeats):
        for case in cases:
            avail = [rt for rt in RUNTIMES if case.runners.fns.get(rt) is not None]
            shift = rep % len(avail)
            for rt in avail[shift:] + avail[:shift]:
                fn = case.runners.fns[rt]
                assert fn is not None
                x = case.x
                w, c = sample(lambda fn=fn, x=x: fn(x), budget, pause)
                case.wall.setdefault(rt, []).append(w)
                case.cpu.setdefault(rt, []).append(c)


def gemm_cases(threads: int, workdir: str, repeats: int, budget: float, pause: float
               ) -> tuple[dict[str, float | None], dict[str, str]]:
    """GFLOP/s (median) of a 1024^3 float32 GEMM per runtime (None = not available)."""
    import torch

    n = 1024
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    program = am.export(lambda x, y: x @ y, a, b, check=False)
    path = os.path.join(workdir, "gemm.amber")
    program.save(path)
    onnx_path = os.path.join(workdir, "gemm.onnx")
    am.onnx.export(path, onnx_path)
    sess = ort_session(onnx_path, threads)
    ins = [i.name for i in sess.get_inputs()]
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    native, note = load_native(path, threads)
    fns: dict[str, Callable[[], Any] | None] = {
        "numpy": lambda: a @ b,
        "amber native": (lambda: native.run("forward", a, b)) if native else None,
        "onnxruntime": lambda: sess.run(None, {ins[0]: a, ins[1]: b}),
        "torch": lambda: torch.mm(ta, tb),
    }
    notes = {"amber native": note}
    times: dict[str, list[float]] = {}
    names = [k for k, f in fns.items() if f is not None]
    for rep in range(repeats):
        shift = rep % len(names)
        for k in names[shift:] + names[:shift]:
            f = fns[k]
            assert f is not None
            w, _ = sample(f, budget, pause)
            times.setdefault(k, []).append(w)
    flops = 2.0 * n ** 3
    out: dict[str, float | None] = {}
    for k in fns:
        out[k] = flops / statistics.median(times[k]) / 1e9 if k in times else None
    return out, notes


# ----------------------------------------------------------------------------- report

def machine_lines(threads: int) -> list[str]:
    import onnxruntime as ort
    import torch

    import onnx

    cpu = cpu_model()
    blas = "unknown"
    try:
        cfg = np.show_config(mode="dicts")  # type: ignore[func-returns-value]
        info = cfg["Build Dependencies"]["blas"]
        blas = f"{info.get('name')} {info.get('version')}"
    except Exception:  # the layout of show_config differs between NumPy versions
        pass
    return [
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: nproc={os.cpu_count()}, CPU: {cpu}",
        f"- Python {platform.python_version()}, NumPy {np.__version__} (BLAS: {blas}; "
        f"threadpoolctl: {blas_kernel()}; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset), "
        f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, torch {torch.__version__}, "
        f"amber {am.__version__}",
        f"- threads: {threads} everywhere (OPENBLAS_NUM_THREADS/OMP_NUM_THREADS="
        f"{threads} set before NumPy is imported; ORT intra_op_num_threads={threads}, "
        f"inter_op_num_threads=1; torch.set_num_threads({threads}), "
        f"set_num_interop_threads(1))",
    ]


def fmt_ms(v: float) -> str:
    return f"{v * 1e3:.3f}"


def report(cases: list[Case], gemm: dict[str, float | None], gemm_notes: dict[str, str],
           threads: int, command: str, load: tuple[tuple[float, ...], tuple[float, ...]],
           repeats: int, budget: float, pause: float) -> str:
    plural = "thread" if threads == 1 else "threads"
    lines = [f"## Model inference, {threads} {plural}: amber vs ONNX Runtime vs PyTorch "
             f"(bench_models.py)", ""]
    lines.append(f"Command: `{command}` (from the repository root; needs the `onnx` and "
                 f"`bench` extras)")
    lines.append("")
    lines += machine_lines(threads)
    lines.append(f"- load average at start {' '.join(f'{v:.2f}' for v in load[0])}, at end "
                 f"{' '.join(f'{v:.2f}' for v in load[1])}")
    lines.append(f"- method: interleaved, {repeats} repeats, samples of ~{budget}s after "
                 f"{pause}s idle; median of the mean wall time per call; CPU = process CPU "
                 f"time per call (all threads)")
    native_note = next((c.runners.notes.get("amber native", "") for c in cases), "")
    lines.append(f"- amber native: {native_note}")
    lines.append("- ONNX models: \"onnxruntime\" runs the model `am.onnx.export` wrote from "
                 "the same .amber file (exact lowering: ReLU as `where(x <= 0, 0, x)`, max-pool "
                 "as slices and `maximum`, as amber defines them); \"ORT hand-built\" runs "
                 "the same weights written by hand with Gemm/Relu/Conv+bias/MaxPool")
    lines.append("")
    lines.append("### Latency (ms per call, median)")
    lines.append("")
    head = "| case | " + " | ".join(RUNTIMES) + " | native/ORT | native/ORT hand-built " \
        "| native/torch | ref/ORT | ref/torch | ORT/torch |"
    lines.append(head)
    lines.append("|---" + "|---:" * (len(RUNTIMES) + 6) + "|")

    def med(c: Case, rt: str, cpu: bool = False) -> float | None:
        d = c.cpu if cpu else c.wall
        return statistics.median(d[rt]) if rt in d else None

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}x" if a is not None and b is not None else "n/a"

    for c in cases:
        cells = []
        for rt in RUNTIMES:
            m = med(c, rt)
            cells.append(fmt_ms(m) if m is not None else NOT_AVAILABLE)
        nat, ref = med(c, "amber native"), med(c, "amber reference")
        ort_, tch = med(c, "onnxruntime"), med(c, "torch eager")
        hand = med(c, "ORT hand-built")
        lines.append(f"| {c.name} | " + " | ".join(cells) + f" | {ratio(nat, ort_)} | "
                     f"{ratio(nat, hand)} | {ratio(nat, tch)} | {ratio(ref, ort_)} | "
                     f"{ratio(ref, tch)} | {ratio(ort_, tch)} |")
    lines.append("")
    lines.append("### Process CPU time (ms per call, median)")
    lines.append("")
    lines.append("| case | " + " | ".join(RUNTIMES) + " |")
    lines.append("|---" + "|---:" * len(RUNTIMES) + "|")
    for c in cases:
        cells = []
        for rt in RUNTIMES:
            m = med(c, rt, cpu=True)
            cells.append(fmt_ms(m) if m is not None else NOT_AVAILABLE)
        lines.append(f"| {c.name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Max abs difference from the reference interpreter's output: " + "; ".join(
        f"{c.name}: " + ", ".join(f"{rt} {e:.1e}" for rt, e in c.max_err.items()
                                  if rt != "amber reference") for c in cases))
    lines.append("")
    lines.append("### GEMM 1024x1024x1024 float32 (GFLOP/s, median)")
    lines.append("")
    lines.append("| NumPy (OpenBLAS) | amber native | onnxruntime | torch | native/NumPy |")
    lines.append("|---:|---:|---:|---:|---:|")
    g = gemm

    def gf(k: str) -> str:
        v = g.get(k)
        return f"{v:.1f}" if v is not None else NOT_AVAILABLE

    nat_ratio = f"{g['amber native'] / g['numpy']:.2f}" \
        if g.get("amber native") is not None and g.get("numpy") else "n/a"
    lines.append(f"| {gf('numpy')} | {gf('amber native')} | {gf('onnxruntime')} | "
                 f"{gf('torch')} | {nat_ratio} |")
    if gemm_notes.get("amber native") and g.get("amber native") is None:
        lines.append("")
        lines.append(f"amber native GEMM: {gemm_notes['amber native']}")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads for every runtime")
    p.add_argument("--repeats", type=int, default=11, help="samples per runtime and case")
    p.add_argument("--budget", type=float, default=0.1, help="seconds per sample")
    p.add_argument("--pause", type=float, default=0.3,
                   help="idle seconds before a sample (lets the previous runtime's worker "
                        "threads stop spinning)")
    p.add_argument("--gemm-repeats", type=int, default=7, help="samples per GEMM runtime")
    p.add_argument("--append", metavar="PATH", help="append the Markdown section to PATH")
    args = p.parse_args(argv)
    if args.threads != _THREADS:
        raise SystemExit("--threads must be given on the command line (read before NumPy "
                         "is imported)")

    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    load0 = os.getloadavg()
    rng = np.random.default_rng(0)
    cases: list[Case] = []
    with tempfile.TemporaryDirectory() as workdir:
        am.manual_seed(0)
        mlp = am.export(amber_mlp(), am.spec("batch", 784))
        am.manual_seed(0)
        cnn = am.export(SmallCNN(), am.spec("batch", 1, 28, 28))
        mlp_r = build_runners("mlp", mlp, workdir, args.threads)
        cnn_r = build_runners("cnn", cnn, workdir, args.threads)
        for b in (1, 64):
            cases.append(Case(f"MLP 784-512-512-10, batch {b}",
                              rng.standard_normal((b, 784)).astype(np.float32), mlp_r))
        for b in (1, 32):
            cases.append(Case(f"small CNN 28x28, batch {b}",
                              rng.standard_normal((b, 1, 28, 28)).astype(np.float32), cnn_r))
        for c in cases:
            check_agreement(c)
        time_cases(cases, args.repeats, args.budget, args.pause)
        gemm, gemm_notes = gemm_cases(args.threads, workdir, args.gemm_repeats,
                                      max(args.budget, 0.2), args.pause)
    load1 = os.getloadavg()
    command = "python bench/bench_models.py " + " ".join(argv if argv is not None
                                                         else sys.argv[1:])
    text = report(cases, gemm, gemm_notes, args.threads, command.strip(), (load0, load1),
                  args.repeats, args.budget, args.pause)
    print(text)
    if args.append:
        with open(args.append, "a", encoding="utf-8") as f:  # append only: never rewrite
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
