"""Values computed from weights and constants only are computed once per session and
reused by later runs: results stay bit-identical across runs, sessions and threads, and
the cached values count against the memory limit."""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np
import pytest

import amber as am
import amber.nn as nn
from helpers.capi import Model, Options, Session, Tensor, from_numpy, load, to_numpy
from helpers.program_files import fn, node, p, program_file


@pytest.fixture(scope="module")
def lib(runtime_build: Path) -> ctypes.CDLL:
    return load(runtime_build)


def run_raw(lib: ctypes.CDLL, sess: Session, x: np.ndarray, n_out: int):
    ins = (Tensor * 1)(from_numpy(x))
    outs = (Tensor * n_out)()
    assert lib.amber_session_run(sess.handle, b"forward", ins, 1, outs, n_out) == 0, sess.error
    return outs


def test_weight_only_subgraph_is_not_recomputed(lib: ctypes.CDLL, tmp_path: Path) -> None:
    c = {"value": {"dtype": "float32", "shape": [3], "data": [0.5, -1.0, 2.0]}}
    body = [
        node("constant", [], "c", c, shape=[3]),
        node("mul", ["c", "c"], "e", shape=[3]),  # used only by hoisted nodes
        node("neg", ["e"], "t", shape=[3]),      # cached: a result and used by add
        node("add", ["x", "t"], "y", shape=[3]),
    ]
    path = program_file(tmp_path / "hoist.amber", [fn("f", [p("x", shape=[3])], body, ["y", "t"])])
    m = Model(lib, path=path)
    assert m.status == 0, m.error
    s = Session(m)
    x = np.array([1, 2, 3], np.float32)
    want_t = -np.array([0.25, 1.0, 4.0], np.float32)
    outs = run_raw(lib, s, x, 2)
    t0 = to_numpy(lib, outs[1])
    assert t0.tobytes() == want_t.tobytes()
    assert to_numpy(lib, outs[0]).tobytes() == (x + want_t).tobytes()
    # Overwrite the cached value (a test-only breach of the read-only contract): if the
    # next run recomputed mul/neg, it would not see the sentinel.
    ptr = outs[1].data
    sentinel = np.array([7, 8, 9], np.float32)
    ctypes.memmove(ptr, sentinel.ctypes.data, sentinel.nbytes)
    outs = run_raw(lib, s, x, 2)
    assert outs[1].data == ptr
    assert to_numpy(lib, outs[1]).tobytes() == sentinel.tobytes()
    assert to_numpy(lib, outs[0]).tobytes() == (x + sentinel).tobytes()
    # Caches are per session: a new one computes the value afresh.
    s2 = Session(m)
    assert [a.tobytes() for a in s2.run("forward", x)] == [(x + want_t).tobytes(), t0.tobytes()]
    s2.close()
    s.close()
    m.close()


def test_repeated_runs_bit_identical_across_sessions_and_threads(lib: ctypes.CDLL,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "mlp.amber"
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 5)).eval()
    am.export(model, am.spec("batch", 32)).save(str(path))
    m = Model(lib, path=path)
    assert m.status == 0, m.error
    xs = [np.random.default_rng(i).standard_normal((b, 32)).astype(np.float32)
          for i, b in enumerate((1, 3, 1, 7))]
    first = Session(m)
    want = [first.run("forward", x)[0].tobytes() for x in xs]
    first.close()
    errors: list[str] = []

    def worker() -> None:
        s = Session(m)
        for _ in range(5):
            for x, w in zip(xs, want):
                got = s.run("forward", x)
                if isinstance(got, str) or got[0].tobytes() != w:
                    errors.append(f"{got!r}: {s.error}")
        s.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    m.close()


def test_cached_values_count_against_the_memory_limit(lib: ctypes.CDLL, tmp_path: Path) -> None:
    path = tmp_path / "wide.amber"
    am.export(nn.Sequential(nn.Linear(64, 4096)), am.spec("batch", 64)).save(str(path))
    opts = Options()
    lib.amber_options_init(ctypes.byref(opts))
    opts.memory_limit = 1 << 20  # the transposed weight alone takes 1 MiB
    handle, sess = ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.amber_model_open_file(str(path).encode(), ctypes.byref(opts),
                                     ctypes.byref(handle)) == 0
    assert lib.amber_session_create(handle, ctypes.byref(sess)) == 0
    x = np.ones((1, 64), np.float32)
    ins = (Tensor * 1)(from_numpy(x))
    outs = (Tensor * 1)()
    for _ in range(3):
        st = lib.amber_session_run(sess, b"forward", ins, 1, outs, 1)
        assert lib.amber_status_name(st) == b"AMBER_ERR_LIMIT"
        assert b"memory limit" in lib.amber_session_error(sess)
    lib.amber_session_free(sess)
    lib.amber_model_close(handle)


# ----------------------------------------------------------------------------- loop bodies


