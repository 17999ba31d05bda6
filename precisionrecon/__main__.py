"""``python -m precisionrecon``: the command line (see :mod:`precisionrecon.cli`)."""

import sys

from .cli import main

sys.exit(main())
