"""Checkpoints: ``am.save(obj, f)`` writes state dicts, optimizer states and nested
dicts/lists/tuples of tensors and numbers as one safetensors file; ``am.load`` reads it
back (:func:`load_checkpoint`). Never pickle: a file can hold only arrays and JSON.

Layout: every tensor is a safetensors entry (a flat state dict keeps its own keys, so
``safetensors.torch.load_file`` returns the same dict); anything else (nesting, numbers,
strings, tuples, non-string keys) is the JSON document ``__metadata__["amber.structure"]``
in which ``{"$tensor": name}`` stands for an entry. Metadata ``"format": "pt"`` marks the
tensors as PyTorch-compatible for the Hugging Face tools."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _dtype as D
from .errors import AmberError, FormatError
from .tensor import Tensor

STRUCTURE_KEY = "amber.structure"
VERSION_KEY = "amber.checkpoint"
VERSION = 1

# safetensors dtype name -> NumPy dtype it is read as
_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U32": "<u4", "U16": "<u2", "U8": "u1",
              "BOOL": "?", "BF16": "<u2"}
# what a dtype amber lacks is widened to (exactly: every value is representable)
_WIDEN = {"uint16": "int32", "uint32": "int64"}
_TAGS = ("$tensor", "$ndarray", "$tuple", "$dict", "$float", "$dtype")


# ----------------------------------------------------------------------------- save

class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def name(self, path: str) -> str:
        base = path or "tensor"
        name, k = base, 1
        while name in self.arrays:
            k += 1
            name = f"{base}#{k}"
        return name

    def encode(self, obj: Any, path: str) -> Any:
        if isinstance(obj, Tensor):
            if obj._data is None:
                raise AmberError(f"am.save: {path or 'the object'} is a traced tensor; save "
                                 f"concrete values outside a capture")
            return self._array(obj._data, path, "$tensor")
        if isinstance(obj, np.ndarray):
            return self._array(obj, path, "$ndarray")
        if isinstance(obj, np.generic):
            obj = obj.item()
        if obj is None or isinstance(obj, (bool, int, str)):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"$float": repr(obj)}
        if isinstance(obj, D.DType):
            return {"$dtype": obj.name}
        if isinstance(obj, (list, tuple)):
            items = [self.encode(v, _join(path, i)) for i, v in enumerate(obj)]
            return items if isinstance(obj, list) else {"$tuple": items}
        if isinstance(obj, Mapping):
            if all(isinstance(k, str) and not k.startswith("$") for k in obj):
                return {k: self.encode(v, _join(path, k)) for k, v in obj.items()}
            return {"$dict": [[self.encode(k, path), self.encode(v, _join(path, k))]
                              for k, v in obj.items()]}
        from .nn.modules.module import Module

        if isinstance(obj, Module):
            raise AmberError("am.save saves state, not code: save model.state_dict() and "
                             "rebuild the model with its class (or use am.export to ship "
                             "the whole model as a .amber file)")
        raise AmberError(f"am.save: cannot save {type(obj).__name__} at "
                         f"{path or 'the top level'}; a checkpoint holds tensors, NumPy "
                         f"arrays, numbers, strings, None and dicts/lists/tuples of them")

    def _array(self, a: np.ndarray, path: str, tag: str) -> dict[str, str]:
        D.from_numpy_dtype(a.dtype)  # only amber's dtypes
        name = self.name(path)
        self.arrays[name] = a if a.flags.c_contiguous else np.array(a, order="C")
        return {tag: name}


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def save(obj: Any, f: str | os.PathLike[str] | Any) -> None:
    """Save ``obj`` (a state dict, an optimizer's or scheduler's ``state_dict()``, or any
    nesting of dicts, lists and tuples of tensors, NumPy arrays, numbers, strings and
    None) to ``f`` (a path or a writable binary file) as safetensors; read it with
    ``am.load``. A flat ``{name: tensor}`` dict is also a plain safetensors state dict
    for PyTorch (``safetensors.torch.load_file``) and Hugging Face tools.

    Raises:
        AmberError: ``obj`` holds something else (a Module, a function, a custom class).
    """
    from safetensors.numpy import save as st_save

    enc = _Encoder()
    structure = enc.encode(obj, "")
    meta = {"format": "pt", VERSION_KEY: str(VERSION),
            STRUCTURE_KEY: json.dumps(structure, separators=(",", ":"), allow_nan=False)}
    data = st_save(enc.arrays, metadata=meta)
    if hasattr(f, "write"):
        f.write(data)
        return
    # NOTE: written next to the target and renamed, so an interrupted save never leaves
    # a truncated checkpoint under the real name
    path = os.fspath(f)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ----------------------------------------------------------------------------- load

def is_safetensors(head: bytes, size: int) -> bool:
    """Whether a file of ``size`` bytes starting with ``head`` (>= 9 bytes) looks like
    safetensors: a little-endian header length that fits, then a JSON object."""
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _read_header(buf: Any, size: int) -> tuple[dict[str, Any], int]:
    n = int.from_bytes(bytes(buf[:8]), "little")
    if n > size - 8 or n > 100_000_000:
        raise FormatError(f"safetensors header of {n} bytes does not fit a {size}-byte file")
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"safetensors header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise FormatError("safetensors header is not a JSON object")
    return header, 8 + n


def _tensor_at(name: str, info: Any, buf: Any, start: int, size: int) -> np.ndarray:
    if not isinstance(info, dict) or info.get("dtype") not in _ST_DTYPES:
        dt = info.get("dtype") if isinstance(info, dict) else None
        raise FormatError(f"safetensors entry {name!r}: unsupported dtype {dt!r}; amber "
                          f"reads {', '.join(_ST_DTYPES)}")
    shape, offs = info.get("shape"), info.get("data_offsets")
    if (not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape)
            or not isinstance(offs, list) or len(offs) != 2
            or not all(isinstance(o, int) for o in offs)):
        raise FormatError(f"safetensors entry {name!r}: malformed shape or data_offsets")
    npd = np.dtype(_ST_DTYPES[info["dtype"]])
    count = math.prod(shape)
    b, e = offs
    if not 0 <= b <= e or start + e > size or e - b != count * npd.itemsize:
        raise FormatError(f"safetensors entry {name!r}: data_offsets {offs} do not match "
                          f"shape {shape} of {info['dtype']} in a {size}-byte file")
    a = np.frombuffer(buf, dtype=npd, count=count, offset=start + b).reshape(shape)
    if info["dtype"] == "BF16":  # the top 16 bits of a float32
        return a.astype(np.dtype("<u2").newbyteorder("="), copy=True).view(D.bfloat16.np)
    a = a.astype(npd.newbyteorder("="), copy=True)
    try:
        D.from_numpy_dtype(a.dtype)
        return a
    except D.DTypeError:
        return a.astype(_WIDEN[a.dtype.name])


def load_checkpoint(source: str | os.PathLike[str] | bytes | Any) -> Any:
    """Read a safetensors file (a path, its bytes or a binary file): what ``am.save``
    wrote, rebuilt; a file from another tool (no amber structure) as a
    ``{name: Tensor}`` dict in file order. F16, BF16, I8, U8 and I16 tensors keep their
    dtypes; dtypes amber lacks are widened exactly (uint16 to int32, uint32 to int64).

    Raises:
        FormatError: the file is malformed (header, offsets, sizes, structure)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        buf: Any = memoryview(source)
    elif hasattr(source, "read"):
        buf = memoryview(source.read())
    else:
        with open(os.fspath(source), "rb") as fh:
            buf = memoryview(fh.read())
    size = len(buf)
    if size < 10:
        raise FormatError(f"safetensors file of {size} bytes is truncated")
    header, start = _read_header(buf, size)
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise FormatError("safetensors __metadata__ is not a JSON object")
    ordered = sorted(header.items(), key=lambda kv: _offset(kv[1]))
    arrays = {name: _tensor_at(name, info, buf, start, size) for name, info in ordered}
    text = meta.get(STRUCTURE_KEY)
    if text is None:
        return {name: Tensor._wrap(a) for name, a in arrays.items()}
    version = meta.get(VERSION_KEY, "1")
    if not str(version).isdigit() or int(version) > VERSION:
        raise FormatError(f"checkpoint version {version} is newer than this amber reads "
                          f"({VERSION}); upgrade amber")
    try:
        structure = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise FormatError(f"checkpoint structure is not valid JSON: {e}") from None
    return _decode(structure, arrays)


