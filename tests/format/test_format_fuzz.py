"""Property tests: random mutations of a valid file load identically or raise FormatError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amber.errors import FormatError
from amber.format import Container, read_container, write_container


def _valid_file() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.amber"
        write_container(
            path,
            {"meta": {"name": "fuzz", "sizes": [1, 2, 3]}, "flag": True},
            {
                "w": np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3),
                "b": np.array([1, -1], dtype="int64"),
                "m": np.array([True, False]),
                "s": np.array(2.5),
                "e": np.zeros((0,), dtype="int32"),
            },
        )
        return path.read_bytes()


VALID = _valid_file()
REFERENCE = read_container(VALID)


def same(a: Container, b: Container) -> bool:
    """True when two containers hold the same header and bit-identical tensors."""
    return (
        a.format_version == b.format_version
        and a.header == b.header
        and list(a.tensors) == list(b.tensors)
        and all(
            a.tensors[k].dtype == b.tensors[k].dtype
            and a.tensors[k].shape == b.tensors[k].shape
            and a.tensors[k].tobytes() == b.tensors[k].tobytes()
            for k in a.tensors
        )
    )


def check(data: bytes, verify_hashes: bool = True) -> None:
    """The property: ``data`` either loads like the valid file or raises FormatError."""
    try:
        loaded = read_container(data, verify_hashes=verify_hashes)
    except FormatError as exc:
        assert str(exc)
        return
    if verify_hashes:
        assert same(loaded, REFERENCE)
    else:
        assert loaded.header == REFERENCE.header
        assert list(loaded.tensors) == list(REFERENCE.tensors)


positions = st.integers(min_value=0, max_value=len(VALID) - 1)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(st.tuples(positions, st.integers(0, 255)), min_size=1, max_size=8))
def test_overwritten_bytes(edits: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for pos, value in edits:
        data[pos] = value
    check(bytes(data))
    check(bytes(data), verify_hashes=False)


@SETTINGS
@given(positions, st.binary(min_size=1, max_size=80))
def test_inserted_bytes(pos: int, blob: bytes) -> None:
    check(VALID[:pos] + blob + VALID[pos:])


@SETTINGS
@given(positions, st.integers(min_value=1, max_value=200))
def test_deleted_bytes(pos: int, count: int) -> None:
    check(VALID[:pos] + VALID[pos + count :])


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_magic(tail: bytes) -> None:
    check(VALID[:12] + tail)
    check(VALID[:64] + tail)


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(max_size=10).filter(lambda k: k != "tensors"), _json, max_size=5))
def test_any_json_header_roundtrips(tmp_path_factory: pytest.TempPathFactory, header: dict) -> None:
    path = tmp_path_factory.mktemp("h") / "h.amber"
    write_container(path, header, {"t": np.arange(3, dtype="int32")})
    assert read_container(path).header == header
