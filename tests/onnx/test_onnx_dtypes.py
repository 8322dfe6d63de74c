"""ONNX and the storage dtypes (float16, bfloat16, int8, uint8, int16): export runs each
primitive on its compute dtype between Casts, so ONNX Runtime and ONNX's reference
evaluator give amber's bits; import reads these tensors and initializers as themselves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from onnx_helpers import session  # noqa: E402

import amber as am  # noqa: E402
import amber.nn.functional as F  # noqa: E402
from onnx import TensorProto as T  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

pytestmark = pytest.mark.onnx

STORAGE = (am.float16, am.bfloat16, am.int8, am.uint8, am.int16)


def _program(dt: am.DType) -> tuple[am.Program, Any, am.Tensor]:
    rng = np.random.default_rng(3)
    if dt.is_floating:
        w = am.tensor(rng.standard_normal((4, 3)).astype(np.float32)).to(dt)

        def f(x):
            return (F.softmax(x @ w, -1) + x.sum(1, keepdim=True), (x * 40).to(am.int8),
                    x.to(am.float16), (x * 300).to(am.uint8))

        x = am.tensor(rng.standard_normal((5, 4)).astype(np.float32) * 3).to(dt)
    else:
        w = am.tensor(np.arange(12).reshape(4, 3) - 5).to(dt)

        def f(x):
            return (x @ w) * 3 - x.max(), x.to(am.float16), x // 3, (x.float() / 7).to(am.int16)

        x = am.tensor(np.arange(20).reshape(5, 4) * 13 - 70).to(dt)
    return am.export(f, am.spec("n", 4, dtype=dt)), f, x


@pytest.mark.parametrize("dt", STORAGE, ids=lambda d: d.name)
def test_export_gives_amber_bits_and_imports_back(dt: am.DType) -> None:
    from onnx.reference import ReferenceEvaluator

    p, f, x = _program(dt)
    model = am.onnx.export(p, None)
    want = [t.numpy() for t in f(x)]
    feeds = {model.graph.input[0].name: x.numpy()}
    runs = [ReferenceEvaluator(model).run(None, feeds)]
    if dt is not am.bfloat16:  # ONNX Runtime's Python API takes no bfloat16 arrays
        runs.append(session(model).run(None, feeds))
    runs.append(am.from_onnx(model).run("forward", x.numpy()))
    for got in runs:
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.tobytes() == w.tobytes()


def test_import_reads_storage_dtype_inputs_and_initializers() -> None:
    w16 = np.array([[1.5, -2.0], [0.25, 3.0]], np.float16)
    bias = np.array([1, -2], np.int8)
    g = h.make_graph(
        [h.make_node("MatMul", ["x", "w"], ["m"]),
         h.make_node("Cast", ["m"], ["mi"], to=T.INT8),
         h.make_node("Add", ["mi", "b"], ["y"]),
         h.make_node("Cast", ["m"], ["z"], to=T.BFLOAT16)],
        "g", [h.make_tensor_value_info("x", T.FLOAT16, ["batch", 2])],
        [h.make_tensor_value_info("y", T.INT8, ["batch", 2]),
         h.make_tensor_value_info("z", T.BFLOAT16, ["batch", 2])],
        [nh.from_array(w16, "w"), nh.from_array(bias, "b")])
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    prog = am.from_onnx(model)
    assert prog.weights["w"].dtype == np.float16
    x = np.array([[2.0, 1.0], [-1.0, 4.0], [100.0, 100.0]], np.float16)
    y, z = prog.run("forward", x)
    m = (x.astype(np.float32) @ w16.astype(np.float32)).astype(np.float16)
    assert y.dtype == np.int8 and y.tolist() == (np.clip(np.trunc(m.astype(np.float32)),
                                                         -128, 127) + bias).astype(
        np.int8).tolist()
    assert z.dtype == am.bfloat16.np and z.tobytes() == m.astype(np.float32).astype(
        am.bfloat16.np).tobytes()
    only_y = h.make_model(h.make_graph(g.node[:3], "g", g.input, g.output[:1], g.initializer),
                          opset_imports=[h.make_opsetid("", 17)])
    y_ort = session(only_y).run(None, {"x": x})[0]  # (ONNX Runtime returns no bfloat16)
    np.testing.assert_array_equal(y_ort[:2], y[:2])  # in range: ONNX's Cast is defined
