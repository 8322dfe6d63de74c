"""Generate the name corpus: programs whose entry point, input, output or weight is named
by each rule of docs/format.md H.10 (valid files, and one hostile file per rule and kind
of name), with correct lengths and digests so only the name is wrong.

Run ``python tests/format/names/generate.py`` from the repository root to (re)write the
``*.amber`` files and ``MANIFEST.json`` here; a test checks they match this script.
``MANIFEST.json`` lists each file with ``expect`` (``"ok"`` or ``"error"``), ``kind`` and
``name``, and for errors ``reason``: a lowercase substring of the message both amber
readers (Python and the C runtime) give.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MAGIC = b"\x89AMB\r\n\x1a\n"
F32_1 = {"dtype": "float32", "shape": [1]}
ONE = struct.pack("<f", 1.0)
TWO = struct.pack("<f", 2.0)

PLAIN_BAD = [  # (file stem, name, reason) refused for every kind of name
    ("empty", "", "is empty"),
    ("dot", ".", "'..' part"),
    ("dotdot", "..", "'..' part"),
    ("backslash", "a\\b", "backslash"),
    ("esc", "\x1b[2J\x1b[H", "control character"),
    ("newline", "x\n4 test vectors passed", "control character"),
    ("bel", "x\x07", "control character"),
    ("nul", "x\x00y", "control character"),
    ("del", "x\x7f", "control character"),
    ("c1", "x\u009b31m", "control character"),
    ("long", "n" * 4097, "longer than 4096 bytes"),
]
SLASH_BAD = [  # refused for plain names (entry points, ports), fine for a weight
    ("slash", "a/b", "holds a '/'"),
]
SEGMENT_BAD = [  # refused for every kind, weights included
    ("traversal", "../../x", None),
    ("absolute", "/etc/x", None),
    ("inner_dotdot", "a/../b", "'..' part"),
    ("double_slash", "a//b", None),
    ("trailing_slash", "a/", None),
]
GOOD = [("ascii", "output_0"), ("unicode", "größe"), ("spaces", "a b"),
        ("dotted", "layer.0.weight"), ("dots3", "...")]


def _assemble(doc: dict[str, Any], blobs: dict[str, bytes]) -> bytes:
    """A file of header ``doc`` plus ``tensors`` for ``blobs`` (float32[1] each)."""
    start, header = 0, b""
    for _ in range(4):  # the data starts after the header, whose offsets name it
        entries = [{"name": name, "dtype": "float32", "shape": [1], "offset": start + 64 * i,
                    "nbytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
                   for i, (name, blob) in enumerate(blobs.items())]
        header = json.dumps({"tensors": entries, **doc}, separators=(",", ":"),
                            ensure_ascii=False).encode()
        need = -(-(64 + len(header)) // 64) * 64
        if need == start:
            break
        start = need
    data = b"".join(blob + bytes(64 - len(blob)) for blob in blobs.values())
    body = header + bytes(start - 64 - len(header)) + data
    pre = struct.pack("<8sIIQQ32s", MAGIC, 1, 0, len(header), 64 + len(body),
                      hashlib.sha256(header).digest())
    return pre + body


def program(*, entry: str = "forward", inp: str = "x", out: str = "y",
            weight: str = "w") -> bytes:
    """``entry(inp) -> out`` computing ``inp + weight`` (weight = 1), with a test vector."""
    f = {"name": "forward", "params": [{"name": "x", **F32_1}],
         "nodes": [{"op": "weight", "inputs": [], "attrs": {"name": weight},
                    "outputs": [{"name": "w", **F32_1}]},
                   {"op": "add", "inputs": ["x", "w"], "attrs": {},
                    "outputs": [{"name": "s", **F32_1}]}],
         "results": ["s"]}
    sig = {"function": "forward", "inputs": [{"name": inp, **F32_1}],
           "outputs": [{"name": out, **F32_1}], "output_structure": out}
    doc = {"opset_version": 1,
           "program": {"functions": [f], "weights": [{"name": weight, "tensor": "weights/w",
                                                      **F32_1}]},
           "signatures": {entry: sig},
           "test_vectors": [{"entry": entry, "dims": {}, "inputs": {inp: "tv/x"},
                             "outputs": {out: "tv/y"},
                             "tolerance": {out: {"rtol": 0, "atol": 0}}}]}
    return _assemble(doc, {"weights/w": ONE, "tv/x": ONE, "tv/y": TWO})


KINDS = {"entry": "entry point", "input": "input", "output": "output", "weight": "weight"}


def cases() -> list[dict[str, Any]]:
    """Every case: file stem, kind, name, expect, reason, and the file's bytes."""
    out: list[dict[str, Any]] = []

    def add(stem: str, kind: str, name: str, reason: str | None) -> None:
        arg = {"entry": "entry", "input": "inp", "output": "out", "weight": "weight"}[kind]
        out.append({"file": f"{kind}_{stem}.amber", "kind": kind, "name": name,
                    "expect": "error" if reason is not None else "ok",
                    "reason": reason or "", "data": program(**{arg: name})})

    for kind in KINDS:
        for stem, name in GOOD:
            add(stem, kind, name, None)
        for stem, name, reason in PLAIN_BAD:
            add(stem, kind, name, reason)
        for stem, name, reason in SLASH_BAD:
            add(stem, kind, name, None if kind == "weight" else reason)
        for stem, name, reason in SEGMENT_BAD:
            plain = "holds a '/'"
            seg = reason or ("empty '/'-separated part" if "//" in name or name[0] == "/"
                             or name[-1] == "/" else "'..' part")
            add(stem, kind, name, seg if kind == "weight" else plain)
    return out


def write(directory: Path = HERE) -> list[str]:
    """Write every case and MANIFEST.json into ``directory``; returns the file names."""
    for old in directory.glob("*.amber"):
        old.unlink()
    manifest = []
    for c in cases():
        (directory / c["file"]).write_bytes(c["data"])
        manifest.append({k: c[k] for k in ("file", "kind", "name", "expect", "reason")})
    (directory / "MANIFEST.json").write_text(
        json.dumps({"format_version": 1, "cases": manifest}, indent=1) + "\n")
    return [m["file"] for m in manifest]


if __name__ == "__main__":
    names = write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"wrote {len(names)} files")
