"""The ``amber`` command line tool (also ``python -m amber``).

* ``amber inspect FILE``: versions, metadata, entry points and signatures, op
  histogram, parameter count and bytes, test vectors (``--program`` prints the IR).
* ``amber verify FILE``: runs the embedded test vectors and prints the max error per
  output; exit status 1 if any fails.
* ``amber run FILE --entry NAME --input NAME=path.npy ... --output out.npz``.
* ``amber link A.amber B.amber --connect "A.forward.out0 -> B.forward.in0" -o AB.amber``:
  one file from several, type-checked at the seams (syntax in docs/cli.md).
* ``amber diff A.amber B.amber``: entry points, signatures, op histogram and weights by
  content hash; exit status 0 if identical, 1 if different.
* ``amber convert model.onnx model.amber [--example NAME=FILE.npy] [--size DIM=A,B]``:
  imports an ONNX model (docs/onnx.md), proves it against ONNX's reference evaluator on
  the example (or random) inputs, and writes it with those runs as test vectors.
* ``amber config --cflags --libs``: compiler and linker flags for a C program using the
  installed libamber (``--pkgconfig-path``: the directory holding ``amber.pc``).

``verify`` and ``run`` take ``--backend native|reference`` (default: native when the
native library is installed and opens the file, else reference).

Exit status: 0 success, 1 verification failure (``diff``: the files differ), 2
unreadable/invalid file or bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np

from .errors import AmberError, FormatError
from .format.names import display
from .serve import cli as serve_cli


def _lines(text: object) -> str:
    """Multi-line text for the terminal: every line escaped (docs/cli.md, "Output")."""
    return "\n".join(display(line) for line in str(text).split("\n"))


def _load(path: str, verify_hashes: bool = True, backend: str | None = "reference") -> Any:
    from .model import load

    try:
        return load(path, backend=backend, verify_hashes=verify_hashes)
    except FormatError as e:
        e.amber_path = path  # type: ignore[attr-defined]  # main() names this file
        raise


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def cmd_inspect(args: argparse.Namespace, out: TextIO) -> int:
    from . import __version__

    model = _load(args.file)
    prog = model.program
    meta = prog.metadata
    print(f"file:            {display(args.file)}", file=out)
    print(f"format version:  {model.format_version}", file=out)
    print(f"opset version:   {prog.opset_version}", file=out)
    print(f"producer:        {display(meta.get('producer', '?'))} "
          f"{display(meta.get('producer_version', ''))}".rstrip(), file=out)
    if "created" in meta:
        print(f"created:         {display(meta['created'])}", file=out)
    print(f"reader:          amber {__version__}", file=out)
    user = meta.get("user") or {}
    if user:
        print("metadata:", file=out)
        for k, v in sorted(user.items()):
            print(f"  {display(k)}: {display(v)}", file=out)
    print("entry points:", file=out)
    for e in prog.entries.values():
        print(f"  {display(e)}", file=out)
    n, b = prog.parameter_count()
    print(f"parameters:      {n:,} in {len(prog.weights)} tensors ({b:,} bytes, "
          f"{_fmt_bytes(b)})", file=out)
    for name, fn in prog.functions.items():
        hist = fn.op_histogram()
        ops = ", ".join(f"{op} {k}" for op, k in hist.items()) or "(none)"
        print(f"ops in {display(name)} ({len(fn.nodes)} nodes): {ops}", file=out)
    print(f"test vectors:    {len(prog.test_vectors)}", file=out)
    if args.program:
        print(file=out)
        print(_lines(prog), file=out)
    return 0


def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    model = _load(args.file, backend=args.backend)
    print(f"backend: {model.backend}", file=out)
    results = model.verify()
    if not results:
        print(f"{display(args.file)}: no test vectors to run", file=out)
        return 1
    ok = True
    for r in results:
        dims = ", ".join(f"{display(k)}={v}" for k, v in r.dims.items())
        head = f"vector {r.index} {display(r.entry)}" + (f" [{dims}]" if dims else "")
        if r.error is not None:
            ok = False
            print(f"{head}: FAILED to run: {_lines(r.error)}", file=out)
            continue
        for name, err in r.errors.items():
            status = "ok" if r.passed[name] else "FAIL"
            ok = ok and r.passed[name]
            tv = model.program.test_vectors[r.index]
            rtol, atol = tv.tolerance.get(name, (0.0, 0.0))
            print(f"{head} {display(name)}: max error {err:.3g} (rtol={rtol:g}, atol={atol:g}) "
                  f"{status}", file=out)
    n_fail = sum(not r.ok for r in results)
    print(f"{len(results) - n_fail}/{len(results)} test vectors passed", file=out)
    if model.native is not None:
        # the C runtime's own check of the stored vectors (amber_session_verify)
        from .native import NativeMismatchError

        try:
            n, failed = model.native.verify()
            print(f"libamber verify: {n - failed}/{n} test vectors passed", file=out)
        except NativeMismatchError as e:
            ok = False
            print(f"libamber verify: FAILED: {_lines(e)}", file=out)
    return 0 if ok else 1


def _parse_inputs(specs: Sequence[str]) -> dict[str, np.ndarray]:
    inputs: dict[str, np.ndarray] = {}
    for s in specs:
        if "=" not in s:
            raise AmberError(f"--input expects NAME=path.npy, got {s!r}")
        name, path = s.split("=", 1)
        if name in inputs:
            raise AmberError(f"input {name!r} given twice")
        try:
            inputs[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise AmberError(f"cannot read input {name!r} from {path!r}: {e}") from None
        if not isinstance(inputs[name], np.ndarray):
            raise AmberError(f"{path!r} is not a .npy array file")
    return inputs


def _check_output(path: str, model_path: str) -> None:
    """``--output`` must name a new or existing .npz file, never the model itself."""
    import os

    if not path.endswith(".npz"):
        raise AmberError(f"--output writes the outputs as a NumPy .npz archive; give a "
                         f"file name ending in .npz, got {path!r}")
    if os.path.exists(path) and os.path.samefile(path, model_path):
        raise AmberError(f"--output {path!r} is the model file itself")


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    if args.output:
        _check_output(args.output, args.file)
    model = _load(args.file, backend=args.backend)
    entry = model.signature(args.entry)
    inputs = _parse_inputs(args.input or [])
    if model.native is not None:
        outs = model.native.run(entry.name, **inputs)
    else:
        outs = model._interp.run(entry.name, **inputs)
    arrays = {p.name: np.asarray(a) for p, a in zip(entry.outputs, outs)}
    if args.output:
        from .format.names import name_problem

        for k in arrays:  # member names: the loader refuses others, checked again here
            if name_problem(k):
                raise AmberError(f"output name {k!r} {name_problem(k)}; cannot store it")
        # NOTE: np.savez(path) appends ".npz" to any other name; write the file itself
        with open(args.output, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
        print(f"wrote {', '.join(map(display, arrays))} to {display(args.output)}", file=out)
    else:
        for k, a in arrays.items():
            print(f"{display(k)}: {a.dtype}{list(a.shape)}", file=out)
            print(np.array2string(a, threshold=50), file=out)
    return 0


def cmd_link(args: argparse.Namespace, out: TextIO) -> int:
    from .link import link, parse_model_arg
    from .reuse import default_name

    models: dict[str, Any] = {}
    for arg in args.models:
        alias, path = parse_model_arg(arg)
        alias = alias or default_name(path)
        if alias in models:
            raise AmberError(f"two models are called {alias!r}; give one an alias: "
                             f"NAME={path}")
        models[alias] = _load(path)
    program = link(models, args.connect or [], name=args.name, outputs=args.output)
    import os

    program.save(args.o, metadata={"linked_from": {
        a: os.path.basename(m.path) if m.path else a for a, m in models.items()}})
    e = program.entry(args.name)
    print(f"wrote {display(args.o)}: entry {display(e)}", file=out)
    return 0


def cmd_diff(args: argparse.Namespace, out: TextIO) -> int:
    from .link import diff

    a, b = _load(args.file), _load(args.other)
    d = diff(a.program, b.program, args.file, args.other)
    print(_lines(d), file=out)
    return 0 if d.identical else 1


def config_flags(cflags: bool, libs: bool, static: bool = False) -> list[str]:
    """Flags a C compiler needs to build against the installed libamber: ``-I`` for
    ``amber.h`` (``cflags``); ``-L``, ``-lamber`` and an rpath, or with ``static`` the
    static archive and its system libraries (``libs``)."""
    from .native import native_dir

    d = native_dir()
    if d is None:
        raise AmberError("this amber has no native runtime installed (reinstall it with "
                         "`pip install .`, which builds libamber with CMake)")
    flags: list[str] = []
    if cflags:
        flags.append(f"-I{d / 'include'}")
    if libs:
        lib = d / "lib"
        if static:
            flags += [str(lib / "libamber.a"), "-lm", "-lpthread"]
        else:
            flags += [f"-L{lib}", f"-Wl,-rpath,{lib}", "-lamber"]
    return flags


def cmd_config(args: argparse.Namespace, out: TextIO) -> int:
    from .native import native_dir

    if args.pkgconfig_path or args.prefix:
        d = native_dir()
        if d is None:
            raise AmberError("this amber has no native runtime installed")
        print(d / "lib" / "pkgconfig" if args.pkgconfig_path else d, file=out)
        return 0
    if not (args.cflags or args.libs):
        raise AmberError("amber config: give --cflags and/or --libs (or --pkgconfig-path, "
                         "--prefix)")
    print(" ".join(config_flags(args.cflags, args.libs, args.static)), file=out)
    return 0


def _pairs(items: Sequence[str] | None, what: str) -> list[tuple[str, str]]:
    out = []
    for it in items or []:
        name, sep, val = it.partition("=")
        if not sep or not name:
            raise AmberError(f"{what} must be NAME=VALUE, got {it!r}")
        out.append((name, val))
    return out


def cmd_convert(args: argparse.Namespace, out: TextIO) -> int:
    from .onnx import from_onnx

    example = {n: np.load(p, allow_pickle=False) for n, p in _pairs(args.example, "--example")}
    sizes: dict[str, list[int]] = {}
    for n, v in _pairs(args.size, "--size"):
        try:
            sizes[n] = [int(x) for x in v.split(",")]
        except ValueError:
            raise AmberError(f"--size {n}={v}: sizes must be integers, e.g. {n}=2,5") from None
    program = from_onnx(args.file, example=example or None, sizes=sizes or None)
    program.save(args.output)
    ep = program.entries["forward"]
    print(f"wrote {args.output}: {ep}", file=out)
    count, nbytes = program.parameter_count()
    print(f"{len(program.weights)} weights ({count} values, {_fmt_bytes(nbytes)}), "
          f"{len(program.test_vectors)} test vectors proved against "
          f"{program.metadata.get('onnx', {}).get('proved_against', 'onnx.reference')}",
          file=out)
    return 0


def _backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("native", "reference"), default=None,
                   help="run on libamber (native) or the NumPy interpreter (reference); "
                        "default: native when available")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="amber", description="Inspect, verify and run .amber "
                                                          "files.")
    sub = p.add_subparsers(dest="command", required=True)
    pi = sub.add_parser("inspect", help="entry points, signatures, ops, parameters, metadata")
    pi.add_argument("file")
    pi.add_argument("--program", action="store_true", help="also print the program's IR")
    pv = sub.add_parser("verify", help="run the embedded test vectors")
    pv.add_argument("file")
    _backend_arg(pv)
    pr = sub.add_parser("run", help="run an entry point on .npy inputs")
    pr.add_argument("file")
    pr.add_argument("--entry", default="forward", help="entry point (default: forward)")
    pr.add_argument("--input", action="append", metavar="NAME=PATH.npy",
                    help="an input array (repeat for each input)")
    pr.add_argument("--output", metavar="OUT.npz", help="write the outputs here")
    _backend_arg(pr)
    pl = sub.add_parser("link", help="link several files into one (docs/cli.md)")
    pl.add_argument("models", nargs="+", metavar="[ALIAS=]FILE",
                    help="input files; a model is called ALIAS or its file name without "
                         ".amber")
    pl.add_argument("--connect", action="append", metavar="'A.ENTRY.PORT -> B.ENTRY.PORT'",
                    help="feed an output into an input (repeat for each connection)")
    pl.add_argument("--output", action="append", metavar="A.ENTRY.PORT",
                    help="an output of the linked entry point (repeat; default: every "
                         "output no connection consumes)")
    pl.add_argument("--name", default="forward",
                    help="name of the linked entry point (default: forward)")
    pl.add_argument("-o", required=True, metavar="OUT.amber", help="the file to write")
    pd = sub.add_parser("diff", help="compare two files; exit 0 if identical, 1 if not")
    pd.add_argument("file")
    pd.add_argument("other")
    pn = sub.add_parser("convert", help="import an ONNX model as a .amber file")
    pn.add_argument("file", metavar="MODEL.onnx")
    pn.add_argument("output", metavar="MODEL.amber")
    pn.add_argument("--example", action="append", metavar="NAME=FILE.npy",
                    help="an example input for the proof (repeat for each input; default: "
                         "random inputs)")
    pn.add_argument("--size", action="append", metavar="DIM=A,B",
                    help="sizes of a symbolic dim for the random proof (default: 2,5)")
    pc = sub.add_parser("config", help="flags to build C programs against libamber")
    pc.add_argument("--cflags", action="store_true", help="compiler flags (-I...)")
    pc.add_argument("--libs", action="store_true", help="linker flags (-L... -lamber)")
    pc.add_argument("--static", action="store_true",
                    help="with --libs: link the static libamber.a instead")
    pc.add_argument("--pkgconfig-path", action="store_true",
                    help="print the directory holding amber.pc (for PKG_CONFIG_PATH)")
    pc.add_argument("--prefix", action="store_true",
                    help="print the install prefix (include/, lib/, bin/amber-run)")
    serve_cli.add_parser(sub)
    return p


def amber_run(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``amber-run`` command: replaces this process by the C tool the
    package installed (``amber/_native/bin/amber-run``, docs/c-api.md), so its exit
    status and output are the tool's own. Returns 1 (with a message) if it is missing."""
    import os

    from .native import native_dir

    d = native_dir()
    exe = d / "bin" / "amber-run" if d is not None else None
    if exe is None or not exe.is_file():
        print("amber-run: this amber has no native runtime installed (reinstall it with "
              "`pip install .`, which builds libamber and amber-run with CMake)",
              file=sys.stderr)
        return 1
    args = list(sys.argv[1:] if argv is None else argv)
    sys.stdout.flush()
    os.execv(exe, ["amber-run", *args])
    return 1  # pragma: no cover - execv does not return


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``amber`` command; returns the exit status."""
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    handler = {"inspect": cmd_inspect, "verify": cmd_verify, "run": cmd_run,
               "link": cmd_link, "diff": cmd_diff, "config": cmd_config,
               "convert": cmd_convert, "serve": serve_cli.cmd_serve}[args.command]
    try:
        return handler(args, out)
    except FormatError as e:
        path = getattr(e, "amber_path", args.file if "file" in args else None)
        where = f" {display(path)}" if path else ""
        print(f"amber {args.command}: invalid file{where}: {_lines(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"amber {args.command}: {_lines(e)}", file=sys.stderr)
        return 2
    except AmberError as e:
        print(f"amber {args.command}: {_lines(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
