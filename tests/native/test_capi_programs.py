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

import amber as am
import amber.nn as nn
import amber.nn.functional as F
from helpers.capi import Model, Port, Session, load
from helpers.program_files import const, control_flow_program, fn, node, p, program_file

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
    assert 'input "input"' in s.error
    assert s.run("forward", np.ones((3, 4, 1), np.float32)) == "AMBER_ERR_SHAPE"
    assert s.run("forward", np.ones((0, 4), np.float32)) == "AMBER_ERR_SHAPE"  # symbols >= 1
    assert "must be >= 1" in s.error
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
    # reshaped to (n, 1) instead, the program is valid for every n
    valid = [dict(nd) for nd in body]
    valid[1] = node("reshape", ["x"], "r", {"shape": ["n", 1]}, shape=["n", 1])
    valid[2] = node("add", ["r", "c"], "y", shape=["n", 2])
    m, s = native(lib, program_file(tmp_path / "dims.amber", [fn("f", [p("x")], valid,
                                                                  ["y", "k", "z"])]))
    x = np.arange(6, dtype=np.float32)
    y, k, z = s.run("forward", x)
    np.testing.assert_array_equal(y, x.reshape(6, 1) + np.array([1.5, -2], np.float32))
    assert k.dtype == np.int64 and k.shape == () and int(k) == 3 * 6 - 3 + 1
    np.testing.assert_array_equal(z, np.append(x, -np.inf).astype(np.float32))
    s.close()
    m.close()
    # with x: float32[n] the reshape holds only for even n: refused at load
    with Model(lib, path=program_file(tmp_path / "odd.amber", [fn("f", [p("x")], body,
                                                                   ["y", "k", "z"])])) as m:
        assert lib.amber_status_name(m.status) == b"AMBER_ERR_FORMAT"
        assert "cannot reshape" in m.error and "with the sizes n=" in m.error


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
    with Model(lib, path=program_file(tmp_path / "t.amber", [bad])) as m:
        assert lib.amber_status_name(m.status) == b"AMBER_ERR_FORMAT"
        assert "nodes[0]: output 0 is declared float32(12,) but the op's type rule gives " \
               "float32(11,) (with the sizes n=11)" in m.error, m.error


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
    with Model(lib, path=program_file(tmp_path / "new.amber", [f], opset=6)) as m:
        assert lib.amber_status_name(m.status) == b"AMBER_ERR_VERSION"
        assert "opset version 6" in m.error and "up to 5" in m.error


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int8", "uint8", "int16"])
def test_storage_dtypes_need_opset_5(lib: ctypes.CDLL, tmp_path: Path, dtype: str) -> None:
    f = fn("f", [p("x", dtype=dtype)], [node("neg", ["x"], "y", dtype=dtype)], ["y"])
    with Model(lib, path=program_file(tmp_path / "old.amber", [f], opset=4)) as m:
        assert lib.amber_status_name(m.status) == b"AMBER_ERR_FORMAT"
        assert f"dtype {dtype} needs opset version 5, the file declares 4" in m.error
    with Model(lib, path=program_file(tmp_path / "new.amber", [f], opset=5)) as m:
        assert m.status == 0, m.error


def test_pooling_needs_opset_4(lib: ctypes.CDLL, tmp_path: Path) -> None:
    attrs = {"kernel_hw": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0],
             "dilation": [1, 1], "ceil_mode": False}
    f = fn("f", [p("x", shape=[1, 1, 4, 4])],
           [node("max_pool2d", ["x"], "y", attrs, shape=[1, 1, 2, 2])], ["y"])
    with Model(lib, path=program_file(tmp_path / "old.amber", [f], opset=3)) as m:
        assert lib.amber_status_name(m.status) == b"AMBER_ERR_FORMAT"
        assert "max_pool2d needs opset version 4, the file declares 3" in m.error
    with Model(lib, path=program_file(tmp_path / "new.amber", [f], opset=4)) as m:
        assert m.status == 0, m.error


@pytest.mark.parametrize("reverse", [False, True])
def test_control_flow_matches_reference(lib: ctypes.CDLL, tmp_path: Path, reverse: bool) -> None:
    path = control_flow_program(tmp_path / "cf.amber", reverse)
    ref = am.load(str(path), backend="reference")
    m, s = native(lib, path)
    for x in (np.array([1, 2, 3], np.float32), np.array([-4, 1], np.float32),
              np.array([-0.5], np.float32)):
        got = s.run("forward", x)
        assert not isinstance(got, str), s.error
        want = ref(x)
        for g, w in zip(got, want, strict=True):
            w = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_array_equal(g, w)
    s.close()
    m.close()


