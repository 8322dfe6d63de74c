"""Capture is exact or refused: every construct that needs a concrete value raises
CaptureError naming this file and the offending line, what was asked for, and a fix."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am

HERE = __file__


def line_of(marker: str) -> int:
    """Line number of the (single) line of this file carrying ``# <marker>``."""
    with open(HERE) as f:
        hits = [i for i, line in enumerate(f, 1) if line.rstrip().endswith(f"# <{marker}>")]
    assert len(hits) == 1, marker
    return hits[0]


def refused(fn, *args, marker: str, asked: str) -> str:
    with pytest.raises(am.CaptureError) as info:
        am.export(fn, *args)
    msg = str(info.value)
    assert f"{HERE}:{line_of(marker)}" in msg, msg
    assert asked in msg, msg
    # every refusal says how to fix it
    assert "am.spec" in msg or "am.cond" in msg or "tensor" in msg, msg
    return msg


X = am.spec("batch", 3)


def test_bool_of_tensor():
    def f(x):
        return bool(x.sum() > 0) and x  # <bool>

    refused(f, X, marker="bool", asked="bool(tensor)")


def test_if_on_tensor_in_code_without_source():
    # a lambda's body is not converted (its source is not a statement): the Python `if`
    # inside the helper it calls needs a concrete value
    f = eval("lambda x: x if bool(x.sum() > 0) else -x")  # no source file to convert

    with pytest.raises(am.CaptureError, match="bool") as info:
        am.export(f, X)
    assert "am.cond" in str(info.value)


def test_code_without_source_is_not_converted():
    ns: dict = {}
    exec("def f(x):\n    while x.max() > 1:\n        x = x / 2\n    return x\n", ns)
    with pytest.raises(am.CaptureError, match="bool") as info:
        am.export(ns["f"], X)
    assert "am.while_loop" in str(info.value)


def test_int_of_tensor():
    def f(x):
        return x * int(x.sum())  # <int>

    refused(f, X, marker="int", asked="int(tensor)")


def test_float_of_tensor():
    def f(x):
        return x * float(x.mean())  # <float>

    refused(f, X, marker="float", asked="float(tensor)")


def test_item():
    def f(x):
        return x + x.sum().item()  # <item>

    refused(f, X, marker="item", asked=".item()")


def test_numpy():
    def f(x):
        return am.tensor(x.numpy() * 2)  # <numpy>

    refused(f, X, marker="numpy", asked=".numpy()")


def test_np_asarray():
    def f(x):
        return am.tensor(np.asarray(x))  # <asarray>

    refused(f, X, marker="asarray", asked="np.asarray")


def test_tolist():
    def f(x):
        return am.tensor(x.tolist())  # <tolist>

    refused(f, X, marker="tolist", asked=".tolist()")


def test_len_over_symbolic_dim():
    def f(x):
        return x * len(x)  # <len>

    refused(f, X, marker="len", asked="len()")


def test_iteration_over_symbolic_dim():
    def f(x):
        return am.stack([row * 2 for row in x])  # <iter>

    refused(f, X, marker="iter", asked="len()")


def test_range_over_symbolic_dim():
    def f(x):
        return sum(x[i] for i in range(x.shape[0]))  # <range>

    refused(f, X, marker="range", asked="as a Python integer")


def test_bool_mask_indexing():
    def f(x):
        return x[x > 0]  # <mask>

    refused(f, X, marker="mask", asked="boolean-mask indexing")


def test_tensor_as_python_index():
    def f(x):
        i = x.argmax()
        return x[:, [0, 1, 2][i]]  # <index>

    refused(f, X, marker="index", asked="Python index")


def test_int_of_symbolic_dim():
    def f(x):
        return x * int(x.shape[0])  # <intdim>

    refused(f, X, marker="intdim", asked="int() of the symbolic size batch")


def test_float_of_symbolic_dim():
    def f(x):
        return x / float(x.shape[0])  # <floatdim>

    refused(f, X, marker="floatdim", asked="float() of the symbolic size batch")


def test_symbolic_size_baked_into_a_numpy_constant():
    # am.tensor(x.shape[0] * 2) is the run-time value; a NumPy array cannot be
    def f(x):
        return x + am.tensor(np.asarray(x.shape[0] * 2))  # <bake>

    refused(f, X, marker="bake", asked="converting the symbolic size 2*batch to an array")


def test_symbolic_size_in_a_numpy_creation_function():
    # am.zeros(x.shape[0], 3) follows the run-time size; np.zeros cannot
    def f(x):
        return x + am.tensor(np.zeros((x.shape[0], 3), np.float32))  # <zeros>

    refused(f, X, marker="zeros", asked="symbolic size batch")


def test_symbolic_size_times_python_float():
    def f(x):
        return x * (x.shape[0] * 0.5)  # <floatmul>

    refused(f, X, marker="floatmul", asked="Python float")


def test_symbolic_size_as_a_python_int():
    def f(x):
        return x * int(x.shape[0] == 1)  # <eqdim>

    refused(f, X, marker="eqdim", asked="comparing the symbolic size batch with 1")


def test_slice_needing_clamp_on_symbolic_dim():
    def f(x):
        return x[:2]  # <clamp>

    refused(f, X, marker="clamp", asked="batch")


def test_inplace_update_of_buffer_with_traced_value():
    buf = am.zeros(3)

    def f(x):
        buf.add_(x.sum(0))  # <inplace>
        return x

    refused(f, X, marker="inplace", asked="in-place update")


def test_data_dependent_branch_is_never_a_constant():
    """Whichever way the example data would branch, the exported program keeps both
    paths (a cond node), never the branch the example took."""

    def f(x):
        if (x > 0).all():
            return x * 2
        return x * 3

    for example in (am.ones(2, 3), -am.ones(2, 3)):
        program = am.export(f, example)
        assert any(n.op == "cond" for fn in program.functions.values() for n in fn.nodes)
        m = am.load(program_bytes(program))
        for x in (np.ones((2, 3), np.float32), -np.ones((2, 3), np.float32)):
            np.testing.assert_array_equal(m(x).numpy(), f(am.tensor(x)).numpy())


def test_static_python_control_flow_is_allowed():
    """Branches on static shapes and Python values are evaluated at capture time."""

    def f(x, flag):
        if x.shape[1] == 3 and flag:
            return x * 2
        return x

    p = am.export(f, am.spec("batch", 3), True)
    assert [n.op for n in p.functions["forward"].nodes] == ["constant", "mul"]


def test_comparison_of_equal_symbolic_sizes_is_decided():
    def f(x, y):
        assert x.shape[0] == y.shape[0]
        assert x.shape[0] >= 1
        return x + y

    am.export(f, am.spec("n", 2), am.spec("n", 2))


def test_control_flow_on_traced_values_is_captured_not_specialised():
    def f(x):
        return am.cond(x.sum() > 0, lambda v: v * 2, lambda v: v * 3, x)  # <cond>

    program = am.export(f, X)
    assert "cond(" in str(program)  # a structured node, not the branch of the example
    x = np.arange(1.0, 7.0, dtype=np.float32).reshape(2, 3)
    for sign in (1.0, -1.0):
        v = x * np.float32(sign)
        np.testing.assert_allclose(program.run("forward", v)[0], v * (2 if sign > 0 else 3))


def program_bytes(program) -> bytes:
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "p.amber")
        program.save(path)
        with open(path, "rb") as fh:
            return fh.read()
