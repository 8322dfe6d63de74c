"""am.load and am.Model: the header is validated field by field, newer opsets are
refused naming both versions, and nothing a file names is imported or run."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest

import amber as am
from amber.capture.serialize import header_to_json
from amber.format.container import read_container, write_container


@pytest.fixture(scope="module")
def program():
    lin = am.nn.Linear(3, 2)
    return am.export(lambda x: am.relu(lin(x)).sum(1), am.spec("batch", 3), weights=lin)


@pytest.fixture
def parts(program):
    header, tensors = header_to_json(program, {"author": "tests"})
    return copy.deepcopy(header), dict(tensors)


def _write(tmp_path, header, tensors, name="f.amber"):
    path = tmp_path / name
    write_container(path, header, tensors)
    return path


def _node(header, op):
    return next(n for n in header["program"]["functions"][0]["nodes"] if n["op"] == op)


def test_save_load_metadata_and_signature(program, tmp_path):
    program.save(tmp_path / "m.amber", metadata={"author": "tests", "epochs": 3})
    m = am.load(tmp_path / "m.amber")
    assert m.metadata["producer"] == "amber"
    assert m.metadata["producer_version"] == am.__version__
    assert m.metadata["created"].endswith("Z")
    assert m.metadata["user"] == {"author": "tests", "epochs": 3}
    # no control flow: the file declares the lowest opset that has its ops
    assert m.format_version == 1 and m.opset_version == 1
    assert m.entry_points == ["forward"]
    sig = m.signature("forward")
    assert [(p.name, p.dtype, p.shape) for p in sig.inputs][0][:2] == ("x", am.float32)
    assert str(sig) == "forward(x: float32[batch, 3]) -> (output: float32[batch])"
    c = read_container(tmp_path / "m.amber")
    assert set(c.header) == {"opset_version", "program", "signatures", "metadata",
                             "test_vectors"}
    assert any(k.startswith("weights/") for k in c.tensors)
    assert any(k.startswith("test_vectors/") for k in c.tensors)


def test_model_accepts_numpy_tensors_and_lists(program, tmp_path):
    program.save(tmp_path / "m.amber")
    m = am.load(tmp_path / "m.amber")
    x = np.ones((2, 3), np.float32)
    a = m(x)
    b = m(am.tensor(x))
    c = m([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    d = m.forward(x=x)
    assert isinstance(a, am.Tensor)
    for t in (b, c, d):
        np.testing.assert_array_equal(t.numpy(), a.numpy())
    a.numpy()[0] = 5  # outputs are the caller's own, writable arrays


def test_load_from_bytes(program, tmp_path):
    program.save(tmp_path / "m.amber")
    m = am.load((tmp_path / "m.amber").read_bytes())
    assert all(r.ok for r in m.verify())


def test_unknown_backend_and_entry(program, tmp_path):
    program.save(tmp_path / "m.amber")
    with pytest.raises(am.AmberError, match="unknown backend"):
        am.load(tmp_path / "m.amber", backend="tpu")
    m = am.load(tmp_path / "m.amber")
    with pytest.raises(AttributeError):
        m.nope
    with pytest.raises(am.AmberError, match="no entry point"):
        m.signature("nope")


def test_newer_opset_is_refused_naming_both_versions(parts, tmp_path):
    header, tensors = parts
    header["opset_version"] = 7
    with pytest.raises(am.FormatError, match=rf"opset version 7.*up to {am.capture.OPSET_VERSION}"):
        am.load(_write(tmp_path, header, tensors))


def test_unknown_op_is_refused_and_nothing_is_imported(parts, tmp_path):
    header, tensors = parts
    for op in ("antigravity", "os.system", "__import__", "amber.cli.main"):
        h = copy.deepcopy(header)
        _node(h, "matmul")["op"] = op
        before = set(sys.modules)
        with pytest.raises(am.FormatError, match=f"unknown op '{op}'"):
            am.load(_write(tmp_path, h, tensors))
        assert "antigravity" not in sys.modules
        assert set(sys.modules) == before


def test_type_errors_are_refused(parts, tmp_path):
    header, tensors = parts
    _node(header, "matmul")["outputs"][0]["shape"] = ["batch", 5]
    with pytest.raises(am.FormatError, match=r"invalid.*declared float32\[batch, 5\]"):
        am.load(_write(tmp_path, header, tensors))


@pytest.mark.parametrize("mutate, reason", [
    (lambda h: h.pop("program"), "missing field 'program'"),
    (lambda h: h.pop("opset_version"), "not an amber program"),
    (lambda h: h.__setitem__("opset_version", "1"), "positive integer"),
    (lambda h: h["program"]["functions"][0]["params"][0].__setitem__("dtype", "uint16"),
     "unknown dtype"),
    (lambda h: h["program"]["functions"][0]["params"][0].__setitem__("shape", ["2*batch", 3]),
     "plain symbols|binds"),
    (lambda h: h["program"]["functions"][0]["params"][0].__setitem__("shape", ["ba tch", 3]),
     "dim expression"),
    (lambda h: h["program"]["functions"][0]["params"][0].__setitem__("shape", [-1, 3]),
     "negative dim"),
    (lambda h: _node(h, "matmul").__setitem__("inputs", ["nope", "x"]),
     "used before it is defined"),
    (lambda h: _node(h, "weight")["attrs"].__setitem__("name", "missing"),
     "unknown weight"),
    (lambda h: _node(h, "transpose")["attrs"].__setitem__("perm", "1,0"), "expected list"),
    (lambda h: _node(h, "transpose")["attrs"].__setitem__("perm", [True, 0]),
     "expected an integer"),
    (lambda h: h["program"]["weights"][0].__setitem__("tensor", "nope"), "not in the file"),
    (lambda h: h["program"]["weights"][0].__setitem__("shape", [9, 9]), "declares"),
    (lambda h: h["program"]["weights"].append(dict(h["program"]["weights"][0])),
     "duplicate weight"),
    (lambda h: h["program"]["functions"].append(h["program"]["functions"][0]),
     "duplicate function"),
    (lambda h: h["program"]["functions"][0]["results"].append("ghost"), "not defined"),
    (lambda h: h["signatures"]["forward"].__setitem__("function", "ghost"), "unknown function"),
    (lambda h: h["signatures"]["forward"]["inputs"][0].__setitem__("shape", [4, 3]),
     "input 'x'"),
    (lambda h: h["signatures"]["forward"].__setitem__("output_structure", "ghost"),
     "unknown output"),
    (lambda h: h["signatures"]["forward"].__setitem__("extra", 1), "unknown field"),
    (lambda h: h["test_vectors"][0].__setitem__("entry", "ghost"), "unknown entry"),
    (lambda h: h["test_vectors"][0]["inputs"].__setitem__("x", "nope"), "not in the file"),
    (lambda h: h["test_vectors"][0]["inputs"].__setitem__("x", "weights/bias"),
     r"test vector 0: 'x' is float32\[2\]"),
    (lambda h: h["test_vectors"][0]["outputs"].pop("output"), "do not match"),
    (lambda h: h["program"]["functions"][0]["nodes"][0].pop("attrs"), "missing field"),
    (lambda h: h["program"]["functions"][0]["nodes"][0]["outputs"][0].__setitem__(
        "name", "x"), "defined twice"),
])
def test_malformed_headers_raise_format_error(parts, tmp_path, mutate, reason):
    header, tensors = parts
    mutate(header)
    with pytest.raises(am.FormatError, match=reason):
        am.load(_write(tmp_path, header, tensors))


def test_inline_constants_are_checked(tmp_path):
    p = am.export(lambda x: x * am.tensor([1.0, 2.0, 3.0]), am.spec("n", 3))
    header, tensors = header_to_json(p, None)
    const = _node(header, "constant")
    assert const["attrs"]["value"] == {"dtype": "float32", "shape": [3],
                                       "data": [1.0, 2.0, 3.0]}
    const["attrs"]["value"]["data"] = [1.0, 2.0]
    with pytest.raises(am.FormatError, match="has 2 values"):
        am.load(_write(tmp_path, header, tensors))


def test_large_and_non_finite_constants_are_tensors(tmp_path):
    big = np.arange(100, dtype=np.float32)
    p = am.export(lambda x: x + am.tensor(big) + am.tensor([np.inf, np.nan]).sum(),
                  am.spec("n", 100), check=False)
    header, tensors = header_to_json(p, None)
    consts = [n["attrs"]["value"] for n in header["program"]["functions"][0]["nodes"]
              if n["op"] == "constant"]
    assert all("tensor" in c for c in consts)
    p.save(tmp_path / "c.amber")
    out = am.load(tmp_path / "c.amber")(np.zeros((1, 100), np.float32))
    assert np.isnan(out.numpy()).all()


def test_infinite_attribute_values_round_trip(tmp_path):
    p = am.export(lambda x: am.nn.functional.max_pool2d(x, 2, padding=1),
                  am.spec("b", 1, 4, 4))
    p.save(tmp_path / "p.amber")
    m = am.load(tmp_path / "p.amber")
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(
        m(x).numpy(), am.nn.functional.max_pool2d(am.tensor(x), 2, padding=1).numpy())


def test_save_refuses_non_json_metadata(program, tmp_path):
    with pytest.raises(am.FormatError):
        program.save(tmp_path / "m.amber", metadata={"bad": object()})


def test_control_flow_files_declare_the_opset_they_need(tmp_path) -> None:
    def f(x):
        return am.cond(x.sum() > 0, lambda v: v * 2, lambda v: v - 1, x)

    path = tmp_path / "cond.amber"
    am.export(f, am.spec("n")).save(path)
    # control flow without stacking while nodes needs opset 2, not the newest (5)
    assert am.load(path, backend="reference").opset_version == 2
    assert am.capture.OPSET_VERSION == 5
