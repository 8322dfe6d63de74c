"""amber.set_num_threads governs the eager kernels (each thread's kernel context is made
again with the new count at its next op) and native models opened afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import native as N
from amber.ops import ckernels

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "v1" / "mlp.amber"


@pytest.fixture()
def restore_threads() -> Iterator[None]:
    before = am.get_num_threads()
    yield
    am.set_num_threads(before)


def test_default_is_the_cores() -> None:
    import os

    assert am.get_num_threads() >= 1
    assert am.get_num_threads() <= (os.cpu_count() or 1)


def test_eager_kernels_and_new_sessions_follow_the_setting(lib: N.NativeLibrary,
                                                           restore_threads: None) -> None:
    x = am.tensor(np.ones((3, 3), np.float32))
    for n in (1, 3, 2):
        am.set_num_threads(n)
        (x @ x).numpy()
        assert ckernels._context().threads == n
        assert N.NativeModel(GOLDEN).threads == n
    assert N.NativeModel(GOLDEN, threads=1).threads == 1  # an explicit count wins


def test_each_python_thread_has_its_own_context(restore_threads: None) -> None:
    import threading

    am.set_num_threads(2)
    seen = []

    def work() -> None:
        (am.tensor(np.ones((2, 2), np.float32)) @ am.tensor(np.ones((2, 2), np.float32)))
        seen.append(ckernels._context())

    ts = [threading.Thread(target=work) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(seen) == 2 and seen[0] is not seen[1]
    assert all(c.threads == 2 for c in seen)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_makes_its_own_context(restore_threads: None) -> None:
    import os

    am.set_num_threads(2)
    a = am.tensor(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))
    want = (a @ a).numpy()
    parent = ckernels._context()
    pid = os.fork()
    if pid == 0:  # child: the same result on a context of its own, then a clean exit
        ok = np.array_equal((a @ a).numpy(), want) and ckernels._context() is not parent
        os._exit(0 if ok else 1)  # (a normal exit is tested by the subprocess below)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_a_forked_child_exits_normally(tmp_path) -> None:
    """At interpreter exit a forked child must not join the parent's worker threads."""
    import subprocess
    import sys

    code = """
import os, numpy as np, amber as am
am.set_num_threads(2)
a = am.tensor(np.ones((64, 64), np.float32))
(a @ a).numpy()
pid = os.fork()
if pid == 0:
    (a @ a).numpy()
    raise SystemExit(0)  # normal interpreter shutdown in the child
_, status = os.waitpid(pid, 0)
raise SystemExit(os.WEXITSTATUS(status))
"""
    res = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True)
    assert res.returncode == 0, res.stderr
