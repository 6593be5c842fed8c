"""Another process holds BEGIN IMMEDIATE on library.db, shorter and longer than the busy
timeout; and every write of the engine is a BEGIN IMMEDIATE transaction."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from faultkit import recover, run_add, tally, text_bytes
from invariants import check, connect_copy, snapshot_sources

from uploader.core import compression
from uploader.core.engine import Engine, Settings
from uploader.core.ingest import copy_in
from uploader.core.library import Library
from uploader.core.retry import describe

HOLD = (
    "import sqlite3, sys, time\n"
    "conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
    "conn.execute('BEGIN IMMEDIATE')\n"
    "print('locked', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
    "conn.execute('COMMIT')\n"
)


@contextmanager
def held(root: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """A child process that holds the write lock for `seconds`, then commits."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root / "library.db"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    try:
        yield proc
    finally:
        proc.wait(timeout=seconds + 30)


def corpus(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    out = []
    for i in range(n):
        p = folder / f"doc{i}.txt"
        p.write_bytes(text_bytes(40_000, seed=i))
        out.append(p)
    return out


def test_lock_shorter_than_the_busy_timeout_waits_and_commits(
    tmp_path: Path, lib_dir: Path
) -> None:
    files = corpus(tmp_path / "src", 5)
    sources = snapshot_sources(files)
    recover(lib_dir)
    with held(lib_dir, 1.5):
        proc, acks = run_add(lib_dir, *files)  # busy_timeout is 5 s
    assert proc.returncode == 0, proc.stderr
    assert len(acks) == len(files)
    check(lib_dir, acknowledged=acks, sources=sources, recovered=True, drained=True)
    tally(faults_injected=1, documents_checked=len(files))


def test_lock_longer_than_the_retry_budget_is_a_clear_error_then_works(
    tmp_path: Path, lib_dir: Path
) -> None:
    files = corpus(tmp_path / "src", 3)
    sources = snapshot_sources(files)
    recover(lib_dir)

    async def scenario(lib: Library) -> tuple[BaseException | None, list[int]]:
        engine = Engine(lib, Settings(jobs=2, compress=False))
        await engine.start(resume=False)
        failure: BaseException | None = None
        try:
            with held(lib_dir, 6.0):
                try:
                    await engine.add(files)
                except Exception as exc:
                    failure = exc
            ids = await engine.add(files)
            await engine.wait_uploads(ids)
        finally:
            await engine.close()
        return failure, ids

    with Library.open(lib_dir, busy_timeout=0.1) as lib:
        failure, ids = asyncio.run(scenario(lib))
        assert failure is not None, "the add outlasted a lock held longer than its budget"
        assert describe(failure).reason == "the library is busy (database is locked)"
        states = [s.state for s in lib.snapshots(ids)]
    assert states == ["uploaded"] * len(files)
    check(lib_dir, sources=sources, recovered=True)
    with connect_copy(lib_dir) as conn:
        # the failed add left nothing behind: one upload per file
        assert conn.execute("SELECT COUNT(*) FROM upload").fetchone() == (len(files),)
    tally(faults_injected=1, documents_checked=len(files))


def test_compression_not_queued_under_a_lock_is_queued_by_the_sweep(
    tmp_path: Path, lib_dir: Path
) -> None:
    src = tmp_path / "doc.txt"
    src.write_bytes(text_bytes(200_000, seed=1))
    with Library.open(lib_dir, busy_timeout=0.05) as lib:
        upload = lib.create_uploads([(src, src.stat().st_size)])[0]
        assert lib.start_upload(upload.id)
        snap = lib.record(upload.id, copy_in(lib.store, src))
        assert snap.document_id is not None
        with held(lib_dir, 2.0):
            assert not lib.queue_compression(snap.document_id, attempts=2)
        assert lib.document(snap.document_id).compression == "not_queued"
        check(lib_dir)  # stored, not queued: allowed until the sweep
        report = lib.sweep()
        assert report.queued == 1
        assert compression.work(lib) == 1
    check(lib_dir, recovered=True, drained=True)


@pytest.mark.parametrize("compress", [True, False])
def test_every_write_is_begin_immediate(tmp_path: Path, lib_dir: Path, compress: bool) -> None:
    """No write outside a BEGIN IMMEDIATE transaction, so no SQLITE_BUSY_SNAPSHOT can
    come out of an upgrade from a read transaction."""
    files = corpus(tmp_path / "src", 6)
    statements: list[str] = []

    def traced(db: Any) -> None:
        original = db._add_conn_hooks

        def hook(conn: sqlite3.Connection) -> None:
            original(conn)
            conn.set_trace_callback(statements.append)

        db._add_conn_hooks = hook

    async def scenario(lib: Library) -> None:
        engine = Engine(lib, Settings(jobs=3, compress=compress))
        await engine.start(resume=False)
        try:
            await engine.wait_uploads(await engine.add(files))
            if compress:
                await engine.drain_compression()
            await engine.retry(None)
        finally:
            await engine.close()

    with Library.open(lib_dir) as lib:
        lib.database.close()
        traced(lib.database)
        asyncio.run(scenario(lib))
        lib.sweep()
    writes = 0
    in_tx = False
    for stmt in statements:
        word = stmt.split(None, 1)[0].upper()
        if word == "BEGIN":
            assert stmt.upper().startswith("BEGIN IMMEDIATE"), stmt
            in_tx = True
        elif word in ("COMMIT", "ROLLBACK", "END"):
            in_tx = False
        elif word in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            assert in_tx, f"a write outside BEGIN IMMEDIATE: {stmt}"
            writes += 1
    assert writes > len(files)
