"""Values and gradients of amber's composed PyTorch ops (searching, scattering, scans,
sorting, norms, data-dependent ops) against PyTorch 2.13.0, with the case machinery of
``test_ops``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import amber as am  # noqa: E402

from .test_ops import Case, Spec, b, f, i64, pos, run_case  # noqa: E402

pytestmark = pytest.mark.torch

CASES: list[Case] = []


def case(id: str, fa: Any, ft: Any, *inputs: Spec, **kw: Any) -> None:
    assert all(c.id != id for c in CASES), id
    CASES.append(Case(id, fa, fa if ft is None else ft, tuple(inputs), **kw))


def both(name: str, *args: Any, **kw: Any) -> tuple[Any, Any]:
    """``am.<name>(x, *args, **kw)`` and ``torch.<name>(x, *args, **kw)``."""
    return (lambda *x: getattr(am, name)(*x, *args, **kw),
            lambda *x: getattr(torch, name)(*x, *args, **kw))


def method(name: str, *args: Any, **kw: Any) -> Any:
    return lambda x, *rest: getattr(x, name)(*rest, *args, **kw)


_SPECIAL = np.array([0.0, -1.5, np.nan, np.inf, -np.inf, 2.0], np.float32)


def special(x: Any) -> Any:
    """x times a row of specials (0, NaN, +-inf), built in either library."""
    lib = am if isinstance(x, am.Tensor) else torch
    return x * lib.tensor(_SPECIAL)


# ----- elementwise tests and arithmetic

for _n in ("isnan", "isinf", "isfinite"):
    case(_n, lambda x, n=_n: getattr(am, n)(special(x)),
         lambda x, n=_n: getattr(torch, n)(special(x)), pos(3, 6), grad=False)
    case(f"{_n}-method", method(_n), None, f(4), grad=False)
    case(f"{_n}-int", *both(_n), i64(5), grad=False)
case("isclose", *both("isclose"), f(3, 4, discrete=True), f(4, discrete=True), grad=False)
case("isclose-tol", *both("isclose", rtol=0.1, atol=0.5), f(3, 4), f(3, 4), grad=False)
case("isclose-special", lambda x, y: am.isclose(special(x), special(y), equal_nan=True),
     lambda x, y: torch.isclose(special(x), special(y), equal_nan=True), pos(2, 6),
     pos(2, 6), grad=False)
case("isclose-inf-vs-finite", lambda x: am.isclose(x, am.tensor([math.inf] * 3)),
     lambda x: torch.isclose(x, torch.tensor([math.inf] * 3)), f(3), grad=False)
case("unique-nan", lambda x: am.unique(special(x), return_inverse=True, return_counts=True),
     lambda x: torch.unique(special(x), return_inverse=True, return_counts=True),
     pos(2, 6), grad=False)
case("isclose-int", *both("isclose"), i64(6), i64(6), grad=False)
case("fmod", *both("fmod"), f(3, 4, lo=-9, hi=9), pos(4))
case("fmod-neg-divisor", *both("fmod"), f(3, 4, lo=-9, hi=9), f(4, lo=-3, hi=-0.5))
case("fmod-special", lambda x, y: am.fmod(special(x), y), lambda x, y: torch.fmod(special(x), y),
     pos(2, 6), f(6), grad=False)
case("fmod-by-special", lambda x, y: am.fmod(x * 40, special(y)),
     lambda x, y: torch.fmod(x * 40, special(y)), f(2, 6), pos(6), grad=False)
case("fmod-scalar", lambda x: am.fmod(x, 1.5), lambda x: torch.fmod(x, 1.5), f(8, lo=-5, hi=5))
case("fmod-int", *both("fmod"), i64(3, 4, lo=-20, hi=20), i64(4, lo=1, hi=6), grad=False)
case("fmod-int-neg", *both("fmod"), i64(12, lo=-20, hi=20), i64(12, lo=-6, hi=-1), grad=False)
case("fmod-method", method("fmod", 0.75), None, f(6, lo=-3, hi=3))
case("lerp", *both("lerp"), f(3, 4), f(3, 4), f(4, lo=-0.5, hi=1.5))
case("lerp-scalar", lambda x, y: am.lerp(x, y, 0.3), lambda x, y: torch.lerp(x, y, 0.3),
     f(3, 4), f(4))
case("lerp-one", lambda x, y: x.lerp(y, 1.0), None, f(5), f(5))
case("clamp_min", *both("clamp_min", 0.25), f(3, 4))
case("clamp_max-method", method("clamp_max", -0.25), None, f(3, 4))
case("clamp_min-tensor", *both("clamp_min"), f(3, 4), f(4))

# ----- indexing and scattering

case("index_select", lambda x, i: am.index_select(x, 1, i),
     lambda x, i: torch.index_select(x, 1, i), f(3, 5), i64(4, lo=0, hi=5))
case("index_select-dim0", lambda x, i: x.index_select(0, i), None, f(4, 2), i64(6, lo=0, hi=4))
case("index_select-int32", lambda x, i: am.index_select(x, -1, i.int()),
     lambda x, i: torch.index_select(x, -1, i.int()), f(2, 3), i64(2, lo=0, hi=3))
case("gather-small-index", lambda x, i: am.gather(x, 1, i),
     lambda x, i: torch.gather(x, 1, i), f(4, 5), i64(3, 2, lo=0, hi=5))
case("scatter_add", lambda x, i, s: am.scatter_add(x, 1, i, s),
     lambda x, i, s: torch.scatter_add(x, 1, i, s), f(3, 4), i64(3, 6, lo=0, hi=4), f(3, 6))
# NOTE: PyTorch's backward fails when src is larger than index (values only here; the
# gradient is checked against finite differences in tests/test_composite.py)
case("scatter_add-dim0-small", lambda x, i, s: x.scatter_add(0, i, s), None, f(4, 3),
     i64(2, 2, lo=0, hi=4), f(3, 3), grad=False)
case("scatter_add-inplace", lambda x, i, s: x.detach().clone().scatter_add_(0, i, s), None,
     f(4, 3), i64(2, 3, lo=0, hi=4), f(2, 3), grad=False)
_PERM = np.array([[2, 0, 3, 1], [1, 3, 0, 2]])  # distinct targets: scatter is well defined
case("scatter", lambda x, s: am.scatter(x, 1, am.tensor(_PERM[:, :3]), s),
     lambda x, s: torch.scatter(x, 1, torch.tensor(_PERM[:, :3]), s), f(2, 4), f(2, 3))
case("scatter-src-larger", lambda x, s: am.scatter(x, 1, am.tensor(_PERM[:, :3]), s),
     lambda x, s: torch.scatter(x, 1, torch.tensor(_PERM[:, :3]), s), f(2, 4), f(2, 5),
     grad=False)
case("scatter-value", lambda x, i: x.scatter(1, i, 2.5), None, f(3, 4), i64(3, 3, lo=0, hi=4))
case("scatter-value-kw", lambda x, i: am.scatter(x, 0, i, value=-1.0),
     lambda x, i: torch.scatter(x, 0, i, value=-1.0), f(3, 4), i64(2, 4, lo=0, hi=3))
case("scatter-reduce-add", lambda x, i, s: am.scatter(x, 1, i, s, reduce="add"),
     lambda x, i, s: torch.scatter(x, 1, i, s, reduce="add"), f(2, 4),
     i64(2, 5, lo=0, hi=4), f(2, 5), grad=False)
case("scatter_-one-hot", lambda i: am.zeros(4, 5).scatter_(1, i, 1.0),
     lambda i: torch.zeros(4, 5).scatter_(1, i, 1.0), i64(4, 1, lo=0, hi=5), grad=False)
case("scatter-int", lambda x: x.scatter(0, am.tensor([[1, 0, 2]]), am.tensor([[7, 8, 9]])),
     lambda x: x.scatter(0, torch.tensor([[1, 0, 2]]), torch.tensor([[7, 8, 9]])),
     i64(3, 3), grad=False)

case("index_add", lambda x, i, s: am.index_add(x, 1, i, s),
     lambda x, i, s: torch.index_add(x, 1, i, s), f(3, 4), i64(5, lo=0, hi=4), f(3, 5))
case("index_add-alpha-method", lambda x, i, s: x.index_add(0, i, s, alpha=-2.0), None,
     f(3, 2), i64(4, lo=0, hi=3), f(4, 2))
case("index_add_-method", lambda x, s: x.detach().clone().index_add_(
    0, am.tensor([1, 1]) if isinstance(x, am.Tensor) else torch.tensor([1, 1]), s), None,
     f(3, 2), f(2, 2), grad=False)
case("index_fill", lambda x: am.index_fill(x, 1, am.tensor([0, 3, 3]), -1.5),
     lambda x: torch.index_fill(x, 1, torch.tensor([0, 3, 3]), -1.5), f(3, 4))
case("index_fill-method", lambda x: x.index_fill(0, am.tensor([2]) if isinstance(x, am.Tensor)
                                                else torch.tensor([2]), 7.0), None, f(3, 2))
case("index_fill_-method", lambda x: x.detach().clone().index_fill_(
    1, am.tensor([1]) if isinstance(x, am.Tensor) else torch.tensor([1]), 0.0), None,
     f(2, 3), grad=False)
case("index_copy", lambda x, s: am.index_copy(x, 0, am.tensor([3, 0]), s),
     lambda x, s: torch.index_copy(x, 0, torch.tensor([3, 0]), s), f(4, 3), f(2, 3))
case("index_copy-method", lambda x, s: x.index_copy(
    1, am.tensor([2, 0]) if isinstance(x, am.Tensor) else torch.tensor([2, 0]), s), None,
     f(2, 3), f(2, 2))
case("index_copy_-method", lambda x, s: x.detach().clone().index_copy_(
    1, am.tensor([1]) if isinstance(x, am.Tensor) else torch.tensor([1]), s), None,
     f(2, 3), f(2, 1), grad=False)
case("take_along_dim", lambda x, i: am.take_along_dim(x, i, 1),
     lambda x, i: torch.take_along_dim(x, i, 1), f(3, 5), i64(3, 2, lo=0, hi=5))
case("take_along_dim-broadcast", lambda x, i: x.take_along_dim(i, 0), None, f(4, 3),
     i64(2, 1, lo=0, hi=4))
case("take_along_dim-flat", lambda x, i: am.take_along_dim(x, i),
     lambda x, i: torch.take_along_dim(x, i), f(3, 4), i64(5, lo=0, hi=12))
case("searchsorted", lambda v: am.searchsorted(am.tensor([-1.0, 0.0, 0.0, 1.5]), v),
     lambda v: torch.searchsorted(torch.tensor([-1.0, 0.0, 0.0, 1.5]), v),
     f(3, 4, discrete=True), grad=False)
case("searchsorted-right", lambda v: am.searchsorted(am.tensor([-1.0, 0.0, 0.0, 1.5]), v,
                                                     right=True),
     lambda v: torch.searchsorted(torch.tensor([-1.0, 0.0, 0.0, 1.5]), v, right=True),
     f(3, 4, discrete=True), grad=False)
case("searchsorted-batched", lambda b, v: am.searchsorted(am.sort(b).values, v, side="right"),
     lambda b, v: torch.searchsorted(torch.sort(b).values, v, side="right"), f(2, 5),
     f(2, 3), grad=False)
for _right in (False, True):  # NaN values; (NaN boundaries: PyTorch's binary search
    # treats them as smaller than every value, amber's count as the largest value)
    case(f"searchsorted-nan-right={_right}",
         lambda v, r=_right: am.searchsorted(am.tensor([0.0, 1.0, math.inf]), special(v),
                                             right=r),
         lambda v, r=_right: torch.searchsorted(torch.tensor([0.0, 1.0, math.inf]),
                                                special(v), right=r), pos(6), grad=False)
case("searchsorted-int32", lambda v: am.searchsorted(am.tensor([1, 3, 5]), v, out_int32=True),
     lambda v: torch.searchsorted(torch.tensor([1, 3, 5]), v, out_int32=True), i64(7),
     grad=False)
case("bucketize", lambda v: am.bucketize(v, am.tensor([-1.0, 0.0, 1.0])),
     lambda v: torch.bucketize(v, torch.tensor([-1.0, 0.0, 1.0])), f(3, 4, discrete=True),
     grad=False)
case("bucketize-right", lambda v: am.bucketize(v, am.tensor([-1.0, 0.0, 1.0]), right=True),
     lambda v: torch.bucketize(v, torch.tensor([-1.0, 0.0, 1.0]), right=True),
     f(3, 4, discrete=True), grad=False)

# ----- rearranging

case("roll", *both("roll", 2, 1), f(3, 5))
case("roll-neg", lambda x: x.roll(-1, 0), None, f(3, 5))
case("roll-multi", *both("roll", (1, -3), (0, 2)), f(3, 4, 5))
case("roll-flat", *both("roll", 4), f(3, 5))
case("roll-big", *both("roll", 13, -1), f(2, 5))
case("diag-1d", *both("diag"), f(4))
case("diag-1d-above", *both("diag", 2), f(3))
case("diag-1d-below", lambda x: x.diag(-1), None, f(3))
case("diag-2d", *both("diag"), f(4, 5))
case("diag-2d-offsets", lambda x: (am.diag(x, 1), am.diag(x, -2), am.diag(x, 7)),
     lambda x: (torch.diag(x, 1), torch.diag(x, -2), torch.diag(x, 7)), f(4, 3))
case("diagonal-3d", lambda x: x.diagonal(1, 0, 2), None, f(3, 2, 4))
case("diagonal", *both("diagonal"), f(4, 4))
case("outer", *both("outer"), f(3), f(4))
case("outer-method", lambda x, y: x.outer(y), None, f(2), f(5))
case("meshgrid-ij", lambda x, y, z: am.meshgrid(x, y, z, indexing="ij"),
     lambda x, y, z: torch.meshgrid(x, y, z, indexing="ij"), f(2), f(3), f(4))
case("meshgrid-xy", lambda x, y: am.meshgrid(x, y, indexing="xy"),
     lambda x, y: torch.meshgrid(x, y, indexing="xy"), f(2), f(3))
case("meshgrid-list", lambda x, y: am.meshgrid([x, y], indexing="ij"),
     lambda x, y: torch.meshgrid([x, y], indexing="ij"), f(3), f(1))
case("chunk", *both("chunk", 3, 1), f(2, 7))
case("chunk-more-than-size", lambda x: x.chunk(5), None, f(3, 2))
case("split-int", *both("split", 2, -1), f(2, 5))
case("split-larger-than-dim", *both("split", 7), f(5, 2))
case("chunk-empty", *both("chunk", 3), f(0, 2), grad=False)
case("split-empty", lambda x: x.split(0), None, f(0, 2), grad=False)
case("split-list-method", lambda x: x.split([1, 3], 0), None, f(4, 2))
case("repeat_interleave", *both("repeat_interleave", 3), f(2, 3))
case("repeat_interleave-dim", lambda x: x.repeat_interleave(2, dim=1), None, f(2, 3))
case("repeat_interleave-tensor", lambda x: x.repeat_interleave(am.tensor([1, 0, 2]), dim=0),
     lambda x: x.repeat_interleave(torch.tensor([1, 0, 2]), dim=0), f(3, 2))
case("repeat_interleave-int", lambda x: am.repeat_interleave(x, 2, 0),
     lambda x: torch.repeat_interleave(x, 2, 0), i64(3), grad=False)

# ----- scans

case("cumsum", *both("cumsum", 1), f(3, 9))
case("cumsum-dim0", lambda x: x.cumsum(0), None, f(5, 3))
case("cumsum-long", *both("cumsum", -1), f(2, 1000), atol=1e-4)
case("cumsum-int", *both("cumsum", 0), i64(6), grad=False)
case("cumsum-bool", *both("cumsum", 0), b(7), grad=False)
case("cumsum-dtype", lambda x: am.cumsum(x, 1, dtype=am.float64),
     lambda x: torch.cumsum(x, 1, dtype=torch.float64), f(2, 5))
case("cumsum-0d", *both("cumsum", 0), f())
case("cumprod", *both("cumprod", 1), f(3, 6))
case("cumprod-zeros", lambda x: am.cumprod(x * am.tensor([1.0, 0.0, 1.0, 1.0, 0.0]), 0),
     lambda x: torch.cumprod(x * torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0]), 0), f(5))
case("cumprod-int", lambda x: x.cumprod(0), None, i64(5, lo=-3, hi=4), grad=False)

case("logcumsumexp", *both("logcumsumexp", 1), f(3, 9))
case("logcumsumexp-large", lambda x: (x * 200).logcumsumexp(0), None, f(6, 2), rtol=1e-4)
case("logcumsumexp-inf", lambda x: am.logcumsumexp(special(x), 1),
     lambda x: torch.logcumsumexp(special(x), 1), pos(2, 6), grad=False)

case("cummax", *both("cummax", 1), f(3, 9))
case("cummax-ties-nan", lambda x: am.cummax(am.floor(special(x)), 1),
     lambda x: torch.cummax(torch.floor(special(x)), 1), pos(2, 6), grad=False)
case("cummin-method", lambda x: x.cummin(0), None, f(7, 2))
case("cummin-ties", *both("cummin", 1), f(3, 8, lo=-2, hi=2, discrete=True))
case("cummax-int", lambda x: x.cummax(0), None, i64(9), grad=False)
case("diff", *both("diff"), f(3, 6))
case("diff-n2-dim0-method", lambda x: x.diff(2, 0), None, f(5, 3))
case("diff-prepend-append", lambda x, p, a: am.diff(x, 1, 1, p, a),
     lambda x, p, a: torch.diff(x, 1, 1, p, a), f(2, 4), f(2, 1), f(2, 2))
case("diff-bool", method("diff"), None, b(3, 5), grad=False)
case("diff-int", *both("diff"), i64(7), grad=False)
case("count_nonzero", *both("count_nonzero"), f(3, 4, lo=-1, hi=1, discrete=True), grad=False)
case("count_nonzero-dim-method", method("count_nonzero", 1), None, i64(3, 4, lo=-1, hi=2),
     grad=False)
case("bincount", *both("bincount"), i64(12, lo=0, hi=5), grad=False)
case("bincount-weights-method", lambda x, w: x.bincount(w, minlength=9), None,
     i64(6, lo=0, hi=5), f(6), grad=False)

# ----- sorting

case("sort", *both("sort"), f(3, 7))
case("sort-desc", *both("sort", 0, descending=True), f(5, 3))
case("sort-method", method("sort", dim=1), None, f(2, 3, 4))
case("sort-stable-ties", lambda x: am.sort(x, stable=True),
     lambda x: torch.sort(x, stable=True), f(4, 9, lo=-2, hi=2, discrete=True))
case("sort-stable-ties-desc", lambda x: am.sort(x, descending=True, stable=True),
     lambda x: torch.sort(x, descending=True, stable=True), f(4, 9, lo=-2, hi=2, discrete=True))
case("sort-nan", lambda x: am.sort(special(x), stable=True),
     lambda x: torch.sort(special(x), stable=True), pos(2, 6), grad=False)
case("sort-nan-desc", lambda x: am.sort(special(x), descending=True, stable=True),
     lambda x: torch.sort(special(x), descending=True, stable=True), pos(2, 6), grad=False)
case("sort-int", lambda x: am.sort(x, stable=True), lambda x: torch.sort(x, stable=True),
     i64(4, 11), grad=False)
case("sort-long", *both("sort"), f(2, 300))
case("argsort", *both("argsort", 0), f(6, 2), grad=False)
case("argsort-desc-stable", lambda x: x.argsort(descending=True, stable=True), None,
     f(3, 8, lo=-2, hi=2, discrete=True), grad=False)
case("topk", *both("topk", 3), f(4, 9))
case("topk-smallest", lambda x: x.topk(2, dim=0, largest=False), None, f(5, 3))
case("topk-all", *both("topk", 6), f(6))
case("msort", *both("msort"), f(5, 2))
case("kthvalue", *both("kthvalue", 2, 1), f(3, 5))
case("kthvalue-keep-method", lambda x: x.kthvalue(4, 0, keepdim=True), None, f(5, 3))
case("median-dim", *both("median", 1), f(3, 6))
case("median-odd-keep-method", lambda x: x.median(0, keepdim=True), None, f(5, 3))
case("median-all", *both("median"), f(3, 4))
case("median-all-method", method("median"), None, f(7))
case("median-nan", lambda x: am.median(special(x), 1), lambda x: torch.median(special(x), 1),
     pos(2, 6), grad=False)


# ----- methods of the eager-only and Python-valued ops
case("nonzero-method", method("nonzero"), None, i64(3, 4, lo=-1, hi=2), grad=False)
case("argwhere-method", method("argwhere"), None, b(2, 3), grad=False)
case("masked_select-method", lambda x, m: x.masked_select(m), None, f(3, 4), b(4))
case("unique-method", lambda x: x.unique(return_counts=True), None, i64(9, lo=0, hi=4),
     grad=False)
case("allclose-method", lambda x, y: am.tensor(x.allclose(y, atol=0.5)),
     lambda x, y: torch.tensor(x.allclose(y, atol=0.5)), f(4), f(4), grad=False)
case("isclose-method", lambda x, y: x.isclose(y, atol=0.5), None, f(4), f(4), grad=False)
case("norm-method", lambda x: (x.norm(), x.norm(1, 0), x.norm(dim=1, keepdim=True)), None,
     f(3, 4))
case("gather-method", lambda x, i: x.gather(0, i), None, f(3, 4), i64(2, 4, lo=0, hi=3))
case("index_select-method-neg-dim", lambda x, i: x.index_select(-1, i), None, f(2, 4),
     i64(3, lo=0, hi=4))
case("scatter-method", lambda x, i: x.scatter(0, i, x[:1] * 2), None, f(3, 4),
     i64(1, 4, lo=0, hi=3))
case("scatter_-method", lambda x: x.detach().clone().scatter_(0, am.tensor([[2, 0]]), 5.0)
     if isinstance(x, am.Tensor) else x.detach().clone().scatter_(0, torch.tensor([[2, 0]]), 5.0),
     None, f(3, 2), grad=False)
case("cumprod-method", method("cumprod", 1), None, f(2, 4))
case("repeat_interleave-method", method("repeat_interleave", 2), None, f(3))
case("clamp_min-method", method("clamp_min", 0.5), None, f(3, 4))
case("msort-method", method("msort"), None, f(4, 3))
case("isclose-int-method", lambda x, y: x.isclose(y), None, i64(5), i64(5), grad=False)


def test_registered_cases_are_distinct():
    assert len({c.id for c in CASES}) == len(CASES)


def test_every_composed_tensor_method_is_cross_checked() -> None:
    """Every method ``amber.tensor`` attaches for the composed ops runs in some case."""
    import importlib

    names = sorted(set(importlib.import_module("amber.tensor").COMPOSED_METHODS))
    called: set[str] = set()
    saved = {n: am.Tensor.__dict__[n] for n in names}

    def recorder(n: str, fn: Any) -> Any:
        def method(self: Any, *args: Any, **kw: Any) -> Any:
            called.add(n)
            return fn(self, *args, **kw)

        return method

    try:
        for n in names:
            setattr(am.Tensor, n, recorder(n, saved[n]))
        for c in CASES:
            run_case(c)
    finally:
        for n in names:
            setattr(am.Tensor, n, saved[n])
    missing = sorted(set(names) - called)
    assert not missing, f"Tensor methods without a PyTorch cross-check: {missing}"


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_composite_op(c: Case) -> None:
    run_case(c)


# ----- eager-only and Python-valued ops


def test_nonzero_and_argwhere_match_torch(rng):
    x = rng.integers(-1, 2, (4, 5)).astype(np.float32)
    np.testing.assert_array_equal(am.nonzero(am.tensor(x)).numpy(),
                                  torch.nonzero(torch.tensor(x)).numpy())
    for a, t in zip(am.tensor(x).nonzero(as_tuple=True),
                    torch.tensor(x).nonzero(as_tuple=True), strict=True):
        assert a.dtype is am.int64
        np.testing.assert_array_equal(a.numpy(), t.numpy())
    np.testing.assert_array_equal(am.argwhere(am.tensor(x)).numpy(),
                                  torch.argwhere(torch.tensor(x)).numpy())
    for z in (np.float32(0), np.float32(3)):
        np.testing.assert_array_equal(am.nonzero(am.tensor(z)).numpy(),
                                      torch.nonzero(torch.tensor(z)).numpy())


@pytest.mark.parametrize("kw", [{}, {"return_inverse": True}, {"return_counts": True},
                                {"return_inverse": True, "return_counts": True}])
def test_unique_matches_torch(rng, kw):
    x = rng.integers(0, 5, (3, 6))
    got, want = am.unique(am.tensor(x), **kw), torch.unique(torch.tensor(x), **kw)
    for a, t in zip(am.tree_flatten(got)[0], want if isinstance(want, tuple) else [want],
                    strict=True):
        np.testing.assert_array_equal(a.numpy(), t.numpy())
    rows = np.array([[1, 2], [0, 1], [1, 2], [0, 0]])
    got = am.unique(am.tensor(rows), dim=0, return_inverse=True, return_counts=True)
    want = torch.unique(torch.tensor(rows), dim=0, return_inverse=True, return_counts=True)
    for a, t in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.numpy(), t.numpy())


def test_masked_select_values_and_gradient_match_torch(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    m = rng.random(4) < 0.5
    xa, xt = am.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yt = am.masked_select(xa, am.tensor(m)), torch.masked_select(xt, torch.tensor(m))
    np.testing.assert_array_equal(ya.detach().numpy(), yt.detach().numpy())
    ct = rng.standard_normal(yt.shape).astype(np.float32)
    ya.backward(am.tensor(ct))
    yt.backward(torch.tensor(ct))
    np.testing.assert_array_equal(xa.grad.numpy(), xt.grad.numpy())


def test_allclose_matches_torch(rng):
    x = rng.standard_normal(6).astype(np.float32)
    for y, kw in [(x + 1e-7, {}), (x + 1e-3, {}), (x + 1e-3, {"atol": 1e-2}),
                  (np.full(6, np.nan, np.float32), {"equal_nan": True})]:
        y = np.asarray(y, np.float32)
        a = x if not kw.get("equal_nan") else y
        got = am.allclose(am.tensor(a), am.tensor(y), **kw)
        assert isinstance(got, bool)
        assert got == torch.allclose(torch.tensor(a), torch.tensor(y), **kw)


@pytest.mark.parametrize("args", [
    ((), {}), ((1,), {}), ((math.inf,), {}), ((-math.inf, 1), {}), ((0, (0, 1)), {}),
    (("fro",), {}), (("fro", (1, 2)), {"keepdim": True}), ((3,), {}), ((2, 2), {}),
])
def test_norm_matches_torch(rng, args):
    (pos_args, kw) = args
    x = rng.standard_normal((2, 3, 4))
    xa, xt = am.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yt = am.norm(xa, *pos_args, **kw), torch.norm(xt, *pos_args, **kw)
    np.testing.assert_allclose(ya.detach().numpy(), yt.detach().numpy(), rtol=1e-12)
    if pos_args[:1] == (0,):
        return  # the count has no gradient
    ya.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(xa.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fn, args", [
    ("norm", ()), ("norm", (None, 1)), ("norm", ("fro", (0, 1))), ("norm", (1,)),
    ("norm", (math.inf, (0, 1))), ("norm", (-1, (1, 0))), ("norm", (-math.inf,)),
    ("vector_norm", ()), ("vector_norm", (0.5, 1, True)), ("vector_norm", (0,)),
    ("vector_norm", (math.inf, (0, 1))), ("matrix_norm", ()), ("matrix_norm", (1,)),
    ("matrix_norm", (-math.inf, (1, 0), True)),
])
def test_linalg_norms_match_torch(rng, fn, args):
    x = rng.standard_normal((3, 4))
    xa, xt = am.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yt = getattr(am.linalg, fn)(xa, *args), getattr(torch.linalg, fn)(xt, *args)
    np.testing.assert_allclose(ya.detach().numpy(), yt.detach().numpy(), rtol=1e-12)
    if fn == "vector_norm" and args == (0,):
        return  # the count has no gradient
    ya.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(xa.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_norm_of_zeros_has_zero_gradient_as_in_torch():
    xa, xt = am.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    am.linalg.vector_norm(xa).backward()
    torch.linalg.vector_norm(xt).backward()
    np.testing.assert_array_equal(xa.grad.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (2, 4, 4), (2, 3, 5, 5)])
def test_det_matches_torch(rng, shape):
    x = rng.standard_normal(shape)
    xa, xt = am.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ya, yt = am.linalg.det(xa), torch.linalg.det(xt)
    np.testing.assert_allclose(ya.detach().numpy(), yt.detach().numpy(), rtol=1e-10)
    ya.sum().backward()
    yt.sum().backward()
    np.testing.assert_allclose(xa.grad.numpy(), xt.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(am.det(am.tensor(x)).numpy(), ya.detach().numpy())


def test_det_of_singular_and_permutation_matrices():
    assert am.linalg.det(am.tensor(np.array([[1.0, 2.0], [2.0, 4.0]]))).item() == 0.0
    perm = np.eye(3)[[1, 0, 2]]
    assert am.linalg.det(am.tensor(perm)).item() == -1.0
    with pytest.raises(am.ShapeError, match="n, n"):
        am.linalg.det(am.tensor(np.ones((2, 3))))