def _offset(info: Any) -> int:
    try:
        return int(info["data_offsets"][0])
    except (TypeError, KeyError, IndexError, ValueError):
        return -1


def _decode(node: Any, arrays: dict[str, np.ndarray]) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict):
        raise FormatError(f"checkpoint structure holds a {type(node).__name__}")
    if len(node) == 1:
        (tag, body), = node.items()
        if tag in _TAGS:
            return _decode_tagged(tag, body, arrays)
    return {k: _decode(v, arrays) for k, v in node.items()}


def _decode_tagged(tag: str, body: Any, arrays: dict[str, np.ndarray]) -> Any:
    if tag in ("$tensor", "$ndarray"):
        if not isinstance(body, str) or body not in arrays:
            raise FormatError(f"checkpoint structure names a missing tensor {body!r}")
        a = arrays[body]
        return Tensor._wrap(a) if tag == "$tensor" else a
    if tag == "$tuple" and isinstance(body, list):
        return tuple(_decode(v, arrays) for v in body)
    if tag == "$float" and body in ("inf", "-inf", "nan"):
        return float(body)
    if tag == "$dtype" and isinstance(body, str):
        return D.as_dtype(body)
    if tag == "$dict" and isinstance(body, list) and all(
            isinstance(kv, list) and len(kv) == 2 for kv in body):
        return {_hashable(_decode(k, arrays)): _decode(v, arrays) for k, v in body}
    raise FormatError(f"checkpoint structure has a malformed {tag} entry")


