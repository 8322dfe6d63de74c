"""Outputs whose size the data decide (opset 5): a list grown in a loop at the top level
of the exported function, stacked and returned. The verifier allows such a size only in
an entry point's function that no node runs; captures that would need it elsewhere are
refused at the user's line; the runtimes report the size a run produced."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
from amber.capture.ir import Node, Port, Value

HERE = __file__


def line_of(marker: str) -> int:
    with open(HERE) as f:
        for i, line in enumerate(f, 1):
            if f"# <{marker}>" in line:
                return i
    raise AssertionError(marker)


def halvings(x):
    hs = [x]
    while x.abs().sum() > 1:
        x = x * 0.5
        hs.append(x.tanh())
    return am.stack(hs, 1), x.sum()


def _program() -> am.Program:
    return am.export(halvings, am.spec("n", dtype=am.float64))


def test_the_signature_names_the_trip_count() -> None:
    program = _program()
    assert program.opset_version == 5
    out, total = program.entries["forward"].outputs
    assert [str(d) for d in out.shape] == ["n", "trips0+1"]
    assert [str(d) for d in total.shape] == []
    assert am.capture.ir.data_dependent_symbols(program.functions["forward"]) == {"trips0"}


@pytest.mark.parametrize("backend", ["reference", "native"])
def test_each_run_reports_its_own_length(tmp_path, backend) -> None:
    if backend == "native":
        pytest.importorskip("amber.native")
    path = tmp_path / "h.amber"
    _program().save(path)
    m = am.load(path, backend=backend)
    for x, trips in ((np.array([0.25, 0.5]), 0), (np.array([1.5]), 1),
                     (np.array([4.0, 3.0, 1.0]), 3)):
        got, total = m(x)
        want, want_total = halvings(am.tensor(x))
        assert got.shape == (len(x), trips + 1) == tuple(want.shape)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)
        np.testing.assert_allclose(total.numpy(), want_total.numpy(), rtol=1e-12)
    results = m.verify()
    assert results and all(r.ok for r in results)


def test_gradients_through_a_data_dependent_output_match_finite_differences(tmp_path
                                                                            ) -> None:
    def loss(x):
        ys, _ = halvings(x)
        return (ys * ys).sum()

    def both(x):
        return halvings(x)[0], am.grad(loss)(x)

    path = tmp_path / "g.amber"
    am.export(both, am.spec("n", dtype=am.float64)).save(path)
    m = am.load(path)
    # each away from a change of the trip count
    for x0 in (np.array([3.0, -1.5]), np.array([0.3, 0.2]), np.array([5.0, 1.0, -2.5])):
        ys, g = m(x0)
        assert ys.shape == tuple(halvings(am.tensor(x0))[0].shape)
        eps = 1e-6
        fd = [(float(loss(am.tensor(x0 + eps * e)).numpy())
               - float(loss(am.tensor(x0 - eps * e)).numpy())) / (2 * eps)
              for e in np.eye(len(x0))]
        np.testing.assert_allclose(g.numpy(), fd, rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- verifier


def test_older_opsets_refuse_a_data_dependent_result() -> None:
    program = _program()
    program.opset_version = 4
    with pytest.raises(am.IRError, match=r"trips0.*needs opset version 5, the program "
                                         r"declares 4"):
        program.verify()


def test_only_an_entry_points_function_may_return_it() -> None:
    program = _program()
    fwd = program.functions["forward"]
    # a second entry point whose function calls the first: the call's result would
    # have a size the caller cannot name
    from amber.capture.ir import EntryPoint, Function

    caller = Function("caller")
    p = Value("x", fwd.params[0].aval, None, caller)
    caller.params.append(p)
    outs = [Value(f"r{i}", r.aval, None, caller) for i, r in enumerate(fwd.results)]
    caller.nodes.append(Node("call", [p], {"callee": "forward"}, outs))
    caller.results = outs
    program.functions["caller"] = caller
    program.entries["caller"] = EntryPoint(
        "caller", "caller", [Port("x", p.aval)],
        [Port(f"r{i}", v.aval) for i, v in enumerate(outs)], {"tuple": ["r0", "r1"]}, {})
    with pytest.raises(am.IRError, match="runs 'forward', whose results use trips0"):
        program.verify()


def test_a_function_no_entry_point_runs_may_not_return_it() -> None:
    program = _program()
    program.entries["forward"].function = "elsewhere"
    program.functions["elsewhere"] = program.functions.pop("forward")
    program.functions["elsewhere"].name = "elsewhere"
    program.verify()  # as an entry point's function: allowed
    del program.entries["forward"]
    program.test_vectors.clear()
    with pytest.raises(am.IRError, match=r"'elsewhere'.*only an entry point's function"):
        program.verify()


def test_files_keep_the_rules(tmp_path) -> None:
    path = tmp_path / "h.amber"
    _program().save(path)
    loaded = am.load(path, backend="reference")
    assert loaded.opset_version == 5
    assert [str(d) for d in loaded.signature("forward").outputs[0].shape] == ["n",
                                                                              "trips0+1"]


# ----------------------------------------------------------------------------- refusals


def test_a_graph_function_returning_it_is_refused() -> None:
    @am.function
    def grow(x):
        hs = [x]
        while x.sum() > 1:
            x = x / 2
            hs.append(x)
        return am.stack(hs, 1)

    def f(x):
        return grow(x).sum(1)  # <graph>

    with pytest.raises(am.CaptureError) as info:
        am.export(f, am.spec("n"))
    msg = str(info.value)
    assert f"{HERE}:{line_of('graph')}" in msg
    assert "the graph function '" in msg and "grow' returns a value of type " \
        "float32[n, trips0+1]" in msg
    assert "Reduce the value inside" in msg


def test_a_branch_returning_it_is_refused() -> None:
    def f(x):
        def grown(v):
            hs = [v]
            while v.sum() > 1:
                v = v / 2
                hs.append(v)
            return am.stack(hs, 1)

        return am.cond(x.sum() > 0, grown, grown, x)  # <branch>

    with pytest.raises(am.CaptureError) as info:
        am.export(f, am.spec("n"))
    msg = str(info.value)
    assert f"{HERE}:{line_of('branch')}" in msg
    assert "a branch of an if (am.cond) returns a value of type float32[n, trips0+1]" in msg


def test_a_loop_body_returning_an_inner_loops_length_is_refused() -> None:
    def f(x, n):
        ys = [x]
        k = 0
        while k < n:  # <outer>
            hs = [x]
            while x.sum() > 1:
                x = x / 2
                hs.append(x)
            ys.append(am.stack(hs, 0).sum(0))
            k += 1
        return am.stack(ys, 0), x

    am.export(f, am.spec("n"), am.spec((), dtype=am.int64))  # reduced inside: fine

    def g(x, n):
        out = x
        k = 0
        while k < n:  # <outer2>
            hs = [x]
            while x.sum() > 1:
                x = x / 2
                hs.append(x)
            out = am.stack(hs, 0)
            k += 1
        return out

    with pytest.raises(am.CaptureError, match=f"{HERE}:{line_of('outer2')}"):
        am.export(g, am.spec("n"), am.spec((), dtype=am.int64))


def test_onnx_export_refuses_it_by_name() -> None:
    pytest.importorskip("onnx")
    from amber.onnx import OnnxExportError, to_onnx

    with pytest.raises(OnnxExportError, match=r"output 'output_0' is float64\[n, trips0\+1\]"
                                              r".*a loop's trip count decides"):
        to_onnx(_program())


def test_a_loaded_model_returning_it_runs_alone_but_not_inside_a_capture(tmp_path) -> None:
    path = tmp_path / "h.amber"
    _program().save(path)
    m = am.load(path)
    got, _ = m(np.array([4.0, 1.0]))  # eagerly: fine
    assert got.shape == (2, 4)

    def f(x):
        return m(x)[1] * 2  # <reuse>

    with pytest.raises(am.CaptureError) as info:
        am.export(f, am.spec("n", dtype=am.float64))
    msg = str(info.value)
    assert f"{HERE}:{line_of('reuse')}" in msg
    assert "entry point 'forward' returns a size its loop decides (trips0)" in msg
