"""The native runtime as ``pip install`` put it into the package: these tests fail (not
skip) when it is missing, since installing amber must yield a working libamber."""

from __future__ import annotations

import pytest

from amber import native as N


@pytest.fixture(scope="session")
def lib() -> N.NativeLibrary:
    try:
        return N.library()
    except N.NativeUnavailableError as e:
        pytest.fail(f"{e} (install amber with `pip install -e .`, which builds libamber)")
