"""Memory plans and fused elementwise groups: a session plans where each function's
values go once per binding of its symbols (re-planning when a symbolic dim changes),
shares memory between values that are never live together, still honours the memory
limit, and fused chains of elementwise ops give bit-identical results to the ops run one
at a time (AMBER_OPEN_NO_FUSION)."""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import amber as am
import amber.nn as nn
from helpers.capi import NO_FUSION, Model, Session, load
from helpers.program_files import const, fn, node, p, program_file


@pytest.fixture(scope="module")
def lib(runtime_build: Path) -> ctypes.CDLL:
    return load(runtime_build)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "mlp.amber"
    # three hidden layers: with each product computed straight into its layer's output
    # (an epilogue), the first layer's output can share memory with the third's
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    am.export(model, am.spec("batch", 16)).save(str(path))
    return path


def x_of(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 16)).astype(np.float32)


def test_plan_is_reused_and_replanned_when_a_dim_changes(lib: ctypes.CDLL, mlp: Path) -> None:
    with Model(lib, path=mlp) as m:
        s = Session(m)
        s.run("forward", x_of(2))
        st = s.stats()
        assert (st.runs, st.plans, st.plan_reuses) == (1, 1, 0)
        small = st.plan_bytes
        s.run("forward", x_of(2, seed=1))
        st = s.stats()
        assert (st.runs, st.plans, st.plan_reuses) == (2, 1, 1)
        s.run("forward", x_of(50))  # batch changed: a new plan for the larger values
        st = s.stats()
        assert (st.plans, st.plan_reuses) == (2, 1)
        assert st.plan_bytes > small and st.block_bytes >= st.plan_bytes
        s.run("forward", x_of(2))  # the batch-2 plan is still cached
        st = s.stats()
        assert (st.plans, st.plan_reuses, st.plan_bytes) == (2, 2, small)
        for b in (3, 4, 5, 6):  # four more sizes push the batch-2 plan out (4 per function)
            s.run("forward", x_of(b))
        assert s.stats().plans == 6
        s.run("forward", x_of(2))
        assert s.stats().plans == 7
        s.close()


def test_planned_block_shares_memory(lib: ctypes.CDLL, mlp: Path) -> None:
    for flags in (0, NO_FUSION):
        with Model(lib, path=mlp, flags=flags) as m:
            s = Session(m)
            s.run("forward", x_of(8))
            st = s.stats()
            # values live one or two layers at a time: the block is smaller than their sum
            assert 0 < st.plan_bytes < st.plan_value_bytes, (flags, st.plan_bytes)
            assert st.block_bytes >= st.plan_bytes
            s.close()


def test_chain_of_unary_ops_needs_two_slots(lib: ctypes.CDLL, tmp_path: Path) -> None:
    """Unfused, neg^5 keeps at most two of its four intermediates (100 floats, 448 bytes
    rounded to 64) live at once; fused, it has no intermediates at all."""
    nodes, prev = [], "x"
    for i in range(5):
        nodes.append(node("neg", [prev], f"v{i}"))
        prev = f"v{i}"
    path = program_file(tmp_path / "chain.amber", [fn("f", [p("x")], nodes, [prev])])
    x = np.arange(100, dtype=np.float32)
    for flags, want in ((NO_FUSION, (896, 1792, 0)), (0, (0, 0, 1))):
        with Model(lib, path=path, flags=flags) as m:
            assert m.status == 0, m.error
            s = Session(m)
            (y,) = s.run("forward", x)
            assert y.tobytes() == (-x).tobytes()
            st = s.stats()
            assert (st.plan_bytes, st.plan_value_bytes, st.fused_groups) == want
            s.close()


def fused_program(path: Path, width: int) -> Path:
    """One group of eight elementwise ops over four external inputs, two of them
    broadcast: sigmoid(x) * y + tanh(x), relu'd (le/where), minus float(c)."""
    f32, shape = "float32", ["n", width]
    nodes = [
        node("sigmoid", ["x"], "a", shape=shape),
        node("mul", ["a", "y"], "b", shape=shape),
        node("tanh", ["x"], "t", shape=shape),
        node("add", ["b", "t"], "u", shape=shape),
        const("zero", f32, 0.0),
        node("le", ["u", "zero"], "neg", dtype="bool", shape=shape),
        node("where", ["neg", "zero", "u"], "r", shape=shape),
        node("cast", ["c"], "cf", {"dtype": "float32"}, shape=shape),
        node("sub", ["r", "cf"], "out", shape=shape),
    ]
    params = [p("x", shape=shape), p("y", shape=[width]), p("c", "int32", shape)]
    return program_file(path, [fn("f", params, nodes, ["out"])])


