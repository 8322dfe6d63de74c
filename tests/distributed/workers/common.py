"""Shared by the MPI worker scripts: the model, the data and the training loop."""

from __future__ import annotations

import json
import sys

import numpy as np

import amber as am
import amber.nn as nn
import amber.nn.functional as F


def model(kind: str, dtype: str) -> nn.Module:
    am.manual_seed(0)
    if kind == "mlp":
        m: nn.Module = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    elif kind == "bn":
        m = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    elif kind == "syncbn":
        m = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(
            nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3)))
    elif kind == "dropout":
        m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    else:
        raise ValueError(kind)
    return m.double() if dtype == "float64" else m


def data(dtype: str, n: int = 32, steps: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    return [(rng.normal(size=(n, 6)).astype(dtype), rng.integers(0, 3, n))
            for _ in range(steps)]


def step(m: nn.Module, opt: am.optim.Optimizer, x: np.ndarray, y: np.ndarray) -> float:
    loss = F.cross_entropy(m(am.tensor(x)), am.tensor(y))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach().numpy())


def emit(obj: dict) -> None:
    sys.stdout.write("RESULT " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def weights(m: nn.Module) -> dict[str, list]:
    return {k: v.numpy().tolist() for k, v in m.state_dict().items()}
