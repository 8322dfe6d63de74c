"""LSTM benchmark: one LSTM layer over a 100-step sequence (input 64, hidden 128, batch 1
and 16) in amber's native runtime, amber's reference interpreter, PyTorch eager and ONNX
Runtime's ``Loop``, on the same weights.

The model is ``amber.nn.LSTM(64, 128)``: it projects all inputs at once (``xs @ W_ih^T +
b_ih``, as PyTorch's CPU LSTM does) and runs the recurrence with ``am.scan``; it is
exported with symbolic ``t`` and ``b`` and returns ``(output, (h_n, c_n))``. The
competitors:

* **amber native**: the exported file in the C runtime through its ctypes binding
  (``amber.native.NativeModel``, one session reused; the time includes the binding's
  input checks and the copy of the outputs into NumPy arrays);
* **amber native while**: the same cell written by hand with ``am.while_loop``
  (``LSTMLayer`` below, the same weights), exported and run the same way;
* **amber reference**: the exported ``nn.LSTM`` in the NumPy reference interpreter;
* **amber eager**: the module itself under ``am.no_grad()`` on ``--threads`` threads
  (``am.set_num_threads``; for scale);
* **torch eager**: ``torch.nn.LSTM`` holding the same weights, under
  ``torch.inference_mode()``;
* **ORT Loop**: a hand-built ONNX model -- the same input projection, then a ``Loop`` node
  whose body is the same LSTM cell (``Gather`` of step ``t``, ``MatMul`` with
  ``W_hh^T``, ``Split`` into the gates i, f, g, o, ``Sigmoid``/``Tanh``) -- in ONNX
  Runtime's CPU execution provider.

Before timing, every runtime's final ``(h, c)`` is compared with amber's reference
interpreter (max abs error recorded; beyond 1e-4 the benchmark stops). Each sample is a
loop of calls lasting about ``--budget`` seconds after one untimed call and ``--pause``
seconds idle; each figure is the median over all samples of the wall time per call and
of the process CPU time per call (which other processes on a loaded machine do not
inflate). With one thread every repeat times every runtime on every case in this process,
rotating which goes first. With more (or ``--isolate``), each runtime runs alone in its
own process: ``--repeats`` blocks, each starting one process per runtime in a rotating
order, each process taking ``--samples`` samples per case (the reference interpreter
and eager amber, far slower, are left out there). Thread counts are set explicitly
(``--threads``, default 1): BLAS (set before NumPy is imported), ONNX Runtime (intra-op;
inter-op 1), PyTorch (intra-op and inter-op 1) and the native runtime's session.

Usage (from the repository root, in an environment with torch==2.13.0, onnx and
onnxruntime, and amber importable with its native library)::

    python bench/bench_lstm.py                            # print a Markdown section
    python bench/bench_lstm.py --threads 2                # each runtime in its process
    python bench/bench_lstm.py --append bench/RESULTS.md  # and append it
    python bench/bench_lstm.py --cell GRU                 # nn.GRU (or RNN) vs torch
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_model, emit, pin_threads, sample

_THREADS = pin_threads(sys.argv[1:], default=1)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import amber as am  # noqa: E402
import amber.nn as nn  # noqa: E402

SEQ, INPUT, HIDDEN = 100, 64, 128
BATCHES = (1, 16)
RUNTIMES = ("amber native", "amber native while", "amber reference", "amber eager",
            "torch eager", "ORT Loop")
ISOLATED = ("amber native", "amber native while", "torch eager", "ORT Loop")
LSTM_ONLY = ("amber native while", "ORT Loop")  # hand-written LSTM cells
CELLS = ("LSTM", "GRU", "RNN")
BASELINE = "torch eager"
TOLERANCE = 1e-4


class BenchmarkError(am.AmberError):
    """A runtime is missing or disagrees with the reference interpreter."""


# ----------------------------------------------------------------------------- models


class LSTMLayer(nn.Module):
    """One LSTM layer (PyTorch's parameter names, gate order i, f, g, o and
    initialisation); ``forward(xs)`` with ``xs`` (T, B, I) returns the final ``(h, c)``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        k = 1.0 / float(np.sqrt(hidden_size))
        self.weight_ih = nn.Parameter(am.rand(4 * hidden_size, input_size) * (2 * k) - k)
        self.weight_hh = nn.Parameter(am.rand(4 * hidden_size, hidden_size) * (2 * k) - k)
        self.bias_ih = nn.Parameter(am.rand(4 * hidden_size) * (2 * k) - k)
        self.bias_hh = nn.Parameter(am.rand(4 * hidden_size) * (2 * k) - k)

    def forward(self, xs: am.Tensor) -> tuple[am.Tensor, am.Tensor]:
        hidden = self.weight_hh.shape[1]
        xw = xs @ self.weight_ih.T + (self.bias_ih + self.bias_hh)  # all steps at once
        w_hh = self.weight_hh.T
        h0 = am.zeros(hidden, dtype=xs.dtype).broadcast_to((xs.shape[1], hidden))
        steps = xs.shape[0]

        def step(carry: tuple[am.Tensor, am.Tensor, am.Tensor]
                 ) -> tuple[am.Tensor, am.Tensor, am.Tensor]:
            t, h, c = carry
            i, f, g, o = (xw[t] + h @ w_hh).chunk(4, dim=1)
            c = f.sigmoid() * c + i.sigmoid() * g.tanh()
            return t + 1, o.sigmoid() * c.tanh(), c

        _, h, c = am.while_loop(lambda carry: carry[0] < steps, step,
                                (am.tensor(np.int64(0)), h0, h0))
        return h, c


