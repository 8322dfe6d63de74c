"""The ``.amber`` file container (specified normatively in ``docs/format.md``).

``write_container`` stores a JSON header and named NumPy arrays in one file;
``read_container`` validates a file of any known format version and returns a
:class:`Container` whose arrays are read-only, zero-copy views of the file.
"""

from __future__ import annotations

from .container import (
    ALIGNMENT,
    DEFAULT_MAX_HEADER_BYTES,
    DTYPES,
    FORMAT_VERSION,
    MAGIC,
    MAX_JSON_DEPTH,
    MAX_NAME_BYTES,
    MAX_RANK,
    PREAMBLE_SIZE,
    TENSOR_INDEX_KEY,
    Container,
    read_container,
    write_container,
)

__all__ = [
    "ALIGNMENT",
    "DEFAULT_MAX_HEADER_BYTES",
    "DTYPES",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_JSON_DEPTH",
    "MAX_NAME_BYTES",
    "MAX_RANK",
    "PREAMBLE_SIZE",
    "TENSOR_INDEX_KEY",
    "Container",
    "read_container",
    "write_container",
]
