"""``amber serve`` as a real server, driven by Triton's clients (HTTP and gRPC)."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import os
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import amber as am

from .server import running, save_mlp, save_slow, save_two_entries

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
if importlib.util.find_spec("kserve") is None:  # NOTE: not imported here: its protobuf
    pytest.skip("needs kserve (extra 'serve')", allow_module_level=True)  # clashes with
    # tritonclient's in one process; the server runs in its own
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.slow
X = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)


def post(server, path: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(server.url(path), data=body, method="POST",
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def infer_http(client, model: str, x: np.ndarray, binary: bool = True, name: str = "input"):
    inp = httpclient.InferInput(name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    return client.infer(model, [inp]).as_numpy("output")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("serve")
    out = {"mlp": str(d / "mlp.amber"), "two": str(d / "two.amber"),
           "slow": str(d / "slow.amber"), "dir": str(d)}
    save_mlp(out["mlp"], 0)
    save_two_entries(out["two"])
    save_slow(out["slow"], 900_000)  # about a second: long enough to be busy
    return out


@pytest.fixture(scope="module")
def server(files, tmp_path_factory):
    with running(files["mlp"], files["two"], "--max-request-bytes", "100000",
                 log_dir=str(tmp_path_factory.mktemp("logs"))) as s:
        yield s


def test_metadata_and_every_entry_point(server) -> None:
    http = httpclient.InferenceServerClient(server.http)
    grpc = grpcclient.InferenceServerClient(server.grpc)
    assert http.is_server_live() and http.is_server_ready() and grpc.is_server_ready()
    md = http.get_model_metadata("mlp")
    assert md["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 8]}]
    assert md["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 3]}]
    gmd = grpc.get_model_metadata("two.embed", as_json=True)
    assert gmd["inputs"][0]["shape"] == ["-1", "8"]
    for name in ("mlp", "two", "two.embed"):
        assert http.is_model_ready(name) and grpc.is_model_ready(name)
    assert not http.is_model_ready("nope")


def test_inference_equals_am_load(server, files) -> None:
    http = httpclient.InferenceServerClient(server.http)
    grpc = grpcclient.InferenceServerClient(server.grpc)
    want = am.load(files["mlp"])(X).numpy()
    np.testing.assert_array_equal(infer_http(http, "mlp", X, binary=True), want)
    np.testing.assert_array_equal(infer_http(http, "mlp", X, binary=False), want)
    gi = grpcclient.InferInput("input", list(X.shape), "FP32")
    gi.set_data_from_numpy(X)
    np.testing.assert_array_equal(grpc.infer("mlp", [gi]).as_numpy("output"), want)
    two = am.load(files["two"])
    embed_in = http.get_model_metadata("two.embed")["inputs"][0]["name"]
    np.testing.assert_array_equal(infer_http(http, "two.embed", X, name=embed_in),
                                  two.embed(X).numpy())
    np.testing.assert_array_equal(infer_http(http, "two", X, name=embed_in), two(X).numpy())


@pytest.mark.parametrize("case,needle", [
    ("name", "unknown input(s) 'nope'"),
    ("dtype", "datatype FP64"),
    ("shape", "dim 1 must be 8"),
    ("missing", "missing input(s) 'input'"),
    ("values", "the 8 values its shape [1, 8] needs"),
])
def test_bad_inputs_get_400_with_the_reason(server, case: str, needle: str) -> None:
    tensor = {"name": "input", "shape": [1, 8], "datatype": "FP32", "data": [0.0] * 8}
    if case == "name":
        tensor["name"] = "nope"
    elif case == "dtype":
        tensor["datatype"] = "FP64"
    elif case == "shape":
        tensor["shape"], tensor["data"] = [1, 5], [0.0] * 5
    elif case == "values":
        tensor["data"] = [0.0] * 4
    body = {"inputs": [] if case == "missing" else [tensor]}
    status, reply = post(server, "/v2/models/mlp/infer", json.dumps(body).encode())
    assert status == 400, reply
    assert needle in reply["error"]
    http = httpclient.InferenceServerClient(server.http)
    assert http.is_server_ready()


def test_malformed_and_oversize_bodies_get_400(server) -> None:
    status, reply = post(server, "/v2/models/mlp/infer", b"{not json")
    assert status == 400 and "not valid JSON" in reply["error"]
    status, reply = post(server, "/v2/models/mlp/infer", b'{"inputs": 3}')
    assert status == 400 and "invalid inference request" in reply["error"]
    big = json.dumps({"inputs": [{"name": "input", "shape": [20000, 8], "datatype": "FP32",
                                  "data": [0.5] * 160000}]}).encode()
    status, reply = post(server, "/v2/models/mlp/infer", big)
    assert status == 400 and "--max-request-bytes" in reply["error"]
    status, _ = post(server, "/v2/models/unknown/infer", b'{"inputs": []}')
    assert status == 404
    grpc = grpcclient.InferenceServerClient(server.grpc)
    gi = grpcclient.InferInput("input", [1, 5], "FP32")
    gi.set_data_from_numpy(np.zeros((1, 5), np.float32))
    with pytest.raises(InferenceServerException, match="dim 1 must be 8") as e:
        grpc.infer("mlp", [gi])
    assert "INVALID_ARGUMENT" in str(e.value.status())


def test_metrics(server) -> None:
    infer_http(httpclient.InferenceServerClient(server.http), "mlp", X)
    with urllib.request.urlopen(server.url("/metrics")) as r:
        text = r.read().decode()
    assert 'amber_requests_total{model="mlp",status="success"}' in text
    assert 'amber_requests_total{model="mlp",status="invalid_input"}' in text
    assert "amber_request_duration_seconds_bucket" in text


def test_busy_and_timeout(files, tmp_path) -> None:
    x = np.ones((1, 64), np.float32)
    with running(files["slow"], "--max-in-flight", "1", "--timeout", "30",
                 log_dir=str(tmp_path)) as s:
        body = json.dumps({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP32",
                                       "data": x.ravel().tolist()}]}).encode()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(post, s, "/v2/models/slow/infer", body)
            time.sleep(0.2)
            replies = []
            while not first.done():  # more requests while the first one runs
                replies.append(post(s, "/v2/models/slow/infer", body))
            replies.append(first.result())
            assert 200 in [st for st, _ in replies]  # one ran
            busy = [r["error"] for st, r in replies if st == 429]
            assert busy and "--max-in-flight" in busy[0]
    with running(files["slow"], "--timeout", "0.2", log_dir=str(tmp_path)) as s:
        status, reply = post(s, "/v2/models/slow/infer", body)
        assert status == 504 and "--timeout" in reply["error"]


def test_dynamic_batching_matches_unbatched(files, tmp_path) -> None:
    """Batched answers are bit for bit the answers of the same server without batching."""
    rows = np.random.default_rng(1).normal(size=(16, 8)).astype(np.float32)

    def answers(*args: str) -> tuple[list[np.ndarray], str]:
        with running(files["mlp"], *args, log_dir=str(tmp_path)) as s:
            def one(i: int) -> np.ndarray:
                c = httpclient.InferenceServerClient(s.http)
                return infer_http(c, "mlp", rows[i:i + 1])

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                got = list(pool.map(one, range(16)))
            with urllib.request.urlopen(s.url("/metrics")) as r:
                return got, r.read().decode()

    batched, text = answers("--max-batch", "8", "--max-delay-ms", "50")
    alone, _ = answers()
    model = am.load(files["mlp"])
    for i, (b, a) in enumerate(zip(batched, alone)):
        np.testing.assert_array_equal(b, a)
        np.testing.assert_allclose(b, model(rows[i:i + 1]).numpy(), rtol=1e-6, atol=1e-7)
    count = [ln for ln in text.splitlines() if ln.startswith("amber_batch_size_count")]
    total = [ln for ln in text.splitlines() if ln.startswith("amber_batch_size_sum")]
    assert float(total[0].split()[-1]) == 16
    assert float(count[0].split()[-1]) < 16  # some requests ran together


def test_hot_replacement_under_load(tmp_path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    target = str(folder / "m.amber")
    save_mlp(target, 0)
    v1 = am.load(target)(X).numpy()
    staging = str(tmp_path / "v2.amber")
    save_mlp(staging, 1)
    v2 = am.load(staging)(X).numpy()
    with running("--model-dir", str(folder), "--poll", "0.1", log_dir=str(tmp_path)) as s:
        answers: list[np.ndarray] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def client() -> None:
            c = httpclient.InferenceServerClient(s.http)
            while not stop.is_set():
                try:
                    answers.append(infer_http(c, "m", X))
                except BaseException as e:
                    failures.append(e)

        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        os.replace(staging, target)  # an atomic replacement, as am save does
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
                np.array_equal(a, v2) for a in answers[-5:]):
            time.sleep(0.1)
        # a broken file must be refused while v2 keeps serving
        with open(str(folder / "broken.amber"), "wb") as f:
            f.write(b"AMBER\0\0\0 not really")
        bad_copy = open(target, "rb").read()
        with open(str(tmp_path / "tampered.amber"), "wb") as f:
            f.write(bad_copy[:-10] + b"\0" * 10)
        os.replace(str(tmp_path / "tampered.amber"), target)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join()
        with urllib.request.urlopen(s.url("/metrics")) as r:
            text = r.read().decode()
    assert not failures, failures[:3]
    assert len(answers) > 10
    assert all(np.array_equal(a, v1) or np.array_equal(a, v2) for a in answers)
    assert any(np.array_equal(a, v1) for a in answers)
    assert np.array_equal(answers[-1], v2)  # the tampered file was refused
    assert 'amber_model_reloads_total{outcome="refused"} 2.0' in text
