"""Round trips, determinism, atomic writes and writer-side validation of the container."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from amber.errors import FormatError
from amber.format import FORMAT_VERSION, MAGIC, Container, read_container, write_container
from amber.format.container import ALIGNMENT, DEFAULT_MAX_HEADER_BYTES, PREAMBLE_SIZE


def load_generator() -> types.ModuleType:
    """Import ``tests/format/corpus/generate.py`` (it is a script, not a package)."""
    name = "amber_format_corpus_generate"
    if name not in sys.modules:
        path = Path(__file__).parent / "corpus" / "generate.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


DTYPES = ["float32", "float64", "int32", "int64", "bool"]


def sample(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Deterministic test data of ``dtype`` and ``shape``."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


def roundtrip(tmp_path: Path, header: dict, tensors: dict) -> Container:
    """Write, read back from the path and from bytes, check both agree, return the first."""
    path = tmp_path / "model.amber"
    write_container(path, header, tensors)
    from_path = read_container(path)
    from_bytes = read_container(path.read_bytes())
    for loaded in (from_path, from_bytes):
        assert loaded.format_version == FORMAT_VERSION
        assert loaded.header == header
        assert list(loaded.tensors) == sorted(tensors)
        for name, expected in tensors.items():
            got = loaded.tensors[name]
            assert got.dtype == expected.dtype.newbyteorder("=")
            assert got.shape == expected.shape
            assert np.array_equal(got, expected, equal_nan=expected.dtype.kind == "f")
            assert not got.flags.writeable
    return from_path


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (1,), (7,), (3, 5), (2, 0, 4), (2, 3, 4, 5)])
def test_roundtrip_every_dtype_and_shape(
    tmp_path: Path, dtype: str, shape: tuple[int, ...]
) -> None:
    roundtrip(tmp_path, {"k": 1}, {"t": sample(dtype, shape)})


def test_roundtrip_extreme_values(tmp_path: Path) -> None:
    tensors = {
        "f32": np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4e38], dtype="float32"),
        "f64": np.array([np.nan, np.inf, -0.0, 5e-324, 1.7e308], dtype="float64"),
        "i32": np.array([-(2**31), 2**31 - 1, 0], dtype="int32"),
        "i64": np.array([-(2**63), 2**63 - 1, 0], dtype="int64"),
    }
    loaded = roundtrip(tmp_path, {}, tensors)
    for name, expected in tensors.items():
        assert loaded.tensors[name].tobytes() == expected.tobytes()


def test_roundtrip_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.amber"
    write_container(path, {}, {})
    data = path.read_bytes()
    loaded = read_container(path)
    assert loaded.header == {} and dict(loaded.tensors) == {}
    assert data[:8] == MAGIC and len(data) % ALIGNMENT == 0


def test_roundtrip_many_tensors(tmp_path: Path) -> None:
    tensors = {f"layer{i}.weight": sample(DTYPES[i % 5], (i % 4, 3), seed=i) for i in range(300)}
    roundtrip(tmp_path, {"layers": 300}, tensors)


def test_roundtrip_big_tensor(tmp_path: Path) -> None:
    big = sample("float32", (1024, 1024))  # 4 MiB
    loaded = roundtrip(tmp_path, {}, {"big": big, "small": np.arange(3, dtype="int32")})
    assert loaded.tensors["big"].ctypes.data % ALIGNMENT == 0  # in place in the mmap


def test_roundtrip_unicode_names_and_header(tmp_path: Path) -> None:
    tensors = {
        "poids/ç": np.ones(2, "float32"),
        "重み": np.zeros(3, "int64"),
        "🙂 emoji": np.array(True),
        "tab\tand\nnewline": np.arange(2.0),
        "a" * 4096: np.arange(1, dtype="int32"),
    }
    header = {"描述": "模型", "nested": {"ü": ["x", 1, 2.5, None, True, False]}, "esc": '"\\'}
    roundtrip(tmp_path, header, tensors)


def test_non_native_and_non_contiguous_inputs(tmp_path: Path) -> None:
    base = np.arange(24, dtype=">f8").reshape(4, 6)
    tensors = {"be": base, "t": base.T, "step": base[:, ::2], "i": np.arange(5, dtype=">i4")}
    roundtrip(tmp_path, {}, tensors)


def test_bool_storage_is_canonical(tmp_path: Path) -> None:
    odd = np.frombuffer(bytes([0, 1, 2, 255]), dtype=bool)
    path = tmp_path / "b.amber"
    write_container(path, {}, {"b": odd})
    loaded = read_container(path)
    assert loaded.tensors["b"].view(np.uint8).tolist() == [0, 1, 1, 1]


def test_path_read_is_zero_copy_readonly_mmap(tmp_path: Path) -> None:
    path = tmp_path / "m.amber"
    write_container(path, {}, {"w": np.arange(100, dtype="float32"), "v": np.arange(3.0)})
    loaded = read_container(path)
    for array in loaded.tensors.values():
        assert not array.flags.writeable
        assert array.ctypes.data % ALIGNMENT == 0
        with pytest.raises(ValueError):
            array[0] = 1
        with pytest.raises(ValueError):
            array.flags.writeable = True
        assert not array.flags.owndata
    with pytest.raises(TypeError):
        loaded.tensors["new"] = np.zeros(1)  # type: ignore[index]


def test_bytes_read_is_view(tmp_path: Path) -> None:
    path = tmp_path / "v.amber"
    write_container(path, {}, {"w": np.arange(16, dtype="int64")})
    data = bytearray(path.read_bytes())
    loaded = read_container(data)
    w = loaded.tensors["w"]
    assert not w.flags.writeable and not w.flags.owndata
    assert np.shares_memory(w, np.frombuffer(data, dtype=np.uint8))
    assert read_container(memoryview(bytes(data))).header == {}


def test_layout_matches_spec(tmp_path: Path) -> None:
    """Decode a written file by hand following docs/format.md."""
    path = tmp_path / "l.amber"
    tensors = {"b": np.arange(5, dtype="int32"), "a": np.ones((2, 2), "float64")}
    write_container(path, {"m": "x"}, tensors)
    data = path.read_bytes()
    magic, version, flags, hlen, flen, hhash = struct.unpack_from("<8sIIQQ32s", data)
    assert (magic, version, flags, flen) == (MAGIC, 1, 0, len(data))
    raw = data[PREAMBLE_SIZE : PREAMBLE_SIZE + hlen]
    assert hashlib.sha256(raw).digest() == hhash
    assert (
        raw
        == json.dumps(
            json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    )
    doc = json.loads(raw)
    cursor = -(-(PREAMBLE_SIZE + hlen) // 64) * 64
    assert [e["name"] for e in doc["tensors"]] == ["a", "b"]
    for e in doc["tensors"]:
        assert e["offset"] == cursor
        blob = data[e["offset"] : e["offset"] + e["nbytes"]]
        assert hashlib.sha256(blob).hexdigest() == e["sha256"]
        assert (
            blob == tensors[e["name"]].astype(tensors[e["name"]].dtype.newbyteorder("<")).tobytes()
        )
        cursor += -(-e["nbytes"] // 64) * 64
    assert cursor == len(data)
    assert doc["m"] == "x"


def test_deterministic(tmp_path: Path) -> None:
    t1 = {"z": np.arange(3.0), "a": np.ones(2, "int32"), "m": np.array(False)}
    t2 = {"m": np.array(False), "a": np.ones(2, "int32"), "z": np.arange(3.0)}
    h1 = {"b": 1, "a": {"y": [1, 2], "x": 0.1}}
    h2 = {"a": {"x": 0.1, "y": (1, 2)}, "b": 1}
    write_container(tmp_path / "1.amber", h1, t1)
    write_container(tmp_path / "2.amber", h2, t2)
    write_container(tmp_path / "3.amber", h1, t1)
    data = (tmp_path / "1.amber").read_bytes()
    assert data == (tmp_path / "2.amber").read_bytes() == (tmp_path / "3.amber").read_bytes()


def test_header_size_crossing_alignment(tmp_path: Path) -> None:
    """Header lengths around multiples of 64 lay out correctly (the offsets self-reference)."""
    for n in range(0, 200, 7):
        path = tmp_path / f"h{n}.amber"
        write_container(path, {"pad": "x" * n}, {"t": np.arange(n, dtype="int32")})
        assert read_container(path).header == {"pad": "x" * n}


def test_atomic_replace_and_no_temp_left(tmp_path: Path) -> None:
    path = tmp_path / "m.amber"
    write_container(path, {"v": 1}, {})
    old = read_container(path)  # keeps the old file mapped
    write_container(path, {"v": 2}, {"t": np.ones(3)})
    assert read_container(path).header == {"v": 2}
    assert old.header == {"v": 1}
    assert sorted(os.listdir(tmp_path)) == ["m.amber"]


def test_failed_write_leaves_target_untouched(tmp_path: Path) -> None:
    path = tmp_path / "m.amber"
    write_container(path, {"v": 1}, {})
    before = path.read_bytes()
    with pytest.raises(FormatError):
        write_container(path, {"v": float("nan")}, {})
    with pytest.raises(FormatError):
        write_container(path, {}, {"x": np.zeros(2, "uint16")})
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.amber"]


def test_interrupted_write_leaves_no_temporary(tmp_path: Path, monkeypatch) -> None:
    import amber.format.container as C

    path = tmp_path / "m.amber"
    real = os.fsync

    def interrupt(fd: int) -> None:  # the user presses Ctrl-C while data is flushed
        real(fd)
        raise KeyboardInterrupt

    monkeypatch.setattr(C.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_container(path, {}, {"t": np.ones(1000)})
    assert os.listdir(tmp_path) == []


_HOLD_TEMPORARY = """
import sys, time
from amber.format.container import _create_temporary
fd, tmp = _create_temporary(sys.argv[1], "m.amber")
import os; os.write(fd, b"x" * 4096)
print(tmp, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX advisory locks")
def test_save_removes_temporaries_of_killed_writers_only(tmp_path: Path) -> None:
    import signal
    import subprocess

    from amber.format.container import _create_temporary

    path = tmp_path / "m.amber"
    # a writer killed with SIGKILL (no Python clean-up can run) leaves its temporary
    p = subprocess.Popen([sys.executable, "-c", _HOLD_TEMPORARY, str(tmp_path)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    killed = p.stdout.readline().strip()
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert os.path.exists(killed)
    other = tmp_path / ".other.amber.0123456789abcdef.tmp"  # another target's: kept
    other.write_bytes(b"y")
    fd, live = _create_temporary(str(tmp_path), "m.amber")  # a save still writing: kept
    try:
        write_container(path, {"v": 1}, {})
        assert sorted(os.listdir(tmp_path)) == sorted(
            ["m.amber", other.name, os.path.basename(live)])
    finally:
        os.close(fd)
    write_container(path, {"v": 2}, {})  # the writer is done (closed): now stale
    assert sorted(os.listdir(tmp_path)) == sorted(["m.amber", other.name])


def test_written_file_permissions_follow_umask(tmp_path: Path) -> None:
    path = tmp_path / "p.amber"
    old = os.umask(0o022)
    try:
        write_container(path, {}, {})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("header", "tensors", "reason"),
    [
        ([], {}, "expected a dict"),
        ({"tensors": []}, {}, "reserved"),
        ({"x": float("nan")}, {}, "nan"),
        ({"x": [float("inf")]}, {}, "inf"),
        ({1: "x"}, {}, "keys must be str"),
        ({"x": {2: "x"}}, {}, "keys must be str"),
        ({"x": np.float32(1)}, {}, "numpy.float32"),
        ({"x": {1, 2}}, {}, "not json"),
        ({"x": b"bytes"}, {}, "not json"),
        ({"x": 2**63}, {}, "64-bit"),
        ({"x": "\ud800"}, {}, "unicode"),
        ({"\ud800": 1}, {}, "unicode"),
        ({"x": [[[]]] * 1}, {"t": [1, 2]}, "numpy.ndarray"),
        ({}, {"t": np.zeros(2, "uint16")}, "uint16"),
        ({}, {"t": np.zeros(2, "uint32")}, "uint32"),
        ({}, {"t": np.zeros(2, "complex64")}, "complex64"),
        ({}, {"t": np.zeros(2, object)}, "object"),
        ({}, {"": np.zeros(2)}, "empty"),
        ({}, {"a\x00b": np.zeros(2)}, "u+0000"),
        ({}, {"a" * 4097: np.zeros(2)}, "maximum"),
        ({}, {3: np.zeros(2)}, "must be str"),
        ({}, {"t": np.zeros((1,) * 33)}, "rank"),
        ({}, [("t", np.zeros(1))], "mapping"),
    ],
)
def test_writer_rejects_unrepresentable(tmp_path: Path, header, tensors, reason: str) -> None:
    with pytest.raises(FormatError) as info:
        write_container(tmp_path / "x.amber", header, tensors)
    assert reason in str(info.value).lower()
    assert not list(tmp_path.iterdir())


def test_writer_rejects_deep_header(tmp_path: Path) -> None:
    deep: list = []
    for _ in range(70):
        deep = [deep]
    with pytest.raises(FormatError, match="nested deeper"):
        write_container(tmp_path / "x.amber", {"d": deep}, {})
    ok: list = []
    for _ in range(62):  # top-level object is level 1, so 63 nested arrays fit
        ok = [ok]
    write_container(tmp_path / "y.amber", {"d": ok}, {})
    assert read_container(tmp_path / "y.amber").header == {"d": ok}


def test_writer_rejects_header_over_limit(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="exceeds the limit"):
        write_container(tmp_path / "x.amber", {"s": "x" * DEFAULT_MAX_HEADER_BYTES}, {})


def test_max_header_bytes_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "m.amber"
    write_container(path, {"s": "x" * 1000}, {})
    with pytest.raises(FormatError, match="exceeds the limit of 100 bytes"):
        read_container(path, max_header_bytes=100)
    assert read_container(path, max_header_bytes=2000).header["s"] == "x" * 1000


def test_missing_file_is_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_container(tmp_path / "absent.amber")


def test_empty_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "e.amber"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match="not an amber file"):
        read_container(path)


def test_header_whitespace_is_accepted(tmp_path: Path) -> None:
    """Readers accept any valid JSON layout, not only the canonical one a writer emits."""
    gen = load_generator()
    text = json.dumps(gen.base_doc(), indent=2).encode()
    text += b" " * (gen.DATA_START - 64 - len(text))
    loaded = read_container(gen.assemble(text, gen.BASE_DATA))
    assert loaded.header == {"user": {"note": "amber corpus"}}
    assert loaded.tensors["a"].tolist() == [[0.0, 1.0], [2.0, 3.0]]
