"""Big files are copied in one thread (by the kernel where it can) while another reads
the copy back and hashes it: the same result, the same checks and the same failures as
the one-thread copy, and the hash is always of the bytes stored."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

from uploader.core import ingest, store
from uploader.core.library import Library
from uploader.core.retry import Kind, UploadError

SIZE = ingest.OVERLAP_FROM + 3 * ingest.CHUNK + 12345


def _big(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _no_ingest_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("ingest-")]


@pytest.fixture
def data() -> bytes:
    return random.Random(7).randbytes(SIZE)


def _no_kernel_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """As between two file systems: the kernel refuses, every chunk goes through Python."""

    def exdev(*args: object, **kwargs: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", exdev)


def test_copy_matches_source(library: Library, src: Path, data: bytes) -> None:
    seen: list[int] = []
    staged = ingest.copy_in(library.store, _big(src / "big.bin", data), progress=seen.append)
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.size == SIZE
    assert staged.temp.read_bytes() == data
    assert seen == sorted(seen)
    assert seen[-1] == SIZE
    assert _no_ingest_threads()


def test_truncated_big_pdf_is_refused(library: Library, src: Path, data: bytes) -> None:
    pdf = _big(src / "scan.pdf", b"%PDF-1.7\n" + data)  # no %%EOF at its end
    with pytest.raises(UploadError) as info:
        ingest.copy_in(library.store, pdf)
    assert info.value.kind == Kind.CORRUPT
    assert list(library.store.iter_temps()) == []
    ok = _big(src / "whole.pdf", b"%PDF-1.7\n" + data + b"\n%%EOF\n")
    assert ingest.copy_in(library.store, ok).size == SIZE + 16


def test_kernel_copy_refused_or_short_goes_through_python(
    library: Library, src: Path, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _big(src / "big.bin", data)
    _no_kernel_copy(monkeypatch)
    staged = ingest.copy_in(library.store, path)
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.temp.read_bytes() == data
    staged.temp.unlink()

    real = ingest._read
    reads = [0]

    def counting(fd: int, view: memoryview) -> int:
        reads[0] += 1
        return real(fd, view)

    # a file system whose kernel copy reports the end too early: a read says otherwise
    monkeypatch.setattr(os, "copy_file_range", lambda *a, **k: 0)
    monkeypatch.setattr(ingest, "_read", counting)
    staged = ingest.copy_in(library.store, path)
    assert staged.temp.read_bytes() == data
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert reads[0] > 1
    assert _no_ingest_threads()


def test_a_failed_kernel_copy_leaves_only_the_bytes_hashed(
    library: Library, src: Path, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _big(src / "big.bin", data)
    real = os.copy_file_range
    calls = [0]

    def spills(src_fd: int, dst_fd: int, count: int, *args: object) -> int:
        calls[0] += 1
        if calls[0] == 2:  # fails after writing where the retry will not write again
            os.pwrite(dst_fd, b"junk" * 1024, SIZE)
            raise OSError(errno.EIO, "Input/output error")
        return real(src_fd, dst_fd, count)

    monkeypatch.setattr(os, "copy_file_range", spills)
    staged = ingest.copy_in(library.store, path)
    assert calls[0] == 2
    assert staged.temp.read_bytes() == data
    assert staged.sha256 == hashlib.sha256(data).hexdigest()


def test_the_hash_is_of_the_bytes_stored_when_the_source_changes(
    library: Library, src: Path, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _big(src / "big.bin", data)
    gate = threading.Event()
    real = ingest._copy_chunk
    chunks = [0]

    def gated(fd: int, out: int, view: memoryview, kernel: bool) -> tuple[int, bool]:
        chunks[0] += 1
        if chunks[0] > 1:  # the rest waits until the source has changed
            gate.wait(10)
        return real(fd, out, view, kernel)

    def change(done: int) -> None:  # another program rewrites the end, same size
        if not gate.is_set():
            with open(path, "r+b") as f:
                f.seek(SIZE - 4096)
                f.write(b"x" * 4096)
            gate.set()

    monkeypatch.setattr(ingest, "_copy_chunk", gated)
    temp = library.store.new_temp()
    fd, _ = ingest.open_source(path)
    try:
        sha, total, _, _ = ingest._stream(fd, temp, change, None, SIZE)
    finally:
        os.close(fd)
    stored = temp.read_bytes()
    assert stored[-4096:] == b"x" * 4096  # the change was copied
    assert sha == hashlib.sha256(stored).hexdigest()
    assert total == SIZE
    temp.unlink()

    # and the whole copy says the file changed, leaving nothing behind
    path.write_bytes(data)
    gate.clear()
    chunks[0] = 0
    with pytest.raises(UploadError) as info:
        ingest.copy_in(library.store, path, progress=change)
    assert info.value.kind == Kind.CHANGED
    assert info.value.reason == "the file changed while it was being read"
    assert list(library.store.iter_temps()) == []
    assert _no_ingest_threads()


def test_write_failure_stops_every_thread(
    library: Library, src: Path, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_kernel_copy(monkeypatch)
    real = ingest._write_all
    calls = [0]

    def full(fd: int, chunk: memoryview) -> None:
        calls[0] += 1
        if calls[0] == 5:
            raise UploadError(Kind.NO_SPACE, "the disk is full")
        real(fd, chunk)

    monkeypatch.setattr(ingest, "_write_all", full)
    with pytest.raises(UploadError) as info:
        ingest.copy_in(library.store, _big(src / "big.bin", data))
    assert info.value.kind == Kind.NO_SPACE
    assert list(library.store.iter_temps()) == []
    assert _no_ingest_threads()


def test_read_failure_and_cancel_stop_every_thread(
    library: Library, src: Path, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _big(src / "big.bin", data)
    polls = [0]

    def cancelled() -> bool:
        polls[0] += 1
        return polls[0] > 3

    with pytest.raises(UploadError) as info:
        ingest.copy_in(library.store, path, cancelled=cancelled)
    assert info.value.kind == Kind.CANCELLED
    assert list(library.store.iter_temps()) == []
    assert _no_ingest_threads()

    _no_kernel_copy(monkeypatch)
    real = ingest._read
    reads = [0]

    def failing(fd: int, view: memoryview) -> int:
        reads[0] += 1
        if reads[0] == 7:
            raise UploadError(Kind.IO, "the disk reported an error")
        return real(fd, view)

    monkeypatch.setattr(ingest, "_read", failing)
    with pytest.raises(UploadError) as info:
        ingest.copy_in(library.store, path)
    assert info.value.reason == "the disk reported an error"
    assert list(library.store.iter_temps()) == []
    assert _no_ingest_threads()


def test_failed_early_writeback_fails_the_copy(
    library: Library, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "FLUSH_EVERY", 4 << 20)
    path = _big(src / "big.bin", random.Random(8).randbytes(SIZE))

    calls = [0]

    def eio(fd: int, offset: int, length: int, flags: int) -> int:
        calls[0] += 1
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(store, "_sync_file_range", eio)
    with pytest.raises(UploadError) as info:
        ingest.copy_in(library.store, path)
    assert calls[0] == 1
    assert info.value.kind == Kind.IO
    assert info.value.reason == "an I/O error while saving to the library"
    assert list(library.store.iter_temps()) == []
    assert _no_ingest_threads()
