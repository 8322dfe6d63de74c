"""am.set_num_threads is the default thread count of models am.load opens afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

import amber as am
from amber import _threads as amt
from amber import native as N

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def test_set_num_threads_is_the_default_of_later_loads(lib: N.NativeLibrary,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    real = N.NativeModel

    def spy(*args: object, **kwargs: object) -> N.NativeModel:
        seen.update(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(N, "NativeModel", spy)
    monkeypatch.setattr(amt, "_num_threads", amt.get_num_threads())  # restored after
    am.set_num_threads(2)
    assert am.get_num_threads() == 2
    m = am.load(GOLDEN / "v1" / "mlp.amber", backend="native")
    assert seen["threads"] == 2 and m.backend == "native"
    am.load(GOLDEN / "v1" / "mlp.amber", backend="native", threads=1)
    assert seen["threads"] == 1  # an explicit count wins
