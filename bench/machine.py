"""What the benchmarks ran on: CPU, memory, file system, kernel, tool and library versions."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any


def _first_line(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _filesystem(path: Path) -> str:
    done = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "--target", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return "not installed"


def describe(work: Path) -> dict[str, Any]:
    import zstandard

    disk = shutil.disk_usage(work)
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory": _mem_total(),
        "filesystem": _filesystem(work),
        "free": disk.free,
        "kernel": platform.release(),
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "zstandard": f"{zstandard.__version__} (libzstd {zstandard.ZSTD_VERSION})",
        "peewee": _version("peewee"),
        "PySide6": _version("PySide6-Essentials"),
        "cp": _first_line(["cp", "--version"]),
        "rsync": _first_line(["rsync", "--version"]),
        "rclone": _first_line(["rclone", "version"]),
        "zstd": _first_line(["zstd", "--version"]),
        "sha256sum": _first_line(["sha256sum", "--version"]),
        "work": str(work),
    }
