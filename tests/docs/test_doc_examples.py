"""Every example in README.md and docs/*.md runs as written (docs/contributing.md).

Each document's blocks run in order in an empty folder, sharing one namespace, as a
reader would run them: ```python blocks are executed (a block of ``>>>`` lines is a
doctest, so the outputs it shows are checked), ```bash blocks run in ``bash -e`` with
this environment's ``amber`` on the PATH, complete ```c programs are written to the file
their fence names and compiled with strict warnings against the installed libamber,
```json blocks must parse, and a block fenced ``output`` (```text output) right after a
```bash block must match what it printed (``...`` matches anything). Blocks fenced
``fragment`` are skipped."""

from __future__ import annotations

import dataclasses
import doctest
import importlib.util
import json
import linecache
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import amber as am

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGS = {"python", "bash", "c", "json", "text", "yaml", ""}  # yaml: shown, not run
FLAGS = re.compile(r"fragment|output|file=[\w.-]+")
# documents whose examples need an optional extra: the modules they import
NEEDS = {"onnx.md": ("onnx", "onnxruntime"), "serving.md": ("kserve", "tritonclient.http"),
         "distributed.md": ("dask",)}
_OPEN = re.compile(r"^(\s*)(`{3,})(.*)$")


@dataclasses.dataclass
class Block:
    doc: str
    line: int  # of the opening fence, from 1
    lang: str
    flags: list[str]
    text: str

    @property
    def fragment(self) -> bool:
        return "fragment" in self.flags

    @property
    def output(self) -> bool:
        return "output" in self.flags

    @property
    def file(self) -> str | None:
        return next((f[5:] for f in self.flags if f.startswith("file=")), None)

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file (an indented fence belongs to a list
    item; its indentation is removed from the block's lines)."""
    out: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3).split()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.fullmatch(rf"\s*{fence}`*\s*", lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.name}:{i + 1}: code fence {fence} is never closed")
        out.append(Block(path.name, i + 1, info[0] if info else "", info[1:],
                         "\n".join(body) + "\n"))
        i = j + 1
    return out


ALL = [b for d in DOCS for b in blocks(d)]


@pytest.mark.parametrize("block", ALL, ids=lambda b: b.where)
def test_fence_follows_the_convention(block: Block) -> None:
    assert block.lang in LANGS | {"markdown"}, (
        f"{block.where}: fence language {block.lang!r}; use one of {sorted(LANGS)} "
        f"(docs/contributing.md)")
    bad = [f for f in block.flags if not FLAGS.fullmatch(f)]
    assert not bad, f"{block.where}: unknown fence words {bad}"
    if block.output:
        assert block.lang == "text", f"{block.where}: an output block is ```text output"
    if block.lang == "c" and not block.fragment:
        assert re.search(r"\bint\s+main\s*\(", block.text), (
            f"{block.where}: a ```c block without main() must be fenced ```c fragment")
        assert block.file, f"{block.where}: a complete C program names its file (```c file=x.c)"
        later = [b for b in ALL if b.doc == block.doc and b.line > block.line
                 and b.lang == "bash" and not b.fragment and block.file in b.text]
        assert later, (f"{block.where}: no later ```bash block of {block.doc} builds and "
                       f"runs {block.file}")


