"""ONNX export of whole programs: registry coverage, refusals, symbolic dims, and the
MLP and CNN models at several batch sizes, checked by ONNX Runtime."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from onnx_helpers import assert_exact, run_onnx, session  # noqa: E402

import amber as am  # noqa: E402
from amber.capture.ir import Function, Node, Program, Value  # noqa: E402
from amber.ops import REGISTRY  # noqa: E402
from amber.ops.registry import Aval  # noqa: E402

pytestmark = pytest.mark.onnx


def test_every_primitive_is_supported_or_refused_with_a_reason() -> None:
    for name in REGISTRY:
        supported = name in am.onnx.SUPPORTED
        refused = name in am.onnx.REFUSED
        assert supported != refused, f"{name}: must be exactly one of SUPPORTED / REFUSED"
        reason = am.onnx.SUPPORTED.get(name) or am.onnx.REFUSED.get(name)
        assert isinstance(reason, str) and reason.strip(), name
    for (op, dtype), reason in am.onnx.REFUSED_DTYPES.items():
        assert op in REGISTRY and op in am.onnx.SUPPORTED, op
        assert dtype in ("float32", "float64", "int32", "int64", "bool")
        assert reason.strip()
    assert set(am.onnx.SUPPORTED) <= set(REGISTRY)


def test_refused_dtype_names_the_node_and_reason(tmp_path: Any) -> None:
    program = am.export(lambda x: am.erf(x), am.spec("n", dtype=am.float64), check=False)
    out = tmp_path / "erf.onnx"
    with pytest.raises(am.onnx.OnnxExportError, match=r"erf.*float64.*Erf") as e:
        am.onnx.export(program, out)
    assert "node 0" in str(e.value) and "forward" in str(e.value)
    assert not out.exists()


def _call_program() -> Program:
    f32 = am.float32
    callee_x = Value("x", Aval((3,), f32))
    callee_y = Value("y", Aval((3,), f32))
    callee = Function("inner", [callee_x], [Node("neg", [callee_x], {}, [callee_y])],
                      [callee_y])
    x = Value("x", Aval((3,), f32))
    y = Value("t0", Aval((3,), f32))
    main = Function("forward", [x], [Node("call", [x], {"callee": "inner"}, [y])], [y])
    program = Program()
    program.functions = {"forward": main, "inner": callee}
    from amber.capture.ir import EntryPoint, Port

    program.entries["forward"] = EntryPoint("forward", "forward", [Port("x", x.aval)],
                                            [Port("output", y.aval)])
    return program


def test_call_nodes_are_refused() -> None:
    with pytest.raises(am.onnx.OnnxExportError, match=r"'call'.*straight-line"):
        am.onnx.export(_call_program(), None)


def test_control_flow_nodes_are_refused() -> None:
    program = am.export(lambda x: am.cond(x.sum() > 0, lambda x: x * 2, lambda x: -x, x),
                        am.spec("n", 3), check=False)
    with pytest.raises(am.onnx.OnnxExportError,
                       match=r"node \d+ \(%t\d+ = cond\(.*float32\[n, 3\]\)\).*straight-line"):
        am.onnx.export(program, None)


def test_unsupported_opset_is_refused() -> None:
    program = am.export(lambda x: x + 1, np.ones(2, np.float32), check=False)
    with pytest.raises(am.onnx.OnnxExportError, match="opset"):
        am.onnx.export(program, None, opset=13)


@pytest.mark.parametrize("opset", [21, 23])
def test_opsets(opset: int) -> None:
    program = am.export(lambda x: am.sigmoid(x).sum(1), am.spec("b", 4), check=False)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    model = am.onnx.export(program, None, opset=opset)
    assert model.opset_import[0].version == opset
    got = session(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, program.run("forward", x)[0], rtol=1e-6)


def _symbolic(fn: Any, specs: list[Any], inputs_for: Any, sizes: tuple[int, ...] = (1, 2, 5)
              ) -> None:
    program = am.export(fn, *specs, check=False)
    model = am.onnx.export(program, None)
    ep = program.entry("forward")
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert any(dims), "symbolic dims become named dim_params"
    s = session(model)
    for n in sizes:
        inputs = inputs_for(n)
        want = program.run("forward", *inputs)
        got = s.run(None, {p.name: a for p, a in zip(ep.inputs, inputs)})
        for g, w in zip(got, want):
            if w.dtype.kind == "f":
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
            else:
                assert_exact(g, w, f"n={n}")


def test_symbolic_slice_reshape_pad_take() -> None:
    rng = np.random.default_rng(1)

    def fn(x: Any) -> Any:
        y = x[:, 1::2]  # slice up to the symbolic end
        y = y.reshape(3, y.shape[0])  # a symbolic size inside the target shape
        p = REGISTRY["pad"](y, lo=(1, 0), hi=(0, 2), interior=(1, 1), value=-3.0)
        return p * 2 + x.sum() / x.shape[0]  # dim_value

    _symbolic(fn, [am.spec("n", 6)],
              lambda n: [rng.standard_normal((n, 6)).astype(np.float32)])


def test_symbolic_floor_division_in_sizes() -> None:
    rng = np.random.default_rng(6)

    def fn(x: Any) -> Any:
        y = x[::2]  # (n + 1) // 2 rows
        return y.reshape(-1) * (y.sum() / y.shape[0])

    _symbolic(fn, [am.spec("n", 3)], lambda n: [rng.standard_normal((n, 3)).astype(np.float32)],
              sizes=(1, 2, 5, 8))


def test_symbolic_scatter_add_and_take() -> None:
    rng = np.random.default_rng(2)

    def fn(base: Any, idx: Any, src: Any) -> Any:
        s = REGISTRY["scatter_add"](base, idx, src, axis=1)
        return REGISTRY["take"](s, idx, axis=1)

    _symbolic(fn, [am.spec("n", 4), am.spec("k", dtype=am.int64), am.spec("n", "k")],
              lambda n: [rng.standard_normal((n, 4)).astype(np.float32),
                         rng.integers(-4, 4, (n + 1,)),
                         rng.standard_normal((n, n + 1)).astype(np.float32)])


def test_symbolic_integer_sum_and_argmax() -> None:
    rng = np.random.default_rng(3)

    def fn(x: Any) -> Any:
        s = REGISTRY["sum"](x, axes=(0,), keepdims=False)
        return s, REGISTRY["argmax"](x, axis=0, keepdims=True)

    _symbolic(fn, [am.spec("n", 3, dtype=am.int32)],
              lambda n: [rng.integers(-2**31, 2**31 - 1, (n, 3)).astype(np.int32)])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("spatial", ["static", "symbolic"])
def test_symbolic_convolutions(dtype: str, spatial: str) -> None:
    rng = np.random.default_rng(4)
    w = rng.standard_normal((4, 2, 3, 3)).astype(dtype)
    attrs = {"stride": (2, 2), "padding": (1, 2, 0, 1), "dilation": (1, 1), "groups": 2}
    w = w[:, :1].copy()  # groups = 2: weight (O, C/G, KH, KW)

    def fn(x: Any) -> Any:
        y = REGISTRY["conv2d"](x, am.tensor(w), **attrs)
        dx = REGISTRY["conv2d_input_grad"](y, am.tensor(w), input_hw=(x.shape[2], x.shape[3]),
                                           **attrs)
        dw = REGISTRY["conv2d_weight_grad"](x, y, kernel_hw=(3, 3), **attrs)
        return y, dx, dw

    h, wd = ("h", "w") if spatial == "symbolic" else (9, 8)
    dt = am.float32 if dtype == "float32" else am.float64
    shapes = [(9, 8), (7, 10), (4, 5)] if spatial == "symbolic" else [(9, 8)] * 3
    it = iter(shapes * 2)

    def inputs(n: int) -> list[np.ndarray]:
        hh, ww = next(it)
        return [rng.standard_normal((n, 2, hh, ww)).astype(dtype)]

    _symbolic(fn, [am.spec("n", 2, h, wd, dtype=dt)], inputs)


# ----------------------------------------------------------------------------- whole models

class SmallCNN(am.nn.Module):
    """conv(1->8) relu pool, conv(8->16) relu pool, linear(784->10)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = am.nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = am.nn.Conv2d(8, 16, 3, padding=1)
        self.fc = am.nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: Any) -> Any:
        F = am.nn.functional
        x = F.max_pool2d(am.relu(self.c1(x)), 2)
        x = F.max_pool2d(am.relu(self.c2(x)), 2)
        return self.fc(x.reshape(x.shape[0], -1))


