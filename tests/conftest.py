"""Shared test set-up: Qt offscreen, a fresh library per test, and the user's own folders
out of reach: a test that forgets --library gets a throwaway default, never the real one."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")

_HOME = tempfile.mkdtemp(prefix="uploader-tests-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["XDG_DATA_HOME"] = os.path.join(_HOME, "data")
os.environ["XDG_CONFIG_HOME"] = os.path.join(_HOME, "config")
os.environ.pop("UPLOADER_LIBRARY", None)