def weights_of(layer: nn.LSTM) -> dict[str, np.ndarray]:
    """The layer's parameters as float32 arrays, named as in ``LSTMLayer``."""
    return {k: getattr(layer, f"{k}_l0").detach().numpy().copy()
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


def make_models(seed: int, kind: str) -> tuple[Any, LSTMLayer | None]:
    """``nn.LSTM(INPUT, HIDDEN)`` (or ``nn.GRU``, ``nn.RNN``) from the seed, and for an LSTM
    the hand-written layer holding its weights (every process makes the same ones)."""
    am.manual_seed(seed)
    layer = getattr(nn, kind)(INPUT, HIDDEN).eval()
    if kind != "LSTM":
        return layer, None
    cell = LSTMLayer(INPUT, HIDDEN)
    cell.load_state_dict({k: am.tensor(v) for k, v in weights_of(layer).items()})
    return layer, cell


def torch_layer(layer: Any, kind: str) -> Any:
    """``torch.nn.LSTM(INPUT, HIDDEN)`` (or GRU, RNN) holding the amber layer's weights."""
    import torch

    mod = getattr(torch.nn, kind)(INPUT, HIDDEN)
    with torch.no_grad():
        for k, v in layer.named_parameters():
            getattr(mod, k).copy_(torch.from_numpy(v.detach().numpy()))
    mod.eval()
    return mod


def onnx_loop_model(w: dict[str, np.ndarray], path: Path) -> None:
    """Write the hand-built ONNX model: input projection, then ``Loop`` over the steps
    with the LSTM cell as its body; outputs the final ``h`` and ``c``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f32 = TensorProto.FLOAT
    h = HIDDEN
    body_nodes = [
        helper.make_node("Gather", ["xw", "t"], ["x_t"], axis=0),
        helper.make_node("MatMul", ["h_in", "w_hh_t"], ["hw"]),
        helper.make_node("Add", ["x_t", "hw"], ["gates"]),
        helper.make_node("Split", ["gates", "split4"], ["gi", "gf", "gg", "go"], axis=1),
        helper.make_node("Sigmoid", ["gi"], ["i"]),
        helper.make_node("Sigmoid", ["gf"], ["f"]),
        helper.make_node("Tanh", ["gg"], ["g"]),
        helper.make_node("Sigmoid", ["go"], ["o"]),
        helper.make_node("Mul", ["f", "c_in"], ["fc"]),
        helper.make_node("Mul", ["i", "g"], ["ig"]),
        helper.make_node("Add", ["fc", "ig"], ["c_out"]),
        helper.make_node("Tanh", ["c_out"], ["tc"]),
        helper.make_node("Mul", ["o", "tc"], ["h_out"]),
        helper.make_node("Identity", ["cond_in"], ["cond_out"]),
    ]
    body = helper.make_graph(
        body_nodes, "lstm_cell",
        [helper.make_tensor_value_info("t", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_in", f32, ["B", h]),
         helper.make_tensor_value_info("c_in", f32, ["B", h])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", f32, ["B", h]),
         helper.make_tensor_value_info("c_out", f32, ["B", h])],
        initializer=[numpy_helper.from_array(np.array([h] * 4, np.int64), "split4")])
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(w["weight_ih"].T), "w_ih_t"),
        numpy_helper.from_array(np.ascontiguousarray(w["weight_hh"].T), "w_hh_t"),
        numpy_helper.from_array(w["bias_ih"] + w["bias_hh"], "bias"),
        numpy_helper.from_array(np.array([0], np.int64), "zero1"),
        numpy_helper.from_array(np.array([1], np.int64), "one1"),
        numpy_helper.from_array(np.array([2], np.int64), "two1"),
        numpy_helper.from_array(np.array([h], np.int64), "hidden1"),
        numpy_helper.from_array(np.array(True), "true"),
    ]
    nodes = [
        helper.make_node("MatMul", ["xs", "w_ih_t"], ["xw0"]),
        helper.make_node("Add", ["xw0", "bias"], ["xw"]),
        helper.make_node("Shape", ["xs"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero1", "one1"], ["steps1"]),
        helper.make_node("Squeeze", ["steps1", "zero1"], ["steps"]),
        helper.make_node("Slice", ["shape", "one1", "two1"], ["batch1"]),
        helper.make_node("Concat", ["batch1", "hidden1"], ["state_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["state_shape"], ["zeros"],
                         value=numpy_helper.from_array(np.zeros(1, np.float32))),
        helper.make_node("Loop", ["steps", "true", "zeros", "zeros"], ["h", "c"], body=body),
    ]
    graph = helper.make_graph(
        nodes, "lstm_loop", [helper.make_tensor_value_info("xs", f32, ["T", "B", INPUT])],
        [helper.make_tensor_value_info("h", f32, ["B", h]),
         helper.make_tensor_value_info("c", f32, ["B", h])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="amber bench_lstm")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


# ----------------------------------------------------------------------------- runners


Runner = Callable[[np.ndarray], list[np.ndarray]]


@dataclass
class Runners:
    """A callable per runtime (inputs in, ``[h, c]`` out) and notes for the report."""

    fns: dict[str, Runner] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def native_runner(module: nn.Module, path: Path, threads: int, pick: tuple[int, ...]
                  ) -> tuple[Runner, Any]:
    """Export ``module`` to ``path`` and open it natively; the runner returns the outputs
    at ``pick`` (each without a leading dim of 1).

    Raises:
        BenchmarkError: the native runtime is missing or the file's test vectors fail.
    """
    import amber.native as native

    program = am.export(module, am.spec("t", "b", INPUT), sizes={"t": (3, 7), "b": (1, 4)})
    program.save(path)
    if not native.available():
        raise BenchmarkError("amber's native runtime is unavailable (install amber with its "
                             "library or set AMBER_LIBRARY); refusing to report without it")
    nat = native.NativeModel(path, threads=threads)
    n, failed = nat.verify()
    if failed:
        raise BenchmarkError(f"{failed} of {n} test vectors of {path.name} fail natively")

    def run(x: np.ndarray) -> list[np.ndarray]:
        out = nat.run("forward", x)
        return [out[i].reshape(out[i].shape[-2:]) for i in pick]

    return run, nat


def build_runners(seed: int, workdir: Path, threads: int, names: tuple[str, ...],
                  kind: str = "LSTM") -> Runners:
    """Make the models and open them in the runtimes named (those of RUNTIMES)."""
    import amber.native as native

    layer, cell = make_models(seed, kind)
    lstm = kind == "LSTM"
    r = Runners()
    lib = f"threads={threads}, {native.library_path()}"
    if "amber native" in names or "amber reference" in names:
        r.fns["amber native"], _ = native_runner(layer, workdir / "lstm.amber", threads,
                                                 (1, 2) if lstm else (1,))
        r.notes["amber native"] = f"amber.nn.{kind} (a scan), C runtime via ctypes, {lib}"
    if "amber native while" in names and cell is not None:
        r.fns["amber native while"], _ = native_runner(cell, workdir / "cell.amber", threads,
                                                       (0, 1))
        r.notes["amber native while"] = f"the hand-written while_loop cell, {lib}"
    if "amber reference" in names:
        ref = am.load(workdir / "lstm.amber", backend="reference").program
        r.fns["amber reference"] = lambda x: [a[0] for a in ref.run("forward", x)[1:]]
        r.notes["amber reference"] = f"amber.nn.{kind} in the NumPy interpreter (Program.run)"
    if "amber eager" in names:
        am.set_num_threads(threads)  # the eager kernels' threads (default: the cores)

        def eager(x: np.ndarray) -> list[np.ndarray]:
            with am.no_grad():
                _, hc = layer(am.tensor(x))
            return [t.numpy()[0] for t in (hc if lstm else (hc,))]

        r.fns["amber eager"] = eager
        r.notes["amber eager"] = (f"amber.nn.{kind} under am.no_grad(), "
                                  f"am.set_num_threads({threads})")
    if "torch eager" in names:
        add_torch(r, layer, kind, threads)
    if "ORT Loop" in names and lstm:
        add_ort(r, weights_of(layer), workdir / "lstm_loop.onnx", threads)
    r.fns = {k: r.fns[k] for k in names if k in r.fns}
    return r


def add_torch(r: Runners, layer: Any, kind: str, threads: int) -> None:
    import torch

    mod = torch_layer(layer, kind)

    def run_torch(x: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            _, hc = mod(torch.from_numpy(x))
        return [t[0].numpy() for t in (hc if kind == "LSTM" else (hc,))]

    r.fns["torch eager"] = run_torch
    r.notes["torch eager"] = (f"torch.nn.{kind}, inference_mode, set_num_threads({threads}), "
                              f"set_num_interop_threads(1)")


def add_ort(r: Runners, w: dict[str, np.ndarray], path: Path, threads: int) -> None:
    import onnxruntime as ort

    onnx_loop_model(w, path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    r.fns["ORT Loop"] = lambda x: sess.run(None, {"xs": x})
    r.notes["ORT Loop"] = (f"hand-built ONNX (opset 17) with a Loop node, CPU EP, "
                           f"intra_op_num_threads={threads}, inter_op_num_threads=1, "
                           f"sequential, default graph optimizations")


# ----------------------------------------------------------------------------- timing


@dataclass
class Case:
    """One batch size: its input, and per runtime the samples and the agreement."""

    batch: int
    x: np.ndarray
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    max_err: dict[str, float] = field(default_factory=dict)


def check_agreement(case: Case, runners: Runners) -> None:
    """Every runtime's ``(h, c)`` against the reference interpreter's.

    Raises:
        BenchmarkError: a runtime differs by more than ``TOLERANCE``.
    """
    want = runners.fns["amber reference"](case.x)
    for rt, fn in runners.fns.items():
        got = fn(case.x)
        err = max(float(np.max(np.abs(np.asarray(g, np.float64) - w)))
                  if np.shape(g) == w.shape else float("inf") for g, w in zip(got, want))
        case.max_err[rt] = err
        if not err <= TOLERANCE:
            raise BenchmarkError(f"batch {case.batch}: {rt} differs from the reference "
                                 f"interpreter by {err:g}")


def time_cases(cases: list[Case], runners: Runners, repeats: int, budget: float,
               pause: float) -> None:
    """Interleaved: every repeat times every runtime on every case, rotating the order."""
    names = [rt for rt in RUNTIMES if rt in runners.fns]
    for case in cases:  # warm-up: one-time costs stay out of the samples
        for rt in names:
            sample(lambda rt=rt, case=case: runners.fns[rt](case.x), 0.2, 0.0)
    for rep in range(repeats):
        for case in cases:
            shift = rep % len(names)
            for rt in names[shift:] + names[:shift]:
                w, c = sample(lambda rt=rt, case=case: runners.fns[rt](case.x), budget, pause)
                case.wall.setdefault(rt, []).append(w)
                case.cpu.setdefault(rt, []).append(c)


def worker(rt: str, args: argparse.Namespace) -> int:
    """One block of an isolated run: this runtime alone, ``--samples`` samples per case,
    printed as JSON ``{batch: [[wall, cpu], ...]}``."""
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    cases = make_cases(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        fn = build_runners(args.seed, Path(tmp), args.threads, (rt,), args.cell).fns[rt]
        for case in cases:
            sample(lambda case=case: fn(case.x), 0.2, 0.0)
        out = {str(case.batch): [sample(lambda case=case: fn(case.x), args.budget, args.pause)
                                 for _ in range(args.samples)] for case in cases}
    print(json.dumps(out))
    return 0


def time_isolated(cases: list[Case], args: argparse.Namespace) -> None:
    """``--repeats`` blocks; each starts one process per runtime (rotating the order)."""
    names = [rt for rt in ISOLATED if args.cell == "LSTM" or rt not in LSTM_ONLY]
    for rep in range(args.repeats):
        shift = rep % len(names)
        for rt in names[shift:] + names[:shift]:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", rt, "--threads",
                   str(args.threads), "--samples", str(args.samples), "--budget",
                   str(args.budget), "--pause", str(args.pause), "--seed", str(args.seed),
                   "--cell", args.cell]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise BenchmarkError(f"{rt} worker failed: {res.stderr.strip()[-500:]}")
            got = json.loads(res.stdout.strip().splitlines()[-1])
            for case in cases:
                for w, c in got[str(case.batch)]:
                    case.wall.setdefault(rt, []).append(w)
                    case.cpu.setdefault(rt, []).append(c)


def make_cases(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    return [Case(b, rng.standard_normal((SEQ, b, INPUT)).astype(np.float32)) for b in BATCHES]


# ----------------------------------------------------------------------------- report


def machine_lines(threads: int) -> list[str]:
    """Date, machine, versions and thread settings."""
    import onnxruntime as ort
    import torch

    import onnx

    cpu = cpu_model()
    return [
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: nproc={os.cpu_count()}, CPU: {cpu}, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()}, NumPy {np.__version__}, torch "
        f"{torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}, "
        f"amber {am.__version__}",
        f"- threads: {threads} everywhere (OPENBLAS_NUM_THREADS/OMP_NUM_THREADS={threads} "
        f"before NumPy is imported; torch.set_num_threads({threads}); ORT "
        f"intra_op_num_threads={threads}; the native session threads={threads})",
    ]


def report(cases: list[Case], runners: Runners, args: argparse.Namespace, command: str,
           load: tuple[str, str], isolated: bool) -> str:
    """The Markdown section appended to bench/RESULTS.md."""

    def med(case: Case, rt: str, cpu: bool) -> float:
        return statistics.median((case.cpu if cpu else case.wall)[rt])

    how = (f"each runtime alone in its own process: {args.repeats} blocks (one process per "
           f"runtime each, rotating the order) of {args.samples} samples of about "
           f"{args.budget:g} s per case" if isolated else
           f"{args.repeats} interleaved samples of about {args.budget:g} s each, in one "
           f"process")
    k = args.cell
    extra = (" vs ONNX Runtime Loop" if k == "LSTM" else "")
    others = ("the same cell by hand as an `am.while_loop`, ONNX Runtime's hand-built "
              "`Loop` node with that cell as its body, " if k == "LSTM" else "")
    lines = [
        f"## {k} over a {SEQ}-step sequence, {args.threads} thread(s): amber.nn.{k} native "
        f"vs PyTorch{extra} (bench_lstm.py)",
        "",
        f"One {k} layer, input {INPUT}, hidden {HIDDEN}, {SEQ} steps, float32, the same "
        f"weights everywhere; `amber.nn.{k}` exported (its loop a `scan` node), {others}"
        f"PyTorch's `torch.nn.{k}`. Every final state was checked against amber's reference "
        f"interpreter before timing. Medians over {how}; wall time and process CPU time per "
        f"call, in ms; ratios to PyTorch.",
        "",
        f"Command: `{command}` (from the repository root)",
        "",
        *machine_lines(args.threads),
        f"- load average at start {load[0]}, at end {load[1]}",
        "",
        "The machine is shared and was loaded by other work during the run (load average "
        "above), so wall times include waiting for a CPU; the process CPU time per call is "
        "the figure other processes do not inflate, and the ratios are given for both.",
        "",
        "Runtimes:",
        "",
        *[f"- {rt}: {runners.notes[rt]}" for rt in RUNTIMES if rt in runners.notes],
        "",
    ]
    for case in cases:
        base_w, base_c = med(case, BASELINE, False), med(case, BASELINE, True)
        lines += [
            f"### Batch {case.batch}",
            "",
            "| runtime | wall ms | CPU ms | wall / torch | CPU / torch | max abs err vs "
            "reference |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for rt in RUNTIMES:
            if rt not in case.wall:
                continue
            w, c = med(case, rt, False), med(case, rt, True)
            lines.append(f"| {rt} | {w * 1e3:.3f} | {c * 1e3:.3f} | {w / base_w:.2f}x | "
                         f"{c / base_c:.2f}x | {case.max_err[rt]:.1e} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--samples", type=int, default=3, help="samples per isolated block")
    ap.add_argument("--budget", type=float, default=0.3, help="seconds per sample")
    ap.add_argument("--pause", type=float, default=0.02, help="idle seconds before a sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cell", choices=CELLS, default="LSTM",
                    help="the layer (GRU and RNN: amber native, reference, eager, torch)")
    ap.add_argument("--isolate", action="store_true",
                    help="each runtime in its own process (always with more than 1 thread)")
    ap.add_argument("--worker", choices=ISOLATED, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--append", type=Path, default=None, help="append the section to FILE")
    args = ap.parse_args(argv)
    try:
        if args.worker:
            return worker(args.worker, args)
        import torch

        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)
        isolated = args.isolate or args.threads > 1
        load_start = " ".join(f"{v:.2f}" for v in os.getloadavg())
        cases = make_cases(args.seed)
        with tempfile.TemporaryDirectory() as tmp:
            names = tuple(rt for rt in RUNTIMES if args.cell == "LSTM" or rt not in LSTM_ONLY)
            runners = build_runners(args.seed, Path(tmp), args.threads, names, args.cell)
            for case in cases:
                check_agreement(case, runners)
            if isolated:
                time_isolated(cases, args)
            else:
                time_cases(cases, runners, args.repeats, args.budget, args.pause)
    except am.AmberError as e:
        print(f"bench_lstm: {e}", file=sys.stderr)
        return 1
    load_end = " ".join(f"{v:.2f}" for v in os.getloadavg())
    lib = os.environ.get("AMBER_LIBRARY")
    command = " ".join([*([f"AMBER_LIBRARY={lib}"] if lib else []), sys.executable,
                        "bench/bench_lstm.py", *(argv if argv is not None else sys.argv[1:])])
    text = report(cases, runners, args, command, (load_start, load_end), isolated)
    emit(text, args.append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
