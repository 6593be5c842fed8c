"""`python -m uploader`: the command line; with no subcommand it opens the window."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
