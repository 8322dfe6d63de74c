"""``model.as_module()``: the file's weights as parameters, fine-tuned with am.optim and
saved again with regenerated test vectors."""

from __future__ import annotations

import io

import numpy as np
import pytest

import amber as am
from amber.cli import main


def test_parameters_are_the_files_weights(parts):
    model = am.load(parts.backbone_path)
    module = model.as_module()
    assert isinstance(module, am.nn.Module)
    names = dict(module.named_parameters())
    assert set(names) == set(model.program.weights)
    for k, p in names.items():
        assert p.requires_grad
        np.testing.assert_array_equal(p.detach().numpy(), model.program.weights[k])
    assert set(dict(module.state_dict())) == set(model.program.weights)


def test_fine_tune_reduces_loss_and_the_file_verifies(parts, tmp_path):
    model = am.load(parts.backbone_path)
    module = model.as_module()
    opt = am.optim.Adam(module.parameters(), lr=0.01)
    am.manual_seed(0)
    x, y = am.randn(32, 3, 4, 4), am.randn(32, 8) * 0.5
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = ((module(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.95, losses
    path = tmp_path / "tuned.amber"
    module.save(path)
    out = io.StringIO()
    assert main(["verify", str(path)], out=out) == 0, out.getvalue()
    tuned = am.load(path)
    with am.no_grad():
        want = module(x).numpy()
    np.testing.assert_allclose(tuned(x).numpy(), want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(tuned(x).numpy(), model(x).numpy())
    # the source is untouched; the new file's vectors hold the new outputs
    tv = tuned.program.test_vectors[0]
    np.testing.assert_allclose(tuned.program.run("forward", **tv.inputs)[0],
                               tv.outputs["output"], rtol=1e-5, atol=1e-6)
    assert all(r.ok for r in model.verify())


def test_trainable_subset_and_buffers(tmp_path):
    am.manual_seed(2)
    net = am.nn.Sequential(am.nn.Linear(4, 4), am.nn.BatchNorm1d(4))
    net.eval()
    am.export(net, am.spec("n", 4)).save(tmp_path / "bn.amber")
    model = am.load(tmp_path / "bn.amber")
    module = model.as_module(trainable=["0.weight", "0.bias"])
    assert set(dict(module.named_parameters())) == {"0.weight", "0.bias"}
    buffers = dict(module.named_buffers())
    assert "1.running_mean" in buffers and not buffers["1.running_mean"].requires_grad
    assert set(dict(module.named_parameters())) | set(buffers) == set(model.program.weights)
    x = am.randn(5, 4)
    module(x).sum().backward()
    assert module.get_parameter("0.weight").grad is not None
    with pytest.raises(am.AmberError, match="unknown weight"):
        model.as_module(trainable=["nope"])
    only_bias = model.as_module(trainable=lambda n: n.endswith("bias"))
    assert all(n.endswith("bias") for n, _ in only_bias.named_parameters())


def test_module_entry_points_and_program(tmp_path):
    am.manual_seed(4)
    lin = am.nn.Linear(3, 2)
    prog = am.export(lin, am.spec("n", 3))
    prog.add(lambda x: lin(x).argmax(1), am.spec("n", 3), name="predict", weights=lin)
    prog.save(tmp_path / "two.amber")
    module = am.load(tmp_path / "two.amber").as_module()
    x = am.randn(4, 3)
    assert module.predict(x).dtype == am.int64
    assert module.entry_points == ["forward", "predict"]
    with am.no_grad():
        module.get_parameter("weight").mul_(2.0)
    new = module.to_program()
    assert set(new.entries) == {"forward", "predict"}
    assert {tv.entry for tv in new.test_vectors} == {"forward", "predict"}
    np.testing.assert_allclose(new.weights["weight"], lin.weight.detach().numpy() * 2, rtol=1e-6)
    np.testing.assert_allclose(new.run("forward", x)[0],
                               x.detach().numpy() @ (lin.weight.detach().numpy() * 2).T
                               + lin.bias.detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_a_loaded_module_exports_like_any_module(parts):
    module = am.load(parts.backbone_path).as_module()
    program = am.export(module, am.spec("batch", 3, 4, 4))
    assert set(program.weights) == set(dict(module.named_parameters()))
    x = am.randn(2, 3, 4, 4)
    np.testing.assert_allclose(program.run("forward", x)[0], parts.backbone(x).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_a_train_step_through_a_loaded_module_exports(parts):
    module = am.load(parts.head_path).as_module()

    def step(x, y):
        module.zero_grad()
        loss = ((module(x) - y) ** 2).mean()
        loss.backward()
        return loss, module.get_parameter("0.weight").grad

    program = am.export(step, am.spec("batch", 8), am.spec("batch", 5))
    x, y = am.randn(3, 8), am.randn(3, 5)
    loss, g = program.run("forward", x, y)
    want_loss, want_g = step(x, y)
    np.testing.assert_allclose(loss, want_loss.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(g, want_g.numpy(), rtol=1e-4, atol=1e-6)
