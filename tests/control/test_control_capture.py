"""Under am.export every control-flow construct that traced values reach is handed to
the hooks capture installs and recorded as a structured node: it never picks a branch
or unrolls a loop silently. A hook that declines leaves the construct to refuse with a
CaptureError naming the user's line."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import amber as am
from amber.control import ControlHooks


def _line_of(fn, marker: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, text in enumerate(lines) if marker in text)


def uses_cond(x):
    return am.cond(x.sum() > 0, lambda a: a * 2.0, lambda a: a - 1.0, x)  # mark


def uses_cond_on_closure(x):
    return am.cond(am.tensor(True), lambda: x * 2.0, lambda: x)  # mark


def uses_while(x):
    return am.while_loop(lambda c: c.sum() < 10.0, lambda c: c * 2.0, x)  # mark


def uses_while_closure(x):
    return am.while_loop(lambda c: c < 3, lambda c: c + 1, am.tensor(0))[None] * x  # mark


def uses_while_body_closure(x):
    return am.while_loop(lambda c: c.sum() < 3.0, lambda c: c + x, am.zeros(4, 3))  # mark


def uses_scan(x):
    return am.scan(lambda c, v: (c + v, c), am.zeros(3), x)[0]  # mark


def uses_fori(x):
    return am.fori_loop(0, 3, lambda i, c: c * 2.0, x)  # mark


@am.function
def double(x):
    return x * 2.0


def uses_function(x):
    return double(x)  # mark


CASES = [
    (uses_cond, "am.cond", "pick a branch"),
    (uses_cond_on_closure, "am.cond", "pick a branch"),
    (uses_while, "am.while_loop", "unroll the loop"),
    (uses_while_body_closure, "am.while_loop", "unroll the loop"),
    (uses_scan, "am.scan", "unroll the loop"),
    (uses_fori, "am.fori_loop", "unroll the loop"),
    (uses_function, "graph function double", "inline the call"),
]


STRUCTURED = {"am.cond": "cond(", "am.while_loop": "while(", "am.fori_loop": "while(",
              "am.scan": "scan(", "graph function double": "call("}


@pytest.mark.parametrize("fn, construct, instead", CASES, ids=[c[0].__name__ for c in CASES])
def test_captured_as_a_structured_node(fn, construct, instead) -> None:
    program = am.export(fn, am.spec(4, 3, low=0.5, high=1.0))
    assert STRUCTURED[construct] in str(program)
    x = np.random.default_rng(0).uniform(0.5, 1.0, (4, 3)).astype(np.float32)
    np.testing.assert_allclose(program.run("forward", x)[0], fn(am.tensor(x)).numpy(),
                               rtol=1e-6)
    # and the same function still runs eagerly afterwards
    fn(am.ones(4, 3))


def test_a_loop_on_constants_alone_runs_at_capture_time() -> None:
    # the loop touches no traced value (its trip count is a constant of the program);
    # only its result meets the traced input, so the export is exact
    program = am.export(uses_while_closure, am.randn(3))
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    got = program.run("forward", x)
    np.testing.assert_allclose(got[0], uses_while_closure(am.tensor(x)).numpy())


def test_python_bool_predicate_is_a_python_if_at_capture_time() -> None:
    def f(x, flag=True):
        return am.cond(flag, lambda a: a * 3.0, lambda a: a, x)

    program = am.export(f, am.randn(2))
    assert "mul" in str(program) and "cond" not in str(program)


def test_eager_state_is_clean_after_a_refusal(monkeypatch) -> None:
    monkeypatch.setattr(ControlHooks, "call", lambda *a: NotImplemented)
    with pytest.raises(am.CaptureError, match="cannot be exported"):
        am.export(uses_function, am.randn(2))
    assert am.control._depth.depth == 0
    assert uses_cond(am.tensor([1.0, 2.0])).tolist() == [2.0, 4.0]


def test_a_declining_hook_refuses_at_the_users_line(monkeypatch) -> None:
    for name in ("cond", "while_loop", "scan", "call"):
        monkeypatch.setattr(ControlHooks, name, lambda *a: NotImplemented)
    for fn, construct, instead in CASES:
        with pytest.raises(am.CaptureError) as e:
            am.export(fn, am.randn(4, 3))
        msg = str(e.value)
        assert f"{__file__}:{_line_of(fn, '# mark')}" in msg
        assert construct in msg and f"does not silently {instead}" in msg


def test_hooks_receive_the_construct(monkeypatch) -> None:
    seen: list[tuple] = []

    def cond_hook(pred, true_fn, false_fn, operands):
        seen.append(("cond", type(pred).__name__, len(operands)))
        (a,) = operands  # an exact stand-in for this test's branches
        return am.where(pred, a * 2.0, a - 1.0)

    monkeypatch.setattr(ControlHooks, "cond", cond_hook)
    program = am.export(uses_cond, am.randn(2))
    assert seen == [("cond", "Tensor", 1)]
    assert "where" in str(program)
    # eagerly (no trace active) the hook is not consulted
    assert uses_cond(am.tensor([1.0])).tolist() == [2.0]
    assert len(seen) == 1


def test_a_hook_may_decline(monkeypatch) -> None:
    monkeypatch.setattr(ControlHooks, "while_loop", lambda *a: NotImplemented)
    with pytest.raises(am.CaptureError, match=r"am\.while_loop cannot be exported"):
        am.export(uses_while, am.randn(3))


def test_fori_loop_is_handed_to_the_while_hook(monkeypatch) -> None:
    calls = []

    def while_hook(cond_fn, body_fn, init, max_iterations):
        calls.append(max_iterations)
        i, carry = init
        while cond_fn((i, carry)):  # the bounds are constants here, so this is concrete
            i, carry = body_fn((i, carry))
        return i, carry

    monkeypatch.setattr(ControlHooks, "while_loop", while_hook)
    am.export(uses_fori, am.randn(3))
    assert calls == [am.control.get_limits().max_iterations]
