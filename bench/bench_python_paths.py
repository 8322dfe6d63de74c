"""Python execution paths of loaded programs, one build of amber against another.

Times what runs a loaded program in Python, node by node: the reference backend
(``am.load(path, backend="reference")``) on an MLP and on ``nn.LSTM`` (its loop a
``scan`` node) and on a ``while_loop``; a gradient through a loaded MLP and LSTM (each node
bound through the op registry); ``Model.verify()`` of golden files (their test vectors
in the reference interpreter); and the IR verifier (``Program.verify()``) on them.

Two builds are compared: the source trees given by ``--base`` and ``--new`` (each a
directory holding ``amber/``, imported ahead of any installed amber; both use the
installed native runtime, libamber and its compiled eager-call helper). The models are
exported once, by the parent process, into a temporary folder that both read.
``--repeats`` blocks, each running one process per build in a rotating order; each
process times every case for about ``--budget`` seconds after one untimed call. Figures
are medians over blocks of the wall and process CPU time per call.

Usage (from the repository root)::

    git worktree add --detach /tmp/base <commit>
    python bench/bench_python_paths.py --base /tmp/base/src --new src
    python bench/bench_python_paths.py --base /tmp/base/src --new src --append bench/RESULTS.md
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import cpu_model, emit, pin_threads, sample

_THREADS = pin_threads(sys.argv[1:], default=1)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDENS = ("v2/control.amber", "v3/while_grad.amber", "v5/decoder_greedy.amber")


def export_models(folder: str) -> None:
    """Write mlp.amber, lstm.amber and loop.amber into ``folder``."""
    import numpy as np

    import amber as am
    from amber import nn

    am.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                        nn.Linear(128, 10))
    am.export(mlp, am.spec("b", 64), sizes={"b": (1, 8)}).save(os.path.join(folder, "mlp.amber"))
    lstm = nn.LSTM(16, 32)
    am.export(lstm, am.spec("t", "b", 16), sizes={"t": (3, 7), "b": (1, 4)}).save(
        os.path.join(folder, "lstm.amber"))

    def loop(x: Any, n: Any) -> Any:
        _, v = am.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, (c[1] * 0.9).tanh()),
                             (am.tensor(np.int64(0)), x))
        return v

    am.export(loop, am.spec(8), am.tensor(np.int64(3))).save(os.path.join(folder, "loop.amber"))


def cases(folder: str) -> dict[str, Callable[[], Any]]:
    """The timed calls, by name."""
    import numpy as np

    import amber as am

    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64)).astype(np.float32)
    seq = rng.standard_normal((20, 4, 16)).astype(np.float32)
    ref = {n: am.load(os.path.join(folder, f"{n}.amber"), backend="reference")
           for n in ("mlp", "lstm", "loop")}
    goldens = [am.load(os.path.join(ROOT, "tests", "golden", g), backend="reference")
               for g in GOLDENS]

    def grad(model: Any, a: np.ndarray) -> Callable[[], Any]:
        def run() -> None:
            t = am.tensor(a, requires_grad=True)
            out = model(t)
            out = out[0] if isinstance(out, tuple) else out
            out.sum().backward()
        return run

    return {
        "reference mlp": lambda: ref["mlp"](x),
        "reference lstm (scan, t=20)": lambda: ref["lstm"](seq),
        "reference while (30 iterations)": lambda: ref["loop"].run(
            "forward", np.ones(8, np.float32), np.int64(30)),
        "gradient mlp": grad(ref["mlp"], x),
        "gradient lstm (scan, t=20)": grad(ref["lstm"], seq),
        "Model.verify() of 3 goldens": lambda: [m.verify() for m in goldens],
        "Program.verify() of 3 goldens": lambda: [m.program.verify() for m in goldens],
    }


def use_build(src: str, native: str) -> None:
    """Import amber from source tree ``src`` with the native runtime in ``native`` (the
    installed ``amber/_native``: libamber and the compiled eager-call helper)."""
    # NOTE: an editable install redirects ``import amber`` ahead of sys.path; drop it
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
    sys.path.insert(0, src)
    import amber

    if os.path.dirname(os.path.abspath(amber.__file__)) != os.path.join(src, "amber"):
        raise SystemExit(f"imported amber from {amber.__file__}, not {src}")
    amber.__path__.append(os.path.dirname(native))  # where native_dir() looks
    from amber.native import native_dir
    from amber.ops import ckernels

    lib = ckernels._load()
    if str(native_dir()) != native or lib is None or lib.fast is None:
        raise SystemExit(f"{src}: the native runtime in {native} is not used")


def worker(src: str, native: str, folder: str, budget: float, pause: float) -> None:
    """Time every case on the build in ``src``; print {case: [wall, cpu]} as JSON."""
    use_build(src, native)
    out = {name: sample(fn, budget, pause) for name, fn in cases(folder).items()}
    print(json.dumps(out))


def run_block(build: str, folder: str, args: argparse.Namespace) -> dict[str, list[float]]:
    from amber.native import native_dir

    cmd = [sys.executable, os.path.abspath(__file__), "--worker", folder,
           "--src", os.path.abspath(build), "--native", str(native_dir()),
           "--budget", str(args.budget), "--pause", str(args.pause),
           "--threads", str(_THREADS)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", help="source tree of the old build (holds amber/)")
    ap.add_argument("--new", default=os.path.join(ROOT, "src"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.5)
    ap.add_argument("--pause", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--native", help=argparse.SUPPRESS)
    ap.add_argument("--append", help="append the Markdown section to this file")
    args = ap.parse_args()
    if args.worker:
        return worker(args.src, args.native, args.worker, args.budget, args.pause)
    if not args.base:
        ap.error("--base is required")
    load0 = os.getloadavg()
    builds = {"old": args.base, "new": args.new}
    got: dict[str, list[dict[str, list[float]]]] = {b: [] for b in builds}
    with tempfile.TemporaryDirectory() as folder:
        export_models(folder)
        for r in range(args.repeats):
            order = list(builds) if r % 2 == 0 else list(builds)[::-1]
            for b in order:
                got[b].append(run_block(builds[b], folder, args))
    load1 = os.getloadavg()
    emit(report(got, args, load0, load1), args.append)


def report(got: dict[str, list[dict[str, list[float]]]], args: argparse.Namespace,
           load0: tuple[float, ...], load1: tuple[float, ...]) -> str:
    def med(b: str, case: str, k: int) -> float:
        return statistics.median(block[case][k] for block in got[b]) * 1e3

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## Python node walker: before/after, {_THREADS} thread(s) ({now})", "",
        f"Command: `python bench/bench_python_paths.py --base <old>/src --new src "
        f"--repeats {args.repeats} --budget {args.budget} --threads {_THREADS}`", "",
        f"- machine: nproc={os.cpu_count()}, CPU: {cpu_model()}",
        f"- load average at start {' '.join(f'{x:.2f}' for x in load0)}, at end "
        f"{' '.join(f'{x:.2f}' for x in load1)}",
        f"- medians of {args.repeats} alternating blocks of ~{args.budget} s per case; "
        f"each block in its own process", "",
        "| case | old ms (CPU) | new ms (CPU) | new/old (CPU) | old ms (wall) | "
        "new ms (wall) | new/old (wall) |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in got["old"][0]:
        oc, nc, ow, nw = (med("old", case, 1), med("new", case, 1), med("old", case, 0),
                          med("new", case, 0))
        lines.append(f"| {case} | {oc:.3f} | {nc:.3f} | {nc / oc:.2f}x | {ow:.3f} | "
                     f"{nw:.3f} | {nw / ow:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
