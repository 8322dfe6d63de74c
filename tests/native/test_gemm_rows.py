"""A row of a matrix product has the same bits whatever the number of rows around it:
the last, shorter panel of rows runs a kernel of fewer rows that rounds as the full one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import native as N


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_do_not_depend_on_the_row_count(lib: N.NativeLibrary, dtype: type,
                                             tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = am.tensor(rng.standard_normal((70, 45)).astype(dtype))
    am.export(lambda x: x @ w, am.spec("rows", 70, dtype=np.dtype(dtype).name)).save(
        tmp_path / "mm.amber")
    model = N.NativeModel(tmp_path / "mm.amber")
    x = rng.standard_normal((40, 70)).astype(dtype)
    full = model.run("forward", x)[0]
    for rows in (3, 4, 5, 8, 9, 12, 13, 16, 20, 25):
        np.testing.assert_array_equal(model.run("forward", x[:rows])[0], full[:rows])
    np.testing.assert_allclose(full, x @ w.numpy(), rtol=1e-4 if dtype == np.float32 else 1e-12)
