"""Valid ``.amber`` files whose header is large in one direction: many functions, nodes,
weights, entry points, ports, symbols or test vectors. Loading must take time roughly
linear in the header size (docs/security.md, "Large headers"), so each shape scales one
count that a loader could be tempted to search linearly.

``python tests/helpers/big_headers.py OUT_DIR [N]`` writes one file per shape (the fuzz
seeds of large inputs, docs/security.md).
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAGIC = b"\x89AMB\r\n\x1a\n"

F32_1 = {"dtype": "float32", "shape": [1]}
ONE = struct.pack("<f", 1.0)


def _assemble(doc: dict[str, Any], blobs: dict[str, bytes]) -> bytes:
    """A file of header ``doc`` (its ``tensors`` filled in from ``blobs``, name ->
    float32[1] bytes) with correct lengths and digests."""
    entries, data, offset = [], b"", 0
    for name, blob in blobs.items():
        entries.append({"name": name, "dtype": "float32", "shape": [1], "offset": offset,
                        "nbytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()})
        data += blob + bytes(64 - len(blob))
        offset += 64
    doc = {"tensors": entries, **doc}
    header = json.dumps(doc, separators=(",", ":")).encode()
    start = -(-(64 + len(header)) // 64) * 64
    for e in entries:  # offsets are from the start of the file
        e["offset"] += start
    # the offsets are fixed-width after the first pass only if their digit count stays;
    # re-encode until stable (at most twice)
    for _ in range(3):
        header = json.dumps(doc, separators=(",", ":")).encode()
        new_start = -(-(64 + len(header)) // 64) * 64
        if new_start == start:
            break
        for e in entries:
            e["offset"] += new_start - start
        start = new_start
    body = header + bytes(start - 64 - len(header)) + data
    pre = struct.pack("<8sIIQQ32s", MAGIC, 1, 0, len(header), 64 + len(body),
                      hashlib.sha256(header).digest())
    return pre + body


def _program(funcs: list[dict[str, Any]], sigs: dict[str, Any], *, weights: Any = (),
             vectors: Any = (), opset: int = 1) -> dict[str, Any]:
    doc: dict[str, Any] = {"opset_version": opset,
                           "program": {"functions": funcs, "weights": list(weights)},
                           "signatures": sigs}
    if vectors:
        doc["test_vectors"] = list(vectors)
    return doc


def _sig(func: str, ins: list[str], outs: list[str], t: dict[str, Any] = F32_1
         ) -> dict[str, Any]:
    return {"function": func, "inputs": [{"name": n, **t} for n in ins],
            "outputs": [{"name": n, **t} for n in outs], "output_structure":
            {"tuple": outs} if len(outs) != 1 else outs[0]}


def _identity(name: str = "forward") -> dict[str, Any]:
    return {"name": name, "params": [{"name": "x", **F32_1}], "nodes": [], "results": ["x"]}


def many_functions(n: int) -> bytes:
    """``n`` functions, each calling the next (call names looked up by name)."""
    funcs = []
    for i in range(n):
        nodes = [] if i + 1 == n else [{"op": "call", "inputs": ["x"],
                                         "attrs": {"callee": f"f{i + 1}"},
                                         "outputs": [{"name": "y", **F32_1}]}]
        funcs.append({"name": f"f{i}", "params": [{"name": "x", **F32_1}], "nodes": nodes,
                      "results": ["y" if nodes else "x"]})
    return _assemble(_program(funcs, {"forward": _sig("f0", ["x"], ["y"])}), {})


def many_nodes(n: int) -> bytes:
    """One function of ``n`` nodes: a chain of ``neg`` (a fusable elementwise chain)."""
    nodes = [{"op": "neg", "inputs": [f"v{i}" if i else "x"], "attrs": {},
              "outputs": [{"name": f"v{i + 1}", **F32_1}]} for i in range(n)]
    f = {"name": "forward", "params": [{"name": "x", **F32_1}], "nodes": nodes,
         "results": [f"v{n}"]}
    return _assemble(_program([f], {"forward": _sig("forward", ["x"], ["y"])}), {})


def many_weights(n: int) -> bytes:
    """``n`` weights sharing one tensor, each read by a ``weight`` node and summed."""
    weights = [{"name": f"layer{i}.w", "tensor": "weights/w", **F32_1} for i in range(n)]
    nodes: list[dict[str, Any]] = []
    acc = "x"
    for i in range(n):
        nodes.append({"op": "weight", "inputs": [], "attrs": {"name": f"layer{i}.w"},
                      "outputs": [{"name": f"w{i}", **F32_1}]})
        nodes.append({"op": "add", "inputs": [acc, f"w{i}"], "attrs": {},
                      "outputs": [{"name": f"s{i}", **F32_1}]})
        acc = f"s{i}"
    f = {"name": "forward", "params": [{"name": "x", **F32_1}], "nodes": nodes,
         "results": [acc]}
    return _assemble(_program([f], {"forward": _sig("forward", ["x"], ["y"])},
                              weights=weights), {"weights/w": ONE})


def many_entries(n: int) -> bytes:
    """``n`` entry points of one function, and a test vector of the last one."""
    sigs = {f"e{i}": _sig("forward", ["x"], ["y"]) for i in range(n)}
    vec = {"entry": f"e{n - 1}", "dims": {}, "inputs": {"x": "v/x"},
           "outputs": {"y": "v/x"}, "tolerance": {"y": {"rtol": 0, "atol": 0}}}
    return _assemble(_program([_identity()], sigs, vectors=[vec]), {"v/x": ONE})


def many_ports(n: int) -> bytes:
    """One entry point of ``n`` inputs and ``n`` outputs (each input returned), and a
    test vector giving every one."""
    params = [{"name": f"x{i}", **F32_1} for i in range(n)]
    f = {"name": "forward", "params": params, "nodes": [],
         "results": [f"x{i}" for i in range(n)]}
    sig = _sig("forward", [f"in{i}" for i in range(n)], [f"out{i}" for i in range(n)])
    vec = {"entry": "forward", "dims": {}, "inputs": {f"in{i}": "v" for i in range(n)},
           "outputs": {f"out{i}": "v" for i in range(n)},
           "tolerance": {f"out{i}": {"rtol": 0, "atol": 0} for i in range(n)}}
    return _assemble(_program([f], {"forward": sig}, vectors=[vec]), {"v": ONE})


def many_symbols(n: int) -> bytes:
    """One function of ``n`` parameters, each of its own symbolic dim."""
    params = [{"name": f"x{i}", "dtype": "float32", "shape": [f"n{i}"]} for i in range(n)]
    f = {"name": "forward", "params": params, "nodes": [], "results": ["x0"]}
    sig = {"function": "forward", "inputs": params,
           "outputs": [{"name": "y", "dtype": "float32", "shape": ["n0"]}],
           "output_structure": "y"}
    return _assemble(_program([f], {"forward": sig}), {})


def many_vectors(n: int) -> bytes:
    """``n`` test vectors of one entry point, sharing one tensor."""
    vec = {"entry": "forward", "dims": {}, "inputs": {"x": "v"}, "outputs": {"y": "v"},
           "tolerance": {"y": {"rtol": 0, "atol": 0}}}
    return _assemble(_program([_identity()], {"forward": _sig("forward", ["x"], ["y"])},
                              vectors=[vec] * n), {"v": ONE})


SHAPES: dict[str, Callable[[int], bytes]] = {
    "functions": many_functions, "nodes": many_nodes, "weights": many_weights,
    "entries": many_entries, "ports": many_ports, "symbols": many_symbols,
    "vectors": many_vectors,
}


def sized(shape: str, header_bytes: int) -> bytes:
    """The file of ``shape`` whose header is about ``header_bytes`` long."""
    make = SHAPES[shape]
    per = max(1, len(make(1000)) // 1000)
    return make(max(1, header_bytes // per))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20
    for name in SHAPES:
        (out / f"big_{name}.amber").write_bytes(sized(name, size))
