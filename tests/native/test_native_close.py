"""A closed NativeModel refuses every call with a typed error, and a close while another
thread runs waits for that run: never a crash. Each scenario runs in a child process, so
a use-after-free shows as a failed test instead of killing the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import native as N

MLP = Path(__file__).resolve().parents[1] / "golden" / "v1" / "mlp.amber"


def _child(code: str) -> subprocess.CompletedProcess[str]:
    prog = "import numpy as np, amber as am\nfrom amber import native as N\n" + \
        f"MLP = {str(MLP)!r}\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True,
                          timeout=300)


def test_calls_after_close_raise(lib: N.NativeLibrary) -> None:
    res = _child("""
        m = am.load(MLP, backend="native")
        x = np.ones((2, 16), np.float32)
        m(x)
        m.native.close()
        m.native.close()  # twice is fine
        calls = [lambda: m(x), lambda: m.native.run("forward", x), m.native.verify,
                 m.native.stats, m.native.new_session, lambda: m.native.format_version,
                 lambda: m.native.opset_version, lambda: m.native.session().error]
        for call in calls:
            try:
                call()
            except N.NativeClosedError as e:
                assert isinstance(e, am.AmberError) and "closed" in str(e), e
            else:
                raise SystemExit("no error")
        assert m.native.closed
        print("ok")
    """)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_close_during_runs_in_other_threads(lib: N.NativeLibrary) -> None:
    res = _child("""
        import threading, time
        for attempt in range(5):
            m = N.NativeModel(MLP, threads=1)
            x = np.random.default_rng(0).standard_normal((4096, 16)).astype(np.float32)
            want = m.run("forward", x)[0]
            started = threading.Barrier(3)
            outcomes = []

            def work():
                started.wait()
                try:
                    while True:
                        got = m.run("forward", x)[0]
                        assert np.array_equal(got, want)
                        outcomes.append("ran")
                except N.NativeClosedError:
                    outcomes.append("closed")

            threads = [threading.Thread(target=work) for _ in range(2)]
            for t in threads:
                t.start()
            started.wait()
            time.sleep(0.02 * (attempt + 1))
            m.close()
            for t in threads:
                t.join()
            assert outcomes.count("closed") == 2, outcomes
        print("ok")
    """)
    assert res.returncode == 0 and res.stdout.strip() == "ok", (res.returncode, res.stderr[-2000:])


def test_unaligned_inputs_are_copied(lib: N.NativeLibrary) -> None:
    m = N.NativeModel(MLP)
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    unaligned = raw[1:].view(np.float32).reshape(3, 16)
    unaligned[...] = x
    assert not unaligned.flags.aligned and unaligned.flags.c_contiguous
    np.testing.assert_array_equal(m.run("forward", unaligned)[0], m.run("forward", x)[0])
    model = am.load(MLP, backend="native")
    with am.no_grad():
        np.testing.assert_array_equal(model(unaligned).numpy(), model(x).numpy())
    m.close()


def test_closed_error_is_a_value_error(lib: N.NativeLibrary) -> None:
    m = N.NativeModel(MLP)
    m.close()
    with pytest.raises(ValueError, match="closed"):
        m.run("forward", np.ones((1, 16), np.float32))
