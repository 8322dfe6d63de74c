"""The Tensor: an n-dimensional array of one dtype with optional autograd history.

A Tensor wraps a NumPy array (eager) or, during capture, stands for an IR value (a
tracer: ``_data is None``). Every operation goes through the op registry's ``bind``."""

from __future__ import annotations

import builtins
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _dtype as D
from .errors import AmberError
from .ops import registry as _registry_module
from .ops.registry import Aval, Node, is_grad_enabled

_DTYPE_OF_NP = D._BY_NP  # NumPy dtype -> amber DType
_Bool = bool  # for annotations inside Tensor, where `bool` names the method


class Tensor:
    """An amber tensor. Create one with ``am.tensor``, ``am.zeros``, ``am.randn``, ..."""

    __slots__ = ("_data", "requires_grad", "grad", "_node", "_aval", "_value", "_hooks",
                 "_base", "_consumed", "__weakref__")
    __array_priority__ = 1000  # NumPy defers ``ndarray <op> Tensor`` to us

    _data: np.ndarray | None
    grad: Tensor | None
    _node: Node | None
    _aval: Aval | None
    _hooks: dict[int, Any]
    _base: Tensor  # set on ``t.data`` views: in-place changes reach ``t``
    _consumed: bool  # set when an op recorded for autograd takes it as an input

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False) -> None:
        from .creation import _to_array

        self._data = _to_array(data, dtype)
        self.requires_grad = False
        self.grad = None
        self._node = None
        self._aval = None
        self._value = None
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, data: np.ndarray) -> Tensor:
        """Fast construction around an array the kernel produced (dtype already valid)."""
        t = object.__new__(cls)
        t._data = data if type(data) is np.ndarray else np.asarray(data)
        t.requires_grad = False
        t.grad = None
        t._node = None
        t._aval = None
        t._value = None
        return t

    # ------------------------------------------------------------------ metadata
    @property
    def shape(self) -> tuple:
        d = self._data
        return d.shape if d is not None else self._aval.shape  # type: ignore[union-attr]

    def size(self, dim: int | None = None) -> Any:
        """Shape as a tuple, or the size of ``dim`` (PyTorch's ``Tensor.size``)."""
        return self.shape if dim is None else self.shape[dim]

    @property
    def dtype(self) -> D.DType:
        d = self._data
        if d is None:
            return self._aval.dtype  # type: ignore[union-attr]
        dt = _DTYPE_OF_NP.get(d.dtype)  # hot path: one dict lookup
        return dt if dt is not None else D.from_numpy_dtype(d.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return len(self.shape)

    def numel(self) -> Any:
        n: Any = 1
        for d in self.shape:
            n = n * d
        return n

    @property
    def aval(self) -> Aval:
        return Aval(tuple(self.shape), self.dtype)

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self) -> Node | None:
        return self._node

    @property
    def device(self) -> Any:
        """``am.device("cpu")``: amber tensors live in host memory."""
        from ._device import CPU

        return CPU

    @property
    def is_cuda(self) -> _Bool:
        """False: amber tensors live in host memory."""
        return False

    @property
    def is_cpu(self) -> _Bool:
        """True: amber tensors live in host memory."""
        return True

    @property
    def data(self) -> Tensor:
        """The same values without autograd history, sharing the buffer; in-place
        changes of it (``w.data.mul_(0.5)``, ``w.data[0] = 1``) change ``t`` too.
        Assigning ``t.data = other`` replaces ``t``'s values (and shape) without
        recording anything for autograd.

        NOTE: an in-place op gives a tensor a new buffer (see ``_assign``), so a ``.data``
        view taken before an in-place change of ``t`` itself keeps the old values."""
        view = self.detach()
        view._base = self
        return view

    @data.setter
    def data(self, value: Any) -> None:
        if not isinstance(value, Tensor):
            raise AmberError(f"Tensor.data must be set to a Tensor, got "
                             f"{type(value).__name__}")
        self._data = value._concrete("setting Tensor.data")

    @property
    def T(self) -> Tensor:
        return _F.permute(self, *range(self.ndim - 1, -1, -1))

    @property
    def mT(self) -> Tensor:
        return _F.transpose(self, -2, -1)

    # ------------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not self.dtype.is_floating:
            raise D.DTypeError(
                f"only floating-point tensors can require gradients, this one is {self.dtype.name}"
            )
        if not requires_grad and self._node is not None:
            raise AmberError("requires_grad_(False) on a non-leaf tensor; use .detach()")
        self.requires_grad = requires_grad
        return self

    def detach(self) -> Tensor:
        """Same values, no gradient history (a stop-gradient under capture)."""
        t = Tensor._wrap(self._data) if self._data is not None else self._tracer_alias()
        return t

    def _tracer_alias(self) -> Tensor:
        t = object.__new__(Tensor)
        t._data, t.requires_grad, t.grad, t._node = None, False, None, None
        t._aval, t._value = self._aval, self._value
        return t

    def backward(self, gradient: Any = None, retain_graph: bool = False,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into each leaf's ``.grad``."""
        from .autograd import backward

        backward([self], None if gradient is None else [gradient], retain_graph, create_graph)

    def register_post_accumulate_grad_hook(self, hook: Any) -> Any:
        """Call ``hook(self)`` once a ``backward()`` has accumulated all of this leaf's
        gradient into ``.grad``; returns a handle whose ``remove()`` unregisters it."""
        from .autograd import register_post_accumulate_grad_hook

        return register_post_accumulate_grad_hook(self, hook)

    def retain_grad(self) -> None:
        raise AmberError("retain_grad is not supported; use am.autograd.grad(out, [tensor])")

    def register_hook(self, hook: Any) -> Any:
        """Call ``hook(grad)`` whenever the gradient with respect to this tensor is
        computed; a non-None return value replaces that gradient (for a leaf, before
        it is accumulated into ``.grad``). Returns a handle whose ``remove()`` removes
        the hook."""
        from .autograd import register_tensor_hook

        return register_tensor_hook(self, hook)

    # ------------------------------------------------------------------ conversion
    def _concrete(self, what: str) -> np.ndarray:
        if self._data is None:
            from .capture_errors import concrete_value_error

            raise concrete_value_error(what)
        return self._data

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The values as a NumPy array (shares memory). As in PyTorch, a tensor that
        requires grad must be detached first (``t.detach().numpy()``) unless ``force``."""
        if self.requires_grad and not force:
            from .errors import AutogradError

            raise AutogradError("Can't call numpy() on Tensor that requires grad. Use "
                                "tensor.detach().numpy() instead.")
        return self._concrete(".numpy()")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self._concrete("np.asarray(tensor)")
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self._concrete("__dlpack__").__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> Any:
        return self._concrete("__dlpack_device__").__dlpack_device__()

    def item(self) -> Any:
        a = self._concrete(".item()")
        if a.size != 1:
            raise AmberError(f"item(): tensor has {a.size} elements, expected exactly 1")
        return a.item()

    def tolist(self) -> Any:
        return self._concrete(".tolist()").tolist()

    def __bool__(self) -> bool:
        a = self._concrete("bool(tensor) (an `if` or `while` on a tensor)")
        if a.size != 1:
            raise AmberError(
                f"the truth value of a tensor with {a.size} elements is ambiguous; use "
                f".any() or .all()"
            )
        return bool(a)

    def __float__(self) -> float:
        self._concrete("float(tensor)")
        return float(self.item())

    def __int__(self) -> int:
        self._concrete("int(tensor)")
        return int(self.item())

    def __index__(self) -> int:
        a = self._concrete("using a tensor as a Python index")
        if a.dtype.kind not in "iu" or a.size != 1:
            raise AmberError("only integer tensors of one element can be used as an index")
        return int(a.reshape(()))

    def __len__(self) -> int:
        if not self.shape:
            raise AmberError("len() of a 0-d tensor")
        n = self.shape[0]
        if not isinstance(n, int):
            from .capture_errors import concrete_value_error

            raise concrete_value_error(f"len() of a tensor whose first dim is symbolic ({n})")
        return n

    def __iter__(self) -> Any:
        n = len(self)
        return (self[i] for i in range(n))

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        if self._data is None:
            return f"Tensor(<traced {self.aval}>)"
        body = np.array2string(self._data, separator=", ", prefix="tensor(")
        extra = "" if self.dtype in (D.float32, D.int64, D.bool_) else f", dtype={self.dtype}"
        if self._node is not None:
            extra += f", grad_fn=<{self._node.prim.name}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ------------------------------------------------------------------ dtype conversion
    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """``t.to(am.float64)``, ``t.to("cpu")``, ``t.to(device, dtype)``, ``t.to(other)``
        (other's dtype), with keywords ``dtype``, ``device``, ``non_blocking``, ``copy``.
        Returns ``self`` when nothing changes (unless ``copy=True``). A device other
        than the CPU raises :class:`~amber.errors.DeviceError`."""
        from ._device import parse_to

        dtype, _, copy = parse_to(args, kwargs, "Tensor.to")
        if dtype is not None and dtype is not self.dtype:
            return _F.cast(self, dtype)
        return _F.clone(self) if copy else self

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    def float(self) -> Tensor:
        return self.to(D.float32)

    def double(self) -> Tensor:
        return self.to(D.float64)

    def long(self) -> Tensor:
        return self.to(D.int64)

    def int(self) -> Tensor:
        return self.to(D.int32)

    def bool(self) -> Tensor:
        return self.to(D.bool_)

    def half(self) -> Tensor:
        return self.to(D.float16)

    def bfloat16(self) -> Tensor:
        return self.to(D.bfloat16)

    def short(self) -> Tensor:
        return self.to(D.int16)

    def char(self) -> Tensor:
        """int8, as PyTorch's ``Tensor.char``."""
        return self.to(D.int8)

    def byte(self) -> Tensor:
        """uint8, as PyTorch's ``Tensor.byte``."""
        return self.to(D.uint8)

    def cpu(self) -> Tensor:
        """``self``: amber tensors live in host memory."""
        return self

    def cuda(self, device: Any = None, non_blocking: _Bool = False) -> Tensor:
        """Raises :class:`~amber.errors.DeviceError`: amber has no CUDA backend."""
        from ._device import check_cpu

        check_cpu("cuda" if device is None else device if not isinstance(device, int)
                  else f"cuda:{device}", "Tensor.cuda")
        return self

    # ------------------------------------------------------------------ new tensors
    def _new(self, arr: np.ndarray, requires_grad: _Bool, device: Any) -> Tensor:
        from ._device import check_cpu

        check_cpu(device, "Tensor.new_*")
        t = Tensor._wrap(arr)
        return t.requires_grad_(True) if requires_grad else t

    def new_full(self, size: Any, fill_value: Any, *, dtype: Any = None, device: Any = None,
                 requires_grad: _Bool = False) -> Tensor:
        """A tensor of ``size`` filled with ``fill_value``, of this tensor's dtype unless
        ``dtype`` is given."""
        dt = self.dtype if dtype is None else D.as_dtype(dtype)
        return self._new(np.full(_size(size), fill_value, dtype=dt.np), requires_grad, device)

    def new_zeros(self, *size: Any, dtype: Any = None, device: Any = None,
                  requires_grad: _Bool = False) -> Tensor:
        """Zeros of ``size``, of this tensor's dtype unless ``dtype`` is given."""
        return self.new_full(size, 0, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_ones(self, *size: Any, dtype: Any = None, device: Any = None,
                 requires_grad: _Bool = False) -> Tensor:
        """Ones of ``size``, of this tensor's dtype unless ``dtype`` is given."""
        return self.new_full(size, 1, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_empty(self, *size: Any, dtype: Any = None, device: Any = None,
                  requires_grad: _Bool = False) -> Tensor:
        """A tensor of ``size`` (amber fills it with zeros)."""
        return self.new_zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_tensor(self, data: Any, *, dtype: Any = None, device: Any = None,
                   requires_grad: _Bool = False) -> Tensor:
        """A copy of ``data``, of this tensor's dtype unless ``dtype`` is given."""
        from .creation import _to_array

        dt = self.dtype if dtype is None else dtype
        return self._new(_to_array(data, dt), requires_grad, device)

    def contiguous(self) -> Tensor:
        return self

    # ------------------------------------------------------------------ in-place (eager)
    def _assign(self, value: Tensor | np.ndarray) -> Tensor:
        """Replace this tensor's values (eager only, never recorded by autograd).

        NOTE: the buffer is replaced, not written into, so values saved by an earlier
        tape stay intact and an array returned earlier by ``.numpy()`` keeps old values."""
        if self._data is None:
            from .capture_errors import concrete_value_error

            raise concrete_value_error("an in-place update")
        if isinstance(value, Tensor) and value._data is None:
            from .capture_errors import concrete_value_error

            raise concrete_value_error(
                "an in-place update of a concrete tensor (such as a module buffer) with a "
                "traced value")
        data = np.asarray(value._data if isinstance(value, Tensor) else value)
        if data.shape != self._data.shape:
            data = np.broadcast_to(data, self._data.shape)
        self._set_buffer(np.array(data, dtype=self._data.dtype, copy=True))
        return self

    def _set_buffer(self, arr: np.ndarray) -> None:
        """Adopt ``arr`` as this tensor's values, and as its owner's if this is a
        ``.data`` view."""
        t: Tensor | None = self
        while t is not None:
            t._data = arr
            t = getattr(t, "_base", None)

    def _check_inplace(self, what: str) -> None:
        from .errors import AutogradError

        if self._node is not None:
            raise AutogradError(
                f"{what}: in-place change of a tensor with autograd history inside "
                f"am.no_grad(): autograd may still need its value; change a .detach()ed "
                f"copy instead")
        if self.requires_grad and is_grad_enabled():
            raise AutogradError(
                f"{what}: a leaf tensor that requires grad cannot be changed in place "
                f"outside am.no_grad() (as in PyTorch); wrap the update in `with "
                f"am.no_grad():`")

    def _inplace(self, fn: Any, *args: Any, what: str = "in-place op") -> Tensor:
        if self._node is not None and is_grad_enabled() and self._data is not None:
            return self._inplace_recorded(fn, args, what)
        self._check_inplace(what)
        from .ops.registry import no_grad

        with no_grad():
            return self._assign(fn(self, *args))

    def _inplace_recorded(self, fn: Any, args: tuple[Any, ...], what: str) -> Tensor:
        """An in-place op on a tensor with autograd history, recorded as PyTorch does:
        the tensor takes the result's value and history, its old value and history
        move to a fresh tensor the op reads. Refused when an op recorded earlier
        reads this tensor (autograd would see the new value: a wrong gradient)."""
        from .errors import AutogradError

        if getattr(self, "_consumed", False):
            raise AutogradError(
                f"{what}: in-place change of a tensor that an earlier operation recorded "
                f"for autograd reads; its gradient would use the new value (PyTorch "
                f"raises 'modified by an inplace operation' at backward). Write the "
                f"out-of-place form (y = y.mul(2)) instead")
        old = Tensor._wrap(self._data)  # type: ignore[arg-type]
        old.requires_grad, old._node = True, self._node
        old._node.out_ref = weakref.ref(old)  # type: ignore[union-attr]
        new = fn(old, *args)
        if not isinstance(new, Tensor):
            new = Tensor(new)
        if new.dtype is not self.dtype:
            new = _F.cast(new, self.dtype)
        if tuple(new.shape) != tuple(self.shape):
            new = _F.broadcast_to(new, self.shape)
        if new is old or any(new is a for a in args):
            new = _F.clone(new)
        self._data, self._node = new._data, new._node
        self.requires_grad = new.requires_grad
        if self._node is not None:
            self._node.out_ref = weakref.ref(self)
        else:  # the new value does not depend on anything that requires grad
            self._data = np.array(new._data, copy=True)
        return self

    def copy_(self, src: Any, non_blocking: _Bool = False) -> Tensor:
        """Copy ``src``'s values (broadcast, converted to this dtype) into this tensor."""
        return self._inplace(lambda s, v: v if isinstance(v, Tensor) else Tensor(v), src,
                             what="copy_")

    def zero_(self) -> Tensor:
        """Fill with zeros, in place."""
        return self.fill_(0)

    def fill_(self, value: Any) -> Tensor:
        """Fill with ``value``, in place."""
        if self._node is not None:
            return self._inplace(lambda s: _F.full_like(s, value), what="fill_")
        self._check_inplace("fill_")
        if isinstance(value, Tensor):
            value = value._concrete("fill_()")
        return self._assign(np.full_like(self._concrete("fill_()"), value))

    def add_(self, other: Any, alpha: Any = 1) -> Tensor:
        return self._inplace(lambda s, o: s + (o * alpha if alpha != 1 else o), other,
                             what="add_")

    def sub_(self, other: Any, alpha: Any = 1) -> Tensor:
        return self._inplace(lambda s, o: s - (o * alpha if alpha != 1 else o), other,
                             what="sub_")

    def mul_(self, other: Any) -> Tensor:
        return self._inplace(lambda s, o: s * o, other, what="mul_")

    def div_(self, other: Any, *, rounding_mode: Any = None) -> Tensor:
        if rounding_mode not in (None, "floor"):
            raise AmberError(f"div_: rounding_mode {rounding_mode!r} is not supported; use "
                             f"None or 'floor'")
        op = (lambda s, o: s / o) if rounding_mode is None else (lambda s, o: s // o)
        return self._inplace(op, other, what="div_")

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:
        return self._inplace(lambda s: s.clamp(min, max), what="clamp_")

    clip_ = clamp_

    def masked_fill_(self, mask: Any, value: Any) -> Tensor:
        """Set the elements where ``mask`` is True to ``value``, in place."""
        return self._inplace(lambda s, m: _F.masked_fill(s, m, value), mask,
                             what="masked_fill_")

    def __setitem__(self, key: Any, value: Any) -> None:
        if self.requires_grad:
            raise AmberError(
                "item assignment on a tensor that requires grad is not differentiable in "
                "amber; build the new tensor with am.where or am.cat instead"
            )
        data = self._concrete("item assignment")
        if isinstance(key, Tensor):
            key = key._concrete("indexing with a tensor")
        elif isinstance(key, tuple):
            key = tuple(k._concrete("indexing") if isinstance(k, Tensor) else k for k in key)
        new = data.copy()
        new[key] = value._concrete("item assignment") if isinstance(value, Tensor) else value
        self._set_buffer(new)

    # ------------------------------------------------------------------ operators
    def __getitem__(self, key: Any) -> Tensor:
        from .indexing import getitem

        return getitem(self, key)

    def __add__(self, o: Any) -> Tensor:
        return _F.add(self, o)

    def __radd__(self, o: Any) -> Tensor:
        return _F.add(o, self)

    def __sub__(self, o: Any) -> Tensor:
        return _F.sub(self, o)

    def __rsub__(self, o: Any) -> Tensor:
        return _F.sub(o, self)

    def __mul__(self, o: Any) -> Tensor:
        return _F.mul(self, o)

    def __rmul__(self, o: Any) -> Tensor:
        return _F.mul(o, self)

    def __truediv__(self, o: Any) -> Tensor:
        return _F.div(self, o)

    def __rtruediv__(self, o: Any) -> Tensor:
        return _F.div(o, self)

    def __floordiv__(self, o: Any) -> Tensor:
        return _F.floor_divide(self, o)

    def __rfloordiv__(self, o: Any) -> Tensor:
        return _F.floor_divide(o, self)

    def __mod__(self, o: Any) -> Tensor:
        return _F.remainder(self, o)

    def __rmod__(self, o: Any) -> Tensor:
        return _F.remainder(o, self)

    def __pow__(self, o: Any) -> Tensor:
        return _F.pow(self, o)

    def __rpow__(self, o: Any) -> Tensor:
        return _F.pow(o, self)

    def __matmul__(self, o: Any) -> Tensor:
        return _F.matmul(self, o)

    def __rmatmul__(self, o: Any) -> Tensor:
        return _F.matmul(o, self)

    def __neg__(self) -> Tensor:
        return _F.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return _F.abs(self)

    def __invert__(self) -> Tensor:
        return _F.logical_not(self)

    def __and__(self, o: Any) -> Tensor:
        return _F.logical_and(self, o)

    def __rand__(self, o: Any) -> Tensor:
        return _F.logical_and(o, self)

    def __or__(self, o: Any) -> Tensor:
        return _F.logical_or(self, o)

    def __ror__(self, o: Any) -> Tensor:
        return _F.logical_or(o, self)

    def __eq__(self, o: Any) -> Tensor:  # type: ignore[override]
        return _F.eq(self, o)

    def __ne__(self, o: Any) -> Tensor:  # type: ignore[override]
        return _F.ne(self, o)

    def __lt__(self, o: Any) -> Tensor:
        return _F.lt(self, o)

    def __le__(self, o: Any) -> Tensor:
        return _F.le(self, o)

    def __gt__(self, o: Any) -> Tensor:
        return _F.gt(self, o)

    def __ge__(self, o: Any) -> Tensor:
        return _F.ge(self, o)

    # ------------------------------------------------------------------ torch.Tensor methods
    # Each is the function of amber.functional, amber.composite, amber.sorting,
    # amber.dynamic or amber.linalg (bound at the end of this module) applied to self.

    def add(self, b: Any, alpha: Any = 1) -> Tensor:
        """Same as ``amber.add(self, ...)``."""
        return _F.add(self, b, alpha)

    def sub(self, b: Any, alpha: Any = 1) -> Tensor:
        """Same as ``amber.sub(self, ...)``."""
        return _F.sub(self, b, alpha)

    def mul(self, b: Any) -> Tensor:
        """Same as ``amber.mul(self, ...)``."""
        return _F.mul(self, b)

    def div(self, b: Any, rounding_mode: str | None = None) -> Tensor:
        """Same as ``amber.div(self, ...)``."""
        return _F.div(self, b, rounding_mode)

    def pow(self, b: Any) -> Tensor:
        """Same as ``amber.pow(self, ...)``."""
        return _F.pow(self, b)

    def matmul(self, b: Any) -> Tensor:
        """Same as ``amber.matmul(self, ...)``."""
        return _F.matmul(self, b)

    def neg(self) -> Tensor:
        """Same as ``amber.neg(self, ...)``."""
        return _F.neg(self)

    def abs(self) -> Tensor:
        """Same as ``amber.abs(self, ...)``."""
        return _F.abs(self)

    def sign(self) -> Tensor:
        """Same as ``amber.sign(self, ...)``."""
        return _F.sign(self)

    def exp(self) -> Tensor:
        """Same as ``amber.exp(self, ...)``."""
        return _F.exp(self)

    def log(self) -> Tensor:
        """Same as ``amber.log(self, ...)``."""
        return _F.log(self)

    def sqrt(self) -> Tensor:
        """Same as ``amber.sqrt(self, ...)``."""
        return _F.sqrt(self)

    def rsqrt(self) -> Tensor:
        """Same as ``amber.rsqrt(self, ...)``."""
        return _F.rsqrt(self)

    def tanh(self) -> Tensor:
        """Same as ``amber.tanh(self, ...)``."""
        return _F.tanh(self)

    def sigmoid(self) -> Tensor:
        """Same as ``amber.sigmoid(self, ...)``."""
        return _F.sigmoid(self)

    def relu(self) -> Tensor:
        """Same as ``amber.relu(self, ...)``."""
        return _F.relu(self)

    def sin(self) -> Tensor:
        """Same as ``amber.sin(self, ...)``."""
        return _F.sin(self)

    def cos(self) -> Tensor:
        """Same as ``amber.cos(self, ...)``."""
        return _F.cos(self)

    def erf(self) -> Tensor:
        """Same as ``amber.erf(self, ...)``."""
        return _F.erf(self)

    def square(self) -> Tensor:
        """Same as ``amber.square(self, ...)``."""
        return _F.square(self)

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:
        """Same as ``amber.clamp(self, ...)``."""
        return _F.clamp(self, min, max)

    def clip(self, min: Any = None, max: Any = None) -> Tensor:
        """Same as ``amber.clip(self, ...)``."""
        return _F.clip(self, min, max)

    def maximum(self, b: Any) -> Tensor:
        """Same as ``amber.maximum(self, ...)``."""
        return _F.maximum(self, b)

    def minimum(self, b: Any) -> Tensor:
        """Same as ``amber.minimum(self, ...)``."""
        return _F.minimum(self, b)

    def eq(self, b: Any) -> Tensor:
        """Same as ``amber.eq(self, ...)``."""
        return _F.eq(self, b)

    def ne(self, b: Any) -> Tensor:
        """Same as ``amber.ne(self, ...)``."""
        return _F.ne(self, b)

    def lt(self, b: Any) -> Tensor:
        """Same as ``amber.lt(self, ...)``."""
        return _F.lt(self, b)

    def le(self, b: Any) -> Tensor:
        """Same as ``amber.le(self, ...)``."""
        return _F.le(self, b)

    def gt(self, b: Any) -> Tensor:
        """Same as ``amber.gt(self, ...)``."""
        return _F.gt(self, b)

    def ge(self, b: Any) -> Tensor:
        """Same as ``amber.ge(self, ...)``."""
        return _F.ge(self, b)

    def logical_and(self, b: Any) -> Tensor:
        """Same as ``amber.logical_and(self, ...)``."""
        return _F.logical_and(self, b)

    def logical_or(self, b: Any) -> Tensor:
        """Same as ``amber.logical_or(self, ...)``."""
        return _F.logical_or(self, b)

    def logical_not(self) -> Tensor:
        """Same as ``amber.logical_not(self, ...)``."""
        return _F.logical_not(self)

    def sum(self, dim: Any = None, keepdim: builtins.bool = False, dtype: Any = None) -> Tensor:
        """Same as ``amber.sum(self, ...)``."""
        return _F.sum(self, dim, keepdim, dtype)

    def mean(self, dim: Any = None, keepdim: builtins.bool = False, dtype: Any = None) -> Tensor:
        """Same as ``amber.mean(self, ...)``."""
        return _F.mean(self, dim, keepdim, dtype)

    def max(self, dim: Any = None, keepdim: builtins.bool = False, *, other: Any = None) -> Any:
        """Same as ``amber.max(self, ...)``."""
        return _F.max(self, dim, keepdim, other=other)

    def min(self, dim: Any = None, keepdim: builtins.bool = False, *, other: Any = None) -> Any:
        """Same as ``amber.min(self, ...)``."""
        return _F.min(self, dim, keepdim, other=other)

    def amax(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        """Same as ``amber.amax(self, ...)``."""
        return _F.amax(self, dim, keepdim)

    def amin(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        """Same as ``amber.amin(self, ...)``."""
        return _F.amin(self, dim, keepdim)

    def argmax(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        """Same as ``amber.argmax(self, ...)``."""
        return _F.argmax(self, dim, keepdim)

    def argmin(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        """Same as ``amber.argmin(self, ...)``."""
        return _F.argmin(self, dim, keepdim)

    def var(self, dim: Any = None, unbiased: builtins.bool | None = None,
            keepdim: builtins.bool = False, *, correction: builtins.int | None = None) -> Tensor:
        """Same as ``amber.var(self, ...)``."""
        return _F.var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim: Any = None, unbiased: builtins.bool | None = None,
            keepdim: builtins.bool = False, *, correction: builtins.int | None = None) -> Tensor:
        """Same as ``amber.std(self, ...)``."""
        return _F.std(self, dim, unbiased, keepdim, correction=correction)

    def any(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        """Same as ``amber.any(self, ...)``."""
        return _F.any(self, dim, keepdim)

    def all(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        """Same as ``amber.all(self, ...)``."""
        return _F.all(self, dim, keepdim)

    def logsumexp(self, dim: Any, keepdim: builtins.bool = False) -> Tensor:
        """Same as ``amber.logsumexp(self, ...)``."""
        return _F.logsumexp(self, dim, keepdim)

    def prod(self, dim: Any = None, keepdim: builtins.bool = False) -> Tensor:
        """Same as ``amber.prod(self, ...)``."""
        return _F.prod(self, dim, keepdim)

    def reshape(self, *shape: Any) -> Tensor:
        """Same as ``amber.reshape(self, ...)``."""
        return _F.reshape(self, *shape)

    def view(self, *shape: Any) -> Tensor:
        """Same as ``amber.view(self, ...)``."""
        return _F.view(self, *shape)

    def flatten(self, start_dim: builtins.int = 0, end_dim: builtins.int = -1) -> Tensor:
        """Same as ``amber.flatten(self, ...)``."""
        return _F.flatten(self, start_dim, end_dim)

    def permute(self, *dims: Any) -> Tensor:
        """Same as ``amber.permute(self, ...)``."""
        return _F.permute(self, *dims)

    def transpose(self, dim0: builtins.int, dim1: builtins.int) -> Tensor:
        """Same as ``amber.transpose(self, ...)``."""
        return _F.transpose(self, dim0, dim1)

    def squeeze(self, dim: Any = None) -> Tensor:
        """Same as ``amber.squeeze(self, ...)``."""
        return _F.squeeze(self, dim)

    def unsqueeze(self, dim: builtins.int) -> Tensor:
        """Same as ``amber.unsqueeze(self, ...)``."""
        return _F.unsqueeze(self, dim)

    def expand(self, *sizes: Any) -> Tensor:
        """Same as ``amber.expand(self, ...)``."""
        return _F.expand(self, *sizes)

    def expand_as(self, other: Tensor) -> Tensor:
        """Same as ``amber.expand_as(self, ...)``."""
        return _F.expand_as(self, other)

    def broadcast_to(self, shape: Sequence[Any]) -> Tensor:
        """Same as ``amber.broadcast_to(self, ...)``."""
        return _F.broadcast_to(self, shape)

    def split(self, split_size_or_sections: Any, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        """Same as ``amber.split(self, ...)``."""
        return _F.split(self, split_size_or_sections, dim)

    def chunk(self, chunks: builtins.int, dim: builtins.int = 0) -> tuple[Tensor, ...]:
        """Same as ``amber.chunk(self, ...)``."""
        return _F.chunk(self, chunks, dim)

    def narrow(self, dim: builtins.int, start: builtins.int, length: builtins.int) -> Tensor:
        """Same as ``amber.narrow(self, ...)``."""
        return _F.narrow(self, dim, start, length)

    def softmax(self, dim: builtins.int, dtype: Any = None) -> Tensor:
        """Same as ``amber.softmax(self, ...)``."""
        return _F.softmax(self, dim, dtype)

    def log_softmax(self, dim: builtins.int, dtype: Any = None) -> Tensor:
        """Same as ``amber.log_softmax(self, ...)``."""
        return _F.log_softmax(self, dim, dtype)

    def cast(self, dtype: Any) -> Tensor:
        """Same as ``amber.cast(self, ...)``."""
        return _F.cast(self, dtype)

    def clone(self) -> Tensor:
        """Same as ``amber.clone(self, ...)``."""
        return _F.clone(self)

    def repeat(self, *sizes: Any) -> Tensor:
        """Same as ``amber.repeat(self, ...)``."""
        return _F.repeat(self, *sizes)

    def masked_fill(self, mask: Tensor, value: Any) -> Tensor:
        """Same as ``amber.masked_fill(self, ...)``."""
        return _F.masked_fill(self, mask, value)

    def t(self) -> Tensor:
        """Same as ``amber.t(self, ...)``."""
        return _F.t(self)

    def triu(self, diagonal: builtins.int = 0) -> Tensor:
        """Same as ``amber.triu(self, ...)``."""
        return _F.triu(self, diagonal)

    def tril(self, diagonal: builtins.int = 0) -> Tensor:
        """Same as ``amber.tril(self, ...)``."""
        return _F.tril(self, diagonal)

    def flip(self, *dims: Any) -> Tensor:
        """Same as ``amber.flip(self, ...)``."""
        return _F.flip(self, *dims)

    def remainder(self, b: Any) -> Tensor:
        """Same as ``amber.remainder(self, ...)``."""
        return _F.remainder(self, b)

    def floor(self) -> Tensor:
        """Same as ``amber.floor(self, ...)``."""
        return _F.floor(self)

    def ceil(self) -> Tensor:
        """Same as ``amber.ceil(self, ...)``."""
        return _F.ceil(self)

    def round(self, *, decimals: builtins.int = 0) -> Tensor:
        """Same as ``amber.round(self, ...)``."""
        return _F.round(self, decimals=decimals)

    def trunc(self) -> Tensor:
        """Same as ``amber.trunc(self, ...)``."""
        return _F.trunc(self)

    def isnan(self) -> Tensor:
        """Same as ``amber.isnan(self, ...)``."""
        return _composite.isnan(self)

    def isinf(self) -> Tensor:
        """Same as ``amber.isinf(self, ...)``."""
        return _composite.isinf(self)

    def isfinite(self) -> Tensor:
        """Same as ``amber.isfinite(self, ...)``."""
        return _composite.isfinite(self)

    def isclose(self, b: Any, rtol: builtins.float = 1e-05, atol: builtins.float = 1e-08,
                equal_nan: builtins.bool = False) -> Tensor:
        """Same as ``amber.isclose(self, ...)``."""
        return _composite.isclose(self, b, rtol, atol, equal_nan)

    def allclose(self, b: Any, rtol: builtins.float = 1e-05, atol: builtins.float = 1e-08,
                 equal_nan: builtins.bool = False) -> builtins.bool:
        """Same as ``amber.allclose(self, ...)``."""
        return _composite.allclose(self, b, rtol, atol, equal_nan)

    def fmod(self, b: Any) -> Tensor:
        """Same as ``amber.fmod(self, ...)``."""
        return _composite.fmod(self, b)

    def lerp(self, end: Any, weight: Any) -> Tensor:
        """Same as ``amber.lerp(self, ...)``."""
        return _composite.lerp(self, end, weight)

    def clamp_min(self, min: Any) -> Tensor:
        """Same as ``amber.clamp_min(self, ...)``."""
        return _composite.clamp_min(self, min)

    def clamp_max(self, max: Any) -> Tensor:
        """Same as ``amber.clamp_max(self, ...)``."""
        return _composite.clamp_max(self, max)

    def gather(self, dim: builtins.int, index: Tensor) -> Tensor:
        """Same as ``amber.gather(self, ...)``."""
        return _composite.gather(self, dim, index)

    def index_select(self, dim: builtins.int, index: Tensor) -> Tensor:
        """Same as ``amber.index_select(self, ...)``."""
        return _composite.index_select(self, dim, index)

    def scatter(self, dim: builtins.int, index: Tensor, src: Any = None, *, value: Any = None,
                reduce: str | None = None) -> Tensor:
        """Same as ``amber.scatter(self, ...)``."""
        return _composite.scatter(self, dim, index, src, value=value, reduce=reduce)

    def scatter_add(self, dim: builtins.int, index: Tensor, src: Tensor) -> Tensor:
        """Same as ``amber.scatter_add(self, ...)``."""
        return _composite.scatter_add(self, dim, index, src)

    def roll(self, shifts: Any, dims: Any = None) -> Tensor:
        """Same as ``amber.roll(self, ...)``."""
        return _composite.roll(self, shifts, dims)

    def diag(self, diagonal: builtins.int = 0) -> Tensor:
        """Same as ``amber.diag(self, ...)``."""
        return _composite.diag(self, diagonal)

    def repeat_interleave(self, repeats: Any, dim: builtins.int | None = None, *,
                          output_size: builtins.int | None = None) -> Tensor:
        """Same as ``amber.repeat_interleave(self, ...)``."""
        return _composite.repeat_interleave(self, repeats, dim, output_size=output_size)

    def cumsum(self, dim: builtins.int, *, dtype: Any = None) -> Tensor:
        """Same as ``amber.cumsum(self, ...)``."""
        return _composite.cumsum(self, dim, dtype=dtype)

    def cumprod(self, dim: builtins.int, *, dtype: Any = None) -> Tensor:
        """Same as ``amber.cumprod(self, ...)``."""
        return _composite.cumprod(self, dim, dtype=dtype)

    def logcumsumexp(self, dim: builtins.int) -> Tensor:
        """Same as ``amber.logcumsumexp(self, ...)``."""
        return _composite.logcumsumexp(self, dim)

    def index_add(self, dim: builtins.int, index: Tensor, source: Tensor, *,
                  alpha: Any = 1) -> Tensor:
        """Same as ``amber.index_add(self, ...)``."""
        return _composite.index_add(self, dim, index, source, alpha=alpha)

    def index_copy(self, dim: builtins.int, index: Tensor, source: Tensor) -> Tensor:
        """Same as ``amber.index_copy(self, ...)``."""
        return _composite.index_copy(self, dim, index, source)

    def index_fill(self, dim: builtins.int, index: Tensor, value: Any) -> Tensor:
        """Same as ``amber.index_fill(self, ...)``."""
        return _composite.index_fill(self, dim, index, value)

    def take_along_dim(self, indices: Tensor, dim: builtins.int | None = None) -> Tensor:
        """Same as ``amber.take_along_dim(self, ...)``."""
        return _composite.take_along_dim(self, indices, dim)

    def cummax(self, dim: builtins.int) -> Any:
        """Same as ``amber.cummax(self, ...)``."""
        return _composite.cummax(self, dim)

    def cummin(self, dim: builtins.int) -> Any:
        """Same as ``amber.cummin(self, ...)``."""
        return _composite.cummin(self, dim)

    def diff(self, n: builtins.int = 1, dim: builtins.int = -1, prepend: Any = None,
             append: Any = None) -> Tensor:
        """Same as ``amber.diff(self, ...)``."""
        return _composite.diff(self, n, dim, prepend, append)

    def count_nonzero(self, dim: Any = None) -> Tensor:
        """Same as ``amber.count_nonzero(self, ...)``."""
        return _composite.count_nonzero(self, dim)

    def bincount(self, weights: Tensor | None = None, minlength: builtins.int = 0) -> Tensor:
        """Same as ``amber.bincount(self, ...)``."""
        return _composite.bincount(self, weights, minlength)

    def sort(self, dim: builtins.int = -1, descending: builtins.bool = False,
             stable: builtins.bool = False) -> Any:
        """Same as ``amber.sort(self, ...)``."""
        return _sorting.sort(self, dim, descending, stable)

    def argsort(self, dim: builtins.int = -1, descending: builtins.bool = False,
                stable: builtins.bool = False) -> Tensor:
        """Same as ``amber.argsort(self, ...)``."""
        return _sorting.argsort(self, dim, descending, stable)

    def topk(self, k: builtins.int, dim: builtins.int = -1, largest: builtins.bool = True,
             sorted: builtins.bool = True) -> Any:
        """Same as ``amber.topk(self, ...)``."""
        return _sorting.topk(self, k, dim, largest, sorted)

    def msort(self) -> Tensor:
        """Same as ``amber.msort(self, ...)``."""
        return _sorting.msort(self)

    def kthvalue(self, k: builtins.int, dim: builtins.int = -1,
                 keepdim: builtins.bool = False) -> Any:
        """Same as ``amber.kthvalue(self, ...)``."""
        return _sorting.kthvalue(self, k, dim, keepdim)

    def median(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Any:
        """Same as ``amber.median(self, ...)``."""
        return _sorting.median(self, dim, keepdim)

    def nonzero(self, *, as_tuple: builtins.bool = False) -> Any:
        """Same as ``amber.nonzero(self, ...)``."""
        return _dynamic.nonzero(self, as_tuple=as_tuple)

    def argwhere(self) -> Tensor:
        """Same as ``amber.argwhere(self, ...)``."""
        return _dynamic.argwhere(self)

    def masked_select(self, mask: Tensor) -> Tensor:
        """Same as ``amber.masked_select(self, ...)``."""
        return _dynamic.masked_select(self, mask)

    def unique(self, sorted: builtins.bool = True, return_inverse: builtins.bool = False,
               return_counts: builtins.bool = False, dim: builtins.int | None = None) -> Any:
        """Same as ``amber.unique(self, ...)``."""
        return _dynamic.unique(self, sorted, return_inverse, return_counts, dim)

    def diagonal(self, offset: builtins.int = 0, dim1: builtins.int = 0,
                 dim2: builtins.int = 1) -> Tensor:
        """Same as ``amber.diagonal(self, ...)``."""
        return _composite.diagonal_(self, offset, dim1, dim2)

    def norm(self, p: Any = "fro", dim: Any = None, keepdim: builtins.bool = False,
             dtype: Any = None) -> Tensor:
        """Same as ``amber.norm(self, ...)``."""
        return _linalg.torch_norm(self, p, dim, keepdim, dtype)

    def outer(self, b: Tensor) -> Tensor:
        """Same as ``amber.outer(self, ...)``."""
        return _F.outer(self, b)

    def view_as(self, other: Tensor) -> Tensor:
        """``self.reshape(other.shape)``."""
        return self.reshape(other.shape)

    def where(self, condition: Any, other: Any) -> Tensor:
        """``x.where(condition, y)`` is ``amber.where(condition, x, y)`` (as
        torch.Tensor.where)."""
        return _F.where(condition, self, other)

    def scatter_(self, *args: Any, **kwargs: Any) -> Tensor:
        """In-place ``amber.scatter(self, ...)``."""
        return self._inplace(lambda s: _composite.scatter(s, *args, **kwargs))

    def scatter_add_(self, *args: Any, **kwargs: Any) -> Tensor:
        """In-place ``amber.scatter_add(self, ...)``."""
        return self._inplace(lambda s: _composite.scatter_add(s, *args, **kwargs))

    def index_add_(self, *args: Any, **kwargs: Any) -> Tensor:
        """In-place ``amber.index_add(self, ...)``."""
        return self._inplace(lambda s: _composite.index_add(s, *args, **kwargs))

    def index_fill_(self, *args: Any, **kwargs: Any) -> Tensor:
        """In-place ``amber.index_fill(self, ...)``."""
        return self._inplace(lambda s: _composite.index_fill(s, *args, **kwargs))

    def index_copy_(self, *args: Any, **kwargs: Any) -> Tensor:
        """In-place ``amber.index_copy(self, ...)``."""
        return self._inplace(lambda s: _composite.index_copy(s, *args, **kwargs))



FUNCTIONAL_METHODS: tuple[str, ...] = (
    "add", "sub", "mul", "div", "pow", "matmul", "neg", "abs", "sign", "exp", "log", "sqrt",
    "rsqrt", "tanh", "sigmoid", "relu", "sin", "cos", "erf", "square", "clamp", "clip",
    "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
    "logical_not", "where", "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin",
    "var", "std", "any", "all", "logsumexp", "prod", "reshape", "view", "flatten", "permute",
    "transpose", "squeeze", "unsqueeze", "expand", "expand_as", "broadcast_to", "split",
    "chunk", "narrow", "softmax", "log_softmax", "cast", "clone", "repeat", "masked_fill",
    "gather", "t", "triu", "tril", "flip", "remainder", "floor", "ceil", "round", "trunc",
)
"""The methods that apply the amber.functional function of their name (each has a
PyTorch cross-check)."""


def _wrap_array(data: np.ndarray) -> Tensor:
    """``Tensor._wrap`` as a plain function (what ``bind`` calls for every op)."""
    t = _object_new(Tensor)
    t._data = data if type(data) is np.ndarray else np.asarray(data)
    t.requires_grad = False
    t.grad = None
    t._node = None
    t._aval = None
    t._value = None
    return t


_object_new = object.__new__
_registry_module._Tensor = Tensor  # what a primitive's call builds around its result


def _size(size: Any) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(d) for d in size)


from . import composite as _composite  # noqa: E402
from . import dynamic as _dynamic  # noqa: E402
from . import functional as _F  # noqa: E402  (circular: functional builds on Tensor)
from . import linalg as _linalg  # noqa: E402
from . import sorting as _sorting  # noqa: E402

# NOTE: the hottest methods are amber.functional's functions themselves (one Python frame
# less per op than a forwarding method; same signatures, self as the first operand).
for _name, _fname in (("__add__", "add"), ("__sub__", "sub"), ("__mul__", "mul"),
                      ("__truediv__", "div"), ("__matmul__", "matmul"), ("__neg__", "neg"),
                      *((n, n) for n in ("add", "sub", "mul", "matmul", "exp", "log", "tanh",
                                         "sigmoid", "sqrt", "sum", "mean"))):
    setattr(Tensor, _name, getattr(_F, _fname))

COMPOSED_METHODS: list[str] = (
    "isnan isinf isfinite isclose allclose fmod lerp clamp_min clamp_max gather "
    "index_select scatter scatter_add roll diag repeat_interleave cumsum cumprod "
    "logcumsumexp index_add index_copy index_fill take_along_dim cummax cummin diff "
    "count_nonzero bincount sort argsort topk msort kthvalue median nonzero argwhere "
    "masked_select unique diagonal norm outer scatter_ scatter_add_ index_add_ index_fill_ "
    "index_copy_").split()
"""The methods built on amber.composite, amber.sorting, amber.dynamic and amber.linalg
(each has a PyTorch cross-check)."""
