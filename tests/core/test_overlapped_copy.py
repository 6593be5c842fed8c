"""Big files are read, hashed and written by three threads at once: the same result,
the same checks and the same failures as the one-thread copy."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

from uploader.core import ingest
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


def test_write_failure_stops_every_thread(
    library: Library, src: Path, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    assert _no_ingest_threads()

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

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", eio)
    with pytest.raises(UploadError) as info:
        ingest.copy_in(library.store, path)
    assert info.value.kind == Kind.IO
    assert list(library.store.iter_temps()) == []
    assert _no_ingest_threads()
