"""The core never imports Qt, qasync or the GUI: importing it with those blocked works."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from .conftest import ROOT

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, pkgutil, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("PySide6", "qasync", "shiboken6") or name.startswith(
                "uploader.gui"
            ):
                raise ImportError(f"blocked: {name}")
            return None

    sys.meta_path.insert(0, Block())
    import uploader.core
    for mod in pkgutil.walk_packages(uploader.core.__path__, "uploader.core."):
        __import__(mod.name)
    import uploader.cli  # the CLI imports the window only when it opens it
    bad = [m for m in sys.modules if m.split(".")[0] in ("PySide6", "qasync")]
    assert not bad, bad
    print("ok", len([m for m in sys.modules if m.startswith("uploader.core.")]))
    """
)


def test_core_imports_without_qt() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.split()
    assert words[0] == "ok"
    assert int(words[1]) >= 8  # every core module was imported


def test_blocker_catches_a_qt_import() -> None:
    """The check above can fail: a module importing PySide6 is caught."""
    code = BLOCKER.replace("import uploader.core\n", "import uploader.core\nimport PySide6\n")
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode != 0
    assert "blocked: PySide6" in proc.stderr