@pytest.mark.parametrize("width", [4, 1100])  # 1100: rows longer than a fused block
def test_fused_group_is_bit_identical(lib: ctypes.CDLL, tmp_path: Path, width: int) -> None:
    path = fused_program(tmp_path / "fused.amber", width)
    rng = np.random.default_rng(width)
    x = (rng.standard_normal((3, width)) * 4).astype(np.float32)
    x.flat[:4] = [np.nan, np.inf, -np.inf, 0.0]
    y = rng.standard_normal(width).astype(np.float32)
    c = rng.integers(-3, 3, (3, width)).astype(np.int32)
    outs, groups = [], []
    for flags in (0, NO_FUSION):
        with Model(lib, path=path, flags=flags) as m:
            assert m.status == 0, m.error
            s = Session(m)
            outs.append(s.run("forward", x, y, c)[0])
            st = s.stats()
            groups.append((st.fused_groups, st.fused_nodes))
            s.close()
    assert groups == [(1, 8), (0, 0)]
    assert outs[0].tobytes() == outs[1].tobytes()
    with np.errstate(all="ignore"):
        u = 1 / (1 + np.exp(-x.astype(np.float64))) * y + np.tanh(x.astype(np.float64))
        want = np.where(u <= 0, 0, u) - c
    np.testing.assert_allclose(outs[0], want.astype(np.float32), rtol=1e-5, atol=1e-6)


