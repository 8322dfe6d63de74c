"""Python on the native runtime: a ctypes binding over the public C API (``amber.h``).

Everything here goes through functions that ``libamber`` exports to every language, so
this module is also the proof that the public API is enough for a binding: there is no
private entry point.

* :func:`library` loads ``libamber`` (installed into the package by ``pip install``, see
  :func:`library_path`) and :func:`available` says whether that worked;
* :class:`NativeModel` opens a file (memory-mapped) or bytes (used in place when
  aligned), describes its entry points (:meth:`NativeModel.signature`), runs them with a
  session per thread that is reused across runs (:meth:`NativeModel.run`: C-contiguous
  inputs of the right dtype are passed without a copy; outputs are copied out of the
  session's arena into new NumPy arrays) and runs the file's test vectors
  (:meth:`NativeModel.verify`);
* a failed call raises a :class:`NativeError` carrying the C status and message; it is
  also the matching amber error (:class:`amber.FormatError` for a file that cannot be
  opened, :class:`amber.ShapeError`, :class:`amber.DTypeError`, ...).

``AMBER_LIBRARY`` (a path to ``libamber.so``) overrides where the library is looked for.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import ml_dtypes
import numpy as np

from ._inputs import gather_args, input_array
from ._threads import get_num_threads
from .errors import (
    AmberError,
    DTypeError,
    FormatError,
    LimitError,
    OutOfRangeError,
    ShapeError,
)

MAX_RANK = 32
"""``AMBER_MAX_RANK``: the largest rank the runtime handles."""

OPEN_SKIP_TENSOR_HASHES = 1
"""``AMBER_OPEN_SKIP_TENSOR_HASHES``: skip per-tensor SHA-256 checks when opening."""

OPEN_NO_FUSION = 2
"""``AMBER_OPEN_NO_FUSION``: run elementwise ops one at a time (no fused groups)."""
OPEN_PLAIN_SUMS = 4
"""``AMBER_OPEN_PLAIN_SUMS``: every sum within the plain sum bound (no F(2,3) rows)."""

_NP_DTYPES: tuple[np.dtype, ...] = tuple(
    np.dtype(d) for d in ("<f4", "<f8", "<i4", "<i8", "|b1",
                          "<f2", ml_dtypes.bfloat16, "|i1", "|u1", "<i2"))
"""NumPy dtype of each ``amber_dtype`` value, in enum order."""
# dtype -> amber_dtype code; a dict lookup (hashing) is cheaper than comparing dtypes
_DTYPE_CODES: dict[np.dtype, int] = {d: i for i, d in enumerate(_NP_DTYPES)}
_CODE_DTYPES: dict[int, np.dtype] = dict(enumerate(_NP_DTYPES))  # KeyError on a bad code
_addressof, _c_char = ctypes.addressof, ctypes.c_char

_STATUS_NAMES = (
    "AMBER_OK", "AMBER_ERR_INVALID_ARGUMENT", "AMBER_ERR_NO_MEMORY", "AMBER_ERR_LIMIT",
    "AMBER_ERR_IO", "AMBER_ERR_FORMAT", "AMBER_ERR_VERSION", "AMBER_ERR_INTEGRITY",
    "AMBER_ERR_NOT_FOUND", "AMBER_ERR_DTYPE", "AMBER_ERR_SHAPE", "AMBER_ERR_OUT_OF_RANGE",
    "AMBER_ERR_INTERNAL", "AMBER_ERR_MISMATCH")


# ----------------------------------------------------------------------------- errors


class NativeError(AmberError):
    """A call into ``libamber`` failed. ``status`` is the ``amber_status`` value,
    ``status_name`` its constant name (``"AMBER_ERR_SHAPE"``) and ``c_message`` the
    message the library gave."""

    def __init__(self, status: int, status_name: str, c_message: str, context: str) -> None:
        self.status = status
        self.status_name = status_name
        self.c_message = c_message
        super().__init__(f"{context}: {c_message or status_name} ({status_name})")


class NativeUnavailableError(AmberError):
    """The native runtime was asked for but ``libamber`` cannot be loaded (the message
    says where it was looked for and why it failed)."""


class NativeFormatError(NativeError, FormatError):
    """The C loader refused a file (malformed, corrupt, newer than the runtime, or
    unreadable)."""


class NativeShapeError(NativeError, ShapeError):
    """``AMBER_ERR_SHAPE``: shapes or attributes are inconsistent."""


class NativeDTypeError(NativeError, DTypeError):
    """``AMBER_ERR_DTYPE``: an operand has a dtype the entry point or op does not accept."""


class NativeOutOfRangeError(NativeError, OutOfRangeError):
    """``AMBER_ERR_OUT_OF_RANGE``: an index value is outside its dimension."""


class NativeLimitError(NativeError, LimitError):
    """``AMBER_ERR_LIMIT``: a configured limit (memory, call depth, loop iterations) was
    hit."""


class NativeNotFoundError(NativeError, KeyError):
    """``AMBER_ERR_NOT_FOUND``: no such entry point, op or name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NativeArgumentError(NativeError, ValueError):
    """``AMBER_ERR_INVALID_ARGUMENT``: a wrong count or value was passed."""


class NativeMismatchError(NativeError):
    """``AMBER_ERR_MISMATCH``: a test vector's outputs differ from the stored ones."""


class NativeClosedError(NativeArgumentError):
    """The model was closed (:meth:`NativeModel.close`): it and its sessions can no longer
    run. A ``ValueError``, as an operation on a closed file is in Python."""

    def __init__(self, name: str) -> None:
        super().__init__(1, "AMBER_ERR_INVALID_ARGUMENT", "the model is closed", name)


