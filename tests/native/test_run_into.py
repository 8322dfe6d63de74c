"""The Python binding has the runtime write large outputs straight into new arrays
(amber_session_run_into) once a run has shown their shapes: the results are the same as
copies of the session's memory, each call's arrays are its own, and outputs whose size
the data decide fall back to copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import amber as am

N = pytest.importorskip("amber.native")
GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture
def every_output_into(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(N, "_INTO_MIN_BYTES", 0)


def _four(x: am.Tensor) -> tuple[am.Tensor, ...]:
    y = am.relu(x) * 2.0
    return y, x, y, y.reshape(-1)


def test_results_equal_and_each_call_owns_its_arrays(tmp_path: Path,
                                                     every_output_into: None) -> None:
    am.export(_four, am.spec("n", 3)).save(tmp_path / "four.amber")
    m = N.NativeModel(tmp_path / "four.amber")
    rng = np.random.default_rng(0)
    runs = []
    for n in (2, 2, 5, 2):  # a new shape in between: learned and used per input shape
        x = rng.standard_normal((n, 3)).astype(np.float32)
        got = m.run("forward", x)
        y = np.maximum(x, 0) * 2
        for g, w in zip(got, [y, x, y, y.ravel()]):
            np.testing.assert_array_equal(g, w)
        assert not np.shares_memory(got[1], x)
        runs.append((got, [g.copy() for g in got]))
    for got, kept in runs:  # no later run wrote into an earlier call's arrays
        for g, k in zip(got, kept):
            np.testing.assert_array_equal(g, k)
    assert not any(np.shares_memory(a, b) for a in runs[0][0] for b in runs[1][0])


def test_outputs_of_data_dependent_size_fall_back_to_copies(every_output_into: None
                                                            ) -> None:
    path = GOLDEN / "v5" / "decoder_greedy.amber"
    m, ref = N.NativeModel(path), am.load(path, backend="reference")
    vectors = ref.program.test_vectors
    for tv in vectors + vectors[::-1] + vectors:
        got = m.run(tv.entry, *[tv.inputs[p.name] for p in ref.signature(tv.entry).inputs])
        for p, g in zip(ref.signature(tv.entry).outputs, got):
            np.testing.assert_allclose(g, tv.outputs[p.name], rtol=1e-9, atol=1e-12)
    # the same input shape, a different number of halvings each time
    for x in ([0.25, 0.5], [3.0, -2.0], [0.25, 0.5], [40.0, 1.0]):
        got = m.run("halvings", np.array(x))
        want = ref.run("halvings", np.array(x))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w.numpy(), rtol=1e-12, atol=1e-15)


def test_a_large_output_is_written_in_place_from_the_second_call(tmp_path: Path) -> None:
    am.export(lambda x: am.relu(x) + 1.0, am.spec(1, 64, 32, 32)).save(tmp_path / "r.amber")
    m = N.NativeModel(tmp_path / "r.amber")
    x = np.random.default_rng(1).standard_normal((1, 64, 32, 32)).astype(np.float32)
    first, second = m.run("forward", x)[0], m.run("forward", x)[0]
    np.testing.assert_array_equal(first, np.maximum(x, 0) + 1)
    np.testing.assert_array_equal(second, first)
    assert first.flags.owndata  # a copy of the session's memory
    assert not second.flags.owndata and second.ctypes.data % 64 == 0  # the runtime's write
