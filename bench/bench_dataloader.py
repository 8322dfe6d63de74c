"""One epoch of a shuffled DataLoader over an in-memory dataset: amber.utils.data
against torch.utils.data, in the main process and with 2 worker processes.

    python bench/bench_dataloader.py [--threads N]

Prints a Markdown section for RESULTS.md: machine, load average, median seconds per
epoch of each framework (blocks alternate between the frameworks), and the ratio."""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import cpu_model, pin_threads

THREADS = pin_threads(sys.argv, 1)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import amber as am  # noqa: E402
from amber.utils import data as ad  # noqa: E402

N, SHAPE, BATCH, ROUNDS = 4096, (3, 32, 32), 64, 5


class ArrayDataset:
    """A map-style dataset of (image, label) NumPy pairs: the common case, where the
    collate function turns NumPy samples into tensors."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.x[i], int(self.y[i])


def epoch(make_loader, workers: int) -> float:
    loader = make_loader(workers)
    t = time.perf_counter()
    n = 0
    for _xb, yb in loader:
        n += len(yb)
    assert n == N
    return time.perf_counter() - t


def main() -> None:
    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    ds = ArrayDataset(rng.standard_normal((N, *SHAPE)).astype(np.float32),
                      rng.integers(0, 10, N))
    makers = {
        "amber": lambda w: ad.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=w),
        "torch": lambda w: torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True,
                                                       num_workers=w),
    }
    load = os.getloadavg()
    print("## DataLoader epoch: amber.utils.data vs torch.utils.data (bench_dataloader.py)\n")
    print(f"{cpu_model()}, {os.cpu_count()} cores; `python bench/bench_dataloader.py "
          f"--threads {THREADS}`; {N} samples of {SHAPE} float32 + int label, batch "
          f"{BATCH}, shuffle; load average before {load[0]:.1f}; amber {am.__version__}, "
          f"torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| workers | amber median s/epoch | torch median s/epoch | amber / torch |")
    print("|---|---|---|---|")
    for workers in (0, 2):
        times: dict[str, list[float]] = {"amber": [], "torch": []}
        for _ in range(ROUNDS):  # alternate blocks between the frameworks
            for name, make in makers.items():
                times[name].append(epoch(make, workers))
        a, t = float(np.median(times["amber"])), float(np.median(times["torch"]))
        print(f"| {workers} | {a:.3f} | {t:.3f} | {a / t:.2f} |")
    print(f"\nload average after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
