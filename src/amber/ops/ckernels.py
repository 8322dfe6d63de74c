"""Eager kernels from libamber: one kernel library for eager and exported execution.

Eager ops whose result depends on how it is computed (rounding of transcendental
functions, the summation order of matmul, convolution and float sums) run the C kernels a
native session runs, through the public single-kernel API of ``amber.h``
(``amber_kernel_prepare`` / ``amber_kernel_run``). Eager and exported runs of a model then
give the same bits on one machine. The registry's NumPy kernels stay the reference the
tests compare against (and the reference interpreter's kernels).

The rule, per op (see :data:`C_OPS`): an op runs in C when NumPy's result can differ from
the runtime's in any bit (``exp``, ``log``, ``tanh``, ``sigmoid``, ``sin``, ``cos``,
``erf``, ``pow``, float ``sum``, float ``matmul``, the convolutions), at every size: a C call
costs a fraction of a microsecond more than a NumPy ufunc on a tiny tensor, and being the
same bits as the exported model is worth that. Ops whose IEEE result is exact (``add``,
``mul``, ``div``, ``sqrt``, comparisons, shape ops, integer arithmetic) keep NumPy, which
computes the same bits with less call overhead; ``where`` is exact too but runs in C from
:data:`WHERE_MIN_SIZE` elements, where np.where is ten times slower (unless an operand is
broadcast along the last dim), the float reductions ``max``/``min`` run in C because
NumPy reduces a short last axis (a softmax's rows) several times slower, and
``max_pool2d`` (exact) runs in C because NumPy can only gather its windows by copies.

Calls go through ``amber._kcall`` (a small compiled helper installed next to libamber
that reads NumPy buffers directly: a fraction of a microsecond a call), else through
ctypes. Strided operands (transposed weights, attention heads) are passed by strides to
``matmul`` and the elementwise kernels, with the bits of the contiguous computation.

Without libamber (not built, or ``AMBER_EAGER_KERNELS=reference``) every op runs its
NumPy kernel. :func:`reference_kernels` does that temporarily (tests, comparisons).
``AMBER_EAGER_FAST_CALL=0`` keeps to the ctypes path.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .._dtype import DTYPES, FLOATS, from_numpy_dtype
from .._threads import generation as _threads_generation
from .._threads import get_num_threads
from ..errors import AmberError
from . import elementwise, linalg, pool, reduce  # noqa: F401  (registers the primitives used here)
from .registry import REGISTRY, Aval, EagerHooks, Primitive, abstract_eval

_T = sys.modules[get_num_threads.__module__]  # the settings module (its _generation)

C_OPS: tuple[str, ...] = ("exp", "log", "tanh", "sigmoid", "sin", "cos", "erf", "pow",
                          "sum", "max", "min", "matmul", "conv2d", "conv2d_input_grad",
                          "conv2d_weight_grad", "avg_pool2d", "avg_pool2d_grad",
                          "max_pool2d", "max_pool2d_grad", "where")
"""Primitives whose eager kernel is libamber's (for float operands; ``where`` for any
dtype from :data:`WHERE_MIN_SIZE` elements)."""

WHERE_MIN_SIZE = 1024
"""``where`` is exact either way; np.where takes ~2.5 ns an element, libamber's a tenth of
that, and below this size NumPy's smaller call overhead wins."""

_MAX_RANK = 32
_DTYPE_CODES: dict[np.dtype, int] = {
    d.np: i for i, d in enumerate(DTYPES)}  # DTYPES is in amber_dtype order
_FLOAT_CODES = {d.np for d in FLOATS}
_STRIDED_MATMUL = {np.dtype("<f4"), np.dtype("<f8")}


class _Tensor(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("rank", ctypes.c_int32),
                ("shape", ctypes.c_int64 * _MAX_RANK), ("data", ctypes.c_void_p)]


_addressof, _c_char = ctypes.addressof, ctypes.c_char


