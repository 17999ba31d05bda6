"""``python -m precisionrecon.training --config cfg.json``: see :mod:`precisionrecon.training.command`."""

import sys

from .command import main

if __name__ == "__main__":
    sys.exit(main())
