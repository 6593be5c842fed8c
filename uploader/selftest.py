"""`uploader self-test`: the smoke test of every build, run in a temporary library.

Drives the real engine and the window end to end; never touches the user's library.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .core.engine import Engine, Settings
from .core.events import UploadSnapshot, format_size
from .core.library import Library
from .core.models import UploadState
from .core.retry import Kind


class CheckFailed(Exception):
    """A check did not hold; the message says what was seen, in words."""


@dataclass
class Context:
    """What the checks share: the temporary folder, the documents and what became of them."""

    root: Path
    originals: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, UploadSnapshot] = field(default_factory=dict)

    @property
    def library(self) -> Path:
        return self.root / "library"

    def source(self, name: str) -> Path:
        return self.root / "sources" / name


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Context], str]
    needs: tuple[str, ...] = ()


COMPRESSIBLE = "report.txt"
INCOMPRESSIBLE = "photo.raw"
CORRUPT = "truncated.pdf"


def _engine(ctx: Context, fn: Callable[[Engine], Awaitable[Any]]) -> Any:
    """Run `fn(engine)` over the temporary library, then close both."""

    async def main() -> Any:
        engine = Engine(lib, Settings(jobs=2, compress=True))
        await engine.start(resume=False)
        try:
            return await fn(engine)
        finally:
            await engine.close()

    lib = Library.open(ctx.library)
    try:
        return asyncio.run(main())
    finally:
        lib.close()


def _add(ctx: Context, names: list[str]) -> list[UploadSnapshot]:
    async def go(engine: Engine) -> list[UploadSnapshot]:
        ids = await engine.add([ctx.source(n) for n in names])
        return await engine.wait_uploads(ids)

    snaps: list[UploadSnapshot] = _engine(ctx, go)
    if len(snaps) != len(names):
        raise CheckFailed(f"{len(names)} files given, {len(snaps)} uploads recorded")
    for name, snap in zip(names, snaps, strict=True):
        ctx.uploads[name] = snap
    return snaps


def check_store(ctx: Context) -> str:
    """A compressible and an incompressible document are stored, each as its own upload."""
    (ctx.root / "sources").mkdir()
    lines = (f"line {i}: the quarterly figures, once more, in plain words.\n" for i in range(40000))
    ctx.originals[COMPRESSIBLE] = "".join(lines).encode()
    ctx.originals[INCOMPRESSIBLE] = os.urandom(1 << 20)
    for name in (COMPRESSIBLE, INCOMPRESSIBLE):
        ctx.source(name).write_bytes(ctx.originals[name])
    snaps = _add(ctx, [COMPRESSIBLE, INCOMPRESSIBLE])
    bad = [f"{s.name}: {s.state} ({s.error})" for s in snaps if s.state != UploadState.UPLOADED]
    if bad:
        raise CheckFailed("; ".join(bad))
    sizes = ", ".join(f"{s.name} {format_size(s.size or 0)}" for s in snaps)
    return f"2 documents stored ({sizes})"


def check_refuse_corrupt(ctx: Context) -> str:
    """A PDF cut short is refused, with words saying why."""
    ctx.originals[CORRUPT] = b"%PDF-1.7\n" + b"1 0 obj << /Type /Catalog >> endobj\n" * 200
    ctx.source(CORRUPT).write_bytes(ctx.originals[CORRUPT])
    (snap,) = _add(ctx, [CORRUPT])
    if snap.state != UploadState.FAILED or snap.error_kind != Kind.CORRUPT:
        raise CheckFailed(f"expected a refusal as corrupt, got {snap.state} ({snap.error})")
    return f"refused: {snap.error}"


def check_accept_corrupt(ctx: Context) -> str:
    """The refused PDF is stored when retried with accept_corrupt."""
    uid = ctx.uploads[CORRUPT].id

    async def go(engine: Engine) -> list[UploadSnapshot]:
        ids = await engine.retry([uid], accept_corrupt=True)
        return await engine.wait_uploads(ids)

    snaps: list[UploadSnapshot] = _engine(ctx, go)
    if [s.state for s in snaps] != [UploadState.UPLOADED]:
        raise CheckFailed(f"retry gave {[(s.state, s.error) for s in snaps]}")
    ctx.uploads[CORRUPT] = snaps[0]
    return "stored when accepted as it is"


def check_compress(ctx: Context) -> str:
    """The compressible document is compressed; the incompressible one is kept as it is."""

    async def go(engine: Engine) -> None:
        await engine.drain_compression(poll=0.05)

    _engine(ctx, go)
    with Library.open(ctx.library, readonly=True) as lib:
        docs = {d.name: d for d in lib.documents()}
    text, noise = docs[COMPRESSIBLE], docs[INCOMPRESSIBLE]
    if text.compression != "done" or text.stored_size >= text.size:
        raise CheckFailed(f"{COMPRESSIBLE} is {text.compression}, stored in {text.stored_size} B")
    if noise.compression != "skipped" or noise.stored_size != noise.size:
        raise CheckFailed(f"{INCOMPRESSIBLE} is {noise.compression}, not skipped")
    saved = 1 - text.stored_size / text.size
    return (
        f"{COMPRESSIBLE} {format_size(text.size)} -> {format_size(text.stored_size)} "
        f"(-{saved:.0%}), {INCOMPRESSIBLE} kept as is"
    )


def check_export(ctx: Context) -> str:
    """Every document comes back out byte for byte."""
    out = ctx.root / "exported"
    out.mkdir()
    with Library.open(ctx.library, readonly=True) as lib:
        docs = lib.documents()
        for doc in docs:
            dest = lib.export(doc.id, out / doc.name)
            if dest.read_bytes() != ctx.originals[doc.name]:
                raise CheckFailed(f"{doc.name} came back different")
    names = sorted(d.name for d in docs)
    if names != sorted(ctx.originals):
        raise CheckFailed(f"the library holds {names}, expected {sorted(ctx.originals)}")
    return f"{len(docs)} documents exported and identical to their sources"


def check_doctor(ctx: Context) -> str:
    """The library's own check finds nothing wrong."""
    with Library.open(ctx.library, readonly=True) as lib:
        report = lib.doctor()
    if not report.ok:
        raise CheckFailed("; ".join(p.message for p in report.problems))
    return "the library is healthy"


