"""PyTorch-facing conveniences agree with torch 2.13: checkpoints PyTorch's safetensors
tools read (and amber reads theirs), hook arguments, dtype limits, rounding."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

import amber as am  # noqa: E402
import amber.nn as nn  # noqa: E402

pytestmark = pytest.mark.torch


def _pair():
    torch.manual_seed(0)
    mt = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.BatchNorm1d(6),
                             torch.nn.ReLU(), torch.nn.Linear(6, 3))
    ma = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    return ma, mt


def test_pytorch_reads_the_state_dict_amber_saved(tmp_path):
    ma, mt = _pair()
    path = tmp_path / "model.safetensors"
    am.save(ma.state_dict(), path)
    sd = safetensors_torch.load_file(str(path))
    assert sorted(sd) == sorted(mt.state_dict())
    mt.load_state_dict(sd)  # strict: same keys, shapes and dtypes
    for k, v in ma.state_dict().items():
        np.testing.assert_array_equal(sd[k].numpy(), v.numpy())
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        assert f.metadata()["format"] == "pt"
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    ma.eval()
    mt.eval()
    np.testing.assert_allclose(ma(am.tensor(x)).detach().numpy(),
                               mt(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_amber_reads_the_state_dict_pytorch_saved(tmp_path):
    ma, mt = _pair()
    path = tmp_path / "torch.safetensors"
    safetensors_torch.save_file(mt.state_dict(), str(path))
    ma.load_state_dict(am.load(path))
    for k, v in mt.state_dict().items():
        np.testing.assert_array_equal(ma.state_dict()[k].numpy(), v.numpy())
    half = tmp_path / "half.safetensors"
    safetensors_torch.save_file({"w": torch.tensor([1.5, -2.25], dtype=torch.bfloat16),
                                 "h": torch.tensor([0.1], dtype=torch.float16)}, str(half))
    got = am.load(half)
    assert got["w"].tolist() == [1.5, -2.25]
    assert got["h"].item() == torch.tensor([0.1], dtype=torch.float16).float().item()


def test_torch_save_files_are_refused(tmp_path):
    _, mt = _pair()
    for legacy in (False, True):
        path = tmp_path / f"m{legacy}.pt"
        torch.save(mt.state_dict(), path, _use_new_zipfile_serialization=not legacy)
        with pytest.raises(am.UnsupportedCheckpointError, match="save_file"):
            am.load(path)


def test_module_hook_arguments_match_torch():
    ma, mt = nn.Linear(4, 3), torch.nn.Linear(4, 3)
    ma.load_state_dict({k: v.detach().numpy() for k, v in mt.state_dict().items()})
    logs: dict[str, list] = {"a": [], "t": []}
    for m, key in ((ma, "a"), (mt, "t")):
        m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
        m.register_forward_hook(lambda mod, args, out, key=key: logs[key].append(
            ("fwd", args[0].detach().numpy().copy(), out.detach().numpy().copy())))
        m.register_full_backward_pre_hook(lambda mod, go: (go[0] * 0.5,))
        m.register_full_backward_hook(lambda mod, gi, go, key=key: logs[key].append(
            ("bwd", gi[0].detach().numpy().copy(), go[0].detach().numpy().copy()))
            or (gi[0] + 1,))
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    xa, xt = am.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (ma(xa) ** 2).sum().backward()
    (mt(xt) ** 2).sum().backward()
    assert [e[0] for e in logs["a"]] == [e[0] for e in logs["t"]] == ["fwd", "bwd"]
    for ea, et in zip(logs["a"], logs["t"]):
        for a, t in zip(ea[1:], et[1:]):
            np.testing.assert_allclose(a, t, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xa.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ma.weight.grad.numpy(), mt.weight.grad.numpy(), rtol=1e-5,
                               atol=1e-6)


def test_tensor_hook_matches_torch():
    x = np.array([0.5, -1.0, 2.0], np.float32)
    xa, xt = am.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    for v, lib in ((xa, am), (xt, torch)):
        v.register_hook(lambda g: g * 3)
        y = lib.tanh(v) * 2
        y.register_hook(lambda g: g + 1)
        (y * y).sum().backward()
    np.testing.assert_allclose(xa.grad.numpy(), xt.grad.numpy(), rtol=1e-6)


def test_finfo_iinfo_match_torch():
    for a, t in ((am.float32, torch.float32), (am.float64, torch.float64)):
        fa, ft = am.finfo(a), torch.finfo(t)
        for k in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution"):
            assert getattr(fa, k) == getattr(ft, k), k
        assert fa.dtype == ft.dtype
    for a, t in ((am.int32, torch.int32), (am.int64, torch.int64)):
        ia, it = am.iinfo(a), torch.iinfo(t)
        assert (ia.bits, ia.max, ia.min, ia.dtype) == (it.bits, it.max, it.min, it.dtype)


def test_rounding_matches_torch():
    x = np.concatenate([np.arange(-6, 6) / 2 + 0.0,
                        np.random.default_rng(0).standard_normal(50) * 10]).astype(np.float32)
    for name in ("round", "trunc", "floor", "ceil"):
        a = getattr(am.tensor(x), name)().numpy()
        t = getattr(torch.tensor(x), name)().numpy()
        assert a.tobytes() == t.tobytes(), name
    a = am.round(am.tensor(x), decimals=1).numpy()
    np.testing.assert_allclose(a, torch.round(torch.tensor(x), decimals=1).numpy(), rtol=1e-6)


def test_in_place_refusal_on_leaves_matches_torch():
    for lib in (am, torch):
        w = lib.ones(2, requires_grad=True)
        with pytest.raises(RuntimeError):
            w.add_(1)
        with lib.no_grad():
            w.mul_(3)
        assert w.detach().numpy().tolist() == [3.0, 3.0]
        with pytest.raises(RuntimeError, match=r"numpy\(\)"):
            w.numpy()
        w.data.add_(1)
        w.data[0] = 0.5
        assert w.detach().numpy().tolist() == [0.5, 4.0]


def test_parameter_vectors_match_torch():
    ma, mt = _pair()
    ma.load_state_dict({k: v.detach().numpy() for k, v in mt.state_dict().items()})
    va = am.nn.utils.parameters_to_vector(ma.parameters())
    vt = torch.nn.utils.parameters_to_vector(mt.parameters())
    np.testing.assert_array_equal(va.detach().numpy(), vt.detach().numpy())
    new = np.random.default_rng(0).standard_normal(vt.shape[0]).astype(np.float32)
    am.nn.utils.vector_to_parameters(am.tensor(new), ma.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new), mt.parameters())
    for (ka, pa), (kt, pt) in zip(ma.named_parameters(), mt.named_parameters()):
        assert ka == kt
        np.testing.assert_array_equal(pa.detach().numpy(), pt.detach().numpy())


def test_in_place_ops_on_intermediates_match_torch():
    """Attention-style code: scores.masked_fill_, then a chain of in-place ops on
    results; values and gradients as PyTorch's."""
    rng = np.random.default_rng(3)
    q, k = (rng.standard_normal((2, 4, 8)).astype(np.float32) for _ in range(2))
    mask = np.triu(np.ones((4, 4), bool), 1)
    outs, grads = [], []
    for lib in (am, torch):
        qa = lib.tensor(q, requires_grad=True)
        ka = lib.tensor(k, requires_grad=True)
        scores = qa @ ka.transpose(-2, -1)
        scores.mul_(8 ** -0.5).masked_fill_(lib.tensor(mask), float("-inf"))
        p = lib.softmax(scores, dim=-1)
        h = p @ ka
        h.add_(1.0).clamp_(min=0.9).div_(2.0)
        (h * h).sum().backward()
        outs.append(h.detach().numpy())
        grads.append((qa.grad.numpy(), ka.grad.numpy()))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    for a, t in zip(grads[0], grads[1]):
        np.testing.assert_allclose(a, t, rtol=1e-4, atol=1e-5)
