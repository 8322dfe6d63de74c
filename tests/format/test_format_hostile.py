"""Hostile files: every malformed input raises FormatError with a reason, cheaply.

The crafted cases live in ``corpus/generate.py`` (checked in as ``corpus/*.amber`` with
``corpus/MANIFEST.json`` for other readers); this module checks them, plus exhaustive
truncation and byte flips of real files, allocation bounds and version handling.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
import tracemalloc
import types
from pathlib import Path

import numpy as np
import pytest

from amber.errors import AmberError, FormatError
from amber.format import FORMAT_VERSION, read_container, write_container
from amber.format.container import PREAMBLE_SIZE

CORPUS = Path(__file__).parent / "corpus"


def load_generator() -> types.ModuleType:
    """Import ``tests/format/corpus/generate.py`` (it is a script, not a package)."""
    name = "amber_format_corpus_generate"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, CORPUS / "generate.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


gen = load_generator()
CASES = gen.cases()


def expect_error(data: bytes | Path, **kwargs) -> FormatError:
    """Read ``data``; it must raise FormatError (never another type) with a message."""
    try:
        read_container(data, **kwargs)
    except FormatError as exc:
        assert str(exc), "FormatError without a reason"
        return exc
    except Exception as exc:  # pragma: no cover - the failure being tested for
        pytest.fail(f"raised {type(exc).__name__} instead of FormatError: {exc}")
    pytest.fail("malformed file was accepted")


@pytest.fixture(scope="module")
def real_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small file written by write_container with several tensors of every dtype."""
    path = tmp_path_factory.mktemp("real") / "real.amber"
    tensors = {
        "w": np.arange(12, dtype="float32").reshape(3, 4),
        "b": np.array([0.5, -1.0], dtype="float64"),
        "i": np.array([[1, 2]], dtype="int32"),
        "n": np.array(7, dtype="int64"),
        "m": np.array([True, False, True]),
        "z": np.zeros((0, 3), dtype="float32"),
    }
    write_container(path, {"program": {"ops": ["add", "mul"]}, "x": 1.5}, tensors)
    return path.read_bytes()


