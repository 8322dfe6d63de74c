"""No function over 100 lines (docs/architecture.md): none in ``src/amber``, none in
``runtime/src``."""

from __future__ import annotations

from .lengths import C_SRC, C_SUFFIXES, c_functions, c_functions_of, python_functions

MAX_LINES = 100


def test_no_python_function_is_over_100_lines() -> None:
    long = [f"{key} ({n} lines)" for key, n in python_functions() if n > MAX_LINES]
    assert not long, ("split these functions (at most 100 lines each):\n  "
                      + "\n  ".join(long))


def test_no_c_function_is_over_100_lines() -> None:
    long = [f"{key} ({n} lines)" for key, n in c_functions() if n > MAX_LINES]
    assert not long, ("split these functions (at most 100 lines each):\n  "
                      + "\n  ".join(long))


def test_every_c_function_is_counted() -> None:
    """Each body ends at a ``}`` alone at column 0, and each such line ends a function
    the scan found: a definition laid out otherwise would escape the count."""
    for path in sorted(C_SRC.iterdir()):
        if path.suffix in C_SUFFIXES:
            text = path.read_text()
            found = list(c_functions_of(text))
            assert len(found) == text.split("\n").count("}"), path


def test_the_c_scan_reads_each_layout() -> None:
    text = "\n".join([
        "static const am_json *get(loader *L,",
        "                          const char *key) {",
        "    return NULL;",
        "}",
        "static inline int one(int x) { return x; }",
        "int prototype(int x);",
        "static const char *const NAMES[] = {",
        '    "a", "b",',
        "};",
        "int main(void)",
        "{",
        "    return 0;",
        "}",
    ])
    assert list(c_functions_of(text)) == [("get", 1, 4), ("main", 10, 4)]


def test_the_c_scan_reads_past_attributes() -> None:
    text = "\n".join([
        '__attribute__((target("avx512f"))) static void wide(int x) {',
        "    (void)x;",
        "}",
        "static KATTR __attribute__((always_inline)) inline void inlined(",
        "    int x) {",
        "    (void)x;",
        "}",
    ])
    assert list(c_functions_of(text)) == [("wide", 1, 3), ("inlined", 4, 4)]
