"""``python -m precisionrecon``: the command line (see :mod:`precisionrecon.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":  # importing this module (e.g. by name) runs nothing
    sys.exit(main())
