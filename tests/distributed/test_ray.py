"""Batch inference through Ray Data on a local cluster, against am.load(path)(x)."""

from __future__ import annotations

import numpy as np
import pytest

import amber as am
import amber.nn as nn
from amber.errors import AmberError
from amber.ray import Predictor, score


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> str:
    am.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    path = str(tmp_path_factory.mktemp("ray") / "mlp.amber")
    am.export(model, am.spec("batch", 8)).save(path)
    return path


def test_predictor_maps_columns_without_ray(saved: str) -> None:
    x = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    name = am.load(saved).signature().inputs[0].name
    out = Predictor(saved, columns={"features": name}, keep=("id",))(
        {"features": x, "id": np.arange(5)})
    expected = am.load(saved)(x).numpy()
    (out_name,) = [k for k in out if k != "id"]
    np.testing.assert_array_equal(out[out_name], expected)
    np.testing.assert_array_equal(out["id"], np.arange(5))
    with pytest.raises(AmberError, match="no column"):
        Predictor(saved)({"other": x})
    with pytest.raises(AmberError, match="unknown input"):
        Predictor(saved, columns={"a": "nope"})


@pytest.mark.slow
def test_ray_data_scores_ten_thousand_rows(saved: str) -> None:
    ray = pytest.importorskip("ray")
    x = np.random.default_rng(1).normal(size=(10_000, 8)).astype(np.float32)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        name = am.load(saved).signature().inputs[0].name
        ds = ray.data.from_items([{"row": i, "x": x[i]} for i in range(len(x))])
        scored = score(ds, saved, batch_size=1000, concurrency=2,
                       columns={"x": name}, outputs=None, keep=("row",))
        rows = scored.take_all()
    finally:
        ray.shutdown()
    assert len(rows) == 10_000
    order = np.argsort([r["row"] for r in rows])
    out_name = next(k for k in rows[0] if k != "row")
    got = np.stack([rows[i][out_name] for i in order])
    np.testing.assert_array_equal(got, am.load(saved)(x).numpy())