_RUN_ERRORS: dict[int, type[NativeError]] = {
    1: NativeArgumentError, 3: NativeLimitError, 4: NativeFormatError, 5: NativeFormatError,
    6: NativeFormatError, 7: NativeFormatError, 8: NativeNotFoundError, 9: NativeDTypeError,
    10: NativeShapeError, 11: NativeOutOfRangeError, 13: NativeMismatchError,
}


class NativeLoadLimitError(NativeLimitError, NativeFormatError):
    """``AMBER_ERR_LIMIT`` while opening a file (a header over ``max_header_bytes``, a dim
    expression over the expansion limit, test vectors beyond ``memory_limit``): both a
    :class:`amber.LimitError` and a :class:`amber.FormatError`."""


def _raise(lib: NativeLibrary, status: int, message: str, context: str, *,
           loading: bool = False) -> NoReturn:
    cls = _RUN_ERRORS.get(status, NativeError)
    if loading:
        cls = NativeLoadLimitError if status == 3 else NativeFormatError
    raise cls(status, lib.status_name(status), message, context)


# ----------------------------------------------------------------------------- C types


class _Tensor(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_RANK), ("data", ctypes.c_void_p)]


class _Options(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("max_header_bytes", ctypes.c_uint64), ("memory_limit", ctypes.c_uint64),
                ("threads", ctypes.c_int32), ("max_call_depth", ctypes.c_int32),
                ("max_loop_iterations", ctypes.c_int64), ("max_run_iterations", ctypes.c_int64),
                ("max_run_calls", ctypes.c_int64)]


class _OptionsSpace(ctypes.Structure):
    """Room for an ``amber_options`` of a newer library (which only appends fields):
    ``amber_options_init`` fills its own ``sizeof``; ``struct_size`` is then set to the
    fields this binding knows, so the library reads only those."""

    _fields_ = [("opts", _Options), ("_reserved", ctypes.c_uint8 * 512)]


class _Stats(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("fused_groups", ctypes.c_uint32),
                *((name, ctypes.c_uint64) for name in (
                    "fused_nodes", "runs", "plans", "plan_reuses", "plan_bytes",
                    "plan_value_bytes", "block_bytes", "cached_bytes", "arena_bytes",
                    "arena_peak_bytes", "fused_attention", "fused_layer_norms"))]


class _Port(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_RANK), ("dims", ctypes.c_char_p * MAX_RANK)]


_P = ctypes.POINTER
_VP = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "amber_version": (ctypes.c_char_p, []),
    "amber_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "amber_op_count": (ctypes.c_size_t, []),
    "amber_op_name": (ctypes.c_char_p, [ctypes.c_size_t]),
    "amber_tensor_size": (ctypes.c_int, [_P(_Tensor), _P(ctypes.c_int64), _P(ctypes.c_size_t)]),
    "amber_options_init": (ctypes.c_int, [_P(_OptionsSpace)]),
    "amber_model_open_file": (ctypes.c_int, [ctypes.c_char_p, _P(_Options), _P(_VP)]),
    "amber_model_open_memory": (ctypes.c_int, [_VP, ctypes.c_size_t, _P(_Options), _P(_VP)]),
    "amber_model_close": (None, [_VP]),
    "amber_model_error": (ctypes.c_char_p, [_VP]),
    "amber_model_format_version": (ctypes.c_int, [_VP, _P(ctypes.c_uint32)]),
    "amber_model_opset_version": (ctypes.c_int, [_VP, _P(ctypes.c_int64)]),
    "amber_model_header": (ctypes.c_int, [_VP, _P(ctypes.c_char_p), _P(ctypes.c_size_t)]),
    "amber_model_tensor_count": (ctypes.c_int, [_VP, _P(ctypes.c_size_t)]),
    "amber_model_tensor": (ctypes.c_int, [_VP, ctypes.c_size_t, _P(ctypes.c_char_p),
                                          _P(_Tensor)]),
    "amber_model_entry_count": (ctypes.c_int, [_VP, _P(ctypes.c_size_t)]),
    "amber_model_entry_name": (ctypes.c_int, [_VP, ctypes.c_size_t, _P(ctypes.c_char_p)]),
    "amber_model_entry_arity": (ctypes.c_int, [_VP, ctypes.c_char_p, _P(ctypes.c_size_t),
                                               _P(ctypes.c_size_t)]),
    "amber_model_entry_input": (ctypes.c_int, [_VP, ctypes.c_char_p, ctypes.c_size_t,
                                               _P(_Port)]),
    "amber_model_entry_output": (ctypes.c_int, [_VP, ctypes.c_char_p, ctypes.c_size_t,
                                                _P(_Port)]),
    "amber_session_create": (ctypes.c_int, [_VP, _P(_VP)]),
    "amber_session_free": (None, [_VP]),
    "amber_session_error": (ctypes.c_char_p, [_VP]),
    "amber_session_run": (ctypes.c_int, [_VP, ctypes.c_char_p, _P(_Tensor), ctypes.c_size_t,
                                         _P(_Tensor), ctypes.c_size_t]),
    "amber_session_run_into": (ctypes.c_int, [_VP, ctypes.c_char_p, _P(_Tensor),
                                              ctypes.c_size_t, _P(_Tensor), ctypes.c_size_t]),
    "amber_session_verify": (ctypes.c_int, [_VP, _P(ctypes.c_size_t), _P(ctypes.c_size_t)]),
    "amber_session_get_stats": (ctypes.c_int, [_VP, _P(_Stats)]),
}
_OPTIONAL = frozenset({"amber_session_get_stats", "amber_session_run_into"})
"""Functions an older ``libamber`` may lack: the calls that need them say so."""


