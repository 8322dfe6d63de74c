"""Minimal ctypes declarations of the public C API (runtime/include/amber.h) for tests.
Everything here goes through exported functions only, as any language binding would."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np

MAX_RANK = 32
NP_DTYPES = [np.float32, np.float64, np.int32, np.int64, np.bool_]


class Tensor(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_RANK), ("data", ctypes.c_void_p)]


class Options(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("max_header_bytes", ctypes.c_uint64), ("memory_limit", ctypes.c_uint64),
                ("threads", ctypes.c_int32), ("max_call_depth", ctypes.c_int32),
                ("max_loop_iterations", ctypes.c_int64), ("max_run_iterations", ctypes.c_int64),
                ("max_run_calls", ctypes.c_int64)]


class Stats(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32), ("fused_groups", ctypes.c_uint32),
                *((name, ctypes.c_uint64) for name in (
                    "fused_nodes", "runs", "plans", "plan_reuses", "plan_bytes",
                    "plan_value_bytes", "block_bytes", "cached_bytes", "arena_bytes",
                    "arena_peak_bytes"))]


class Port(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.c_int64 * MAX_RANK), ("dims", ctypes.c_char_p * MAX_RANK)]


SKIP_TENSOR_HASHES = 1
NO_FUSION = 2


def load(build: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build / "libamber.so"))
    P = ctypes.POINTER
    model_pp = P(ctypes.c_void_p)
    sigs = {
        "amber_status_name": (ctypes.c_char_p, [ctypes.c_int]),
        "amber_options_init": (ctypes.c_int, [P(Options)]),
        "amber_model_open_file": (ctypes.c_int, [ctypes.c_char_p, P(Options), model_pp]),
        "amber_model_open_memory": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t, P(Options),
                                                   model_pp]),
        "amber_model_close": (None, [ctypes.c_void_p]),
        "amber_model_error": (ctypes.c_char_p, [ctypes.c_void_p]),
        "amber_model_format_version": (ctypes.c_int, [ctypes.c_void_p, P(ctypes.c_uint32)]),
        "amber_model_header": (ctypes.c_int, [ctypes.c_void_p, P(ctypes.c_char_p),
                                              P(ctypes.c_size_t)]),
        "amber_model_tensor_count": (ctypes.c_int, [ctypes.c_void_p, P(ctypes.c_size_t)]),
        "amber_model_tensor": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t,
                                              P(ctypes.c_char_p), P(Tensor)]),
        "amber_model_find_tensor": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, P(Tensor)]),
        "amber_tensor_size": (ctypes.c_int, [P(Tensor), P(ctypes.c_int64), P(ctypes.c_size_t)]),
        "amber_model_opset_version": (ctypes.c_int, [ctypes.c_void_p, P(ctypes.c_int64)]),
        "amber_model_entry_count": (ctypes.c_int, [ctypes.c_void_p, P(ctypes.c_size_t)]),
        "amber_model_entry_name": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_size_t,
                                                  P(ctypes.c_char_p)]),
        "amber_model_entry_arity": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p,
                                                   P(ctypes.c_size_t), P(ctypes.c_size_t)]),
        "amber_model_entry_input": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p,
                                                   ctypes.c_size_t, P(Port)]),
        "amber_model_entry_output": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p,
                                                    ctypes.c_size_t, P(Port)]),
        "amber_session_create": (ctypes.c_int, [ctypes.c_void_p, P(ctypes.c_void_p)]),
        "amber_session_free": (None, [ctypes.c_void_p]),
        "amber_session_error": (ctypes.c_char_p, [ctypes.c_void_p]),
        "amber_session_run": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, P(Tensor),
                                             ctypes.c_size_t, P(Tensor), ctypes.c_size_t]),
        "amber_session_run_into": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p,
                                                  P(Tensor), ctypes.c_size_t, P(Tensor),
                                                  ctypes.c_size_t]),
        "amber_session_verify": (ctypes.c_int, [ctypes.c_void_p, P(ctypes.c_size_t),
                                                P(ctypes.c_size_t)]),
        "amber_session_get_stats": (ctypes.c_int, [ctypes.c_void_p, P(Stats)]),
        "amber_kernel_context_create": (ctypes.c_int, [ctypes.c_int32, P(ctypes.c_void_p)]),
        "amber_kernel_context_free": (None, [ctypes.c_void_p]),
        "amber_kernel_context_error": (ctypes.c_char_p, [ctypes.c_void_p]),
        "amber_kernel_context_threads": (ctypes.c_int32, [ctypes.c_void_p]),
        "amber_kernel_prepare": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p,
                                                ctypes.c_char_p, P(ctypes.c_void_p)]),
        "amber_kernel_free": (None, [ctypes.c_void_p]),
        "amber_kernel_run": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, P(Tensor),
                                            ctypes.c_size_t, P(Tensor)]),
        "amber_kernel_run_strided": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p,
                                                    P(Tensor), P(ctypes.c_void_p),
                                                    ctypes.c_size_t, P(Tensor)]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    return lib


def to_numpy(lib: ctypes.CDLL, t: Tensor) -> np.ndarray:
    """A copy of the tensor's data as a NumPy array."""
    nbytes = ctypes.c_size_t()
    assert lib.amber_tensor_size(ctypes.byref(t), None, ctypes.byref(nbytes)) == 0
    raw = ctypes.string_at(t.data, nbytes.value) if nbytes.value else b""
    shape = tuple(t.shape[i] for i in range(t.rank))
    return np.frombuffer(raw, dtype=NP_DTYPES[t.dtype]).reshape(shape).copy()


