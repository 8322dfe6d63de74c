"""Generate hostile *programs*: files that pass every container check of docs/format.md
section 7 (valid preamble, header and tensor SHA-256 digests) but whose program makes a
careless reader spend unbounded time or memory.

Run ``python tests/format/programs/generate.py`` from the repository root to (re)write
the ``*.amber`` files here. Each file is built byte by byte from the spec with the
container corpus's helpers (``tests/format/corpus/generate.py``), so it is the same on
every machine; a test checks that the checked-in files match this script.

* ``dim_bomb.amber`` (4 KiB, its header 1.7 KB): entry ``forward(x: float32[s0, ..., s23])``
  returns ``dim_value((s0+1)*(s1+1)*...*(s23+1))``. Expanded, that product has 2^24
  terms; a reader that canonicalises it runs for minutes and grows to gigabytes. The
  expression is valid under the grammar of H.2 but over its limit of 1024 expanded
  terms, so every reader must refuse it (amber: ``LimitError``, libamber:
  ``AMBER_ERR_LIMIT``). Its test vector (all sizes 1, output 2^24) is consistent.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location(
    "amber_format_corpus_generate_for_programs", HERE.parent / "corpus" / "generate.py")
assert _spec is not None and _spec.loader is not None
corpus = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = corpus  # dataclasses look their module up
_spec.loader.exec_module(corpus)

RANK = 24


def program_file(doc: dict[str, Any], tensors: list[tuple[str, np.ndarray]],
                 data_start: int = 4096) -> bytes:
    """A file with header members ``doc`` and ``tensors`` stored in order from offset
    ``data_start`` (the header is space-padded up to it), each padded to 64 bytes;
    digests and the preamble are computed."""
    index, data, offset = [], b"", data_start
    for name, arr in tensors:
        payload = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        index.append(corpus.entry(name, arr.dtype.name, list(arr.shape), offset, payload))
        data += corpus.pad(payload)
        offset += corpus.align(len(payload))
    header = corpus.header_bytes(dict(doc, tensors=index), pad_to_data_start=False)
    if len(header) > data_start - 64:
        raise ValueError("crafted header too large")
    return corpus.assemble(header + b" " * (data_start - 64 - len(header)), data)


def dim_value_doc(syms: list[str], text: str) -> dict[str, Any]:
    """The header members of ``forward(x: float32[*syms]) -> dim_value(text)``."""
    x = {"dtype": "float32", "name": "x", "shape": syms}
    out = {"dtype": "int64", "name": "output", "shape": []}
    fn = {"name": "forward", "params": [x], "results": ["k"],
          "nodes": [{"op": "dim_value", "inputs": [], "attrs": {"value": text},
                     "outputs": [dict(out, name="k")]}]}
    return {
        "opset_version": 1,
        "program": {"functions": [fn], "weights": []},
        "signatures": {"forward": {"function": "forward", "inputs": [x], "outputs": [out],
                                   "output_structure": "output"}},
    }


def dim_bomb() -> bytes:
    syms = [f"s{i}" for i in range(RANK)]
    bomb = "*".join(f"({s}+1)" for s in syms)
    doc = dim_value_doc(syms, bomb)
    doc.update({
        "test_vectors": [{"dims": dict.fromkeys(syms, 1), "entry": "forward",
                          "inputs": {"x": "test_vectors/0/inputs/x"},
                          "outputs": {"output": "test_vectors/0/outputs/output"},
                          "tolerance": {"output": {"atol": 0, "rtol": 0}}}],
    })
    return program_file(doc, [
        ("test_vectors/0/inputs/x", np.zeros((1,) * RANK, np.float32)),
        ("test_vectors/0/outputs/output", np.array(2 ** RANK, np.int64)),
    ])


CASES = {"dim_bomb": dim_bomb}


def write(directory: Path = HERE) -> list[str]:
    for name, make in CASES.items():
        (directory / f"{name}.amber").write_bytes(make())
    return list(CASES)


if __name__ == "__main__":
    print(f"wrote {', '.join(write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE))}")
