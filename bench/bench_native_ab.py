"""A/B of native runtime builds: per-run time of the same models in two or more builds of
``libamber`` loaded side by side in one process, runs interleaved.

Cases: the MLP 784-512-512-10 at batch 1 and 64, the LSTM layer of ``bench_lstm.py``
(a ``while_loop``; 100 steps, input 64, hidden 128) and ``amber.nn.LSTM`` of the same
size (a ``scan``) at batch 1 and 16, a small CNN (conv, batch norm and ReLU twice: the
epilogue path) at batch 8 and a ``TransformerEncoderLayer`` (d_model 128, 4 heads:
fused attention and layer norm) on 32 tokens. Each build is
called through the bare C API with ctypes (``amber_session_run`` on prepared
descriptors: no input checks or output copies in Python), one session per build and
case, ``threads=1``. Every repeat times every build on every case, rotating which goes
first; a sample is a loop of runs lasting about ``--budget`` seconds; figures are medians
over ``--repeats`` samples of wall time and of process CPU time per run (the reliable
one on a shared machine). Before timing, every build's outputs are compared with the
first build's (max abs difference reported).

``--open`` times loading instead: ``amber_model_open_file`` (tensor hashes skipped, so
the header is what costs), ``amber_session_create`` and both frees, per build, on the
MLP, the ``nn.LSTM`` file and a header of many nodes (``tests/helpers/big_headers.py``,
``--open-header-mb``).

Usage (from the repository root; amber importable to export the models)::

    python bench/bench_native_ab.py --lib before=/path/old/libamber.so \\
        --lib after=build/runtime/libamber.so --no-fusion after

``--cnn`` times bench_cnn.py's models (ResNet-50, MobileNetV2, SqueezeNet 1.0, the digits CNN)
and single layers (3x3 and depthwise convolution, max- and average-pooling) at batch 1 (or
``--batch N``) instead (``--relu6-nested``: also MobileNetV2 with ReLU6 as amber.nn
exported it before, ``where(x <= 0, 0, where(x >= 6, 6, x))``);
``--transformer`` bench_transformer.py's encoder (1x16, 1x128, 16x128) and decoder block (1x256);
``--unary`` the float32 ``exp``, ``sigmoid``, ``tanh``, ``erf`` and tanh-form GELU on 64x1024
values; ``--conv3x3`` ResNet-50's and SqueezeNet 1.0's 3x3 convolutions, each with batch
norm and ReLU, at batch 1; ``--conv1x1`` the 1x1 convolutions of MobileNetV2 and those of
ResNet-50 on 28x28 and smaller images (``bench_resnet_layers.py``'s shapes), the same way.
``--runtime-threads N`` gives the sessions N intra-op threads; ``--only TEXT`` keeps the
cases whose name contains TEXT.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_model, pin_threads, sample

pin_threads(sys.argv[1:], default=1)

import argparse  # noqa: E402
import ctypes  # noqa: E402
import datetime  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import amber as am  # noqa: E402
import amber.nn as nn  # noqa: E402
from amber.native import _Tensor  # noqa: E402  (amber_tensor, as the binding declares it)

NO_FUSION = 2  # AMBER_OPEN_NO_FUSION
_DTYPES = {"f4": 0, "i8": 3}  # amber_dtype of the inputs used here: float32, int64
SKIP_HASHES = 1  # AMBER_OPEN_SKIP_TENSOR_HASHES


class _Options(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("max_header_bytes", ctypes.c_uint64), ("memory_limit", ctypes.c_uint64),
                ("threads", ctypes.c_int32), ("max_call_depth", ctypes.c_int32),
                ("max_loop_iterations", ctypes.c_int64), ("max_run_iterations", ctypes.c_int64),
                ("_reserved", ctypes.c_uint8 * 256)]


class Runner:
    """One build's session on one model, with the input descriptors prepared."""

    def __init__(self, lib: ctypes.CDLL, path: Path, x: np.ndarray | tuple[np.ndarray, ...],
                 n_out: int, flags: int, threads: int = 1) -> None:
        xs = x if isinstance(x, tuple) else (x,)
        self.lib, self.x = lib, xs
        opts = _Options()
        lib.amber_options_init(ctypes.byref(opts))
        opts.flags |= flags
        opts.threads = threads
        self.model, self.session = ctypes.c_void_p(), ctypes.c_void_p()
        if lib.amber_model_open_file(str(path).encode(), ctypes.byref(opts),
                                     ctypes.byref(self.model)) != 0:
            raise SystemExit(f"cannot open {path}: {lib.amber_model_error(self.model)}")
        assert lib.amber_session_create(self.model, ctypes.byref(self.session)) == 0
        self.ins = (_Tensor * len(xs))()
        for k, a in enumerate(xs):
            self.ins[k] = _Tensor(_DTYPES[a.dtype.str[1:]], a.ndim)
            for i, d in enumerate(a.shape):
                self.ins[k].shape[i] = d
            self.ins[k].data = a.ctypes.data
        self.outs = (_Tensor * n_out)()
        self.n_out = n_out

    def __call__(self) -> None:
        st = self.lib.amber_session_run(self.session, b"forward", self.ins, len(self.x),
                                        self.outs, self.n_out)
        if st != 0:
            raise SystemExit(f"run failed: {self.lib.amber_session_error(self.session)}")

    def outputs(self) -> list[np.ndarray]:
        self()
        res = []
        for t in self.outs:
            shape = tuple(t.shape[i] for i in range(t.rank))
            n = int(np.prod(shape))
            res.append(np.ctypeslib.as_array(ctypes.cast(t.data, ctypes.POINTER(ctypes.c_float)),
                                             (n,)).reshape(shape).copy())
        return res