def _matrix(out: str, values: np.ndarray) -> dict:
    return node("constant", [], out, {"value": {"dtype": "float32", "shape": list(values.shape),
                                                "data": values.ravel().tolist()}},
                shape=list(values.shape))


W = np.arange(9, dtype=np.float32).reshape(3, 3) / 8 - 0.5


def weight_through_call_and_scan(path: Path) -> Path:
    """main(xs) = g(xs, W); g runs a scan whose body transposes the W it is handed:
    h <- h @ W.T + x_t, returning the final h and every h."""
    main = fn("main", [p("xs", shape=["n", 1, 3])], [
        _matrix("w", W),
        node("call", ["xs", "w"], "hs", {"callee": "g"}, shape=["n", 1, 3])], ["hs"])
    g = fn("g", [p("xs", shape=["n", 1, 3]), p("w", shape=[3, 3])], [
        node("slice", ["xs"], "x0", {"starts": [0, 0, 0], "stops": [1, 1, 3],
                                     "steps": [1, 1, 1]}, shape=[1, 1, 3]),
        node("reshape", ["x0"], "x0r", {"shape": [1, 3]}, shape=[1, 3]),
        node("sub", ["x0r", "x0r"], "h0", shape=[1, 3]),
        {"op": "scan", "inputs": ["h0", "xs", "w"],
         "attrs": {"body": "step", "num_carries": 1, "num_xs": 1, "length": "n",
                   "reverse": False},
         "outputs": [p("last", shape=[1, 3]), p("hs", shape=["n", 1, 3])]}], ["hs"])
    step = fn("step", [p("h", shape=[1, 3]), p("x", shape=[1, 3]), p("w", shape=[3, 3])], [
        node("transpose", ["w"], "wt", {"perm": [1, 0]}, shape=[3, 3]),
        node("matmul", ["h", "wt"], "hw", shape=[1, 3]),
        node("add", ["hw", "x"], "h2", shape=[1, 3])], ["h2", "h2"])
    return program_file(path, [main, g, step], opset=2)


def _scan_reference(xs: np.ndarray, w: np.ndarray) -> np.ndarray:
    h, hs = np.zeros((1, 3), np.float32), []
    for x in xs:
        h = h @ w.T + x
        hs.append(h)
    return np.stack(hs)


def test_loop_body_transposes_a_weight_it_is_handed_once(lib: ctypes.CDLL,
                                                         tmp_path: Path) -> None:
    path = weight_through_call_and_scan(tmp_path / "scan.amber")
    xs = np.random.default_rng(0).standard_normal((5, 1, 3)).astype(np.float32)
    with Model(lib, path=path) as m:
        s = Session(m)
        first = s.run("forward", xs)
        assert not isinstance(first, str), s.error
        np.testing.assert_allclose(first[0], _scan_reference(xs, W), rtol=1e-5, atol=1e-6)
        # The transpose of the weight the body receives is a cached value of the session
        # (before, the body transposed it on each of the 5 iterations).
        assert s.stats().cached_bytes > 0
        again = s.run("forward", xs)
        assert again[0].tobytes() == first[0].tobytes()
        s.close()


def test_value_passed_by_two_calls_is_not_cached(lib: ctypes.CDLL, tmp_path: Path) -> None:
    """g receives a different constant at each call site: what it computes from it is
    computed at every call, not taken from the first."""
    c1, c2 = np.array([1, 2, 3], np.float32), np.array([-4, 5, 0.5], np.float32)
    main = fn("main", [p("x", shape=[3])], [
        _matrix("c1", c1), _matrix("c2", c2),
        node("call", ["x", "c1"], "a", {"callee": "g"}, shape=[3]),
        node("call", ["x", "c2"], "b", {"callee": "g"}, shape=[3])], ["a", "b"])
    g = fn("g", [p("x", shape=[3]), p("c", shape=[3])], [
        node("neg", ["c"], "e", shape=[3]), node("add", ["x", "e"], "y", shape=[3])], ["y"])
    path = program_file(tmp_path / "two.amber", [main, g])
    x = np.array([10, 20, 30], np.float32)
    with Model(lib, path=path) as m:
        s = Session(m)
        for _ in range(2):
            a, b = s.run("forward", x)
            assert a.tobytes() == (x - c1).tobytes() and b.tobytes() == (x - c2).tobytes()
        assert s.stats().cached_bytes == 0
        s.close()


