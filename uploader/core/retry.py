"""Error classification in words a person reads, and backoff for a busy database.

Walks the exception chain to the real cause; never decides what to store.
"""

from __future__ import annotations

import errno
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Kind:
    """Failure kinds: stable strings that scripts and the window can rely on."""

    NOT_REGULAR = "not_regular"
    VANISHED = "vanished"
    PERMISSION = "permission"
    DISK_FULL = "disk_full"
    NO_SPACE = "no_space"
    IO = "io"
    NAME_TOO_LONG = "name_too_long"
    TOO_LARGE = "too_large"
    CHANGED = "changed"
    CORRUPT = "corrupt"
    LOCKED = "locked"
    CANCELLED = "cancelled"
    DATABASE = "database"
    UNKNOWN = "unknown"


class UploadError(Exception):
    """A file could not be stored; `reason` is shown to the person as is."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class LibraryError(Exception):
    """The library as a whole cannot be used (locked, damaged, too new)."""


class LibraryLocked(LibraryError):
    """Another process writes to this library."""

    def __init__(self, pid: int | None) -> None:
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"this library is in use by another Uploader{who}")
        self.pid = pid


@dataclass(frozen=True)
class Failure:
    kind: str
    reason: str


_ERRNO_WORDS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: (Kind.DISK_FULL, "the disk is full"),
    errno.EDQUOT: (Kind.DISK_FULL, "the disk quota is exhausted"),
    errno.EACCES: (Kind.PERMISSION, "permission denied"),
    errno.EPERM: (Kind.PERMISSION, "permission denied"),
    errno.ENOENT: (Kind.VANISHED, "the file vanished"),
    errno.ENAMETOOLONG: (Kind.NAME_TOO_LONG, "the name is too long"),
    errno.EFBIG: (Kind.TOO_LARGE, "the file is too large for the library's file system"),
    errno.EROFS: (Kind.IO, "the library's disk is read-only"),
    errno.ELOOP: (Kind.NOT_REGULAR, "too many levels of symbolic links (a symlink loop)"),
    errno.ENOTCONN: (Kind.VANISHED, "the file's disk or network share was disconnected"),
    # what a read in flight gets when a FUSE daemon dies (the next ones get ENOTCONN)
    errno.ECONNABORTED: (Kind.VANISHED, "the file's disk or network share was disconnected"),
    errno.ESTALE: (Kind.VANISHED, "the file's network share was disconnected"),
    errno.ENODEV: (Kind.VANISHED, "the file's device is gone"),
    errno.ENXIO: (Kind.VANISHED, "the file's device is gone"),
    errno.EIO: (Kind.IO, "an I/O error"),
    errno.EXDEV: (Kind.IO, "the library's folders are on different file systems"),
}


def chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes/contexts, outermost first, without cycles."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and all(cur is not s for s in seen):
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def root_cause(exc: BaseException) -> BaseException:
    """The first OSError or sqlite3.Error down the chain, else the exception itself.

    peewee wraps sqlite3 errors and a failed ROLLBACK hides the failed COMMIT; the
    person must read the first real cause ("disk full"), not the last symptom.
    """
    for link in reversed(chain(exc)):
        if isinstance(link, (OSError, sqlite3.Error)):
            return link
    for link in chain(exc):
        if type(link).__module__ == "peewee" and link.__cause__ is None:
            return link
    return exc


def is_locked(exc: BaseException) -> bool:
    """True when the cause is SQLite's 'database is locked' / busy."""
    for link in chain(exc):
        text = str(link).lower()
        if "database is locked" in text or "database table is locked" in text:
            return True
        code = getattr(link, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
            return True
    return False


def describe(exc: BaseException, where: str = "") -> Failure:
    """Kind and words for an exception; `where` says which side failed."""
    if isinstance(exc, UploadError):
        return Failure(exc.kind, exc.reason)
    for link in chain(exc):
        if isinstance(link, UploadError):
            return Failure(link.kind, link.reason)
    cause = root_cause(exc)
    suffix = f" {where}" if where else ""
    if isinstance(cause, OSError) and cause.errno in _ERRNO_WORDS:
        kind, words = _ERRNO_WORDS[cause.errno]
        if kind == Kind.IO and cause.errno == errno.EIO:
            words = f"an I/O error{suffix}"
        return Failure(kind, words)
    if isinstance(cause, OSError):
        return Failure(Kind.IO, f"{cause.strerror or cause}{suffix}")
    if isinstance(cause, sqlite3.Error) or type(cause).__module__ == "peewee":
        text = str(cause).lower()
        if is_locked(cause):
            return Failure(Kind.LOCKED, "the library is busy (database is locked)")
        if "full" in text:
            return Failure(Kind.DISK_FULL, "the disk is full")
        if "disk i/o" in text:
            return Failure(Kind.IO, "an I/O error in the library's database")
        if "readonly" in text or "read-only" in text:
            return Failure(Kind.DATABASE, "the library's database is read-only")
        return Failure(Kind.DATABASE, f"the library's database failed: {cause}")
    return Failure(Kind.UNKNOWN, f"unexpected error: {type(cause).__name__}: {cause}")


def backoff(attempt: int, base: float = 0.05, cap: float = 2.0) -> float:
    """Delay before retry number `attempt` (0-based): base × 2^n, capped, with jitter."""
    delay: float = min(cap, base * (2**attempt))
    return delay * (0.5 + random.random() / 2)


def retry_locked(
    fn: Callable[[], T],
    *,
    attempts: int = 5,
    base: float = 0.05,
    cap: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call fn, retrying with backoff while SQLite says the database is locked.

    Makes `attempts` tries in all; the last error propagates.
    """
    for n in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if not is_locked(exc) or n == attempts - 1:
                raise
            delay = backoff(n, base, cap)
            log.info("database is locked; retry %d in %.3fs", n + 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
