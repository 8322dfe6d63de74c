"""Exported programs run by the C runtime through the public API (ctypes): the golden
files and freshly exported models verify their own test vectors natively and agree with
the reference interpreter at several batch sizes; invalid programs and calls fail with
the right status."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import pytest
from capi import Model, Port, Session, load

import amber as am
import amber.nn as nn
import amber.nn.functional as F
from amber.format.container import write_container

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"


@pytest.fixture(scope="module")
def lib(runtime_build: Path) -> ctypes.CDLL:
    return load(runtime_build)


def native(lib: ctypes.CDLL, path: Path) -> tuple[Model, Session]:
    m = Model(lib, path=path)
    assert m.status == 0, m.error
    return m, Session(m)


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("v*/*.amber")), ids=lambda p: p.name)
def test_golden_programs_verify(lib: ctypes.CDLL, path: Path) -> None:
    m, s = native(lib, path)
    st, n, failed = s.verify()
    assert st == 0 and failed == 0 and n > 0, s.error
    s.close()
    m.close()


class Cnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        y = self.pool(F.relu(self.bn(self.conv(x))))
        return F.log_softmax(self.fc(y.reshape(y.shape[0], -1)), dim=-1)


def models() -> list[tuple[str, object, tuple, object]]:
    mlp = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3))
    cnn = Cnn()
    cnn.eval()

    def stats(x):
        # mean over a symbolic dim uses dim_value; integer ops and comparisons too
        m = x.mean(dim=0)
        return m, (x > m).sum(dim=1), x.argmax(dim=1)

    return [
        ("mlp", mlp, (am.spec("batch", 6),), lambda b, r: r.standard_normal((b, 6)).astype("f4")),
        ("cnn", cnn, (am.spec("batch", 1, 8, 8),),
         lambda b, r: r.standard_normal((b, 1, 8, 8)).astype("f4")),
        ("stats", stats, (am.spec("n", 4),), lambda b, r: r.standard_normal((b, 4)).astype("f4")),
    ]


@pytest.mark.parametrize("name, model, specs, make", models(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_exported_models_match_reference(lib: ctypes.CDLL, tmp_path: Path, name: str, model,
                                         specs: tuple, make) -> None:
    path = tmp_path / f"{name}.amber"
    am.export(model, *specs).save(str(path))
    ref = am.load(str(path), backend="reference")
    m, s = native(lib, path)
    st, n, failed = s.verify()
    assert st == 0 and failed == 0, s.error
    rng = np.random.default_rng(3)
    for batch in (1, 3, 17):
        x = make(batch, rng)
        got = s.run("forward", x)
        assert not isinstance(got, str), s.error
        want = ref(x)
        want = list(want) if isinstance(want, (tuple, list)) else [want]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            w = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    # Signature introspection through the API.
    port = Port()
    assert lib.amber_model_entry_input(m.handle, b"forward", 0, ctypes.byref(port)) == 0
    assert port.shape[0] == -1 and port.dims[0] in (b"batch", b"n")
    s.close()
    m.close()


def test_session_reports_bad_calls(lib: ctypes.CDLL, tmp_path: Path) -> None:
    path = tmp_path / "mlp.amber"
    am.export(nn.Linear(4, 2), am.spec("batch", 4)).save(str(path))
    m, s = native(lib, path)
    x = np.ones((3, 4), np.float32)
    assert not isinstance(s.run("forward", x), str)
    assert s.run("nope", x) == "AMBER_ERR_NOT_FOUND"
    assert s.run("forward", x.astype(np.float64)) == "AMBER_ERR_DTYPE"
    assert s.run("forward", np.ones((3, 5), np.float32)) == "AMBER_ERR_SHAPE"
    assert "argument 0" in s.error
    assert s.run("forward", np.ones((3, 4, 1), np.float32)) == "AMBER_ERR_SHAPE"
    assert s.run("forward") == "AMBER_ERR_INVALID_ARGUMENT"
    # The session still works after errors, and outputs are stable across runs.
    a = s.run("forward", x)
    b = s.run("forward", x)
    np.testing.assert_array_equal(a[0], b[0])
    s.close()
    m.close()


def test_container_without_program(lib: ctypes.CDLL) -> None:
    m, s = native(lib, ROOT / "tests" / "format" / "corpus" / "valid_two_tensors.amber")
    assert s.run("forward") == "AMBER_ERR_NOT_FOUND"
    assert "no program" in s.error
    st, n, failed = s.verify()
    assert st == 0 and n == 0
    s.close()
    m.close()


# ----------------------------------------------------------------------------- hand-made files

def fn(name, params, nodes, results):
    return {"name": name, "params": params, "nodes": nodes, "results": results}


def p(name, dtype="float32", shape=("n",)):
    return {"name": name, "dtype": dtype, "shape": list(shape)}


def node(op, inputs, out, attrs=None, dtype="float32", shape=("n",)):
    return {"op": op, "inputs": inputs, "attrs": attrs or {}, "outputs": [p(out, dtype, shape)]}


def program_file(path: Path, functions, signatures=None, opset=1, tensors=None) -> Path:
    if signatures is None:
        f0 = functions[0]
        outs = [p(f"out{i}", *(_type_of(f0, r))) for i, r in enumerate(f0["results"])]
        signatures = {"forward": {"function": f0["name"], "inputs": f0["params"], "outputs": outs,
                                  "output_structure": {"tuple": [o["name"] for o in outs]}}}
    header = {"opset_version": opset, "program": {"functions": functions, "weights": []},
              "signatures": signatures}
    write_container(str(path), header, tensors or {})
    return path


def _type_of(f, value):
    for q in f["params"]:
        if q["name"] == value:
            return q["dtype"], q["shape"]
    for n in f["nodes"]:
        for o in n["outputs"]:
            if o["name"] == value:
                return o["dtype"], o["shape"]
    raise KeyError(value)


def test_dim_expressions_and_constants(lib: ctypes.CDLL, tmp_path: Path) -> None:
    body = [
        node("constant", [], "c", {"value": {"dtype": "float32", "shape": [2], "data": [1.5, -2]}},
             shape=[2]),
        node("reshape", ["x"], "r", {"shape": ["n//2", 2]}, shape=["n//2", 2]),
        node("add", ["r", "c"], "y", shape=["n//2", 2]),
        node("dim_value", [], "k", {"value": "3*n - (n//2) + 1"}, dtype="int64", shape=[]),
        node("pad", ["x"], "z", {"lo": ["n - n"], "hi": [1], "interior": [0], "value": "-inf"},
             shape=["n+1"]),
    ]
    path = program_file(tmp_path / "dims.amber", [fn("f", [p("x")], body, ["y", "k", "z"])])
    m, s = native(lib, path)
    x = np.arange(6, dtype=np.float32)
    y, k, z = s.run("forward", x)
    np.testing.assert_array_equal(y, x.reshape(3, 2) + np.array([1.5, -2], np.float32))
    assert k.dtype == np.int64 and k.shape == () and int(k) == 3 * 6 - 3 + 1
    np.testing.assert_array_equal(z, np.append(x, -np.inf).astype(np.float32))
    assert s.run("forward", np.arange(5, dtype=np.float32)) == "AMBER_ERR_SHAPE"  # 5//2*2 != 5
    s.close()
    m.close()


def test_calls_and_the_depth_limit(lib: ctypes.CDLL, tmp_path: Path) -> None:
    double = fn("double", [p("a")], [node("add", ["a", "a"], "b")], ["b"])
    main = fn("main", [p("x")], [
        node("call", ["x"], "y", {"callee": "double"}),
        node("call", ["y"], "z", {"callee": "double"})], ["z"])
    m, s = native(lib, program_file(tmp_path / "call.amber", [main, double]))
    np.testing.assert_array_equal(s.run("forward", np.ones(3, np.float32))[0], np.full(3, 4.0))
    s.close()
    m.close()
    forever = fn("loop", [p("x")], [node("call", ["x"], "y", {"callee": "loop"})], ["y"])
    m, s = native(lib, program_file(tmp_path / "rec.amber", [forever]))
    assert s.run("forward", np.ones(3, np.float32)) == "AMBER_ERR_LIMIT"
    assert "call depth" in s.error
    s.close()
    m.close()


def test_runtime_checks_declared_types(lib: ctypes.CDLL, tmp_path: Path) -> None:
    bad = fn("f", [p("x")], [node("neg", ["x"], "y", shape=["n+1"])], ["y"])
    m, s = native(lib, program_file(tmp_path / "t.amber", [bad]))
    assert s.run("forward", np.ones(2, np.float32)) == "AMBER_ERR_SHAPE"
    assert "node 0 (neg)" in s.error and "declared" in s.error
    s.close()
    m.close()


@pytest.mark.parametrize("mutate, status, words", [
    (lambda f: f["nodes"][0].update(op="no_such_op"), "AMBER_ERR_FORMAT", "neither a primitive"),
    (lambda f: f["nodes"][0].update(inputs=["later"]), "AMBER_ERR_FORMAT", "defined before"),
    (lambda f: f["nodes"][0].update(attrs={"x": 1}), "AMBER_ERR_FORMAT", "unknown attribute"),
    (lambda f: f.update(results=["missing"]), "AMBER_ERR_FORMAT", "result 0"),
    (lambda f: f["nodes"][0]["outputs"][0].update(shape=["m"]), "AMBER_ERR_FORMAT",
     "no parameter binds"),
    (lambda f: f["nodes"][0].update(extra=1), "AMBER_ERR_FORMAT", "unknown member"),
])
def test_invalid_programs_are_refused(lib: ctypes.CDLL, tmp_path: Path, mutate, status,
                                      words) -> None:
    f = fn("f", [p("x")], [node("neg", ["x"], "y")], ["y"])
    good = program_file(tmp_path / "good.amber", [json.loads(json.dumps(f))])
    with Model(lib, path=good) as m:
        assert m.status == 0, m.error
    mutate(f)
    sig = {"forward": {"function": "f", "inputs": [p("x")], "outputs": [p("out")],
                       "output_structure": "out"}}
    path = program_file(tmp_path / "bad.amber", [f], signatures=sig)
    with Model(lib, path=path) as m:
        assert lib.amber_status_name(m.status).decode() == status, m.error
        assert words in m.error


def test_newer_opset_is_refused(lib: ctypes.CDLL, tmp_path: Path) -> None:
    f = fn("f", [p("x")], [node("neg", ["x"], "y")], ["y"])
    with Model(lib, path=program_file(tmp_path / "new.amber", [f], opset=2)) as m:
        assert lib.amber_status_name(m.status) == b"AMBER_ERR_VERSION"
        assert "2" in m.error and "1" in m.error
