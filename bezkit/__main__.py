"""``python -m bezkit ...`` runs the ``bezkit`` command line."""

import sys

from bezkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
