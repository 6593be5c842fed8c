"""Fixtures for the Qt-free core: a library in a temp folder, files to drop, the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from uploader.core.engine import Engine, Settings
from uploader.core.library import Library

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lib_dir(tmp_path: Path) -> Path:
    return tmp_path / "library"


@pytest.fixture
def library(lib_dir: Path) -> Iterator[Library]:
    lib = Library.open(lib_dir)
    yield lib
    lib.close()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    return folder


def text_bytes(n: int, seed: int = 0) -> bytes:
    """Compressible, distinct content of about n bytes."""
    line = f"line {seed} of a document that compresses well, ".encode()
    out = bytearray()
    i = 0
    while len(out) < n:
        out += line + str(i).encode() + b"\n"
        i += 1
    return bytes(out[:n])


def pdf_bytes(seed: int = 0, size: int = 5000) -> bytes:
    body = text_bytes(size, seed)
    return b"%PDF-1.7\n" + body + b"\n%%EOF\n"


@pytest.fixture
def run_engine() -> Callable[..., Any]:
    """Run a coroutine `fn(engine)` against an engine over `library`, then close it."""

    def run(
        library: Library, fn: Callable[[Engine], Any], *, resume: bool = False, **settings: Any
    ) -> Any:
        async def main() -> Any:
            engine = Engine(library, Settings(**settings))
            await engine.start(resume=resume)
            try:
                return await fn(engine)
            finally:
                await engine.close()

        return asyncio.run(main())

    return run


def cli(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    timeout: float = 120,
    wrap: Callable[[list[str]], list[str]] | None = None,
    **kw: Any,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m uploader ARGS` in a child process; `wrap` puts a tool around it
    (strace, capsh) by turning the command line into the tool's command line."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [sys.executable, "-m", "uploader", *map(str, args)]
    return subprocess.run(
        wrap(cmd) if wrap else cmd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=ROOT,
        **kw,
    )


def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `folder` (created) for a fixture to yield: a real file
    system that can really fill up; the test is skipped where mounting is not allowed."""
    folder.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
