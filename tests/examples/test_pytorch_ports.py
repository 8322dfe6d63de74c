"""The PyTorch programs in examples/pytorch run under PyTorch and, with only their import
lines rewritten to amber (``import torch`` -> ``import amber as torch``, ``torch.nn`` ->
``amber.nn``, ``torch.utils.data`` -> ``amber.utils.data``, ...), under amber, and amber
reaches PyTorch's result: an accuracy at most ``ACC_MARGIN`` lower, or a loss at most
``LOSS_FACTOR`` times higher. The two runs draw different random initial weights, so the
results are compared with a margin rather than exactly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "pytorch"
ACC_MARGIN = 0.05
LOSS_FACTOR = 1.5

pytestmark = pytest.mark.torch

_IMPORT = re.compile(r"^(\s*)(import|from)\s+torch\b(.*)$")


def to_amber(source: str) -> str:
    """Rewrite only the import lines of a PyTorch program to import amber instead."""
    out = []
    for line in source.splitlines():
        m = _IMPORT.match(line)
        if m is None:
            out.append(line)
            continue
        indent, kind, rest = m.groups()
        if kind == "import" and rest.strip() == "":
            out.append(f"{indent}import amber as torch")
        else:
            out.append(f"{indent}{kind} amber{rest}")
    return "\n".join(out) + "\n"


def test_import_rewrite_touches_only_imports():
    src = ("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
           "from torch.utils.data import DataLoader\nfrom torch import nn\n"
           "from torch.optim.lr_scheduler import StepLR\nx = torch.zeros(3)  # import torch\n")
    assert to_amber(src) == (
        "import amber as torch\nimport amber.nn as nn\nimport amber.nn.functional as F\n"
        "from amber.utils.data import DataLoader\nfrom amber import nn\n"
        "from amber.optim.lr_scheduler import StepLR\nx = torch.zeros(3)  # import torch\n")


def _run(workdir: Path, name: str, source: str) -> float:
    """Run ``source`` as ``examples/pytorch/<name>.py`` would run (next to a ``data``
    folder) inside ``workdir``; return the final accuracy or loss it prints."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    (workdir / "pytorch").mkdir(exist_ok=True)
    if not (workdir / "data").exists():
        (workdir / "data").symlink_to(EXAMPLES.parent / "data", target_is_directory=True)
    script = workdir / "pytorch" / f"{name}.py"
    script.write_text(source)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=script.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = re.search(r"^final (accuracy|loss) ([0-9.]+)$", proc.stdout, re.MULTILINE)
    assert m, proc.stdout[-2000:]
    return float(m.group(2))


PROGRAMS = ["cnn_digits", "lstm_classifier", "causal_transformer", "lstm_tagger",
            "conv_autoencoder"]


@pytest.mark.slow
@pytest.mark.parametrize("name", PROGRAMS)
def test_program_reaches_torch_result_under_amber(name, tmp_path):
    path = EXAMPLES / f"{name}.py"
    source = path.read_text()
    got = _run(tmp_path, name, to_amber(source))  # first: a missing amber API fails fast
    want = _run(tmp_path, name, source)
    if "final accuracy" in source:
        assert got >= want - ACC_MARGIN, f"{name}: amber accuracy {got}, torch {want}"
    else:
        assert got <= want * LOSS_FACTOR, f"{name}: amber loss {got}, torch {want}"
