"""Grouped starts and records: many small files, a few transactions, the same outcome and
the same durability as one file at a time."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from uploader.core import compression, engine, ingest, store
from uploader.core.engine import Engine
from uploader.core.library import Library
from uploader.core.models import Document, Job, Upload


def text_bytes(n: int, seed: int = 0) -> bytes:
    line = f"line {seed} of a document that compresses well, ".encode()
    return (line * (n // len(line) + 1))[:n]


def _files(src: Path, n: int, *, same_as: dict[int, int] | None = None) -> list[Path]:
    paths = []
    for i in range(n):
        p = src / f"f{i:04d}.txt"
        p.write_bytes(text_bytes(3000 + i, seed=(same_as or {}).get(i, i)))
        paths.append(p)
    return paths


def test_many_small_files_with_duplicates(
    library: Library, src: Path, run_engine: Callable[..., Any]
) -> None:
    # files 10 and 11 have the content of file 3 (same seed and size)
    paths = _files(src, 120)
    for i in (10, 11):
        paths[i].write_bytes(paths[3].read_bytes())

    async def go(engine: Engine) -> list[Any]:
        ids = await engine.add([src])
        return await engine.wait_uploads(ids)

    snaps = run_engine(library, go, compress=False)
    assert [s.state for s in snaps] == ["uploaded"] * 120
    docs = {s.document_id for s in snaps}
    assert len(docs) == 118
    by_path = {Path(s.path).name: s for s in snaps}
    dups = [by_path[f"f{i:04d}.txt"] for i in (3, 10, 11)]
    assert len({s.document_id for s in dups}) == 1
    assert sorted(s.duplicate for s in dups) == [False, True, True]
    assert Document.select().count() == 118
    assert Job.select().count() == 118  # every new document queued for compression
    for doc in library.documents():
        assert library.store.verify(doc.sha256, doc.encoding, doc.size) is None
    assert list(library.store.iter_temps()) == []
    assert sorted(Upload.select(Upload.state).distinct().tuples()) == [("uploaded",)]


def test_unrenamable_copy_fails_only_itself(library: Library, src: Path) -> None:
    staged = []
    for p in _files(src, 3):
        ids = [s.id for s in library.create_uploads([(p, p.stat().st_size)])]
        staged.append((ids[0], ingest.copy_in(library.store, p)))
        assert library.start_upload(ids[0])
    staged[1][1].temp.unlink()  # its temp copy vanished before the rename
    results = library.record_many(staged)
    assert isinstance(results[1], FileNotFoundError)
    assert [getattr(r, "state", None) for r in (results[0], results[2])] == ["uploaded"] * 2
    assert Document.select().count() == 2
    assert Upload.get_by_id(staged[1][0]).state == "uploading"


def test_published_duplicate_of_compressed_document_leaves_no_raw_copy(
    library: Library, src: Path
) -> None:
    p = src / "doc.txt"
    p.write_bytes(text_bytes(200_000))
    (first,) = library.create_uploads([(p, None)])
    library.start_upload(first.id)
    library.record(first.id, ingest.copy_in(library.store, p))
    library.queue_compression(library.documents()[0].id)
    assert compression.work(library) == 1
    sha = library.documents()[0].sha256
    assert library.store.exists(sha, "zstd")
    assert not library.store.exists(sha, "raw")

    (second,) = library.create_uploads([(p, None)])
    library.start_upload(second.id)
    published = ingest.publish(library.store, ingest.copy_in(library.store, p))
    assert library.store.exists(sha, "raw")
    (snap,) = library.record_many([(second.id, published)])
    assert not isinstance(snap, Exception)
    assert snap.duplicate
    assert snap.document_id == library.documents()[0].id
    assert not library.store.exists(sha, "raw")
    assert library.documents()[0].encoding == "zstd"


def test_create_uploads_reuses_queued_rows_and_repeated_paths(library: Library, src: Path) -> None:
    a, b = _files(src, 2)
    first = library.create_uploads([(a, 1), (b, 2)])
    again = library.create_uploads([(b, 20), (a, 10), (a, 11)])
    assert [s.id for s in again] == [first[1].id, first[0].id, first[0].id]
    assert Upload.select().count() == 2
    assert Upload.get_by_id(first[0].id).size == 11


def test_folder_fsync_failure_stores_nothing(
    library: Library, src: Path, run_engine: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _files(src, 30)

    def broken(path: Path) -> None:
        if path.parent == library.store.blobs:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store, "fsync_dir", broken)
    monkeypatch.setattr(engine, "fsync_dir", broken)

    async def go(engine: Engine) -> list[Any]:
        return await engine.wait_uploads(await engine.add([src]))

    snaps = run_engine(library, go, compress=False)
    assert {s.state for s in snaps} == {"failed"}
    assert all("i/o error" in (s.error or "").lower() for s in snaps), snaps[0].error
    assert Document.select().count() == 0  # no row for a rename that is not durable
    assert list(library.store.iter_temps()) == []


def test_cancelling_right_after_adding_loses_no_cancel(
    library: Library, src: Path, run_engine: Callable[..., Any]
) -> None:
    _files(src, 300)

    async def go(engine: Engine) -> list[Any]:
        ids = await engine.add([src])
        await engine.cancel(ids)
        return await engine.wait_uploads(ids)

    snaps = run_engine(library, go, compress=False)
    states = {s.state for s in snaps}
    assert states <= {"cancelled", "uploaded"}
    assert "cancelled" in states
    in_db = dict(Upload.select(Upload.id, Upload.state).tuples())
    assert {s.id: s.state for s in snaps} == in_db
    uploaded = {s.document_id for s in snaps if s.state == "uploaded"}
    assert Document.select().count() == len(uploaded)
