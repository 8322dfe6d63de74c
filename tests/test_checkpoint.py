"""am.save / am.load checkpoints: safetensors files, no pickle, exact round trips, clear
errors for PyTorch's pickled checkpoints and for malformed files."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile

import numpy as np
import pytest
from safetensors.numpy import save as st_save

import amber as am
import amber.nn as nn


def _model():
    am.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def test_state_dict_round_trip(tmp_path):
    m = _model()
    path = tmp_path / "m.safetensors"
    am.save(m.state_dict(), path)
    sd = am.load(path)
    assert list(sd) == list(m.state_dict())
    for k, v in m.state_dict().items():
        assert sd[k].dtype is v.dtype and np.array_equal(sd[k].numpy(), v.numpy())
    m2 = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    m2.load_state_dict(am.load(str(path)))
    x = am.randn(3, 4)
    m.eval()
    m2.eval()
    assert np.array_equal(m(x).detach().numpy(), m2(x).detach().numpy())


def test_training_checkpoint_round_trip_resumes_exactly():
    m = _model()
    opt = am.optim.AdamW(m.parameters(), lr=0.01, amsgrad=True)
    sched = am.optim.lr_scheduler.MultiStepLR(opt, milestones=[1, 3])
    plateau = am.optim.lr_scheduler.ReduceLROnPlateau(opt)
    x, y = am.randn(8, 4), am.randint(0, 2, (8,))
    for _ in range(2):
        opt.zero_grad()
        am.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
        sched.step()
    plateau.step(1.0)
    ckpt = {"model": m.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
            "plateau": plateau.state_dict(), "epoch": 2, "note": "run-1", "best": None}
    buf = io.BytesIO()
    am.save(ckpt, buf)
    back = am.load(buf.getvalue())
    assert back["epoch"] == 2 and back["note"] == "run-1" and back["best"] is None
    assert back["plateau"]["best"] == 1.0 and back["plateau"]["mode_worse"] == float("inf")
    assert set(back["opt"]["state"]) == {0, 1, 2, 3, 4, 5}  # int keys survive
    assert back["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)  # tuples survive
    m2 = _model()
    opt2 = am.optim.AdamW(m2.parameters(), lr=0.01, amsgrad=True)
    sched2 = am.optim.lr_scheduler.MultiStepLR(opt2, milestones=[1, 3])
    m2.load_state_dict(back["model"])
    opt2.load_state_dict(back["opt"])
    sched2.load_state_dict(back["sched"])
    for mm, oo, ss in ((m, opt, sched), (m2, opt2, sched2)):
        for _ in range(3):
            oo.zero_grad()
            am.nn.functional.cross_entropy(mm(x), y).backward()
            oo.step()
            ss.step()
    assert sched.get_last_lr() == sched2.get_last_lr()
    for p, q in zip(m.parameters(), m2.parameters()):
        assert np.array_equal(p.detach().numpy(), q.detach().numpy())


def test_nested_values_round_trip():
    obj = {"a": [am.tensor([True, False]), (1, 2.5, "s"), am.tensor(3)],
           "arr": np.arange(6, dtype=np.int32).reshape(2, 3),
           7: {"$tensor": "not a tag", "x": float("-inf"), "n": float("nan")},
           "dt": am.float64, "np_scalar": np.float32(1.5), "empty": am.zeros(0, 3)}
    back = am.load(_bytes(obj))
    assert back["a"][0].dtype is am.bool and back["a"][0].tolist() == [True, False]
    assert back["a"][1] == (1, 2.5, "s") and back["a"][2].shape == () and \
        back["a"][2].item() == 3
    assert isinstance(back["arr"], np.ndarray) and back["arr"].dtype == np.int32
    assert back[7]["$tensor"] == "not a tag" and back[7]["x"] == float("-inf")
    assert np.isnan(back[7]["n"]) and back["dt"] is am.float64
    assert back["np_scalar"] == 1.5 and back["empty"].shape == (0, 3)
    assert am.load(_bytes(am.arange(3))).tolist() == [0, 1, 2]
    assert am.load(_bytes([1, [2, {"k": None}]])) == [1, [2, {"k": None}]]


def _bytes(obj):
    buf = io.BytesIO()
    am.save(obj, buf)
    return buf.getvalue()


def test_a_failed_save_leaves_no_file(tmp_path):
    path = tmp_path / "x.safetensors"
    am.save({"a": am.ones(1)}, path)
    with pytest.raises(am.AmberError):
        am.save({"a": am.ones(2), "b": object()}, path)
    assert am.load(path)["a"].tolist() == [1.0]  # the earlier checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.safetensors"]


def test_saving_what_a_checkpoint_cannot_hold_is_refused(tmp_path):
    with pytest.raises(am.AmberError, match="state_dict"):
        am.save(_model(), tmp_path / "m.safetensors")
    with pytest.raises(am.AmberError, match="cannot save function"):
        am.save({"f": lambda: 0}, tmp_path / "f.safetensors")
    with pytest.raises(am.DTypeError):
        am.save({"u": np.zeros(2, np.uint16)}, tmp_path / "u.safetensors")


def test_pytorch_pickles_are_refused_with_a_conversion_recipe(tmp_path):
    z = tmp_path / "model.pt"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    legacy = tmp_path / "model.bin"
    legacy.write_bytes(pickle.dumps({"w": [1.0]}, protocol=2))
    for path, kind in ((z, "zip archive"), (legacy, "pickle")):
        with pytest.raises(am.UnsupportedCheckpointError, match=kind) as e:
            am.load(path)
        assert "safetensors.torch import save_file" in str(e.value)
        assert isinstance(e.value, am.FormatError)


def test_foreign_safetensors_and_widened_dtypes(tmp_path):
    bf16 = (np.array([1.5, -2.0], np.float32).view(np.uint32) >> 16).astype(np.uint16)
    data = st_save({"h": np.array([0.5, 2.0], np.float16), "u8": np.array([255], np.uint8),
                    "i16": np.array([-3], np.int16), "f": np.ones(2, np.float32),
                    "u16": np.array([65535], np.uint16)})
    sd = am.load(data)
    assert sd["h"].dtype is am.float16 and sd["h"].tolist() == [0.5, 2.0]
    assert sd["u8"].dtype is am.uint8 and sd["u8"].item() == 255
    assert sd["i16"].dtype is am.int16 and sd["i16"].item() == -3
    assert sd["u16"].dtype is am.int32 and sd["u16"].item() == 65535  # widened exactly
    assert sorted(sd) == ["f", "h", "i16", "u16", "u8"]
    raw = _handmade({"b": ("BF16", [2], bf16.tobytes())})
    b = am.load(raw)["b"]
    assert b.dtype is am.bfloat16 and b.tolist() == [1.5, -2.0]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "int8", "uint8", "int16"])
def test_storage_dtypes_round_trip_bit_for_bit(tmp_path, dtype):
    x = am.tensor([[1.5, -2.25, 100.0], [0.0, 3.0, -7.0]]).to(dtype)
    am.save({"x": x, "nested": {"y": x[0]}}, tmp_path / "c.safetensors")
    back = am.load(tmp_path / "c.safetensors")
    assert back["x"].dtype is x.dtype and back["nested"]["y"].dtype is x.dtype
    assert back["x"].numpy().tobytes() == x.numpy().tobytes()
    with open(tmp_path / "c.safetensors", "rb") as f:  # the standard names, for other tools
        header = f.read(8 + int.from_bytes(f.read(8)[:8], "little"))
    want = {"float16": "F16", "bfloat16": "BF16", "int8": "I8", "uint8": "U8", "int16": "I16"}
    assert f'"dtype":"{want[dtype]}"' in header.decode(errors="replace")


def _handmade(entries, meta=None, header_extra=None):
    header, data = {}, b""
    for name, (dt, shape, blob) in entries.items():
        header[name] = {"dtype": dt, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    if meta is not None:
        header["__metadata__"] = meta
    header.update(header_extra or {})
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


@pytest.mark.parametrize("raw, match", [
    (_handmade({"a": ("F32", [3], b"\0" * 8)}), "data_offsets"),
    (_handmade({"a": ("F32", [2], b"\0" * 8)}, header_extra={"b": {
        "dtype": "F32", "shape": [2], "data_offsets": [0, 800]}}), "data_offsets"),
    (_handmade({"a": ("C64", [1], b"\0" * 8)}), "unsupported dtype"),
    (_handmade({"a": ("F32", [-1], b"")}), "malformed"),
    (_handmade({"a": ("F32", [1], b"\0" * 4)}, meta={"amber.structure": "{"}), "JSON"),
    (_handmade({"a": ("F32", [1], b"\0" * 4)},
               meta={"amber.structure": '{"$tensor": "zz"}'}), "missing tensor"),
    (_handmade({"a": ("F32", [1], b"\0" * 4)},
               meta={"amber.structure": '{"$tuple": 3}'}), "malformed"),
    (_handmade({"a": ("F32", [1], b"\0" * 4)},
               meta={"amber.structure": "1", "amber.checkpoint": "99"}), "newer"),
])
def test_malformed_safetensors_raise_format_error(raw, match):
    with pytest.raises(am.FormatError, match=match):
        am.load(raw)


def test_load_accepts_map_location_and_weights_only(tmp_path):
    raw = _bytes({"w": am.ones(2)})
    assert am.load(raw, map_location="cpu", weights_only=True)["w"].tolist() == [1.0, 1.0]
    assert am.load(raw, map_location=am.device("cpu"))["w"].shape == (2,)
    with pytest.raises(am.DeviceError):
        am.load(raw, map_location="cuda:0")
    with pytest.raises(am.ArgumentError):
        am.load(raw, map_location=lambda s, loc: s)
