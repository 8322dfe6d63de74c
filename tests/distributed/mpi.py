"""Runs worker scripts under ``mpiexec`` (the launcher next to the test's Python, from the
``mpich`` wheel) and collects what each rank printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKERS = Path(__file__).parent / "workers"


def mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("mpiexec not found: install the 'distributed' extra (mpi4py, mpich)")
    return found


def launch(script: str, *args: str, n: int = 2, timeout: float = 120
           ) -> tuple[subprocess.CompletedProcess[str], float]:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(WORKERS), env.get("PYTHONPATH", "")])
    start = time.monotonic()
    proc = subprocess.run([mpiexec(), "-n", str(n), sys.executable, str(WORKERS / script),
                           *args], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - start


def results(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    if proc.returncode != 0:
        raise AssertionError(f"mpiexec failed ({proc.returncode}):\n{proc.stdout}\n"
                             f"{proc.stderr}")
    out = [json.loads(line[len("RESULT "):]) for line in proc.stdout.splitlines()
           if line.startswith("RESULT ")]
    return sorted(out, key=lambda r: r["rank"])