def test_loop_iteration_limit(lib: ctypes.CDLL, tmp_path: Path) -> None:
    path = control_flow_program(tmp_path / "cf.amber", False)
    with Model(lib, path=path) as m:
        assert m.status == 0, m.error
    from helpers import capi

    opts = capi.Options()
    lib.amber_options_init(ctypes.byref(opts))
    opts.max_loop_iterations = 3
    handle = ctypes.c_void_p()
    assert lib.amber_model_open_file(str(path).encode(), ctypes.byref(opts),
                                     ctypes.byref(handle)) == 0
    sess = ctypes.c_void_p()
    assert lib.amber_session_create(handle, ctypes.byref(sess)) == 0
    x = np.ones(3, np.float32)
    ins = (capi.Tensor * 1)(capi.from_numpy(x))
    outs = (capi.Tensor * 4)()
    st = lib.amber_session_run(sess, b"forward", ins, 1, outs, 4)
    assert lib.amber_status_name(st) == b"AMBER_ERR_LIMIT"
    assert b"limit of 3 iterations" in lib.amber_session_error(sess)
    lib.amber_session_free(sess)
    lib.amber_model_close(handle)


def test_memory_limit(lib: ctypes.CDLL, tmp_path: Path) -> None:
    from helpers import capi

    path = tmp_path / "mlp.amber"
    am.export(nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 4)),
              am.spec("batch", 64)).save(str(path))
    opts = capi.Options()
    lib.amber_options_init(ctypes.byref(opts))
    opts.memory_limit = 1 << 20
    handle, sess = ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.amber_model_open_file(str(path).encode(), ctypes.byref(opts),
                                     ctypes.byref(handle)) == 0
    assert lib.amber_session_create(handle, ctypes.byref(sess)) == 0
    outs = (capi.Tensor * 1)()
    for batch, want in ((8, b"AMBER_OK"), (4096, b"AMBER_ERR_LIMIT"), (8, b"AMBER_OK")):
        x = np.ones((batch, 64), np.float32)
        ins = (capi.Tensor * 1)(capi.from_numpy(x))
        st = lib.amber_session_run(sess, b"forward", ins, 1, outs, 1)
        assert lib.amber_status_name(st) == want, lib.amber_session_error(sess)
        if st:
            assert b"memory limit" in lib.amber_session_error(sess)
    lib.amber_session_free(sess)
    lib.amber_model_close(handle)


def test_call_results_may_alias_arguments(lib: ctypes.CDLL, tmp_path: Path) -> None:
    """A callee returning its argument must keep the caller's value alive."""
    ident = fn("ident", [p("a")], [], ["a"])
    main = fn("main", [p("x")], [
        node("neg", ["x"], "t"),
        node("call", ["t"], "y", {"callee": "ident"}),
        node("exp", ["x"], "u"),        # would reuse t's memory if t were released
        node("add", ["y", "u"], "z")], ["z"])
    m, s = native(lib, program_file(tmp_path / "alias.amber", [main, ident]))
    x = np.linspace(-1, 1, 64).astype(np.float32)
    (z,) = s.run("forward", x)
    np.testing.assert_allclose(z, -x + np.exp(x), rtol=1e-6)
    s.close()
    m.close()


