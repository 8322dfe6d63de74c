"""Layer benchmark: amber's ``nn.LSTM``, bidirectional ``nn.GRU``, ``nn.MultiheadAttention``
and ``nn.TransformerEncoderLayer``, exported with symbolic batch and sequence and run by the
native runtime, against the same PyTorch modules (same weights, loaded through
``state_dict``) in eager inference mode.

Each sample is a loop of calls lasting about ``--budget`` seconds after one untimed call
and ``--pause`` seconds idle; runs are interleaved (every repeat times both frameworks on
every case, alternating which goes first); each figure is the median over ``--repeats``
samples of the wall time and of the process CPU time per call. Before timing, the outputs
are compared (max abs error recorded; beyond 1e-4 the benchmark stops). Threads are set
explicitly (``--threads``, default 1) for BLAS, PyTorch and the native session.

Usage (from the repository root, with torch==2.13.0 installed)::

    python bench/bench_layers.py                            # print a Markdown section
    python bench/bench_layers.py --append bench/RESULTS.md  # and append it
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
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import amber as am  # noqa: E402
import amber.nn as nn  # noqa: E402
from amber import native  # noqa: E402


def _cases(torch: Any) -> list[tuple[str, Any, Any, tuple[int, ...], Any]]:
    """(name, amber module, torch module, input shape, spec)."""
    tn = torch.nn
    return [
        ("LSTM 64->128, seq 100, batch 16", nn.LSTM(64, 128), tn.LSTM(64, 128),
         (100, 16, 64), am.spec("seq", "batch", 64)),
        ("GRU 2 layers bidirectional 64->64, seq 50, batch 8",
         nn.GRU(64, 64, 2, bidirectional=True), tn.GRU(64, 64, 2, bidirectional=True),
         (50, 8, 64), am.spec("seq", "batch", 64)),
        ("MultiheadAttention d 128, 4 heads, seq 64, batch 8",
         nn.MultiheadAttention(128, 4, batch_first=True),
         tn.MultiheadAttention(128, 4, batch_first=True), (8, 64, 128),
         am.spec("batch", "seq", 128)),
        ("TransformerEncoderLayer d 128, 4 heads, ff 256, seq 64, batch 8",
         nn.TransformerEncoderLayer(128, 4, 256, batch_first=True),
         tn.TransformerEncoderLayer(128, 4, 256, batch_first=True), (8, 64, 128),
         am.spec("batch", "seq", 128)),
    ]


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


def _prepare(torch: Any, tmp: Path, threads: int) -> list[tuple[str, Callable[[], Any],
                                                                 Callable[[], Any], float]]:
    prepared = []
    for i, (name, ma, mt, shape, spec) in enumerate(_cases(torch)):
        ma.load_state_dict({k: v.detach().numpy() for k, v in mt.state_dict().items()})
        ma.eval()
        mt.eval()
        is_attn = isinstance(ma, nn.MultiheadAttention)

        def fa(x: Any, ma: Any = ma, is_attn: bool = is_attn) -> Any:
            return ma(x, x, x, need_weights=False)[0] if is_attn else _first(ma(x))

        path = tmp / f"case{i}.amber"
        am.export(fa, spec).save(path)
        nat = native.NativeModel(path, threads=threads)
        x = np.random.default_rng(i).standard_normal(shape).astype(np.float32)
        xt = torch.from_numpy(x)

        def run_t(mt: Any = mt, xt: Any = xt, is_attn: bool = is_attn) -> Any:
            with torch.inference_mode():
                return (mt(xt, xt, xt, need_weights=False)[0] if is_attn
                        else _first(mt(xt)))

        def run_a(nat: Any = nat, x: np.ndarray = x) -> Any:
            return nat.run("forward", x)[0]

        err = float(np.abs(np.asarray(run_a()) - run_t().numpy()).max())
        if err > 1e-4:
            raise am.AmberError(f"{name}: amber native and torch differ by {err}")
        prepared.append((name, run_a, run_t, err))
    return prepared


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.5)
    ap.add_argument("--pause", type=float, default=0.05)
    ap.add_argument("--append", type=Path)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(_THREADS)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        cases = _prepare(torch, Path(d), _THREADS)
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for r in range(args.repeats):
            for name, run_a, run_t, _ in cases:
                order = [("amber native", run_a), ("torch eager", run_t)]
                for who, fn in (order if r % 2 == 0 else order[::-1]):
                    samples.setdefault((name, who), []).append(
                        sample(fn, args.budget, args.pause))
    load_after = os.getloadavg()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## Layers: amber native vs PyTorch eager, {_THREADS} thread(s) (bench_layers.py)",
        "",
        f"{now}; {cpu_model()}, {os.cpu_count()} cores; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; torch {torch.__version__}; "
        f"`python bench/bench_layers.py --threads {_THREADS} --repeats {args.repeats}`. "
        "Medians of per-call wall and process CPU time (ms); ratio = amber / torch.",
        "",
        "| case | amber wall | torch wall | wall ratio | amber CPU | torch CPU | CPU ratio "
        "| max abs diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, _, _, err in cases:
        aw, ac = (statistics.median(s[i] for s in samples[(name, "amber native")])
                  for i in (0, 1))
        tw, tc = (statistics.median(s[i] for s in samples[(name, "torch eager")])
                  for i in (0, 1))
        lines.append(f"| {name} | {aw * 1e3:.3f} | {tw * 1e3:.3f} | {aw / tw:.2f} | "
                     f"{ac * 1e3:.3f} | {tc * 1e3:.3f} | {ac / tc:.2f} | {err:.1e} |")
    text = "\n".join(lines) + "\n"
    emit(text, args.append)


if __name__ == "__main__":
    main()
