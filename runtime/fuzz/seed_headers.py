"""Writes the JSON header of each .amber file given (those with a readable preamble)
to OUT_DIR, as seeds for the JSON parser harness. Usage: seed_headers.py OUT_DIR FILE..."""

import hashlib
import struct
import sys
from pathlib import Path

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
for name in sys.argv[2:]:
    data = Path(name).read_bytes()
    if len(data) < 64:
        continue
    (length,) = struct.unpack_from("<Q", data, 16)
    header = data[64:64 + length]
    if header:
        (out / hashlib.sha1(header).hexdigest()).write_bytes(header)
