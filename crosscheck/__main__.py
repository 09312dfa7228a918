"""``python -m crosscheck``: the ``crosscheck`` command."""

import sys

from crosscheck.cli import main

if __name__ == "__main__":
    sys.exit(main())