class _Lib:
    """The single-kernel functions of libamber, declared once."""

    def __init__(self, cdll: ctypes.CDLL) -> None:
        vp, P = ctypes.c_void_p, ctypes.POINTER
        self.cdll = cdll
        sigs: dict[str, tuple[Any, list[Any]]] = {
            "amber_kernel_context_create": (ctypes.c_int, [ctypes.c_int32, P(vp)]),
            "amber_kernel_context_free": (None, [vp]),
            "amber_kernel_context_error": (ctypes.c_char_p, [vp]),
            "amber_kernel_prepare": (ctypes.c_int, [vp, ctypes.c_char_p, ctypes.c_char_p,
                                                    P(vp)]),
            "amber_kernel_free": (None, [vp]),
        }
        self.fn: dict[str, Any] = {}
        for name, (restype, argtypes) in sigs.items():
            f = cdll._FuncPtr((name, cdll))  # our own pointers: other bindings unaffected
            f.restype, f.argtypes = restype, argtypes
            self.fn[name] = f
        # NOTE: no argtypes on the hot call; arguments are passed as exact ctypes values
        self.run = cdll._FuncPtr(("amber_kernel_run", cdll))
        self.run.restype = ctypes.c_int
        self.run_strided = cdll._FuncPtr(("amber_kernel_run_strided", cdll))
        self.run_strided.restype = ctypes.c_int
        self.fast = _fast_call(self.run_strided)


def _fast_call(entry: Any) -> Callable[..., int] | None:
    """``_kcall.run`` of the compiled helper installed next to libamber (None without it):
    ``run(ctx, kernel, *inputs, out) -> status``, -1 for buffers it cannot describe."""
    import importlib.machinery
    import importlib.util

    from ..native import native_dir

    d = native_dir()
    if d is None or os.environ.get("AMBER_EAGER_FAST_CALL") == "0":
        return None
    for path in sorted((d / "python").glob("_kcall*")):
        loader = importlib.machinery.ExtensionFileLoader("amber._kcall", str(path))
        spec = importlib.util.spec_from_file_location("amber._kcall", path, loader=loader)
        if spec is None:
            continue
        try:
            mod = importlib.util.module_from_spec(spec)
            loader.exec_module(mod)
        except ImportError:  # built for another Python
            continue
        mod.set_entry(ctypes.cast(entry, ctypes.c_void_p).value)
        return mod.run  # type: ignore[no-any-return]
    return None


class _Context:
    """One thread's kernel context (threads, scratch memory) and argument structs."""

    def __init__(self, lib: _Lib, threads: int) -> None:
        self.lib = lib
        self.threads = threads
        self.generation = -1  # of the thread settings it was made for (see _context)
        # kernel key (as in _kernels) -> the fast call with this context and that kernel
        # bound: call(*inputs, out) -> status
        self.calls: dict[Any, Callable[..., int]] = {}
        self.handle = ctypes.c_void_p()
        st = lib.fn["amber_kernel_context_create"](threads, ctypes.byref(self.handle))
        if st != 0:
            raise MemoryError(f"libamber: cannot create a kernel context ({st})")
        self.ins = (_Tensor * 3)()
        self.out = _Tensor()
        self.addr = self.handle.value  # for the fast call
        self.fast = lib.fast
        self.ins_p = ctypes.cast(self.ins, ctypes.c_void_p)
        self.out_p = ctypes.c_void_p(ctypes.addressof(self.out))
        self.n = [ctypes.c_size_t(i) for i in range(4)]
        self.strides = ((ctypes.c_int64 * _MAX_RANK)(), (ctypes.c_int64 * _MAX_RANK)())
        self.stride_ptrs = (ctypes.c_void_p * 2)()
        self.stride_ptrs_p = ctypes.cast(self.stride_ptrs, ctypes.c_void_p)

    def error(self) -> str:
        msg = self.lib.fn["amber_kernel_context_error"](self.handle)
        return msg.decode(errors="replace") if msg else ""

    def __del__(self) -> None:
        if self.handle:
            self.lib.fn["amber_kernel_context_free"](self.handle)
            self.handle = ctypes.c_void_p()


class _State(threading.local):
    ctx: _Context | None = None


_state = _State()