_PyBUF_READ = 0x100
_memory_view = ctypes.pythonapi.PyMemoryView_FromMemory
_memory_view.restype = ctypes.py_object
_memory_view.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int]


def _read_only_memory(address: int, nbytes: int) -> memoryview:
    """A read-only view of ``nbytes`` at ``address`` (libamber's memory; valid while the
    model is open). NOTE: not a ctypes array: each new array size would make a new ctypes
    type, a reference cycle left for the collector."""
    view: memoryview = _memory_view(address, nbytes, _PyBUF_READ)
    return view


# ----------------------------------------------------------------------------- library


def native_dir() -> Path | None:
    """The directory ``pip install`` put the native runtime in (``lib/``, ``include/``,
    ``bin/``, ``lib/pkgconfig/``), or None if the package has none."""
    import amber

    for base in list(getattr(amber, "__path__", [])):
        d = Path(base) / "_native"
        if (d / "lib").is_dir():
            return d
    return None


def library_path() -> Path | None:
    """Where ``libamber.so`` is: ``$AMBER_LIBRARY`` if set, else the copy installed into
    the package; None if neither exists."""
    env = os.environ.get("AMBER_LIBRARY")
    if env:
        return Path(env)
    d = native_dir()
    if d is None:
        return None
    for name in ("libamber.so", "libamber.dylib", "amber.dll"):
        if (d / "lib" / name).exists():
            return d / "lib" / name
    return None


