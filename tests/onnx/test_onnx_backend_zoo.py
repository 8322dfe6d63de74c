"""The nine model-zoo "light" networks of ONNX's backend test suite (ResNet-50,
DenseNet-121, Inception v1/v2, ShuffleNet, SqueezeNet, VGG-19, AlexNet, ZFNet-512)
against their shipped expected outputs, through ``amber.onnx.backend``."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from test_onnx_backend_suite import ZOO, cases  # noqa: E402

pytestmark = [pytest.mark.onnx, pytest.mark.slow]

_zoo = {f"test_{z}_cpu" for z in ZOO}
globals().update(cases(lambda m: m in _zoo))
