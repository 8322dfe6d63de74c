"""``amber link`` and ``amber diff``."""

from __future__ import annotations

import io

import numpy as np
import pytest

import amber as am
from amber.cli import main
from amber.link import link


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_link_verifies_and_equals_composition_in_python(parts, tmp_path):
    out = str(tmp_path / "ab.amber")
    code, text = _run("link", parts.backbone_path, parts.head_path, "--connect",
                      "backbone.forward.out0 -> head.forward.in0", "-o", out)
    assert code == 0, text
    assert "forward(input: float32[batch, 3, 4, 4]) -> (output: float32[batch, 5])" in text
    code, text = _run("verify", out)
    assert code == 0 and "test vectors passed" in text, text
    linked = am.load(out, backend="reference")  # bit-equal: the same interpreter
    assert {"backbone/forward", "head/forward"} <= set(linked.program.functions)
    backbone, head = am.load(parts.backbone_path), am.load(parts.head_path)

    def composed(input):
        return head(backbone(input))

    python = am.export(composed, am.spec("batch", 3, 4, 4))
    for batch in (1, 4):
        x = am.randn(batch, 3, 4, 4)
        want = python.run("forward", x)[0]
        np.testing.assert_array_equal(linked(x).numpy(), want)
        np.testing.assert_allclose(want, parts.head(parts.backbone(x)).detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
    # the same program: only metadata and test vectors may differ
    python.save(tmp_path / "py.amber")
    code, text = _run("diff", out, str(tmp_path / "py.amber"))
    assert code == 0, text
    assert "identical" in text


def _models(tmp_path):
    am.manual_seed(5)
    enc = am.nn.Linear(4, 6)
    am.export(lambda x: (enc(x).relu(), enc(x).sum(1)), am.spec("n", 4), weights=enc).save(
        tmp_path / "enc.amber")
    mix_w = am.randn(6, 3)
    am.export(lambda a, b, scale: (a @ mix_w) * scale + b.unsqueeze(1), am.spec("n", 6),
              am.spec("n"), am.spec(1)).save(tmp_path / "mix.amber")
    return enc, mix_w


def test_link_several_connections_and_free_inputs(tmp_path):
    enc, mix_w = _models(tmp_path)
    out = tmp_path / "em.amber"
    code, text = _run("link", f"e={tmp_path / 'enc.amber'}", f"m={tmp_path / 'mix.amber'}",
                      "--connect", "e.forward.out0 -> m.forward.a", "--connect",
                      "e.forward.output_1 -> m.forward.in1", "--name", "combined",
                      "-o", str(out))
    assert code == 0, text
    model = am.load(out)
    sig = model.signature("combined")
    assert [p.name for p in sig.inputs] == ["x", "scale"]  # unconnected inputs
    assert [p.name for p in sig.outputs] == ["output"]  # unconsumed outputs
    assert model.entry_points == ["combined"]
    assert _run("verify", str(out))[0] == 0
    x, s = am.randn(3, 4), am.tensor([2.0])
    h = enc(x)
    want = ((h.relu().detach().numpy() @ mix_w.detach().numpy()) * 2.0
            + h.sum(1).detach().numpy()[:, None])
    np.testing.assert_allclose(model.combined(x, s).numpy(), want, rtol=1e-5, atol=1e-5)
    # choose the outputs; names that clash get the model's alias
    program = link({"e": am.load(tmp_path / "enc.amber"), "m": am.load(tmp_path / "mix.amber")},
                   ["e.forward.out0 -> m.forward.a", "e.forward.out1 -> m.forward.b"],
                   outputs=["m.forward.output", "e.forward.output_1"])
    assert [p.name for p in program.entries["forward"].outputs] == ["output", "output_1"]
    got, total = program.run("forward", x, s)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(total, h.sum(1).detach().numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(am.LinkError, match="not part of the link"):
        link({"e": am.load(tmp_path / "enc.amber"), "m": am.load(tmp_path / "mix.amber"),
              "f": am.load(tmp_path / "enc.amber")},
             ["e.forward.out0 -> m.forward.a", "e.forward.out1 -> m.forward.b"],
             outputs=["f.forward.out0"])


def test_bad_connect_specs(parts, tmp_path):
    b, h = am.load(parts.backbone_path), am.load(parts.head_path)
    models = {"B": b, "H": h}
    cases = {
        "B.forward.out0 H.forward.in0": "exactly one '->'",
        "B.forward.out0 -> X.forward.in0": "no model 'X'; the models are B, H",
        "B.fwd.out0 -> H.forward.in0": "no entry point 'fwd'; it has forward",
        "B.forward.out7 -> H.forward.in0": "has 1 outputs, so 'out7' does not exist",
        "B.forward.logits -> H.forward.in0": "no output 'logits'; its outputs are output",
        "B.forward.in0 -> H.forward.in0": "must be an output",
        "B.forward.out0 -> H.forward.out0": "must be an input",
        "B.forward -> H.forward.in0": "must be MODEL.ENTRY.PORT",
    }
    for spec, msg in cases.items():
        with pytest.raises(am.LinkError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            link(models, [spec])
    with pytest.raises(am.LinkError, match="fed twice"):
        link({"B": b, "H": h, "H2": h}, ["B.forward.out0 -> H.forward.in0",
                                          "B.forward.out0 -> H.forward.in0"])
    with pytest.raises(am.LinkError, match="no --connect"):
        link(models, [])


def test_link_cycle_and_seam_errors(parts, tmp_path):
    am.export(lambda v: v * 2.0, am.spec("batch", 8)).save(tmp_path / "loop.amber")
    loop = am.load(tmp_path / "loop.amber")
    with pytest.raises(am.LinkError, match="cycle"):
        link({"L": loop}, ["L.forward.out0 -> L.forward.in0"])
    am.export(lambda v: v + 1.0, am.spec("batch", 8)).save(tmp_path / "one.amber")
    one = am.load(tmp_path / "one.amber")
    with pytest.raises(am.LinkError, match=r"cycle: (L\.forward -> O\.forward -> L|"
                                           r"O\.forward -> L\.forward -> O)\.forward"):
        link({"L": loop, "O": one}, ["L.forward.out0 -> O.forward.in0",
                                     "O.forward.out0 -> L.forward.in0"])
    b, h = am.load(parts.backbone_path), am.load(parts.head_path)
    with pytest.raises(am.SeamError) as err:
        link({"H": h, "B": b}, ["H.forward.out0 -> B.forward.in0"])
    msg = str(err.value)
    for part in ("backbone.amber", "head.amber", "'forward'", "input 'input'",
                 "float32[batch, 3, 4, 4]", "float32[batch, 5]", "rank 2 is not 4"):
        assert part in msg, (part, msg)


def test_cli_link_errors_exit_2(parts, tmp_path, capsys):
    code, _ = _run("link", parts.backbone_path, parts.head_path, "--connect",
                   "backbone.forward.out0 => head.forward.in0", "-o", str(tmp_path / "x"))
    assert code == 2
    assert "exactly one '->'" in capsys.readouterr().err
    code, _ = _run("link", parts.head_path, parts.backbone_path, "--connect",
                   "head.forward.out0 -> backbone.forward.in0", "-o", str(tmp_path / "x"))
    assert code == 2
    assert "cannot compose" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    code, _ = _run("link", parts.head_path, parts.head_path, "--connect",
                   "head.forward.out0 -> head.forward.in0", "-o", str(tmp_path / "x"))
    assert code == 2
    assert "give one an alias" in capsys.readouterr().err


def test_diff_reports_a_changed_weight(parts, tmp_path):
    module = am.load(parts.head_path).as_module()
    with am.no_grad():
        module.get_parameter("0.bias").add_(0.5)
    module.save(tmp_path / "head2.amber")
    code, text = _run("diff", parts.head_path, str(tmp_path / "head2.amber"))
    assert code == 1
    assert "weight 0.bias: changed (float32[5], sha256" in text
    assert "max abs change 0.5" in text
    assert "0.weight" not in text.split("weights:")[0]
    assert "weights: 1 identical by content hash, 1 differ" in text
    code, text = _run("diff", parts.head_path, parts.head_path)
    assert code == 0 and "identical" in text


def test_diff_reports_entry_points_signatures_and_ops(parts, tmp_path):
    am.manual_seed(9)
    lin = am.nn.Linear(8, 5)
    p = am.export(lin, am.spec("batch", 8))
    p.add(lambda x: lin(x).softmax(-1), am.spec("batch", 8), name="probs", weights=lin)
    p.save(tmp_path / "h3.amber")
    code, text = _run("diff", parts.head_path, str(tmp_path / "h3.amber"))
    assert code == 1
    assert "entry point probs: only in" in text
    assert "function probs: only in" in text
    assert "op histogram:" in text and "exp 0 -> 1" in text
    assert "weight 0.weight: only in" in text and "weight weight: only in" in text