def test_fences_are_parsed_as_written(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("text\n````markdown\n```python fragment\nx\n```\n````\n\n- item\n\n"
                   "  ```bash\n  echo hi\n  ```\n```python\nopen\n")
    with pytest.raises(AssertionError, match=r"x\.md:13: code fence ``` is never closed"):
        blocks(doc)
    doc.write_text(doc.read_text() + "```\n")
    got = [(b.line, b.lang, b.flags, b.text) for b in blocks(doc)]
    assert got == [(2, "markdown", [], "```python fragment\nx\n```\n"),
                   (10, "bash", [], "echo hi\n"), (13, "python", [], "open\n")]


@pytest.fixture
def clean_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder; process-wide settings a document may change are
    restored afterwards."""
    monkeypatch.chdir(tmp_path)
    venv_bin = str(Path(sys.executable).parent)
    monkeypatch.setenv("PATH", venv_bin + os.pathsep + os.environ.get("PATH", ""))
    limits = dataclasses.asdict(am.control.get_limits())
    yield tmp_path
    am.control.set_limits(**limits)


def _run_python(block: Block, globs: dict[str, Any]) -> None:
    if block.text.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(block.text, globs, block.where,
                                                   block.doc, block.line)
        runner = doctest.DocTestRunner(
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        report: list[str] = []
        runner.run(test, out=report.append, clear_globs=False)
        assert runner.failures == 0, "".join(report)
        globs.update(test.globs)
    else:
        # as a notebook does: the block's source is readable (inspect, tracebacks, and
        # capture's conversion of plain Python control flow need it)
        linecache.cache[block.where] = (len(block.text), None,
                                        block.text.splitlines(True), block.where)
        exec(compile(block.text, block.where, "exec"), globs)


def _run_bash(block: Block, cwd: Path) -> str:
    res = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.text], cwd=cwd,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, (f"{block.where}: exit status {res.returncode}\n"
                                 f"{block.text}\n--- stdout\n{res.stdout}\n--- stderr\n"
                                 f"{res.stderr}")
    return res.stdout


def _check_output(block: Block, stdout: str | None) -> None:
    assert stdout is not None, f"{block.where}: an output block must follow a ```bash block"
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    assert doctest.OutputChecker().check_output(block.text, stdout, flags), (
        f"{block.where}: the command printed\n{stdout}\nbut the document shows\n"
        f"{block.text}")


def _compile_c(block: Block, cwd: Path) -> None:
    from amber.cli import config_flags

    assert block.file is not None
    (cwd / block.file).write_text(block.text)
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    assert cc, "no C compiler"
    cmd = [cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic",
           *config_flags(True, False), block.file, *config_flags(False, True),
           "-o", Path(block.file).stem + "-strict"]
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert res.returncode == 0, f"{block.where}: {' '.join(cmd)}\n{res.stderr}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_document_examples_run(doc: Path, clean_state: Path) -> None:
    for mod in NEEDS.get(doc.name, ()):
        # NOTE: looked up, not imported: kserve's protobufs clash with tritonclient.grpc's
        # in one process (tests/serve imports the latter)
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{doc.name} needs the optional {mod!r} extra")
    globs: dict[str, Any] = {"__name__": "__main__"}
    stdout: str | None = None  # of the last ```bash block, for an output block after it
    for block in blocks(doc):
        if block.fragment:
            continue
        if block.output:
            _check_output(block, stdout)
        if block.lang == "python":
            _run_python(block, globs)
        elif block.lang == "bash":
            stdout = _run_bash(block, clean_state)
            continue
        elif block.lang == "c":
            _compile_c(block, clean_state)
        elif block.lang == "json" and not block.output:
            try:
                json.loads(block.text)
            except ValueError as e:
                pytest.fail(f"{block.where}: not valid JSON ({e}); fence it ```json "
                            f"fragment if it is a pattern")
        stdout = None


def test_amber_run_exit_statuses_are_the_documented_ones(tmp_path: Path) -> None:
    from amber.native import native_dir

    text = (ROOT / "docs" / "c-api.md").read_text()
    assert re.search(r"exit status is 0 on\s+success, 1 on\s+any\s+failure .*?, 64 on a\s+usage"
                     r"\s+error", text, re.S)
    d = native_dir()
    if d is None:
        pytest.skip("no native runtime installed")
    tool = str(d / "bin" / "amber-run")
    golden = str(ROOT / "tests" / "golden" / "v1" / "mlp.amber")

    def status(*args: str) -> int:
        return subprocess.run([tool, *args], capture_output=True, timeout=60).returncode

    assert status(golden, "--verify") == 0
    assert status(str(tmp_path / "missing.amber"), "--verify") == 1
    assert status("--bogus") == 64
