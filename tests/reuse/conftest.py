"""Fixtures for tests/reuse: a small backbone and head, exported to separate files."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

import amber as am


@dataclass
class Parts:
    """Eager modules and the files they were exported to."""

    backbone: am.nn.Module
    head: am.nn.Module
    backbone_path: str
    head_path: str
    dir: str


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Parts:
    am.manual_seed(7)
    backbone = am.nn.Sequential(am.nn.Flatten(), am.nn.Linear(3 * 4 * 4, 16), am.nn.ReLU(),
                                am.nn.Linear(16, 8), am.nn.Tanh())
    head = am.nn.Sequential(am.nn.Linear(8, 5))
    backbone.eval()
    head.eval()
    d = tmp_path_factory.mktemp("reuse")
    bp, hp = os.path.join(d, "backbone.amber"), os.path.join(d, "head.amber")
    am.export(backbone, am.spec("batch", 3, 4, 4)).save(bp)
    am.export(head, am.spec("batch", 8)).save(hp)
    return Parts(backbone, head, bp, hp, str(d))
