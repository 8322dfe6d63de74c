"""Four models that PyTorch's exporters cannot capture exactly, written as a PyTorch user
writes them -- only the import changed (``import amber as torch``). Each is exported with
symbolic sizes, run by the native runtime, and compared with eager execution on inputs
that take every path.

* ``Countdown``: a loop whose trip count is data (``while it > 0``);
* ``AllPositive``: ``if x.all(): cos else sin``;
* ``LongSequences``: a branch on the (symbolic) sequence length;
* ``EvenBatch``: a branch on the parity of the (symbolic) batch size.

Usage: ``python examples/control/plain_python.py [--out DIR]``; exits non-zero on a
mismatch."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

import amber as torch
import amber.nn as nn


class Countdown(nn.Module):
    def forward(self, x, it):
        while it > 0:
            x = x * 2 + 1
            it = it - 1
        return x


class AllPositive(nn.Module):
    def forward(self, x):
        if x.all():
            return x.cos()
        else:
            return x.sin()


class LongSequences(nn.Module):
    def forward(self, x):  # x: [batch, seq, features]
        if x.shape[1] > 5:
            return x.mean(1)
        return x.sum(1)


class EvenBatch(nn.Module):
    def forward(self, x):
        if x.shape[0] % 2 == 0:
            return x * 2
        return x - 1


def cases() -> list[tuple[str, nn.Module, tuple, list[tuple[np.ndarray, ...]]]]:
    """(name, model, export specs, inputs taking every path)."""
    f = np.float32
    rng = np.random.default_rng(0)
    return [
        ("countdown", Countdown(), (torch.spec("n"), torch.spec((), dtype=torch.int64)),
         [(np.ones(3, f), np.array(k)) for k in (0, 1, 4)]),
        ("all_positive", AllPositive(), (torch.spec("n"),),
         [(np.array([1, 2], f),), (np.array([1, 0, 3], f),)]),
        ("long_sequences", LongSequences(), (torch.spec("b", "s", 4),),
         [(rng.normal(size=(2, s, 4)).astype(f),) for s in (3, 5, 9)]),
        ("even_batch", EvenBatch(), (torch.spec("b", 3),),
         [(rng.normal(size=(b, 3)).astype(f),) for b in (1, 2, 5, 8)]),
    ]


def check(out_dir: str) -> bool:
    ok = True
    for name, model, specs, inputs in cases():
        path = os.path.join(out_dir, f"{name}.amber")
        torch.export(model, *specs).save(path)
        native = torch.load(path, backend="native")
        for args in inputs:
            want = model(*[torch.tensor(a) for a in args]).numpy()
            got = native(*args).numpy()
            same = want.shape == got.shape and np.allclose(want, got, rtol=1e-6, atol=1e-6)
            ok &= same
            shapes = ", ".join(str(a.shape) for a in args)
            print(f"{name:15s} inputs {shapes:28s} {'ok' if same else 'MISMATCH'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="folder for the exported files (default: a temporary one)")
    args = ap.parse_args(argv)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        return 0 if check(args.out) else 1
    with tempfile.TemporaryDirectory() as d:
        return 0 if check(d) else 1


if __name__ == "__main__":
    sys.exit(main())
