"""Tensor creation and random numbers (``am.tensor``, ``am.zeros``, ``am.randn``, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _dtype as D
from .tensor import Tensor


def _to_array(data: Any, dtype: Any = None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.detach().numpy()
    want = None if dtype is None else D.as_dtype(dtype)
    if isinstance(data, np.ndarray) or (np.isscalar(data) and isinstance(data, np.generic)):
        arr = np.asarray(data)
        if want is None:
            if arr.dtype in D.NP_DTYPES:
                want = D.from_numpy_dtype(arr.dtype)
            elif arr.dtype.kind == "f":
                want = D.default_float()
            elif arr.dtype.kind in "iu":
                want = D.int64
            else:
                want = D.from_numpy_dtype(arr.dtype)
        return np.array(arr, dtype=want.np, copy=True)
    if want is None:
        arr = np.asarray(data)
        if arr.dtype.kind == "f":
            want = D.default_float()
        elif arr.dtype.kind in "iu":
            want = D.int64
        elif arr.dtype.kind == "b":
            want = D.bool_
        else:
            raise D.DTypeError(f"cannot make a tensor from {type(data).__name__} ({arr.dtype})")
        return arr.astype(want.np, copy=False)
    return np.array(data, dtype=want.np)


def _make(arr: np.ndarray, requires_grad: bool) -> Tensor:
    t = Tensor._wrap(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, scalars, arrays, tensors).

    Floats default to float32, Python ints to int64, bools to bool. During capture a
    symbolic size (``am.tensor(x.shape[0])``) gives its run-time value."""
    if _is_dim(data):
        from .ops.registry import TraceHooks

        assert TraceHooks.dim_scalar is not None
        return TraceHooks.dim_scalar(data, D.int64 if dtype is None else D.as_dtype(dtype))
    return _make(_to_array(data, dtype), requires_grad)


def as_tensor(data: Any, dtype: Any = None) -> Tensor:
    if isinstance(data, Tensor) and (dtype is None or D.as_dtype(dtype) is data.dtype):
        return data
    return tensor(data, dtype)


def from_numpy(a: np.ndarray) -> Tensor:
    """Wrap a NumPy array without copying (its dtype must be one of amber's)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(a).__name__}")
    D.from_numpy_dtype(a.dtype)
    return Tensor._wrap(a)


def from_dlpack(obj: Any) -> Tensor:
    """Import a tensor from any DLPack producer (CPU memory), sharing memory."""
    return from_numpy(np.from_dlpack(obj))


def _size(size: Sequence[Any]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(s) for s in size)


def _is_dim(v: Any) -> bool:
    """A symbolic size (during capture: ``x.shape[0]`` of a symbolic dim)."""
    return getattr(v, "__amber_dim__", False) is True


def _symbolic_size(size: Sequence[Any]) -> tuple[Any, ...] | None:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(size) if any(_is_dim(s) for s in size) else None


def _filled(shape: tuple[Any, ...], value: Any, dtype: D.DType) -> Tensor:
    """A tensor of a symbolic ``shape`` holding ``value`` (a broadcast scalar)."""
    from . import functional as _F

    return _F.broadcast_to(_F.scalar(value, dtype), shape)


def _float_dtype(dtype: Any) -> D.DType:
    return D.default_float() if dtype is None else D.as_dtype(dtype)


def full(size: Sequence[int], fill_value: Any, dtype: Any = None,
         requires_grad: bool = False) -> Tensor:
    dt = D.as_dtype(dtype) if dtype is not None else D.scalar_dtype(fill_value)
    sym = _symbolic_size((size,))
    if sym is not None:
        return _filled(sym, fill_value, dt)
    return _make(np.full(_size((size,)), fill_value, dtype=dt.np), requires_grad)


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    sym = _symbolic_size(size)
    if sym is not None:
        return _filled(sym, 0, _float_dtype(dtype))
    return _make(np.zeros(_size(size), dtype=_float_dtype(dtype).np), requires_grad)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    sym = _symbolic_size(size)
    if sym is not None:
        return _filled(sym, 1, _float_dtype(dtype))
    return _make(np.ones(_size(size), dtype=_float_dtype(dtype).np), requires_grad)


def empty(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def _like(t: Tensor, dtype: Any) -> D.DType:
    return t.dtype if dtype is None else D.as_dtype(dtype)


def full_like(t: Tensor, fill_value: Any, dtype: Any = None,
              requires_grad: bool = False) -> Tensor:
    """A tensor of ``t``'s shape filled with ``fill_value``. Under capture (``t`` traced,
    possibly with symbolic dims) it is built from ops, so the shape stays symbolic."""
    if t._data is None:
        from . import functional as _F

        return _F.full_like(t, fill_value, dtype)
    return _make(np.full(t.shape, fill_value, dtype=_like(t, dtype).np), requires_grad)


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return full_like(t, 0, dtype, requires_grad)


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return full_like(t, 1, dtype, requires_grad)


def arange(start: Any, end: Any = None, step: Any = 1, dtype: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Values from ``start`` (inclusive) to ``end`` (exclusive) by ``step``, as torch.arange."""
    if end is None:
        start, end = 0, start
    if any(_is_dim(v) for v in (start, end)):
        return _symbolic_arange(start, end, step, dtype)
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = D.int64 if is_int else D.default_float()
    dt = D.as_dtype(dtype)
    return _make(np.arange(start, end, step).astype(dt.np), requires_grad)