class Opener:
    """One build opening one file: open, create a session, free both."""

    def __init__(self, lib: ctypes.CDLL, path: Path, flags: int) -> None:
        self.lib, self.path = lib, str(path).encode()
        self.opts = _Options()
        lib.amber_options_init(ctypes.byref(self.opts))
        self.opts.flags |= flags | SKIP_HASHES
        self.opts.threads = 1

    def __call__(self) -> None:
        model, session = ctypes.c_void_p(), ctypes.c_void_p()
        if self.lib.amber_model_open_file(self.path, ctypes.byref(self.opts),
                                          ctypes.byref(model)) != 0:
            raise SystemExit(f"cannot open {self.path!r}: {self.lib.amber_model_error(model)}")
        assert self.lib.amber_session_create(model, ctypes.byref(session)) == 0
        self.lib.amber_session_free(session)
        self.lib.amber_model_close(model)


def load(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(os.path.abspath(path))
    lib.amber_model_error.restype = ctypes.c_char_p
    lib.amber_session_error.restype = ctypes.c_char_p
    return lib


def models(workdir: Path) -> list[tuple[str, Path, np.ndarray, int]]:
    from bench_lstm import HIDDEN, INPUT, SEQ, LSTMLayer

    am.manual_seed(0)
    rng = np.random.default_rng(0)
    mlp = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                        nn.Linear(512, 10)).eval()
    am.export(mlp, am.spec("batch", 784)).save(str(workdir / "mlp.amber"))
    lstm = LSTMLayer(INPUT, HIDDEN)
    am.export(lstm, am.spec("t", "b", INPUT), sizes={"t": (3, 7), "b": (1, 4)}).save(
        str(workdir / "lstm.amber"))
    layer = nn.LSTM(INPUT, HIDDEN).eval()  # its time loop is a scan
    am.export(layer, am.spec("t", "b", INPUT), sizes={"t": (3, 7), "b": (1, 4)}).save(
        str(workdir / "nn_lstm.amber"))
    cnn = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32),
                        nn.ReLU(), nn.Flatten(), nn.Linear(32 * 8 * 8, 10)).eval()
    am.export(cnn, am.spec("batch", 3, 16, 16)).save(str(workdir / "cnn.amber"))
    enc = nn.TransformerEncoderLayer(128, 4, dim_feedforward=512, batch_first=True).eval()
    am.export(enc, am.spec("batch", "seq", 128)).save(str(workdir / "encoder.amber"))
    f32 = np.float32
    return [("MLP 784-512-512-10, batch 1", workdir / "mlp.amber",
             rng.standard_normal((1, 784)).astype(f32), 1),
            ("MLP 784-512-512-10, batch 64", workdir / "mlp.amber",
             rng.standard_normal((64, 784)).astype(f32), 1),
            (f"LSTM T={SEQ} I={INPUT} H={HIDDEN}, batch 1", workdir / "lstm.amber",
             rng.standard_normal((SEQ, 1, INPUT)).astype(f32), 2),
            (f"LSTM T={SEQ} I={INPUT} H={HIDDEN}, batch 16", workdir / "lstm.amber",
             rng.standard_normal((SEQ, 16, INPUT)).astype(f32), 2),
            (f"nn.LSTM T={SEQ} I={INPUT} H={HIDDEN}, batch 1", workdir / "nn_lstm.amber",
             rng.standard_normal((SEQ, 1, INPUT)).astype(f32), 3),
            (f"nn.LSTM T={SEQ} I={INPUT} H={HIDDEN}, batch 16", workdir / "nn_lstm.amber",
             rng.standard_normal((SEQ, 16, INPUT)).astype(f32), 3),
            ("CNN conv-bn-relu x2 3x16x16, batch 8", workdir / "cnn.amber",
             rng.standard_normal((8, 3, 16, 16)).astype(f32), 1),
            ("TransformerEncoderLayer d=128 h=4, 32 tokens", workdir / "encoder.amber",
             rng.standard_normal((1, 32, 128)).astype(f32), 1)]


