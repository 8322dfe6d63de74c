"""Conformance: every primitive of the registry, run by the C kernels and by the NumPy
reference on random shapes, values and dtypes, must agree (values, dtype, shape, and the
error kind of invalid cases). An op without a C kernel or a case generator fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from kernel_cases import GENERATORS, check_op

from amber.ops import REGISTRY


@pytest.fixture(scope="module")
def runner(runtime_build: Path) -> Path:
    return runtime_build / "amber-kernel-test"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_kernel_matches_reference(runner: Path, name: str) -> None:
    assert name in GENERATORS, f"no conformance cases for primitive {name!r}"
    assert check_op(runner, name) > 0


def test_unknown_op_is_not_found(runner: Path, tmp_path: Path) -> None:
    import subprocess

    res = subprocess.run([str(runner), "no_such_op", "{}", str(tmp_path / "o.npy")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.startswith("AMBER_ERR_NOT_FOUND")


@pytest.mark.parametrize("attrs, status", [
    ('{"axes": [0]}', "AMBER_ERR_FORMAT"),                       # missing keepdims
    ('{"axes": [0], "keepdims": true, "x": 1}', "AMBER_ERR_FORMAT"),  # unknown attribute
    ('{"axes": [0.5], "keepdims": true}', "AMBER_ERR_FORMAT"),   # not an integer
    ('{"axes": [0], "keepdims": 1}', "AMBER_ERR_FORMAT"),        # not a bool
    ('{"axes": [0], "keepdims": true', "AMBER_ERR_FORMAT"),      # malformed JSON
    ('{"axes": [0], "axes": [0], "keepdims": true}', "AMBER_ERR_FORMAT"),  # duplicate key
])
def test_attributes_are_strict(runner: Path, tmp_path: Path, attrs: str, status: str) -> None:
    import subprocess

    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((2, 3), np.float32))
    res = subprocess.run([str(runner), "sum", attrs, str(tmp_path / "o.npy"),
                          str(tmp_path / "x.npy")], capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(status), res.stderr
