"""One file in, the critical path: open safely, copy and hash into a temp file, check it,
make it durable under its content address. The caller records it afterwards.

Never modifies the source; never leaves a temp file behind on failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import queue
import shutil
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import formats
from .events import format_size
from .retry import Kind, UploadError, describe
from .store import BlobStore

CHUNK = 1 << 20
# From this size on, reading, hashing and writing run in three threads at once.
OVERLAP_FROM = 16 << 20
OVERLAP_DEPTH = 8
FLUSH_EVERY = 128 << 20
# Kept free beyond the file itself, so that the database and the journal can grow.
RESERVE = 8 << 20

Progress = Callable[[int], None]
Cancelled = Callable[[], bool]


@dataclass(frozen=True)
class Staged:
    """A copy that is hashed, checked and fsynced in the temp folder, not yet published."""

    temp: Path
    sha256: str
    size: int
    name: str
    # already renamed to its content address (temp is then the blob itself)
    published: bool = False


def _refuse_not_regular(mode: int) -> UploadError:
    if stat.S_ISDIR(mode):
        what = "a folder"
    elif stat.S_ISFIFO(mode):
        what = "a named pipe (FIFO)"
    elif stat.S_ISSOCK(mode):
        what = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        what = "a device"
    else:
        what = "a special file"
    return UploadError(Kind.NOT_REGULAR, f"not a regular file: it is {what}")


def open_source(path: Path) -> tuple[int, os.stat_result]:
    """Open `path` for reading only if it is a regular file; never blocks on a FIFO."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise UploadError(
                Kind.NOT_REGULAR, "the symbolic link points to nothing (dangling symlink)"
            ) from None
        raise UploadError(Kind.VANISHED, "the file vanished (it is no longer there)") from None
    except OSError as exc:
        raise UploadError(*_words(exc, "while opening the file")) from exc
    if stat.S_ISDIR(st.st_mode):
        # a folder reaches here when it could not be listed: say why, not what it is
        try:
            os.scandir(path).close()
        except OSError as exc:
            kind, reason = _words(exc, "")
            raise UploadError(kind, f"{reason} (the folder cannot be opened)") from exc
    if not stat.S_ISREG(st.st_mode):
        raise _refuse_not_regular(st.st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UploadError(Kind.VANISHED, "the file vanished (it is no longer there)") from None
    except OSError as exc:
        raise UploadError(*_words(exc, "while opening the file")) from exc
    fst = os.fstat(fd)
    if not stat.S_ISREG(fst.st_mode):  # swapped for something else since the stat
        os.close(fd)
        raise _refuse_not_regular(fst.st_mode)
    return fd, fst


def _words(exc: BaseException, where: str) -> tuple[str, str]:
    failure = describe(exc, where)
    return failure.kind, failure.reason


def check_space(store: BlobStore, size: int) -> None:
    free = shutil.disk_usage(store.tmp).free
    if size + RESERVE > free:
        raise UploadError(
            Kind.NO_SPACE,
            f"not enough free space: needs {format_size(size)}, {format_size(free)} free",
        )


def copy_in(
    store: BlobStore,
    path: Path,
    *,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
    check_corrupt: bool = True,
    durable: bool = True,
) -> Staged:
    """Copy `path` into a fsynced temp file, hashing and checking it on the way.

    Raises UploadError with the reason in words; the temp file is gone then. With
    `durable=False` the caller must `fsync_file(staged.temp)` before publishing it.
    """
    fd, before = open_source(path)
    temp: Path | None = None
    try:
        check_space(store, before.st_size)
        temp = store.new_temp()
        sha, total, head, tail = _stream(fd, temp, progress, cancelled, before.st_size, durable)
        after = os.fstat(fd)
        if (
            total != before.st_size
            or after.st_size != before.st_size
            or after.st_mtime_ns != before.st_mtime_ns
        ):
            raise UploadError(Kind.CHANGED, "the file changed while it was being read")
        if check_corrupt and (why := formats.corruption(head, tail)):
            raise UploadError(Kind.CORRUPT, f"corrupted ({why})")
        return Staged(temp=temp, sha256=sha, size=total, name=path.name)
    except BaseException:
        if temp is not None:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise
    finally:
        os.close(fd)


def _stream(
    fd: int,
    temp: Path,
    progress: Progress | None,
    cancelled: Cancelled | None,
    size: int = 0,
    durable: bool = True,
) -> tuple[str, int, bytes, bytes]:
    digest = hashlib.sha256()
    # no more than the file needs (and one byte to see its end): zeroing a whole chunk
    # cost a small file more than its copy
    buf = bytearray(min(CHUNK, size + 1) if size >= 0 else CHUNK)
    view = memoryview(buf)
    head = b""
    tail = b""
    total = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        out = os.open(temp, flags, 0o644)
    except OSError as exc:
        raise UploadError(*_words(exc, "while writing to the library")) from exc
    try:
        if size >= OVERLAP_FROM:
            total, head, tail = _overlapped(fd, out, digest, progress, cancelled)
        else:
            while True:
                if cancelled is not None and cancelled():
                    raise UploadError(Kind.CANCELLED, "cancelled")
                n = _read(fd, view)
                if n == 0:
                    break
                chunk = view[:n]
                digest.update(chunk)
                _write_all(out, chunk)
                if len(head) < formats.HEAD:
                    head += bytes(chunk[: formats.HEAD - len(head)])
                tail = (
                    bytes(chunk[-formats.TAIL :])
                    if n >= formats.TAIL
                    else (tail + chunk)[-formats.TAIL :]
                )
                total += n
                if progress is not None:
                    progress(total)
        if durable:
            _fsync(out)
    finally:
        os.close(out)
    return digest.hexdigest(), total, head, tail


def _fsync(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        raise UploadError(*_words(exc, "while saving to the library")) from exc


def fsync_file(path: Path) -> None:
    """Make a copy made with `durable=False` durable (UploadError in words if not)."""
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise UploadError(*_words(exc, "while saving to the library")) from exc
    try:
        _fsync(fd)
    finally:
        os.close(fd)


def _read(fd: int, view: memoryview) -> int:
    while True:
        try:
            return os.readv(fd, [view]) if hasattr(os, "readv") else _read_into(fd, view)
        except BlockingIOError:
            continue
        except OSError as exc:
            raise UploadError(*_words(exc, "while reading the file")) from exc


def _overlapped(
    fd: int,
    out: int,
    digest: Any,
    progress: Progress | None,
    cancelled: Cancelled | None,
) -> tuple[int, bytes, bytes]:
    """Read here, hash in one thread, write in another, chunk by chunk in order.

    The bytes written are the bytes hashed: each buffer goes read → hash → write and
    only then back to be read into again.
    """
    free: queue.Queue[bytearray] = queue.Queue()
    for _ in range(OVERLAP_DEPTH):
        free.put(bytearray(CHUNK))
    to_hash: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
    to_write: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
    failed: list[BaseException] = []

    def hasher() -> None:
        while (item := to_hash.get()) is not None:
            digest.update(memoryview(item[0])[: item[1]])
            to_write.put(item)
        to_write.put(None)

    flush = threading.Event()
    done = threading.Event()

    def writer() -> None:
        unflushed = 0
        while (item := to_write.get()) is not None:
            if not failed:
                try:
                    _write_all(out, memoryview(item[0])[: item[1]])
                except BaseException as exc:
                    failed.append(exc)
            free.put(item[0])
            unflushed += item[1]
            if unflushed >= FLUSH_EVERY:
                unflushed = 0
                flush.set()
        done.set()
        flush.set()

    def flusher() -> None:
        # Writes back what is written so far while the copy goes on, so that the final
        # fsync (which alone makes the copy durable) has little left to do.
        while True:
            flush.wait()
            flush.clear()
            if done.is_set() or failed:
                return
            try:
                os.fdatasync(out)
            except OSError as exc:
                failed.append(UploadError(*_words(exc, "while saving to the library")))
                return

    threads = [
        threading.Thread(target=hasher, name="ingest-hash", daemon=True),
        threading.Thread(target=writer, name="ingest-write", daemon=True),
        threading.Thread(target=flusher, name="ingest-flush", daemon=True),
    ]
    for t in threads:
        t.start()
    head = b""
    tail = b""
    total = 0
    try:
        while not failed:
            if cancelled is not None and cancelled():
                raise UploadError(Kind.CANCELLED, "cancelled")
            buf = free.get()
            n = _read(fd, memoryview(buf))
            if n == 0:
                break
            if len(head) < formats.HEAD:
                head += bytes(buf[: formats.HEAD - len(head)])
            tail = (
                bytes(buf[max(0, n - formats.TAIL) : n])
                if n >= formats.TAIL
                else (tail + bytes(buf[:n]))[-formats.TAIL :]
            )
            to_hash.put((buf, n))
            total += n
            if progress is not None:
                progress(total)
    finally:
        to_hash.put(None)
        for t in threads:
            t.join()
    if failed:
        raise failed[0]
    return total, head, tail


def _read_into(fd: int, view: memoryview) -> int:  # pragma: no cover - Windows
    data = os.read(fd, len(view))
    view[: len(data)] = data
    return len(data)


def _write_all(fd: int, chunk: memoryview) -> None:
    while chunk:
        try:
            n = os.write(fd, chunk)
        except OSError as exc:
            raise UploadError(*_words(exc, "while writing to the library")) from exc
        if n == 0:  # pragma: no cover - a write of nothing means no space
            raise UploadError(*_words(OSError(errno.ENOSPC, "no space"), ""))
        chunk = chunk[n:]


def publish(store: BlobStore, staged: Staged) -> Staged:
    """Rename a staged copy to its content address and fsync the folder: done here, in
    the copying thread, so that recording stays a database transaction only.

    A blob whose row is never committed is unreferenced and young; the sweep collects
    it once it is old. On failure the temp file is gone.
    """
    try:
        final = store.publish(staged.temp, staged.sha256)
    except BaseException:
        discard(staged)
        raise
    return dataclasses.replace(staged, temp=final, published=True)


def discard(staged: Staged) -> None:
    """Drop a staged copy; a published one stays (it may be another upload's blob)."""
    if staged.published:
        return
    with contextlib.suppress(FileNotFoundError):
        staged.temp.unlink()
