"""The libFuzzer harnesses in runtime/fuzz build with clang and run briefly on their seed
corpora (golden files, hostile-file corpus, their JSON headers) without a finding.
Skipped when clang or its libFuzzer runtime is missing; long runs: docs/security.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.cbuild import ROOT

FUZZ = ROOT / "runtime" / "fuzz"
pytestmark = pytest.mark.sanitize


@pytest.fixture(scope="module")
def fuzz_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for tool in ("clang", "make", "python3"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (the fuzz harness needs clang with libFuzzer)")
    probe = tmp_path_factory.mktemp("probe")
    src = probe / "probe.c"
    src.write_text("#include <stddef.h>\n#include <stdint.h>\n"
                   "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\n"
                   "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)"
                   " { (void)d; (void)n; return 0; }\n")
    res = subprocess.run(["clang", "-fsanitize=fuzzer,address,undefined", str(src), "-o",
                          str(probe / "probe")], capture_output=True, text=True)
    if res.returncode != 0:
        last = res.stderr.strip().splitlines()[-1:] or [""]
        pytest.skip(f"clang cannot link -fsanitize=fuzzer (install libclang-rt-dev): {last[0]}")
    build = tmp_path_factory.mktemp("fuzz")
    res = subprocess.run(["make", "-C", str(FUZZ), f"BUILD={build}", "all", "seeds"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return build


@pytest.mark.parametrize(("target", "runs"), [("run", 3000), ("run-json", 20000)])
def test_harness_runs_clean(fuzz_build: Path, target: str, runs: int) -> None:
    res = subprocess.run(["make", "-C", str(FUZZ), f"BUILD={fuzz_build}", target, "SECONDS=60",
                          f"FUZZ_FLAGS=-runs={runs} -seed=1"],
                         capture_output=True, text=True, timeout=600)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-5000:]
    assert re.search(rf"Done {runs} runs", log), log[-2000:]
    assert "ERROR:" not in log, log[-5000:]
    assert not list((fuzz_build / "artifacts").glob("*")), "the harness saved a finding"


def test_dictionary_parses() -> None:
    """Every entry of the dictionary is a quoted libFuzzer token (or a comment)."""
    entry = re.compile(r'^\w+="(?:[^"\\]|\\\\|\\"|\\x[0-9a-fA-F]{2})*"$')
    lines = (FUZZ / "amber.dict").read_text().splitlines()
    bad = [ln for ln in lines if ln and not ln.startswith("#") and not entry.match(ln)]
    assert not bad
    assert any("\\x89AMB" in ln for ln in lines)