def _after_fork_in_child() -> None:
    # NOTE: the parent's worker threads do not exist in a forked child, so freeing its
    # context (joining them) would hang; the child forgets it (its memory stays) and
    # makes its own.
    ctx = _state.ctx
    if ctx is not None:
        ctx.handle = ctypes.c_void_p()
        _state.ctx = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
_lib: _Lib | None = None
_lib_failed = False
_lib_lock = threading.Lock()
_kernels: dict[Any, int] = {}  # (op, attrs) -> prepared kernel's address, process-wide


def _load() -> _Lib | None:
    global _lib, _lib_failed
    with _lib_lock:
        if _lib is None and not _lib_failed:
            # NOTE: the backend module only finds and loads the shared library (it imports
            # nothing above this layer); the kernels here run below it.
            from ..native import NativeUnavailableError, library

            try:
                _lib = _Lib(library().lib)
            except (NativeUnavailableError, AttributeError, OSError):
                _lib_failed = True
        return _lib


def _context() -> _Context:
    ctx = _state.ctx
    if ctx is None or ctx.generation != _threads_generation():
        lib = _load()
        assert lib is not None
        gen = _threads_generation()
        ctx = _state.ctx = _Context(lib, get_num_threads())
        ctx.generation = gen
    return ctx


def _frozen(attrs: dict[str, Any]) -> dict[str, Any]:
    return {n: tuple(v) if isinstance(v, list) else v for n, v in attrs.items()}


def _prepared(ctx: _Context, op: str, attrs: dict[str, Any]) -> int:
    """The address of the prepared kernel of ``op`` with ``attrs`` (made once)."""
    key = (op, *attrs.values()) if attrs else op
    k = _kernels.get(key)
    if k is None:
        text = json.dumps({n: (list(v) if isinstance(v, tuple) else v)
                           for n, v in attrs.items()}) if attrs else ""
        h = ctypes.c_void_p()
        st = ctx.lib.fn["amber_kernel_prepare"](ctx.handle, op.encode(), text.encode(),
                                                ctypes.byref(h))
        if st != 0 or not h.value:
            raise ValueError(f"{op}: {ctx.error()}")
        k = _kernels[key] = int(h.value)
    return k


