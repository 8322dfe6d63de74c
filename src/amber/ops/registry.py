"""The op registry: one entry per primitive, the single source of truth.

A primitive is defined once: its name, attribute schema, shape/dtype inference, NumPy
kernel and VJP. The VJP is written in amber ops, so gradients are themselves
differentiable (higher order) and can be traced like any other amber code.

One ``bind`` path serves every mode: concrete inputs run the kernel (and record a tape
node when gradients are on); while a trace is active, tracer inputs are handed to it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._dtype import COMPUTE, DType, from_numpy_dtype
from ..errors import AmberError, DTypeError, ShapeError
from . import _table

if TYPE_CHECKING:
    from ..tensor import Tensor

Dim = Any  # int, or a symbolic dimension under capture
Shape = tuple[Dim, ...]


@dataclass(frozen=True)
class Aval:
    """Abstract value: what inference knows about a tensor (dtype and shape)."""

    shape: Shape
    dtype: DType

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype.name}[{', '.join(str(d) for d in self.shape)}]"


InferFn = Callable[..., Aval]
VjpFn = Callable[..., Sequence["Tensor | None"]]


ACCURACY = ("exact", "ulp4", "sum")
"""Accuracy classes of docs/opset.md section 5: bit-exact; within 4 ULP of the correctly
rounded result; within the sum bound (floats; integers are exact)."""


class Primitive:
    """A registered primitive op. Calling it binds it to tensor arguments.

    Its schema (dtypes, attributes, accuracy class, ONNX operator, opset version, C
    functions) is declared here once; ``scripts/gen_ops.py`` writes the copies the C
    runtime and docs/opset.md need, and the test tables read it from here."""

    __slots__ = ("name", "impl", "eager", "infer", "vjp", "attrs", "doc", "n_inputs",
                 "dtypes", "accuracy", "onnx", "since", "c", "doc_dtypes", "doc_out",
                 "any_dtype")

    def __init__(
        self,
        name: str,
        impl: Callable[..., np.ndarray],
        infer: InferFn,
        attrs: dict[str, str],
        n_inputs: int | None,
        schema: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.impl = impl  # the NumPy reference kernel
        # what eager mode runs: the reference, or libamber's kernel (see ckernels.py)
        self.eager: Callable[..., np.ndarray] = impl
        self.infer = infer
        self.vjp: VjpFn | None = None
        self.attrs = attrs  # attribute name -> type description (for docs, IR verification)
        self.doc = (impl.__doc__ or "").strip()
        self.n_inputs = n_inputs  # None = variadic
        sc = schema or {}
        # dtypes the first operand may have (other operands are checked by `infer`)
        self.dtypes: tuple[DType, ...] | None = sc.get("dtypes")
        self.accuracy: str = sc.get("accuracy", "exact")
        if self.accuracy not in ACCURACY:
            raise AmberError(f"primitive {name!r}: accuracy must be one of {ACCURACY}")
        self.onnx: str | None = sc.get("onnx")  # an ONNX operator computing it exactly
        self.since: int = sc.get("since", 1)  # the opset version that introduced it
        self.c: tuple[str, str] | None = sc.get("c")  # C (infer, kernel); None: by kind
        self.doc_dtypes: str | None = sc.get("doc_dtypes")  # docs/opset.md overrides
        self.doc_out: str | None = sc.get("doc_out")
        self.any_dtype = False  # True: takes storage dtypes as they are (see primitive())

    @property
    def kind(self) -> str:
        """``unary``, ``binary`` or ``compare`` for elementwise primitives whose inference
        is the shared rule of that name (``_infer.py``), else ``other``."""
        return getattr(self.infer, "rule", "other")

    def def_vjp(self, fn: VjpFn) -> VjpFn:
        """Register the VJP: ``fn(g, out, *inputs, **attrs) -> cotangent per input``."""
        self.vjp = fn
        return fn

    def __call__(self, *args: Tensor, **attrs: Any) -> Tensor:
        """Apply the primitive to tensors: run (or trace) it and record it on the
        autograd tape."""
        if TraceHooks.active and (any(a._data is None for a in args)
                                  or _symbolic_attrs(attrs)):
            assert TraceHooks.bind is not None
            out = TraceHooks.bind(self, args, attrs)
        else:
            n = len(args)
            if n == 1:
                return self.apply(args[0], None, attrs)
            if n == 2:
                return self.apply(args[0], args[1], attrs)
            if _intercept is not None:
                return _intercept(self, args, attrs)
            try:
                data = self.eager(*[a._data for a in args], **attrs)
            except AmberError:
                raise  # already typed and worded by the kernel (e.g. OutOfRangeError)
            except (ValueError, IndexError, TypeError, np.exceptions.AxisError) as err:
                raise _kernel_failure(self, args, attrs, err) from None
            out = _wrap(data)
        for a in args:
            if a.requires_grad:
                if self.vjp is not None and _grad_state.enabled and out.dtype.is_floating:
                    out.requires_grad = True  # (integer and bool results carry no gradient)
                    out._node = Node(self, args, attrs, out)
                break
        return out

    def apply(self, a: Tensor, b: Tensor | None = None,
              attrs: dict[str, Any] | None = None) -> Tensor:
        """``self(a, **attrs)`` or ``self(a, b, **attrs)`` for concrete tensors (never
        tracers) and attributes that are plain values: what ``__call__`` does for one or
        two operands, and the front end's direct path for same-dtype float arithmetic,
        unary functions, sums and matmul.

        NOTE: every eager op's path, kept to one frame down to the kernel: the result's
        Tensor built inline (``tensor._wrap_array``'s lines: a call costs a tenth of a
        tiny op), the grad mode read only when an operand requires grad."""
        if _intercept is not None:
            return _intercept(self, (a,) if b is None else (a, b), attrs or {})
        try:
            if b is None:
                data = self.eager(a._data, **attrs) if attrs else self.eager(a._data)
            else:
                data = self.eager(a._data, b._data, **attrs) if attrs else \
                    self.eager(a._data, b._data)
        except AmberError:
            raise  # already typed and worded by the kernel (e.g. OutOfRangeError)
        except (ValueError, IndexError, TypeError, np.exceptions.AxisError) as err:
            args = (a,) if b is None else (a, b)
            raise _kernel_failure(self, args, attrs or {}, err) from None
        out = _object_new(_Tensor)
        out._data = data if type(data) is np.ndarray else np.asarray(data)
        out.requires_grad = False
        out.grad = None
        out._node = None
        out._aval = None
        out._value = None
        if (a.requires_grad or (b is not None and b.requires_grad)) and self.vjp is not None \
                and _grad_state.enabled and out.dtype.is_floating:
            out.requires_grad = True  # (integer and bool results carry no gradient)
            out._node = Node(self, (a,) if b is None else (a, b), attrs or {}, out)
        return out

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


REGISTRY: dict[str, Primitive] = _table.REGISTRY  # (a leaf module: see _table.py)


_COMPUTE_NP: dict[np.dtype, np.dtype] = {d.np: c.np for d, c in COMPUTE.items()}


def _run_wide(impl: Callable[..., np.ndarray], xs: Sequence[np.ndarray],
              attrs: dict[str, Any]) -> np.ndarray:
    narrow = next(x.dtype for x in xs if x.dtype in _COMPUTE_NP)
    out = impl(*(x.astype(_COMPUTE_NP[x.dtype]) if x.dtype in _COMPUTE_NP else x
                 for x in xs), **attrs)
    if out.dtype != _COMPUTE_NP[narrow]:
        return out
    with np.errstate(over="ignore"):  # float16 overflow is inf, as specified
        return out.astype(narrow)


def computed_wide(impl: Callable[..., np.ndarray], n_inputs: int | None = None,
                  has_attrs: bool = True) -> Callable[..., np.ndarray]:
    """``impl`` with opset 5's rule for storage dtypes: operands of float16/bfloat16
    (int8/uint8/int16) are widened to float32 (int32), ``impl`` runs, and a result of the
    wide dtype is rounded to nearest-even (wrapped) back to the operands' dtype.

    NOTE: on every eager op's path, so the common case costs one attribute test per
    operand: the storage dtypes are exactly the non-bool dtypes narrower than 4 bytes."""
    kernel: Callable[..., np.ndarray]
    if n_inputs == 1 and not has_attrs:
        def kernel1(x: np.ndarray) -> np.ndarray:
            if x.itemsize < 4 and x.dtype.kind != "b":
                return _run_wide(impl, (x,), {})
            return impl(x)
        kernel = kernel1
    elif n_inputs == 2 and not has_attrs:
        def kernel2(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            if (x.itemsize < 4 and x.dtype.kind != "b") or \
                    (y.itemsize < 4 and y.dtype.kind != "b"):
                return _run_wide(impl, (x, y), {})
            return impl(x, y)
        kernel = kernel2
    else:
        def kernel_n(*xs: np.ndarray, **attrs: Any) -> np.ndarray:
            for x in xs:
                if x.itemsize < 4 and x.dtype.kind != "b":
                    return _run_wide(impl, xs, attrs)
            return impl(*xs, **attrs)
        kernel = kernel_n
    kernel.__doc__ = impl.__doc__
    kernel.__wrapped__ = impl  # type: ignore[attr-defined,union-attr]
    return kernel


def primitive(
    name: str, *, infer: InferFn, attrs: dict[str, str] | None = None,
    n_inputs: int | None = 1, dtypes: tuple[DType, ...] | None = None,
    accuracy: str = "exact", onnx: str | None = None, since: int = 1,
    c: tuple[str, str] | None = None, doc_dtypes: str | None = None,
    doc_out: str | None = None, any_dtype: bool = False,
) -> Callable[[Callable[..., np.ndarray]], Primitive]:
    """Decorator: register the NumPy kernel below it as primitive ``name``.

    ``dtypes``: what the first operand may be (a named set of ``amber._dtype``);
    ``accuracy``: its class in docs/opset.md section 5 (``exact``, ``ulp4``, ``sum``);
    ``onnx``: the ONNX operator that computes it exactly, for a one-to-one lowering
    (others register one with ``amber.onnx.export.lowering``); ``since``: the opset
    version that introduced it; ``c``: its C ``(infer, kernel)`` functions when they are
    not the elementwise ones (``infer_unary``/``k_unary``, ...) or
    ``infer_<name>``/``k_<name>``; ``doc_dtypes``/``doc_out``: the dtype and output
    columns of docs/opset.md's summary when the default wording does not fit. The kernel
    computes storage dtypes (float16, ...) in their compute dtype (:func:`computed_wide`)
    unless ``any_dtype`` says it handles every dtype itself (casts, data movement)."""

    def register(impl: Callable[..., np.ndarray]) -> Primitive:
        if name in REGISTRY:
            raise AmberError(f"primitive {name!r} registered twice")
        schema = {"dtypes": dtypes, "accuracy": accuracy, "onnx": onnx, "since": since,
                  "c": c, "doc_dtypes": doc_dtypes, "doc_out": doc_out}
        if not any_dtype:
            impl = computed_wide(impl, n_inputs, bool(attrs))
        p = Primitive(name, impl, infer, dict(attrs or {}), n_inputs, schema)
        p.any_dtype = any_dtype
        REGISTRY[name] = p
        return p

    return register


# --------------------------------------------------------------------------- grad mode

class _GradState(threading.local):
    enabled: bool = True


_grad_state = _GradState()


def is_grad_enabled() -> bool:
    return _grad_state.enabled


class _GradMode:
    """Context manager / decorator setting whether ops record the autograd tape."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._prev: list[bool] = []

    def __enter__(self) -> None:
        self._prev.append(_grad_state.enabled)
        _grad_state.enabled = self._enabled

    def __exit__(self, *exc: object) -> None:
        _grad_state.enabled = self._prev.pop()

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        @functools.wraps(fn)
        def wrapper(*a: Any, **k: Any) -> Any:
            with _GradMode(self._enabled):
                return fn(*a, **k)

        return wrapper


