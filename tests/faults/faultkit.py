"""Helpers of the fault suite: corpora of files, child processes to kill, recovery, figures."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from invariants import read_acks

from uploader.core.library import Library

ROOT = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(extra)
    return env


def uploader_cmd(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "uploader", *map(str, args)]


def need(tool: str) -> str:
    """The tool's path, or skip: `make fault-tools` installs every tool the suite uses."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (make fault-tools installs it)")
    return path


def make_corpus(folder: Path, n: int, seed: int, *, big: int = 0) -> list[Path]:
    """n files of mixed kinds: compressible text, random bytes, PDFs, tiny and empty files,
    a few duplicates; `big` of them a few MiB so that kills land mid-copy."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i in range(n):
        kind = rng.choice(["text", "text", "random", "pdf", "tiny", "dup"])
        if i < big:
            size = rng.randint(2 << 20, 6 << 20)
            data = text_bytes(size, seed * 100000 + i)
        elif kind == "text":
            data = text_bytes(rng.randint(5000, 300_000), seed * 100000 + i)
        elif kind == "random":
            data = rng.randbytes(rng.randint(1000, 200_000))
        elif kind == "pdf":
            data = b"%PDF-1.7\n" + text_bytes(rng.randint(3000, 50_000), i) + b"\n%%EOF\n"
        elif kind == "tiny":
            data = rng.randbytes(rng.randint(0, 100))
        else:
            data = text_bytes(20_000, seed)  # same content as other "dup" files
        p = folder / f"f{i:04d}-{kind}.bin"
        p.write_bytes(data)
        paths.append(p)
    return paths


def text_bytes(n: int, seed: int) -> bytes:
    line = f"line {seed} of a document that compresses well, ".encode()
    out = bytearray()
    i = 0
    while len(out) < n:
        out += line + str(i).encode() + b"\n"
        i += 1
    return bytes(out[:n])


def recover(root: Path, **kw: Any) -> None:
    """Open the library as a writer once (that is the recovery) and close it."""
    Library.open(root, **kw).close()


def run_add(
    root: Path, *paths: str | os.PathLike[str], extra: tuple[str, ...] = (), timeout: float = 300
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """`uploader add --json` to completion; its output and acknowledged results."""
    proc = subprocess.run(
        uploader_cmd("add", "--json", "--library", root, *extra, *paths),
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout,
    )
    return proc, read_acks(proc.stdout)


# Figures of the run (rounds of kills, crash points, faults, documents checked), printed
# at the end so that the README can quote the last full run.
FIGURES: dict[str, int] = {}


def tally(**counts: int) -> None:
    for key, n in counts.items():
        FIGURES[key] = FIGURES.get(key, 0) + n
