"""Loop carries that a body returns permuted or unchanged: the native runtime copies each
carry into its own buffer, and must not overwrite a value another carry still reads."""

from __future__ import annotations

from pathlib import Path

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
