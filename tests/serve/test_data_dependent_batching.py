"""An entry point whose output size the data decide is never batched or padded with
other rows by ``amber serve``: a loop that runs until every row is done couples the
rows, so each request runs on its own rows only."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "v5" / "decoder_greedy.amber"

# NOTE: kserve runs in a process of its own (its protobuf clashes with tritonclient's)
SCRIPT = f"""
import concurrent.futures
import amber as am
from amber.serve.model import AmberEntryModel
pool = concurrent.futures.ThreadPoolExecutor(1)
program = am.load({str(GOLDEN)!r})
for entry in ("forward", "halvings"):
    m = AmberEntryModel(entry, program, entry, pool, "1", {{"max_batch": 8}})
    print(entry, m.rows_first, m.batcher is None)
"""


def test_data_dependent_outputs_are_not_batched() -> None:
    if importlib.util.find_spec("kserve") is None:
        pytest.skip("needs kserve (extra 'serve')")
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[:2] == ["forward False True", "halvings False True"]