def planned_bytes(*shape: int) -> int:
    """Bytes of a float32 value in a session's planned block (rounded up to 64)."""
    return (int(np.prod(shape)) * 4 + 63) // 64 * 64


def from_numpy(a: np.ndarray) -> Tensor:
    """A descriptor wrapping a C-contiguous array (keep the array alive while in use)."""
    assert a.flags.c_contiguous
    t = Tensor()
    t.dtype = [np.dtype(d) for d in NP_DTYPES].index(a.dtype)
    t.rank = a.ndim
    for i, d in enumerate(a.shape):
        t.shape[i] = d
    t.data = a.ctypes.data
    return t


def run_kernel(lib: ctypes.CDLL, ctx: ctypes.c_void_p, op: str, xs: list[np.ndarray],
               attrs: dict, out_shape: tuple[int, ...]) -> np.ndarray:
    """One kernel through the kernel API on context ``ctx``; the output (NaN-filled first,
    so unwritten elements show)."""
    k = ctypes.c_void_p()
    assert lib.amber_kernel_prepare(ctx, op.encode(), json.dumps(attrs).encode(),
                                    ctypes.byref(k)) == 0
    out = np.full(out_shape, np.nan, xs[0].dtype)
    ins = (Tensor * len(xs))(*[from_numpy(x) for x in xs])
    t = from_numpy(out)
    st = lib.amber_kernel_run(ctx, k, ins, len(xs), ctypes.byref(t))
    lib.amber_kernel_free(k)
    assert st == 0, lib.amber_kernel_context_error(ctx)
    return out


def status_name(lib: ctypes.CDLL, status: int) -> str:
    return lib.amber_status_name(status).decode()


class Model:
    """An opened model; ``status`` and ``error`` describe a failed open."""

    def __init__(self, lib: ctypes.CDLL, *, path: Path | None = None, data: bytes | None = None,
                 flags: int = 0, max_header_bytes: int = 0, memory_limit: int | None = None,
                 threads: int | None = None) -> None:
        self.lib = lib
        self.handle = ctypes.c_void_p()
        opts = Options()
        lib.amber_options_init(ctypes.byref(opts))
        opts.flags = flags
        if max_header_bytes:
            opts.max_header_bytes = max_header_bytes
        if memory_limit is not None:
            opts.memory_limit = memory_limit
        if threads is not None:
            opts.threads = threads
        if path is not None:
            self.status = lib.amber_model_open_file(str(path).encode(), ctypes.byref(opts),
                                                    ctypes.byref(self.handle))
        else:
            assert data is not None
            # An 8-aligned private copy that lives as long as this object.
            self._buf = np.frombuffer(data or b"\0", dtype=np.uint8).copy()
            self.status = lib.amber_model_open_memory(self._buf.ctypes.data, len(data),
                                                      ctypes.byref(opts), ctypes.byref(self.handle))
        self.error = (lib.amber_model_error(self.handle) or b"").decode()

    def tensors(self) -> dict[str, np.ndarray]:
        n = ctypes.c_size_t()
        assert self.lib.amber_model_tensor_count(self.handle, ctypes.byref(n)) == 0
        out = {}
        for i in range(n.value):
            name, t = ctypes.c_char_p(), Tensor()
            assert self.lib.amber_model_tensor(self.handle, i, ctypes.byref(name),
                                               ctypes.byref(t)) == 0
            out[name.value.decode()] = to_numpy(self.lib, t)
        return out

    def close(self) -> None:
        self.lib.amber_model_close(self.handle)
        self.handle = ctypes.c_void_p()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Session:
    """A session of an opened model; ``run`` returns copies of the outputs."""

    def __init__(self, model: Model) -> None:
        self.lib = model.lib
        self.model = model
        self.handle = ctypes.c_void_p()
        assert self.lib.amber_session_create(model.handle, ctypes.byref(self.handle)) == 0

    @property
    def error(self) -> str:
        return self.lib.amber_session_error(self.handle).decode()

    def run(self, entry: str, *inputs: np.ndarray) -> list[np.ndarray] | str:
        """The outputs, or the status name if the run failed."""
        n_out = ctypes.c_size_t()
        st = self.lib.amber_model_entry_arity(self.model.handle, entry.encode(), None,
                                              ctypes.byref(n_out))
        if st != 0:  # let the session say why
            st = self.lib.amber_session_run(self.handle, entry.encode(), None, 0, None, 0)
            return status_name(self.lib, st)
        arrays = [np.array(x, order="C") for x in inputs]
        ins = (Tensor * max(1, len(arrays)))(*[from_numpy(a) for a in arrays])
        outs = (Tensor * max(1, n_out.value))()
        st = self.lib.amber_session_run(self.handle, entry.encode(), ins, len(arrays), outs,
                                        n_out.value)
        if st != 0:
            return status_name(self.lib, st)
        return [to_numpy(self.lib, outs[i]) for i in range(n_out.value)]

    def verify(self) -> tuple[int, int, int]:
        n, failed = ctypes.c_size_t(), ctypes.c_size_t()
        st = self.lib.amber_session_verify(self.handle, ctypes.byref(n), ctypes.byref(failed))
        return st, n.value, failed.value

    def stats(self) -> Stats:
        out = Stats()
        out.struct_size = ctypes.sizeof(Stats)
        assert self.lib.amber_session_get_stats(self.handle, ctypes.byref(out)) == 0
        return out

    def close(self) -> None:
        self.lib.amber_session_free(self.handle)
        self.handle = ctypes.c_void_p()
