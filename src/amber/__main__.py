"""``python -m amber``: the ``amber`` command line tool."""

import sys

from .cli import main

sys.exit(main())
