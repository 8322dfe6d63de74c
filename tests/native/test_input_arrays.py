"""Both backends take the same input arrays and convert them the same way: big-endian
and strided arrays are converted, masked arrays are refused, and a conversion larger
than the memory limit is refused before the copy is made."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am

BACKENDS = ("reference", "native")


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    p = tmp_path_factory.mktemp("inputs") / "affine.amber"
    am.export(lambda x: x * 2.0 + 1.0, am.spec("n", 4)).save(p)
    return p


@pytest.mark.parametrize("backend", BACKENDS)
def test_big_endian_and_strided_inputs_are_converted(path, backend) -> None:
    m = am.load(path, backend=backend)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    want = x * 2 + 1
    np.testing.assert_array_equal(m(x.astype(">f4")).numpy(), want)
    np.testing.assert_array_equal(m(np.repeat(x, 2, axis=1)[:, ::2]).numpy(), want)
    np.testing.assert_array_equal(m(x.astype(">f4")[::-1]).numpy(), want[::-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_arrays_are_refused(path, backend) -> None:
    m = am.load(path, backend=backend)
    x = np.ma.masked_array(np.ones((2, 4), np.float32), mask=[[1, 0, 0, 0]] * 2)
    with pytest.raises(am.DTypeError, match="masked array"):
        m(x)
    np.testing.assert_array_equal(m(x.filled(0.0)).numpy()[:, 0], [1.0, 1.0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_huge_copy_is_refused_before_it_is_made(path, backend) -> None:
    m = am.load(path, backend=backend)
    # 2**31 rows of zero stride: no memory until copied (32 GiB), then a MemoryError or
    # worse; the limit check comes first
    x = np.broadcast_to(np.zeros((1, 4), np.float32), (2 ** 31, 4))
    with pytest.raises(am.LimitError, match="over the memory limit"):
        m(x)
