"""Generate the hostile-file corpus for the .amber container (format version 1).

Run ``python tests/format/corpus/generate.py`` from the repository root to (re)write
the ``*.amber`` files and ``MANIFEST.json`` in this directory. Every file is small and
built byte by byte, so the corpus is identical on every machine; a test checks that the
checked-in files match this script.

``MANIFEST.json`` lists each file with ``expect`` (``"ok"`` or ``"error"``) and, for
errors, ``reason``: a lowercase substring of the message amber's reader gives. Other
readers (the C runtime's tests, fuzzer seeds) reuse the files and the ``expect`` field.

The helpers (:func:`assemble`, :func:`entry`, :func:`base_doc`) are also used by the
tests to craft files.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent

MAGIC = b"\x89AMB\r\n\x1a\n"
PREAMBLE = struct.Struct("<8sIIQQ32s")
DATA_START = 1024
"""Crafted files pad their JSON header with spaces so that data always starts here."""


@dataclass(frozen=True)
class Case:
    """One corpus file: its name, bytes, expected outcome and error-reason substring."""

    name: str
    data: bytes
    expect: str
    reason: str = ""


def sha(data: bytes) -> str:
    """Lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def align(n: int) -> int:
    """Round up to a multiple of 64."""
    return -(-n // 64) * 64


def assemble(
    header: bytes,
    data: bytes = b"",
    *,
    version: int = 1,
    flags: int = 0,
    header_length: int | None = None,
    file_length: int | None = None,
    header_hash: bytes | None = None,
    pad_byte: int = 0,
) -> bytes:
    """Build a file: preamble, ``header`` bytes, padding to 64, then ``data`` verbatim.

    Every preamble field defaults to the value a correct writer would store; override
    one to craft a specific defect.
    """
    body = header + bytes([pad_byte]) * (align(64 + len(header)) - 64 - len(header)) + data
    total = 64 + len(body)
    preamble = PREAMBLE.pack(
        MAGIC,
        version,
        flags,
        len(header) if header_length is None else header_length,
        total if file_length is None else file_length,
        hashlib.sha256(header).digest() if header_hash is None else header_hash,
    )
    return preamble + body


def header_bytes(doc: Any, *, pad_to_data_start: bool = True) -> bytes:
    """Canonical JSON of ``doc``, space-padded so the data starts at :data:`DATA_START`."""
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if pad_to_data_start:
        room = DATA_START - 64
        if len(raw) > room:
            raise ValueError("crafted header too large")
        raw += b" " * (room - len(raw))
    return raw


def entry(
    name: str, dtype: str, shape: list[Any], offset: int, payload: bytes, **override: Any
) -> dict[str, Any]:
    """A tensor index entry describing ``payload`` at ``offset`` (fields overridable)."""
    result: dict[str, Any] = {
        "name": name,
        "dtype": dtype,
        "shape": shape,
        "offset": offset,
        "nbytes": len(payload),
        "sha256": sha(payload),
    }
    result.update(override)
    return result


A = np.arange(4, dtype="<f4").tobytes()  # float32 [2, 2]
B = np.array([1, -2, 3], dtype="<i8").tobytes()  # int64 [3]


def pad(blob: bytes) -> bytes:
    """``blob`` zero-padded to a multiple of 64 bytes."""
    return blob + bytes(align(len(blob)) - len(blob))


def base_doc(**members: Any) -> dict[str, Any]:
    """A valid header with tensors ``a`` (offset 1024) and ``b`` (offset 1088)."""
    doc: dict[str, Any] = {
        "tensors": [
            entry("a", "float32", [2, 2], DATA_START, A),
            entry("b", "int64", [3], DATA_START + 64, B),
        ],
        "user": {"note": "amber corpus"},
    }
    doc.update(members)
    return doc


BASE_DATA = pad(A) + pad(B)


def base() -> bytes:
    """The valid crafted file every structural mutation starts from."""
    return assemble(header_bytes(base_doc()), BASE_DATA)


def with_entries(*entries: dict[str, Any], data: bytes = BASE_DATA) -> bytes:
    """A file whose tensor index is ``entries`` over ``data`` (hashes recomputed)."""
    return assemble(header_bytes({"tensors": list(entries)}), data)


def raw_header(text: bytes) -> bytes:
    """A file whose header is exactly ``text`` (hash correct), with no tensor data."""
    return assemble(text)


def cases() -> list[Case]:
    """Every corpus case, valid files first."""
    out: list[Case] = []

    def ok(name: str, data: bytes) -> None:
        out.append(Case(name, data, "ok"))

    def bad(name: str, data: bytes, reason: str) -> None:
        out.append(Case(name, data, "error", reason))

    good = base()
    empty_doc = header_bytes({"tensors": []}, pad_to_data_start=False)
    ok("valid_empty", assemble(empty_doc))
    ok("valid_two_tensors", good)
    all_dtypes = [
        ("f32", "float32", [2], np.array([1.5, -2], "<f4").tobytes()),
        ("f64", "float64", [], np.array(3.25, "<f8").tobytes()),
        ("i32", "int32", [1, 2], np.array([[7, -8]], "<i4").tobytes()),
        ("i64", "int64", [0, 5], b""),
        ("t", "bool", [3], bytes([1, 0, 1])),
    ]
    offset, blobs, entries = DATA_START, b"", []
    for name, dtype, shape, payload in all_dtypes:
        entries.append(entry(name, dtype, shape, offset, payload))
        blobs += pad(payload)
        offset += align(len(payload))
    ok("valid_all_dtypes", with_entries(*entries, data=blobs))
    pretty = json.dumps(base_doc(), indent=2).encode()
    ok(
        "valid_pretty_json_header",
        assemble(pretty + b" " * (DATA_START - 64 - len(pretty)), BASE_DATA),
    )
    ok("valid_escaped_surrogate_pair", raw_header(b'{"tensors":[],"x":"\\ud83d\\ude42 \\u00e9"}'))

    # Preamble.
    bad("empty_file", b"", "not an amber file")
    bad("not_amber_text", b"hello, world\n" * 8, "not an amber file")
    bad("bad_magic", b"\x89PNG\r\n\x1a\n" + good[8:], "not an amber file")
    bad("magic_crlf_translated", good[:4] + b"\n" + good[6:], "not an amber file")
    bad("truncated_in_magic", good[:5], "truncated")
    bad("truncated_in_version", good[:10], "truncated")
    bad("truncated_in_preamble", good[:40], "truncated")
    bad("version_newer", assemble(header_bytes(base_doc()), BASE_DATA, version=2), "newer")
    bad("version_huge", assemble(header_bytes(base_doc()), BASE_DATA, version=2**32 - 1), "newer")
    bad("version_zero", assemble(header_bytes(base_doc()), BASE_DATA, version=0), "invalid format")
    bad("flags_set", assemble(header_bytes(base_doc()), BASE_DATA, flags=1), "flags")
    bad(
        "file_length_short",
        assemble(header_bytes(base_doc()), BASE_DATA, file_length=1100),
        "trailing",
    )
    bad(
        "file_length_long",
        assemble(header_bytes(base_doc()), BASE_DATA, file_length=2**64 - 1),
        "truncated",
    )
    bad(
        "header_length_huge",
        assemble(header_bytes(base_doc()), BASE_DATA, header_length=2**64 - 1),
        "exceeds the limit",
    )
    bad(
        "header_length_past_end",
        assemble(header_bytes(base_doc()), BASE_DATA, header_length=5000),
        "past the end",
    )
    bad(
        "header_length_short",
        assemble(header_bytes(base_doc()), BASE_DATA, header_length=100),
        "sha-256 mismatch",
    )
    bad(
        "header_hash_wrong",
        assemble(header_bytes(base_doc()), BASE_DATA, header_hash=bytes(32)),
        "sha-256 mismatch",
    )

    # Truncation at each section boundary and inside each section.
    bad("truncated_after_preamble", good[:64], "truncated")
    bad("truncated_in_header", good[:300], "truncated")
    bad("truncated_after_header", good[:DATA_START], "truncated")
    bad("truncated_in_tensor", good[: DATA_START + 8], "truncated")
    bad("truncated_in_tensor_padding", good[: DATA_START + 32], "truncated")
    bad("truncated_after_first_tensor", good[: DATA_START + 64], "truncated")
    bad("truncated_last_byte", good[:-1], "truncated")
    bad("trailing_garbage", good + b"\x00", "trailing")
    bad("trailing_block", good + bytes(64), "trailing")

    # Flipped bytes.
    flipped_header = bytearray(good)
    flipped_header[70] ^= 0x20
    bad("flipped_header_byte", bytes(flipped_header), "sha-256 mismatch")
    flipped_data = bytearray(good)
    flipped_data[DATA_START + 1] ^= 0x01
    bad("flipped_tensor_byte", bytes(flipped_data), "sha-256 mismatch")
    bad(
        "nonzero_header_padding",
        assemble(header_bytes(base_doc())[:-40], BASE_DATA, pad_byte=0x20),
        "padding",
    )
    bad(
        "nonzero_tensor_padding",
        with_entries(*base_doc()["tensors"], data=A + b"\x01" + bytes(47) + pad(B)),
        "padding",
    )

    # Header encoding and JSON.
    bad(
        "header_bom",
        raw_header(b"\xef\xbb\xbf" + header_bytes({"tensors": []}, pad_to_data_start=False)),
        "byte order mark",
    )
    bad("header_invalid_utf8", raw_header(b'{"tensors":[],"x":"\xff\xfe"}'), "utf-8")
    bad("header_overlong_utf8", raw_header(b'{"tensors":[],"x":"\xc0\xaf"}'), "utf-8")
    bad("header_surrogate_utf8", raw_header(b'{"tensors":[],"x":"\xed\xa0\x80"}'), "utf-8")
    bad("header_escaped_lone_surrogate", raw_header(b'{"tensors":[],"x":"\\ud800"}'), "surrogate")
    bad("header_escaped_lone_surrogate_key", raw_header(b'{"tensors":[],"\\udc00":1}'), "surrogate")
    bad("header_raw_control_char", raw_header(b'{"tensors":[],"x":"a\nb"}'), "not valid json")
    bad("header_not_json", raw_header(b"tensors = []"), "not valid json")
    bad("header_truncated_json", raw_header(b'{"tensors":['), "not valid json")
    bad("header_two_values", raw_header(b'{"tensors":[]} {}'), "not valid json")
    bad("header_empty", raw_header(b""), "not valid json")
    bad("header_nan", raw_header(b'{"tensors":[],"x":NaN}'), "not valid json")
    bad("header_infinity", raw_header(b'{"tensors":[],"x":-Infinity}'), "not valid json")
    bad("header_float_overflow", raw_header(b'{"tensors":[],"x":1e400}'), "overflows a double")
    bad("header_int_overflow", raw_header(b'{"tensors":[],"x":9223372036854775808}'), "64-bit")
    bad("header_int_huge", raw_header(b'{"tensors":[],"x":' + b"9" * 5000 + b"}"), "64-bit")
    bad("header_array", raw_header(b"[]"), "must be an object")
    bad("header_string", raw_header(b'"tensors"'), "must be an object")
    bad("header_null", raw_header(b"null"), "must be an object")
    bad(
        "header_depth_65",
        raw_header(b'{"tensors":[],"x":' + b"[" * 64 + b"]" * 64 + b"}"),
        "nested deeper",
    )
    bad(
        "header_depth_10000",
        raw_header(b'{"tensors":[],"x":' + b"[" * 10000 + b"]" * 10000 + b"}"),
        "nested deeper",
    )
    bad("header_duplicate_key", raw_header(b'{"tensors":[],"x":1,"x":2}'), "duplicate key")
    bad("header_duplicate_tensors_key", raw_header(b'{"tensors":[],"tensors":[]}'), "duplicate key")
    bad(
        "header_duplicate_nested_key",
        raw_header(b'{"tensors":[],"x":[{"k":1,"k":1}]}'),
        "duplicate key",
    )
    bad("header_no_index", raw_header(b'{"x":1}'), "tensor index")
    bad("header_index_object", raw_header(b'{"tensors":{}}'), "must be an array")

    # Tensor index entries.
    ta, tb = base_doc()["tensors"]
    bad("entry_not_object", with_entries(ta, 5), "must be a json object")  # type: ignore[arg-type]
    bad(
        "entry_missing_sha256",
        with_entries(ta, {k: v for k, v in tb.items() if k != "sha256"}),
        "missing",
    )
    bad("entry_unknown_member", with_entries(ta, dict(tb, extra=1)), "unknown member")
    bad("entry_name_not_string", with_entries(ta, dict(tb, name=7)), "name must be a string")
    bad("entry_name_empty", with_entries(ta, dict(tb, name="")), "empty")
    bad("entry_name_nul", with_entries(ta, dict(tb, name="b\u0000")), "u+0000")
    bad("duplicate_tensor_name", with_entries(ta, dict(tb, name="a")), "duplicate tensor name")
    bad("unknown_dtype", with_entries(ta, dict(tb, dtype="uint16")), "unknown dtype")
    bad("dtype_not_string", with_entries(ta, dict(tb, dtype=8)), "unknown dtype")
    bad("shape_not_array", with_entries(ta, dict(tb, shape=3)), "shape must be an array")
    bad("dim_negative", with_entries(ta, dict(tb, shape=[-3])), "negative")
    bad("dim_fraction", with_entries(ta, dict(tb, shape=[3.0])), "not an integer")
    bad("dim_bool", with_entries(ta, dict(tb, shape=[True, 3])), "not an integer")
    bad("dim_string", with_entries(ta, dict(tb, shape=["3"])), "not an integer")
    bad("rank_too_large", with_entries(ta, dict(tb, shape=[1] * 33)), "maximum rank")
    bad("dims_2pow62_squared", with_entries(ta, dict(tb, shape=[2**62, 2**62])), "overflows")
    bad(
        "dims_2pow61_float32",
        with_entries(ta, dict(tb, dtype="float32", shape=[2**61])),
        "overflows",
    )
    bad(
        "dims_2pow62_bool",
        with_entries(ta, dict(tb, dtype="bool", shape=[2**62], nbytes=2**62)),
        "cannot fit",
    )
    bad(
        "dims_huge_with_zero",
        with_entries(ta, dict(tb, shape=[0, 2**62, 2**62], nbytes=0)),
        "overflows",
    )
    bad("nbytes_wrong", with_entries(ta, dict(tb, nbytes=16)), "needs")
    bad("nbytes_negative", with_entries(ta, dict(tb, nbytes=-24)), "non-negative")
    bad("offset_negative", with_entries(ta, dict(tb, offset=-64)), "non-negative")
    bad("offset_fraction", with_entries(ta, dict(tb, offset=1088.0)), "non-negative integer")
    bad("offset_unaligned", with_entries(ta, dict(tb, offset=1090)), "not a multiple of 64")
    bad("offset_outside_file", with_entries(ta, dict(tb, offset=2**40)), "outside the file")
    bad("offset_end_outside_file", with_entries(ta, dict(tb, offset=1152)), "outside the file")
    bad("offset_in_header", with_entries(dict(ta, offset=0), tb), "overlaps the preamble or header")
    bad("offset_overlap", with_entries(ta, dict(tb, offset=DATA_START)), "overlaps tensor")
    bad(
        "offset_gap",
        with_entries(
            dict(ta, offset=DATA_START + 64),
            dict(tb, offset=DATA_START + 128),
            data=bytes(64) + BASE_DATA,
        ),
        "gap",
    )
    bad("sha256_wrong", with_entries(ta, dict(tb, sha256=sha(b"x"))), "sha-256 mismatch")
    bad(
        "sha256_uppercase",
        with_entries(ta, dict(tb, sha256=tb["sha256"].upper())),
        "sha256 must be",
    )
    bad("sha256_short", with_entries(ta, dict(tb, sha256="00")), "sha256 must be")
    two = bytes([1, 2])
    bad(
        "bool_value_2",
        with_entries(entry("t", "bool", [2], DATA_START, two), data=pad(two)),
        "bool data",
    )
    return out


def write(directory: Path = HERE) -> list[Case]:
    """Write every case and MANIFEST.json into ``directory``; remove stale ``.amber`` files."""
    all_cases = cases()
    names = {c.name for c in all_cases}
    if len(names) != len(all_cases):
        raise RuntimeError("duplicate corpus case names")
    for stale in directory.glob("*.amber"):
        if stale.stem not in names:
            stale.unlink()
    for case in all_cases:
        (directory / f"{case.name}.amber").write_bytes(case.data)
    manifest = {
        "format_version": 1,
        "cases": [
            {"file": f"{c.name}.amber", "expect": c.expect, "reason": c.reason} for c in all_cases
        ],
    }
    (directory / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return all_cases


if __name__ == "__main__":
    written = write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"wrote {len(written)} corpus files")
