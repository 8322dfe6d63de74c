"""One core's peak multiply-add rate, the yardstick for the GFLOP/s figures of the other
benchmarks (a target in GFLOP/s means something only against the machine's peak).

Builds ``bench/fma_peak.c`` with the system's C compiler and runs it: independent chains
of fused multiply-adds on AVX-512 and AVX2 vectors, timed in process CPU time. With
``--model-gflops`` it also states a measured model rate as a fraction of the peak.

    python bench/bench_fma_peak.py [--runs 5] [--model-gflops NAME=RATE ...] [--append F]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, emit, shown_command

HERE = Path(__file__).resolve().parent


def cpu_family() -> str:
    """'family F model M' from /proc/cpuinfo ('' elsewhere)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("cpu family", "model") and key.strip() not in fields:
                    fields[key.strip()] = value.strip()
    except OSError:
        return ""
    return f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"


def build(workdir: str) -> str:
    """The peak program, compiled into workdir."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise SystemExit("no C compiler found (set CC)")
    exe = os.path.join(workdir, "fma_peak")
    subprocess.run([cc, "-O2", "-o", exe, str(HERE / "fma_peak.c")], check=True)
    return exe


def measure(exe: str, runs: int) -> dict[str, list[float]]:
    """GFLOP/s per instruction set, one value per run."""
    rates: dict[str, list[float]] = {}
    for _ in range(runs):
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            isa, rate = line.split()
            rates.setdefault(isa, []).append(float(rate))
    return rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--model-gflops", nargs="*", default=[], metavar="NAME=RATE",
                   help="measured rates (GFLOP/s, one core; NAME without spaces) to state "
                   "against the peak")
    p.add_argument("--append", help="append the Markdown section here")
    args = p.parse_args(argv)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        rates = measure(build(tmp), args.runs)
    load1 = os.getloadavg()
    peak = max(statistics.median(v) for v in rates.values())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = shown_command("bench_fma_peak.py", sys.argv[1:])
    lines = [f"## One core's multiply-add peak ({when})", "", f"Command: `{command}`", "",
             f"- machine: nproc={os.cpu_count()}, CPU: {cpu_model()} ({cpu_family()})",
             f"- load average at start {load0[0]:.2f}, at end {load1[0]:.2f}",
             f"- medians of {args.runs} runs, process CPU time", "",
             "| vectors | GFLOP/s (median) | runs |", "|---|---:|---|"]
    for isa, v in rates.items():
        lines.append(f"| {isa} | {statistics.median(v):.1f} | "
                     + ", ".join(f"{x:.1f}" for x in v) + " |")
    if args.model_gflops:
        lines += ["", "| measured | GFLOP/s | of the peak |", "|---|---:|---:|"]
        for item in args.model_gflops:
            name, _, rate = item.rpartition("=")
            lines.append(f"| {name} | {float(rate):.1f} | {float(rate) / peak:.0%} |")
    emit("\n".join(lines) + "\n", args.append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
