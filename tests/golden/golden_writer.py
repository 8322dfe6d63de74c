"""Writes one golden file pair for the generators of opset 2 and later
(``make_golden_v2.py``, ``make_golden_v3.py``); ``make_golden.py`` (v1) keeps its own
writer, unchanged since its files were written."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

import amber as am


def write_golden(name: str, make: Callable[[], tuple[am.Program, dict[str, np.ndarray]]],
                 out_dir: str) -> None:
    """Write ``make()``'s program as ``name``.amber and its inputs and forward outputs as
    ``name``.npz in ``out_dir``; refuse to overwrite either."""
    amber_path = os.path.join(out_dir, f"{name}.amber")
    npz_path = os.path.join(out_dir, f"{name}.npz")
    for path in (amber_path, npz_path):
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists; golden files are never rewritten")
    program, inputs = make()
    os.makedirs(out_dir, exist_ok=True)
    program.save(amber_path, metadata={"golden": name})
    outs = program.run("forward", **inputs)
    entry = program.signature("forward")
    arrays = {f"in.{k}": v for k, v in inputs.items()}
    arrays.update({f"out.{p.name}": o for p, o in zip(entry.outputs, outs)})
    with open(npz_path, "xb") as f:
        np.savez(f, **arrays)
    print(f"wrote {amber_path} and {npz_path}")