def _hashable(k: Any) -> Any:
    if isinstance(k, list):
        raise FormatError("checkpoint structure has a list as a dict key")
    return k


def sniff(source: Any) -> str:
    """What a file is, from its first bytes: "amber", "safetensors", "zip" (PyTorch's
    ``torch.save``), "pickle" (legacy ``torch.save``) or "unknown"."""
    from .format.container import MAGIC

    if isinstance(source, (bytes, bytearray, memoryview)):
        head, size = bytes(source[:16]), len(source)
    else:
        try:
            with open(os.fspath(source), "rb") as fh:
                head = fh.read(16)
                size = os.fstat(fh.fileno()).st_size
        except OSError:
            return "unknown"  # the reader raises the precise error
    if head.startswith(MAGIC):
        return "amber"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if is_safetensors(head, size):
        return "safetensors"
    return "unknown"


def refuse_pickle(kind: str, where: str) -> None:
    """Raise the error for a PyTorch checkpoint, with the conversion recipe."""
    from .errors import UnsupportedCheckpointError

    what = "a zip archive (PyTorch's torch.save format)" if kind == "zip" else \
        "a Python pickle (PyTorch's legacy torch.save format)"
    raise UnsupportedCheckpointError(
        f"am.load({where!r}): the file is {what}; amber never unpickles files (loading a "
        f"pickle can run arbitrary code). Convert it once with PyTorch: `import torch; "
        f"from safetensors.torch import save_file; save_file(torch.load(path, "
        f"map_location='cpu', weights_only=True), 'model.safetensors')` for a state dict "
        f"(for nested checkpoints save each state dict separately), then "
        f"model.load_state_dict(am.load('model.safetensors'))")


__all__ = ["load_checkpoint", "save", "sniff"]