def _symbolic_arange(start: Any, end: Any, step: Any, dtype: Any) -> Tensor:
    """``arange`` with a symbolic bound: ``start + step * iota(count)``."""
    from . import functional as _F

    if not isinstance(step, (int, np.integer)) or step == 0 or not all(
            isinstance(v, (int, np.integer)) or _is_dim(v) for v in (start, end)):
        from .errors import ShapeError

        raise ShapeError("arange with a symbolic bound takes integer start, end and a "
                         "nonzero integer step")
    count = (end - start + step - 1) // step if step > 0 else (start - end - step - 1) // -step
    idx = _F._iota(count)
    out = idx * step + start if (step != 1 or not (isinstance(start, int) and start == 0)) \
        else idx
    dt = D.int64 if dtype is None else D.as_dtype(dtype)
    return out if out.dtype is dt else out.to(dt)


def eye(n: Any, m: Any = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    if _is_dim(n) or _is_dim(m):
        from . import functional as _F

        rows = _F.unsqueeze(arange(n), 1)
        cols = _F.unsqueeze(arange(n if m is None else m), 0)
        return (rows == cols).to(_float_dtype(dtype))
    return _make(np.eye(n, m, dtype=_float_dtype(dtype).np), requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None) -> Tensor:
    return _make(np.linspace(start, end, steps).astype(_float_dtype(dtype).np), False)


# ----------------------------------------------------------------------------- random

class Generator:
    """A random number generator (PCG64). ``am.Generator().manual_seed(0)``."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._seed = seed

    def manual_seed(self, seed: int) -> Generator:
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._seed = seed
        return self

    def initial_seed(self) -> int | None:
        return self._seed

    def get_state(self) -> dict:
        return dict(self._rng.bit_generator.state)

    def set_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (used when no ``generator=`` is given)."""
    return default_generator.manual_seed(seed)


def _rng(generator: Generator | None) -> np.random.Generator:
    return (generator or default_generator)._rng


def rand(*size: Any, generator: Generator | None = None, dtype: Any = None,
         requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    dt = _float_dtype(dtype)
    return _make(_rng(generator).random(_size(size), dtype=np.float64).astype(dt.np),
                 requires_grad)


def randn(*size: Any, generator: Generator | None = None, dtype: Any = None,
          requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    dt = _float_dtype(dtype)
    return _make(_rng(generator).standard_normal(_size(size)).astype(dt.np), requires_grad)


def randint(low: int, high: int | None = None, size: Sequence[int] = (), *,
            generator: Generator | None = None, dtype: Any = None) -> Tensor:
    """Integers uniform in [low, high) (``randint(high, size)`` also works, as in torch)."""
    if high is None:
        low, high = 0, low
    elif not isinstance(high, int) and not size:  # randint(high, size)
        low, high, size = 0, low, high
    dt = D.int64 if dtype is None else D.as_dtype(dtype)
    return _make(_rng(generator).integers(low, high, size=tuple(size)).astype(dt.np), False)


def randperm(n: int, *, generator: Generator | None = None) -> Tensor:
    return _make(_rng(generator).permutation(n).astype(np.int64), False)


def rand_like(t: Tensor, generator: Generator | None = None, dtype: Any = None) -> Tensor:
    return rand(*t.shape, generator=generator, dtype=_like(t, dtype))


def randn_like(t: Tensor, generator: Generator | None = None, dtype: Any = None) -> Tensor:
    return randn(*t.shape, generator=generator, dtype=_like(t, dtype))
