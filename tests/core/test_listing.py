"""Listing dropped files: durable rows first, ahead of the copies and of background work
on the db thread; bad entries beside good ones; the rows match their snapshots."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from uploader.core import engine as engine_mod
from uploader.core import models
from uploader.core.engine import Engine, _DbThread
from uploader.core.events import Event, Expanding, UploadSnapshot
from uploader.core.library import Library
from uploader.core.models import Upload

Run = Callable[..., Any]


def _files(src: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        p = src / f"f{i:05d}.txt"
        p.write_bytes(f"file number {i}\n".encode() * 3)
        out.append(p)
    return out


def test_db_thread_runs_urgent_work_before_waiting_work() -> None:
    pool = _DbThread("db-test")
    began = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def busy() -> None:
        began.set()
        release.wait(30)
        order.append("busy")

    try:
        first = pool.submit(busy)
        assert began.wait(30)
        waiting = [pool.submit(order.append, f"normal {i}") for i in range(3)]
        urgent = [pool.submit_urgent(lambda i=i: order.append(f"urgent {i}")) for i in range(2)]
        release.set()
        for fut in [first, *waiting, *urgent]:
            fut.result(30)
    finally:
        pool.shutdown()
    # the call that had begun runs to its end; urgent ones then go first, each level in order
    assert order == ["busy", "urgent 0", "urgent 1", "normal 0", "normal 1", "normal 2"]


def test_db_thread_reports_errors_and_finishes_given_work_at_shutdown() -> None:
    pool = _DbThread("db-test")
    done: list[int] = []

    def fail() -> None:
        raise ValueError("no")

    bad = pool.submit(fail)
    later = [pool.submit(done.append, i) for i in range(5)]
    pool.shutdown(wait=True)
    with pytest.raises(ValueError, match="no"):
        bad.result()
    assert [f.result() for f in later] == [None] * 5
    assert done == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError):
        pool.submit(done.append, 9)


def _first_listed_and_started(events: list[Event]) -> tuple[dict[int, int], list[int]]:
    listed: dict[int, int] = {}
    started: list[int] = []
    for at, e in enumerate(events):
        if isinstance(e, UploadSnapshot):
            listed.setdefault(e.id, at)
            if e.state == "uploading":
                started.append(at)
    return listed, started


def test_every_row_is_listed_before_any_copy_starts(
    library: Library, src: Path, run_engine: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_mod, "LISTING_FIRST", 3600.0)  # out of reach for this test
    _files(src, 1300)  # three batches of rows

    async def go(engine: Engine) -> tuple[list[Event], list[UploadSnapshot]]:
        events: list[Event] = []
        engine.subscribe(events.append)
        ids = await engine.add([src])
        return events, await engine.wait_uploads(ids)

    events, snaps = run_engine(library, go, compress=False)
    assert {s.state for s in snaps} == {"uploaded"}
    listed, started = _first_listed_and_started(events)
    assert len(listed) == 1300
    # each row is announced queued, and only once it is committed
    assert all(isinstance(events[at], UploadSnapshot) for at in listed.values())
    assert {events[at].state for at in listed.values()} == {"queued"}  # type: ignore[union-attr]
    done = next(at for at, e in enumerate(events) if isinstance(e, Expanding) and e.done)
    assert max(listed.values()) < done < min(started)


def test_a_long_listing_shares_the_workers_after_listing_first(
    library: Library, src: Path, run_engine: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing that does not end (a huge, slow folder) must not keep every copy waiting."""
    monkeypatch.setattr(engine_mod, "LISTING_FIRST", 0.0)
    first = _files(src, engine_mod.EXPAND_BATCH)
    last = src / "last.txt"
    last.write_bytes(b"the last one\n")
    copying = threading.Event()
    real_expand = engine_mod.expand

    def slow_expand(
        paths: Iterable[str | Path], stopped: Callable[[], bool] = lambda: False
    ) -> Iterator[tuple[str, int | None]]:
        yield from real_expand(first, stopped)
        copying.wait(60)  # the rest of the folder comes only once copies have begun
        yield from real_expand([last], stopped)

    monkeypatch.setattr(engine_mod, "expand", slow_expand)

    async def go(engine: Engine) -> list[UploadSnapshot]:
        def on(e: Event) -> None:
            if isinstance(e, UploadSnapshot) and e.state == "uploading":
                copying.set()

        engine.subscribe(on)
        ids = await engine.add([src])
        return await engine.wait_uploads(ids)

    snaps = run_engine(library, go, compress=False)
    assert copying.is_set()
    assert len(snaps) == len(first) + 1
    assert {s.state for s in snaps} == {"uploaded"}