def test_recursive_function_keeps_its_weight_argument_cached(lib: ctypes.CDLL,
                                                             tmp_path: Path) -> None:
    """f(k, acc, w) = f(k - 1, acc - w, w) until k = 0, called once with a constant w:
    every call (the recursive ones too) passes the same w, so -w is computed once."""
    i64 = "int64"
    w = np.array([0.5, -2.0, 3.0], np.float32)
    scalar = {"dtype": i64, "shape": []}
    main = fn("main", [p("x", shape=[3]), p("k", i64, [])], [
        _matrix("w", w), node("call", ["k", "x", "w"], "r", {"callee": "f"}, shape=[3])], ["r"])
    f = fn("f", [p("k", i64, []), p("acc", shape=[3]), p("w", shape=[3])], [
        node("neg", ["w"], "e", shape=[3]), node("add", ["acc", "e"], "a2", shape=[3]),
        node("constant", [], "zero", {"value": {**scalar, "data": [0]}}, i64, []),
        node("constant", [], "one", {"value": {**scalar, "data": [1]}}, i64, []),
        node("gt", ["k", "zero"], "more", dtype="bool", shape=[]),
        node("sub", ["k", "one"], "k2", dtype=i64, shape=[]),
        node("cond", ["more", "k2", "a2", "w"], "r", {"then": "again", "else": "done"},
             shape=[3])], ["r"])
    again = fn("again", [p("k", i64, []), p("acc", shape=[3]), p("w", shape=[3])],
               [node("call", ["k", "acc", "w"], "r", {"callee": "f"}, shape=[3])], ["r"])
    done = fn("done", [p("k", i64, []), p("acc", shape=[3]), p("w", shape=[3])], [], ["acc"])
    path = program_file(tmp_path / "rec.amber", [main, f, again, done], opset=2)
    x = np.array([1, 2, 3], np.float32)
    with Model(lib, path=path) as m:
        assert m.status == 0, m.error
        s = Session(m)
        for k in (0, 3, 1):
            want = x
            for _ in range(k + 1):
                want = want + -w
            got = s.run("forward", x, np.array(k, np.int64))
            assert not isinstance(got, str), s.error
            assert got[0].tobytes() == want.tobytes()
        assert s.stats().cached_bytes > 0
        s.close()


def test_loop_input_from_the_caller_is_not_cached(lib: ctypes.CDLL, tmp_path: Path) -> None:
    """A scan's invariant input that comes from the entry's inputs changes between runs:
    the body's transpose of it is not kept from one run to the next."""
    main = fn("main", [p("xs", shape=["n", 1, 3]), p("w", shape=[3, 3])], [
        node("slice", ["xs"], "x0", {"starts": [0, 0, 0], "stops": [1, 1, 3],
                                     "steps": [1, 1, 1]}, shape=[1, 1, 3]),
        node("reshape", ["x0"], "x0r", {"shape": [1, 3]}, shape=[1, 3]),
        node("sub", ["x0r", "x0r"], "h0", shape=[1, 3]),
        {"op": "scan", "inputs": ["h0", "xs", "w"],
         "attrs": {"body": "step", "num_carries": 1, "num_xs": 1, "length": "n",
                   "reverse": False},
         "outputs": [p("last", shape=[1, 3]), p("hs", shape=["n", 1, 3])]}], ["hs"])
    step = fn("step", [p("h", shape=[1, 3]), p("x", shape=[1, 3]), p("w", shape=[3, 3])], [
        node("transpose", ["w"], "wt", {"perm": [1, 0]}, shape=[3, 3]),
        node("matmul", ["h", "wt"], "hw", shape=[1, 3]),
        node("add", ["hw", "x"], "h2", shape=[1, 3])], ["h2", "h2"])
    path = program_file(tmp_path / "input.amber", [main, step], opset=2)
    xs = np.random.default_rng(1).standard_normal((4, 1, 3)).astype(np.float32)
    with Model(lib, path=path) as m:
        s = Session(m)
        for w in (W, 2 * W, -W):
            got = s.run("forward", xs, w)
            assert not isinstance(got, str), s.error
            np.testing.assert_allclose(got[0], _scan_reference(xs, w), rtol=1e-5, atol=1e-6)
        assert s.stats().cached_bytes == 0
        s.close()


@pytest.mark.parametrize("layer", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent_layers_loop_natively_the_same_bits_on_any_thread_count(
        lib: ctypes.CDLL, tmp_path: Path, layer: type) -> None:
    """An exported recurrent layer (a scan whose body multiplies by the transposed
    recurrent weight it is handed): the transposes are cached values of the session, and
    every run on 1, 2 or 8 threads gives the same bits, close to the reference interpreter."""
    am.manual_seed(0)
    model = layer(8, 64, num_layers=2).eval()
    path = tmp_path / "rnn.amber"
    am.export(model, am.spec("t", "b", 8), sizes={"t": (2, 3), "b": (1, 2)}).save(str(path))
    xs = np.random.default_rng(2).standard_normal((5, 16, 8)).astype(np.float32)
    want = am.load(path, backend="reference").program.run("forward", xs)
    weight_bytes = sum(4 * p.numel() for k, p in model.named_parameters() if "weight" in k)
    runs = []
    for threads in (1, 2, 8):
        with Model(lib, path=path, threads=threads) as m:
            s = Session(m)
            for _ in range(2):
                got = s.run("forward", xs)
                assert not isinstance(got, str), s.error
                runs.append([a.tobytes() for a in got])
            # every weight transposed once (and packed): held by the session
            assert s.stats().cached_bytes >= weight_bytes
            s.close()
    assert all(r == runs[0] for r in runs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
