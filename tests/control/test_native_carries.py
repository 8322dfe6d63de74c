"""Loop carries that a body returns permuted or unchanged: the native runtime copies each
carry into its own buffer, and must not overwrite a value another carry still reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am

F64 = am.float64


def _while_swap(a: am.Tensor, b: am.Tensor, c: am.Tensor) -> tuple[am.Tensor, ...]:
    def body(s: tuple[am.Tensor, ...]) -> tuple[am.Tensor, ...]:
        i, x, y, z = s
        return i + 1, y, z, x  # a rotation: every carry reads another's buffer

    return am.while_loop(lambda s: s[0] < 4, body, (am.tensor(np.int64(0)), a, b, c))[1:]


def _scan_swap(a: am.Tensor, b: am.Tensor, c: am.Tensor) -> tuple[am.Tensor, ...]:
    def body(s: tuple[am.Tensor, ...], x: am.Tensor) -> tuple[tuple[am.Tensor, ...], am.Tensor]:
        p, q = s
        return (q, p), p.sum() + x  # a swap, and a per-step output read from the old carry

    return am.scan(body, (a, b), c)


@pytest.mark.parametrize("fn", [_while_swap, _scan_swap], ids=["while", "scan"])
def test_permuted_carries_run_natively_as_eagerly(fn, tmp_path: Path) -> None:
    specs = [am.spec(3, dtype=F64) for _ in range(3)]
    program = am.export(fn, *specs)
    program.save(tmp_path / "m.amber")
    native = am.load(tmp_path / "m.amber", backend="native")
    args = [np.array([1.0, 2, 3]), np.array([10.0, 20, 30]), np.array([100.0, 200, 300])]
    want = fn(*[am.tensor(a) for a in args])
    got = native(*args)
    for w, g in zip(am.tree_flatten(want)[0], am.tree_flatten(got)[0], strict=True):
        np.testing.assert_array_equal(np.asarray(g), w.numpy())


# From its second step a scan computes its new carries in a second buffer per carry and
# its per-step outputs in their rows; a carry that is also a per-step output stays in that
# row. These bodies read an old carry after its new value is written, share one value
# between carries and outputs, or swap computed carries.
def _scan_y_is_carry(a: am.Tensor, b: am.Tensor, xs: am.Tensor) -> tuple[am.Tensor, ...]:
    def body(s: tuple[am.Tensor, ...], x: am.Tensor) -> tuple[tuple[am.Tensor, ...], am.Tensor]:
        p, q = s
        n = p * 0.5 + x
        return (n, n * 1.0 + q), n  # n: a per-step output and the next carry p

    return am.scan(body, (a, b), xs)


def _scan_old_after_new(a: am.Tensor, b: am.Tensor, xs: am.Tensor) -> tuple[am.Tensor, ...]:
    def body(s: tuple[am.Tensor, ...], x: am.Tensor) -> tuple[tuple[am.Tensor, ...], am.Tensor]:
        p, q = s
        n = p + x  # computed first ...
        return (n, q), (p * 3.0 + n) * q  # ... the old p read after it; q unchanged

    return am.scan(body, (a, b), xs, reverse=True)


def _scan_swap_computed(a: am.Tensor, b: am.Tensor, xs: am.Tensor) -> tuple[am.Tensor, ...]:
    def body(s: tuple[am.Tensor, ...], x: am.Tensor) -> tuple[tuple[am.Tensor, ...], Any]:
        p, q = s
        u = q * 2.0 + x
        return (u, p - x), (p, u)  # a swap of computed values, the old p as an output

    return am.scan(body, (a, b), xs)


def _scan_in_while(a: am.Tensor, b: am.Tensor, xs: am.Tensor) -> tuple[am.Tensor, ...]:
    def outer(s: tuple[am.Tensor, ...]) -> tuple[am.Tensor, ...]:
        i, p, q, ys = s
        (p2, q2), y = _scan_y_is_carry(p, q, xs + ys)
        return i + 1, p2, q2, y

    init = (am.tensor(np.int64(0)), a, b, am.zeros_like(xs))
    return am.while_loop(lambda s: s[0] < 3, outer, init)[1:]


@pytest.mark.parametrize("fn", [_scan_y_is_carry, _scan_old_after_new, _scan_swap_computed,
                                _scan_in_while],
                         ids=["y_is_carry", "old_after_new", "swap_computed", "in_while"])
@pytest.mark.parametrize("width", [3, 1024])  # 1024: outputs of 64 KiB and more, given memory
def test_scan_carries_in_place_run_natively_as_eagerly(fn, width: int, tmp_path: Path) -> None:
    steps = 9
    specs = [am.spec(width, dtype=F64), am.spec(width, dtype=F64), am.spec(steps, width, dtype=F64)]
    am.export(fn, *specs).save(tmp_path / "m.amber")
    native = am.load(tmp_path / "m.amber", backend="native")
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(width), rng.standard_normal(width),
            rng.standard_normal((steps, width))]
    want = [w.numpy() for w in am.tree_flatten(fn(*[am.tensor(a) for a in args]))[0]]
    for _ in range(2):  # the second run writes the large outputs into the arrays returned
        got = [np.asarray(g) for g in am.tree_flatten(native(*args))[0]]
        for w, g in zip(want, got, strict=True):
            np.testing.assert_array_equal(g, w)
    for k, g in enumerate(got):  # no result shares another's memory
        g[...] = 7.0
        for w, h in zip(want[k + 1:], got[k + 1:], strict=True):
            np.testing.assert_array_equal(h, w)