def check_window(ctx: Context) -> str:
    """The main window opens over the library and closes."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        app = importlib.import_module("uploader.gui.app")
        open_and_close: Callable[[Path], str] = app.open_and_close
    except Exception as exc:
        raise CheckFailed(f"cannot import the window: {type(exc).__name__}: {exc}") from exc
    platform = os.environ.get("QT_QPA_PLATFORM", "the default platform")
    return f"{open_and_close(ctx.library)} ({platform})"


CHECKS: tuple[Check, ...] = (
    Check("store", check_store),
    Check("refuse corrupt", check_refuse_corrupt, needs=("store",)),
    Check("accept corrupt", check_accept_corrupt, needs=("refuse corrupt",)),
    Check("compress", check_compress, needs=("store",)),
    Check("export", check_export, needs=("compress", "accept corrupt")),
    Check("doctor", check_doctor, needs=("export",)),
    Check("window", check_window, needs=("store",)),
)


def run(checks: tuple[Check, ...] = CHECKS, *, keep: bool = False, out: TextIO = sys.stdout) -> int:
    """Run the checks in a new temporary folder; 0 only if every one held."""
    root = Path(tempfile.mkdtemp(prefix="uploader-self-test-"))
    ctx = Context(root)
    failed: set[str] = set()
    print(f"uploader {__version__} self-test in {root}", file=out, flush=True)
    try:
        for check in checks:
            blocked = [n for n in check.needs if n in failed]
            if blocked:
                failed.add(check.name)
                print(f"{check.name}: FAILED (not run: {', '.join(blocked)} failed)", file=out)
                continue
            try:
                detail = check.run(ctx)
            except Exception as exc:
                failed.add(check.name)
                why = str(exc) if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {exc}"
                print(f"{check.name}: FAILED ({why})", file=out, flush=True)
            else:
                print(f"{check.name}: ok ({detail})", file=out, flush=True)
    finally:
        if keep:
            print(f"kept {root}", file=out)
        else:
            shutil.rmtree(root, ignore_errors=True)
    if failed:
        print(f"self-test FAILED: {len(failed)} of {len(checks)} checks", file=out)
        return 1
    print(f"self-test passed: {len(checks)} checks", file=out)
    return 0
