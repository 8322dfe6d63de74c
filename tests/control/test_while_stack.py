"""The O(n) gradient of ``while_loop`` (opset 3): the forward ``while`` stacks the
carries entering every iteration along the trip count it binds (``num_stacked``,
``trip_dim``), and a reverse ``scan`` of that length applies the body's VJP.

Exported gradients, run by the reference interpreter and by the native runtime, equal
eager ``am.grad`` and central finite differences in float64; the cost is linear in the
trip count (counted body executions); forward-only exports stay opset 2; malformed
stacking ``while`` nodes are refused by the Python reader and by the C loader, and the
run-time limits end in typed errors."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am
from amber import native as N
from amber.capture.serialize import header_to_json
from amber.format.container import write_container
from amber.interpreter import Interpreter
from helpers import central_differences
from helpers.programs import cond_in_while_in_recursion

F64 = am.float64
I64 = np.int64


def _stacking_whiles(program: am.Program) -> list[Any]:
    return [n for fn in program.functions.values() for n in fn.nodes
            if n.op == "while" and "trip_dim" in n.attrs]


def _export_and_check(f: Callable[..., Any], specs: Sequence[Any],
                      cases: Sequence[Sequence[np.ndarray]], tmp_path: Path,
                      name: str = "g") -> am.Program:
    """Export am.grad(f) w.r.t. every argument; save it; check the reference interpreter
    and the native runtime against eager am.grad and finite differences on every case."""
    grad = am.grad(f, argnums=tuple(range(len(specs))))
    program = am.export(grad, *specs)
    assert _stacking_whiles(program), "the gradient should use the stacking while"
    path = tmp_path / f"{name}.amber"
    program.save(path)
    model = am.load(path, backend="reference")
    assert model.opset_version == 3
    assert all(r.ok for r in model.verify())
    with N.NativeModel(path) as native:
        assert native.verify() == (len(program.test_vectors), 0)
        for arrays in cases:
            want = [g.numpy() for g in grad(*[am.tensor(a) for a in arrays])]
            fd = central_differences(f, arrays)
            for got in (model.program.run("forward", *arrays),
                        native.run("forward", *arrays)):
                for k, (g, w, d) in enumerate(zip(got, want, fd)):
                    np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12,
                                               err_msg=f"argument {k}: exported vs eager")
                    np.testing.assert_allclose(g, d, rtol=1e-5, atol=1e-7,
                                               err_msg=f"argument {k}: vs finite differences")
    return program


def _newton_like(x: am.Tensor, w: am.Tensor) -> am.Tensor:
    """Data-dependent trip count, an int carry, a closed-over tensor (an extra)."""
    def body(c):
        k, v = c
        return k + 1, v * w + v.sin()

    k, v = am.while_loop(lambda c: (c[1] * c[1]).sum() < 20.0, body,
                         (am.tensor(I64(0)), x))
    return (v * v).sum() + v.sum() * k.to(F64)


def _specs(dim: Any = 2) -> tuple[Any, Any]:
    """Input specs of ``_newton_like`` whose random values end the loop quickly."""
    return (am.spec(dim, dtype=F64, low=0.3, high=0.6), am.spec(dim, dtype=F64, low=1.1,
                                                                 high=1.4))


# ----------------------------------------------------------------------------- gradients


def test_gradient_with_data_dependent_trip_counts_including_zero(tmp_path: Path) -> None:
    w = np.array([1.3, 1.1])
    cases = [[np.array([0.4, 0.3]), w],     # several iterations
             [np.array([0.9, 1.2]), w],     # fewer
             [np.array([4.0, 3.0]), w]]     # zero iterations: the loop returns init
    program = _export_and_check(_newton_like, _specs(), cases, tmp_path)
    (node,) = _stacking_whiles(program)
    # the carries entering each iteration (int counter and float value) are stacked
    assert node.attrs["num_stacked"] == 2
    scans = [n for fn in program.functions.values() for n in fn.nodes if n.op == "scan"]
    assert any(str(n.attrs["length"]) == node.attrs["trip_dim"] for n in scans)


def test_several_float_carries_and_closures_over_several_tensors(tmp_path: Path) -> None:
    def f(a, b, w, u):
        def body(c):
            i, p, q = c
            return i + 1, (p * w).tanh() + q * u, q * 0.9 + p.sum() * w

        _, p, q = am.while_loop(lambda c: c[0] < 2 + (c[1].sum() > 0).to(am.int64) * 3,
                                body, (am.tensor(I64(0)), a, b))
        return (p * q).sum() + (q * q).sum()

    rng = np.random.default_rng(3)
    cases = [[rng.standard_normal(3) * s, rng.standard_normal(3), rng.standard_normal(3),
              rng.standard_normal(3)] for s in (1.0, -1.0)]
    _export_and_check(f, [am.spec("n", dtype=F64)] * 4, cases, tmp_path)


def test_cond_inside_while_inside_a_recursive_function(tmp_path: Path) -> None:
    rec = cond_in_while_in_recursion

    def f(x, w):
        return (rec(am.tensor(I64(3)), x, w) ** 2).sum()

    x, w = np.array([0.5, -0.7, 0.9]), np.array([1.1, 0.3, -0.8])
    program = _export_and_check(f, [am.spec("k", dtype=F64)] * 2, [[x, w], [-x, w]],
                                tmp_path)
    ops = {n.op for fn in program.functions.values() for n in fn.nodes}
    assert {"cond", "while", "call", "scan"} <= ops


def _inner(v: am.Tensor, w: am.Tensor) -> am.Tensor:
    _, u = am.while_loop(lambda c: (c[1] * c[1]).sum() < 4.0,
                         lambda c: (c[0] + 1, c[1] * w + 0.1), (am.tensor(I64(0)), v))
    return u


def test_a_while_inside_a_while_body(tmp_path: Path) -> None:
    def f(x, w):
        def body(c):
            k, v = c
            return k + 1, _inner(v * 0.5, w).sin()

        _, v = am.while_loop(lambda c: c[0] < 3, body, (am.tensor(I64(0)), x))
        return (v * v).sum()

    program = _export_and_check(f, _specs(), [[np.array([0.4, 0.5]), np.array([1.2, 1.3])]],
                                tmp_path)
    assert len(_stacking_whiles(program)) == 2  # the outer loop and, in its VJP, the inner


def test_a_while_inside_a_scan_body(tmp_path: Path) -> None:
    def f(xs, w):
        def step(h, x):
            h2 = _inner(h + x, w).tanh()
            return h2, h2.sum()

        h, ys = am.scan(step, xs[0] * 0.0 + 0.3, xs)
        return (h * h).sum() + ys.sum()

    xs = np.array([[0.2, 0.1], [0.3, 0.2], [0.1, 0.1]])
    _export_and_check(f, [am.spec("t", 2, dtype=F64, low=0.1, high=0.3), _specs()[1]],
                      [[xs, np.array([1.2, 1.3])], [xs[:1], np.array([1.1, 1.2])]], tmp_path)


def test_second_order_gradient_reference_and_native(tmp_path: Path) -> None:
    def f(x):
        def body(c):
            k, v = c
            return k + 1, (v * 1.3).sin() + v * v * 0.1

        _, v = am.while_loop(lambda c: c[0] < 3 + (c[1].sum() > 0).to(am.int64), body,
                             (am.tensor(I64(0)), x))
        return (v * v * v).sum()

    h = am.grad(lambda v: am.grad(f)(v).sum())
    program = am.export(h, am.spec(3, dtype=F64))
    path = tmp_path / "h.amber"
    program.save(path)
    for x in (np.array([0.3, -0.2, 0.5]), np.array([-0.3, -0.2, 0.1])):
        want = h(am.tensor(x)).numpy()
        fd = central_differences(lambda v: am.grad(f)(v).sum(), [x])[0]
        np.testing.assert_allclose(want, fd, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(program.run("forward", x)[0], want, rtol=1e-10)
        with N.NativeModel(path) as m:
            np.testing.assert_allclose(m.run("forward", x)[0], want, rtol=1e-10)


def test_a_loaded_gradient_program_is_differentiated_again_eagerly(tmp_path: Path) -> None:
    # amber.reuse runs the stacking while and the scan of its trip count through the op
    # registry, so a gradient of the loaded gradient reaches the inputs
    program = am.export(am.grad(_newton_like), *_specs())
    program.save(tmp_path / "g.amber")
    model = am.load(tmp_path / "g.amber")
    w = am.tensor(np.array([1.3, 1.1]))
    for x in (np.array([0.4, 0.3]), np.array([4.0, 3.0])):
        got = am.grad(lambda v: model(v, w).sum())(am.tensor(x)).numpy()
        want = am.grad(lambda v: am.grad(_newton_like)(v, w).sum())(am.tensor(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_forward_only_exports_keep_opset_2(tmp_path: Path) -> None:
    lin = am.nn.Linear(2, 2).to(F64)  # parameters require grad: no gradient is taken

    def f(x):
        # NOTE: 2v dominates, so the loop ends whatever the random weights are
        return am.while_loop(lambda v: (v * v).sum() < 10.0, lambda v: 2.0 * v + 0.01 * lin(v), x)

    program = am.export(f, am.spec(2, dtype=F64, low=0.3, high=0.6))
    assert not _stacking_whiles(program)
    program.save(tmp_path / "f.amber")
    assert am.load(tmp_path / "f.amber").opset_version == 2


# ----------------------------------------------------------------------------- cost


class _CountingInterpreter(Interpreter):
    """Counts the function executions of each function."""

    def __init__(self, program: am.Program) -> None:
        super().__init__(program)
        self.calls: dict[str, int] = {}

    def _call(self, name: str, args: list[np.ndarray], depth: int, where: str
              ) -> list[np.ndarray]:
        self.calls[name] = self.calls.get(name, 0) + 1
        return super()._call(name, args, depth, where)


def test_the_cost_is_linear_in_the_trip_count() -> None:
    def f(x, n):
        _, v = am.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, (c[1] * 0.9).sin()),
                             (am.tensor(I64(0)), x))
        return (v * v).sum()

    program = am.export(am.grad(f), am.spec(3, dtype=F64), am.tensor(I64(4)))
    x = np.array([0.1, 0.2, 0.3])
    runs = {}
    for n in (20, 40, 80):
        interp = _CountingInterpreter(program)
        g = interp.run("forward", x, I64(n))[0]
        np.testing.assert_allclose(g, am.grad(f)(am.tensor(x), am.tensor(I64(n))).numpy(),
                                   rtol=1e-10)
        runs[n] = sum(interp.calls.values())
    # a fixed number of function executions per iteration (cond, body, body VJP, ...):
    # doubling the trips doubles the work (the O(n^2) recomputation would quadruple it)
    assert runs[80] - runs[40] == 2 * (runs[40] - runs[20])
    assert (runs[40] - runs[20]) / 20 <= 6
    assert runs[80] < 2.1 * runs[40]


# ----------------------------------------------------------------------------- limits


def test_stacked_outputs_count_against_the_memory_limit(tmp_path: Path) -> None:
    def f(x):
        _, v = am.while_loop(lambda c: c[0] < 200, lambda c: (c[0] + 1, c[1] * 0.99),
                             (am.tensor(I64(0)), x))
        return v.sum()

    program = am.export(am.grad(f), am.spec(1000, dtype=F64))
    x = np.ones(1000)
    want = program.run("forward", x)[0]
    np.testing.assert_allclose(want, np.full(1000, 0.99 ** 200))
    # one residual stack holds 200 rows of 8000 bytes: 1.6 MB
    with pytest.raises(am.AmberError, match=r"stacked output after \d+ iterations"):
        Interpreter(program, memory_limit=1_000_000).run("forward", x)
    np.testing.assert_allclose(
        Interpreter(program, memory_limit=2_000_000).run("forward", x)[0], want)
    path = tmp_path / "m.amber"
    program.save(path)
    with N.NativeModel(path, memory_limit=1 << 20) as m:
        with pytest.raises(N.NativeError) as info:
            m.run("forward", x)
        assert info.value.status_name == "AMBER_ERR_LIMIT"
    with N.NativeModel(path, memory_limit=16 << 20) as m:
        np.testing.assert_allclose(m.run("forward", x)[0], want)


def test_the_iteration_limit_still_applies(tmp_path: Path) -> None:
    program = am.export(am.grad(_newton_like), *_specs())
    path = tmp_path / "g.amber"
    program.save(path)
    x, w = np.array([0.04, 0.03]), np.array([1.01, 1.01])  # many iterations
    with pytest.raises(am.IterationLimitError):
        Interpreter(program, max_iterations=5).run("forward", x, w)
    with N.NativeModel(path, max_loop_iterations=5) as m:
        with pytest.raises(am.errors.LimitError) as info:
            m.run("forward", x, w)
        assert info.value.status_name == "AMBER_ERR_LIMIT"


# ----------------------------------------------------------------------------- malformed


def _grad_header(spec_dim: Any = 2) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    program = am.export(am.grad(_newton_like), *_specs(spec_dim))
    header, tensors = header_to_json(program, None)
    header["test_vectors"] = []
    return header, tensors


def _while_node(header: dict[str, Any]) -> dict[str, Any]:
    for fn in header["program"]["functions"]:
        for node in fn["nodes"]:
            if node["op"] == "while" and "trip_dim" in node["attrs"]:
                return node
    raise AssertionError("no stacking while")


def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], None], str, str]]:
    """(id, mutation, Python message, C message) of malformed stacking while nodes."""
    def attr(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
        def mutate(h: dict[str, Any]) -> None:
            _while_node(h)["attrs"][key] = value
        return mutate

    def drop(key: str) -> Callable[[dict[str, Any]], None]:
        def mutate(h: dict[str, Any]) -> None:
            del _while_node(h)["attrs"][key]
        return mutate

    def leading_dim(h: dict[str, Any]) -> None:
        _while_node(h)["outputs"][-1]["shape"][0] = 7

    def opset_2(h: dict[str, Any]) -> None:
        h["opset_version"] = 2

    return [
        ("no-trip-dim", drop("trip_dim"), "while takes the attributes",
         "num_stacked and trip_dim together"),
        ("no-num-stacked", drop("num_stacked"), "while takes the attributes",
         "num_stacked and trip_dim together"),
        ("trip-dim-not-a-name", attr("trip_dim", "2*n"), "trip_dim must be a symbol name",
         "trip_dim must be a symbol name"),
        ("trip-dim-not-a-string", attr("trip_dim", 3), "trip_dim must be a symbol name",
         "trip_dim must be a symbol name"),
        ("num-stacked-too-large", attr("num_stacked", 9), "num_stacked",
         "num_stacked must be an integer"),
        ("num-stacked-negative", attr("num_stacked", -1), "num_stacked",
         "num_stacked must be an integer"),
        ("leading-dim-not-trip-dim", leading_dim, "type rule gives",
         "leading dim trip_dim"),
        ("declared-opset-2", opset_2, "needs opset version 3", "needs opset version 3"),
    ]


@pytest.mark.parametrize("case", _mutations(), ids=lambda c: c[0])
def test_malformed_stacking_while_is_refused(tmp_path: Path, case: Any) -> None:
    _, mutate, py_msg, c_msg = case
    header, tensors = _grad_header()
    mutate(header)
    path = tmp_path / "bad.amber"
    write_container(path, header, tensors)
    with pytest.raises(am.FormatError, match=py_msg):
        am.load(path, backend="reference")
    with pytest.raises(N.NativeError) as info:
        N.NativeModel(path)
    assert info.value.status_name == "AMBER_ERR_FORMAT"
    assert c_msg in info.value.c_message


def test_trip_dim_must_be_fresh(tmp_path: Path) -> None:
    header, tensors = _grad_header("n")
    _while_node(header)["attrs"]["trip_dim"] = "n"  # the parameters' symbol
    path = tmp_path / "bad.amber"
    write_container(path, header, tensors)
    with pytest.raises(am.FormatError, match="already bound"):
        am.load(path, backend="reference")
    with pytest.raises(N.NativeError, match="already bound"):
        N.NativeModel(path)


def test_trip_dim_is_not_bound_before_its_node_or_in_results(tmp_path: Path) -> None:
    header, tensors = _grad_header()
    fn = next(f for f in header["program"]["functions"] if _while_node(header) in f["nodes"])
    trip = _while_node(header)["attrs"]["trip_dim"]
    early = copy.deepcopy(header)
    efn = next(f for f in early["program"]["functions"] if f["name"] == fn["name"])
    efn["nodes"][0]["outputs"][0]["shape"] = [trip]  # a node before the while uses it
    path = tmp_path / "early.amber"
    write_container(path, early, tensors)
    with pytest.raises(am.FormatError, match="no parameter"):
        am.load(path, backend="reference")
    with pytest.raises(N.NativeError, match="no parameter binds"):
        N.NativeModel(path)
    # a function result may carry a size its loop decides only since opset 5, and only
    # in an entry point's function (tests/capture/test_data_dependent_outputs.py)
    program = am.export(am.grad(_newton_like), *_specs())
    (node,) = _stacking_whiles(program)
    fwd = program.functions["forward"]
    fwd.results.append(node.outputs[-1])
    program.entries["forward"].outputs.append(
        am.capture.ir.Port("stack", node.outputs[-1].aval))
    program.test_vectors.clear()  # they do not give the new output
    program.verify()
    program.opset_version = 4
    with pytest.raises(am.IRError, match="needs opset version 5, the program declares 4"):
        program.verify()


def test_declared_row_type_is_checked_when_the_file_is_opened(tmp_path: Path) -> None:
    # a stacked output declared with another row shape than the body returns: both
    # loaders refuse the file (libamber checks the loop's type rule at probe sizes)
    header, tensors = _grad_header()
    _while_node(header)["outputs"][-1]["shape"] = [_while_node(header)["attrs"]["trip_dim"],
                                                   3]
    path = tmp_path / "bad.amber"
    write_container(path, header, tensors)
    with pytest.raises(am.FormatError, match="type rule gives"):
        am.load(path, backend="reference")
    with pytest.raises(N.NativeFormatError) as info:
        N.NativeModel(path)
    assert "output 3 is declared float64(11, 3) but the loop's type rule gives " \
        "float64(11, 2)" in info.value.c_message


# ----------------------------------------------------------------------------- passes, text


def test_dead_code_elimination_keeps_a_while_whose_trip_count_is_used() -> None:
    from amber.capture.passes import dead_code_elimination

    program = am.export(am.grad(_newton_like), *_specs())
    fn = program.functions["forward"]
    (node,) = _stacking_whiles(program)
    before = len(fn.nodes)
    assert dead_code_elimination(fn) == 0 and len(fn.nodes) == before
    program.verify()


def test_text_form_shows_the_bound_trip_count() -> None:
    program = am.export(am.grad(_newton_like), *_specs())
    (node,) = _stacking_whiles(program)
    text = str(program)
    trip = node.attrs["trip_dim"]
    assert f'trip_dim="{trip}"' in text and f"float64[{trip}, 2]" in text
    assert f"length={trip}" in text


def test_onnx_export_refuses_a_stacking_while_with_a_reason() -> None:
    pytest.importorskip("onnx")
    from amber.onnx import OnnxExportError, to_onnx

    program = am.export(am.grad(_newton_like), *_specs())
    with pytest.raises(OnnxExportError, match="needs ONNX Loop with scan outputs"):
        to_onnx(program)


# ----------------------------------------------------------------------------- golden


GOLDEN_V3 = Path(__file__).resolve().parent.parent / "golden" / "v3"


def test_golden_v3_files_use_the_stacking_while() -> None:
    for name in ("while_grad", "while_grad2"):
        model = am.load(GOLDEN_V3 / f"{name}.amber", backend="reference")
        assert model.opset_version == 3
        assert _stacking_whiles(model.program)
        with N.NativeModel(GOLDEN_V3 / f"{name}.amber") as m:
            n, failed = m.verify()
            assert n > 0 and failed == 0


def test_golden_v3_generator_refuses_to_overwrite(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden_v3",
                                                  GOLDEN_V3.parent / "make_golden_v3.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name in mod.GOLDEN:
        with pytest.raises(FileExistsError):
            mod.write(name, str(GOLDEN_V3))
