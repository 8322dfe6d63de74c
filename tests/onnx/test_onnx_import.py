"""ONNX import: names, symbolic dims and shape arithmetic, folding, proof, refusals,
external data safety, the round trip through the exporter, and fine-tuning an imported
model."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from onnx_helpers import session  # noqa: E402

import amber as am  # noqa: E402
from onnx import TensorProto as T  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

pytestmark = pytest.mark.onnx


def _model(nodes: list, inputs: list, outputs: list, inits: list = (), opset: int = 17,
           domains: tuple = ()) -> Any:
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    ops = [h.make_opsetid("", opset)] + [h.make_opsetid(d, 1) for d in domains]
    return h.make_model(g, opset_imports=ops)


def _mlp(rng: np.random.Generator) -> Any:
    """x[batch, 4] -> MatMul -> Add -> Relu -> Flatten via Shape/Gather/Concat/Reshape."""
    w = nh.from_array(rng.standard_normal((4, 6)).astype(np.float32), "fc.weight")
    b = nh.from_array(rng.standard_normal(6).astype(np.float32), "fc.bias")
    zero = nh.from_array(np.array(0, np.int64), "zero")
    ax = nh.from_array(np.array([0], np.int64), "ax")
    two_three = nh.from_array(np.array([2, 3], np.int64), "two_three")
    nodes = [h.make_node("MatMul", ["input.1", "fc.weight"], ["m"]),
             h.make_node("Add", ["m", "fc.bias"], ["a"]),
             h.make_node("Relu", ["a"], ["r"]),
             h.make_node("Shape", ["r"], ["s"]),
             h.make_node("Gather", ["s", "zero"], ["n"]),
             h.make_node("Unsqueeze", ["n", "ax"], ["nu"]),
             h.make_node("Concat", ["nu", "two_three"], ["shape"], axis=0),
             h.make_node("Reshape", ["r", "shape"], ["out.0"])]
    return _model(nodes, [h.make_tensor_value_info("input.1", T.FLOAT, ["batch", 4])],
                  [h.make_tensor_value_info("out.0", T.FLOAT, ["batch", 2, 3])],
                  [w, b, zero, ax, two_three])


def test_names_symbolic_dims_weights_and_shape_arithmetic(tmp_path: Any) -> None:
    model = _mlp(np.random.default_rng(0))
    p = am.from_onnx(model)
    ep = p.entries["forward"]
    assert [q.name for q in ep.inputs] == ["input_1"]
    assert [q.name for q in ep.outputs] == ["out_0"]
    assert str(ep.inputs[0].shape[0]) == "batch"
    assert sorted(p.weights) == ["fc.bias", "fc.weight"]
    ops = p.functions[ep.function].op_histogram()
    # the Shape -> Gather -> Concat -> Reshape chain is dim arithmetic, not tensors
    assert "dim_value" not in ops and "take" not in ops and "concat" not in ops
    assert len(p.test_vectors) == 2  # batch = 2 and 5, proved against onnx.reference
    path = tmp_path / "mlp.amber"
    p.save(path)
    m = am.load(path)
    assert all(r.ok for r in m.verify())
    x = np.random.default_rng(1).standard_normal((7, 4)).astype(np.float32)
    want = session(model).run(None, {"input.1": x})[0]
    np.testing.assert_allclose(m(input_1=x).numpy(), want, rtol=1e-5, atol=1e-6)


def test_unnamed_dynamic_dims_get_fresh_symbols() -> None:
    vi = h.make_tensor_value_info("x", T.FLOAT, [None, 3])
    model = _model([h.make_node("Relu", ["x"], ["y"])], [vi],
                   [h.make_tensor_value_info("y", T.FLOAT, [None, 3])])
    p = am.from_onnx(model)
    assert str(p.entries["forward"].inputs[0].shape[0]) == "d0"


def test_constant_subgraphs_fold() -> None:
    c = nh.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "c")
    nodes = [h.make_node("Constant", [], ["c"], value=c),
             h.make_node("Transpose", ["c"], ["ct"]),
             h.make_node("Exp", ["ct"], ["e"]),
             h.make_node("ReduceSum", ["e"], ["s"], keepdims=0),
             h.make_node("Add", ["x", "s"], ["y"])]
    model = _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, [3])],
                   [h.make_tensor_value_info("y", T.FLOAT, [3])])
    p = am.from_onnx(model)
    ops = p.functions["forward"].op_histogram()
    assert ops == {"constant": 1, "add": 1}


def _node_model(op: str, domain: str = "", dtype: int = T.FLOAT, **attrs: Any) -> Any:
    node = h.make_node(op, ["x"], ["y"], domain=domain, **attrs)
    return _model([node], [h.make_tensor_value_info("x", dtype, [2])],
                  [h.make_tensor_value_info("y", dtype, [2])],
                  domains=(domain,) if domain else ())


@pytest.mark.parametrize("model, words", [
    (_node_model("Acos"), ["op Acos", "ai.onnx", "opset 17", "not supported"]),
    (_node_model("LabelEncoder", domain="ai.onnx.ml"), ["ai.onnx.ml", "LabelEncoder"]),
    (_node_model("Gelu", domain="com.microsoft"), ["com.microsoft", "Gelu"]),
    (_node_model("Relu", dtype=T.UINT16), ["UINT16"]),
    (_node_model("Round", dtype=T.INT32), ["op Round", "int32"]),
])
def test_unsupported_is_a_typed_error_naming_node_op_domain_opset(model: Any, words: list
                                                                  ) -> None:
    with pytest.raises(am.UnsupportedError) as e:
        am.from_onnx(model)
    for w in words:
        assert w in str(e.value)
    assert isinstance(e.value, am.AmberError)


def test_sequence_inputs_are_refused() -> None:
    seq = h.make_tensor_sequence_value_info("s", T.FLOAT, [2])
    model = _model([h.make_node("SequenceLength", ["s"], ["y"])], [seq],
                   [h.make_tensor_value_info("y", T.INT64, [])])
    with pytest.raises(am.UnsupportedError, match="sequence"):
        am.from_onnx(model)


def test_data_dependent_shapes_are_refused() -> None:
    nodes = [h.make_node("Reshape", ["x", "s"], ["y"])]
    model = _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, [6]),
                           h.make_tensor_value_info("s", T.INT64, [2])],
                   [h.make_tensor_value_info("y", T.FLOAT, [None, None])])
    with pytest.raises(am.UnsupportedError, match="known while importing"):
        am.from_onnx(model)


# ----------------------------------------------------------------------------- external data


def _external_model(tmp_path: Any, location: str) -> str:
    w = np.arange(4, dtype=np.float32)
    t = nh.from_array(w, "w")
    t.ClearField("raw_data")
    t.data_location = T.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "16")):
        e = t.external_data.add()
        e.key, e.value = k, v
    model = _model([h.make_node("Add", ["x", "w"], ["y"])],
                   [h.make_tensor_value_info("x", T.FLOAT, [4])],
                   [h.make_tensor_value_info("y", T.FLOAT, [4])], [t])
    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    path = d / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return str(path)


def test_external_data_inside_the_model_directory_loads(tmp_path: Any) -> None:
    path = _external_model(tmp_path, "weights.bin")
    (tmp_path / "model" / "weights.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    p = am.from_onnx(path)
    np.testing.assert_array_equal(p.weights["w"], np.arange(4, dtype=np.float32))
    with pytest.raises(am.FormatError, match="path"):  # bytes: no directory to read from
        am.from_onnx(open(path, "rb").read())


def test_external_data_absolute_path_is_refused(tmp_path: Any) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 16)
    with pytest.raises(am.FormatError, match="absolute"):
        am.from_onnx(_external_model(tmp_path, str(secret)))


def test_external_data_parent_directory_is_refused(tmp_path: Any) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    with pytest.raises(am.FormatError, match=r"\.\."):
        am.from_onnx(_external_model(tmp_path, "../secret.bin"))


def test_external_data_symlink_leaving_the_directory_is_refused(tmp_path: Any) -> None:
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    path = _external_model(tmp_path, "link.bin")
    os.symlink(tmp_path / "secret.bin", tmp_path / "model" / "link.bin")
    with pytest.raises(am.FormatError, match="symbolic link"):
        am.from_onnx(path)


def test_external_data_out_of_bounds_is_refused(tmp_path: Any) -> None:
    path = _external_model(tmp_path, "weights.bin")
    (tmp_path / "model" / "weights.bin").write_bytes(b"\0" * 8)
    with pytest.raises(am.FormatError, match="outside"):
        am.from_onnx(path)


# ----------------------------------------------------------------------------- round trip


def test_round_trip_amber_onnx_amber() -> None:
    net = am.nn.Sequential(am.nn.Conv2d(1, 4, 3, padding=1), am.nn.ReLU(),
                           am.nn.MaxPool2d(2), am.nn.Flatten(), am.nn.Linear(4 * 4 * 4, 5))
    net.eval()
    prog = am.export(net, am.spec("batch", 1, 8, 8))
    back = am.from_onnx(am.onnx.export(prog, None))
    x = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    want = prog.run("forward", x)[0]
    got = back.run("forward", x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_imported_model_fine_tunes(tmp_path: Any) -> None:
    p = am.from_onnx(_mlp(np.random.default_rng(0)))
    path = tmp_path / "mlp.amber"
    p.save(path)
    module = am.load(path).as_module()
    opt = am.optim.SGD(module.parameters(), lr=0.1)
    rng = np.random.default_rng(2)
    x = am.tensor(rng.standard_normal((8, 4)).astype(np.float32))
    losses = []
    for _ in range(5):
        loss = (module(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    assert losses[-1] < losses[0]


def test_cli_convert(tmp_path: Any) -> None:
    from amber.cli import main

    src = tmp_path / "mlp.onnx"
    src.write_bytes(_mlp(np.random.default_rng(0)).SerializeToString())
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "mlp.amber"
    import io

    buf = io.StringIO()
    assert main(["convert", str(src), str(out), "--example", f"input.1={tmp_path / 'x.npy'}"],
                out=buf) == 0
    assert "1 test vectors" in buf.getvalue()
    m = am.load(out)
    assert all(r.ok for r in m.verify())
    np.testing.assert_array_equal(m.program.test_vectors[0].inputs["input_1"], x)


# ----------------------------------------------------------------------------- docs

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "onnx.md")


def test_docs_coverage_table_is_generated() -> None:
    from amber.onnx.coverage import coverage_markdown

    text = open(DOC).read()
    start = text.index("<!-- onnx-coverage:start -->\n") + len("<!-- onnx-coverage:start -->\n")
    end = text.index("\n<!-- onnx-coverage:end -->")
    assert text[start:end] == coverage_markdown(), \
        "docs/onnx.md: regenerate the table with python -m amber.onnx.coverage"


def test_docs_import_examples_run(tmp_path: Any, monkeypatch: Any) -> None:
    import re

    text = open(DOC).read()
    text = text[text.index("## Import"):]
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    for b in blocks:
        exec(compile(b, "docs/onnx.md", "exec"), env)


# ----------------------------------------------------------------------------- control flow


def _loop_model(scan_output: bool) -> Any:
    """y = x doubled while its sum < 100 (at most m times); with scan_output, the trip
    count is fixed and every iteration's value is also stacked."""
    body_nodes = [h.make_node("Add", ["v_in", "v_in"], ["v_out"]),
                  h.make_node("ReduceSum", ["v_out"], ["s"], keepdims=0),
                  h.make_node("Less", ["s", "limit"], ["c_out"])]
    outs = [h.make_tensor_value_info("c_out", T.BOOL, []),
            h.make_tensor_value_info("v_out", T.FLOAT, [3])]
    if scan_output:
        body_nodes[2] = h.make_node("Identity", ["c_in"], ["c_out"])
        body_nodes.append(h.make_node("Identity", ["v_out"], ["scan"]))
        outs.append(h.make_tensor_value_info("scan", T.FLOAT, [3]))
    body = h.make_graph(body_nodes, "body",
                        [h.make_tensor_value_info("i", T.INT64, []),
                         h.make_tensor_value_info("c_in", T.BOOL, []),
                         h.make_tensor_value_info("v_in", T.FLOAT, [3])], outs)
    limit = nh.from_array(np.array(100, np.float32), "limit")
    m = nh.from_array(np.array(4 if scan_output else 50, np.int64), "m")
    t = nh.from_array(np.array(True), "t")
    loop_outs = ["y", "ys"] if scan_output else ["y"]
    node = h.make_node("Loop", ["m", "t", "x"], loop_outs, body=body)
    outputs = [h.make_tensor_value_info("y", T.FLOAT, [3])]
    if scan_output:
        outputs.append(h.make_tensor_value_info("ys", T.FLOAT, [4, 3]))
    return _model([node], [h.make_tensor_value_info("x", T.FLOAT, [3])], outputs,
                  [limit, m, t], opset=17)


