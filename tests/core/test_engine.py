"""The engine's events: order of states, throttled progress, final state always, retry,
cancel, compression states, the busy-database path for queueing compression."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from uploader.core import ingest
from uploader.core.engine import Engine, Settings, expand
from uploader.core.events import DocumentSnapshot, Event, Expanding, UploadSnapshot
from uploader.core.library import Library

from .conftest import pdf_bytes, text_bytes

Run = Callable[..., Any]


def record(engine: Engine) -> list[Event]:
    events: list[Event] = []
    engine.subscribe(events.append)
    return events


def states_of(events: list[Event], uid: int) -> list[str]:
    out: list[str] = []
    for e in events:
        if isinstance(e, UploadSnapshot) and e.id == uid and (not out or out[-1] != e.state):
            out.append(e.state)
    return out


def test_states_in_order_and_final_always_delivered(
    library: Library, src: Path, run_engine: Run
) -> None:
    path = src / "doc.txt"
    path.write_bytes(text_bytes(8 << 20))

    async def go(engine: Engine) -> tuple[list[Event], int]:
        events = record(engine)
        (uid,) = await engine.add([path])
        (final,) = await engine.wait_uploads([uid])
        assert final.state == "uploaded"
        await engine.drain_compression()
        return events, uid

    # an interval longer than the test: no progress event at all, yet the final state
    events, uid = run_engine(library, go, progress_interval=3600)
    assert states_of(events, uid) == ["queued", "uploading", "uploaded"]
    ups = [e for e in events if isinstance(e, UploadSnapshot) and e.id == uid]
    assert [e.done_bytes for e in ups if e.state == "uploading"] == [0]
    last = ups[-1]
    assert (last.state, last.compression, last.done_bytes) == ("uploaded", "done", 8 << 20)
    comps = [e.compression for e in ups if e.state == "uploaded"]
    assert comps[0] == "pending"
    assert "running" in comps
    docs = [e.compression for e in events if isinstance(e, DocumentSnapshot)]
    assert docs[-1] == "done"
    assert isinstance(events[0], Expanding)


def test_progress_is_throttled(
    library: Library, src: Path, run_engine: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = src / "big.bin"
    path.write_bytes(text_bytes(24 << 20))
    clock = [0.0]

    # a fake clock: every chunk hashed advances time by 10 ms, so 24 chunks span 240 ms
    real_preadv = os.preadv

    def slow_preadv(fd: int, buffers: list[Any], offset: int) -> int:
        clock[0] += 0.01
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(ingest.os, "preadv", slow_preadv)
    monkeypatch.setattr("uploader.core.engine.time.monotonic", lambda: clock[0])

    async def go(engine: Engine) -> list[Event]:
        events = record(engine)
        (uid,) = await engine.add([path])
        await engine.wait_uploads([uid])
        return [e for e in events if isinstance(e, UploadSnapshot) and e.state == "uploading"]

    progress = run_engine(library, go, progress_interval=0.1, compress=False)
    done = [e.done_bytes for e in progress][1:]  # after the first "uploading, 0 bytes"
    # 240 ms of fake time at one update per 100 ms: two or three updates, not 24
    assert 1 <= len(done) <= 3
    assert done == sorted(done)


def test_a_bad_file_fails_alone_and_retry_succeeds(
    library: Library, src: Path, run_engine: Run
) -> None:
    files = []
    for i in range(10):
        p = src / f"doc{i}.pdf"
        p.write_bytes(pdf_bytes(i))
        files.append(p)
    files[7].write_bytes(pdf_bytes(7)[:-7])  # the eighth is truncated

    async def go(engine: Engine) -> tuple[list[UploadSnapshot], list[UploadSnapshot]]:
        ids = await engine.add(files)
        first = await engine.wait_uploads(ids)
        bad = [s.id for s in first if s.state == "failed"]
        files[7].write_bytes(pdf_bytes(7))  # repaired at its source
        again = await engine.retry(bad)
        return first, await engine.wait_uploads(again)

    first, second = run_engine(library, go, compress=False)
    assert [s.state for s in first].count("uploaded") == 9
    (failed,) = [s for s in first if s.state == "failed"]
    assert failed.name == "doc7.pdf"
    assert failed.error == "corrupted (truncated PDF: no %%EOF marker)"
    (retried,) = second
    assert (retried.id, retried.state, retried.attempts) == (failed.id, "uploaded", 2)
    assert len(library.documents()) == 10


def test_upload_anyway_accepts_a_truncated_document(
    library: Library, src: Path, run_engine: Run
) -> None:
    p = src / "cut.pdf"
    p.write_bytes(pdf_bytes()[:-7])

    async def go(engine: Engine) -> UploadSnapshot:
        (uid,) = await engine.add([p])
        (snap,) = await engine.wait_uploads([uid])
        assert snap.error_kind == "corrupt"
        await engine.retry([uid], accept_corrupt=True)
        (snap,) = await engine.wait_uploads([uid])
        return snap

    snap = run_engine(library, go, compress=False)
    assert snap.state == "uploaded"
    assert snap.accept_corrupt


def test_cancel_running_and_queued(library: Library, src: Path, run_engine: Run) -> None:
    big = src / "big.txt"
    big.write_bytes(text_bytes(64 << 20))
    small = src / "small.txt"
    small.write_bytes(b"small")
    gate = threading.Event()
    real = ingest._copy_chunk

    def slow_copy(fd: int, out: int, view: memoryview, kernel: bool) -> tuple[int, bool]:
        gate.wait(5)  # hold the copy until the test has cancelled it
        return real(fd, out, view, kernel)

    async def go(engine: Engine) -> list[UploadSnapshot]:
        events = record(engine)
        ids = await engine.add([big, small])
        while not any(
            isinstance(e, UploadSnapshot) and e.id == ids[0] and e.state == "uploading"
            for e in events
        ):
            await asyncio.sleep(0.01)
        await engine.cancel(ids)
        gate.set()
        return await engine.wait_uploads(ids)

    import uploader.core.ingest as mod

    mod._copy_chunk = slow_copy  # type: ignore[assignment]
    try:
        snaps = run_engine(library, go, jobs=1, compress=False)
    finally:
        mod._copy_chunk = real  # type: ignore[assignment]
    assert [s.state for s in snaps] == ["cancelled", "cancelled"]
    assert list(library.store.iter_temps()) == []
    assert library.documents() == []


def test_incompressible_is_stored_as_is(library: Library, src: Path, run_engine: Run) -> None:
    rnd = src / "random.bin"
    rnd.write_bytes(os.urandom(300_000))
    tiny = src / "tiny.txt"
    tiny.write_bytes(b"tiny")

    async def go(engine: Engine) -> list[UploadSnapshot]:
        ids = await engine.add([rnd, tiny])
        await engine.wait_uploads(ids)
        await engine.drain_compression()
        return [engine.uploads[i] for i in ids]

    snaps = run_engine(library, go)
    assert [s.compression for s in snaps] == ["skipped", "skipped"]
    for doc in library.documents():
        assert doc.encoding == "raw"
        assert library.store.verify(doc.sha256, "raw", doc.size) is None


def test_compression_failure_keeps_original_and_gives_up(
    library: Library, src: Path, run_engine: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = src / "doc.txt"
    p.write_bytes(text_bytes(100_000))
    import uploader.core.compression as comp

    def broken(*a: Any, **k: Any) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(comp, "_write_zstd", broken)

    async def go(engine: Engine) -> UploadSnapshot:
        (uid,) = await engine.add([p])
        await engine.wait_uploads([uid])
        await engine.drain_compression(poll=0.01)
        return engine.uploads[uid]

    snap = run_engine(library, go, compress_retry_base=0.001)
    assert snap.state == "uploaded"
    assert snap.compression == "failed"
    (doc,) = library.documents()
    assert library.store.verify(doc.sha256, "raw", doc.size) is None
    job = library.database.execute_sql("SELECT attempts, last_error FROM job").fetchone()
    assert job[0] == comp.MAX_JOB_ATTEMPTS
    assert "the disk is full" in job[1]


def test_locked_database_leaves_compression_not_queued_then_sweep_queues(
    library: Library, src: Path, run_engine: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = src / "doc.txt"
    p.write_bytes(text_bytes(50_000))
    real = library.queue_compression_many  # the engine queues each batch of documents
    holder: list[sqlite3.Connection] = []

    def locked_queue(doc_ids: Iterable[int], *, attempts: int = 5) -> bool:
        # another process takes the write lock right after the document is recorded
        conn = sqlite3.connect(library.root / "library.db", timeout=0, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        holder.append(conn)
        library.database.execute_sql("PRAGMA busy_timeout = 50")
        try:
            return real(doc_ids, attempts=attempts)
        finally:
            conn.rollback()
            conn.close()

    monkeypatch.setattr(library, "queue_compression_many", locked_queue)

    async def go(engine: Engine) -> UploadSnapshot:
        (uid,) = await engine.add([p])
        (snap,) = await engine.wait_uploads([uid])
        return snap

    snap = run_engine(library, go, compress=False)
    assert holder  # the lock was really held
    assert snap.state == "uploaded"  # storage is not hostage to compression
    assert snap.compression == "not_queued"
    report = library.sweep()
    assert report.queued == 1
    assert library.documents()[0].compression == "pending"


def test_expand_folders_without_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "deep.txt").write_text("x")
    (root / "top.txt").write_text("y")
    (root / "a" / "loop").symlink_to(root)  # a link back up the tree
    found = [Path(p).relative_to(root).as_posix() for p, _ in expand([root])]
    assert found == ["a/b/deep.txt", "top.txt"]


def test_add_many_files_in_batches(library: Library, src: Path, run_engine: Run) -> None:
    for i in range(1200):
        (src / f"f{i:04}.txt").write_bytes(f"file {i}".encode())

    async def go(engine: Engine) -> tuple[list[Expanding], list[UploadSnapshot]]:
        events = record(engine)
        ids = await engine.add([src])
        snaps = await engine.wait_uploads(ids)
        return [e for e in events if isinstance(e, Expanding)], snaps

    progress, snaps = run_engine(library, go, compress=False)
    assert [e.found for e in progress] == [0, 500, 1000, 1200, 1200]
    assert progress[-1].done
    assert len(snaps) == 1200
    assert {s.state for s in snaps} == {"uploaded"}


def test_resume_on_start(lib_dir: Path, src: Path) -> None:
    p = src / "a.txt"
    p.write_bytes(b"resume me")
    with Library.open(lib_dir) as lib:
        lib.create_uploads([(p, p.stat().st_size)])  # queued, then "the app closed"
    with Library.open(lib_dir) as lib:

        async def main() -> UploadSnapshot:
            engine = Engine(lib, Settings(compress=False))
            await engine.start(resume=True)
            try:
                (uid,) = list(engine.uploads)
                (snap,) = await engine.wait_uploads([uid])
                return snap
            finally:
                await engine.close()

        snap = asyncio.run(main())
    assert snap.state == "uploaded"


def test_a_clean_close_puts_running_uploads_back_in_the_queue(
    library: Library, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = src / "big.txt"
    big.write_bytes(text_bytes(32 << 20))
    real = ingest._copy_chunk
    slow = threading.Event()

    def slow_copy(fd: int, out: int, view: memoryview, kernel: bool) -> tuple[int, bool]:
        slow.set()
        threading.Event().wait(0.05)  # a slow disk: the close comes mid-copy
        return real(fd, out, view, kernel)

    monkeypatch.setattr(ingest, "_copy_chunk", slow_copy)

    async def first() -> int:
        engine = Engine(library, Settings(compress=False))
        await engine.start(resume=False)
        (uid,) = await engine.add([big])
        while not slow.is_set():
            await asyncio.sleep(0.01)
        await engine.close()
        return uid

    uid = asyncio.run(first())
    assert library.snapshot(uid).state == "queued"
    assert list(library.store.iter_temps()) == []
    monkeypatch.setattr(ingest, "_copy_chunk", real)

    async def second() -> UploadSnapshot:  # a new engine on the same open library
        engine = Engine(library, Settings(compress=False))
        await engine.start(resume=True)
        try:
            (snap,) = await engine.wait_uploads([uid])
            return snap
        finally:
            await engine.close()

    snap = asyncio.run(second())
    assert (snap.state, snap.attempts) == ("uploaded", 2)
