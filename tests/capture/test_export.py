"""am.export: inputs and specs, weights, entry points, the proof and its test vectors."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
from amber import nn
from amber.capture.ir import vector_tolerance


def test_module_parameters_and_buffers_become_named_weights():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8).eval(), nn.Linear(8, 2))
    p = am.export(model, am.spec("batch", 4))
    sd = model.state_dict()
    assert set(p.weights) == set(sd)
    for k, v in sd.items():
        np.testing.assert_array_equal(p.weights[k], v.numpy())
    sig = p.signature()
    assert [i.name for i in sig.inputs] == ["input"]  # Sequential.forward(input)
    ops = [n.op for n in p.functions["forward"].nodes]
    assert "weight" in ops
    # weights are snapshots: later training does not change the program
    with am.no_grad():
        model[0].weight.add_(1.0)
    assert not np.array_equal(p.weights["0.weight"], model[0].weight.detach().numpy())


def test_bound_method_and_weights_argument():
    lin = nn.Linear(3, 2)
    p = am.export(lin.forward, am.spec("n", 3))
    assert set(p.weights) == {"weight", "bias"}
    p2 = am.export(lambda x: lin(x).sum(1), am.spec("n", 3), weights={"w": lin.weight,
                                                                       "b": lin.bias})
    assert set(p2.weights) == {"w", "b"}
    p2 = am.export(lambda x: lin(x).sum(1), am.spec("n", 3), weights=lin)
    assert set(p2.weights) == {"weight", "bias"}
    p3 = am.export(lambda x: lin(x).sum(1), am.spec("n", 3))
    assert set(p3.weights) == {"weight", "bias"}  # the one module the closure names
    assert not any(n.op == "constant" for n in p3.functions["forward"].nodes)
    other = nn.Linear(2, 2)
    scale = nn.Parameter(am.ones(2))
    p4 = am.export(lambda x: other(lin(x)) * scale, am.spec("n", 3))
    assert set(p4.weights) == {"lin.weight", "lin.bias", "other.weight", "other.bias",
                               "scale"}
    w = am.randn(3, 2)
    p5 = am.export(lambda x: x @ w, am.spec("n", 3))
    assert not p5.weights  # a plain tensor is a constant
    assert any(n.op == "constant" for n in p5.functions["forward"].nodes)


def test_capture_leaves_module_intact():
    lin = nn.Linear(3, 2)
    before = lin.weight.detach().numpy().copy()
    am.export(lin, am.spec("n", 3))
    assert lin.weight._data is not None and lin.weight.requires_grad
    np.testing.assert_array_equal(lin.weight.detach().numpy(), before)
    lin(am.randn(2, 3)).sum().backward()
    assert lin.weight.grad is not None


def test_failed_capture_restores_module():
    lin = nn.Linear(3, 2)

    def f(x):
        return x * float(lin(x).sum())

    with pytest.raises(am.CaptureError):
        am.export(f, am.spec("n", 3), weights=lin)
    assert lin.weight._data is not None
    lin(am.randn(2, 3))


def test_several_entry_points(tmp_path):
    lin = nn.Linear(3, 2)
    p = am.export(lin, am.spec("n", 3))
    p.add(lambda x, y: ((lin(x) - y) ** 2).mean(), am.spec("n", 3), am.spec("n", 2),
          name="loss", weights=lin)
    p.add(lambda x: lin(x).argmax(1), am.spec("n", 3), name="predict", weights=lin)
    assert list(p.entries) == ["forward", "loss", "predict"]
    assert len(p.weights) == 2  # shared
    p.save(tmp_path / "m.amber")
    m = am.load(tmp_path / "m.amber")
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    y = np.zeros((4, 2), np.float32)
    np.testing.assert_allclose(m(x).detach().numpy(), lin(am.tensor(x)).detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(m.loss(x, y).numpy(),
                               (lin(am.tensor(x)) ** 2).mean().detach().numpy(), rtol=1e-6)
    assert m.predict(x).dtype == am.int64
    assert str(m.signature("loss")) == \
        "loss(x: float32[n, 3], y: float32[n, 2]) -> (output: float32[])"
    with pytest.raises(am.CaptureError, match="already has an entry point"):
        p.add(lin, am.spec("n", 3))


def test_spec_validation():
    with pytest.raises(am.ShapeError):
        am.spec("bad name", 3)
    with pytest.raises(am.ShapeError):
        am.spec(-1)
    s = am.spec(("b", 3), dtype="int32", name="ids")
    assert s.shape == ("b", 3) and s.dtype is am.int32


def test_symbols_shared_between_inputs():
    p = am.export(lambda x, y: x + y, am.spec("n", 2), am.spec("n", 2))
    with pytest.raises(am.ShapeError, match="another input set n = 3"):
        p.run("forward", np.zeros((3, 2), np.float32), np.zeros((4, 2), np.float32))
    with pytest.raises(am.ShapeError, match="cannot be broadcast"):
        am.export(lambda x, y: x + y, am.spec("n", 2), am.spec("m", 2))


def test_nested_inputs_outputs_and_static_args(tmp_path):
    def f(inputs, scale, mode):
        a, b = inputs["a"], inputs["b"]
        out = {"sum": a + b, "pair": (a * scale, b - scale)}
        return out if mode == "both" else out["sum"]

    args = ({"a": am.spec("n", 2), "b": am.spec("n", 2)}, 3.0, "both")
    p = am.export(f, *args)
    sig = p.signature()
    assert [i.name for i in sig.inputs] == ["inputs_a", "inputs_b"]
    assert [o.name for o in sig.outputs] == ["pair_0", "pair_1", "sum"]
    p.save(tmp_path / "n.amber")
    m = am.load(tmp_path / "n.amber")
    a = np.ones((2, 2), np.float32)
    out = m(a, 2 * a)
    assert set(out) == {"sum", "pair"}
    assert isinstance(out["pair"], tuple)
    np.testing.assert_array_equal(out["pair"][0].numpy(), 3 * a)
    np.testing.assert_array_equal(out["sum"].numpy(), 3 * a)
    out2 = m(inputs_b=2 * a, inputs_a=a)
    np.testing.assert_array_equal(out2["sum"].numpy(), 3 * a)


def test_spec_name_and_example_tensors():
    x = am.randn(2, 3)
    p = am.export(lambda x, y: x @ y, am.spec("n", 2, name="lhs"), x)
    assert [i.name for i in p.signature().inputs] == ["lhs", "y"]
    assert p.signature().inputs[1].shape == (2, 3)


def test_proof_stores_test_vectors():
    p = am.export(lambda x: am.tanh(x), am.spec("batch", 3), sizes={"batch": (4, 6, 9)})
    dims = [tv.dims for tv in p.test_vectors]
    assert dims == [{"batch": 4}, {"batch": 6}, {"batch": 9}]
    for tv in p.test_vectors:
        np.testing.assert_allclose(tv.outputs["output"], np.tanh(tv.inputs["x"]), rtol=1e-6)
        assert tv.tolerance["output"] == vector_tolerance("float32", tv.outputs["output"])


def test_proof_uses_example_inputs_for_static_exports():
    x = am.randn(2, 3)
    p = am.export(lambda x: x * 2, x)
    assert len(p.test_vectors) == 2
    np.testing.assert_array_equal(p.test_vectors[0].inputs["x"], x.numpy())
    assert not np.array_equal(p.test_vectors[1].inputs["x"], x.numpy())


def test_proof_integer_inputs_follow_example_range():
    emb = nn.Embedding(7, 2)
    idx = am.tensor([[0, 6], [3, 2]])
    p = am.export(emb, idx)
    for tv in p.test_vectors:
        a = tv.inputs["input"]
        assert a.dtype == np.int64 and a.min() >= 0 and a.max() <= 6


def test_proof_fails_on_hidden_state():
    calls = {"n": 0}

    def f(x):
        calls["n"] += 1
        return x * calls["n"]  # a Python value that changes between calls

    with pytest.raises(am.ExportError, match="differs from eager"):
        am.export(f, am.spec("n", 3))


def test_proof_fails_on_randomness_baked_into_a_constant():
    def f(x):
        return x + am.randn(3)

    with pytest.raises(am.ExportError, match="differs from eager"):
        am.export(f, am.randn(2, 3))


def test_proof_reports_unsuitable_sizes():
    conv = nn.Conv2d(1, 1, 5)
    with pytest.raises(am.ExportError, match="sizes="):
        am.export(conv, am.spec("b", 1, "h", "w"))
    p = am.export(conv, am.spec("b", 1, "h", "w"), sizes={"h": (5, 9), "w": (6, 8)})
    assert str(p.signature().outputs[0]) == "output: float32[b, 1, h-4, w-4]"
    with pytest.raises(am.ExportError, match="not a symbolic dim"):
        am.export(conv, am.spec("b", 1, 8, 8), sizes={"h": (5, 9)})
    with pytest.raises(am.ExportError, match="two distinct sizes"):
        am.export(conv, am.spec("b", 1, 8, 8), sizes={"b": (3,)})


def test_check_false_skips_the_proof():
    p = am.export(lambda x: x + 1, am.spec("n"), check=False)
    assert p.test_vectors == []


def test_outputs_must_be_tensors():
    with pytest.raises(am.CaptureError, match="must return tensors"):
        am.export(lambda x: (x, 3), am.spec("n"))


def test_constant_output_and_identity():
    p = am.export(lambda x: (x, am.ones(2)), am.spec("n"))
    out = p.run("forward", np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(out[0], [0, 1, 2])
    np.testing.assert_array_equal(out[1], [1, 1])


def test_capture_errors_name_the_user_line_for_shape_errors():
    with pytest.raises(am.ShapeError, match=r"while capturing .*test_export\.py"):
        am.export(lambda x: x @ x, am.spec("n", 3))


def test_leaked_tracer_is_refused():
    kept = []

    def f(x):
        kept.append(x)
        return x

    am.export(f, am.spec("n"))

    def g(y):
        return y + kept[0]

    with pytest.raises(am.CaptureError, match="another capture"):
        am.export(g, am.spec("n"))


def test_interpreter_input_checks():
    p = am.export(lambda x, i: x[:, 0] + i, am.spec("n", 3), am.spec("n"))
    f32 = np.zeros((2, 3), np.float32)
    with pytest.raises(am.DTypeError, match="must be float32, got float64"):
        p.run("forward", f32.astype(np.float64), np.zeros(2, np.float32))
    with pytest.raises(am.ShapeError, match="rank 2"):
        p.run("forward", np.zeros(3, np.float32), np.zeros(2, np.float32))
    with pytest.raises(am.ShapeError, match="dim 1 must be 3"):
        p.run("forward", np.zeros((2, 4), np.float32), np.zeros(2, np.float32))
    with pytest.raises(am.AmberError, match="missing input"):
        p.run("forward", f32)
    with pytest.raises(am.AmberError, match="unknown input"):
        p.run("forward", f32, np.zeros(2, np.float32), z=1)
    with pytest.raises(am.AmberError, match="no entry point 'nope'"):
        p.run("nope", f32)


def test_interpreter_memory_limit():
    from amber.interpreter import Interpreter

    p = am.export(lambda x: x.reshape(x.shape[0], 1) * x, am.spec("n"))
    it = Interpreter(p, memory_limit=1000)
    it.run("forward", np.zeros(10, np.float32))
    with pytest.raises(am.LimitError, match="memory limit of 1000 bytes exceeded"):
        it.run("forward", np.zeros(100, np.float32))


def test_failed_add_leaves_the_program_unchanged():
    lin = nn.Linear(3, 2)
    p = am.export(lambda x: x * 2, am.spec("n", 3))
    calls = {"n": 0}

    def bad(x):
        calls["n"] += 1
        return lin(x) * calls["n"]

    with pytest.raises(am.ExportError):
        p.add(bad, am.spec("n", 3), name="bad")
    assert list(p.entries) == ["forward"] and list(p.functions) == ["forward"]
    assert p.weights == {}
    assert len(p.test_vectors) == 2
    p.add(lambda x: lin(x), am.spec("n", 3), name="good")
    assert set(p.weights) == {"weight", "bias"}


def test_same_weight_name_with_different_values_is_refused():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    p = am.export(a, am.spec("n", 3))
    with pytest.raises(am.IRError, match="already in the program with different values"):
        p.add(b, am.spec("n", 3), name="other")
    assert list(p.entries) == ["forward"]


def test_like_constructors_keep_symbolic_shapes() -> None:
    program = am.export(lambda a: am.zeros_like(a) + am.ones_like(a) * 2 + am.full_like(a, 3),
                        am.spec("n", 3))
    from amber.interpreter import Interpreter

    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = Interpreter(program).run("forward", x)[0]
    np.testing.assert_array_equal(out, np.full((2, 3), 5, np.float32))


def test_a_long_float32_reduction_exports_and_verifies(tmp_path) -> None:
    # a 16384-term dot product summed in another order than eager's differs by ~1e-4
    # near zero outputs: the proof bounds each element relative to the output's scale
    rng = np.random.default_rng(0)
    w = am.tensor(rng.standard_normal((16384, 16)).astype(np.float32))
    exported = am.export(lambda x: x @ w, am.spec(64, 16384))
    (vector, *_) = exported.test_vectors
    rtol, atol = vector.tolerance["output"]
    scale = float(np.abs(vector.outputs["output"]).max())
    assert rtol == 1e-4 and atol == pytest.approx(rtol * scale)
    path = tmp_path / "long_sum.amber"
    exported.save(path)
    assert all(r.ok for r in am.load(path).verify())


def test_vector_tolerance_is_the_dtype_tolerance_with_a_normwise_floor() -> None:
    from amber.capture.ir import TOLERANCE

    small = np.array([1e-3, -2e-3], np.float32)
    assert vector_tolerance("float32", small) == TOLERANCE["float32"]
    big = np.array([np.inf, np.nan, -300.0, 1.0], np.float32)
    assert vector_tolerance("float32", big) == pytest.approx((1e-4, 3e-2))
    assert vector_tolerance("int32", np.array([10**6], np.int32)) == (0.0, 0.0)
    assert vector_tolerance("float64", np.zeros((0, 3))) == TOLERANCE["float64"]
