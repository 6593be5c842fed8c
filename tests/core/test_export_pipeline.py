"""Export reads (decompressing), hashes and writes in three threads at once: the same
bytes out, the same verification before the rename, and a failure in any thread is an
ExportError in words that leaves nothing behind."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from uploader.core import compression
from uploader.core import library as library_mod
from uploader.core import store as store_mod
from uploader.core.library import ExportError, Library

from .conftest import text_bytes, tmpfs
from .test_library import store

# more chunks than the pipeline has buffers, and a partial last one
SIZE = (library_mod.EXPORT_DEPTH + 5) * store_mod.CHUNK + 777


def _mixed(seed: int) -> bytes:
    rnd = random.Random(seed)
    return b"".join(
        rnd.randbytes(1 << 20) if i % 2 else text_bytes(1 << 20, seed + i) for i in range(13)
    ) + text_bytes(777, seed)


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".uploader")]


def _no_export_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("export-")]


def _stored(library: Library, src: Path, data: bytes, *, compress: bool) -> int:
    path = src / "doc.bin"
    path.write_bytes(data)
    uid = store(library, path)
    if compress:
        assert compression.work(library) == 1
    doc_id = library.snapshot(uid).document_id
    assert doc_id is not None
    assert library.document(doc_id).encoding == ("zstd" if compress else "raw")
    return doc_id


@pytest.mark.parametrize("compress", [False, True])
def test_many_chunks_round_trip(
    library: Library, src: Path, tmp_path: Path, compress: bool
) -> None:
    data = _mixed(1)
    assert len(data) == SIZE
    doc_id = _stored(library, src, data, compress=compress)
    out = library.export(doc_id, tmp_path / "out.bin")
    assert out.read_bytes() == data
    assert _leftovers(tmp_path) == []
    assert _no_export_threads()


def test_a_blob_that_decodes_to_other_bytes_is_refused(
    library: Library, src: Path, tmp_path: Path
) -> None:
    data = _mixed(2)
    doc_id = _stored(library, src, data, compress=True)
    doc = library.document(doc_id)
    blob = library.store.path(doc.sha256, doc.encoding)
    wrong = bytearray(data)
    wrong[SIZE - 10] ^= 0xFF  # a valid frame, checksum and all, of one byte different
    blob.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(bytes(wrong)))
    with pytest.raises(ExportError, match="does not match its hash"):
        library.export(doc_id, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    assert _leftovers(tmp_path) == []
    assert _no_export_threads()


def test_a_flipped_byte_in_a_raw_blob_is_refused(
    library: Library, src: Path, tmp_path: Path
) -> None:
    data = _mixed(3)
    doc_id = _stored(library, src, data, compress=False)
    doc = library.document(doc_id)
    blob = library.store.path(doc.sha256, doc.encoding)
    with open(blob, "r+b") as f:
        f.seek(5 << 20)
        byte = f.read(1)
        f.seek(5 << 20)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ExportError, match="does not match its hash"):
        library.export(doc_id, tmp_path / "out.bin")
    assert _leftovers(tmp_path) == []


def test_a_damaged_frame_fails_in_the_reading_thread(
    library: Library, src: Path, tmp_path: Path
) -> None:
    data = _mixed(4)
    doc_id = _stored(library, src, data, compress=True)
    doc = library.document(doc_id)
    blob = library.store.path(doc.sha256, doc.encoding)
    raw = bytearray(blob.read_bytes())
    raw[len(raw) * 3 // 4] ^= 0xFF
    blob.write_bytes(bytes(raw))
    with pytest.raises(ExportError, match="damaged"):
        library.export(doc_id, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    assert _leftovers(tmp_path) == []
    assert _no_export_threads()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: too small for the document, so the writing thread hits ENOSPC."""
    yield from tmpfs(tmp_path / "disk", "4m")


def test_a_full_disk_fails_in_the_writing_thread(
    library: Library, src: Path, small_disk: Path
) -> None:
    doc_id = _stored(library, src, _mixed(5), compress=True)
    with pytest.raises(ExportError) as info:
        library.export(doc_id, small_disk / "out.bin")
    assert str(info.value) == "cannot export doc.bin: the disk is full"
    assert list(small_disk.iterdir()) == []
    assert _no_export_threads()