def _fill(t: _Tensor, x: np.ndarray) -> None:
    t.dtype = _DTYPE_CODES[x.dtype]
    t.rank = x.ndim
    t.shape[:x.ndim] = x.shape
    # NOTE: from_buffer is several times cheaper than x.ctypes.data but needs a writable
    # buffer of at least one byte
    try:
        t.data = _addressof(_c_char.from_buffer(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        t.data = x.ctypes.data if x.size else None


def run(op: str, attrs: dict[str, Any], xs: tuple[np.ndarray, ...], shape: tuple[int, ...],
        dtype: np.dtype) -> np.ndarray:
    """Run libamber's kernel of ``op`` on arrays ``xs`` into a new array of ``shape`` and
    ``dtype`` (what the op's shape rule gives). Raises ValueError (the C message) if the
    kernel refuses."""
    ctx = _state.ctx
    if ctx is None or ctx.generation != _T._generation:
        ctx = _context()
    key: Any = (op, *attrs.values()) if attrs else op
    try:
        k = _kernels.get(key) or _prepared(ctx, op, attrs)
    except TypeError:  # an unhashable attribute (a list): prepared under a tuple key
        key = None
        k = _prepared(ctx, op, _frozen(attrs))
    out = np.empty(shape, dtype)
    fast = ctx.fast
    if fast is not None:
        if key is not None and key not in ctx.calls:
            ctx.calls[key] = functools.partial(fast, ctx.addr, k)
        if fast(ctx.addr, k, *xs, out) == 0:
            return out
    return _run_ctypes(ctx, op, k, xs, out)


def _run_ctypes(ctx: _Context, op: str, k: int, xs: tuple[np.ndarray, ...],
                out: np.ndarray) -> np.ndarray:
    """The general path (and the one that words errors): ctypes descriptors; strided
    operands of matmul by strides, of other ops as contiguous copies."""
    strided = False
    if op == "matmul" and out.dtype in _STRIDED_MATMUL:
        xs = tuple(x if _strides_ok(x) else np.ascontiguousarray(x) for x in xs)
        strided = not all(x.flags.c_contiguous for x in xs)
    else:
        xs = tuple(x if x.flags.c_contiguous else np.ascontiguousarray(x) for x in xs)
    z = out.itemsize
    for i, x in enumerate(xs):
        _fill(ctx.ins[i], x)
        if i < 2:
            ctx.stride_ptrs[i] = None
        if strided and not x.flags.c_contiguous:
            ctx.strides[i][:x.ndim] = [st // z for st in x.strides]
            ctx.stride_ptrs[i] = ctypes.addressof(ctx.strides[i])
            if x.size:  # where the view starts (its strides are >= 0)
                ctx.ins[i].data = x.__array_interface__["data"][0]
    _fill(ctx.out, out)
    n = ctx.n[len(xs)]
    if strided:
        st = ctx.lib.run_strided(ctx.handle, ctypes.c_void_p(k), ctx.ins_p, ctx.stride_ptrs_p,
                                 n, ctx.out_p)
    else:
        st = ctx.lib.run(ctx.handle, ctypes.c_void_p(k), ctx.ins_p, n, ctx.out_p)
    if st != 0:
        raise ValueError(f"{op}: {ctx.error()}")
    return out


def _strides_ok(x: np.ndarray) -> bool:
    z = x.itemsize
    return x.flags.c_contiguous or all(s >= 0 and s % z == 0 for s in x.strides)


def run_matmul_strided(a: np.ndarray, b: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Float matmul of operands in any non-negative strided layout (transposed views of
    weights, heads split off by a transpose) without copies, through the ctypes path: the
    same bits as on contiguous copies."""
    ctx = _context()
    return _run_ctypes(ctx, "matmul", _prepared(ctx, "matmul", {}), (a, b),
                       np.empty(shape, a.dtype))


# ----------------------------------------------------------------------------- per op

def _unary(name: str, ref: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def kernel(x: np.ndarray) -> np.ndarray:
        dt = x.dtype
        if dt not in _FLOAT_CODES:
            return ref(x)
        # NOTE: run() inlined for the commonest C calls (a tenth of a microsecond each)
        ctx = _state.ctx
        if ctx is not None and ctx.generation == _T._generation:
            call = ctx.calls.get(name)
            if call is not None:
                out = np.empty(x.shape, dt)
                if call(x, out) == 0:
                    return out
        return run(name, {}, (x,), x.shape, dt)

    return kernel


def _pow(ref: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if x.dtype not in _FLOAT_CODES or y.dtype != x.dtype:
            return ref(x, y)
        shape = x.shape if x.shape == y.shape else np.broadcast_shapes(x.shape, y.shape)
        return run("pow", {}, (x, y), shape, x.dtype)

    return kernel


_SHAPES_MAX = 4096  # entries of a wrapper's memo of result shapes (cleared when full)


def _reduce(name: str, ref: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """``sum`` (whose float rounding depends on the order), ``max`` and ``min`` (exact, but
    NumPy's reduction over a short last axis takes several times libamber's time)."""
    memo: dict[tuple, tuple[tuple[int, ...], dict[str, Any], tuple]] = {}

    def kernel(x: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        if x.dtype not in _FLOAT_CODES or x.ndim > _MAX_RANK:
            return ref(x, axes=axes, keepdims=keepdims)
        if not x.flags.c_contiguous:
            # NOTE: libamber's reductions take contiguous operands (a strided one would
            # fail the fast call and the general one before being copied there)
            x = np.ascontiguousarray(x)
        key = (x.shape, tuple(axes), keepdims)
        hit = memo.get(key)
        if hit is None:
            if name != "sum" and (not x.size or any(x.shape[a] == 0 for a in axes)):
                return ref(x, axes=axes, keepdims=keepdims)  # (raises the reference's error)
            ax = set(axes)
            if keepdims:
                shape = tuple(1 if i in ax else d for i, d in enumerate(x.shape))
            else:
                shape = tuple(d for i, d in enumerate(x.shape) if i not in ax)
            if len(memo) >= _SHAPES_MAX:
                memo.clear()
            attrs = {"axes": tuple(axes), "keepdims": bool(keepdims)}
            hit = memo[key] = (shape, attrs, (name, *attrs.values()))
        ctx = _state.ctx  # run() inlined, as in _unary
        if ctx is not None and ctx.generation == _T._generation:
            call = ctx.calls.get(hit[2])
            if call is not None:
                out = np.empty(hit[0], x.dtype)
                if call(x, out) == 0:
                    return out
        return run(name, hit[1], (x,), hit[0], x.dtype)

    return kernel


def _matmul(ref: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        dt = a.dtype
        if dt is b.dtype and a.ndim == 2 and b.ndim == 2 and dt in _FLOAT_CODES:
            # NOTE: run() inlined, as in _unary; libamber checks the inner dims (a
            # mismatch fails the call, and run() below words the error)
            ctx = _state.ctx
            if ctx is not None and ctx.generation == _T._generation:
                call = ctx.calls.get("matmul")
                if call is not None:
                    out = np.empty((a.shape[0], b.shape[1]), dt)
                    if call(a, b, out) == 0:
                        return out
        sa, sb = a.shape, b.shape
        if len(sa) == 2 and len(sb) == 2 and sa[1] == sb[0] and dt in _FLOAT_CODES \
                and b.dtype == dt:
            return run("matmul", {}, (a, b), (sa[0], sb[1]), dt)
        if a.dtype not in _FLOAT_CODES or b.dtype != a.dtype or a.ndim < 2 or b.ndim < 2:
            return ref(a, b)
        if sa[-1] != sb[-2]:
            return ref(a, b)  # raises the reference's error
        if len(sb) == 2 and not a.flags.c_contiguous:
            # NOTE: one matrix for every batch element is one product over all rows when
            # a is contiguous (libamber's path for a materialised transpose, as in an
            # exported model); strided, it would be a product per batch element
            a = np.ascontiguousarray(a)
        shape = (*np.broadcast_shapes(sa[:-2], sb[:-2]), sa[-2], sb[-1])
        return run("matmul", {}, (a, b), shape, a.dtype)

    return kernel


def _nary(name: str, ref: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """A float op whose operands share one dtype (convolutions, pooling): the result's
    shape from the reference's shape rule (memoised), the values from libamber."""
    memo: dict[tuple, tuple[int, ...]] = {}

    def kernel(*xs: np.ndarray, **attrs: Any) -> np.ndarray:
        x = xs[0]
        if x.dtype not in _FLOAT_CODES or any(v.dtype != x.dtype for v in xs[1:]):
            return ref(*xs, **attrs)
        attrs = _frozen(attrs)
        key = (*(v.shape for v in xs), *attrs.values())
        shape = memo.get(key)
        if shape is None:
            dt = from_numpy_dtype(x.dtype)
            try:
                aval = abstract_eval(REGISTRY[name], [Aval(v.shape, dt) for v in xs], attrs)
            except AmberError:  # the reference raises its own error
                return ref(*xs, **attrs)
            if len(memo) >= _SHAPES_MAX:
                memo.clear()
            shape = memo[key] = tuple(aval.shape)
        return run(name, attrs, xs, shape, x.dtype)

    return kernel


def _bshape(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    big = max(shapes, key=len)
    if all(sh == big or not sh for sh in shapes):
        return big
    return tuple(np.broadcast_shapes(*shapes))


def _row_broadcast(*shapes: tuple[int, ...]) -> bool:
    """Whether an operand (not a scalar) is broadcast along the innermost dim: libamber
    then walks rows of one element, several times slower than np.where."""
    n = max(sh[-1] if sh else 1 for sh in shapes)
    return n > 1 and any(sh and sh[-1] == 1 for sh in shapes)


def _rows(x: np.ndarray) -> np.ndarray:
    """x, or a contiguous copy when its innermost stride skips elements: the kernels walk
    strided operands row by row, and rows of a few scattered elements (a pooling window's
    slice) cost more than the copy."""
    if x.ndim and not x.flags.c_contiguous and x.strides[-1] not in (0, x.itemsize):
        return np.ascontiguousarray(x)
    return x


def _where(ref: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    def kernel(c: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if (x.size < WHERE_MIN_SIZE and y.size < WHERE_MIN_SIZE) or x.dtype != y.dtype \
                or x.dtype not in _DTYPE_CODES or c.dtype != np.bool_ \
                or _row_broadcast(c.shape, x.shape, y.shape):
            return ref(c, x, y)
        c, x, y = (_rows(v) for v in (c, x, y))
        return run("where", {}, (c, x, y), _bshape(c.shape, x.shape, y.shape), x.dtype)

    return kernel


def _eager_kernel(p: Primitive) -> Callable[..., np.ndarray]:
    ref = p.impl
    if p.name == "pow":
        return _pow(ref)
    if p.name in ("sum", "max", "min"):
        return _reduce(p.name, ref)
    if p.name == "matmul":
        return _matmul(ref)
    if p.name == "where":
        return _where(ref)
    if p.name.startswith(("conv2d", "avg_pool2d", "max_pool2d")):
        return _nary(p.name, ref)
    return _unary(p.name, ref)


def _install() -> None:
    """Give each primitive of :data:`C_OPS` its C eager kernel (falling back to the
    reference kernel where libamber cannot be loaded)."""
    for name in C_OPS:
        p = REGISTRY[name]
        p.eager = _guarded(_eager_kernel(p), p)


def _guarded(fast: Callable[..., np.ndarray], p: Primitive) -> Callable[..., np.ndarray]:
    """``fast`` while libamber loads; the reference kernel for good once it does not."""

    def first_call(*args: Any, **attrs: Any) -> np.ndarray:
        _settle(p, fast)
        return p.eager(*args, **attrs)

    _pending[p.name] = fast
    return first_call


_pending: dict[str, Callable[..., np.ndarray]] = {}  # C kernels not yet settled


def _settle(p: Primitive, fast: Callable[..., np.ndarray]) -> None:
    _pending.pop(p.name, None)
    if _load() is None or os.environ.get("AMBER_EAGER_KERNELS") == "reference":
        p.eager = p.impl
    else:
        p.eager = fast


def settle() -> None:
    """Decide every op's eager kernel now (loading libamber) rather than at its first
    call, so that ``REGISTRY[name].eager`` is the kernel eager mode will run."""
    for name, fast in list(_pending.items()):
        _settle(REGISTRY[name], fast)


def uses_c(name: str) -> bool:
    """Whether primitive ``name`` runs libamber's kernel in eager mode (for float
    operands) right now."""
    p = REGISTRY[name]
    if p.eager is p.impl or _load() is None:
        return False
    return os.environ.get("AMBER_EAGER_KERNELS") != "reference"


def into(name: str, x: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = eager kernel of elementwise op name (x)`` for ``x`` (strided views
    too) and C-contiguous ``out`` (distinct buffers) of one shape and float dtype:
    libamber's kernel writes ``out`` directly where eager mode runs it (no intermediate
    array)."""
    p = REGISTRY[name]
    if p.eager is not p.impl:
        ctx = _state.ctx
        if ctx is not None and ctx.generation == _T._generation:
            call = ctx.calls.get(name)
            if call is not None and call(x, out) == 0:
                return
    out[...] = p.eager(x)


@contextlib.contextmanager
def reference_kernels() -> Iterator[None]:
    """Run every eager op on its NumPy reference kernel inside (not thread-safe: it
    switches the kernels of the whole process)."""
    saved = {name: p.eager for name, p in REGISTRY.items()}
    for p in REGISTRY.values():
        p.eager = p.impl
    try:
        yield
    finally:
        for name, p in REGISTRY.items():
            p.eager = saved[name]


_install()
EagerHooks.into = staticmethod(into)  # type: ignore[assignment]
