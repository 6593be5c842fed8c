"""`python -m bench.gui_start LIB`: Uploader started the way its `uploader` command starts
it (uploader.cli.main, the same imports in the same order), timed to its first paint.

Separate from bench.gui_child because that module imports PySide6 before anything else,
which a real start does not do (PySide6 inspects every module imported after it).
Prints one JSON line like gui_child; times are on the system-wide monotonic clock.
"""

from __future__ import annotations

import sys

from uploader.cli import main as uploader_main  # what the `uploader` script imports first


def main(argv: list[str]) -> int:
    from . import gui_child  # PySide6 now: the window's own first line, run(), imports it

    gui_child._hook()
    gui_child._paint.callbacks.append(lambda at: gui_child._finish({"paint": at}))
    return uploader_main(["--library", argv[0]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