def no_grad() -> _GradMode:
    """Ops inside do not record gradients: ``with am.no_grad(): ...``."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    return _GradMode(True)


def set_grad_enabled(mode: bool) -> _GradMode:
    return _GradMode(mode)


class _InferenceMode(_GradMode):
    """``am.inference_mode()``: ``am.no_grad()`` under PyTorch's name (amber has no
    separate inference tensors); ``inference_mode(False)`` changes nothing."""

    _depth = threading.local()

    def __init__(self, mode: bool = True) -> None:
        super().__init__(False)
        self._mode = mode

    def __enter__(self) -> None:
        if self._mode:
            super().__enter__()
            _InferenceMode._depth.n = getattr(_InferenceMode._depth, "n", 0) + 1

    def __exit__(self, *exc: object) -> None:
        if self._mode:
            _InferenceMode._depth.n -= 1
            super().__exit__(*exc)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*a: Any, **k: Any) -> Any:
            with _InferenceMode(mode):
                return fn(*a, **k)

        return wrapper


def inference_mode(mode: Any = True) -> Any:
    """Context manager and decorator (``@am.inference_mode()`` or bare
    ``@am.inference_mode``): ops inside record no gradients, as ``am.no_grad()``."""
    if callable(mode):  # used as a bare decorator
        return _InferenceMode(True)(mode)
    return _InferenceMode(bool(mode))


def is_inference_mode_enabled() -> bool:
    """Whether code runs inside ``am.inference_mode()``."""
    return getattr(_InferenceMode._depth, "n", 0) > 0


# --------------------------------------------------------------------------- tape

class Node:
    """One tape entry: ``out = prim(*inputs, **attrs)``. ``inputs`` is None once freed."""

    __slots__ = ("prim", "inputs", "attrs", "out_ref")

    def __init__(self, prim: Primitive, inputs: tuple[Tensor, ...], attrs: dict[str, Any],
                 out: Tensor) -> None:
        self.prim = prim
        self.inputs: tuple[Tensor, ...] | None = inputs
        self.attrs = attrs
        # NOTE: weak, to avoid an out <-> node cycle; consumers keep `out` alive.
        self.out_ref = weakref.ref(out)
        for a in inputs:  # autograd may read it: an in-place change must be refused
            a._consumed = True


# --------------------------------------------------------------------------- bind

class TraceHooks:
    """Set by capture: ``bind`` hands ops with tracer inputs to the active trace."""

    active: int = 0  # number of traces in progress (fast check in bind)
    bind: Callable[[Primitive, tuple[Tensor, ...], dict[str, Any]], Tensor] | None = None
    # a 0-d tensor of a symbolic size's run-time value (creation functions use it)
    dim_scalar: Callable[[Any, Any], Tensor] | None = None


def _into_reference(name: str, x: np.ndarray, out: np.ndarray) -> None:
    out[...] = REGISTRY[name].eager(x)


class EagerHooks:
    """Set by ``ops.ckernels`` when it installs libamber's kernels (layers above reach
    them through ``amber.control``): ``into(name, x, out)`` writes an elementwise op's
    eager result into ``out``."""

    into: Callable[[str, np.ndarray, np.ndarray], None] = staticmethod(_into_reference)


def abstract_eval(prim: Primitive, avals: Sequence[Aval], attrs: dict[str, Any]) -> Aval:
    """Shape/dtype inference; raises ShapeError/DTypeError naming the op and operands."""
    return prim.infer(*avals, **attrs)


def _kernel_failure(prim: Primitive, args: tuple[Tensor, ...], attrs: dict[str, Any],
                    err: Exception) -> AmberError:
    arrays = [np.asarray(a._data) for a in args]
    avals = [Aval(tuple(x.shape), from_numpy_dtype(x.dtype)) for x in arrays]
    try:
        abstract_eval(prim, avals, attrs)
    except (ShapeError, DTypeError) as typed:
        return typed
    shapes = ", ".join(str(a) for a in avals)
    return AmberError(f"{prim.name}: kernel failed on ({shapes}) with {attrs}: {err}")


def _symbolic_attrs(attrs: dict[str, Any]) -> bool:
    """True if an attribute holds a symbolic size (only possible during capture)."""
    for v in attrs.values():
        if getattr(v, "_amber_symbolic_int", False):
            return True
        if isinstance(v, (tuple, list)) and any(
                getattr(x, "_amber_symbolic_int", False) for x in v):
            return True
    return False


def _wrap(data: np.ndarray) -> Tensor:
    """A new Tensor around a kernel's result. On first use this rebinds itself to
    ``tensor._wrap_array`` (tensor.py imports this module, so not at import time)."""
    global _wrap
    from ..tensor import _wrap_array

    _wrap = _wrap_array
    return _wrap_array(data)


_object_new = object.__new__
_Tensor: Any = None  # the Tensor class, set by tensor.py (which imports this module)

_intercept: Callable[[Primitive, tuple[Tensor, ...], dict[str, Any]], Tensor] | None = None
"""When set, every application of a primitive to concrete tensors goes to it instead
(tests check infer rules against kernels this way); it runs the op with
:func:`apply_unintercepted`."""


def apply_unintercepted(prim: Primitive, args: tuple[Tensor, ...],
                        attrs: dict[str, Any]) -> Tensor:
    """``prim(*args, **attrs)`` bypassing :data:`_intercept` (for the interceptor)."""
    global _intercept
    saved, _intercept = _intercept, None
    try:
        return prim(*args, **attrs)
    finally:
        _intercept = saved


def bind(prim: Primitive, args: tuple[Tensor, ...], attrs: dict[str, Any]) -> Tensor:
    """Apply ``prim`` to tensors (``prim(*args, **attrs)``)."""
    return prim(*args, **attrs)
