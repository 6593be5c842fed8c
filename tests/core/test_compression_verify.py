"""The compression job verifies its output by decompressing it (in a second thread) and
hashing it; a copy that does not decompress to the original is never switched to."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import zstandard

from uploader.core import compression, ingest
from uploader.core.library import Library


def _store(library: Library, path: Path) -> int:
    (up,) = library.create_uploads([(path, None)])
    library.start_upload(up.id)
    snap = library.record(up.id, ingest.copy_in(library.store, path))
    assert snap.document_id is not None
    library.queue_compression(snap.document_id)
    return snap.document_id


def _text(n: int) -> bytes:
    line = b"a line of a long report that compresses well, page after page\n"
    return (line * (n // len(line) + 1))[:n]


def test_big_document_is_compressed_and_verified(library: Library, src: Path) -> None:
    data = _text(compression.THREADED_FROM + (3 << 20))
    path = src / "report.txt"
    path.write_bytes(data)
    doc_id = _store(library, path)
    assert compression.work(library) == 1
    doc = library.document(doc_id)
    assert (doc.compression, doc.encoding) == ("done", "zstd")
    assert library.store.verify(doc.sha256, "zstd", doc.size) is None
    assert not library.store.exists(doc.sha256, "raw")
    blob = library.store.path(doc.sha256, "zstd").read_bytes()
    assert zstandard.ZstdDecompressor().decompress(blob) == data


def test_wrong_output_is_never_switched_to(
    library: Library, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = src / "report.txt"
    path.write_bytes(_text(2 << 20))
    doc_id = _store(library, path)

    def wrong(src_: Path, temp: Path, size: int, level: int, *rest: object) -> int:
        temp.write_bytes(zstandard.ZstdCompressor().compress(_text(size - 1) + b"!"))
        return temp.stat().st_size

    monkeypatch.setattr(compression, "_write_zstd", wrong)
    job = compression.claim(library, "test")
    assert job is not None
    with pytest.raises(ValueError, match="did not decompress to the original"):
        compression.compress(library.store, job)
    compression.fail(library, job, ValueError("mismatch"))
    doc = library.document(doc_id)
    assert doc.encoding == "raw"
    assert library.store.verify(doc.sha256, "raw", doc.size) is None
    assert not library.store.exists(doc.sha256, "zstd")
    assert list(library.store.iter_temps()) == []


def test_undecodable_output_fails_the_job(
    library: Library, src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = src / "report.txt"
    path.write_bytes(_text(2 << 20))
    _store(library, path)

    def garbage(src_: Path, temp: Path, *rest: object) -> int:
        temp.write_bytes(b"\x28\xb5\x2f\xfd" + b"not a zstd frame" * 100)
        return temp.stat().st_size

    monkeypatch.setattr(compression, "_write_zstd", garbage)
    job = compression.claim(library, "test")
    assert job is not None
    with pytest.raises(zstandard.ZstdError):
        compression.compress(library.store, job)
    assert list(library.store.iter_temps()) == []
    assert [t.name for t in threading.enumerate() if t.name.startswith("verify")] == []
