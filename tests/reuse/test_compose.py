"""Composition by capture: a loaded model called inside am.export becomes namespaced
functions and weights of the new program; weights are stored once per content."""

from __future__ import annotations

import os

import numpy as np
import pytest

import amber as am
from amber.format.container import read_container


def test_composed_file_equals_eager_composition(parts, tmp_path):
    backbone, head = am.load(parts.backbone_path), am.load(parts.head_path)
    program = am.export(lambda x: head(backbone(x)), am.spec("batch", 3, 4, 4))
    assert {"backbone/forward", "head/forward", "forward"} <= set(program.functions)
    assert all(w.startswith(("backbone/", "head/")) for w in program.weights)
    calls = [n.attrs["callee"] for n in program.functions["forward"].nodes]
    assert calls == ["backbone/forward", "head/forward"]
    path = tmp_path / "composed.amber"
    program.save(path)
    composed = am.load(path)
    assert all(r.ok for r in composed.verify())
    for batch in (1, 3, 6):
        x = am.randn(batch, 3, 4, 4)
        want = parts.head(parts.backbone(x)).detach().numpy()
        np.testing.assert_allclose(composed(x).numpy(), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(head(backbone(x)).numpy(), want, rtol=1e-5, atol=1e-6)


def test_composed_file_needs_no_other_file(parts, tmp_path):
    backbone, head = am.load(parts.backbone_path), am.load(parts.head_path)
    path = tmp_path / "composed.amber"
    am.export(lambda x: head(backbone(x)), am.spec("batch", 3, 4, 4)).save(path)
    data = path.read_bytes()
    model = am.load(data)  # from bytes alone
    x = am.randn(2, 3, 4, 4)
    np.testing.assert_allclose(model(x).detach().numpy(),
                               parts.head(parts.backbone(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def _blobs(path) -> int:
    return len(read_container(path).tensors)


def test_model_used_twice_is_stored_once(parts, tmp_path):
    backbone = am.load(parts.backbone_path)
    once = tmp_path / "once.amber"
    twice = tmp_path / "twice.amber"
    am.export(lambda x: backbone(x), am.spec("batch", 3, 4, 4)).save(once)
    program = am.export(lambda x: backbone(x) + backbone(x * 2.0), am.spec("batch", 3, 4, 4))
    assert len([n for n in program.functions["forward"].nodes if n.op == "call"]) == 2
    program.save(twice)
    weight_bytes = sum(w.nbytes for w in backbone.program.weights.values())
    # the second use adds test vectors and a few nodes, never a second copy of the weights
    assert os.path.getsize(twice) - os.path.getsize(once) < weight_bytes / 2
    x = am.randn(3, 3, 4, 4)
    want = parts.backbone(x).detach().numpy() + parts.backbone(x * 2.0).detach().numpy()
    np.testing.assert_allclose(am.load(twice)(x).numpy(), want, rtol=1e-5, atol=1e-5)


def test_two_loads_of_one_file_share_blobs(parts, tmp_path):
    a = am.load(parts.backbone_path)
    b = am.load(parts.backbone_path)  # another object, the same weights
    program = am.export(lambda x: a(x) - b(x * 0.5), am.spec("batch", 3, 4, 4))
    assert {"backbone/forward", "backbone_1/forward"} <= set(program.functions)
    assert len(program.weights) == 2 * len(a.program.weights)
    path = tmp_path / "ab.amber"
    program.save(path)
    container = read_container(path)
    weight_blobs = {n for n in container.tensors if n.startswith("weights/")}
    assert len(weight_blobs) == len(a.program.weights)  # each content once
    loaded = am.load(path)
    assert all(np.array_equal(loaded.program.weights[f"backbone_1/{k}"], v)
               for k, v in a.program.weights.items())
    assert all(r.ok for r in loaded.verify())


def test_models_sharing_a_weight_store_it_once(tmp_path):
    am.manual_seed(1)
    shared = am.nn.Linear(4, 4)
    first = am.nn.Sequential(shared, am.nn.ReLU())
    second = am.nn.Sequential(shared, am.nn.Tanh())
    am.export(first, am.spec("n", 4)).save(tmp_path / "first.amber")
    am.export(second, am.spec("n", 4)).save(tmp_path / "second.amber")
    f, s = am.load(tmp_path / "first.amber"), am.load(tmp_path / "second.amber")
    program = am.export(lambda x: s(f(x)), am.spec("n", 4))
    path = tmp_path / "both.amber"
    program.save(path)
    weights = {n for n in read_container(path).tensors if n.startswith("weights/")}
    assert len(program.weights) == 4 and len(weights) == 2
    x = am.randn(3, 4)
    np.testing.assert_allclose(am.load(path)(x).detach().numpy(),
                               second(first(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)


def test_composed_model_composes_again(parts, tmp_path):
    backbone, head = am.load(parts.backbone_path), am.load(parts.head_path)
    am.export(lambda x: head(backbone(x)), am.spec("batch", 3, 4, 4)).save(
        tmp_path / "net.amber")
    net = am.load(tmp_path / "net.amber")
    program = am.export(lambda x: net(x).softmax(-1), am.spec("batch", 3, 4, 4))
    assert {"net/forward", "net/backbone/forward", "net/head/forward"} <= set(
        program.functions)
    x = am.randn(2, 3, 4, 4)
    want = parts.head(parts.backbone(x)).softmax(-1).detach().numpy()
    np.testing.assert_allclose(program.run("forward", x)[0], want, rtol=1e-5, atol=1e-6)


def test_entry_points_and_structures_compose(tmp_path):
    am.manual_seed(3)
    lin = am.nn.Linear(4, 3)
    prog = am.export(lambda x: {"y": lin(x), "z": (lin(x).sum(1), x * 2)}, am.spec("n", 4),
                     weights=lin)
    prog.add(lambda x: lin(x).argmax(1), am.spec("n", 4), name="predict", weights=lin)
    prog.save(tmp_path / "multi.amber")
    m = am.load(tmp_path / "multi.amber")
    program = am.export(lambda x: m(x)["z"][0] + m.predict(x).to(am.float32),
                        am.spec("n", 4))
    assert {"multi/forward", "multi/predict"} <= set(program.functions)
    x = am.randn(5, 4)
    want = lin(x).sum(1).detach().numpy() + lin(x).argmax(1).detach().numpy().astype(np.float32)
    np.testing.assert_allclose(program.run("forward", x)[0], want, rtol=1e-5, atol=1e-5)


def test_same_model_in_two_entry_points(parts, tmp_path):
    backbone = am.load(parts.backbone_path)
    program = am.export(lambda x: backbone(x), am.spec("batch", 3, 4, 4))
    program.add(lambda x: backbone(x).sum(1), am.spec("batch", 3, 4, 4), name="total")
    assert sum(f.startswith("backbone/") for f in program.functions) == len(
        backbone.program.functions)
    program.save(tmp_path / "two.amber")
    assert all(r.ok for r in am.load(tmp_path / "two.amber").verify())


def test_different_models_with_one_name(parts, tmp_path):
    a = am.load(parts.backbone_path)
    b = am.load(parts.head_path, name="backbone")
    program = am.export(lambda x: b(a(x)), am.spec("batch", 3, 4, 4))
    assert {"backbone/forward", "backbone_1/forward"} <= set(program.functions)
    with pytest.raises(am.CaptureError, match=r"am\.load\(path, name="):
        program.add(lambda x: b(x), am.spec("batch", 8), name="other")
    assert "other" not in program.entries and "forward" in program.entries


def test_gradient_through_loaded_model_is_captured(parts):
    backbone = am.load(parts.backbone_path)
    program = am.export(am.grad(lambda x: backbone(x).sum()), am.spec("batch", 3, 4, 4))
    x = am.randn(2, 3, 4, 4)
    want = am.grad(lambda x: parts.backbone(x).sum())(x).numpy()
    np.testing.assert_allclose(program.run("forward", x)[0], want, rtol=1e-4, atol=1e-5)
    assert any(w.startswith("backbone/") for w in program.weights)


# ----------------------------------------------------------------------------- seams


def _model(tmp_path, name, fn, *specs):
    path = tmp_path / f"{name}.amber"
    am.export(fn, *specs).save(path)
    return am.load(path)


def test_seam_static_dim_mismatch_names_both_models(parts, tmp_path):
    backbone = am.load(parts.backbone_path)  # output float32[batch, 8]
    wide = _model(tmp_path, "wide", lambda h: h * 2.0, am.spec("batch", 9))
    with pytest.raises(am.SeamError) as err:
        am.export(lambda x: wide(backbone(x)), am.spec("batch", 3, 4, 4))
    msg = str(err.value)
    for part in ("wide.amber", "backbone.amber", "'forward'", "'h'", "float32[batch, 9]",
                 "float32[batch, 8]", "output 'output'"):
        assert part in msg, (part, msg)


def test_seam_dtype_and_rank_mismatch(parts, tmp_path):
    backbone = am.load(parts.backbone_path)
    ints = _model(tmp_path, "ints", lambda i: i + 1, am.spec("batch", 8, dtype=am.int64))
    with pytest.raises(am.SeamError, match=r"int64\[batch, 8\].*float32\[batch, 8\].*dtype"):
        am.export(lambda x: ints(backbone(x)), am.spec("batch", 3, 4, 4))
    flat = _model(tmp_path, "flat", lambda v: v * 3.0, am.spec(8))
    with pytest.raises(am.SeamError, match=r"flat.amber and backbone.amber.*rank 2 is not 1"):
        am.export(lambda x: flat(backbone(x)), am.spec("batch", 3, 4, 4))


def test_seam_symbolic_dim_cannot_feed_static_dim(parts, tmp_path):
    head = am.load(parts.head_path)
    fixed = _model(tmp_path, "fixed", lambda v: v + 1.0, am.spec(4, 5))
    with pytest.raises(am.SeamError, match=r"fixed.amber and head.amber.*dim 0 is batch, "
                                           r"not 4"):
        am.export(lambda x: fixed(head(x)), am.spec("batch", 8))
    # a static size that matches is accepted
    program = am.export(lambda x: fixed(head(x)), am.spec(4, 8))
    assert program.entries["forward"].outputs[0].shape == (4, 5)


def test_seam_inconsistent_symbols(tmp_path):
    pair = _model(tmp_path, "pair", lambda a, b: a + b, am.spec("n", 2), am.spec("n", 2))
    with pytest.raises(am.SeamError, match=r"pair.amber.*input 'b'.*n is already 3"):
        am.export(lambda x, y: pair(x, y), am.spec(3, 2), am.spec(4, 2))


def test_seam_mismatch_from_the_caller(tmp_path):
    sq = _model(tmp_path, "sq", lambda v: v * v, am.spec("n", 3))
    with pytest.raises(am.SeamError, match=r"sq.amber: entry point 'forward' of sq.amber "
                                           r"takes input 'v' of type float32\[n, 3\], but "
                                           r"the value passed to it is float32\[k, 4\]"):
        am.export(lambda x: sq(x), am.spec("k", 4))


def test_inlined_and_called_uses_of_one_model(parts):
    backbone = am.load(parts.backbone_path)

    def f(x):
        g = am.grad(lambda y: backbone(y).sum())(x)  # needs the backward: inlined
        return g.sum() + backbone(x).sum()           # no gradient: a call node

    program = am.export(f, am.spec("batch", 3, 4, 4))
    assert "backbone/forward" in program.functions
    assert any(n.op == "call" for n in program.functions["forward"].nodes)
    x = am.randn(2, 3, 4, 4)
    want = (am.grad(lambda y: parts.backbone(y).sum())(x).sum()
            + parts.backbone(x).sum()).detach().numpy()
    np.testing.assert_allclose(program.run("forward", x)[0], want, rtol=1e-4, atol=1e-4)


def test_two_versions_of_one_model_under_one_name(parts, tmp_path):
    # same functions, different weights: the namespace clash is a CaptureError too
    (tmp_path / "v2").mkdir()
    other = am.nn.Sequential(am.nn.Flatten(), am.nn.Linear(3 * 4 * 4, 16), am.nn.ReLU(),
                             am.nn.Linear(16, 8), am.nn.Tanh())
    other.eval()
    am.export(other, am.spec("batch", 3, 4, 4)).save(tmp_path / "v2" / "backbone.amber")
    a = am.load(parts.backbone_path)
    b = am.load(tmp_path / "v2" / "backbone.amber")
    program = am.export(lambda x: a(x), am.spec("batch", 3, 4, 4))
    with pytest.raises(am.CaptureError, match=r"weight 'backbone/.*am\.load\(path, name="):
        program.add(lambda x: b(x), am.spec("batch", 3, 4, 4), name="other")
    assert "other" not in program.entries
    c = am.load(tmp_path / "v2" / "backbone.amber", name="v2")
    program.add(lambda x: c(x), am.spec("batch", 3, 4, 4), name="other")
    assert "v2/forward" in program.functions
