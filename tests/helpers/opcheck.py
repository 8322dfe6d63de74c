"""One checker for any amber op: forward against an independent NumPy reference,
gradients against central finite differences in float64 (first and second order), and
every primitive's ``infer`` rule against what its kernel actually returned."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ml_dtypes
import numpy as np

import amber as am
from amber.ops import registry
from amber.ops.registry import Aval, abstract_eval
from helpers import refs

Array = np.ndarray
OpFn = Callable[..., Any]

# --------------------------------------------------------------------------- comparisons


ULP_TRANSCENDENTAL = 4  # docs/opset.md: exp, log, tanh, sigmoid, sin, cos, erf, pow


def assert_close(actual: Any, expected: Any, *, rtol: float = 0.0, atol: float = 0.0,
                 ulp: float = 0.0, what: str = "value") -> None:
    """Same shape and values; NaN matches NaN, infinities match exactly. Integer and bool
    arrays (and any comparison with rtol = atol = ulp = 0) must be bit-for-bit equal.
    ``ulp``: allowed distance in units in the last place of ``expected``'s dtype."""
    a = np.asarray(actual)
    e = np.asarray(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    if ulp and refs.is_float(e.dtype):
        atol = 0.0
        rtol = 0.0
        spacing = np.abs(np.spacing(np.abs(e).astype(e.dtype))).astype(np.float64)
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        with np.errstate(invalid="ignore"):
            close = np.abs(a64 - e64) <= ulp * spacing
        bad = ~(close | (np.isnan(a64) & np.isnan(e64)) | (np.isinf(e64) & (a64 == e64)))
    elif a.dtype.kind in "biu" or e.dtype.kind in "biu" or (rtol == 0 and atol == 0):
        if refs.is_float(a.dtype) or refs.is_float(e.dtype):
            same = (a == e) | (np.isnan(a.astype(np.float64)) & np.isnan(e.astype(np.float64)))
        else:
            same = a == e
        bad = ~np.asarray(same)
    else:
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        nan_ok = np.isnan(a64) & np.isnan(e64)
        inf_ok = np.isinf(e64) & (a64 == e64)
        with np.errstate(invalid="ignore"):
            close = np.abs(a64 - e64) <= atol + rtol * np.abs(e64)
        bad = ~(nan_ok | inf_ok | close)
    if np.any(bad):
        idx = tuple(int(i[0]) for i in np.nonzero(bad))
        raise AssertionError(
            f"{what}: {int(np.sum(bad))} of {a.size} elements differ (rtol={rtol}, atol={atol}); "
            f"first at {idx}: got {a[idx]!r}, expected {e[idx]!r}"
        )


def forward_tol(dtype: Any, kind: str = "exact") -> tuple[float, float]:
    """(rtol, atol) for a forward comparison. ``kind``: exact (correctly rounded ops),
    transcendental (a few ULP) or accumulate (sums, matmul, conv: order-dependent)."""
    dt = np.dtype(dtype)
    if not refs.is_float(dt) or kind == "exact":
        return 0.0, 0.0
    eps = float(ml_dtypes.finfo(dt).eps)
    if kind == "transcendental":
        return 8 * eps, 8 * eps
    return 64 * eps, 64 * eps


# --------------------------------------------------------------------------- infer checks


class InferLog:
    """Primitives bound while an :func:`infer_checked` block was active."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Aval, ...], Aval]] = []

    @property
    def names(self) -> set[str]:
        return {name for name, _, _ in self.calls}


@contextlib.contextmanager
def infer_checked() -> Iterator[InferLog]:
    """Inside the block, every eager primitive application is checked: ``abstract_eval``
    on the input avals must succeed and predict exactly the shape and dtype the NumPy
    kernel produced."""
    log = InferLog()
    original = registry.apply_unintercepted

    def checking(prim: registry.Primitive, args: tuple[Any, ...],
                 attrs: dict[str, Any]) -> Any:
        avals = tuple(Aval(tuple(a.shape), a.dtype) for a in args)
        try:
            want = abstract_eval(prim, avals, attrs)
        except (am.ShapeError, am.DTypeError) as err:
            # The op must then fail in eager mode too (with the same error class).
            try:
                original(prim, args, attrs)
            except type(err):
                raise err from None
            raise AssertionError(
                f"{prim.name}: infer rejects {[str(a) for a in avals]} {attrs} ({err}) but "
                f"the kernel accepted them"
            ) from None
        out = original(prim, args, attrs)
        got = Aval(tuple(out.shape), out.dtype)
        assert tuple(want.shape) == got.shape and want.dtype is got.dtype, (
            f"{prim.name}: infer predicts {want} for {[str(a) for a in avals]} {attrs}, "
            f"the kernel returned {got}"
        )
        log.calls.append((prim.name, avals, got))
        return out

    saved = registry._intercept
    registry._intercept = checking
    try:
        yield log
    finally:
        registry._intercept = saved


# --------------------------------------------------------------------------- evaluation


def _tensors(arrays: Sequence[Array], requires_grad: Sequence[bool] = ()) -> list[am.Tensor]:
    out = []
    for i, a in enumerate(arrays):
        t = am.tensor(np.array(a, copy=True))
        if i < len(requires_grad) and requires_grad[i]:
            t.requires_grad_(True)
        out.append(t)
    return out


def _as_array(out: Any) -> Array:
    assert isinstance(out, am.Tensor), f"op returned {type(out).__name__}, not a Tensor"
    return np.array(out.numpy(), copy=True)


def evaluate(fn: OpFn, arrays: Sequence[Array]) -> Array:
    """``fn`` applied to fresh tensors (no gradients recorded), as a NumPy array."""
    with am.no_grad():
        return _as_array(fn(*_tensors(arrays)))


def check_forward(fn: OpFn, inputs: Sequence[Array], reference: Callable[..., Any], *,
                  rtol: float | None = None, atol: float | None = None,
                  kind: str = "exact") -> Array:
    """Compare ``fn(*tensors)`` with ``reference(*arrays)``: dtype, shape and values.
    Also checks every primitive's infer rule on the way. Returns amber's output."""
    with infer_checked():
        out = fn(*_tensors(inputs))
    got = _as_array(out)
    want = np.asarray(reference(*[np.array(a, copy=True) for a in inputs]))
    assert out.dtype is am.as_dtype(want.dtype), f"dtype {out.dtype} != expected {want.dtype}"
    r, a = forward_tol(want.dtype, kind)
    ulp = ULP_TRANSCENDENTAL if kind == "transcendental" and rtol is None else 0
    assert_close(got, want, rtol=r if rtol is None else rtol, atol=a if atol is None else atol,
                 ulp=ulp, what="forward")
    return got


# --------------------------------------------------------------------------- gradients


def _fd(phi: Callable[[list[Array]], float], xs: list[Array], eps: float) -> list[Array]:
    """Central finite differences of the scalar ``phi`` with respect to every array."""
    grads = []
    for k, x in enumerate(xs):
        g = np.zeros_like(x, dtype=np.float64)
        for idx in np.ndindex(*x.shape):
            plus = [a.copy() for a in xs]
            minus = [a.copy() for a in xs]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            g[idx] = (phi(plus) - phi(minus)) / (2 * eps)
        grads.append(g)
    return grads


def central_differences(f: Callable[..., Any], arrays: Sequence[Array], extra: Sequence[Any] = (),
                        eps: float = 1e-6) -> list[Array]:
    """Central finite differences of the scalar eager ``f(*arrays, *extra)`` (each passed
    as a tensor; ``arrays`` in float64) with respect to each of ``arrays``."""
    fixed = [am.tensor(e) for e in extra]

    def phi(vals: list[Array]) -> float:
        return float(f(*[am.tensor(a) for a in vals], *fixed).item())

    return _fd(phi, [np.array(a, dtype=np.float64) for a in arrays], eps)


def _split(args: list[Array], argnums: Sequence[int], values: list[Array]) -> list[Array]:
    full = [a.copy() for a in args]
    for i, v in zip(argnums, values):
        full[i] = v
    return full


def _zeros_for_none(gs: Sequence[Any], like: Sequence[Array]) -> list[Array]:
    return [np.zeros_like(x, dtype=np.float64) if g is None else np.array(g.numpy(), copy=True)
            for g, x in zip(gs, like)]


def vjp_numpy(fn: OpFn, args: list[Array], argnums: Sequence[int], ct: Array,
              *, create_graph: bool = False) -> list[Array]:
    """Analytic cotangent of ``fn`` at ``args`` for output cotangent ``ct`` (float64)."""
    ts = _tensors(args, [i in argnums for i in range(len(args))])
    out = fn(*ts)
    gs = am.autograd.grad(out, [ts[i] for i in argnums], grad_outputs=am.tensor(ct),
                          allow_unused=True, create_graph=create_graph)
    return _zeros_for_none(gs, [args[i] for i in argnums])


def check_grad(fn: OpFn, inputs: Sequence[Array], argnums: Sequence[int] | None = None, *,
               order: int = 1, eps: float = 1e-6, rtol: float = 1e-6, atol: float = 1e-7,
               seed: int = 0) -> None:
    """Gradients of ``fn`` in float64 against central finite differences.

    Order 1 checks ``am.autograd.grad`` and ``Tensor.backward`` for a random output
    cotangent. Order 2 differentiates the first-order gradient again (create_graph)
    with respect to the inputs *and* the cotangent, against finite differences of the
    analytic first-order gradient."""
    args = [np.asarray(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
            for a in inputs]
    if argnums is None:
        argnums = [i for i, a in enumerate(args) if a.dtype.kind == "f"]
    argnums = list(argnums)
    rng = np.random.default_rng(seed)
    out0 = evaluate(fn, args)
    assert out0.dtype == np.float64, f"expected a float64 output for a gradient check, got " \
                                     f"{out0.dtype}"
    ct = rng.standard_normal(out0.shape)

    def phi(vals: list[Array]) -> float:
        return float(np.sum(evaluate(fn, _split(args, argnums, vals)) * ct))

    xs = [args[i] for i in argnums]
    numeric = _fd(phi, xs, eps)
    analytic = vjp_numpy(fn, args, argnums, ct)
    for i, (a, n) in enumerate(zip(analytic, numeric)):
        assert_close(a, n, rtol=rtol, atol=atol * max(1.0, float(np.max(np.abs(n), initial=0))),
                     what=f"d/d input {argnums[i]} (autograd.grad vs finite differences)")

    # Tensor.backward accumulates the same values into .grad.
    ts = _tensors(args, [i in argnums for i in range(len(args))])
    fn(*ts).backward(am.tensor(ct))
    for i, a in zip(argnums, analytic):
        g = ts[i].grad
        got = np.zeros_like(a) if g is None else g.numpy()
        assert_close(got, a, rtol=1e-12, atol=1e-12, what=f".grad of input {i} (backward)")

    if order >= 2:
        _check_second_order(fn, args, argnums, ct, rng, eps, rtol, atol)


def _check_second_order(fn: OpFn, args: list[Array], argnums: list[int], ct: Array,
                        rng: np.random.Generator, eps: float, rtol: float,
                        atol: float) -> None:
    vs = [rng.standard_normal(args[i].shape) for i in argnums]

    def psi(vals: list[Array]) -> float:
        *xvals, ctv = vals
        g = vjp_numpy(fn, _split(args, argnums, xvals), argnums, ctv)
        return float(sum(np.sum(gi * vi) for gi, vi in zip(g, vs)))

    xs = [args[i] for i in argnums] + [ct]
    numeric = _fd(psi, xs, eps)

    ts = _tensors(args, [i in argnums for i in range(len(args))])
    ct_t = am.tensor(ct, requires_grad=True)
    wrt = [ts[i] for i in argnums]
    out = fn(*ts)
    g1 = am.autograd.grad(out, wrt, grad_outputs=ct_t, create_graph=True, allow_unused=True)
    total: Any = None
    for g, v in zip(g1, vs):
        if g is None or not g.requires_grad:
            continue
        term = am.sum(g * am.tensor(v))
        total = term if total is None else total + term
    if total is None:
        analytic = [np.zeros_like(x) for x in xs]
    else:
        analytic = _zeros_for_none(am.autograd.grad(total, [*wrt, ct_t], allow_unused=True), xs)
    names = [f"input {i}" for i in argnums] + ["output cotangent"]
    for name, a, n in zip(names, analytic, numeric):
        assert_close(a, n, rtol=10 * rtol, atol=10 * atol *
                     max(1.0, float(np.max(np.abs(n), initial=0))),
                     what=f"second order d/d {name} (grad of grad vs finite differences)")


def check_op(fn: OpFn, inputs: Sequence[Array], reference: Callable[..., Any], *,
             grad: bool | Sequence[int] = False, order: int = 1, kind: str = "exact",
             rtol: float | None = None, atol: float | None = None,
             grad_inputs: Sequence[Array] | None = None) -> Array:
    """Forward (``check_forward``) and, if ``grad``, gradients (``check_grad``) of ``fn``.

    ``grad`` is True (all float inputs) or the positions of the differentiable inputs;
    gradients are checked in float64 on ``grad_inputs`` (default: ``inputs``)."""
    out = check_forward(fn, inputs, reference, rtol=rtol, atol=atol, kind=kind)
    if grad is not False:
        argnums = None if grad is True else list(grad)  # type: ignore[arg-type]
        check_grad(fn, grad_inputs if grad_inputs is not None else inputs, argnums,
                   order=order)
    return out
