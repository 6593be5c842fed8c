"""Write contention between processes, and a long-lived reader during thousands of writes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from pathlib import Path

from faultkit import child_env, make_corpus, recover, run_add, tally, uploader_cmd
from invariants import check, read_acks, snapshot_sources

from uploader.core.engine import Engine, Settings
from uploader.core.library import Library


def test_concurrent_writers_one_at_a_time(tmp_path: Path, lib_dir: Path) -> None:
    """Three `uploader add` at once: the library's lock lets one write; the others say
    who holds it and change nothing; run again, they converge; readers work throughout."""
    sets = [make_corpus(tmp_path / f"src{i}", 60, seed=20 + i) for i in range(3)]
    sources = snapshot_sources([p for s in sets for p in s])
    recover(lib_dir)
    procs = [
        subprocess.Popen(
            uploader_cmd("add", "--json", "--library", lib_dir, *files),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for files in sets
    ]
    status = subprocess.run(
        uploader_cmd("status", "--json", "--library", lib_dir),
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    acks = []
    refused = 0
    for p in procs:
        out, err = p.communicate(timeout=300)
        acks += read_acks(out)
        if p.returncode == 2:
            assert "in use by another Uploader" in err
            assert not out
            refused += 1
        else:
            assert p.returncode == 0, err
    assert refused >= 1  # they started together; only one can hold the lock
    check(lib_dir, acknowledged=acks, sources=sources, recovered=True)
    for files in sets:
        proc, more = run_add(lib_dir, *files)
        assert proc.returncode == 0, proc.stderr
        acks += more
    expect = {sha for sha, _, _ in sources.values()}
    check(
        lib_dir,
        acknowledged=acks,
        sources=sources,
        recovered=True,
        drained=True,
        expect_all=expect,
    )
    tally(faults_injected=refused, documents_checked=len(expect))


def test_long_reader_then_the_wal_checkpoints_back_down(tmp_path: Path, lib_dir: Path) -> None:
    files = make_corpus(tmp_path / "src", 300, seed=30)
    recover(lib_dir)
    reader = sqlite3.connect(lib_dir / "library.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM upload").fetchone()  # a read snapshot, held
    wal = lib_dir / "library.db-wal"

    async def scenario(lib: Library) -> None:
        engine = Engine(lib, Settings(jobs=4))
        await engine.start(resume=False)
        try:
            await engine.wait_uploads(await engine.add(files))
            await engine.drain_compression()
            held = wal.stat().st_size
            outside = sqlite3.connect(lib_dir / "library.db", timeout=5)
            busy, _, _ = outside.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 1  # the reader's snapshot pins the WAL
            reader.execute("COMMIT")
            reader.close()
            # the engine is open and idle: none of its connections holds a read
            # transaction, so the WAL can be checkpointed and truncated now
            busy, _, _ = outside.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            outside.close()
            assert busy == 0
            assert wal.stat().st_size == 0 < held
            ids = await engine.add(files[:5])  # and writing goes on afterwards
            await engine.wait_uploads(ids)
        finally:
            await engine.close()

    with Library.open(lib_dir) as lib:
        asyncio.run(scenario(lib))
    assert not wal.exists() or os.path.getsize(wal) == 0
    check(lib_dir, recovered=True, drained=True)
