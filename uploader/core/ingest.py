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
from .store import FLUSH_EVERY, BlobStore, start_writeback

CHUNK = 1 << 20
# From this size on, one thread copies while another reads the copy back and hashes it.
OVERLAP_FROM = 16 << 20
# What one copy_file_range call asks the kernel for.
KERNEL_STEP = 8 << 20
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
    # read and write: the big-file copy reads the temp file back to hash it
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        out = os.open(temp, flags, 0o644)
    except OSError as exc:
        raise UploadError(*_words(exc, "while writing to the library")) from exc
    try:
        if size >= OVERLAP_FROM and hasattr(os, "preadv"):
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
    """Copy in one thread, read the copy back and hash it in this one, chunk by chunk.

    The copying thread has the kernel copy (`copy_file_range`: the bytes never pass
    through Python) and starts the writeback every FLUSH_EVERY bytes. The hash is of the
    bytes stored, read back from the temp file, whatever the source does meanwhile;
    whether the source changed is the caller's size/mtime check, as for any copy.
    """
    cond = threading.Condition()
    copied = [0]
    done = [False]
    stop = [False]
    failed: list[BaseException] = []

    def copier() -> None:
        view = memoryview(bytearray(CHUNK))
        kernel = hasattr(os, "copy_file_range")
        flushed = 0
        total = 0
        try:
            while not stop[0]:
                n, kernel = _copy_chunk(fd, out, view, kernel)
                if n == 0:
                    break
                total += n
                with cond:
                    copied[0] = total
                    cond.notify()
                if total - flushed >= FLUSH_EVERY:
                    _writeback(out, flushed, total - flushed)
                    flushed = total
        except BaseException as exc:
            failed.append(exc)
        finally:
            with cond:
                done[0] = True
                cond.notify()

    thread = threading.Thread(target=copier, name="ingest-copy", daemon=True)
    thread.start()
    view = memoryview(bytearray(CHUNK))
    head = b""
    tail = b""
    pos = 0
    try:
        while True:
            if cancelled is not None and cancelled():
                raise UploadError(Kind.CANCELLED, "cancelled")
            with cond:
                if copied[0] <= pos and not done[0]:
                    cond.wait(0.1)  # then look at `cancelled` again
                ready = copied[0] - pos
                finished = done[0]
            if failed or (ready <= 0 and finished):
                break
            if ready <= 0:
                continue
            n = _read_back(out, view[: min(ready, CHUNK)], pos)
            chunk = view[:n]
            digest.update(chunk)
            if len(head) < formats.HEAD:
                head += bytes(chunk[: formats.HEAD - len(head)])
            tail = (
                bytes(chunk[-formats.TAIL :])
                if n >= formats.TAIL
                else (tail + bytes(chunk))[-formats.TAIL :]
            )
            pos += n
            if progress is not None:
                progress(pos)
    finally:
        stop[0] = True
        thread.join()
    if failed:
        raise failed[0]
    _truncate(out, pos)
    return pos, head, tail


def _truncate(out: int, size: int) -> None:
    """Cut the copy to the bytes hashed: a kernel copy that failed after writing part of
    its chunk may have left bytes that its retry through Python did not write over."""
    try:
        if os.fstat(out).st_size != size:
            os.ftruncate(out, size)
    except OSError as exc:
        raise UploadError(*_words(exc, "while saving to the library")) from exc


def _copy_chunk(fd: int, out: int, view: memoryview, kernel: bool) -> tuple[int, bool]:
    """Copy the next chunk from `fd` to `out` (both at their file positions): by the
    kernel while `kernel`, else through `view`. Returns (bytes copied, kernel).

    Any failure of the kernel copy (another file system, no support, a full disk, an
    I/O error) is retried through Python, where the failing side raises in its words;
    the rest of the file then goes through Python too. An end of file the kernel
    reports is checked with a read (some file systems report none).
    """
    if kernel:
        try:
            n = os.copy_file_range(fd, out, KERNEL_STEP)
        except OSError:
            kernel = False
        else:
            if n:
                return n, kernel
            kernel = False
    n = _read(fd, view)
    if n:
        _write_all(out, view[:n])
    return n, kernel


def _read_back(out: int, view: memoryview, pos: int) -> int:
    try:
        n = os.preadv(out, [view], pos)
    except OSError as exc:
        raise UploadError(*_words(exc, "while saving to the library")) from exc
    if n == 0:  # the temp file is shorter than what was copied into it
        raise UploadError(*_words(OSError(errno.EIO, "short read"), "while saving to the library"))
    return n


def _writeback(out: int, offset: int, length: int) -> None:
    try:
        start_writeback(out, offset, length)
    except OSError as exc:
        raise UploadError(*_words(exc, "while saving to the library")) from exc


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