def test_bad_entries_in_a_big_add_fail_alone(
    library: Library, src: Path, run_engine: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a path given twice is one upload only while it is still queued: keep copies waiting
    monkeypatch.setattr(engine_mod, "LISTING_FIRST", 3600.0)
    good = _files(src, 1100)
    fifo = src / "m-pipe"
    os.mkfifo(fifo)
    (src / "m-dangling").symlink_to(src / "nowhere")
    odd = os.fsencode(src) + b"/m-caf\xe9.txt"  # not UTF-8
    with open(odd, "wb") as f:
        f.write(b"latin-1 name\n")
    (src / "sub").mkdir()
    (src / "sub" / "loop").symlink_to(src)  # a loop back up: not followed
    missing = src / "gone.txt"
    paths: list[str | Path] = [src, missing, good[5]]  # good[5] twice: one upload

    async def go(engine: Engine) -> list[UploadSnapshot]:
        ids = await engine.add(paths)
        assert len(ids) == len(good) + 5
        return await engine.wait_uploads(dict.fromkeys(ids))

    snaps = run_engine(library, go, compress=False)
    by_name = {Path(s.path).name: s for s in snaps}
    assert len(snaps) == len(good) + 4
    assert all(by_name[p.name].state == "uploaded" for p in good)
    assert "named pipe" in (by_name["m-pipe"].error or "")
    assert "dangling" in (by_name["m-dangling"].error or "")
    assert by_name["gone.txt"].state == "failed"
    assert by_name["gone.txt"].error_kind == "vanished"
    assert by_name[os.fsdecode(b"m-caf\xe9.txt")].state == "uploaded"
    assert Upload.select().count() == len(good) + 4
    assert library.stats()["documents"] == len(good) + 1


def test_created_snapshots_are_the_committed_rows(library: Library, src: Path) -> None:
    files = _files(src, 1200)
    odd = Path(os.fsdecode(os.fsencode(src) + b"/caf\xe9.bin"))
    items: list[tuple[str | Path, int | None]] = [(p, p.stat().st_size) for p in files[:700]]
    items += [(odd, None), (str(files[3]), 7)]  # files[3] again, across a batch of 500
    first = library.create_uploads(items, accept_corrupt=True)
    assert len(first) == len(items)
    assert first[3] is first[-1]
    assert first[3].size == 7  # the size seen last
    assert first == library.snapshots(s.id for s in first)
    assert len({s.id for s in first}) == 701
    # adding again reuses the queued rows and adds the new ones
    again = library.create_uploads([(p, 1) for p in files])
    assert [s.id for s in again[:700]] == [s.id for s in first[:700]]
    assert again == library.snapshots(s.id for s in again)
    assert {s.size for s in again} == {1}
    assert not any(s.accept_corrupt for s in again)
    assert Upload.select().count() == 1201


def test_a_migrated_library_finds_its_queued_rows_by_path(lib_dir: Path, src: Path) -> None:
    path = src / "b.txt"
    path.write_bytes(b"bee")  # recovery fails queued rows whose file is gone
    lib_dir.mkdir()
    conn = sqlite3.connect(lib_dir / "library.db")
    for step in models.MIGRATIONS[:2]:
        step(_Raw(conn))  # type: ignore[arg-type]
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO upload (path, name, size, state, attempts, duplicate, accept_corrupt,"
        " created_at, updated_at) VALUES (?, 'b.txt', 3, 'queued', 1, 0, 0, 0, 0)",
        (str(path),),
    )
    conn.commit()
    conn.close()
    with Library.open(lib_dir) as lib:
        (old,) = lib.uploads()
        (again,) = lib.create_uploads([(path, 4)])
        assert (again.id, again.attempts, again.size) == (old.id, 1, 4)


class _Raw:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute_sql(self, sql: str) -> None:
        self.conn.execute(sql)


def test_closing_as_a_listing_ends_stops_the_waiting_workers(
    library: Library, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A close that comes just as the listing ends must still stop the workers that
    waited for it (a cancellation lost there left close() waiting for ever)."""
    monkeypatch.setattr(engine_mod, "LISTING_FIRST", 3600.0)
    _files(src, 600)

    async def main() -> bool:
        engine = Engine(library, engine_mod.Settings(compress=False))
        await engine.start(resume=False)
        closing: list[asyncio.Task[None]] = []

        def on(e: Event) -> None:
            if isinstance(e, Expanding) and e.done:  # right after the workers are released
                closing.append(asyncio.ensure_future(engine.close()))

        engine.subscribe(on)
        await engine.add([src])
        done, _ = await asyncio.wait(closing, timeout=30)
        if not done:
            engine._queue.put_nowait(-1)  # let a stuck worker reach its next check
            await asyncio.wait(closing, timeout=30)
        return bool(done)

    assert asyncio.run(main()), "close() did not end"
    assert {s.state for s in library.uploads()} <= {"queued", "uploaded"}
