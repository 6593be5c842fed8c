"""The source changes while it is read (truncated, appended, overwritten, unlinked,
renamed over); a stored blob or the database is corrupted on purpose."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultkit import child_env, recover, run_add, tally, text_bytes, uploader_cmd
from invariants import check, sha256_file

from uploader.core.ingest import copy_in
from uploader.core.library import Library
from uploader.core.retry import LibraryError, UploadError

SIZE = 6 << 20


def big_source(tmp: Path) -> Path:
    p = tmp / "source.txt"
    p.write_bytes(text_bytes(SIZE, seed=8))
    old = time.time() - 100  # written a while ago, as most files are
    os.utime(p, (old, old))
    return p


def truncate(p: Path) -> None:
    os.truncate(p, SIZE // 2)


def append(p: Path) -> None:
    with open(p, "ab") as f:
        f.write(b"more")


def overwrite(p: Path) -> None:
    with open(p, "r+b") as f:  # same size, other bytes, past the part already read
        f.seek(SIZE - 10)
        f.write(b"X" * 10)


CHANGES: dict[str, Callable[[Path], None]] = {
    "truncate": truncate,
    "append": append,
    "overwrite": overwrite,
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_changed_mid_read_is_refused(tmp_path: Path, lib_dir: Path, change: str) -> None:
    src = big_source(tmp_path)
    done = threading.Event()
    first = threading.Event()

    def progress(n: int) -> None:
        if not first.is_set():
            first.set()
            done.wait(10)  # the other thread changes the file now, mid-copy

    def changer() -> None:
        first.wait(10)
        CHANGES[change](src)
        done.set()

    with Library.open(lib_dir) as lib:
        t = threading.Thread(target=changer)
        t.start()
        with pytest.raises(UploadError, match="the file changed while it was being read"):
            copy_in(lib.store, src, progress=progress)
        t.join()
        assert not list(lib.store.iter_temps())
        assert not list(lib.store.iter_blobs())
    tally(faults_injected=1)


@pytest.mark.parametrize("how", ["unlink", "rename-over"])
def test_unlinked_or_replaced_mid_read_keeps_the_old_content(
    tmp_path: Path, lib_dir: Path, how: str
) -> None:
    src = big_source(tmp_path)
    original = hashlib.sha256(src.read_bytes()).hexdigest()
    other = tmp_path / "other.txt"
    other.write_bytes(b"something else entirely")
    calls = [0]

    def progress(n: int) -> None:
        calls[0] += 1
        if calls[0] == 1:
            if how == "unlink":
                src.unlink()
            else:
                os.replace(other, src)

    with Library.open(lib_dir) as lib:
        up = lib.create_uploads([(src, SIZE)])[0]
        assert lib.start_upload(up.id)
        staged = copy_in(lib.store, src, progress=progress)
        # the open descriptor still reads the old file: consistent, whole, hashed
        assert staged.sha256 == original
        snap = lib.record(up.id, staged)
        assert snap.state == "uploaded"
    recover(lib_dir)
    fig = check(lib_dir, recovered=True, expect_all=[original])
    blob = lib_dir / "blobs" / original[:2] / original
    assert sha256_file(blob) == (original, SIZE)
    tally(faults_injected=1, documents_checked=fig.documents)


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


@pytest.mark.parametrize("compressed", [False, True])
def test_corrupted_blob_is_never_served(tmp_path: Path, lib_dir: Path, compressed: bool) -> None:
    src = tmp_path / "doc.txt"
    src.write_bytes(text_bytes(300_000, seed=2))
    proc, acks = run_add(lib_dir, src, extra=() if compressed else ("--no-compress",))
    assert proc.returncode == 0, proc.stderr
    sha = acks[0]["sha256"]
    blob = lib_dir / "blobs" / sha[:2] / (f"{sha}.zst" if compressed else sha)
    assert blob.exists()
    flip(blob, blob.stat().st_size // 2)
    out = tmp_path / "out.txt"
    r = subprocess.run(
        uploader_cmd("export", "--library", lib_dir, str(acks[0]["document_id"]), out),
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip
    assert r.returncode == 1
    assert "damaged" in r.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.txt")]
    doctor = subprocess.run(
        uploader_cmd("doctor", "--json", "--library", lib_dir),
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip
    assert doctor.returncode == 1
    assert "damaged" in doctor.stdout
    with pytest.raises(AssertionError, match=r"partial or damaged|does not decompress"):
        check(lib_dir)
    # repair quarantines it and offers the upload again; the retry reads the source
    repair = subprocess.run(
        uploader_cmd("doctor", "--repair", "--library", lib_dir),
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip
    assert "upload it again" in repair.stdout
    retry = subprocess.run(
        uploader_cmd("retry", "--failed", "--library", lib_dir),
        capture_output=True, text=True, env=child_env(), timeout=120,
    )  # fmt: skip
    assert retry.returncode == 0, retry.stdout + retry.stderr
    check(lib_dir, recovered=True, drained=True, expect_all=[sha])
    assert list((lib_dir / "quarantine").iterdir())
    tally(faults_injected=1, documents_checked=1)


@pytest.mark.parametrize("page", [0, 1])
def test_corrupted_database_is_refused_and_kept(tmp_path: Path, lib_dir: Path, page: int) -> None:
    files = []
    for i in range(40):
        p = tmp_path / f"d{i}.txt"
        p.write_bytes(text_bytes(5000, seed=i))
        files.append(p)
    proc, _ = run_add(lib_dir, *files)
    assert proc.returncode == 0, proc.stderr
    copy = tmp_path / "copy"
    shutil.copytree(lib_dir, copy)
    db = copy / "library.db"
    assert db.stat().st_size >= 3 * 4096
    with open(db, "r+b") as f:
        f.seek(page * 4096 + (100 if page == 0 else 0))  # past the header of page 1
        f.write(os.urandom(4096 - 100))
    before = db.read_bytes()
    with pytest.raises(LibraryError, match="damaged"):
        Library.open(copy)
    with pytest.raises(LibraryError, match="damaged"):
        Library.open(copy, readonly=True)
    r = subprocess.run(
        uploader_cmd("status", "--library", copy),
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert "damaged" in r.stderr
    assert "Traceback" not in r.stderr
    assert db.read_bytes() == before  # kept as it was, never deleted or "repaired"
    recover(lib_dir)  # the original is fine
    check(lib_dir, recovered=True, drained=True)
    tally(faults_injected=1)
