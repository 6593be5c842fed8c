"""The library folder: dedup, export, doctor, schema versions, locking, recovery."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uploader.core import compression, models
from uploader.core.ingest import copy_in
from uploader.core.library import ExportError, Library
from uploader.core.retry import LibraryError, LibraryLocked

from .conftest import ROOT, cli, text_bytes


def store(library: Library, path: Path) -> int:
    """Ingest one file synchronously, the way the engine does; returns the upload id."""
    (snap,) = library.create_uploads([(path, path.stat().st_size)])
    assert library.start_upload(snap.id)
    final = library.record(snap.id, copy_in(library.store, path))
    assert final.document_id is not None
    library.queue_compression(final.document_id)
    return snap.id


def test_identical_content_is_stored_once(library: Library, src: Path) -> None:
    a, b = src / "a.txt", src / "b.txt"
    a.write_bytes(text_bytes(50_000))
    b.write_bytes(text_bytes(50_000))
    first, second = store(library, a), store(library, b)
    s1, s2 = library.snapshot(first), library.snapshot(second)
    assert s1.document_id == s2.document_id
    assert (s1.duplicate, s2.duplicate) == (False, True)
    assert len(library.documents()) == 1
    assert len(list(library.store.iter_blobs())) == 1


def test_export_round_trip_raw_and_compressed(library: Library, src: Path, tmp_path: Path) -> None:
    path = src / "doc.txt"
    data = text_bytes(3 << 20)
    path.write_bytes(data)
    uid = store(library, path)
    doc_id = library.snapshot(uid).document_id
    assert doc_id is not None
    raw_out = library.export(doc_id, tmp_path / "raw.txt")
    assert raw_out.read_bytes() == data
    assert compression.work(library) == 1
    doc = library.document(doc_id)
    assert (doc.compression, doc.encoding) == ("done", "zstd")
    assert doc.stored_size < doc.size / 2
    assert not library.store.exists(doc.sha256, "raw")  # the original went only after the switch
    out = library.export(doc_id, tmp_path / "zst.txt")
    assert out.read_bytes() == data
    with pytest.raises(ExportError, match="already exists"):
        library.export(doc_id, out)
    assert out.read_bytes() == data


def test_corrupted_compressed_blob_is_caught(library: Library, src: Path, tmp_path: Path) -> None:
    path = src / "doc.txt"
    path.write_bytes(text_bytes(400_000))
    uid = store(library, path)
    compression.work(library)
    doc = library.document(library.snapshot(uid).document_id or 0)
    blob = library.store.path(doc.sha256, doc.encoding)
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    blob.write_bytes(bytes(raw))
    with pytest.raises(ExportError, match="damaged"):
        library.export(doc.id, tmp_path / "out.txt")
    assert not (tmp_path / "out.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".uploader")] == []
    report = library.doctor()
    assert not report.ok
    assert any("damaged" in p.message for p in report.problems)
    repaired = library.doctor(repair=True)
    assert repaired.repaired >= 1
    # the upload is a visible row again, to be retried from its source
    snap = library.snapshot(uid)
    assert (snap.state, snap.document_id) == ("failed", None)
    assert "retry" in (snap.error or "")
    assert library.documents() == []
    assert list(library.store.quarantine.iterdir())
    assert library.doctor().ok


def test_doctor_finds_orphans_and_debris(library: Library, src: Path) -> None:
    path = src / "a.txt"
    path.write_bytes(text_bytes(10_000))
    store(library, path)
    (library.store.tmp / "left.part").write_bytes(b"partial")
    orphan = library.store.path("ab" * 32)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"nobody")
    report = library.doctor()
    kinds = sorted(p.kind for p in report.problems)
    assert kinds == ["debris", "orphan"]
    assert library.doctor(repair=True).repaired == 2
    assert library.doctor().ok
    assert library.documents()[0].name == "a.txt"


def test_newer_schema_is_refused_and_left_alone(lib_dir: Path) -> None:
    Library.open(lib_dir).close()
    db_path = lib_dir / "library.db"
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {models.SCHEMA_VERSION + 5}")
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(LibraryError, match="newer version of Uploader"):
        Library.open(lib_dir)
    assert db_path.read_bytes() == before
    proc = cli("status", "--library", lib_dir)
    assert proc.returncode == 2
    assert "newer version" in proc.stderr


def test_old_schema_migrates_forward(lib_dir: Path) -> None:
    lib_dir.mkdir()
    conn = sqlite3.connect(lib_dir / "library.db")
    models.MIGRATIONS[0](_Raw(conn))  # type: ignore[arg-type]
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO upload (path, name, size, state, attempts, duplicate, accept_corrupt,"
        " created_at, updated_at) VALUES ('/x/a.txt', 'a.txt', 3, 'failed', 1, 0, 0, 0, 0)"
    )
    conn.commit()
    conn.close()
    with Library.open(lib_dir) as lib:
        (snap,) = lib.uploads()
        assert (snap.name, snap.state) == ("a.txt", "failed")
        lib.hide([snap.id])  # the column added by schema 2 works
        assert lib.uploads(include_hidden=False) == []
    conn = sqlite3.connect(lib_dir / "library.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == models.SCHEMA_VERSION
    conn.close()


class _Raw:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute_sql(self, sql: str) -> None:
        self.conn.execute(sql)


def test_damaged_database_is_refused_and_kept(lib_dir: Path, src: Path) -> None:
    with Library.open(lib_dir) as lib:
        for i in range(40):
            p = src / f"f{i}.txt"
            p.write_bytes(text_bytes(100, i))
            store(lib, p)
    db_path = lib_dir / "library.db"
    data = bytearray(db_path.read_bytes())
    page = 4096
    data[page * 2 : page * 3] = os.urandom(page)
    db_path.write_bytes(bytes(data))
    with pytest.raises(LibraryError, match="damaged") as err:
        Library.open(lib_dir)
    assert str(db_path) in str(err.value)
    assert db_path.read_bytes() == bytes(data)


def test_second_writer_is_refused_with_pid(lib_dir: Path, src: Path) -> None:
    f = src / "a.txt"
    f.write_bytes(b"hello")
    with Library.open(lib_dir):
        proc = cli("add", "--library", lib_dir, f)
        assert proc.returncode == 2
        assert f"this library is in use by another Uploader (pid {os.getpid()})" in proc.stderr
        # readers work beside the writer
        assert cli("status", "--library", lib_dir).returncode == 0
        assert cli("list", "--json", "--library", lib_dir).stdout.strip() == "[]"
    with pytest.raises(LibraryLocked), Library.open(lib_dir):
        Library.open(lib_dir)


def test_lease_reclaim_of_a_killed_compression_worker(lib_dir: Path, src: Path) -> None:
    big = src / "big.txt"
    big.write_bytes(text_bytes(64 << 20))
    assert cli("add", "--no-compress", "--library", lib_dir, big).returncode == 0
    child = subprocess.Popen(
        [sys.executable, "-m", "uploader", "compress", "--library", str(lib_dir)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    conn = sqlite3.connect(lib_dir / "library.db", timeout=10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = conn.execute("SELECT state FROM job").fetchone()
        if row and row[0] == "running" and any((lib_dir / "tmp").iterdir()):
            break  # killed mid-job, with its .zst half written
        time.sleep(0.01)
    conn.close()
    child.send_signal(signal.SIGKILL)
    child.wait()
    with Library.open(lib_dir, recover=False) as lib:
        doc = lib.documents()[0]
        assert doc.compression == "running"  # as the dead worker left it
        assert lib.store.verify(doc.sha256, "raw") is None  # the original is untouched
        # a lease that has expired is claimed by the next worker
        models.Job.update(lease_until=0).execute()
        job = compression.claim(lib, "other-owner")
        assert job is not None
        assert job.attempts == 2
        compression.finish(lib, job, compression.compress(lib.store, job))
        doc = lib.document(doc.id)
        assert doc.compression == "done"
        assert lib.store.verify(doc.sha256, "zstd", doc.size) is None
        # the dead worker's half-written copy stays in tmp/ until a recovering open
        assert len(list(lib.store.iter_temps())) == 1
    assert cli("doctor", "--library", lib_dir).returncode == 1
    Library.open(lib_dir).close()
    assert cli("doctor", "--library", lib_dir).returncode == 0


def test_lease_is_not_stolen_while_valid(library: Library, src: Path) -> None:
    p = src / "a.txt"
    p.write_bytes(text_bytes(20_000))
    store(library, p)
    job = compression.claim(library, "me", lease=60)
    assert job is not None
    assert compression.claim(library, "thief", lease=60) is None
    assert compression.renew(library, job)


def test_restart_recovers_uploads_left_running(lib_dir: Path, src: Path) -> None:
    """Kill a child mid-ingest; the next open queues its unfinished uploads again."""
    files = []
    for i in range(30):
        p = src / f"f{i:02}.txt"
        p.write_bytes(text_bytes(2 << 20, i))
        files.append(p)
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uploader",
            "add",
            "--json",
            "--jobs",
            "1",
            "--no-compress",
            "--library",
            str(lib_dir),
            *map(str, files),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    acknowledged = [json.loads(child.stdout.readline()) for _ in range(3)]
    child.send_signal(signal.SIGKILL)
    child.wait()
    with Library.open(lib_dir, recover=False) as lib:
        states = {s.state for s in lib.uploads()}
        assert "queued" in states or "uploading" in states
    before = {p: p.read_bytes() for p in files}
    with Library.open(lib_dir) as lib:
        states = [s.state for s in lib.uploads()]
        assert "uploading" not in states
        assert list(lib.store.iter_temps()) == []
        for ack in acknowledged:
            assert ack["status"] == "uploaded"
            assert lib.store.verify(ack["sha256"], "raw", ack["size"]) is None
    # adding the same files again reuses the interrupted rows and converges
    proc = cli("add", "--json", "--no-compress", "--library", lib_dir, *files)
    assert proc.returncode == 0, proc.stderr
    with Library.open(lib_dir) as lib:
        uploads = lib.uploads()
        # the interrupted rows were reused; the three already stored got a new row each,
        # pointing at their existing documents
        assert len(uploads) == 33
        assert {s.state for s in uploads} == {"uploaded"}
        assert sum(s.duplicate for s in uploads) == 3
        assert len(lib.documents()) == 30
        assert len(list(lib.store.iter_blobs())) == 30
        assert lib.doctor().ok
    assert {p: p.read_bytes() for p in files} == before


def test_sweep_finishes_a_switch_interrupted_before_the_unlink(
    library: Library, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between committing the .zst and deleting the raw copy: the next sweep
    deletes the raw copy at once, while a young unreferenced blob is kept."""
    p = src / "a.txt"
    p.write_bytes(text_bytes(200_000))
    store(library, p)
    monkeypatch.setattr(library.store, "remove", lambda sha, enc: None)  # the crash
    assert compression.work(library) == 1
    doc = library.documents()[0]
    assert doc.encoding == "zstd"
    assert library.store.exists(doc.sha256, "raw")
    young = library.store.path("cd" * 32)
    young.parent.mkdir(parents=True, exist_ok=True)
    young.write_bytes(b"an upload whose row is not committed yet")
    report = library.sweep()
    assert report.orphans_removed == 1
    assert not library.store.exists(doc.sha256, "raw")
    assert library.store.verify(doc.sha256, "zstd", doc.size) is None
    assert young.exists()
