"""docs/format.md H.10: entry point, port and weight names. Every file of the name corpus
(``names/generate.py``: each rule for each kind of name, with valid digests) is accepted
or refused alike by the Python reader and the C runtime; tools never print a name's
control characters, and never write outside the directory they are given."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pytest

import amber as am
from amber import cli
from amber import native as N
from amber.errors import FormatError
from amber.format.names import display, name_problem

NAMES = Path(__file__).parent / "names"
CASES = json.loads((NAMES / "MANIFEST.json").read_text())["cases"]
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # beyond \t and \n


def _generator():
    spec = importlib.util.spec_from_file_location("amber_names_generate", NAMES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_files_match_generator() -> None:
    cases = _generator().cases()
    assert [c["file"] for c in cases] == [c["file"] for c in CASES]
    for meta, case in zip(CASES, cases):
        assert (meta["expect"], meta["reason"], meta["name"]) == (
            case["expect"], case["reason"], case["name"])
        assert (NAMES / meta["file"]).read_bytes() == case["data"], (
            f"{meta['file']} is stale: run python tests/format/names/generate.py")
    assert {p.name for p in NAMES.glob("*.amber")} == {c["file"] for c in CASES}
    kinds = {(c["kind"], c["expect"]) for c in CASES}
    assert kinds == {(k, e) for k in ("entry", "input", "output", "weight")
                     for e in ("ok", "error")}


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_python_reader(case: dict) -> None:
    path = NAMES / case["file"]
    if case["expect"] == "ok":
        model = am.load(path, backend="reference")
        assert all(r.ok for r in model.verify())
        return
    with pytest.raises(FormatError) as exc:
        am.load(path, backend="reference")
    assert case["reason"] in str(exc.value).lower()
    assert not RAW_CONTROL.search(str(exc.value)) and "\n" not in str(exc.value)


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_c_reader(case: dict) -> None:
    path = NAMES / case["file"]
    if case["expect"] == "ok":
        with N.NativeModel(path) as m:
            assert m.verify() == (1, 0)
        return
    with pytest.raises(N.NativeFormatError) as exc:
        N.NativeModel(path)
    assert case["reason"] in exc.value.c_message.lower()
    assert not RAW_CONTROL.search(exc.value.c_message) and "\n" not in exc.value.c_message


def test_rules_as_documented() -> None:
    for name in ("forward", "x", "größe", "a b", "...", "layer.0"):
        assert name_problem(name) is None
    assert name_problem("backbone/0.weight", segments=True) is None
    for bad in ("", ".", "..", "a/b", "a\\b", "a\x1b", "a\u0085", "n" * 4097):
        assert name_problem(bad)
    for bad in ("../x", "/x", "a//b", "a/", "a/./b"):
        assert name_problem(bad, segments=True)


def test_display_escapes_what_a_terminal_obeys() -> None:
    assert display("plain name") == "plain name"
    assert display("\x1b[2J\n\x07") == "\\x1b[2J\\x0a\\x07"
    assert display("a\u202eb\u2028") == "a\\u202eb\\u2028"
    assert display("back\\slash") == "back\\\\slash"


def _amber_run() -> Path:
    d = N.native_dir()
    assert d is not None
    return d / "bin" / "amber-run"


@pytest.mark.parametrize("case", [c for c in CASES if c["expect"] == "error"],
                         ids=lambda c: c["file"])
def test_tools_print_no_control_characters(case: dict) -> None:
    path = str(NAMES / case["file"])
    for cmd in ([str(_amber_run()), path], [str(_amber_run()), "--verify", path]):
        res = subprocess.run(cmd, capture_output=True)
        assert res.returncode == 1
        err = res.stderr.decode("utf-8", "replace")
        assert err.endswith("\n") and "\n" not in err[:-1], err
        assert not RAW_CONTROL.search(err) and "passed" not in res.stdout.decode()
    for command in ("inspect", "verify"):
        buf = io.StringIO()
        with redirect_stderr(buf):
            assert cli.main([command, path], out=io.StringIO()) == 2
        err = buf.getvalue()
        assert err.count("\n") == 1 and not RAW_CONTROL.search(err), err


def test_tensor_and_function_names_are_escaped(tmp_path: Path) -> None:
    """Names the rules allow to hold anything (tensors, functions, metadata) are shown
    escaped by amber-run and amber inspect."""
    from amber.format import read_container, write_container

    c = read_container(_generator().program())
    header = json.loads(json.dumps(c.header))
    tensors = dict(c.tensors)
    tensors["\x1b]x"] = tensors.pop("tv/x")  # a tensor name
    header["test_vectors"][0]["inputs"]["x"] = "\x1b]x"
    header["metadata"] = {"user": {"note\x1b[31m": "red\nline"}}
    path = tmp_path / "t.amber"
    write_container(path, header, tensors)
    res = subprocess.run([str(_amber_run()), str(path)], capture_output=True)
    assert res.returncode == 0, res.stderr
    out = res.stdout.decode()
    assert "tensor \\x1b]x float32" in out and not RAW_CONTROL.search(out)
    buf = io.StringIO()
    assert cli.main(["inspect", str(path)], out=buf) == 0
    assert "note\\x1b[31m: red\\x0aline" in buf.getvalue()
    assert not RAW_CONTROL.search(buf.getvalue())


def test_amber_run_output_stays_in_its_directory(tmp_path: Path) -> None:
    x = tmp_path / "x.npy"
    np.save(x, np.ones(1, np.float32))
    out = tmp_path / "out"
    out.mkdir()
    ok = NAMES / "output_ascii.amber"
    res = subprocess.run([str(_amber_run()), str(ok), "--entry", "forward", "--input",
                          f"x={x}", "--output", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert [p.name for p in out.iterdir()] == ["output_0.npy"]
    for bad in ("output_traversal", "output_absolute", "output_dotdot"):
        res = subprocess.run([str(_amber_run()), str(NAMES / f"{bad}.amber"), "--entry",
                              "forward", "--input", f"x={x}", "--output", str(out)],
                             capture_output=True, text=True)
        assert res.returncode == 1
    assert [p.name for p in out.iterdir()] == ["output_0.npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "x.npy"]


def test_amber_run_npz_members_are_plain(tmp_path: Path) -> None:
    x = tmp_path / "x.npy"
    np.save(x, np.ones(1, np.float32))
    out = tmp_path / "o.npz"
    assert cli.main(["run", str(NAMES / "output_unicode.amber"), "--input", f"x={x}",
                     "--output", str(out)], out=io.StringIO()) == 0
    assert list(np.load(out)) == ["größe"]
    buf = io.StringIO()
    with redirect_stderr(buf):
        assert cli.main(["run", str(NAMES / "output_traversal.amber"), "--input",
                         f"x={x}", "--output", str(out)], out=io.StringIO()) == 2
    assert "holds a '/'" in buf.getvalue()


def test_writer_refuses_names_readers_refuse() -> None:
    from amber.capture.serialize import header_to_json

    prog = am.load(NAMES / "entry_ascii.amber", backend="reference").program
    header_to_json(prog, None)
    prog.weights["../w"] = prog.weights.pop("w")
    with pytest.raises(FormatError, match=r"H\.10"):
        header_to_json(prog, None)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