@pytest.mark.parametrize("option, value, status, words", [
    ("memory_limit", 1 << 20, "AMBER_OK", ""),
    ("max_run_iterations", 150000, "AMBER_ERR_LIMIT", "loop iterations in all"),
    ("max_loop_iterations", 50000, "AMBER_ERR_LIMIT", "iterations"),
])
def test_loops_run_in_constant_memory(lib: ctypes.CDLL, tmp_path: Path, option: str, value: int,
                                      status: str, words: str) -> None:
    """100000 iterations of a while loop and of a scan fit in a 1 MiB session arena; the
    per-loop and per-run iteration limits stop them."""
    from helpers import capi

    f32, i64 = "float32", "int64"
    funcs = [
        fn("main", [p("x"), p("xs", f32, ["m"])], [
            const("i0", i64, 0),
            {"op": "while", "inputs": ["i0", "x"],
             "attrs": {"cond": "more", "body": "step", "num_carries": 2, "max_iterations": None},
             "outputs": [p("i", i64, []), p("z")]},
            const("zero", f32, 0.0),
            {"op": "scan", "inputs": ["zero", "xs"],
             "attrs": {"body": "accumulate", "num_carries": 1, "num_xs": 1, "length": "m",
                       "reverse": False},
             "outputs": [p("last", f32, []), p("ys", f32, ["m"])]},
        ], ["i", "z", "last"]),
        fn("more", [p("i", i64, []), p("acc")], [
            const("lim", i64, 100000), node("lt", ["i", "lim"], "go", dtype="bool", shape=[])],
           ["go"]),
        fn("step", [p("i", i64, []), p("acc")], [
            const("one", i64, 1), node("add", ["i", "one"], "j", dtype=i64, shape=[]),
            node("neg", ["acc"], "acc2")], ["j", "acc2"]),
        fn("accumulate", [p("c", f32, []), p("xi", f32, [])], [
            node("add", ["c", "xi"], "c2", shape=[]), node("neg", ["c2"], "y", shape=[])],
           ["c2", "y"]),
    ]
    path = program_file(tmp_path / "loop.amber", funcs, opset=2)
    opts = capi.Options()
    lib.amber_options_init(ctypes.byref(opts))
    setattr(opts, option, value)
    handle, sess = ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.amber_model_open_file(str(path).encode(), ctypes.byref(opts),
                                     ctypes.byref(handle)) == 0, lib.amber_model_error(handle)
    assert lib.amber_session_create(handle, ctypes.byref(sess)) == 0
    x = np.arange(16, dtype=np.float32)
    xs = np.ones(100000, np.float32)
    ins = (capi.Tensor * 2)(capi.from_numpy(x), capi.from_numpy(xs))
    outs = (capi.Tensor * 3)()
    st = lib.amber_session_run(sess, b"forward", ins, 2, outs, 3)
    assert lib.amber_status_name(st).decode() == status, lib.amber_session_error(sess)
    if st:
        assert words.encode() in lib.amber_session_error(sess)
        lib.amber_session_free(sess)
        lib.amber_model_close(handle)
        return
    i, z, last = (capi.to_numpy(lib, outs[k]) for k in range(3))
    assert int(i) == 100000 and float(last) == 100000.0
    np.testing.assert_array_equal(z, x)  # an even number of negations
    lib.amber_session_free(sess)
    lib.amber_model_close(handle)


@pytest.mark.parametrize("nodes, words", [
    ([node("neg", ["x"], "y", shape=[4])], "neg gives float32(3,), the node declares"),
    ([node("matmul", ["x", "x"], "y", shape=[3])], "rank >= 2"),
    ([node("add", ["x", "x"], "y", dtype="float64", shape=[3])], "declares another type"),
    ([node("sum", ["x"], "y", {"axes": [1], "keepdims": False}, shape=[])], "out of range"),
])
def test_static_types_are_checked_at_load(lib: ctypes.CDLL, tmp_path: Path, nodes,
                                          words: str) -> None:
    f = fn("f", [p("x", shape=[3])], nodes, ["y"])
    out = nodes[-1]["outputs"][0]
    sig = {"forward": {"function": "f", "inputs": [p("x", shape=[3])],
                       "outputs": [p("out", out["dtype"], out["shape"])],
                       "output_structure": "out"}}
    with Model(lib, path=program_file(tmp_path / "s.amber", [f], signatures=sig)) as m:
        assert lib.amber_status_name(m.status) == b"AMBER_ERR_FORMAT", m.error
        assert words in m.error and "nodes[0]" in m.error


def test_a_size_overflowing_at_the_probe_sizes_is_not_refused(lib: ctypes.CDLL,
                                                              tmp_path: Path) -> None:
    """The loader checks symbolic types at probe sizes; an expression those sizes make
    overflow int64 (valid for small sizes) says nothing and is not refused."""
    big = "*".join(["n"] * 12)
    f = fn("f", [p("x")], [node("dim_value", [], "k", {"value": big}, dtype="int64", shape=[]),
                           node("neg", ["x"], "y")], ["k", "y"])
    m, s = native(lib, program_file(tmp_path / "big.amber", [f]))
    k, y = s.run("forward", np.ones(2, np.float32))
    assert int(k) == 2 ** 12 and y.shape == (2,)
    s.close()
    m.close()