@pytest.mark.parametrize("scan_output", [False, True])
def test_loop(scan_output: bool) -> None:
    from onnx.reference import ReferenceEvaluator

    model = _loop_model(scan_output)
    p = am.from_onnx(model, example={"x": np.array([0.5, 1.0, 2.0], np.float32)})
    ops = p.functions["forward"].op_histogram()
    assert ("scan" in ops) if scan_output else ("while" in ops)
    x = np.array([0.25, -1.0, 3.0], np.float32)
    want = ReferenceEvaluator(model).run(None, {"x": x})
    for g, w in zip(p.run("forward", x), want):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_if_on_data_becomes_cond() -> None:
    then_g = h.make_graph([h.make_node("Neg", ["x"], ["a"])], "then", [],
                          [h.make_tensor_value_info("a", T.FLOAT, [2])])
    else_g = h.make_graph([h.make_node("Exp", ["x"], ["b"])], "else", [],
                          [h.make_tensor_value_info("b", T.FLOAT, [2])])
    nodes = [h.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             h.make_node("Greater", ["s", "zero"], ["c"]),
             h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    zero = nh.from_array(np.array(0, np.float32), "zero")
    model = _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, [2])],
                   [h.make_tensor_value_info("y", T.FLOAT, [2])], [zero])
    p = am.from_onnx(model)
    assert "cond" in p.functions["forward"].op_histogram()
    for x in ([1.0, 2.0], [-1.0, -2.0]):
        a = np.array(x, np.float32)
        want = -a if a.sum() > 0 else np.exp(a)
        np.testing.assert_allclose(p.run("forward", a)[0], want, rtol=1e-6)


def test_imported_model_composes(tmp_path: Any) -> None:
    p = am.from_onnx(_mlp(np.random.default_rng(0)))
    p.save(tmp_path / "mlp.amber")
    inner = am.load(tmp_path / "mlp.amber")
    outer = am.export(lambda x: inner(x) * 2.0, am.spec("batch", 4))
    x = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(outer.run("forward", x)[0], 2 * p.run("forward", x)[0],
                               rtol=1e-6)
