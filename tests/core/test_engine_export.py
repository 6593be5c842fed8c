"""Engine.export: a stored document read back off the database thread, verified."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from uploader.core.engine import Engine
from uploader.core.library import ExportError, Library


def test_export_reads_back_the_stored_bytes(
    library: Library, src: Path, tmp_path: Path, run_engine: Callable[..., Any]
) -> None:
    data = b"a line of a document that compresses well\n" * 5000
    (src / "a.txt").write_bytes(data)
    out = tmp_path / "out"
    out.mkdir()

    async def go(engine: Engine) -> Path:
        [uid] = await engine.add([src / "a.txt"])
        [snap] = await engine.wait_uploads([uid])
        await engine.drain_compression()
        assert snap.document_id is not None
        return await engine.export(snap.document_id, out)

    path = run_engine(library, go)
    assert path == out / "a.txt"
    assert path.read_bytes() == data


def test_export_refuses_to_overwrite(
    library: Library, src: Path, tmp_path: Path, run_engine: Callable[..., Any]
) -> None:
    (src / "a.txt").write_bytes(b"new content")
    dest = tmp_path / "a.txt"
    dest.write_bytes(b"keep me")

    async def go(engine: Engine) -> None:
        [uid] = await engine.add([src / "a.txt"])
        [snap] = await engine.wait_uploads([uid])
        assert snap.document_id is not None
        with pytest.raises(ExportError, match="already exists"):
            await engine.export(snap.document_id, dest)

    run_engine(library, go)
    assert dest.read_bytes() == b"keep me"
