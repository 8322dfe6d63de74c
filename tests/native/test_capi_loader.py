"""The C loader (amber_model_open_file / _memory) against the container corpus and the
golden files: it accepts exactly the valid files, with the same tensors the Python reader
returns, and rejects every hostile file with the reason the corpus names."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import pytest

from amber.format.container import read_container
from helpers.capi import SKIP_TENSOR_HASHES, Model, Tensor, load

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "format" / "corpus"
GOLDEN = ROOT / "tests" / "format" / "golden"


def cases() -> list[dict]:
    return json.loads((CORPUS / "MANIFEST.json").read_text())["cases"]


@pytest.fixture(scope="module")
def lib(runtime_build: Path) -> ctypes.CDLL:
    return load(runtime_build)


def assert_same_tensors(got: dict[str, np.ndarray], path: Path) -> None:
    want = read_container(path).tensors
    assert sorted(got) == sorted(want)
    for name, w in want.items():
        g = got[name]
        assert g.dtype == w.dtype and g.shape == w.shape, name
        assert g.tobytes() == np.ascontiguousarray(w).tobytes(), name


@pytest.mark.parametrize("case", cases(), ids=lambda c: c["file"])
@pytest.mark.parametrize("source", ["file", "memory"])
def test_corpus(lib: ctypes.CDLL, case: dict, source: str) -> None:
    path = CORPUS / case["file"]
    kw = {"path": path} if source == "file" else {"data": path.read_bytes()}
    with Model(lib, **kw) as m:
        if case["expect"] == "ok":
            assert m.status == 0, m.error
            assert_same_tensors(m.tensors(), path)
        else:
            assert m.status != 0, f"{case['file']} was accepted"
            assert case["reason"] in m.error.lower(), m.error


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.amber")), ids=lambda p: p.name)
def test_golden_files_open(lib: ctypes.CDLL, path: Path) -> None:
    with Model(lib, path=path) as m:
        assert m.status == 0, m.error
        assert_same_tensors(m.tensors(), path)
        version = ctypes.c_uint32()
        assert lib.amber_model_format_version(m.handle, ctypes.byref(version)) == 0
        assert version.value == read_container(path).format_version
        text, n = ctypes.c_char_p(), ctypes.c_size_t()
        assert lib.amber_model_header(m.handle, ctypes.byref(text), ctypes.byref(n)) == 0
        header = json.loads(ctypes.string_at(text, n.value))
        header.pop("tensors")
        assert header == read_container(path).header


def test_find_tensor_and_errors(lib: ctypes.CDLL) -> None:
    path = CORPUS / "valid_two_tensors.amber"
    with Model(lib, path=path) as m:
        t = Tensor()
        for name in read_container(path).tensors:
            assert lib.amber_model_find_tensor(m.handle, name.encode(), ctypes.byref(t)) == 0
        assert lib.amber_status_name(
            lib.amber_model_find_tensor(m.handle, b"no such tensor", ctypes.byref(t))
        ) == b"AMBER_ERR_NOT_FOUND"
        assert lib.amber_model_tensor(m.handle, 10**6, None, ctypes.byref(t)) != 0


def test_skip_hashes_still_checks_structure(lib: ctypes.CDLL) -> None:
    with Model(lib, path=CORPUS / "flipped_tensor_byte.amber", flags=SKIP_TENSOR_HASHES) as m:
        assert m.status == 0, m.error
    with Model(lib, path=CORPUS / "nonzero_tensor_padding.amber", flags=SKIP_TENSOR_HASHES) as m:
        assert m.status != 0 and "padding" in m.error


def test_header_limit_option(lib: ctypes.CDLL) -> None:
    with Model(lib, path=CORPUS / "valid_two_tensors.amber", max_header_bytes=16) as m:
        assert lib.amber_status_name(m.status) == b"AMBER_ERR_LIMIT"
        assert "exceeds the limit" in m.error


def test_missing_file_is_an_io_error(lib: ctypes.CDLL, tmp_path: Path) -> None:
    with Model(lib, path=tmp_path / "absent.amber") as m:
        assert lib.amber_status_name(m.status) == b"AMBER_ERR_IO"
        assert "absent.amber" in m.error


def test_mutated_files_never_crash(lib: ctypes.CDLL) -> None:
    """Truncations and byte flips of valid files: each opens or fails cleanly."""
    rng = np.random.default_rng(7)
    sources = [p.read_bytes() for p in sorted(CORPUS.glob("valid_*.amber"))]
    for i in range(400):
        data = bytearray(sources[i % len(sources)])
        if i % 3 == 0:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            for _ in range(int(rng.integers(1, 4))):
                data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
        with Model(lib, data=bytes(data)) as m:
            if m.status != 0:
                assert m.error
