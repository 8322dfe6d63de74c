"""Golden container files: written once per released format version, read forever.

A golden file is never rewritten or deleted. If a change to amber makes one of these
tests fail, the change breaks the compatibility promise of docs/format.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from amber.format import read_container, write_container

GOLDEN = Path(__file__).parent / "golden"


def expected_v1() -> tuple[dict, dict[str, np.ndarray]]:
    """The contents stored in ``golden/container_v1.amber`` (format version 1)."""
    header = {
        "producer": {"name": "amber", "version": "0.1.0"},
        "numbers": [0, -1, 9223372036854775807, -9223372036854775808, 0.1, -2.5e-300, 1e300],
        "flags": [True, False, None],
        "text": 'ascii, \u00e9, \u6a21\u578b, \U0001f642, "quotes" \\ \n\t',
        "empty": {"list": [], "object": {}, "string": ""},
    }
    tensors = {
        "f32": np.array([[1.0, -2.5, 3.25], [np.inf, -0.0, 1e-40]], dtype="float32"),
        "f64": np.array([np.pi, -np.e, 5e-324, 1.7976931348623157e308], dtype="float64"),
        "i32": np.array([-(2**31), -1, 0, 1, 2**31 - 1], dtype="int32"),
        "i64": np.array([[-(2**63)], [2**63 - 1]], dtype="int64"),
        "bool": np.array([[True, False], [False, True]]),
        "scalar": np.array(42.0, dtype="float64"),
        "empty": np.zeros((3, 0), dtype="int32"),
        "nan": np.array([np.nan], dtype="float32"),
        "\u6743\u91cd/\u00e9": np.arange(70, dtype="int64"),
    }
    return header, tensors


def test_golden_v1_reads_with_expected_contents() -> None:
    header, tensors = expected_v1()
    for source in (GOLDEN / "container_v1.amber", (GOLDEN / "container_v1.amber").read_bytes()):
        loaded = read_container(source)
        assert loaded.format_version == 1
        assert loaded.header == header
        assert sorted(loaded.tensors) == sorted(tensors)
        for name, want in tensors.items():
            got = loaded.tensors[name]
            assert got.dtype == want.dtype and got.shape == want.shape, name
            assert got.tobytes() == want.tobytes(), name


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.amber")), ids=lambda p: p.name)
def test_every_golden_file_loads(path: Path) -> None:
    assert read_container(path).format_version >= 1


def test_writer_reproduces_golden_v1_bytes(tmp_path: Path) -> None:
    """The format-1 writer is canonical: it still emits the golden bytes exactly.

    This checks the writer, not the promise: once amber writes a newer format version,
    this test is retargeted to that version's golden file, while the read tests above
    stay unchanged forever.
    """
    header, tensors = expected_v1()
    write_container(tmp_path / "again.amber", header, tensors)
    assert (tmp_path / "again.amber").read_bytes() == (GOLDEN / "container_v1.amber").read_bytes()