def boundaries(data: bytes) -> list[int]:
    """Every section boundary of a valid file: preamble fields, header, each blob."""
    _, _, _, hlen, flen, _ = struct.unpack_from("<8sIIQQ32s", data)
    doc = json.loads(data[PREAMBLE_SIZE : PREAMBLE_SIZE + hlen])
    points = {0, 1, 7, 8, 12, 16, 24, 32, 63, 64, 64 + hlen, -(-(64 + hlen) // 64) * 64}
    for e in doc["tensors"]:
        points |= {e["offset"], e["offset"] + e["nbytes"], e["offset"] + 1}
    points.discard(flen)
    return sorted(p for p in points if p < flen)


# ------------------------------------------------------------------ the corpus


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case(case) -> None:
    if case.expect == "ok":
        loaded = read_container(case.data)
        assert loaded.format_version == 1
        return
    exc = expect_error(case.data)
    assert case.reason in str(exc).lower(), str(exc)
    assert isinstance(exc, AmberError)


def test_corpus_files_match_generator() -> None:
    manifest = json.loads((CORPUS / "MANIFEST.json").read_text())
    assert manifest["format_version"] == 1
    assert [m["file"] for m in manifest["cases"]] == [f"{c.name}.amber" for c in CASES]
    for meta, case in zip(manifest["cases"], CASES):
        assert (meta["expect"], meta["reason"]) == (case.expect, case.reason)
        assert (CORPUS / meta["file"]).read_bytes() == case.data, (
            f"{meta['file']} is stale: run python tests/format/corpus/generate.py"
        )
    assert {p.name for p in CORPUS.glob("*.amber")} == {m["file"] for m in manifest["cases"]}


def test_corpus_files_through_mmap() -> None:
    for case in CASES:
        path = CORPUS / f"{case.name}.amber"
        if case.expect == "ok":
            read_container(path)
        else:
            assert case.reason in str(expect_error(path)).lower()


def test_corpus_error_cases_also_fail_without_hash_checks() -> None:
    for case in CASES:
        if case.expect == "error" and "sha-256" not in case.reason:
            assert case.reason in str(expect_error(case.data, verify_hashes=False)).lower()


def test_generator_writes_directory(tmp_path: Path) -> None:
    (tmp_path / "stale.amber").write_bytes(b"x")
    written = gen.write(tmp_path)
    assert len(list(tmp_path.glob("*.amber"))) == len(written)
    assert json.loads((tmp_path / "MANIFEST.json").read_text())["cases"]


# ------------------------------------------------------------------ truncation and flips


def test_truncated_at_every_section_boundary(real_file: bytes) -> None:
    points = boundaries(real_file)
    assert len(points) > 20
    for cut in points:
        exc = expect_error(real_file[:cut])
        assert "truncated" in str(exc) or "not an amber file" in str(exc), (cut, str(exc))


def test_truncated_at_every_byte(real_file: bytes) -> None:
    for cut in range(len(real_file)):
        expect_error(real_file[:cut])


def test_truncated_on_disk(real_file: bytes, tmp_path: Path) -> None:
    path = tmp_path / "t.amber"
    for cut in boundaries(real_file):
        path.write_bytes(real_file[:cut])
        expect_error(path)


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_single_byte_flip_is_detected(real_file: bytes, mask: int) -> None:
    """Every byte is covered by a field check, the header hash, padding rules or a tensor hash."""
    data = bytearray(real_file)
    for i in range(len(data)):
        data[i] ^= mask
        expect_error(bytes(data))
        data[i] ^= mask


def test_data_flips_without_hash_checks_change_only_data(real_file: bytes) -> None:
    """verify_hashes=False skips tensor hashes only: everything else is still checked."""
    reference = read_container(real_file)
    _, _, _, hlen, _, _ = struct.unpack_from("<8sIIQQ32s", real_file)
    doc = json.loads(real_file[PREAMBLE_SIZE : PREAMBLE_SIZE + hlen])
    payload = set()
    for e in doc["tensors"]:
        payload |= set(range(e["offset"], e["offset"] + e["nbytes"]))
    bool_bytes = {e["offset"] + k for e in doc["tensors"] if e["dtype"] == "bool" for k in range(3)}
    data = bytearray(real_file)
    for i in range(len(data)):
        data[i] ^= 0x40
        if i in payload and i not in bool_bytes:
            loaded = read_container(bytes(data), verify_hashes=False)
            assert loaded.header == reference.header
            assert list(loaded.tensors) == list(reference.tensors)
        else:
            expect_error(bytes(data), verify_hashes=False)
        data[i] ^= 0x40


# ------------------------------------------------------------------ versions


def test_newer_version_names_both_versions() -> None:
    data = gen.assemble(gen.header_bytes(gen.base_doc()), gen.BASE_DATA, version=FORMAT_VERSION + 1)
    message = str(expect_error(data))
    assert f"format version {FORMAT_VERSION + 1}" in message
    assert f"up to {FORMAT_VERSION}" in message
    assert "upgrade amber" in message


def test_newer_version_refused_even_if_rest_is_garbage() -> None:
    """Only magic and version are fixed across versions; the rest of a newer file is unknown."""
    data = gen.MAGIC + struct.pack("<I", 7) + b"\xff" * 10
    assert "newer" in str(expect_error(data))


def test_every_known_version_has_a_reader() -> None:
    from amber.format import container

    assert set(container._READERS) == set(range(1, FORMAT_VERSION + 1))


# ------------------------------------------------------------------ resource bounds


def _peak_allocation(data: bytes, **kwargs) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        try:
            read_container(data, **kwargs)
        except FormatError:
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_allocation_is_bounded_by_file_size() -> None:
    """No hostile file makes the reader allocate much more than its own size."""
    for case in CASES:
        peak = _peak_allocation(case.data)
        assert peak <= 64 * len(case.data) + 256 * 1024, (case.name, peak, len(case.data))


def test_absurd_dims_allocate_nothing_large() -> None:
    for shape, dtype in [([2**62], "bool"), ([2**31, 2**31], "int32"), ([2**40] * 3, "float64")]:
        nbytes = min(
            2**63, np.prod(shape, dtype=object) * {"bool": 1, "int32": 4, "float64": 8}[dtype]
        )
        doc = {
            "tensors": [gen.entry("huge", dtype, shape, gen.DATA_START, b"", nbytes=int(nbytes))]
        }
        data = gen.assemble(gen.header_bytes(doc), bytes(64))
        assert _peak_allocation(data) < 256 * 1024
        expect_error(data)


def test_huge_declared_header_length_allocates_nothing() -> None:
    for hlen in (2**31, 2**40, 2**63, 2**64 - 1):
        for limit in (2**26, 2**64):
            data = gen.assemble(b"{}", header_length=hlen)
            assert _peak_allocation(data, max_header_bytes=limit) < 64 * 1024
            expect_error(data, max_header_bytes=limit)


def test_many_tiny_json_objects_stay_bounded() -> None:
    """The densest JSON (empty objects) still costs a bounded multiple of its size."""
    body = b'{"tensors":[],"x":[' + b",".join([b"{}"] * 20000) + b"]}"
    data = gen.assemble(body)
    read_container(data)
    assert _peak_allocation(data) <= 64 * len(data) + 256 * 1024


# ------------------------------------------------------------------ no code execution


def test_loading_imports_and_runs_nothing(tmp_path: Path) -> None:
    header = {
        "__reduce__": ["os", "system", "echo pwned"],
        "py/object": "subprocess.Popen",
        "!!python/object/apply:os.system": ["touch pwned"],
        "module": "amber_should_never_be_imported",
    }
    path = tmp_path / "evil.amber"
    write_container(path, header, {"__class__": np.zeros(1)})
    before = set(sys.modules)
    loaded = read_container(path)
    assert set(sys.modules) == before
    assert loaded.header == header
    assert not (tmp_path / "pwned").exists()
