"""``am.export(..., examples=[...], random_vectors=...)``: the proof runs on the user's
own inputs (programs defined only on structured inputs), which become test vectors."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am

F64 = np.float64


def newton_sqrt(x):
    """Defined for x > 0 only: on a negative number the loop never converges."""
    def step(c):
        return (c[0] + 1, 0.5 * (c[1] + x / c[1]))

    def more(c):
        return ((c[1] * c[1] - x).abs() > 1e-9 * x.abs()).any()

    return am.while_loop(more, step, (am.tensor(np.int64(0)), x + 1.0), max_iterations=200)[1]


def test_random_inputs_cannot_prove_a_program_defined_on_positive_numbers() -> None:
    with pytest.raises(am.ExportError, match="the eager function failed"):
        am.export(newton_sqrt, am.spec("n", dtype=F64))


def test_examples_alone_prove_and_become_the_test_vectors(tmp_path) -> None:
    xs = [np.array([4.0, 9.0]), np.array([2.0, 0.25, 100.0])]
    program = am.export(newton_sqrt, am.spec("n", dtype=F64),
                        examples=[(x,) for x in xs], random_vectors=False)
    assert [tv.dims for tv in program.test_vectors] == [{"n": 2}, {"n": 3}]
    for tv, x in zip(program.test_vectors, xs):
        np.testing.assert_array_equal(tv.inputs["x"], x)
        np.testing.assert_allclose(tv.outputs["output"], np.sqrt(x), rtol=1e-9)
    program.save(tmp_path / "sqrt.amber")
    for backend in ("reference", "native"):
        assert all(r.ok for r in am.load(tmp_path / "sqrt.amber", backend=backend).verify())


def test_examples_next_to_random_vectors() -> None:
    f = lambda x, idx: x[idx].sum(0)
    specs = (am.spec("n", 3), am.spec("k", dtype=am.int64, low=0, high=2))
    x, idx = np.arange(12.0, dtype=np.float32).reshape(4, 3), np.array([3, 0, 3])
    program = am.export(f, *specs, examples=[(x, idx)], random_vectors=1)
    assert len(program.test_vectors) == 2
    assert program.test_vectors[0].dims == {"n": 4, "k": 3}
    np.testing.assert_array_equal(program.test_vectors[0].outputs["output"], x[idx].sum(0))
    # the default: the examples first, then one random vector per size
    assert len(am.export(f, *specs, examples=[(x, idx), (x, idx[:1])]).test_vectors) == 4
    # a function of one argument takes bare values
    assert len(am.export(lambda x: x * 2, am.spec("n"), examples=[np.ones(3, np.float32)],
                         random_vectors=False).test_vectors) == 1


@pytest.mark.parametrize("examples, match", [
    ([(np.ones(3),)], r"examples\[0\]: input 'x' is float64\[3\], the signature says "
                      r"float32\[n, 2\]"),
    ([(np.ones((3, 3), np.float32),)], r"does not fit float32\[n, 2\]"),
    ([(np.ones((3, 2), np.float32), 1)], r"structure of the exported arguments"),
    ([], r"random_vectors=False needs examples="),
])
def test_examples_that_do_not_fit_the_signature(examples, match) -> None:
    with pytest.raises(am.ExportError, match=match):
        am.export(lambda x: x * 2, am.spec("n", 2), examples=examples, random_vectors=False)


def test_structured_arguments() -> None:
    def f(batch):
        return batch["x"] * batch["mask"]

    spec = {"x": am.spec("n"), "mask": am.spec("n")}
    ex = {"x": np.ones(2, np.float32), "mask": np.array([1.0, 0.0], np.float32)}
    program = am.export(f, spec, examples=[ex], random_vectors=False)
    np.testing.assert_array_equal(program.test_vectors[0].outputs["output"], [1.0, 0.0])
    with pytest.raises(am.ExportError, match="structure"):
        am.export(f, spec, examples=[{"x": ex["x"]}], random_vectors=False)
