"""Starts ``amber serve`` as a real server process on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

import amber as am
import amber.nn as nn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[str]
    http: str  # host:port
    grpc: str
    log: str

    def url(self, path: str) -> str:
        return f"http://{self.http}{path}"

    def alive(self) -> bool:
        return self.proc.poll() is None


@contextlib.contextmanager
def running(*args: str, log_dir: str) -> Iterator[Server]:
    http, grpc = free_port(), free_port()
    log = os.path.join(log_dir, f"serve-{http}.log")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "amber.cli", "serve", *args, "--host", "127.0.0.1",
             "--port", str(http), "--grpc-port", str(grpc), "--log-level", "INFO"],
            stdout=out, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    server = Server(proc, f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"amber serve exited {proc.returncode}:\n"
                                     + open(log).read())
            try:
                with urllib.request.urlopen(server.url("/v2/health/ready"), timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("amber serve did not become ready:\n" + open(log).read())
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mlp(seed: int) -> nn.Module:
    am.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


class TwoEntries(nn.Module):
    """``forward`` and a second entry point ``embed``."""

    def __init__(self) -> None:
        super().__init__()
        am.manual_seed(3)
        self.body = nn.Linear(8, 4)

    def forward(self, x: am.Tensor) -> am.Tensor:
        return self.body(x).relu()

    def embed(self, x: am.Tensor) -> am.Tensor:
        return self.body(x)


def save_mlp(path: str, seed: int) -> None:
    am.export(mlp(seed), am.spec("batch", 8)).save(path)


def save_two_entries(path: str) -> None:
    m = TwoEntries()
    program = am.export(m, am.spec("batch", 8))
    program.add(m.embed, am.spec("batch", 8), name="embed")
    program.save(path)


def save_slow(path: str, iterations: int) -> None:
    """A model that takes a while: ``iterations`` matrix products in a loop."""
    w = am.tensor(np.eye(64, dtype=np.float32) * 0.5)

    def slow(x: am.Tensor) -> am.Tensor:
        return am.fori_loop(0, iterations, lambda i, h: (h @ w).tanh() + x, x)

    am.export(slow, am.spec("batch", 64), check=False).save(path)  # no eager proof: slow
