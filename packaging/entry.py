"""The frozen application's entry point: the same `uploader` command as the Python package."""

import sys

from uploader.cli import main

if __name__ == "__main__":
    sys.exit(main())
