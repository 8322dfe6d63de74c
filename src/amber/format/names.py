"""Which names a file may give its entry points, ports and weights (``docs/format.md``
H.10), and how to show any name from a file safely.

Tools use entry point and port names as file names (``amber-run --output DIR`` writes
``DIR/<port>.npy``, ``amber run --output o.npz`` stores ``<port>.npy`` members) and print
every name, so a reader refuses names that could escape a directory or drive a
terminal; :func:`display` escapes the characters of any other string from a file
(function and tensor names, metadata, messages) before it is printed.
"""

from __future__ import annotations

MAX_NAME_BYTES = 4096


def _control(ch: str) -> bool:
    o = ord(ch)
    return o < 0x20 or 0x7F <= o < 0xA0


def name_problem(name: str, *, segments: bool = False) -> str | None:
    """What makes ``name`` invalid, or None. A *plain* name (entry points and ports) is 1
    to 4096 UTF-8 bytes without control characters (U+0000-U+001F, U+007F-U+009F), ``/``
    or ``\\``, and is not ``.`` or ``..``. With ``segments`` (weights) it is plain names
    joined by ``/``. The first problem in the name is reported, as the C loader does."""
    if not name:
        return "is empty"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    start = 0
    for i in range(len(name) + 1):
        ch = name[i] if i < len(name) else "/"
        if _control(ch):
            return "holds a control character"
        if ch == "\\":
            return "holds a backslash"
        if ch != "/":
            continue
        if i < len(name) and not segments:
            return "holds a '/'"
        part = name[start:i]
        if not part:
            return "has an empty '/'-separated part" if segments else "is empty"
        if part in (".", ".."):
            return "is or holds a '.' or '..' part"
        start = i + 1
    return None


def display(text: object) -> str:
    """``text`` safe to print: backslash and every non-printable character (controls,
    format characters such as bidirectional overrides, line and paragraph separators)
    as ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN`` escapes; printable text unchanged."""
    s = str(text)
    if s.isprintable() and "\\" not in s:
        return s
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        elif o < 0x100:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    return "".join(out)


__all__ = ["MAX_NAME_BYTES", "display", "name_problem"]
