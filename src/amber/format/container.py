"""The ``.amber`` container: preamble, JSON header, 64-byte aligned tensor blobs.

This module reads and writes the container layer of an ``.amber`` file as specified
normatively in ``docs/format.md``. It knows nothing about programs or signatures: it
carries a caller-supplied JSON object (the *header*) and a set of named NumPy arrays
(the *tensors*).

Layout of format version 1 (all integers little-endian)::

    offset  size  field
    0       8     magic  89 41 4D 42 0D 0A 1A 0A   ("\\x89AMB\\r\\n\\x1a\\n")
    8       4     u32 format_version               (1)
    12      4     u32 flags                        (0; every bit reserved)
    16      8     u64 header_length                (bytes of JSON, no padding)
    24      8     u64 file_length                  (total bytes of the file)
    32      32    SHA-256 of the header_length header bytes
    64      H     header: UTF-8 JSON object, zero-padded to a multiple of 64
    ...           tensor blobs in index order, each zero-padded to a multiple of 64

The reader treats its input as hostile: every size and offset is checked against the
file before use, nothing is allocated that the file size does not justify, and every
problem raises :class:`amber.errors.FormatError` with a specific reason.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import mmap
import os
import re
import secrets
import struct
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

from ..errors import FormatError

__all__ = [
    "ALIGNMENT",
    "DEFAULT_MAX_HEADER_BYTES",
    "DTYPES",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_JSON_DEPTH",
    "MAX_NAME_BYTES",
    "MAX_RANK",
    "PREAMBLE_SIZE",
    "TENSOR_INDEX_KEY",
    "Container",
    "read_container",
    "write_container",
]

FORMAT_VERSION: int = 1
"""The newest container format version this amber writes and reads."""

MAGIC: bytes = b"\x89AMB\r\n\x1a\n"
"""The 8 bytes every .amber file starts with, in every format version."""

PREAMBLE_SIZE: int = 64
"""Size in bytes of the fixed preamble of format version 1."""

ALIGNMENT: int = 64
"""Alignment (from the start of the file) of the header end and of every tensor blob."""

DEFAULT_MAX_HEADER_BYTES: int = 64 * 1024 * 1024
"""Default limit on the JSON header size; the writer never exceeds it."""

MAX_JSON_DEPTH: int = 64
"""Maximum nesting depth of arrays and objects in the header (top-level object = 1)."""

MAX_RANK: int = 32
"""Maximum number of dimensions of a stored tensor."""

MAX_NAME_BYTES: int = 4096
"""Maximum length in UTF-8 bytes of a tensor name."""

TENSOR_INDEX_KEY: str = "tensors"
"""The one top-level header member the container reserves for its tensor index."""

DTYPES: Mapping[str, np.dtype[Any]] = types.MappingProxyType(
    {
        "float32": np.dtype("<f4"),
        "float64": np.dtype("<f8"),
        "int32": np.dtype("<i4"),
        "int64": np.dtype("<i8"),
        "bool": np.dtype("|b1"),
        # opset 5 (a reader that predates them refuses the names as unknown dtypes)
        "float16": np.dtype("<f2"),
        "bfloat16": np.dtype(ml_dtypes.bfloat16),
        "int8": np.dtype("|i1"),
        "uint8": np.dtype("|u1"),
        "int16": np.dtype("<i2"),
    }
)
"""Stored dtype names and their (little-endian) NumPy dtypes."""

_PREAMBLE = struct.Struct("<8sIIQQ32s")
_VERSION_PREFIX = struct.Struct("<8sI")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_ENTRY_KEYS = frozenset({"name", "dtype", "shape", "offset", "nbytes", "sha256"})
_HEX = frozenset("0123456789abcdef")

assert _PREAMBLE.size == PREAMBLE_SIZE


@dataclass(frozen=True)
class Container:
    """The decoded contents of an ``.amber`` file.

    Attributes:
        format_version: the container format version the file was written with.
        header: the caller's JSON object as written (without the tensor index).
        tensors: read-only arrays by name, in the file's index order; arrays read from
            a path are zero-copy views of a read-only memory map of the file.
    """

    format_version: int
    header: dict[str, Any]
    tensors: Mapping[str, np.ndarray]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a block that allocates millions of
    objects that stay alive (decoding a large header, building its program).

    NOTE: each collection walks every live container, so a long decode pays again and
    again for what it built so far: 24 MiB of header took 7x as long with it running.
    Reference counting still frees everything; collection resumes after the block."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _align(n: int) -> int:
    """Round ``n`` up to the next multiple of :data:`ALIGNMENT`."""
    return -(-n // ALIGNMENT) * ALIGNMENT


# --------------------------------------------------------------------------- writing


def _check_json_value(value: Any, path: str, depth: int) -> None:
    """Raise FormatError unless ``value`` is storable JSON under the v1 header rules."""
    if depth > MAX_JSON_DEPTH:
        raise FormatError(
            f"cannot write header: {path} is nested deeper than {MAX_JSON_DEPTH} levels"
        )
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise FormatError(
                    f"cannot write header: string at {path} is not valid Unicode ({exc.reason})"
                ) from None
        return
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise FormatError(
                f"cannot write header: integer at {path} is outside the signed 64-bit range"
            )
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FormatError(
                f"cannot write header: {path} is {value!r}; JSON has no NaN or infinity"
            )
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FormatError(
                    f"cannot write header: key {key!r} in {path} is a "
                    f"{type(key).__name__}; JSON object keys must be str"
                )
            _check_json_value(key, f"{path} key {key!r}", depth)
            _check_json_value(item, f"{path}[{key!r}]", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json_value(item, f"{path}[{i}]", depth + 1)
        return
    raise FormatError(
        f"cannot write header: {path} is a {type(value).__module__}.{type(value).__qualname__}, "
        "which is not JSON (use dict, list, str, int, float, bool or None)"
    )


def _prepare_tensor(name: Any, array: Any) -> tuple[str, str, np.ndarray]:
    """Validate one tensor for writing; return (name, dtype name, little-endian C array)."""
    if not isinstance(name, str):
        raise FormatError(f"cannot write tensor {name!r}: tensor names must be str")
    _check_name(name, lambda msg: FormatError(f"cannot write tensor {name!r}: {msg}"))
    if not isinstance(array, (np.ndarray, np.generic)):
        raise FormatError(
            f"cannot write tensor {name!r}: expected a numpy.ndarray, got "
            f"{type(array).__module__}.{type(array).__qualname__}"
        )
    matches = [
        (n, d)
        for n, d in DTYPES.items()
        if array.dtype == d
        or (d.kind != "V" and array.dtype.kind == d.kind and array.dtype.itemsize == d.itemsize)
    ]
    if not matches:
        raise FormatError(
            f"cannot write tensor {name!r}: dtype {array.dtype} is not storable "
            f"(supported: {', '.join(DTYPES)})"
        )
    dtype_name, dtype = matches[0]
    if array.ndim > MAX_RANK:
        raise FormatError(
            f"cannot write tensor {name!r}: rank {array.ndim} exceeds the maximum {MAX_RANK}"
        )
    data = np.asarray(array, dtype=dtype, order="C")
    if dtype.kind == "b":
        # A NumPy bool array may hold bytes other than 0 and 1; store them canonically.
        data = (_byte_view(data) != 0).reshape(data.shape)
    return name, dtype_name, data


def _byte_view(data: np.ndarray) -> np.ndarray:
    """The bytes of a C-contiguous array as a flat uint8 array (no copy)."""
    return data.reshape(-1).view(np.uint8)


def write_container(
    path: str | os.PathLike[str], header: dict[str, Any], tensors: Mapping[str, np.ndarray]
) -> None:
    """Write an ``.amber`` container atomically and deterministically.

    The file is written to a temporary file in the destination directory, flushed to
    disk and renamed over ``path``, so a reader never observes a partial file. The same
    ``header`` and ``tensors`` always produce the same bytes: header keys are sorted,
    tensors are stored in code-point order of their names.

    Args:
        path: destination file.
        header: a JSON-compatible dict (str keys; dict, list, tuple, str, int in the signed
            64-bit range, finite float, bool, None). The key ``"tensors"`` is reserved.
        tensors: arrays (or NumPy scalars) by name; dtypes float32, float64, int32,
            int64 or bool (any byte order; stored little-endian, C order).

    Raises:
        FormatError: the header or a tensor cannot be represented in the format.
        OSError: the file system refused the write.
    """
    if not isinstance(header, dict):
        raise FormatError(f"cannot write header: expected a dict, got {type(header).__qualname__}")
    if TENSOR_INDEX_KEY in header:
        raise FormatError(
            f"cannot write header: the top-level key {TENSOR_INDEX_KEY!r} is reserved for "
            "the container's tensor index"
        )
    _check_json_value(header, "header", 1)
    if not isinstance(tensors, Mapping):
        raise FormatError(
            f"cannot write tensors: expected a mapping, got {type(tensors).__qualname__}"
        )
    prepared = [_prepare_tensor(n, a) for n, a in tensors.items()]
    prepared.sort(key=lambda item: item[0])
    header_bytes, data_start, file_length = _layout(header, prepared)
    preamble = _PREAMBLE.pack(
        MAGIC,
        FORMAT_VERSION,
        0,
        len(header_bytes),
        file_length,
        hashlib.sha256(header_bytes).digest(),
    )
    _write_atomically(path, preamble, header_bytes, data_start, prepared)


def _layout(
    header: dict[str, Any], prepared: list[tuple[str, str, np.ndarray]]
) -> tuple[bytes, int, int]:
    """The encoded header (with its tensor index), where the data starts, and the file
    length, for tensors ``prepared`` in storage order."""
    digests = [hashlib.sha256(_byte_view(data).data).hexdigest() for _, _, data in prepared]

    def encode(index: list[dict[str, Any]]) -> bytes:
        doc = dict(header)
        doc[TENSOR_INDEX_KEY] = index
        text = json.dumps(
            doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")

    # The header size determines where the data starts and the offsets are written
    # inside the header, so iterate until the layout is stable (offsets only grow with
    # the header, so this converges in a few rounds).
    data_start = _align(PREAMBLE_SIZE)
    while True:
        index: list[dict[str, Any]] = []
        cursor = data_start
        for (name, dtype_name, data), digest in zip(prepared, digests):
            index.append(
                {
                    "name": name,
                    "dtype": dtype_name,
                    "shape": [int(d) for d in data.shape],
                    "offset": cursor,
                    "nbytes": int(data.nbytes),
                    "sha256": digest,
                }
            )
            cursor += _align(int(data.nbytes))
        header_bytes = encode(index)
        needed = _align(PREAMBLE_SIZE + len(header_bytes))
        if needed == data_start:
            break
        data_start = needed
    if len(header_bytes) > DEFAULT_MAX_HEADER_BYTES:
        raise FormatError(
            f"cannot write header: {len(header_bytes)} bytes exceeds the limit of "
            f"{DEFAULT_MAX_HEADER_BYTES} bytes (store large arrays as tensors instead)"
        )
    return header_bytes, data_start, cursor


def _write_atomically(
    path: str | os.PathLike[str],
    preamble: bytes,
    header_bytes: bytes,
    data_start: int,
    prepared: list[tuple[str, str, np.ndarray]],
) -> None:
    """Write the file to a locked temporary next to ``path``, fsync it, rename it over
    ``path`` and fsync the directory; the temporary is removed on any failure."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    remove_stale_temporaries(target)
    fd, tmp = _create_temporary(directory, os.path.basename(target))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(preamble)
            f.write(header_bytes)
            f.write(bytes(data_start - PREAMBLE_SIZE - len(header_bytes)))
            for _, _, data in prepared:
                f.write(_byte_view(data).data)
                f.write(bytes(_align(data.nbytes) - data.nbytes))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _create_temporary(directory: str, base: str) -> tuple[int, str]:
    """Create a new, empty temporary file next to the destination, locked for the
    writer (see :func:`remove_stale_temporaries`); return (fd, path).

    Created with mode 0o666 so the process umask applies exactly as for a plain
    ``open(path, "wb")``.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        if _lock(fd) and _same_file(fd, tmp):
            return fd, tmp
        # another save's clean-up took it for stale between creating and locking
        os.close(fd)
    raise FileExistsError(f"could not create a temporary file in {directory}")


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _lock(fd: int) -> bool:
    """Take an exclusive advisory lock on ``fd``, held until the writer closes the file
    or dies, however it dies. False only if another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locks, no clean-up
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        pass  # a file system without locks: the file is then never taken for stale
    return True