def open_cases(workdir: Path, header_mb: float) -> list[tuple[str, Path]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))
    from big_headers import sized

    models(workdir)
    big = workdir / "nodes.amber"
    big.write_bytes(sized("nodes", int(header_mb * (1 << 20))))
    return [("open MLP 784-512-512-10", workdir / "mlp.amber"),
            ("open nn.LSTM", workdir / "nn_lstm.amber"),
            (f"open {header_mb:g} MB header of neg nodes", big)]


CNN_CASES = ("resnet50", "mobilenet_v2", "squeezenet1_0", "digits_cnn", "conv3x3 64->64 56x56",
             "depthwise3x3 144 56x56", "maxpool3x3s2 64x112x112", "avgpool3x3s1 64x56x56")


CNN_BATCH = 1  # (--batch)
NESTED_RELU6 = False  # (--relu6-nested)


def cnn_models(workdir: Path) -> list[tuple[str, Path, np.ndarray, int]]:
    """bench_cnn.py's models and single layers at batch CNN_BATCH (random weights)."""
    from models.cnn import AMBER, MODELS, build, layer_defs

    am.manual_seed(0)
    rng = np.random.default_rng(0)
    ctors = build(AMBER)
    defs = {name: (getattr(ctors, ctor)(), shape) for name, ctor, shape in MODELS}
    defs.update(layer_defs(AMBER))
    out = []
    for name in CNN_CASES:
        mod, shape = defs[name]
        path = workdir / f"{''.join(c if c.isalnum() else '_' for c in name)}.amber"
        am.export(mod.eval(), am.spec("batch", *shape)).save(str(path))
        out.append((f"{name}, batch {CNN_BATCH}", path,
                    rng.standard_normal((CNN_BATCH,) + shape).astype(np.float32), 1))
        if name == "mobilenet_v2" and NESTED_RELU6:  # the same weights, the earlier form
            path = workdir / "mobilenet_v2_nested.amber"
            forward = nn.ReLU6.forward
            nn.ReLU6.forward = lambda self, x: am.where(x <= 0, 0.0,  # type: ignore
                                                        am.where(x >= 6, 6.0, x))
            try:
                am.export(mod.eval(), am.spec("batch", *shape)).save(str(path))
            finally:
                nn.ReLU6.forward = forward  # type: ignore[method-assign]
            out.append((f"{name} (ReLU6 nested), batch {CNN_BATCH}", path, out[-1][2], 1))
    return out


