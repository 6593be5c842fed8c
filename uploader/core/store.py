"""Content-addressed blobs: atomic write, verify, read back. Knows nothing of the database.

A blob lives at blobs/<sha[:2]>/<sha> (raw) or blobs/<sha[:2]>/<sha>.zst (zstd). It
reaches its final name only by rename after its bytes are fsynced, so a file under a
final name is never partial. Temp files live in tmp/ on the same file system.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import queue
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

CHUNK = 1 << 20
RAW = "raw"
ZSTD = "zstd"
TEMP_SUFFIX = ".part"
# How often a long write starts the writeback of what it has written so far.
FLUSH_EVERY = 128 << 20


def _libc_sync_file_range() -> Any:
    if not sys.platform.startswith("linux"):  # pragma: no cover - not Linux
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - a libc without it
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _libc_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing back a range of a file being written, without waiting for it, so
    that the final fsync (which alone makes the file durable) has little left to do.
    Raises OSError as the write would. Elsewhere than Linux it does nothing: the final
    fsync writes everything back."""
    if _sync_file_range is None:  # pragma: no cover - not Linux
        return
    if _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def hash_stream(
    reader: Any, out: int | None = None, *, name: str, depth: int = 8, size: int = CHUNK
) -> tuple[str, int]:
    """Read (`reader.readinto`, e.g. decompressing) in one thread and hash in this one,
    chunk by chunk in order, with `depth` buffers of `size` in flight. With `out`, a third
    thread writes each chunk to that descriptor once hashed (starting the writeback as it
    goes) before the buffer is read into again. The threads are called `name`-read and
    `name`-write. Returns (sha256, bytes); a failure in any thread is raised here, once all
    of them have stopped."""
    free: queue.Queue[bytearray] = queue.Queue()
    for _ in range(depth):
        free.put(bytearray(size))
    to_hash: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
    to_write: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
    failed: list[BaseException] = []

    def read() -> None:
        try:
            while not failed and (n := reader.readinto(buf := free.get())):
                to_hash.put((buf, n))
        except BaseException as exc:
            failed.append(exc)
        finally:
            to_hash.put(None)

    def write(out: int) -> None:
        written = flushed = 0
        while (item := to_write.get()) is not None:
            buf, n = item
            if not failed:
                try:
                    view = memoryview(buf)[:n]
                    while view:
                        if not (done := os.write(out, view)):  # pragma: no cover
                            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                        view = view[done:]
                    written += n
                    if written - flushed >= FLUSH_EVERY:
                        start_writeback(out, flushed, written - flushed)
                        flushed = written
                except BaseException as exc:
                    failed.append(exc)
            free.put(buf)

    threads = [threading.Thread(target=read, name=f"{name}-read", daemon=True)]
    if out is not None:
        threads.append(
            threading.Thread(target=write, args=(out,), name=f"{name}-write", daemon=True)
        )
    for t in threads:
        t.start()
    digest = hashlib.sha256()
    total = 0
    try:
        while (item := to_hash.get()) is not None:
            digest.update(memoryview(item[0])[: item[1]])
            total += item[1]
            if out is not None:
                to_write.put(item)
            else:
                free.put(item[0])
    except BaseException as exc:  # pragma: no cover - hashing itself does not fail
        failed.append(exc)  # the reader stops; give back what it still sends
        while (item := to_hash.get()) is not None:
            free.put(item[0])
        raise
    finally:
        to_write.put(None)
        for t in threads:
            t.join()
    if failed:
        raise failed[0]
    return digest.hexdigest(), total


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable (a no-op where folders cannot be opened)."""
    if os.name == "nt":  # pragma: no cover - Windows cannot fsync a folder
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.tmp = root / "tmp"
        self.quarantine = root / "quarantine"

    def create_folders(self) -> None:
        for folder in (self.blobs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str, encoding: str = RAW) -> Path:
        name = sha256 + (".zst" if encoding == ZSTD else "")
        return self.blobs / sha256[:2] / name

    def new_temp(self) -> Path:
        return self.tmp / f"{uuid.uuid4().hex}{TEMP_SUFFIX}"

    def publish(self, temp: Path, sha256: str, encoding: str = RAW) -> Path:
        """Rename an fsynced temp file to its final name and make the rename durable.

        Replaces a file already there: same address, same bytes, so the swap is safe
        and a stray copy left by a crash is refreshed rather than trusted.
        """
        final = self.place(temp, sha256, encoding)
        fsync_dir(final.parent)
        return final

    def place(self, temp: Path, sha256: str, encoding: str = RAW) -> Path:
        """`publish` without the folder fsync: the caller fsyncs `result.parent` (once for
        several renames into the same folder) before it relies on the rename."""
        final = self.path(sha256, encoding)
        folder = final.parent
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.blobs)
        os.replace(temp, final)
        return final

    def remove(self, sha256: str, encoding: str) -> None:
        path = self.path(sha256, encoding)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            fsync_dir(path.parent)

    def exists(self, sha256: str, encoding: str) -> bool:
        return self.path(sha256, encoding).exists()

    @contextlib.contextmanager
    def open_plain(self, sha256: str, encoding: str) -> Iterator[BinaryIO]:
        """A reader of the document's original bytes, decompressing where needed."""
        with open(self.path(sha256, encoding), "rb") as raw:
            if encoding == ZSTD:
                dctx = zstandard.ZstdDecompressor()
                with dctx.stream_reader(raw, read_size=CHUNK, closefd=False) as reader:
                    yield reader  # type: ignore[misc]
            else:
                yield raw

    def verify(self, sha256: str, encoding: str, size: int | None = None) -> str | None:
        """None when the blob hashes to its address (and size); else what is wrong."""
        path = self.path(sha256, encoding)
        if not path.exists():
            return "missing"
        digest = hashlib.sha256()
        total = 0
        try:
            with self.open_plain(sha256, encoding) as reader:
                while chunk := reader.read(CHUNK):
                    digest.update(chunk)
                    total += len(chunk)
        except zstandard.ZstdError as exc:
            return f"damaged (cannot decompress: {exc})"
        except OSError as exc:
            return f"unreadable ({exc.strerror or exc})"
        if digest.hexdigest() != sha256:
            return "damaged (its content does not match its hash)"
        if size is not None and total != size:
            return f"damaged (size {total}, expected {size})"
        return None

    def iter_blobs(self) -> Iterator[tuple[str, str, Path]]:
        """(sha256, encoding, path) of every file under a final name."""
        if not self.blobs.exists():
            return
        for folder in sorted(self.blobs.iterdir()):
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                name = path.name
                if name.endswith(".zst"):
                    yield name[:-4], ZSTD, path
                else:
                    yield name, RAW, path

    def iter_temps(self) -> Iterator[Path]:
        if self.tmp.exists():
            yield from self.tmp.iterdir()

    def quarantine_blob(self, path: Path) -> Path:
        self.quarantine.mkdir(exist_ok=True)
        dest = self.quarantine / f"{path.name}.{uuid.uuid4().hex[:8]}"
        os.replace(path, dest)
        fsync_dir(path.parent)
        return dest
