"""The ``.amber`` file container (specified normatively in ``docs/format.md``).

``write_container`` stores a JSON header and named NumPy arrays in one file;
``read_container`` validates a file of any known format version and returns a
:class:`Container` whose arrays are read-only, zero-copy views of the file.
"""

from __future__ import annotations

from .container import *  # noqa: F403  (its __all__: the one list of public names)
from .container import __all__ as __all__
