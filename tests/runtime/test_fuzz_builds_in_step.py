"""The two ways to run the loader fuzzer -- ``make -C runtime/fuzz run`` and the CMake
``fuzz`` target (``-DAMBER_FUZZ=ON``) -- pass libFuzzer the same dictionary, flags and
seed sources (a static check of both build files; building them is
``test_fuzz_harness.py``'s job)."""

from __future__ import annotations

import re

from helpers.cbuild import ROOT

RUNTIME = ROOT / "runtime"
MAKEFILE = (RUNTIME / "fuzz" / "Makefile").read_text()
CMAKE = (RUNTIME / "CMakeLists.txt").read_text()


def _cmake_fuzz_target() -> str:
    m = re.search(r"add_custom_target\(fuzz\b(.*?)USES_TERMINAL\)", CMAKE, re.S)
    assert m, "runtime/CMakeLists.txt has no fuzz target"
    return m.group(1)


def _flags(text: str) -> dict[str, str]:
    return dict(re.findall(r"(?<![\w-])-(\w+)=(\S+)", text))


def test_both_pass_the_dictionary_and_the_same_flags() -> None:
    make_args = re.search(r"^RUNARGS\s*:=(.*?)(?:\n\n)", MAKEFILE, re.S | re.M)
    assert make_args
    make = _flags(make_args.group(1).replace("\\\n", " "))
    cmake = _flags(_cmake_fuzz_target())
    assert make["dict"] == "$(HERE)/amber.dict"
    assert cmake["dict"] == "${CMAKE_CURRENT_SOURCE_DIR}/fuzz/amber.dict"
    assert (RUNTIME / "fuzz" / "amber.dict").is_file()
    assert make["rss_limit_mb"] == cmake["rss_limit_mb"]
    # the configurable ones default to the same values
    assert make["timeout"] == "$(TIMEOUT)" and cmake["timeout"] == "${AMBER_FUZZ_TIMEOUT}"
    assert re.search(r"^TIMEOUT\s*\?=\s*30$", MAKEFILE, re.M)
    assert re.search(r'set\(AMBER_FUZZ_TIMEOUT 30 CACHE', CMAKE)
    assert make["max_len"] == "$(MAX_LEN)" and cmake["max_len"] == "${AMBER_FUZZ_MAX_LEN}"
    assert re.search(r"^MAX_LEN\s*\?=\s*65536$", MAKEFILE, re.M)
    assert re.search(r'set\(AMBER_FUZZ_MAX_LEN 65536 CACHE', CMAKE)
    assert make["max_total_time"] == "$(SECONDS)"
    assert cmake["max_total_time"] == "${AMBER_FUZZ_SECONDS}"
    assert make["print_final_stats"] == cmake["print_final_stats"] == "1"
    assert set(make) - {"dict"} == set(cmake) - {"dict", "artifact_prefix"}


def test_both_seed_from_the_same_files() -> None:
    make_seeds = re.search(r"^SEEDS\s*:=(.*?)\n(?=\S)", MAKEFILE, re.S | re.M)
    cmake_seeds = re.search(r"file\(GLOB FUZZ_SEEDS CONFIGURE_DEPENDS(.*?)\)", CMAKE, re.S)
    assert make_seeds and cmake_seeds

    def norm(globs: list[str]) -> set[str]:
        out = set()
        for g in globs:
            g = g.replace("$(ROOT)/", "").replace("$(HERE)/", "runtime/fuzz/")
            g = g.replace("${FUZZ_TESTS}/", "tests/")
            g = g.replace("${CMAKE_CURRENT_SOURCE_DIR}/", "runtime/")
            out.add(g)
        return out

    make = norm(re.findall(r"\$\(wildcard (\S+)\)", make_seeds.group(1)))
    cmake = norm(cmake_seeds.group(1).split())
    assert make == cmake == {"tests/golden/v*/*.amber", "tests/format/golden/*.amber",
                             "tests/format/corpus/*.amber", "runtime/fuzz/regressions/*.amber"}
