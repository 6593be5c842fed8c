"""Fixtures for the fault suite; the helpers live in faultkit.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultkit import FIGURES


@pytest.fixture
def lib_dir(tmp_path: Path) -> Path:
    return tmp_path / "library"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Any]:
    """A factory of small tmpfs mounts (root only), unmounted at the end."""
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        point = tmp_path / f"tmpfs{len(mounts)}"
        point.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounts.append(point)
        return point

    yield mount
    for point in reversed(mounts):
        subprocess.run(["umount", "-l", str(point)], check=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("fault suite figures")
        for key, n in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{key}: {n}")