def test_lstm_loop_fused_matches_unfused(lib: ctypes.CDLL, tmp_path: Path) -> None:
    """The LSTM cell's gate arithmetic fuses inside a while body; results are identical."""
    hidden = 8

    class Cell(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(am.rand(hidden, 4 * hidden) - 0.5)

        def forward(self, xs: am.Tensor) -> tuple[am.Tensor, am.Tensor]:
            h0 = am.zeros(hidden).broadcast_to((xs.shape[1], hidden))
            steps = xs.shape[0]

            def step(carry):
                t, h, c = carry
                i, f, g, o = (xs[t] + h @ self.w).chunk(4, dim=1)
                c = f.sigmoid() * c + i.sigmoid() * g.tanh()
                return t + 1, o.sigmoid() * c.tanh(), c

            _, h, c = am.while_loop(lambda carry: carry[0] < steps, step,
                                    (am.tensor(np.int64(0)), h0, h0))
            return h, c

    path = tmp_path / "lstm.amber"
    am.export(Cell(), am.spec("t", "b", 4 * hidden)).save(str(path))
    xs = np.random.default_rng(3).standard_normal((6, 3, 4 * hidden)).astype(np.float32)
    results = []
    for flags in (0, NO_FUSION):
        with Model(lib, path=path, flags=flags) as m:
            s = Session(m)
            results.append([a.tobytes() for a in s.run("forward", xs)])
            results.append(s.stats().fused_nodes)
            s.close()
    assert results[0] == results[2]
    assert results[1] >= 6 and results[3] == 0  # the c update alone is six ops


def calls_program(path: Path) -> Path:
    """y = f(x) - f(f(x)) with f(x) = exp(x*x) + x."""
    f = fn("f", [p("x")], [node("neg", ["x"], "t"), node("mul", ["t", "t"], "u"),
                           node("exp", ["u"], "e"), node("add", ["e", "x"], "v")], ["v"])
    main = fn("main", [p("x")], [node("call", ["x"], "a", {"callee": "f"}),
                                 node("call", ["a"], "b", {"callee": "f"}),
                                 node("sub", ["a", "b"], "y")], ["y"])
    return program_file(path, [main, f])


def test_called_function_results_survive_the_next_call(lib: ctypes.CDLL, tmp_path: Path) -> None:
    """A callee's planned values live in memory released on return; its results do not."""
    path = calls_program(tmp_path / "calls.amber")
    x = np.linspace(-1, 1, 37).astype(np.float32)
    ref = []
    for flags in (0, NO_FUSION):
        with Model(lib, path=path, flags=flags) as m:
            assert m.status == 0, m.error
            s = Session(m)
            for _ in range(2):
                ref.append(s.run("forward", x)[0].tobytes())
            s.close()
    assert len(set(ref)) == 1

    def fx(v: np.ndarray) -> np.ndarray:
        return np.exp(v * v, dtype=np.float32) + v

    a = fx(x)
    np.testing.assert_allclose(np.frombuffer(ref[0], np.float32), a - fx(a), rtol=1e-5)


def test_memory_limit_covers_the_planned_block(lib: ctypes.CDLL, mlp: Path) -> None:
    with Model(lib, path=mlp) as m:
        s = Session(m)
        s.run("forward", x_of(1))
        st = s.stats()
        need = st.cached_bytes + st.block_bytes + st.arena_peak_bytes
        s.close()
    # Room for batch 1 (with the kernels' scratch arena under the same ceiling), not for
    # the block batch 4096 needs (three 4096 x 32 float32 values, two live at once).
    with Model(lib, path=mlp, memory_limit=need + (256 << 10)) as m:
        s = Session(m)
        assert isinstance(s.run("forward", x_of(1)), list), s.error
        assert s.run("forward", x_of(4096)) == "AMBER_ERR_LIMIT"
        assert "memory limit" in s.error
        assert isinstance(s.run("forward", x_of(1)), list), s.error  # still usable
        s.close()
    with Model(lib, path=mlp) as m:  # and without the limit it runs
        s = Session(m)
        assert isinstance(s.run("forward", x_of(4096)), list), s.error
        s.close()


@pytest.mark.sanitize
def test_plans_and_fusion_under_sanitizers(sanitize_build: Path, tmp_path: Path) -> None:
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=98"}
    exe = str(sanitize_build / "amber-run")
    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((3, 1100)).astype(np.float32),
              "y": rng.standard_normal(1100).astype(np.float32),
              "c": rng.integers(-3, 3, (3, 1100)).astype(np.int32)}
    args = []
    for k, v in inputs.items():
        np.save(tmp_path / f"{k}.npy", v)
        args += ["--input", f"{k}={tmp_path / f'{k}.npy'}"]
    np.save(tmp_path / "v.npy", np.linspace(-2, 2, 100).astype(np.float32))
    one = ["--input", f"x={tmp_path / 'v.npy'}"]
    for path, ins in ((fused_program(tmp_path / "fused.amber", 1100), args),
                      (calls_program(tmp_path / "calls.amber"), one),
                      (alias_program(tmp_path / "alias.amber"), one)):
        res = subprocess.run([exe, str(path), "--entry", "forward", *ins, "--output",
                              str(tmp_path)], capture_output=True, text=True, env=env)
        assert res.returncode == 0, f"{path.name}: {res.stderr}"


UNARY = ("neg", "abs", "exp", "tanh", "sigmoid", "floor", "sqrt")
BINARY = ("add", "sub", "mul", "div", "maximum", "minimum", "pow")
EXTERNAL = {"x": ["n", 7], "y": [7], "w": ["n", 1], "s": []}


@settings(max_examples=40)
@given(st.lists(st.tuples(st.sampled_from(UNARY + BINARY + ("relu", "int")),
                          st.integers(0, 100), st.integers(0, 100)), min_size=2, max_size=9))
def test_random_chains_fused_equal_unfused(lib: ctypes.CDLL,
                                           tmp_path_factory: pytest.TempPathFactory,
                                           steps: list[tuple[str, int, int]]) -> None:
    """Random elementwise chains over broadcast operands (float32, through int32 and bool
    on the way): fused and unfused runs give the same bytes."""
    shape = ["n", 7]
    nodes, made = [const("zero", "float32", 0.0)], ["x"]
    for k, (op, i, j) in enumerate(steps):
        pool = made + list(EXTERNAL)  # recent results or any input
        a, b, out = made[-1 - i % len(made)], pool[j % len(pool)], f"v{k}"
        if op in UNARY:
            nodes.append(node(op, [a], out, shape=shape))
        elif op in BINARY:
            nodes.append(node(op, [a, b], out, shape=shape))
        elif op == "relu":
            nodes += [node("le", [a, "zero"], f"m{k}", dtype="bool", shape=shape),
                      node("where", [f"m{k}", "zero", a], out, shape=shape)]
        else:  # float -> int32 -> float
            nodes += [node("cast", [a], f"i{k}", {"dtype": "int32"}, dtype="int32", shape=shape),
                      node("cast", [f"i{k}"], out, {"dtype": "float32"}, shape=shape)]
        made.append(out)
    params = [p(name, shape=s) for name, s in EXTERNAL.items()]
    path = program_file(tmp_path_factory.mktemp("chain") / "chain.amber",
                        [fn("f", params, nodes, [made[-1]])])
    rng = np.random.default_rng(len(steps))
    args = [(rng.standard_normal([5 if d == "n" else d for d in s]) * 3).astype(np.float32)
            for s in EXTERNAL.values()]
    got = []
    for flags in (0, NO_FUSION):
        with Model(lib, path=path, flags=flags) as m:
            assert m.status == 0, m.error
            sess = Session(m)
            out = sess.run("forward", *args)
            assert isinstance(out, list), sess.error
            got.append(out[0].tobytes())
            sess.close()
    assert got[0] == got[1]