class NativeLibrary:
    """``libamber`` loaded with ctypes, every public function declared with its C
    signature (as any language binding would)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lib = ctypes.CDLL(str(path))
        for name, (restype, argtypes) in _SIGNATURES.items():
            if name in _OPTIONAL and not hasattr(self.lib, name):
                continue
            fn = getattr(self.lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        # NOTE: amber_session_run once more without argtypes, for the run path: converting
        # six arguments through argtypes costs about half a microsecond per call, so the
        # caller passes every argument as the exact ctypes type (see NativeSession.run)
        self.session_run = self.lib._FuncPtr(("amber_session_run", self.lib))
        self.session_run.restype = ctypes.c_int
        self.session_run_into = None
        if hasattr(self.lib, "amber_session_run_into"):
            self.session_run_into = self.lib._FuncPtr(("amber_session_run_into", self.lib))
            self.session_run_into.restype = ctypes.c_int
        self.version: str = self.lib.amber_version().decode()
        self.ops: frozenset[str] = frozenset(
            self.lib.amber_op_name(i).decode() for i in range(self.lib.amber_op_count()))

    def status_name(self, status: int) -> str:
        """The constant name of a status (``"AMBER_ERR_SHAPE"``)."""
        name = self.lib.amber_status_name(status)
        return name.decode() if name else f"status {status}"


_lib_lock = threading.Lock()
_lib: NativeLibrary | None = None
_lib_error: str | None = None


def library() -> NativeLibrary:
    """The loaded native library (loaded once per process).

    Raises:
        NativeUnavailableError: the library is not installed or cannot be loaded.
    """
    global _lib, _lib_error
    with _lib_lock:
        if _lib is not None:
            return _lib
        if _lib_error is None:
            path = library_path()
            if path is None:
                _lib_error = ("libamber is not installed in the amber package (reinstall "
                              "with `pip install .`, which builds it with CMake and a C "
                              "compiler) and AMBER_LIBRARY is not set")
            else:
                try:
                    _lib = NativeLibrary(path)
                    return _lib
                except (OSError, AttributeError) as e:
                    _lib_error = f"cannot load {path}: {e}"
        raise NativeUnavailableError(f"the native runtime is unavailable: {_lib_error}; "
                                     f"use backend='reference' for the NumPy interpreter")


def available() -> bool:
    """Whether the native runtime can be used in this process."""
    try:
        library()
    except NativeUnavailableError:
        return False
    return True


# ----------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class NativePort:
    """An input or output of an entry point as the C runtime describes it: a dim is an
    int (static) or a str (symbolic, such as ``"batch"`` or ``"2*batch"``)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | str, ...]

    def __str__(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"{self.name}: {self.dtype.name}[{dims}]"


@dataclass(frozen=True)
class SessionStats:
    """``amber_session_stats``: what a session has done and holds (docs/c-api.md,
    "Memory"). Sizes are in bytes."""

    fused_groups: int
    """Fused elementwise groups in the model's program."""
    fused_nodes: int
    """Op nodes in those groups."""
    runs: int
    """Runs started (test vectors included)."""
    plans: int
    """Memory plans computed: first plans and re-plans after a symbolic dim changed."""
    plan_reuses: int
    """Function runs that found their plan cached."""
    plan_bytes: int
    """Block size of the entry function's plan in the last run."""
    plan_value_bytes: int
    """The sizes of that plan's values added up (what they would take unshared)."""
    block_bytes: int
    """The session's planned block (the largest plan so far)."""
    cached_bytes: int
    """Values computed from weights once and kept."""
    arena_bytes: int
    """The values arena now: results, loop state, bookkeeping."""
    arena_peak_bytes: int
    """The most the values arena has held."""
    fused_attention: int = 0
    """Attentions (scores, softmax and the product with the values) that run as one
    fused kernel."""
    fused_layer_norms: int = 0
    """Layer norms (over the last axis, with their scale and shift) that run as one fused
    kernel."""


@dataclass(frozen=True)
class NativeSignature:
    """The inputs and outputs of an entry point."""

    name: str
    inputs: tuple[NativePort, ...]
    outputs: tuple[NativePort, ...]


def _port(p: _Port) -> NativePort:
    shape: list[int | str] = []
    for i in range(p.rank):
        dim = p.dims[i]
        shape.append(dim.decode() if p.shape[i] < 0 and dim is not None else int(p.shape[i]))
    return NativePort((p.name or b"").decode(), _NP_DTYPES[p.dtype], tuple(shape))


def _as_input(x: Any, port: NativePort, entry: str, memory_limit: int | None = None
              ) -> np.ndarray:
    """``x`` as an array the runtime can read in place: arrays that already are
    C-contiguous, aligned, little-endian and of a supported dtype are passed as they are (the C
    side checks dtype and shape against the signature); Python numbers and lists take the
    port's dtype."""
    from .tensor import Tensor

    if isinstance(x, Tensor):
        a = x.detach().numpy()
    elif isinstance(x, np.ndarray):
        a = x
    elif isinstance(x, np.generic):
        a = np.asarray(x)
    else:
        try:
            a = np.asarray(x, dtype=port.dtype)
        except (TypeError, ValueError, OverflowError) as e:
            raise DTypeError(f"{entry}: input {port.name!r}: cannot convert "
                             f"{type(x).__name__} to {port.dtype.name}: {e}") from None
    if a.ndim > MAX_RANK:
        raise ShapeError(f"{entry}: input {port.name!r} has rank {a.ndim}; the runtime "
                         f"handles at most {MAX_RANK}")
    dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
    if dt not in _NP_DTYPES:
        raise DTypeError(f"{entry}: input {port.name!r} must be {port.dtype.name}, got "
                         f"{a.dtype}; convert it with .astype(np.{port.dtype.name})")
    a = input_array(a, f"{entry}: input {port.name!r}", memory_limit)
    if not a.flags.aligned:  # the C API refuses data not aligned to its element size
        a = a.copy()
    return a


_INTO_MIN_BYTES = 64 * 1024  # outputs this large are written into the caller's array
_INTO_KEYS = 64  # input shapes remembered per entry point
_ALIGN = 64


def _copy_output(lib: NativeLibrary, t: _Tensor, known: _Out | None = None) -> np.ndarray:
    """A new array holding the output ``t`` describes (memory the session owns); with
    ``known``, of that shape and dtype (which the input shapes fix) without reading the
    descriptor's."""
    if known is not None and t.rank == len(known.shape) and t.dtype == known.code:
        out = np.empty(known.shape, known.dtype)
    else:
        rank = t.rank
        try:
            if not 0 <= rank <= MAX_RANK:
                raise ValueError(rank)
            out = np.empty(t.shape[:rank], _CODE_DTYPES[t.dtype])
        except (KeyError, ValueError):  # a bad rank, dtype code or dim
            _raise(lib, 12, "an output descriptor is invalid", "output")
    if out.nbytes:
        try:
            dst = _addressof(_c_char.from_buffer(out))  # type: ignore[arg-type]
        except (TypeError, ValueError):  # NOTE: bfloat16 exports no buffer; its bytes do
            dst = _addressof(_c_char.from_buffer(out.reshape(-1).view(np.uint8)))  # type: ignore[arg-type]
        ctypes.memmove(dst, t.data, out.nbytes)
    return out


class _Out(NamedTuple):
    """An output as a run with given input shapes gave it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    code: int  # of the dtype, in the C API
    nbytes: int
    into: bool  # large: the runtime writes it into the array the call returns
    fixed: bool  # the input shapes fix its shape (no dim the data decide)


def _fixed_by_inputs(sig: NativeSignature) -> list[bool]:
    """Per output: every symbol its dims name is a dim of some input (an output whose
    size the data decide names a symbol no input has)."""
    names = re.compile(r"[A-Za-z_]\w*")
    bound = {n for p in sig.inputs for d in p.shape if isinstance(d, str)
             for n in names.findall(d)}
    return [all(set(names.findall(d)) <= bound for d in p.shape if isinstance(d, str))
            for p in sig.outputs]


class _Call:
    """What every run of one entry point on one session reuses: the signature, the name
    (the model's string for it), the descriptor arrays passed to C and their elements as
    Python objects (indexing a ctypes array makes a new object each time)."""

    __slots__ = ("sig", "name", "ins", "outs", "in_list", "out_list", "n_in", "n_out",
                 "bound", "fixed", "outs_by_shapes")

    def __init__(self, sig: NativeSignature, name: ctypes.c_char_p) -> None:
        self.sig = sig
        self.name = name  # the model's own string: amber_session_run needs no name search
        self.ins = (_Tensor * max(1, len(sig.inputs)))()
        self.outs = (_Tensor * max(1, len(sig.outputs)))()
        self.in_list = list(self.ins)[:len(sig.inputs)]
        self.out_list = list(self.outs)[:len(sig.outputs)]
        self.n_in = ctypes.c_size_t(len(sig.inputs))
        self.n_out = ctypes.c_size_t(len(sig.outputs))
        # per input: the (shape, dtype) its descriptor holds, rewritten only on a change
        self.bound: list[tuple[Any, Any]] = [((), None)] * len(sig.inputs)
        self.fixed = _fixed_by_inputs(sig)
        # input shapes -> the outputs a run with them gave: later runs with them allocate
        # the large ones for the runtime to write into and read no output descriptor
        self.outs_by_shapes: dict[Any, list[_Out]] = {}


# ----------------------------------------------------------------------------- model


class _Handles:
    """The C handles of one model and of its live sessions, freed together: a session
    never outlives its model, whatever order Python collects objects in.

    Every call into C that uses a handle runs between :meth:`enter` and :meth:`leave`;
    :meth:`close` marks the handles closed (later calls raise
    :class:`NativeClosedError`) and frees them only when the calls under way have
    returned, so a close from another thread never frees memory a run is using."""

    def __init__(self, lib: NativeLibrary, name: str = "<model>") -> None:
        self.lib = lib
        self.name = name
        self.model = ctypes.c_void_p()
        self.sessions: set[int] = set()
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.active = 0
        self.closed = False

    def enter(self) -> None:
        with self.lock:
            if self.closed:
                raise NativeClosedError(self.name)
            self.active += 1

    def leave(self) -> None:
        with self.lock:
            self.active -= 1
            if not self.active and self.closed:
                self.idle.notify_all()

    def new_session(self) -> int:
        handle = ctypes.c_void_p()
        with self.lock:
            if self.closed or not self.model:
                raise NativeClosedError(self.name)
            st = self.lib.lib.amber_session_create(self.model, ctypes.byref(handle))
            if st != 0 or not handle.value:
                _raise(self.lib, st or 2, "cannot create a session", "amber_session_create")
            self.sessions.add(handle.value)
            return handle.value

    def free_session(self, handle: int) -> None:
        with self.lock:
            # a session being freed is not running: a run holds a reference to it
            if handle in self.sessions:
                self.sessions.discard(handle)
                self.lib.lib.amber_session_free(handle)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            while self.active:  # runs under way finish first
                self.idle.wait()
            for h in self.sessions:
                self.lib.lib.amber_session_free(h)
            self.sessions.clear()
            if self.model:
                self.lib.lib.amber_model_close(self.model)
                self.model = ctypes.c_void_p()

    def __del__(self) -> None:
        self.close()


class NativeSession:
    """One ``amber_session``: execution state (arena, plan) reused across runs. Use it
    from one thread at a time; :meth:`NativeModel.run` keeps one per thread for you."""

    def __init__(self, model: NativeModel) -> None:
        self._handles = model._handles
        self._lib = model.lib
        self._signatures = model._signatures
        self._c_names = model._c_names
        self._model_name = model.name
        self._memory_limit = model.memory_limit
        self._calls: dict[str, _Call] = {}
        self.handle = self._handles.new_session()
        self._handle = ctypes.c_void_p(self.handle)  # the exact type session_run takes

    @property
    def error(self) -> str:
        """The message of the session's last failure (``""`` after a success)."""
        self._handles.enter()
        try:
            return self._error()
        finally:
            self._handles.leave()

    def _error(self) -> str:  # NOTE: only between _handles.enter() and leave()
        msg = self._lib.lib.amber_session_error(self.handle)
        return msg.decode(errors="replace") if msg else ""

    def _prepare(self, entry: str) -> _Call:
        sig = self._signatures.get(entry)
        if sig is None:
            raise NativeNotFoundError(8, "AMBER_ERR_NOT_FOUND", f"no entry point {entry!r}; "
                                      f"entry points: {', '.join(self._signatures)}",
                                      self._model_name)
        call = self._calls[entry] = _Call(sig, self._c_names[entry])
        return call

    def run(self, entry: str, inputs: Sequence[Any]) -> list[np.ndarray]:
        """Run ``entry`` on ``inputs`` (in signature order); returns new arrays."""
        # NOTE: this is the whole Python cost of a native call; every step here shows in
        # the latency of a small model.
        call = self._calls.get(entry) or self._prepare(entry)
        if len(inputs) != len(call.in_list):
            raise AmberError(f"{entry}: takes {len(call.in_list)} inputs, got {len(inputs)}")
        handles = self._handles
        handles.enter()  # raises once the model is closed; close waits for leave()
        try:
            return self._run(call, entry, inputs)
        finally:
            handles.leave()

    def _run(self, call: _Call, entry: str, inputs: Sequence[Any]) -> list[np.ndarray]:
        _converted = self._bind_inputs(call, entry, inputs)  # alive until the call returns
        bound = call.bound
        key = bound[0][0] if len(bound) == 1 else tuple(b[0] for b in bound)
        outs = call.outs_by_shapes.get(key)
        lib = self._lib
        if outs is not None and lib.session_run_into is not None:
            return self._run_into(call, entry, key, outs)
        st = lib.session_run(self._handle, call.name, call.ins, call.n_in, call.outs,
                             call.n_out)
        if st != 0:
            _raise(lib, st, self._error(), f"{self._model_name}: {entry}")
        results = [_copy_output(lib, t) for t in call.out_list]
        if lib.session_run_into is not None:
            if len(call.outs_by_shapes) >= _INTO_KEYS:
                call.outs_by_shapes.clear()
            call.outs_by_shapes[key] = [
                _Out(r.shape, r.dtype, _DTYPE_CODES[r.dtype], r.nbytes,
                     r.nbytes >= _INTO_MIN_BYTES, fixed)
                for r, fixed in zip(results, call.fixed)]
        return results

    def _bind_inputs(self, call: _Call, entry: str, inputs: Sequence[Any]) -> list[Any]:
        """The input descriptors for ``inputs``; returns the arrays converted for the call."""
        converted = []
        for i, (x, t) in enumerate(zip(inputs, call.in_list)):
            addr = None
            # arrays the runtime reads as they are skip _as_input (the common case)
            if type(x) is np.ndarray and x.dtype in _DTYPE_CODES and x.ndim <= MAX_RANK:
                try:  # NOTE: only a C-contiguous writable buffer of at least one byte
                    addr = _addressof(_c_char.from_buffer(x))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    pass
                if addr is not None and addr % x.itemsize:
                    addr = None  # the C API refuses data not aligned to its element size
            if addr is None:
                x = _as_input(x, call.sig.inputs[i], entry, self._memory_limit)
                converted.append(x)
                try:
                    addr = _addressof(_c_char.from_buffer(x))  # type: ignore[arg-type]
                except (TypeError, ValueError):  # read-only, or empty
                    addr = x.ctypes.data if x.size else None
            shape, dtype = x.shape, x.dtype
            bound = call.bound[i]
            if bound[0] != shape or bound[1] is not dtype:
                t.dtype = _DTYPE_CODES[dtype]
                t.rank = len(shape)
                t.shape[:len(shape)] = shape
                call.bound[i] = (shape, dtype)
            t.data = addr
        return converted

    def _run_into(self, call: _Call, entry: str, key: Any, outs: list[_Out]
                  ) -> list[np.ndarray]:
        """A run with input shapes seen before: the large outputs are written by the
        runtime straight into new arrays (no copy after), the others are copied without
        reading their descriptors when the input shapes fix their shapes."""
        mine: list[tuple[int, np.ndarray] | None] = []
        for o, t in zip(outs, call.out_list):
            if not o.into:
                t.data = None
                mine.append(None)
                continue
            buf = np.empty(o.nbytes + _ALIGN, np.uint8)
            base = _addressof(_c_char.from_buffer(buf))  # type: ignore[arg-type]
            off = -base % _ALIGN  # aligned as the session's own values are
            t.dtype = o.code
            t.rank = len(o.shape)
            t.shape[:len(o.shape)] = o.shape
            t.data = base + off
            mine.append((base + off, buf[off:off + o.nbytes].view(o.dtype).reshape(o.shape)))
        run_into = self._lib.session_run_into
        assert run_into is not None
        st = run_into(self._handle, call.name, call.ins, call.n_in, call.outs, call.n_out)
        if st != 0:
            _raise(self._lib, st, self._error(), f"{self._model_name}: {entry}")
        results = []
        for o, t, given in zip(outs, call.out_list, mine):
            if given is not None and t.data == given[0]:
                results.append(given[1])
                continue
            if given is not None:  # its size depends on the data: copy it from now on
                call.outs_by_shapes[key] = [x._replace(into=False) for x in outs]
            results.append(_copy_output(self._lib, t, o if o.fixed and not given else None))
        return results

    def verify(self) -> tuple[int, int]:
        """Run the file's test vectors in C; returns (vectors, failed). A failed vector
        raises :class:`NativeMismatchError` naming the first failure."""
        n, failed = ctypes.c_size_t(), ctypes.c_size_t()
        self._handles.enter()
        try:
            st = self._lib.lib.amber_session_verify(self.handle, ctypes.byref(n),
                                                    ctypes.byref(failed))
            if st != 0:
                _raise(self._lib, st, self._error(), f"{self._model_name}: test vectors")
        finally:
            self._handles.leave()
        return n.value, failed.value

    def stats(self) -> SessionStats:
        """The session's counters and memory figures (``amber_session_get_stats``)."""
        if not hasattr(self._lib.lib, "amber_session_get_stats"):
            raise AmberError(f"libamber {self._lib.version} has no amber_session_get_stats")
        raw = _Stats()
        raw.struct_size = ctypes.sizeof(_Stats)
        self._handles.enter()
        try:
            st = self._lib.lib.amber_session_get_stats(self.handle, ctypes.byref(raw))
        finally:
            self._handles.leave()
        if st != 0:
            _raise(self._lib, st, "cannot read the session's statistics", self._model_name)
        return SessionStats(**{f.name: int(getattr(raw, f.name))
                               for f in SessionStats.__dataclass_fields__.values()})

    def close(self) -> None:
        """Free the session (also done when it is collected or its model closes)."""
        self._handles.free_session(self.handle)

    def __del__(self) -> None:
        handles, handle = getattr(self, "_handles", None), getattr(self, "handle", None)
        if handles is not None and handle is not None:  # None: creating it failed
            handles.free_session(handle)


class NativeModel:
    """A ``.amber`` file opened by the native runtime: immutable, shareable by threads.

    ``source`` is a path (the file is memory-mapped; weights are used in place) or the
    file's bytes (used in place when 8-byte aligned, else copied once). ``threads`` is
    the intra-op thread count per session (0: one per core; None:
    ``amber.get_num_threads()``), ``memory_limit`` the bytes
    a session's arena may hold (None: the runtime's default); ``max_call_depth``,
    ``max_loop_iterations`` (one loop), ``max_run_iterations`` (all loops of a run) and
    ``max_run_calls`` (executions of ``call`` and ``cond`` nodes in a run) bound
    programs (None: the runtime's defaults). ``verify_hashes=False`` skips the
    per-tensor SHA-256 checks (bounds checks always run). ``fuse=False`` runs every
    elementwise op on its own instead of fusing chains of them (same results; for
    testing and measurements). ``plain_sums=True`` keeps every sum within the plain sum
    bound of docs/opset.md (section 5): float32 3x3 stride-1 convolutions then run without
    Winograd's F(2,3) rows (~1.2x slower there), whose error bound also counts the inputs
    next to each window's.

    Raises:
        FormatError: (a :class:`NativeFormatError`) the C loader refused the file.
        NativeUnavailableError: ``libamber`` cannot be loaded.
    """

    def __init__(self, source: str | os.PathLike[str] | bytes | bytearray | memoryview, *,
                 verify_hashes: bool = True, threads: int | None = None,
                 memory_limit: int | None = None, max_call_depth: int | None = None,
                 max_loop_iterations: int | None = None,
                 max_run_iterations: int | None = None, max_run_calls: int | None = None,
                 fuse: bool = True, plain_sums: bool = False) -> None:
        self.lib = library()
        self._handles = _Handles(self.lib, "<bytes>" if isinstance(
            source, (bytes, bytearray, memoryview)) else os.path.basename(os.fspath(source)))
        self._local = threading.local()
        self._buffer: Any = None
        space = _OptionsSpace()
        self.lib.lib.amber_options_init(ctypes.byref(space))
        opts = space.opts
        opts.struct_size = min(int(opts.struct_size), ctypes.sizeof(_Options))
        # NOTE: the tensor digests are checked below with hashlib (OpenSSL uses the CPU's
        # SHA instructions: several times the speed of libamber's portable SHA-256)
        opts.flags |= OPEN_SKIP_TENSOR_HASHES
        if not fuse:
            opts.flags |= OPEN_NO_FUSION
        if plain_sums:
            opts.flags |= OPEN_PLAIN_SUMS
        # without threads=, the process-wide amber.set_num_threads setting
        opts.threads = threads if threads is not None else get_num_threads()
        self.threads: int = int(opts.threads)
        """Intra-op threads of this model's sessions (0: one per core)."""
        if memory_limit is not None:
            opts.memory_limit = memory_limit
        if max_call_depth is not None:
            opts.max_call_depth = max_call_depth
        if max_loop_iterations is not None:
            opts.max_loop_iterations = max_loop_iterations
        for field, value in (("max_run_iterations", max_run_iterations),
                             ("max_run_calls", max_run_calls)):
            if value is None:
                continue
            if opts.struct_size < getattr(_Options, field).offset + 8:
                raise AmberError(f"libamber {self.lib.version} has no {field} option")
            setattr(opts, field, value)
        # bytes of the copy an input that needs converting may take (None: no limit)
        self.memory_limit: int | None = int(opts.memory_limit) or None
        handle = self._handles.model
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.path: str | None = None
            self.name = "<bytes>"
            raw = np.frombuffer(source, dtype=np.uint8)
            buf = raw
            if not len(raw) or raw.ctypes.data % 64 or not isinstance(source, bytes):
                # a private, 64-byte aligned copy (mutable or misaligned input)
                aligned = np.zeros(max(1, (len(raw) + 63) // 64) * 8, dtype=np.uint64)
                buf = aligned.view(np.uint8)
                buf[: len(raw)] = raw
            self._buffer = buf
            st = self.lib.lib.amber_model_open_memory(buf.ctypes.data, len(raw),
                                                      ctypes.byref(opts), ctypes.byref(handle))
        else:
            self.path = os.fspath(source)
            self.name = os.path.basename(self.path)
            st = self.lib.lib.amber_model_open_file(os.fsencode(self.path), ctypes.byref(opts),
                                                    ctypes.byref(handle))
        if st != 0:
            msg = self.lib.lib.amber_model_error(handle) if handle else None
            self._handles.close()
            _raise(self.lib, st, msg.decode(errors="replace") if msg else "",
                   f"{self.name}: cannot open", loading=True)
        self._c_names: dict[str, ctypes.c_char_p] = {}  # entry -> the model's string for it
        self._header: dict[str, Any] | None = None
        if verify_hashes:
            self._verify_tensor_hashes()
        self._signatures = self._read_signatures()

    # -- introspection -----------------------------------------------------------------
    def _check(self, st: int, what: str) -> None:
        if st != 0:
            _raise(self.lib, st, what, self.name)

    def _model_call(self, fn: Any, *args: Any) -> int:
        """fn(model handle, *args) on the open model (NativeClosedError once closed)."""
        self._handles.enter()
        try:
            return int(fn(self._handles.model, *args))
        finally:
            self._handles.leave()

    def _read_signatures(self) -> dict[str, NativeSignature]:
        c = self.lib.lib
        h = self._handles.model
        count = ctypes.c_size_t()
        self._check(c.amber_model_entry_count(h, ctypes.byref(count)), "entry points")
        out: dict[str, NativeSignature] = {}
        for i in range(count.value):
            name = ctypes.c_char_p()
            self._check(c.amber_model_entry_name(h, i, ctypes.byref(name)), "entry name")
            raw = name.value or b""
            n_in, n_out = ctypes.c_size_t(), ctypes.c_size_t()
            self._check(c.amber_model_entry_arity(h, raw, ctypes.byref(n_in),
                                                  ctypes.byref(n_out)), "entry arity")
            ins, outs = [], []
            for k in range(n_in.value):
                p = _Port()
                self._check(c.amber_model_entry_input(h, raw, k, ctypes.byref(p)), "input")
                ins.append(_port(p))
            for k in range(n_out.value):
                p = _Port()
                self._check(c.amber_model_entry_output(h, raw, k, ctypes.byref(p)), "output")
                outs.append(_port(p))
            out[raw.decode()] = NativeSignature(raw.decode(), tuple(ins), tuple(outs))
            self._c_names[raw.decode()] = name
        return out

    @property
    def entry_points(self) -> list[str]:
        """Entry point names in file order."""
        return list(self._signatures)

    def signature(self, entry: str = "forward") -> NativeSignature:
        """The inputs and outputs of ``entry`` as the C runtime reports them."""
        try:
            return self._signatures[entry]
        except KeyError:
            raise NativeNotFoundError(8, "AMBER_ERR_NOT_FOUND", f"no entry point {entry!r}; "
                                      f"entry points: {', '.join(self._signatures)}",
                                      self.name) from None

    @property
    def format_version(self) -> int:
        """The container's format version."""
        v = ctypes.c_uint32()
        self._check(self._model_call(self.lib.lib.amber_model_format_version, ctypes.byref(v)),
                    "format version")
        return int(v.value)

    @property
    def opset_version(self) -> int:
        """The opset version of the file's program."""
        v = ctypes.c_int64()
        self._check(self._model_call(self.lib.lib.amber_model_opset_version, ctypes.byref(v)),
                    "opset version")
        return int(v.value)

    def header(self) -> dict[str, Any]:
        """The file's JSON header (as the C loader validated it), decoded once."""
        if self._header is None:
            text, n = ctypes.c_char_p(), ctypes.c_size_t()
            self._check(self._model_call(self.lib.lib.amber_model_header, ctypes.byref(text),
                                         ctypes.byref(n)), "header")
            from .format.container import gc_paused

            with gc_paused():  # a large header builds millions of objects (see gc_paused)
                # NOTE: string_at, as c_char_p.value would stop at a NUL
                self._header = json.loads(ctypes.string_at(text, n.value))
        return self._header

    def _verify_tensor_hashes(self) -> None:
        """Each tensor's SHA-256 against the file's index (tensor k is index entry k);
        a mismatch closes the model and raises NativeFormatError (AMBER_ERR_INTEGRITY)."""
        c, h = self.lib.lib, self._handles.model
        count = ctypes.c_size_t()
        self._check(c.amber_model_tensor_count(h, ctypes.byref(count)), "tensors")
        if not count.value:
            return
        index = self.header()["tensors"]
        for k in range(count.value):
            name, view, nbytes = ctypes.c_char_p(), _Tensor(), ctypes.c_size_t()
            self._check(c.amber_model_tensor(h, k, ctypes.byref(name), ctypes.byref(view)),
                        "tensor")
            self._check(c.amber_tensor_size(ctypes.byref(view), None, ctypes.byref(nbytes)),
                        "tensor size")
            data = _read_only_memory(view.data, nbytes.value) if nbytes.value else b""
            if hashlib.sha256(data).hexdigest() != index[k]["sha256"]:
                self._handles.close()
                _raise(self.lib, 7, f"tensor {index[k]['name'][:200]!r}: SHA-256 mismatch",
                       f"{self.name}: cannot open", loading=True)

    # -- running -----------------------------------------------------------------------
    def session(self) -> NativeSession:
        """This thread's session (created on first use, reused by every later run)."""
        s = getattr(self._local, "session", None)
        if s is None:
            s = NativeSession(self)
            self._local.session = s
        return s

    def new_session(self) -> NativeSession:
        """A new session, for callers that manage their own (one per thread)."""
        return NativeSession(self)

    def run(self, entry: str, /, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        """Run ``entry`` (inputs positionally or by name) on this thread's session;
        returns the outputs in signature order as new NumPy arrays."""
        sig = self._signatures.get(entry)
        if kwargs or sig is None or len(args) != len(sig.inputs):
            ports = self.signature(entry).inputs  # raises for an unknown entry
            args = tuple(gather_args(entry, [p.name for p in ports], args, kwargs))
        return self.session().run(entry, args)

    def run_named(self, entry: str, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run ``entry`` on inputs by name; returns the outputs by name."""
        outs = self.run(entry, **inputs)
        return {p.name: a for p, a in zip(self.signature(entry).outputs, outs)}

    def stats(self) -> SessionStats:
        """Counters and memory figures of this thread's session."""
        return self.session().stats()

    def verify(self) -> tuple[int, int]:
        """Run the file's test vectors in C (this thread's session): (vectors, failed).

        Raises:
            NativeMismatchError: a vector's outputs differ (the message names it).
        """
        return self.session().verify()

    def close(self) -> None:
        """Free every session of the model and unmap the file. Runs under way in other
        threads finish first; every later call raises :class:`NativeClosedError` (an
        :class:`amber.AmberError`). Closing twice is allowed."""
        self._handles.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._handles.closed

    def __enter__(self) -> NativeModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<amber.native.NativeModel {self.name} entries={self.entry_points}>"


def unsupported_ops(ops: set[str]) -> set[str]:
    """The primitives of ``ops`` the native library does not implement."""
    return set(ops) - library().ops


__all__ = [
    "NativeArgumentError",
    "NativeClosedError",
    "NativeDTypeError",
    "NativeError",
    "NativeFormatError",
    "NativeLibrary",
    "NativeLimitError",
    "NativeLoadLimitError",
    "NativeMismatchError",
    "NativeModel",
    "NativeNotFoundError",
    "NativeOutOfRangeError",
    "NativePort",
    "NativeSession",
    "NativeShapeError",
    "NativeSignature",
    "NativeUnavailableError",
    "SessionStats",
    "available",
    "library",
    "library_path",
    "native_dir",
]
