"""The Tensor: an n-dimensional array of one dtype with optional autograd history.

A Tensor wraps a NumPy array (eager) or, during capture, stands for an IR value (a
tracer: ``_data is None``). Every operation goes through the op registry's ``bind``."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from . import _dtype as D
from .errors import AmberError
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


# Methods that simply forward to the function of the same name in amber.functional.
_METHODS = (
    "add sub mul div pow matmul neg abs sign exp log sqrt rsqrt tanh sigmoid relu sin cos erf "
    "square clamp clip maximum minimum eq ne lt le gt ge logical_and logical_or logical_not "
    "where sum mean max min amax amin argmax argmin var std any all logsumexp prod "
    "reshape view flatten permute transpose squeeze unsqueeze expand expand_as broadcast_to "
    "split chunk narrow softmax log_softmax cast clone repeat masked_fill gather t "
    "triu tril flip remainder floor ceil round trunc"
).split()


def _forwarder(name: str) -> Any:
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        return getattr(_F, name)(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"Same as ``amber.{name}(self, ...)``."
    return method


for _name in _METHODS:
    setattr(Tensor, _name, _forwarder(_name))

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

def _size(size: Any) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(int(d) for d in size)


Tensor.view_as = lambda self, other: self.reshape(other.shape)  # type: ignore[attr-defined]


def _where_method(self: Tensor, condition: Any, other: Any) -> Tensor:
    """``x.where(condition, y)`` is ``amber.where(condition, x, y)`` (as torch.Tensor.where)."""
    return _F.where(condition, self, other)


Tensor.where = _where_method  # type: ignore[attr-defined]

from . import functional as _F  # noqa: E402  (circular: functional builds on Tensor)

COMPOSED_METHODS: list[str] = []  # names _attach_methods adds (each has a PyTorch cross-check)


def _attach_methods() -> None:
    """Methods forwarding to ``amber.composite``, ``amber.sorting``, ``amber.dynamic`` and
    ``amber.linalg`` (torch.Tensor's names), and the in-place scatters."""
    from . import composite, dynamic, linalg, sorting

    table = {
        composite: "isnan isinf isfinite isclose allclose fmod lerp clamp_min clamp_max "
                   "gather index_select scatter scatter_add roll diag repeat_interleave "
                   "cumsum cumprod logcumsumexp index_add index_copy index_fill "
                   "take_along_dim cummax cummin diff count_nonzero bincount",
        sorting: "sort argsort topk msort kthvalue median",
        dynamic: "nonzero argwhere masked_select unique",
    }
    for module, names in table.items():
        for name in names.split():
            setattr(Tensor, name, _forwarder_to(module, name))
            COMPOSED_METHODS.append(name)
    extra = {
        "diagonal": _forwarder_to(composite, "diagonal_", "diagonal"),
        "norm": _forwarder_to(linalg, "torch_norm", "norm"),
        "outer": _forwarder("outer"),
        "scatter_": lambda self, *a, **k: self._inplace(lambda s: composite.scatter(s, *a, **k)),
        "scatter_add_": lambda self, *a, **k: self._inplace(
            lambda s: composite.scatter_add(s, *a, **k)),
        "index_add_": lambda self, *a, **k: self._inplace(
            lambda s: composite.index_add(s, *a, **k)),
        "index_fill_": lambda self, *a, **k: self._inplace(
            lambda s: composite.index_fill(s, *a, **k)),
        "index_copy_": lambda self, *a, **k: self._inplace(
            lambda s: composite.index_copy(s, *a, **k)),
    }
    for name, method in extra.items():
        setattr(Tensor, name, method)
        COMPOSED_METHODS.append(name)

def _forwarder_to(module: Any, name: str, public: str | None = None) -> Any:
    fn = getattr(module, name)
    public = public or name

    def method(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        return fn(self, *args, **kwargs)

    method.__name__ = public
    method.__doc__ = f"Same as ``amber.{public}(self, ...)``."
    return method


_attach_methods()
