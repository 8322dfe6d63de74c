"""Real models through the importer: the nine model-zoo "light" networks shipped with
``onnx`` (random weights, against ONNX Runtime), and ``torch.onnx.export`` of a
HuggingFace BertModel, a small ResNet and a 2-layer LSTM with dynamic sizes, imported,
saved, loaded by the native runtime and compared with ONNX Runtime at sizes other than
the exported ones."""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


import amber as am  # noqa: E402
from amber.capture.ir import TOLERANCE, within_tolerance  # noqa: E402

pytestmark = [pytest.mark.onnx, pytest.mark.slow]

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
ZOO = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
       "shufflenet", "squeezenet", "vgg19", "zfnet512"]


def _native_matches_ort(path: Any, model_bytes: bytes, feeds: dict[str, np.ndarray],
                        rtol: float | None = None) -> None:
    m = am.load(path, backend="native")
    got = m.native.session().run("forward", [feeds[k] for k in feeds])
    import onnxruntime as ort

    want = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"]).run(None,
                                                                                     feeds)
    for g, w in zip(got, want):
        r, a = TOLERANCE[str(g.dtype)]
        scale = float(np.abs(w).max()) if w.size else 1.0
        assert within_tolerance(g, w, rtol or r, a * max(scale, 1.0)), \
            f"max error {np.abs(g - w).max()} (scale {scale})"


def _randomised(name: str, seed: int) -> Any:
    """The zoo model with its constant weights (ConstantOfShape) replaced by random
    initializers scaled so activations stay of order 1."""
    model = onnx.load(os.path.join(LIGHT, f"light_{name}.onnx"))
    rng = np.random.default_rng(seed)
    keep, inits = [], []
    shapes = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in shapes:
            shape = tuple(int(d) for d in shapes[n.input[0]])
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            # uniform in [-1, 1) (float32 draws: the FC layers of VGG-19 hold 10^8 weights)
            w = rng.random(shape, dtype=np.float32) * 2 - 1
            w *= np.float32(np.sqrt(6.0 / fan_in) if len(shape) > 1 else 0.1)
            if "_var" in n.output[0] or "variance" in n.output[0]:
                w = np.abs(w) + 1.0
            inits.append(onnx.numpy_helper.from_array(w, n.output[0]))
        else:
            keep.append(n)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    model.graph.initializer.extend(inits)
    return model


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_with_random_weights_matches_onnxruntime(name: str, tmp_path: Any) -> None:
    model = _randomised(name, 0)
    p = am.from_onnx(model, check=False)
    path = tmp_path / f"{name}.amber"
    p.save(path)
    vi = [v for v in model.graph.input
          if v.name not in {t.name for t in model.graph.initializer}]
    rng = np.random.default_rng(1)
    feeds = {v.name: rng.standard_normal([d.dim_value for d in v.type.tensor_type.shape.dim]
                                         ).astype(np.float32) for v in vi}
    _native_matches_ort(path, model.SerializeToString(), feeds)


# ----------------------------------------------------------------------------- torch exports


def _export(module: Any, args: tuple, names: list[str], outs: list[str], dyn: dict) -> bytes:
    torch = pytest.importorskip("torch")
    f = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, args, f, input_names=names, output_names=outs,
                          dynamic_axes=dyn, opset_version=17, dynamo=False)
    return f.getvalue()


@pytest.mark.torch
def test_bert(tmp_path: Any) -> None:
    torch = pytest.importorskip("torch")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights from a config: no hub
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64,
                                  max_position_embeddings=64)
    torch.manual_seed(0)
    bert = transformers.BertModel(cfg).eval()

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            o = self.bert(input_ids=input_ids, attention_mask=attention_mask)
            return o.last_hidden_state, o.pooler_output

    ids = torch.randint(0, 100, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.int64)
    dyn = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
           "last_hidden_state": {0: "batch", 1: "seq"}, "pooler_output": {0: "batch"}}
    data = _export(Wrapped().eval(), (ids, mask), ["input_ids", "attention_mask"],
                   ["last_hidden_state", "pooler_output"], dyn)
    p = am.from_onnx(data, sizes={"batch": (2, 3), "seq": (3, 11)})
    assert [q.name for q in p.entries["forward"].inputs] == ["input_ids", "attention_mask"]
    path = tmp_path / "bert.amber"
    p.save(path)
    rng = np.random.default_rng(0)
    feeds = {"input_ids": rng.integers(0, 100, (4, 13)).astype(np.int64),
             "attention_mask": (rng.random((4, 13)) < 0.8).astype(np.int64)}
    _native_matches_ort(path, data, feeds)
    out = am.load(path)(input_ids=feeds["input_ids"], attention_mask=feeds["attention_mask"])
    assert tuple(out[0].shape) == (4, 13, 32)


@pytest.mark.torch
def test_small_resnet(tmp_path: Any) -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout)) if stride != 1 or cin != cout \
                else nn.Identity()

        def forward(self, x: Any) -> Any:
            y = torch.relu(self.b1(self.c1(x)))
            return torch.relu(self.b2(self.c2(y)) + self.down(x))

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.MaxPool2d(2), Block(8, 8, 1), Block(8, 16, 2),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    for mod in net.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 1.5)
    data = _export(net, (torch.randn(2, 3, 16, 16),), ["image"], ["logits"],
                   {"image": {0: "batch"}, "logits": {0: "batch"}})
    p = am.from_onnx(data)
    path = tmp_path / "resnet.amber"
    p.save(path)
    x = np.random.default_rng(0).standard_normal((7, 3, 16, 16)).astype(np.float32)
    _native_matches_ort(path, data, {"image": x})


@pytest.mark.torch
def test_two_layer_lstm(tmp_path: Any) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 8, num_layers=2).eval()
    x = torch.randn(6, 2, 5)
    data = _export(lstm, (x,), ["x"], ["y", "h", "c"],
                   {"x": {0: "seq", 1: "batch"}, "y": {0: "seq", 1: "batch"},
                    "h": {1: "batch"}, "c": {1: "batch"}})
    assert b"LSTM" in data
    p = am.from_onnx(data, sizes={"seq": (2, 9), "batch": (1, 3)})
    path = tmp_path / "lstm.amber"
    p.save(path)
    xs = np.random.default_rng(0).standard_normal((11, 4, 5)).astype(np.float32)
    _native_matches_ort(path, data, {"x": xs})
