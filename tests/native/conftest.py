"""libamber called from Python: through ``amber.native``, with the library ``pip install``
put into the package (the ``lib`` fixture: these tests fail, not skip, when it is
missing, since installing amber must yield a working libamber), and through the public C
API by ctypes (``test_capi_*``: ``helpers.capi`` on the library built from runtime/ by
the ``runtime_build`` fixture). The C kernels' conformance and the C builds are tested in
tests/runtime."""

from __future__ import annotations

import pytest

from amber import native as N


@pytest.fixture(scope="session")
def lib() -> N.NativeLibrary:
    try:
        return N.library()
    except N.NativeUnavailableError as e:
        pytest.fail(f"{e} (install amber with `pip install -e .`, which builds libamber)")