def alias_program(path: Path) -> Path:
    """e = exp(x) + x with exp(x) read through two reshapes after two later values;
    h = g(x) - g(-x) with g returning a reshape of exp(x)."""
    col = ["n", 1]
    body = [node("exp", ["x"], "a"),
            node("reshape", ["a"], "r", {"shape": col}, shape=col),
            node("neg", ["x"], "b"), node("neg", ["b"], "c"),
            node("reshape", ["r"], "d", {"shape": ["n"]}),
            node("add", ["d", "c"], "e")]
    g = fn("g", [p("x")], [node("exp", ["x"], "t"),
                           node("reshape", ["t"], "u", {"shape": ["n"]})], ["u"])
    main = fn("main", [p("x")], [*body, node("call", ["x"], "g1", {"callee": "g"}),
                                 node("neg", ["x"], "mx"),
                                 node("call", ["mx"], "g2", {"callee": "g"}),
                                 node("sub", ["g1", "g2"], "h")], ["e", "h"])
    return program_file(path, [main, g])


def test_reshape_shares_its_input_memory(lib: ctypes.CDLL, tmp_path: Path) -> None:
    """A reshape is its input's memory: the input lives as long as the reshape's readers
    (here past two later values that could otherwise take its slot), and a function
    result that is a reshape keeps its input out of the function's released block."""
    path = alias_program(tmp_path / "alias.amber")
    x = np.linspace(-2, 2, 100).astype(np.float32)
    got = []
    for flags in (NO_FUSION, 0):
        with Model(lib, path=path, flags=flags) as m:
            assert m.status == 0, m.error
            s = Session(m)
            e, h = s.run("forward", x)
            got.append((e.tobytes(), h.tobytes()))
            if flags:  # a, b and c planned (448 bytes each), r and d not
                assert s.stats().plan_value_bytes == 3 * 448
            s.close()
    assert got[0] == got[1]
    e, h = (np.frombuffer(b, np.float32) for b in got[0])
    np.testing.assert_allclose(e, np.exp(x) + x, rtol=1e-6)
    np.testing.assert_allclose(h, np.exp(x) - np.exp(-x), rtol=1e-5, atol=1e-6)


def test_remembered_types_and_attributes_follow_the_sizes(lib: ctypes.CDLL,
                                                          tmp_path: Path) -> None:
    """A plan remembers each node's result type and its attributes with dim expressions
    (the slice bounds below depend on the batch): runs alternating between more sizes
    than a session keeps plans for, so slots are replaced and replanned, each equal the
    reference interpreter's."""
    def f(x: am.Tensor) -> am.Tensor:
        half = x[: x.shape[0] // 2 + 1]  # bounds from the symbolic batch
        return am.tanh(half @ x.T).sum(0)

    path = tmp_path / "slices.amber"
    am.export(f, am.spec("batch", 8)).save(str(path))
    ref = am.load(path, backend="reference")
    with Model(lib, path=path) as m:
        s = Session(m)
        for b in (2, 5, 2, 9, 3, 7, 6, 2, 5, 11, 2):
            x = x_of(b, seed=b)[:, :8].copy()
            got = s.run("forward", x)
            want = ref.run("forward", x).numpy()
            assert isinstance(got, list) and got[0].shape == want.shape == (b,)
            np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
        assert s.stats().plans > 4  # slots were replaced
        s.close()
