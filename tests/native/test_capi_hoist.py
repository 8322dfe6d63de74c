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
