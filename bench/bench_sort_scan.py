"""sort, topk and cumsum: amber eager, amber's native runtime on the exported program, and
PyTorch, on the same float32 inputs, one thread.

Eager amber finds the sort order with NumPy's stable argsort; an exported program holds
the bitonic sorting network (O(n log^2 n) compare-exchanges) and a doubling scan for
cumsum (O(n log n)), so the native column shows what these compositions cost in a file.

    .venv/bin/python bench/bench_sort_scan.py [--budget 0.3] [--rounds 3]

Prints a Markdown table: median wall and CPU time per call over ``rounds`` blocks that
alternate the frameworks, and the ratio to PyTorch."""

from __future__ import annotations

import os
import sys
import tempfile

from _common import cpu_model, pin_threads, sample

pin_threads(sys.argv, 1)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import amber as am  # noqa: E402


def _arg(name: str, default: float) -> float:
    for i, a in enumerate(sys.argv):
        if a == name and i + 1 < len(sys.argv):
            return float(sys.argv[i + 1])
    return default


OPS = {
    "sort": (lambda x: am.sort(x, -1), lambda x: torch.sort(x, -1)),
    "topk(10)": (lambda x: am.topk(x, 10), lambda x: torch.topk(x, 10)),
    "cumsum": (lambda x: am.cumsum(x, -1), lambda x: torch.cumsum(x, -1)),
}
SHAPES = [(64, 128), (8, 4096), (1, 32768)]


def main() -> None:
    budget, rounds = _arg("--budget", 0.3), int(_arg("--rounds", 3))
    torch.set_num_threads(1)
    print(f"machine: {cpu_model()}, load average {os.getloadavg()}, torch "
          f"{torch.__version__}, 1 thread")
    print("| op | shape | amber eager ms (wall / CPU) | amber native ms (wall / CPU) | "
          "torch ms (wall / CPU) | eager / torch (CPU) | native / torch (CPU) |")
    print("|---|---|---|---|---|---|---|")
    tmp = tempfile.mkdtemp()
    for name, (fa, ft) in OPS.items():
        for shape in SHAPES:
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            path = os.path.join(tmp, "m.amber")
            am.export(fa, am.spec(*shape)).save(path)
            model = am.load(path, backend="native")
            xa, xt = am.tensor(x), torch.from_numpy(x)
            runs: dict[str, list[tuple[float, float]]] = {"e": [], "n": [], "t": []}
            for _ in range(rounds):  # alternate the frameworks in blocks
                runs["e"].append(sample(lambda f=fa, a=xa: f(a), budget, 0.05))
                runs["n"].append(sample(lambda m=model, a=x: m(a), budget, 0.05))
                runs["t"].append(sample(lambda f=ft, a=xt: f(a), budget, 0.05))
            med = {k: (float(np.median([w for w, _ in v])) * 1e3,
                       float(np.median([c for _, c in v])) * 1e3) for k, v in runs.items()}
            print(f"| {name} | {shape} | {med['e'][0]:.3f} / {med['e'][1]:.3f} | "
                  f"{med['n'][0]:.3f} / {med['n'][1]:.3f} | {med['t'][0]:.3f} / "
                  f"{med['t'][1]:.3f} | {med['e'][1] / med['t'][1]:.1f}x | "
                  f"{med['n'][1] / med['t'][1]:.1f}x |")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
