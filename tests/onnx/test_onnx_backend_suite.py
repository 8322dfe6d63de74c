"""ONNX's backend test suite (the CPU cases shipped with the installed ``onnx``) run
against ``amber.onnx.backend``, as ``onnxruntime.backend`` runs it. The cases amber
cannot pass yet are excluded by backend_known_failures.txt (each with its reason), so a
regression fails here. The nine model-zoo networks run in
test_onnx_backend_zoo.py (slow)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import onnx.backend.test

import amber.onnx.backend as backend

pytestmark = pytest.mark.onnx

HERE = os.path.dirname(__file__)
ZOO = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
       "shufflenet", "squeezenet", "vgg19", "zfnet512"]


def known_failures() -> dict[str, str]:
    out = {}
    with open(os.path.join(HERE, "backend_known_failures.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, _, why = line.rstrip("\n").partition("\t")
                out[name] = why
    return out


def cases(keep: Callable[[str], bool]) -> dict[str, type]:
    """The suite's test classes holding only the CPU cases ``keep`` accepts (the others
    are removed rather than skipped, so the report stays short)."""
    suite = onnx.backend.test.BackendTest(backend, __name__)
    out = {}
    for cname, cls in suite.test_cases.items():
        for m in [m for m in vars(cls) if m.startswith("test_")]:
            if not (m.endswith("_cpu") and keep(m)):
                delattr(cls, m)
        if any(m.startswith("test_") for m in vars(cls)):
            out[cname] = cls
    return out


_skip = set(known_failures()) | {f"test_{z}_cpu" for z in ZOO}
globals().update(cases(lambda m: m not in _skip))


def test_every_known_failure_has_a_reason() -> None:
    assert all(why.strip() for why in known_failures().values())