def remove_stale_temporaries(target: str | os.PathLike[str]) -> list[str]:
    """Delete the temporary files (``.NAME.<16 hex>.tmp``) that earlier writes of
    ``target`` left behind when their process was killed (SIGKILL, power loss), and
    return their paths. A temporary file still locked by a live writer is kept; on a
    system without ``fcntl`` (Windows) nothing is removed."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return []
    target = os.fspath(target)
    directory = os.path.dirname(os.path.abspath(target))
    pattern = re.compile(re.escape(f".{os.path.basename(target)}.") + r"[0-9a-f]{16}\.tmp\Z")
    try:
        names = [n for n in os.listdir(directory) if pattern.match(n)]
    except OSError:
        return []
    removed = []
    for n in names:
        tmp = os.path.join(directory, n)
        try:
            fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a writer holds it
            os.unlink(tmp)
            removed.append(tmp)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _fsync_directory(directory: str) -> None:
    """Best-effort fsync of a directory so a completed rename survives a crash."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# --------------------------------------------------------------------------- reading


def _check_name(name: str, error: Callable[[str], FormatError]) -> None:
    """Raise ``error(reason)`` unless ``name`` is a valid tensor name."""
    if not name:
        raise error("tensor name is empty")
    if "\x00" in name:
        raise error("tensor name contains U+0000")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise error("tensor name is not valid Unicode") from None
    if size > MAX_NAME_BYTES:
        raise error(f"tensor name is {size} bytes long; the maximum is {MAX_NAME_BYTES}")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` that refuses duplicate keys in any JSON object."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise FormatError(f"header JSON has duplicate key {key!r} in one object")
            seen.add(key)
    return result


def _parse_int(text: str) -> int:
    """``parse_int`` hook: integers must fit in a signed 64-bit integer."""
    if len(text.lstrip("-")) > 19:
        raise FormatError("header JSON has an integer outside the signed 64-bit range")
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise FormatError("header JSON has an integer outside the signed 64-bit range")
    return value


def _parse_float(text: str) -> float:
    """``parse_float`` hook: numbers with a fraction or exponent must be finite doubles."""
    value = float(text)
    if not math.isfinite(value):
        raise FormatError(f"header JSON has a number that overflows a double: {text[:40]!r}")
    return value


def _parse_constant(text: str) -> Any:
    """``parse_constant`` hook: NaN, Infinity and -Infinity are not JSON."""
    raise FormatError(f"header JSON contains {text}, which is not valid JSON")


_NOT_QUOTES_OR_BRACKETS = bytes(b for b in range(256) if b not in b'"[]{}')


def _json_depth(raw: bytes) -> int:
    """The nesting depth of the valid JSON text ``raw`` (a top-level array or object is
    1), from its bytes: a walk of the decoded objects costs seconds on a large header."""
    if b"\\" in raw:  # drop escaped backslashes, then escaped quotes: the rest delimit strings
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    a = np.frombuffer(raw.translate(None, _NOT_QUOTES_OR_BRACKETS), np.uint8)
    outside = (np.cumsum(a == ord('"'), dtype=np.uint8) & 1) == 0  # parity of quotes so far
    opens = ((a == ord("[")) | (a == ord("{"))).view(np.int8)
    closes = ((a == ord("]")) | (a == ord("}"))).view(np.int8)
    steps = (opens - closes)[outside]
    return int(np.cumsum(steps, dtype=np.int32).max()) if steps.size else 0


def _check_tree(root: Any, *, check_strings: bool) -> None:
    """Reject nesting deeper than :data:`MAX_JSON_DEPTH` and, if asked, strings that hold
    unpaired surrogates (which JSON ``\\u`` escapes can produce but UTF-8 cannot encode)."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise FormatError(f"header JSON is nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(node, dict):
                if check_strings:
                    stack.extend((k, depth) for k in node)
                stack.extend((v, depth + 1) for v in node.values())
            else:
                stack.extend((v, depth + 1) for v in node)
        elif check_strings and isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise FormatError(
                    "header JSON has a \\u escape of an unpaired surrogate (not a Unicode "
                    "scalar value)"
                ) from None


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _decode_header(raw: bytes) -> dict[str, Any]:
    """Decode the header bytes into a dict, applying every JSON rule of the spec."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raise FormatError("header starts with a UTF-8 byte order mark, which is not allowed")
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"header is not valid UTF-8 (byte {exc.start} of the header: {exc.reason})"
        ) from None
    try:
        with gc_paused():
            doc = json.loads(
                text,
                object_pairs_hook=_reject_duplicates,
                parse_int=_parse_int,
                parse_float=_parse_float,
                parse_constant=_parse_constant,
            )
    except FormatError:
        raise
    except RecursionError:
        raise FormatError(f"header JSON is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"header is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # e.g. int conversion limits
        raise FormatError(f"header is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise FormatError(f"header JSON must be an object, found {_json_type(doc)}")
    if _SURROGATE_ESCAPE.search(raw) is not None:  # rare: walk the strings too
        _check_tree(doc, check_strings=True)
    elif _json_depth(raw) > MAX_JSON_DEPTH:
        raise FormatError(f"header JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    return doc


def _json_type(value: Any) -> str:
    """Name the JSON type of a decoded value (for error messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is_int(value: Any) -> bool:
    """True for JSON integers (Python ints that are not bools)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class _Entry:
    """One validated tensor index entry."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    sha256: str


def _parse_entry(i: int, raw: Any, file_length: int) -> _Entry:
    """Validate tensor index entry ``i`` (types, dtype, shape, size arithmetic)."""
    where = f"tensor index entry {i}"
    if not isinstance(raw, dict):
        raise FormatError(f"{where} must be a JSON object, found {_json_type(raw)}")
    name = raw.get("name")
    if isinstance(name, str):
        where = f"tensor {name!r} (index entry {i})"
    missing = sorted(_ENTRY_KEYS - raw.keys())
    if missing:
        raise FormatError(f"{where} is missing {', '.join(missing)}")
    unknown = sorted(raw.keys() - _ENTRY_KEYS)
    if unknown:
        raise FormatError(f"{where} has unknown member(s) {', '.join(map(repr, unknown))}")
    if not isinstance(name, str):
        raise FormatError(f"{where}: name must be a string, found {_json_type(name)}")
    _check_name(name, lambda msg: FormatError(f"{where}: {msg}"))
    dtype_name = raw["dtype"]
    if not isinstance(dtype_name, str) or dtype_name not in DTYPES:
        shown = repr(dtype_name) if isinstance(dtype_name, str) else _json_type(dtype_name)
        raise FormatError(f"{where}: unknown dtype {shown[:80]} (supported: {', '.join(DTYPES)})")
    dtype = DTYPES[dtype_name]
    shape_raw = raw["shape"]
    if not isinstance(shape_raw, list):
        raise FormatError(f"{where}: shape must be an array, found {_json_type(shape_raw)}")
    if len(shape_raw) > MAX_RANK:
        raise FormatError(f"{where}: rank {len(shape_raw)} exceeds the maximum rank {MAX_RANK}")
    for d in shape_raw:
        if not _is_int(d):
            raise FormatError(f"{where}: shape dimension {d!r} is not an integer")
        if d < 0:
            raise FormatError(f"{where}: shape dimension {d} is negative")
    shape = tuple(shape_raw)
    nonzero_product = 1
    for d in shape:
        if d:
            nonzero_product *= d
    if nonzero_product * dtype.itemsize > _INT64_MAX:
        raise FormatError(
            f"{where}: shape {list(shape)} overflows: its size in bytes does not fit in a "
            "signed 64-bit integer"
        )
    expected_nbytes = math.prod(shape) * dtype.itemsize
    for key in ("offset", "nbytes"):
        value = raw[key]
        if not _is_int(value) or value < 0:
            raise FormatError(f"{where}: {key} must be a non-negative integer, got {value!r}")
    nbytes: int = raw["nbytes"]
    offset: int = raw["offset"]
    if nbytes != expected_nbytes:
        raise FormatError(
            f"{where}: nbytes is {nbytes} but shape {list(shape)} of {dtype_name} needs "
            f"{expected_nbytes}"
        )
    if nbytes > file_length:
        raise FormatError(
            f"{where}: {nbytes} bytes of data cannot fit in a file of {file_length} bytes"
        )
    digest = raw["sha256"]
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
        raise FormatError(f"{where}: sha256 must be 64 lowercase hexadecimal digits")
    return _Entry(name, dtype, shape, offset, nbytes, digest)


def _check_zero(buf: memoryview, start: int, end: int, what: str) -> None:
    """Raise FormatError unless ``buf[start:end]`` (padding) is all zero bytes."""
    if end > start and any(buf[start:end]):
        raise FormatError(f"padding {what} (bytes {start}..{end - 1}) is not all zero")


def _read_v1(
    buf: memoryview, *, verify_hashes: bool, max_header_bytes: int
) -> tuple[dict[str, Any], list[tuple[_Entry, np.ndarray]]]:
    """Parse and validate a format-version-1 file held in ``buf``."""
    header_raw, data_start = _header_bytes_v1(buf, max_header_bytes)
    doc = _decode_header(header_raw)
    del header_raw
    if TENSOR_INDEX_KEY not in doc:
        raise FormatError(f"header has no {TENSOR_INDEX_KEY!r} member (the tensor index)")
    index = doc.pop(TENSOR_INDEX_KEY)
    if not isinstance(index, list):
        raise FormatError(
            f"header member {TENSOR_INDEX_KEY!r} must be an array, found {_json_type(index)}"
        )
    entries = _index_v1(buf, index, data_start)
    return doc, _tensors_v1(buf, entries, verify_hashes)


def _header_bytes_v1(buf: memoryview, max_header_bytes: int) -> tuple[bytes, int]:
    """The header bytes of a format-version-1 file (preamble, lengths, hash and padding
    checked) and the offset where its data starts."""
    size = len(buf)
    if size < PREAMBLE_SIZE:
        raise FormatError(
            f"file is truncated: {size} bytes is shorter than the {PREAMBLE_SIZE}-byte preamble"
        )
    _, _, flags, header_length, file_length, header_hash = _PREAMBLE.unpack_from(buf, 0)
    if flags != 0:
        raise FormatError(
            f"preamble flags are 0x{flags:08x}; format version 1 defines no flags (must be 0)"
        )
    if file_length < size:
        raise FormatError(
            f"file has {size - file_length} trailing bytes after its declared length of "
            f"{file_length} bytes"
        )
    if file_length > size:
        raise FormatError(
            f"file is truncated: the preamble declares {file_length} bytes but only "
            f"{size} are present"
        )
    if header_length > max_header_bytes:
        raise FormatError(
            f"header length {header_length} exceeds the limit of {max_header_bytes} bytes "
            "(raise max_header_bytes to read it)"
        )
    header_end = PREAMBLE_SIZE + header_length
    if header_end > size:
        raise FormatError(
            f"header length {header_length} extends past the end of the file ({size} bytes)"
        )
    header_raw = bytes(buf[PREAMBLE_SIZE:header_end])
    if hashlib.sha256(header_raw).digest() != header_hash:
        raise FormatError("header SHA-256 mismatch: the header is corrupt")
    data_start = _align(header_end)
    if data_start > size:
        raise FormatError(
            f"file is truncated: header padding ends at byte {data_start} but the file has "
            f"{size} bytes"
        )
    _check_zero(buf, header_end, data_start, "after the header")
    return header_raw, data_start


def _index_v1(buf: memoryview, index: list[Any], data_start: int) -> list[_Entry]:
    """The validated tensor index: each entry's types and sizes, and blobs packed in
    index order, aligned, zero-padded, ending where the file ends."""
    size = len(buf)
    entries: list[_Entry] = []
    seen: dict[str, int] = {}
    cursor = data_start
    previous: _Entry | None = None
    for i, raw in enumerate(index):
        entry = _parse_entry(i, raw, size)
        if entry.name in seen:
            raise FormatError(
                f"duplicate tensor name {entry.name!r} (index entries {seen[entry.name]} and {i})"
            )
        seen[entry.name] = i
        where = f"tensor {entry.name!r}"
        if entry.offset % ALIGNMENT:
            raise FormatError(f"{where}: offset {entry.offset} is not a multiple of {ALIGNMENT}")
        if entry.offset + entry.nbytes > size:
            raise FormatError(
                f"{where}: data at bytes {entry.offset}..{entry.offset + entry.nbytes} lies "
                f"outside the file ({size} bytes)"
            )
        if entry.offset < data_start:
            raise FormatError(
                f"{where}: offset {entry.offset} overlaps the preamble or header (data "
                f"starts at {data_start})"
            )
        if entry.offset < cursor:
            assert previous is not None
            raise FormatError(
                f"{where}: offset {entry.offset} overlaps tensor {previous.name!r}, which "
                f"occupies bytes up to {cursor}"
            )
        if entry.offset > cursor:
            raise FormatError(
                f"{where}: offset {entry.offset} leaves a gap after byte {cursor}; blobs must "
                "be packed in index order"
            )
        padded_end = entry.offset + _align(entry.nbytes)
        if padded_end > size:
            raise FormatError(
                f"file is truncated: padding of {where} ends at byte {padded_end} but the "
                f"file has {size} bytes"
            )
        _check_zero(buf, entry.offset + entry.nbytes, padded_end, f"after {where}")
        cursor = padded_end
        previous = entry
        entries.append(entry)
    if cursor != size:
        raise FormatError(
            f"file has {size - cursor} trailing bytes after the last tensor (data ends at "
            f"byte {cursor})"
        )
    return entries


def _tensors_v1(
    buf: memoryview, entries: list[_Entry], verify_hashes: bool
) -> list[tuple[_Entry, np.ndarray]]:
    """Read-only arrays over the blobs of ``entries`` (digests checked when asked; bool
    data holds only 0 and 1)."""
    for entry in entries:
        blob = buf[entry.offset : entry.offset + entry.nbytes]
        if verify_hashes and hashlib.sha256(blob).hexdigest() != entry.sha256:
            raise FormatError(f"tensor {entry.name!r}: SHA-256 mismatch: the data is corrupt")
        if entry.dtype.kind == "b" and entry.nbytes:
            if int(np.frombuffer(blob, dtype=np.uint8).max()) > 1:
                raise FormatError(
                    f"tensor {entry.name!r}: bool data holds a byte other than 0 or 1"
                )
        blob.release()

    arrays: list[tuple[_Entry, np.ndarray]] = []
    for entry in entries:
        blob = buf[entry.offset : entry.offset + entry.nbytes]
        count = entry.nbytes // entry.dtype.itemsize
        array = np.frombuffer(blob, dtype=entry.dtype, count=count).reshape(entry.shape)
        array.flags.writeable = False
        arrays.append((entry, array))
    return arrays


_Reader = Callable[..., tuple[dict[str, Any], list[tuple[_Entry, np.ndarray]]]]

_READERS: Mapping[int, _Reader] = types.MappingProxyType({1: _read_v1})
"""One parser per format version ever released; entries are never removed."""


def _read_buffer(buf: memoryview, *, verify_hashes: bool, max_header_bytes: int) -> Container:
    """Identify the format version of ``buf`` and dispatch to that version's parser."""
    size = len(buf)
    if size < len(MAGIC):
        if bytes(buf) == MAGIC[:size]:
            raise FormatError(
                f"file is truncated: {size} bytes is shorter than the preamble"
                if size
                else "file is empty: not an amber file"
            )
        raise FormatError("not an amber file: the file does not start with the amber magic")
    if bytes(buf[: len(MAGIC)]) != MAGIC:
        raise FormatError(
            "not an amber file: the first 8 bytes are "
            f"{bytes(buf[: len(MAGIC)]).hex(' ')}, expected {MAGIC.hex(' ')}"
        )
    if size < _VERSION_PREFIX.size:
        raise FormatError(f"file is truncated: {size} bytes is shorter than the preamble")
    _, version = _VERSION_PREFIX.unpack_from(buf, 0)
    if version > FORMAT_VERSION:
        raise FormatError(
            f"file has format version {version}, newer than this reader, which reads format "
            f"versions up to {FORMAT_VERSION}; upgrade amber to read it"
        )
    reader = _READERS.get(version)
    if reader is None:
        raise FormatError(f"invalid format version {version} (versions start at 1)")
    header, arrays = reader(buf, verify_hashes=verify_hashes, max_header_bytes=max_header_bytes)
    tensors = types.MappingProxyType({entry.name: array for entry, array in arrays})
    return Container(format_version=version, header=header, tensors=tensors)


def read_container(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
    *,
    verify_hashes: bool = True,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
) -> Container:
    """Read and fully validate an ``.amber`` container.

    A path is memory-mapped read-only and the returned arrays are zero-copy views of the
    map (the map stays alive as long as any array does). A bytes-like source is parsed
    in place and the arrays are read-only views of it.

    Args:
        source: a path, or the file's bytes.
        verify_hashes: check each tensor's SHA-256 (the header hash and every bounds,
            size and padding check are always applied).
        max_header_bytes: refuse files whose JSON header is longer than this.

    Returns:
        The file's format version, header (without the tensor index) and tensors.

    Raises:
        FormatError: the content is not a valid amber file of a version this reader
            knows; the message gives the specific reason.
        OSError: the path cannot be opened or mapped.
    """
    if isinstance(max_header_bytes, bool) or not isinstance(max_header_bytes, int):
        raise TypeError("max_header_bytes must be an int")
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        return _read_buffer(view, verify_hashes=verify_hashes, max_header_bytes=max_header_bytes)
    with open(os.fspath(source), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return _read_buffer(
                memoryview(b""), verify_hashes=verify_hashes, max_header_bytes=max_header_bytes
            )
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mapped)
    try:
        return _read_buffer(view, verify_hashes=verify_hashes, max_header_bytes=max_header_bytes)
    except FormatError:
        # Nothing refers to the map when validation fails: unmap it now.
        try:
            view.release()
            mapped.close()
        except BufferError:
            pass
        raise
