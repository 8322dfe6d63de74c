"""Hostile programs (``programs/generate.py``): files with valid digests whose program
would make a careless reader spend unbounded time or memory. Every reader refuses them
quickly, in bounded memory, with a typed error."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

import amber as am
from amber.cli import main

HERE = Path(__file__).parent / "programs"


def _generator():
    spec = importlib.util.spec_from_file_location("amber_format_programs_generate",
                                                  HERE / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_files_match_generator() -> None:
    for name, make in _generator().CASES.items():
        assert (HERE / f"{name}.amber").read_bytes() == make(), (
            f"{name}.amber is stale: run python tests/format/programs/generate.py")


def test_dim_bomb_container_is_valid() -> None:
    from amber.format.container import read_container

    c = read_container(HERE / "dim_bomb.amber")  # every digest checks out
    assert c.header["opset_version"] == 1


_LOAD = """
import json, resource, sys, time, warnings
import amber as am
from amber import native as N
out = {}
for backend in ("reference", "native"):
    t = time.perf_counter()
    try:
        am.load(sys.argv[1], backend=backend)
        out[backend] = "loaded"
    except am.AmberError as e:
        out[backend] = type(e).__name__ + ": " + str(e)[-300:]
    out[backend + "_s"] = time.perf_counter() - t
try:  # libamber alone, without the Python reader in front
    N.NativeModel(sys.argv[1])
    out["libamber"] = "opened"
except am.AmberError as e:
    out["libamber"] = type(e).__name__ + ": " + str(e)[-300:]
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def test_dim_bomb_refused_quickly_by_both_backends() -> None:
    res = subprocess.run([sys.executable, "-c", _LOAD, str(HERE / "dim_bomb.amber")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    # the native backend reads with libamber alone: its LimitError subclass
    for backend, error in (("reference", "LimitError"), ("native", "NativeLoadLimitError")):
        assert out[backend].startswith(error + ": "), out
        assert "more than 1024 terms" in out[backend]
        assert out[backend + "_s"] < 20, out  # an unbounded reader takes minutes
    assert out["libamber"].startswith("NativeLoadLimitError: "), out
    assert "more than 1024 terms" in out["libamber"]
    assert out["rss_mb"] < 1024, out  # an unbounded reader grows to gigabytes


def test_dim_bomb_refused_by_the_cli_and_amber_run(capsys, runtime_build: Path) -> None:
    assert main(["verify", str(HERE / "dim_bomb.amber")]) == 2
    assert "more than 1024 terms" in capsys.readouterr().err
    tool = runtime_build / "amber-run"
    def one_gib() -> None:  # an unbounded reader would need gigabytes
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    res = subprocess.run([str(tool), str(HERE / "dim_bomb.amber"), "--verify"],
                         capture_output=True, text=True, timeout=60, preexec_fn=one_gib)
    assert res.returncode != 0
    assert "AMBER_ERR_LIMIT" in res.stderr and "more than 1024 terms" in res.stderr


@pytest.mark.parametrize("text,ok", [
    ("*".join(f"(a{i}+1)" for i in range(10)), True),   # 1024 terms: the limit
    ("*".join(f"(a{i}+1)" for i in range(10)) + "+1", False),
    ("(a+b+c+d)*(a+b+c+d)*(a+b+c+d)*(a+b+c+d)*(a+b+c+d)", True),
    ("(a+b+c+d)*(a+b+c+d)*(a+b+c+d)*(a+b+c+d)*(a+b+c+d)*(a+1)", False),
    ("((a+1)*(b+1)//2)*((a+1)*(b+1)//2)*((a+1)*(b+1)//2)*((a+1)*(b+1)//2)*(c+1)*(d+1)"
     "*(e+1)", False),  # // keeps the bound of its left operand: 4^4*8 = 2048
])
def test_expansion_limit(text: str, ok: bool, tmp_path: Path) -> None:
    """The Python reader and libamber accept and refuse the same expressions."""
    from amber import native as N

    gen = _generator()
    syms = sorted({t for t in text.replace("(", " ").replace(")", " ").replace("*", " ")
                   .replace("+", " ").replace("/", " ").split() if t.isidentifier()})
    path = tmp_path / "dims.amber"
    path.write_bytes(gen.program_file(gen.dim_value_doc(syms, text), []))
    if ok:
        am.load(path, backend="reference")
        N.NativeModel(path).close()
    else:
        with pytest.raises(am.LimitError, match="more than 1024 terms"):
            am.load(path, backend="reference")
        with pytest.raises(am.LimitError, match="more than 1024 terms"):
            N.NativeModel(path)
