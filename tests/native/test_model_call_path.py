"""``Model.run`` on a native model: plain arrays and tensors that need no gradient go
straight to C; the results (values and grouping) equal the reference interpreter's, and
calls that need a gradient or are being captured still take the registry path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import amber as am


class TwoHeads(am.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = am.nn.Linear(4, 3)

    def forward(self, x: am.Tensor, y: am.Tensor) -> dict[str, object]:
        h = self.lin(x)
        return {"h": h, "pair": (am.relu(h) + y, h.sum())}


def _files(tmp_path: Path) -> tuple[am.Model, am.Model]:
    model = TwoHeads()
    am.export(model, am.spec(2, 4), am.spec(2, 3)).save(tmp_path / "m.amber")
    return am.load(tmp_path / "m.amber"), am.load(tmp_path / "m.amber", backend="reference")


def _same(a: object, b: object) -> None:
    leaves_a, td_a = am.tree_flatten(a)
    leaves_b, td_b = am.tree_flatten(b)
    assert td_a == td_b
    for u, v in zip(leaves_a, leaves_b, strict=True):
        assert isinstance(u, am.Tensor) and isinstance(v, am.Tensor)
        np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["ndarray", "tensor"])
def test_plain_inputs_give_the_reference_results_and_grouping(tmp_path: Path, kind: str) -> None:
    native, ref = _files(tmp_path)
    assert native.backend == "native"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    y = rng.standard_normal((2, 3)).astype(np.float32)
    args = (x, y) if kind == "ndarray" else (am.tensor(x), am.tensor(y))
    _same(native(*args), ref(x, y))
    _same(native.run("forward", *args), ref(x=x, y=y))


def test_a_wrong_shape_is_still_a_typed_error(tmp_path: Path) -> None:
    native, _ = _files(tmp_path)
    with pytest.raises(am.errors.AmberError, match=r"(?i)shape|dim"):
        native(np.zeros((2, 5), np.float32), np.zeros((2, 3), np.float32))


def test_inputs_that_need_a_gradient_take_the_registry_path(tmp_path: Path) -> None:
    native, ref = _files(tmp_path)
    x = am.tensor(np.ones((2, 4), np.float32), requires_grad=True)
    out = native(x, np.zeros((2, 3), np.float32))
    out["pair"][1].backward()
    assert x.grad is not None
    # d sum(W x + b) / dx = column sums of W, for every row
    w = ref.program.weights[next(k for k in ref.program.weights if "weight" in k)]
    np.testing.assert_allclose(x.grad.numpy(), np.tile(w.sum(axis=0), (2, 1)), rtol=1e-6)


def test_calls_without_gradient_run_only_in_the_backend(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Positional, keyword and mixed calls, and the test vectors, of a native model go
    from the model to libamber in one step: no reference interpreter is created and the
    registry path is not taken. A reference model creates its interpreter on first run."""
    from amber import interpreter, reuse

    built: list[object] = []
    real_init = interpreter.Interpreter.__init__

    def counting_init(self: object, *args: object, **kwargs: object) -> None:
        built.append(self)
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    def no_registry(*args: object, **kwargs: object) -> None:
        raise AssertionError("a call without gradient took the registry path")

    monkeypatch.setattr(interpreter.Interpreter, "__init__", counting_init)
    native, ref = _files(tmp_path)
    built.clear()  # the export's proof ran the program
    monkeypatch.setattr(reuse, "call_program", no_registry)
    x = np.ones((2, 4), np.float32)
    y = np.zeros((2, 3), np.float32)
    want = ref(x, y)
    assert len(built) == 1  # the reference model's, on its first run
    for out in (native(x, y), native(x=x, y=y), native.run("forward", x, y=y),
                native(am.tensor(x), y=[[0.0] * 3] * 2), native.forward(y=y, x=x)):
        _same(out, want)
    with am.no_grad():
        _same(native(am.tensor(x, requires_grad=True), y), want)
    assert all(r.ok for r in native.verify())
    assert len(built) == 1
    with pytest.raises(am.errors.AmberError, match="unknown input 'z'"):
        native(x, z=y)
    with pytest.raises(am.errors.AmberError, match="no entry point 'missing'"):
        native.run("missing", x, y)