TRANSFORMER_CASES = (("bert", 1, 16), ("bert", 1, 128), ("bert", 16, 128), ("decoder", 1, 256))


def transformer_models(workdir: Path) -> list[tuple[str, Path, Any, int]]:
    """bench_transformer.py's encoder and decoder block (its model files, its inputs)."""
    del workdir  # bench_transformer keeps its files in its own directory
    import bench_transformer as bt

    return [(f"{model} {b}x{s}", Path(bt.prepare(model)["amber"]),
             tuple(bt.inputs(model, b, s).values()), 1) for model, b, s in TRANSFORMER_CASES]


# (in, out, stride, input size) of ResNet-50's 3x3 convolutions and SqueezeNet 1.0's
# expand3x3 ones
CONV3X3_SHAPES = [(64, 64, 1, 56), (128, 128, 1, 28), (256, 256, 1, 14), (512, 512, 1, 7),
                  (128, 128, 2, 56), (256, 256, 2, 28), (512, 512, 2, 14), (16, 64, 1, 55),
                  (32, 128, 1, 55), (32, 128, 1, 27), (48, 192, 1, 27), (64, 256, 1, 27),
                  (64, 256, 1, 13)]


def conv3x3_models(workdir: Path) -> list[tuple[str, Path, np.ndarray, int]]:
    """Each shape of CONV3X3_SHAPES as conv (padding 1) + BatchNorm (eval) + ReLU, batch 1."""
    am.manual_seed(0)
    rng = np.random.default_rng(0)
    cases: list[tuple[str, Path, np.ndarray, int]] = []
    for c, o, s, h in CONV3X3_SHAPES:
        mod = nn.Sequential(nn.Conv2d(c, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())
        path = workdir / f"conv3x3_{len(cases)}.amber"
        am.export(mod.eval(), am.spec("batch", c, h, h)).save(str(path))
        cases.append((f"conv3x3 {c}->{o} s{s} {h}x{h}", path,
                      rng.standard_normal((1, c, h, h)).astype(np.float32), 1))
    return cases


def conv1x1_models(workdir: Path) -> list[tuple[str, Path, np.ndarray, int]]:
    """bench_resnet_layers.py's 1x1 shapes (MobileNetV2's, and ResNet-50's on 28x28 and
    smaller images) as conv + BatchNorm (eval) + ReLU, batch 1."""
    import bench_resnet_layers as brl

    am.manual_seed(0)
    rng = np.random.default_rng(0)
    cases: list[tuple[str, Path, np.ndarray, int]] = []
    for c, o, k, s, h, _ in brl.SHAPES + brl.MOBILENET_SHAPES:
        if k != 1 or s != 1 or (h > 28 and (c, o, k, s, h, _) not in brl.MOBILENET_SHAPES):
            continue
        mod = nn.Sequential(nn.Conv2d(c, o, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU())
        path = workdir / f"conv1x1_{len(cases)}.amber"
        am.export(mod.eval(), am.spec("batch", c, h, h)).save(str(path))
        cases.append((f"conv1x1 {c}->{o} {h}x{h}", path,
                      rng.standard_normal((1, c, h, h)).astype(np.float32), 1))
    return cases


def stem_models(workdir: Path) -> list[tuple[str, Path, np.ndarray, int]]:
    """The 7x7 stride-2 image stems at batch CNN_BATCH: ResNet-50's (3->64, padding 3,
    + BatchNorm + ReLU) and SqueezeNet 1.0's (3->96, no padding, bias + ReLU)."""
    am.manual_seed(0)
    rng = np.random.default_rng(0)
    mods = {"stem 7x7s2 3->64 p3 224 (resnet50)": nn.Sequential(
                nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU()),
            "stem 7x7s2 3->96 p0 224 (squeezenet1_0)": nn.Sequential(
                nn.Conv2d(3, 96, 7, 2), nn.ReLU())}
    cases = []
    for name, mod in mods.items():
        path = workdir / f"stem_{len(cases)}.amber"
        am.export(mod.eval(), am.spec("batch", 3, 224, 224)).save(str(path))
        cases.append((f"{name}, batch {CNN_BATCH}", path,
                      rng.standard_normal((CNN_BATCH, 3, 224, 224)).astype(np.float32), 1))
    return cases


UNARY_SHAPE = (64, 1024)


def unary_models(workdir: Path) -> list[tuple[str, Path, np.ndarray, int]]:
    """One float32 op on 65,536 standard normal values times 2 (the vector loops of
    ``k_transcendental.inc``; a run's time over 65,536 is the time per element)."""
    import amber.nn.functional as F

    x = (2 * np.random.default_rng(0).standard_normal(UNARY_SHAPE)).astype(np.float32)
    fns = {"exp": am.exp, "sigmoid": am.sigmoid, "tanh": am.tanh, "erf": am.erf,
           "gelu (tanh form)": lambda t: F.gelu(t, approximate="tanh")}
    cases = []
    for name, fn in fns.items():
        path = workdir / f"unary_{len(cases)}.amber"
        am.export(fn, am.spec(*UNARY_SHAPE)).save(str(path))
        cases.append((f"{name} 64x1024", path, x, 1))
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", action="append", required=True, metavar="LABEL=PATH")
    ap.add_argument("--no-fusion", action="append", default=[], metavar="LABEL",
                    help="also run build LABEL with AMBER_OPEN_NO_FUSION")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (runtime: 1)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--budget", type=float, default=0.2)
    ap.add_argument("--pause", type=float, default=0.02)
    ap.add_argument("--open", action="store_true", help="time opening files, not runs")
    ap.add_argument("--open-header-mb", type=float, default=2.0)
    ap.add_argument("--cnn", action="store_true",
                    help="bench_cnn.py's models and layers instead of the MLP and LSTMs")
    ap.add_argument("--transformer", action="store_true",
                    help="bench_transformer.py's BERT encoder (1x16, 1x128) and decoder "
                         "block (1x256) instead of the MLP and LSTMs")
    ap.add_argument("--unary", action="store_true",
                    help="exp, sigmoid, tanh, erf and the tanh-form GELU on 64x1024 floats "
                         "instead of the MLP and LSTMs")
    ap.add_argument("--conv3x3", action="store_true",
                    help="ResNet-50's and SqueezeNet's 3x3 convolutions (+ BatchNorm + ReLU) "
                         "instead of the MLP and LSTMs")
    ap.add_argument("--conv1x1", action="store_true",
                    help="1x1 convolutions (+ BatchNorm + ReLU) of ResNet-50 and MobileNetV2 "
                         "on 28x28 and smaller images instead of the MLP and LSTMs")
    ap.add_argument("--stems", action="store_true",
                    help="the 7x7 stride-2 stems of ResNet-50 and SqueezeNet 1.0 alone "
                         "instead of the MLP and LSTMs")
    ap.add_argument("--batch", type=int, default=1, help="--cnn, --stems: the batch size")
    ap.add_argument("--relu6-nested", action="store_true",
                    help="--cnn: also MobileNetV2 with ReLU6 as amber.nn exported it before, "
                         "where(x <= 0, 0, where(x >= 6, 6, x))")
    ap.add_argument("--runtime-threads", type=int, default=1,
                    help="the sessions' intra-op threads")
    ap.add_argument("--only", default=None, metavar="TEXT",
                    help="only the cases whose name contains TEXT (e.g. decoder)")
    args = ap.parse_args(argv)
    global CNN_BATCH, NESTED_RELU6
    CNN_BATCH, NESTED_RELU6 = args.batch, args.relu6_nested
    builds = [(label, load(path)) for label, path in (s.split("=", 1) for s in args.lib)]
    variants = [(label, lib, 0) for label, lib in builds]
    variants += [(f"{label} (no fusion)", lib, NO_FUSION) for label, lib in builds
                 if label in args.no_fusion]
    with tempfile.TemporaryDirectory() as tmp:
        if args.open:
            cases = open_cases(Path(tmp), args.open_header_mb)
            runners: dict[tuple[str, str], Runner | Opener] = {
                (c, v): Opener(lib, path, flags) for c, path in cases for v, lib, flags in variants}
        else:
            make = (transformer_models if args.transformer else cnn_models if args.cnn
                    else unary_models if args.unary
                    else stem_models if args.stems
                    else conv3x3_models if args.conv3x3
                    else conv1x1_models if args.conv1x1 else models)
            cases = [c for c in make(Path(tmp)) if args.only is None or args.only in c[0]]
            runners = {(c, v): Runner(lib, path, x, n_out, flags, args.runtime_threads)
                       for c, path, x, n_out in cases for v, lib, flags in variants}
        diffs = {}
        for c, *_ in cases if not args.open else []:
            base = runners[(c, variants[0][0])].outputs()  # type: ignore[union-attr]
            for v, *_ in variants[1:]:
                got = runners[(c, v)].outputs()  # type: ignore[union-attr]
                diffs[(c, v)] = max(float(np.max(np.abs(a - b))) for a, b in zip(got, base))
        wall: dict[tuple[str, str], list[float]] = {k: [] for k in runners}
        cpu: dict[tuple[str, str], list[float]] = {k: [] for k in runners}
        load0 = os.getloadavg()
        for r in range(args.repeats):
            for c, *_ in cases:
                order = variants[r % len(variants):] + variants[:r % len(variants)]
                for v, *_ in order:
                    w, t = sample(runners[(c, v)], args.budget, args.pause)
                    wall[(c, v)].append(w)
                    cpu[(c, v)].append(t)
        load1 = os.getloadavg()
    names = [v for v, *_ in variants]
    med = {k: (statistics.median(wall[k]) * 1e3, statistics.median(cpu[k]) * 1e3) for k in wall}
    print(f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; CPU: "
          f"{cpu_model()}; nproc={os.cpu_count()}")
    print(f"- load average at start {' '.join(f'{x:.2f}' for x in load0)}, at end "
          f"{' '.join(f'{x:.2f}' for x in load1)}")
    print(f"- {args.repeats} interleaved repeats, samples of ~{args.budget}s; runtime threads "
          f"{args.runtime_threads}")
    print()
    head = " | ".join(f"{n} wall | {n} CPU" for n in names)
    ratios = " | ".join(f"{n} / {names[0]} (CPU)" for n in names[1:])
    print(f"| case (ms per {'open' if args.open else 'run'}) | {head} | {ratios} |")
    print("|---|" + "---:|" * (2 * len(names) + len(names) - 1))
    for c, *_ in cases:
        cells = " | ".join(f"{med[(c, n)][0]:.3f} | {med[(c, n)][1]:.3f}" for n in names)
        rs = " | ".join(f"{med[(c, n)][1] / med[(c, names[0])][1]:.2f}x" for n in names[1:])
        print(f"| {c} | {cells} | {rs} |")
    if diffs:
        print()
        print("Max abs difference from the first build's outputs: " + "; ".join(
            f"{c}, {v}: {d:.1e}" for (c, v), d in diffs.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
