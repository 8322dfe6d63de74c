"""Registry-wide tests: every primitive has forward, dtype and gradient coverage.

Adding a primitive to ``amber.ops.REGISTRY`` without a case in ``primitive_cases.py``
fails ``test_table_covers_registry``; a differentiable primitive also needs a
float64 finite-difference case, and a second-order one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from primitive_cases import ACCEPTS, CASES, INDEX_INPUTS, Case, cases_for

import amber as am
from amber.ops import REGISTRY
from amber.ops.registry import Aval, abstract_eval
from helpers import check_forward, check_grad, refs

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DTYPE_NAMES = ("float32", "float64", "int32", "int64", "bool", "float16", "bfloat16", "int8",
               "uint8", "int16")

FORWARD = [pytest.param(c, dt, id=f"{c.id}-{dt}") for c in CASES for dt in c.dtypes]
GRAD = [pytest.param(c, id=c.id) for c in CASES if c.grad]
GRAD2 = [pytest.param(c, id=c.id) for c in CASES if c.grad and c.order >= 2]


def _call(case: Case) -> Any:
    prim = REGISTRY[case.prim]
    return lambda *ts: prim(*ts, **case.attrs)


def _inputs(case: Case, dtype: str, seed: int = 0) -> list[np.ndarray]:
    return case.make(np.random.default_rng(seed), np.dtype(dtype))


def test_table_covers_registry() -> None:
    names = {c.prim for c in CASES}
    assert names == set(REGISTRY), (
        f"primitives without test cases: {sorted(set(REGISTRY) - names)}; "
        f"cases for unknown primitives: {sorted(names - set(REGISTRY))}"
    )
    assert set(ACCEPTS) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_primitive_coverage(name: str) -> None:
    prim = REGISTRY[name]
    cases = cases_for(name)
    assert cases, f"{name}: no test case"
    covered = {dt for c in cases for dt in c.dtypes}
    assert covered >= set(ACCEPTS[name]), (
        f"{name}: forward cases cover {sorted(covered)}, it accepts {ACCEPTS[name]}"
    )
    differentiable = prim.vjp is not None
    assert differentiable == any(c.grad for c in cases), (
        f"{name}: has a VJP: {differentiable}, but the table's gradient cases disagree"
    )
    if differentiable:
        assert any(c.order >= 2 for c in cases if c.grad), f"{name}: no second-order case"
    assert prim.doc, f"{name}: the kernel needs a docstring stating its semantics"


@pytest.mark.parametrize(("case", "dtype"), FORWARD)
def test_forward(case: Case, dtype: str) -> None:
    """Values, dtype and shape against the reference; infer agrees with the kernel."""
    check_forward(_call(case), _inputs(case, dtype), lambda *xs: case.ref(*xs, **case.attrs),
                  kind=case.kind)


@pytest.mark.parametrize("case", GRAD)
def test_gradient(case: Case) -> None:
    """First-order VJP (autograd.grad and Tensor.backward) against finite differences."""
    check_grad(_call(case), _inputs(case, "float64", seed=1), order=1)


@pytest.mark.parametrize("case", GRAD2)
def test_second_order(case: Case) -> None:
    """The VJP is itself differentiable: grad of grad against finite differences."""
    check_grad(_call(case), _inputs(case, "float64", seed=2), order=2)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_infer_rejects_other_dtypes(name: str) -> None:
    """Every dtype outside the accepted set raises DTypeError naming the op."""
    case = cases_for(name)[0]
    base = case.make(np.random.default_rng(0), np.dtype(case.dtypes[0]))
    if not base:
        abstract_eval(REGISTRY[name], [], case.attrs)  # no operands, nothing to reject
        return
    fixed = INDEX_INPUTS.get(name, ())
    for dt in DTYPE_NAMES:
        avals = [Aval(a.shape, am.as_dtype(a.dtype if i in fixed else dt))
                 for i, a in enumerate(base)]
        if dt in ACCEPTS[name]:
            abstract_eval(REGISTRY[name], avals, case.attrs)
        else:
            with pytest.raises(am.DTypeError, match=name):
                abstract_eval(REGISTRY[name], avals, case.attrs)


UNNORMALISED = [
    ("sum", [(2, 3)], {"axes": (1, 0), "keepdims": False}),
    ("sum", [(2, 3)], {"axes": (-1,), "keepdims": False}),
    ("sum", [(2, 3)], {"axes": (0, 0), "keepdims": False}),
    ("max", [(2, 0)], {"axes": (1,), "keepdims": False}),  # empty reduction
    ("min", [(0,)], {"axes": (0,), "keepdims": True}),
    ("argmax", [(2, 3)], {"axis": -1, "keepdims": False}),
    ("argmin", [(2, 0)], {"axis": 1, "keepdims": False}),
    ("transpose", [(2, 3)], {"perm": (-1, 0)}),
    ("transpose", [(2, 3)], {"perm": (0, 0)}),
    ("reshape", [(2, 3)], {"shape": (-1,)}),
    ("reshape", [(2, 3)], {"shape": (4,)}),
    ("broadcast_to", [(2, 3)], {"shape": (3, 3)}),
    ("broadcast_to", [(2, 3)], {"shape": (3,)}),
    ("slice", [(4,)], {"starts": (-1,), "stops": (4,), "steps": (1,)}),
    ("slice", [(4,)], {"starts": (0,), "stops": (5,), "steps": (1,)}),
    ("slice", [(4,)], {"starts": (3,), "stops": (2,), "steps": (1,)}),
    ("slice", [(4,)], {"starts": (0,), "stops": (4,), "steps": (0,)}),
    ("pad", [(4,)], {"lo": (-1,), "hi": (0,), "interior": (0,), "value": 0.0}),
    ("concat", [(2, 3), (3, 3)], {"axis": 1}),
    ("concat", [(2, 3)], {"axis": -1}),
    ("take", [(2, 3), (2,)], {"axis": 2}),
    ("matmul", [(2, 3), (4, 5)], {}),
    ("matmul", [(3,), (3, 2)], {}),
    ("add", [(2, 3), (3, 2)], {}),
    ("conv2d", [(1, 2, 4, 4), (3, 2, 5, 5)], {"stride": (1, 1), "padding": (0, 0, 0, 0),
                                             "dilation": (1, 1), "groups": 1}),
    ("conv2d", [(1, 2, 4, 4), (3, 2, 2, 2)], {"stride": (0, 1), "padding": (0, 0, 0, 0),
                                             "dilation": (1, 1), "groups": 1}),
    ("conv2d", [(1, 2, 4, 4), (3, 1, 2, 2)], {"stride": (1, 1), "padding": (0, 0, 0, 0),
                                             "dilation": (1, 1), "groups": 2}),
    ("conv2d_input_grad", [(1, 3, 2, 2), (3, 2, 2, 2)],
     {"input_hw": (4, 4), "stride": (1, 1), "padding": (0, 0, 0, 0), "dilation": (1, 1),
      "groups": 1}),
    ("conv2d_weight_grad", [(1, 2, 4, 4), (1, 3, 2, 2)],
     {"kernel_hw": (2, 2), "stride": (1, 1), "padding": (0, 0, 0, 0), "dilation": (1, 1),
      "groups": 1}),
    ("max_pool2d", [(1, 2, 4, 4)], {"kernel_hw": (5, 5), "stride": (1, 1),
                                    "padding": (0, 0, 0, 0), "dilation": (1, 1),
                                    "ceil_mode": False}),
    ("max_pool2d", [(1, 2, 4, 4)], {"kernel_hw": (3, 3), "stride": (1, 1),
                                    "padding": (2, 0, 0, 0), "dilation": (1, 1),
                                    "ceil_mode": False}),
    ("max_pool2d", [(2, 4, 4)], {"kernel_hw": (2, 2), "stride": (1, 1),
                                 "padding": (0, 0, 0, 0), "dilation": (1, 1),
                                 "ceil_mode": False}),
    ("max_pool2d_grad", [(1, 2, 4, 4), (1, 2, 3, 2)],
     {"kernel_hw": (2, 2), "stride": (1, 1), "padding": (0, 0, 0, 0), "dilation": (1, 1),
      "ceil_mode": False}),
    ("avg_pool2d", [(1, 2, 4, 4)], {"kernel_hw": (2, 0), "stride": (1, 1),
                                    "padding": (0, 0, 0, 0), "ceil_mode": False,
                                    "count_include_pad": True}),
    ("avg_pool2d_grad", [(1, 2, 3, 3)],
     {"input_hw": (5, 5), "kernel_hw": (2, 2), "stride": (1, 1), "padding": (0, 0, 0, 0),
      "ceil_mode": False, "count_include_pad": True}),
]


@pytest.mark.parametrize(("name", "shapes", "attrs"), UNNORMALISED,
                         ids=[f"{u[0]}-{i}" for i, u in enumerate(UNNORMALISED)])
def test_infer_rejects_invalid_shapes_and_unnormalised_attributes(
        name: str, shapes: list[tuple[int, ...]], attrs: dict[str, Any]) -> None:
    avals = [Aval(s, am.int64 if name == "take" and i == 1 else am.float32)
             for i, s in enumerate(shapes)]
    with pytest.raises(am.ShapeError, match=name.split("_")[0]):
        abstract_eval(REGISTRY[name], avals, attrs)


def _n_terms(case: Case, xs: list[np.ndarray]) -> int:
    """Upper bound on the number of terms summed into one output element."""
    at = case.attrs
    if case.prim == "sum":
        return int(np.prod([xs[0].shape[a] for a in at["axes"]], dtype=np.int64))
    if case.prim == "matmul":
        return xs[0].shape[-1]
    if case.prim == "conv2d":
        return int(np.prod(xs[1].shape[1:]))
    if case.prim == "conv2d_input_grad":
        return xs[0].shape[1] // at["groups"] * xs[1].shape[2] * xs[1].shape[3]
    if case.prim == "conv2d_weight_grad":
        return xs[0].shape[0] * xs[1].shape[2] * xs[1].shape[3]
    if case.prim == "scatter_add":
        return 1 + xs[1].size
    if case.prim in ("avg_pool2d", "avg_pool2d_grad"):
        return at["kernel_hw"][0] * at["kernel_hw"][1]
    raise AssertionError(f"no term count for {case.prim}")


STORAGE_U = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}
SUM_BOUND = [pytest.param(c, dt, id=f"{c.id}-{dt}") for c in CASES if c.kind == "accumulate"
             for dt in c.dtypes if dt.startswith("float")]


@pytest.mark.parametrize(("case", "dtype"), SUM_BOUND)
def test_accumulating_ops_meet_the_sum_bound(case: Case, dtype: str) -> None:
    """docs/opset.md section 5: |y - sum t| <= 2 n u sum |t| (plus the reference's own
    rounding, u sum |t|)."""
    xs = _inputs(case, dtype, seed=3)
    got = REGISTRY[case.prim](*[am.tensor(x) for x in xs], **case.attrs).numpy()
    want = case.ref(*xs, **case.attrs)
    abs_xs = [np.abs(x) if refs.is_float(x.dtype) else x for x in xs]
    magnitude = case.ref(*abs_xs, **case.attrs).astype(np.float64)
    u = 2.0 ** -53 if dtype == "float64" else 2.0 ** -24
    bound = (2 * _n_terms(case, xs) + 1) * u * magnitude
    if dtype in STORAGE_U:  # the float32 result, and the reference, rounded once more
        bound = bound + 2 * STORAGE_U[dtype] * magnitude
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    assert np.all(err <= bound), f"max error/bound {np.max(err / np.maximum(bound, 1e-300))}"


@pytest.mark.parametrize(
    ("name", "avals", "attrs"),
    [
        ("take", [Aval((3,), am.float32), Aval((2,), am.float32)], {"axis": 0}),
        ("take", [Aval((3,), am.float32), Aval((2,), am.bool_)], {"axis": 0}),
        ("scatter_add", [Aval((3,), am.float32), Aval((2,), am.float64),
                         Aval((2,), am.float32)], {"axis": 0}),
        ("scatter_add", [Aval((3,), am.float32), Aval((2,), am.int64),
                         Aval((2,), am.float64)], {"axis": 0}),
        ("where", [Aval((3,), am.int64), Aval((3,), am.float32), Aval((3,), am.float32)], {}),
        ("where", [Aval((3,), am.bool_), Aval((3,), am.float32), Aval((3,), am.float64)], {}),
        ("add", [Aval((3,), am.float32), Aval((3,), am.float64)], {}),
        ("matmul", [Aval((2, 2), am.int32), Aval((2, 2), am.int64)], {}),
        ("concat", [Aval((2,), am.int32), Aval((2,), am.int64)], {"axis": 0}),
    ],
    ids=["take-float-index", "take-bool-index", "scatter-float-index", "scatter-src-dtype",
         "where-int-cond", "where-mixed", "add-mixed", "matmul-mixed", "concat-mixed"],
)
def test_infer_rejects_index_condition_and_mixed_dtypes(name: str, avals: list[Aval],
                                                        attrs: dict[str, Any]) -> None:
    with pytest.raises(am.DTypeError, match=name):
        abstract_eval(REGISTRY[name], avals, attrs)
