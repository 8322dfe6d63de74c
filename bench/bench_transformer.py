"""Transformer inference: amber's native runtime against ONNX Runtime and PyTorch on the
same weights.

Models (bench/models/bert.py):

* ``bert``: a sentence encoder of the all-MiniLM-L6-v2 shape (BERT: 6 layers, hidden 384,
  12 heads, intermediate 1536, vocabulary 30522), written with ``amber.nn`` and loaded with
  the weights of a randomly initialised ``transformers.BertModel`` built from the same
  ``BertConfig`` (no pooler, no download); inputs ``input_ids`` and ``attention_mask``
  (batch, seq), exported with both dims symbolic; at 1x16, 1x128 and 16x128 tokens;
* ``decoder``: one GPT-2-small-shaped causal decoder block (hidden 768, 12 heads, MLP 3072,
  tanh GELU), exported with symbolic batch and sequence; at 1x256.

Runtimes:

* ``amber``: the native runtime on the .amber file;
* ``ORT/amber``: ONNX Runtime on amber's own ONNX export of that file;
* ``ORT/torch``: ONNX Runtime on ``torch.onnx.export`` of the PyTorch model (the
  ``transformers`` model for ``bert``; the targets compare with this one);
* ``torch``: PyTorch eager (``torch.inference_mode``), the ``transformers`` model for
  ``bert``.

Correctness first: every runtime's output is checked against the PyTorch model's
(``transformers`` for ``bert``, with a padded attention mask). Timing: blocks alternate
between the runtimes (rotating which goes first); a block is a loop of calls lasting about
``--budget`` seconds after one untimed call; each figure is the median over ``--repeats``
blocks of the mean wall time per call (and of the process CPU time per call). With
``--threads 2`` every block runs in a fresh process holding only that runtime; with 1
thread all run in one process. ``--quick`` runs fewer, shorter blocks.

Usage (from the repository root, with the ``bench`` and ``hf`` extras)::

    python bench/bench_transformer.py --threads 1
    python bench/bench_transformer.py --threads 2 --append bench/RESULTS.md
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import emit, export_cache, peer_run_head, pin_threads  # noqa: E402

_THREADS = pin_threads(sys.argv[1:], default=1)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from models.bert import (  # noqa: E402
    AMBER,
    GPT2,
    MINILM,
    amber_bert,
    bert_state,
    build,
    decoder_state,
    hf_bert,
    torch_lib,
)

import amber as am  # noqa: E402

RUNTIMES = ("amber", "ORT/amber", "ORT/torch", "torch")
CASES = (("bert", 1, 16), ("bert", 1, 128), ("bert", 16, 128), ("decoder", 1, 256))
WORK = export_cache("amber_bench_transformer")


# ----------------------------------------------------------------------------- models


def inputs(model: str, batch: int, seq: int, pad: bool = False) -> dict[str, np.ndarray]:
    """The feeds by input name (``pad``: the last row's mask ends in zeros)."""
    rng = np.random.default_rng(2)
    if model == "decoder":
        return {"x": rng.standard_normal((batch, seq, GPT2["hidden"])).astype(np.float32)}
    ids = rng.integers(0, MINILM["vocab_size"], (batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), np.int64)
    if pad and seq > 1:
        mask[-1, seq // 2 + 1:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def torch_model(model: str) -> Any:
    """The PyTorch model: the ``transformers`` encoder or the decoder block's twin."""
    import torch

    if model == "bert":
        return hf_bert()
    m = build(torch_lib()).DecoderBlock(**GPT2)
    m.load_state_dict({k: torch.tensor(v) for k, v in decoder_state().items()})
    return m.eval()


def amber_model(model: str) -> Any:
    if model == "bert":
        return amber_bert(bert_state(hf_bert()))
    m = build(AMBER).DecoderBlock(**GPT2)
    m.load_state_dict({k: am.tensor(v) for k, v in decoder_state().items()})
    return m.eval()


def prepare(model: str) -> dict[str, str]:
    """Writes the .amber file, amber's ONNX export and the torch.onnx export once."""
    import torch

    os.makedirs(WORK, exist_ok=True)
    base = os.path.join(WORK, model)
    paths = {"amber": base + ".amber", "ORT/amber": base + ".amber.onnx",
             "ORT/torch": base + ".torch.onnx"}
    if all(os.path.exists(p) for p in paths.values()) or (
            os.path.exists(paths["amber"]) and os.path.exists(paths["ORT/torch"])):
        return paths
    if model == "bert":
        specs = (am.spec("batch", "seq", dtype="int64", low=0, high=MINILM["vocab_size"] - 1),
                 am.spec("batch", "seq", dtype="int64", low=0, high=1))
    else:
        specs = (am.spec("batch", "seq", GPT2["hidden"]),)
    am.export(amber_model(model), *specs).save(paths["amber"])
    try:
        am.onnx.export(paths["amber"], paths["ORT/amber"])
    except am.onnx.OnnxExportError as e:  # recorded as a missing column
        print(f"{model}: amber's ONNX export refused: {e}", file=sys.stderr)
    feeds = inputs(model, 1, 16)
    names = list(feeds)
    axes = {n: {0: "batch", 1: "seq"} for n in names + ["y"]}
    t_mod = torch_model(model)
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    if model == "bert":
        t_mod = _HFLast(t_mod)
    torch.onnx.export(t_mod, args, paths["ORT/torch"], input_names=names,
                      output_names=["y"], dynamic_axes=axes, dynamo=False)
    return paths


class _HFLast:
    """Wraps a ``transformers`` model as a torch module returning the last hidden state."""

    def __new__(cls, hf: Any) -> Any:
        import torch

        class Last(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.hf = hf

            def forward(self, ids: Any, mask: Any) -> Any:
                return self.hf(input_ids=ids, attention_mask=mask).last_hidden_state

        return Last().eval()


# ----------------------------------------------------------------------------- runners


def available(paths: dict[str, str]) -> tuple[str, ...]:
    """The runtimes that have a model file (amber's ONNX export may have been refused)."""
    return tuple(r for r in RUNTIMES if r == "torch" or os.path.exists(paths[r]))


def runner(runtime: str, model: str, paths: dict[str, str], threads: int) -> Any:
    """A function feeds -> output array for one runtime."""
    if runtime == "amber":
        m = am.load(paths["amber"], backend="native", threads=threads)
        return lambda f: np.asarray(m(*f.values()).numpy())
    if runtime.startswith("ORT"):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(paths[runtime], opts, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        return lambda f: sess.run(None, dict(zip(names, f.values(), strict=True)))[0]
    import torch

    torch.set_num_threads(threads)
    t_mod = torch_model(model)
    if model == "bert":
        t_mod = _HFLast(t_mod)

    def run(f: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return t_mod(*(torch.from_numpy(v) for v in f.values())).numpy()

    return run


def block(fn: Any, feeds: dict[str, np.ndarray], budget: float) -> tuple[float, float]:
    """(wall, process CPU) seconds per call over about ``budget`` seconds."""
    fn(feeds)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        fn(feeds)
        n += 1
        if time.perf_counter() - t0 >= budget:
            return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def check(model: str, paths: dict[str, str], fns: dict[str, Any]) -> None:
    """Every runtime's output against the PyTorch model's, on a padded batch of 2."""
    feeds = inputs(model, 2, 24, pad=True)
    want = runner("torch", model, paths, _THREADS)(feeds)
    for r in available(paths)[:-1]:
        got = (fns.get(r) or runner(r, model, paths, _THREADS))(feeds)
        err = float(np.max(np.abs(got - want))) / (float(np.max(np.abs(want))) or 1.0)
        if err > 1e-4:
            raise AssertionError(f"{model}: {r} differs from PyTorch by {err:.2e} (relative)")


def _child(args: argparse.Namespace) -> None:
    """--child RUNTIME MODEL BATCH SEQ: one block of one runtime, alone in this process."""
    runtime, model, batch, seq = args.child[0], args.child[1], *map(int, args.child[2:])
    paths = prepare(model)
    feeds = inputs(model, batch, seq)
    print(json.dumps(block(runner(runtime, model, paths, _THREADS), feeds, args.budget)))


def measure(model: str, batch: int, seq: int, args: argparse.Namespace
            ) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and median CPU seconds per call of every runtime."""
    paths = prepare(model)
    runtimes = available(paths)
    fns = {r: runner(r, model, paths, _THREADS) for r in runtimes} if _THREADS == 1 else {}
    check(model, paths, fns)
    feeds = inputs(model, batch, seq)
    times: dict[str, list[tuple[float, float]]] = {r: [] for r in runtimes}
    for rep in range(args.repeats):
        order = runtimes[rep % len(runtimes):] + runtimes[:rep % len(runtimes)]
        for r in order:
            if fns:
                times[r].append(block(fns[r], feeds, args.budget))
            else:
                out = subprocess.run(
                    [sys.executable, __file__, "--threads", str(_THREADS), "--budget",
                     str(args.budget), "--child", r, model, str(batch), str(seq)],
                    capture_output=True, text=True, check=True)
                times[r].append(tuple(json.loads(out.stdout.strip().splitlines()[-1])))
    return ({r: statistics.median(w for w, _ in v) for r, v in times.items()},
            {r: statistics.median(c for _, c in v) for r, v in times.items()})


# ----------------------------------------------------------------------------- report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="3 blocks of ~0.3 s")
    ap.add_argument("--only", choices=["bert", "decoder"], default=None)
    ap.add_argument("--append", default=None, help="append the Markdown section here")
    ap.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.budget = 3, 0.3
    if args.child:
        _child(args)
        return
    import onnxruntime
    import torch
    import transformers

    load0 = os.getloadavg()
    start = datetime.datetime.now(datetime.UTC)
    lines = ["| model | batch x seq | amber ms | ORT/amber ms | ORT/torch ms | torch ms | "
             "amber / ORT-torch (wall) | (CPU) | amber / torch (wall) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model, batch, seq in CASES:
        if args.only and model != args.only:
            continue
        t, cpu = measure(model, batch, seq, args)
        row = (f"| {model} | {batch}x{seq} | "
               + " | ".join(f"{t[r] * 1e3:.2f}" if r in t else "refused" for r in RUNTIMES)
               + f" | {t['amber'] / t['ORT/torch']:.2f}x"
               + f" | {cpu['amber'] / cpu['ORT/torch']:.2f}x"
               + f" | {t['amber'] / t['torch']:.2f}x |")
        print(row, flush=True)
        lines.append(row)
    title = f"## Transformer inference, {_THREADS} thread(s) ({start:%Y-%m-%d %H:%M} UTC)"
    head = peer_run_head(title, "bench_transformer.py",
                         f"amber {am.__version__}, onnxruntime {onnxruntime.__version__}, "
                         f"torch {torch.__version__}, transformers {transformers.__version__}",
                         load0, args.repeats, args.budget, _THREADS)
    text = "\n".join(head + lines) + "\n"
    emit(text, args.append)


if __name__ == "__main__":
    main()