def _mlp() -> Any:
    return am.nn.Sequential(am.nn.Linear(784, 512), am.nn.ReLU(), am.nn.Linear(512, 512),
                            am.nn.ReLU(), am.nn.Linear(512, 10))


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_models_agree_at_several_batch_sizes(kind: str, tmp_path: Any) -> None:
    am.manual_seed(0)
    if kind == "mlp":
        net, spec, tail = _mlp(), am.spec("batch", 784), (784,)
    else:
        net, spec, tail = SmallCNN(), am.spec("batch", 1, 28, 28), (1, 28, 28)
    program = am.export(net, spec)
    amber_path = tmp_path / f"{kind}.amber"
    program.save(amber_path)
    onnx_path = tmp_path / f"{kind}.onnx"
    am.onnx.export(str(amber_path), onnx_path)  # from the file, as a user would
    model = onnx.load(os.fspath(onnx_path))
    names = {i.name for i in model.graph.initializer}
    assert set(program.weights) <= names, "weights are initializers, under their names"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    s = session(model)
    rng = np.random.default_rng(5)
    for batch in (1, 3, 32, 64):
        x = rng.standard_normal((batch, *tail)).astype(np.float32)
        want = program.run("forward", x)[0]
        got = s.run(None, {program.entry("forward").inputs[0].name: x})[0]
        assert got.shape == want.shape == (batch, 10)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_run_onnx_helper_matches_interpreter_on_integer_program() -> None:
    x = np.array([[-7, 7, 5], [0, -1, 2]], dtype=np.int64)
    program = am.export(lambda a: a // 2 - a * 3, x, check=False)
    assert_exact(run_onnx(program, [x])[0], program.run("forward", x)[0], "int program")


def test_arange_of_a_symbolic_size_exports_as_range() -> None:
    """``arange`` of a symbolic size is a counting scan: it exports as ONNX Range (so
    positions and causal masks of sequence models export); another scan is refused."""

    def fn(x: Any) -> Any:
        pos = am.arange(x.shape[1])
        keep = am.arange(x.shape[1])[None, :] <= am.arange(x.shape[1])[:, None]
        return x + am.cast(pos, am.float32), am.where(keep, 1.0, 0.0) @ x.T

    program = am.export(fn, am.spec("b", "n"))
    for n in (1, 5):
        x = np.random.default_rng(n).standard_normal((3, n)).astype(np.float32)
        got = run_onnx(program, [x])
        want = [t.numpy() for t in fn(am.tensor(x))]
        assert_exact(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6, atol=1e-6)
    summed = am.export(lambda x: am.cumsum(x, 0), am.spec("n"))
    with pytest.raises(am.onnx.OnnxExportError, match="scan"):
        am.onnx.export(summed, None)
