"""A library folder: database + blob store + lock. Opening, migration, recovery, sweep,
doctor, export, and the short write transactions the engine asks for.

Every write is one short BEGIN IMMEDIATE transaction, retried with backoff while the
database is locked; no transaction is held across file I/O.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import peewee as pw
import zstandard
from platformdirs import user_data_path

from . import models
from .events import DocumentSnapshot, UploadSnapshot
from .ingest import Staged, discard
from .models import Compression, Document, Job, Upload, UploadState, db, rows
from .retry import Kind, LibraryError, LibraryLocked, describe, retry_locked
from .store import RAW, ZSTD, BlobStore, fsync_dir, hash_stream

log = logging.getLogger(__name__)
T = TypeVar("T")

DB_NAME = "library.db"
LOCK_NAME = "lock"
# Unreferenced blobs and temp files younger than this may belong to work in flight.
GRACE = 3600.0
MAX_JOB_ATTEMPTS = 5


def default_root() -> Path:
    """UPLOADER_LIBRARY, else platformdirs' user data folder for Uploader."""
    env = os.environ.get("UPLOADER_LIBRARY")
    if env:
        return Path(env).expanduser()
    return user_data_path("Uploader", appauthor=False) / "library"


class _Lock:
    """An exclusive advisory lock on the library's lock file, holding our pid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LibraryError(
                f"cannot open the library at {self.path.parent}: {describe(exc).reason}"
            ) from exc
        try:
            _lock_fd(fd)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise LibraryLocked(pid) from None
        # the pid only names the holder in messages; the flock is the lock, so a full
        # disk that refuses these few bytes must not stop the library from opening
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = None


def _lock_fd(fd: int) -> None:
    if os.name == "nt":  # pragma: no cover
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode().strip() or 0) or None
    return None


@dataclass
class Problem:
    kind: str
    message: str
    repaired: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "repaired": self.repaired}


@dataclass
class Report:
    """What a sweep or doctor found, and what it did."""

    problems: list[Problem] = field(default_factory=list)
    queued: int = 0
    reclaimed: int = 0
    debris_removed: int = 0
    orphans_removed: int = 0

    @property
    def repaired(self) -> int:
        return sum(p.repaired for p in self.problems)

    @property
    def ok(self) -> bool:
        return all(p.repaired for p in self.problems)

    def add(self, kind: str, message: str, repaired: bool = False) -> None:
        self.problems.append(Problem(kind, message, repaired))


class ExportError(Exception):
    pass


_open_library: Library | None = None


class Library:
    """An open library. Use `Library.open(...)`; close it (or use `with`)."""

    def __init__(
        self, root: Path, database: pw.SqliteDatabase, writable: bool, lock: _Lock | None
    ) -> None:
        self.root = root
        self.store = BlobStore(root)
        self.database = database
        self.writable = writable
        self._lock = lock
        self.owner = f"{os.uname().nodename if hasattr(os, 'uname') else ''}:{os.getpid()}"

    # -- opening ---------------------------------------------------------------

    @classmethod
    def open(
        cls,
        root: Path | str | None = None,
        *,
        readonly: bool = False,
        busy_timeout: float = 5.0,
        recover: bool = True,
    ) -> Library:
        """Open (creating if needed) the library at `root`.

        A writer takes the library's lock, migrates the schema forward and recovers
        from a crash; a reader does none of that and works beside a writer.
        """
        global _open_library
        root = Path(root).expanduser() if root is not None else default_root()
        path = root / DB_NAME
        lock: _Lock | None = None
        if readonly:
            if not path.exists():
                raise LibraryError(f"there is no library at {root}")
        else:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"cannot create the library at {root}: {exc.strerror}") from exc
            lock = _Lock(root / LOCK_NAME)
            lock.acquire()
        try:
            if _open_library is not None:
                raise LibraryError(
                    f"a library is already open in this process: {_open_library.root}"
                )
            version = _probe(path)
            if version > models.SCHEMA_VERSION:
                raise LibraryError(
                    f"this library was written by a newer version of Uploader (schema "
                    f"{version}; this version reads up to {models.SCHEMA_VERSION}). "
                    "Upgrade Uploader to open it; the library was not changed."
                )
            if readonly and version < models.SCHEMA_VERSION:
                raise LibraryError(
                    f"this library uses an older schema ({version}); open it once with a "
                    "writing command (for example `uploader doctor`) to upgrade it"
                )
            pragmas: dict[str, Any] = {
                "busy_timeout": int(busy_timeout * 1000),
                "foreign_keys": 1,
                "synchronous": 2,  # FULL
            }
            if not readonly:
                pragmas = {"journal_mode": "wal", **pragmas}
            database = pw.SqliteDatabase(
                str(path), pragmas=pragmas, lock_type="IMMEDIATE", timeout=busy_timeout
            )
            lib = cls(root, database, not readonly, lock)
            db.initialize(database)
            _open_library = lib
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        try:
            if not readonly:
                lib.store.create_folders()
                lib._migrate(version)
                if recover:
                    lib.recover()
        except (OSError, sqlite3.Error, pw.PeeweeException) as exc:
            lib.close()
            raise _cannot_open(root, exc) from exc
        except BaseException:
            lib.close()
            raise
        return lib

    def _migrate(self, version: int) -> None:
        for target in range(version, models.SCHEMA_VERSION):
            step = models.MIGRATIONS[target]

            def apply(step: Callable[[pw.SqliteDatabase], None] = step, n: int = target) -> None:
                step(self.database)
                self.database.execute_sql(f"PRAGMA user_version = {n + 1}")

            self.write(apply)
            log.info("library %s migrated to schema %d", self.root, target + 1)

    def close(self) -> None:
        global _open_library
        with contextlib.suppress(Exception):
            if self.writable:
                # a checkpoint keeps the WAL from growing across sessions
                self.database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        self.database.close()
        if _open_library is self:
            db.initialize(None)
            _open_library = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ----------------------------------------------------------

    def write(self, fn: Callable[[], T], *, attempts: int = 5) -> T:
        """Run fn in one BEGIN IMMEDIATE transaction, retrying while locked."""
        if not self.writable:
            raise LibraryError("this library was opened read-only")

        def once() -> T:
            with self.database.atomic():
                return fn()

        return retry_locked(once, attempts=attempts)

    # -- uploads ---------------------------------------------------------------

    def create_uploads(
        self, files: Iterable[tuple[str | Path, int | None]], accept_corrupt: bool = False
    ) -> list[UploadSnapshot]:
        """Persist one queued upload per file, in one transaction; a snapshot per file.

        An upload of the same path left queued by an interrupted run is reused, so
        that adding the same files again converges instead of piling up rows.
        """
        files = list(files)
        texts = [_path_text(path) for path, _ in files]
        # a path given twice is one upload, with the size seen last
        sizes = dict(zip(texts, (size for _, size in files), strict=True))
        paths = {spath: os.fspath(path) for spath, (path, _) in zip(texts, files, strict=True)}
        names = {
            spath: display_name(os.path.basename(path) or path) for spath, path in paths.items()
        }
        unique = list(sizes)
        t = models.now()
        flag = int(bool(accept_corrupt))

        def tx() -> tuple[dict[str | bytes, int], list[int]]:
            # plain SQL: peewee's query building costs more than SQLite itself here
            ids: dict[str | bytes, int] = {}
            reused: list[int] = []
            for part in _chunks(unique, 500):
                # named, since with many paths SQLite's planner prefers the state index
                cursor = self.database.execute_sql(
                    "SELECT path, MIN(id) FROM upload INDEXED BY upload_queued_path"
                    f" WHERE state = 'queued' AND path IN ({_marks(part)})"
                    " GROUP BY path",
                    part,
                )
                found: dict[str | bytes, int] = dict(cursor.fetchall())
                if found:
                    self.database.cursor().executemany(
                        "UPDATE upload SET size = ?, accept_corrupt = ?, hidden = 0,"
                        " updated_at = ? WHERE id = ?",
                        [(sizes[spath], flag, t, uid) for spath, uid in found.items()],
                    )
                    reused.extend(found.values())
                ids.update(found)
                for some in _chunks([spath for spath in part if spath not in found], 100):
                    params: list[Any] = []
                    for spath in some:
                        params += (spath, names[spath], sizes[spath], flag, t, t)
                    cursor = self.database.execute_sql(
                        "INSERT INTO upload (path, name, size, state, attempts, duplicate,"
                        " accept_corrupt, created_at, updated_at, hidden) VALUES "
                        + ",".join(["(?, ?, ?, 'queued', 0, 0, ?, ?, ?, 0)"] * len(some))
                        + " RETURNING path, id",
                        params,
                    )
                    ids.update(cursor.fetchall())
            return ids, reused

        ids, reused = self.write(tx)
        # the rows inserted are known in full: only reused ones are read back
        snaps = {snap.id: snap for snap in self.snapshots(reused)}
        out = []
        for spath in texts:
            uid = ids[spath]
            snap = snaps.get(uid)
            if snap is None:
                snap = snaps[uid] = UploadSnapshot(
                    id=uid,
                    path=paths[spath],
                    name=names[spath],
                    size=sizes[spath],
                    state=UploadState.QUEUED,
                    accept_corrupt=accept_corrupt,
                    created_at=t,
                )
            out.append(snap)
        return out

    def start_upload(self, upload_id: int) -> bool:
        """Mark an upload as running; False if it is no longer queued (cancelled)."""

        def tx() -> int:
            return int(
                Upload.update(
                    state=UploadState.UPLOADING,
                    attempts=Upload.attempts + 1,
                    error=None,
                    error_kind=None,
                    updated_at=models.now(),
                )
                .where((Upload.id == upload_id) & (Upload.state == UploadState.QUEUED))
                .execute()
            )

        return self.write(tx) == 1

    def start_uploads(self, upload_ids: Iterable[int]) -> set[int]:
        """`start_upload` for several uploads in one transaction; returns those started."""
        ids = list(upload_ids)

        def tx() -> set[int]:
            started: set[int] = set()
            t = models.now()
            for part in _chunks(ids, 500):
                cursor = self.database.execute_sql(
                    "UPDATE upload SET state = ?, attempts = attempts + 1, error = NULL,"
                    f" error_kind = NULL, updated_at = ? WHERE id IN ({_marks(part)})"
                    " AND state = ? RETURNING id",
                    [UploadState.UPLOADING, t, *part, UploadState.QUEUED],
                )
                started.update(r[0] for r in cursor.fetchall())
            return started

        return self.write(tx) if ids else set()

    def record(self, upload_id: int, staged: Staged) -> UploadSnapshot:
        """Publish a staged copy under its address and record the document.

        Identical content is stored once: the upload then points at the existing
        document. Only after this commit does the upload count as done.
        """
        result = self.record_many([(upload_id, staged)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def record_many(self, items: Sequence[tuple[int, Staged]]) -> list[UploadSnapshot | Exception]:
        """`record` for several staged copies: every rename first, each folder fsynced
        once, then one commit for all the rows; a result (or the error) per item.

        A failed rename or folder fsync fails the items it concerns; a failed commit
        fails every item. None counts as done before the commit.
        """
        out: dict[int, UploadSnapshot | Exception] = {}
        known: dict[str, str] = {}
        shas = list(dict.fromkeys(staged.sha256 for _, staged in items))
        for part in _chunks(shas, 500):
            cursor = self.database.execute_sql(
                f"SELECT sha256, encoding FROM document WHERE sha256 IN ({_marks(part)})", part
            )
            known.update(cursor.fetchall())
        placed: list[tuple[int, Staged, bool]] = []
        folders: dict[Path, list[int]] = {}
        for uid, staged in items:
            try:
                enc = known.get(staged.sha256)
                duplicate = enc is not None and self.store.exists(staged.sha256, enc)
                if staged.published:
                    if duplicate and enc != RAW:  # our raw copy would be an orphan
                        self.store.remove(staged.sha256, RAW)
                elif duplicate:
                    discard(staged)
                else:
                    final = self.store.place(staged.temp, staged.sha256, RAW)
                    folders.setdefault(final.parent, []).append(uid)
                placed.append((uid, staged, duplicate))
            except Exception as exc:
                out[uid] = exc
        for folder, uids in folders.items():
            try:
                fsync_dir(folder)
            except Exception as exc:
                for uid in uids:
                    out[uid] = exc
        placed = [p for p in placed if p[0] not in out]

        def tx() -> None:
            self._record_rows(placed)

        if placed:
            try:
                self.write(tx)
            except Exception as exc:
                for uid, _, _ in placed:
                    out[uid] = exc
        done = [uid for uid, _, _ in placed if uid not in out]
        for snap in self.snapshots(done):
            out[snap.id] = snap
        return [out.get(uid, KeyError(uid)) for uid, _ in items]

    def _record_rows(self, placed: list[tuple[int, Staged, bool]]) -> None:
        """The rows of `record_many`, a few statements for many files (in a transaction).
        Plain SQL: peewee's query building cost more than SQLite itself here."""
        t = models.now()
        sql = self.database.execute_sql
        docs: dict[str, tuple[int, str]] = {}
        shas = list(dict.fromkeys(staged.sha256 for _, staged, _ in placed))
        for part in _chunks(shas, 500):
            cursor = sql(
                f"SELECT sha256, id, encoding FROM document WHERE sha256 IN ({_marks(part)})",
                part,
            )
            docs.update((sha, (doc_id, enc)) for sha, doc_id, enc in cursor.fetchall())
        fresh: dict[str, tuple[Any, ...]] = {}
        for _, staged, _ in placed:
            if staged.sha256 not in docs and staged.sha256 not in fresh:
                fresh[staged.sha256] = (
                    staged.sha256,
                    staged.size,
                    display_name(staged.name),
                    RAW,
                    staged.size,
                    Compression.NOT_QUEUED,
                    t,
                )
        for some in _chunks(list(fresh.values()), 100):
            cursor = sql(
                "INSERT INTO document (sha256, size, name, encoding, stored_size, compression,"
                " created_at) VALUES "
                + ",".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(some))
                + " RETURNING id, sha256",
                [value for row in some for value in row],
            )
            docs.update((sha, (doc_id, RAW)) for doc_id, sha in cursor.fetchall())
        updates: list[tuple[int, int, int, float, int]] = []
        for uid, staged, duplicate in placed:
            doc_id, enc = docs[staged.sha256]
            if staged.sha256 in fresh:
                is_dup = False
                del fresh[staged.sha256]  # a second upload of it in this batch is a duplicate
            elif not duplicate and not self.store.exists(staged.sha256, enc):
                # its stored copy had gone missing; the fresh raw copy replaces it
                sql("DELETE FROM job WHERE document_id = ?", (doc_id,))
                sql(
                    "UPDATE document SET encoding = ?, stored_size = ?, compression = ?"
                    " WHERE id = ?",
                    (RAW, staged.size, Compression.NOT_QUEUED, doc_id),
                )
                docs[staged.sha256] = (doc_id, RAW)
                is_dup = False
            else:
                is_dup = True
            updates.append((doc_id, int(is_dup), staged.size, t, uid))
        self.database.cursor().executemany(
            f"UPDATE upload SET state = '{UploadState.UPLOADED}', document_id = ?, duplicate = ?,"
            " size = ?, error = NULL, error_kind = NULL, updated_at = ? WHERE id = ?",
            updates,
        )

    def fail_upload(
        self, upload_id: int, kind: str, reason: str, state: str = UploadState.FAILED
    ) -> UploadSnapshot:
        def tx() -> None:
            Upload.update(
                state=state, error=reason, error_kind=kind, updated_at=models.now()
            ).where(Upload.id == upload_id).execute()

        self.write(tx)
        return self.snapshot(upload_id)

    def cancel_queued(self, ids: Iterable[int]) -> list[int]:
        """Cancel uploads that have not started; returns the ids it cancelled."""
        ids = list(ids)

        def tx() -> list[int]:
            query = Upload.select(Upload.id).where(
                Upload.id.in_(ids) & (Upload.state == UploadState.QUEUED)
            )
            found = [r[0] for r in rows(query)]
            Upload.update(
                state=UploadState.CANCELLED,
                error="cancelled",
                error_kind=Kind.CANCELLED,
                updated_at=models.now(),
            ).where(Upload.id.in_(found)).execute()
            return found

        return self.write(tx) if ids else []

    def reset_for_retry(
        self, ids: Iterable[int] | None = None, *, accept_corrupt: bool | None = None
    ) -> list[UploadSnapshot]:
        """Queue failed or cancelled uploads again (all failed ones when ids is None)."""
        wanted = None if ids is None else list(ids)

        def tx() -> list[int]:
            query = Upload.select(Upload.id)
            if wanted is None:
                query = query.where(Upload.state == UploadState.FAILED)
            else:
                query = query.where(
                    Upload.id.in_(wanted)
                    & Upload.state.in_([UploadState.FAILED, UploadState.CANCELLED])
                )
            found = [r[0] for r in rows(query)]
            changes: dict[Any, Any] = {
                Upload.state: UploadState.QUEUED,
                Upload.error: None,
                Upload.error_kind: None,
                Upload.hidden: False,
                Upload.updated_at: models.now(),
            }
            if accept_corrupt is not None:
                changes[Upload.accept_corrupt] = accept_corrupt
            for part in _chunks(found, 500):
                Upload.update(changes).where(Upload.id.in_(part)).execute()
            return found

        return self.snapshots(self.write(tx))

    def hide(self, ids: Iterable[int]) -> int:
        """Remove uploads from the window's list; their documents stay in the library."""
        ids = list(ids)

        def tx() -> int:
            return sum(
                Upload.update(hidden=True).where(Upload.id.in_(part)).execute()
                for part in _chunks(ids, 500)
            )

        return self.write(tx)

    def requeue(self, ids: Iterable[int]) -> int:
        """Put interrupted uploads back in the queue (an engine stopping cleanly)."""
        ids = list(ids)

        def tx() -> int:
            return sum(
                Upload.update(state=UploadState.QUEUED, updated_at=models.now())
                .where(Upload.id.in_(part) & (Upload.state == UploadState.UPLOADING))
                .execute()
                for part in _chunks(ids, 500)
            )

        return self.write(tx)

    def queued_upload_ids(self) -> list[int]:
        query = Upload.select(Upload.id).where(Upload.state == UploadState.QUEUED)
        return [r[0] for r in rows(query.order_by(Upload.id))]

    # -- reading ---------------------------------------------------------------

    def snapshot(self, upload_id: int) -> UploadSnapshot:
        found = self.snapshots([upload_id])
        if not found:
            raise KeyError(upload_id)
        return found[0]

    def snapshots(self, ids: Iterable[int]) -> list[UploadSnapshot]:
        ids = list(ids)
        out: dict[int, UploadSnapshot] = {}
        for part in _chunks(ids, 500):
            for snap in self._upload_query(f"u.id IN ({_marks(part)})", part):
                out[snap.id] = snap
        return [out[i] for i in ids if i in out]

    def uploads(
        self, *, include_hidden: bool = True, limit: int | None = None
    ) -> list[UploadSnapshot]:
        """Uploads, oldest first (the newest `limit` when given)."""
        return self._upload_query("1" if include_hidden else "u.hidden = 0", [], limit=limit)

    def _upload_query(
        self, where: str, params: Sequence[Any], limit: int | None = None
    ) -> list[UploadSnapshot]:
        query = (
            "SELECT u.id, u.path, u.name, u.size, u.state, u.error, u.error_kind, u.attempts,"
            " u.document_id, u.duplicate, u.accept_corrupt, u.created_at, d.sha256,"
            " d.compression, d.stored_size FROM upload AS u LEFT OUTER JOIN document AS d"
            f" ON u.document_id = d.id WHERE {where}"
        )
        args = list(params)
        if limit is not None:
            query += " ORDER BY u.id DESC LIMIT ?"
            args.append(limit)
        found = self.database.execute_sql(query, args).fetchall()
        found.sort(key=lambda r: r[0])
        uploaded = UploadState.UPLOADED
        return [
            UploadSnapshot(
                id=r[0],
                path=path_from_db(r[1]),
                name=r[2],
                size=r[3],
                state=r[4],
                done_bytes=(r[3] or 0) if r[4] == uploaded else 0,
                error=r[5],
                error_kind=r[6],
                attempts=r[7],
                document_id=r[8],
                duplicate=bool(r[9]),
                accept_corrupt=bool(r[10]),
                created_at=r[11],
                sha256=r[12],
                compression=r[13],
                stored_size=r[14],
            )
            for r in found
        ]

    def documents(self, ids: Iterable[int] | None = None) -> list[DocumentSnapshot]:
        query = (
            "SELECT id, sha256, name, size, stored_size, compression, encoding, created_at"
            " FROM document"
        )
        if ids is None:
            found = self.database.execute_sql(query + " ORDER BY id").fetchall()
        else:
            found = []
            for part in _chunks(list(dict.fromkeys(ids)), 500):
                where = f" WHERE id IN ({_marks(part)})"
                found += self.database.execute_sql(query + where, part).fetchall()
            found.sort(key=lambda r: r[0])
        return [DocumentSnapshot(*r) for r in found]

    def document(self, doc_id: int) -> DocumentSnapshot:
        doc = Document.get_or_none(Document.id == doc_id)
        if doc is None:
            raise LibraryError(f"there is no document {doc_id} in this library")
        return _doc_snapshot(doc)

    # -- compression queue bookkeeping ----------------------------------------

    def queue_compression(self, doc_id: int, *, attempts: int = 5) -> bool:
        """Queue a document's compression; False (state 'not queued') if it cannot.

        Compression is secondary: a failure here is logged, never raised, and the
        sweep queues the document later.
        """

        def tx() -> None:
            _ensure_job(doc_id)

        try:
            self.write(tx, attempts=attempts)
            return True
        except Exception as exc:
            log.warning(
                "could not queue compression of document %d (%s); the sweep will retry",
                doc_id,
                describe(exc).reason,
            )
            return False

    def queue_compression_many(self, doc_ids: Iterable[int], *, attempts: int = 5) -> bool:
        """`queue_compression` for several documents in one transaction."""
        ids = list(doc_ids)

        def tx() -> None:
            sql = self.database.execute_sql
            for part in _chunks(list(dict.fromkeys(ids)), 500):
                marks = _marks(part)
                have = {
                    r[0]
                    for r in sql(
                        f"SELECT document_id FROM job WHERE document_id IN ({marks})", part
                    )
                }
                # as in _ensure_job: a compressed or skipped document is finished
                finished = sql(
                    f"SELECT id FROM document WHERE id IN ({marks}) AND compression IN (?, ?)",
                    [*part, Compression.DONE, Compression.SKIPPED],
                )
                have.update(r[0] for r in finished)
                need = [d for d in part if d not in have]
                if need:
                    self.database.cursor().executemany(
                        "INSERT INTO job (document_id, state, priority, attempts, run_after)"
                        " VALUES (?, 'queued', 0, 0, 0.0)",
                        [(d,) for d in need],
                    )
                    sql(
                        f"UPDATE document SET compression = ? WHERE id IN ({_marks(need)})",
                        [Compression.PENDING, *need],
                    )

        try:
            if ids:
                self.write(tx, attempts=attempts)
            return True
        except Exception as exc:
            log.warning(
                "could not queue compression of %d documents (%s); the sweep will retry",
                len(ids),
                describe(exc).reason,
            )
            return False

    # -- recovery and sweep ----------------------------------------------------

    def recover(self) -> Report:
        """After a crash: requeue interrupted uploads, reclaim jobs, sweep (at open)."""

        def tx() -> int:
            changed = 0
            left = rows(
                Upload.select(Upload.id, Upload.path, Upload.state).where(
                    Upload.state.in_([UploadState.QUEUED, UploadState.UPLOADING])
                )
            )
            for uid, path, state in left:
                if not os.path.lexists(path_from_db(path)):
                    Upload.update(
                        state=UploadState.FAILED,
                        error="the source file is no longer there",
                        error_kind=Kind.VANISHED,
                        updated_at=models.now(),
                    ).where(Upload.id == uid).execute()
                    changed += 1
                elif state == UploadState.UPLOADING:
                    Upload.update(state=UploadState.QUEUED).where(Upload.id == uid).execute()
                    changed += 1
            return changed

        changed = self.write(tx)
        if changed:
            log.info("recovered %d interrupted uploads", changed)
        return self.sweep(at_open=True)

    def sweep(self, *, at_open: bool = False, grace: float = GRACE) -> Report:
        """Queue what has no job, reclaim expired leases, delete debris, report orphans.

        At open we are the only writer, so every temp file and every running job
        is debris of a dead process.
        """
        report = Report()
        t = models.now()

        def tx() -> tuple[int, int]:
            reclaim = Job.state == "running"
            if not at_open:
                reclaim &= Job.lease_until < t
            failed = (
                Job.update(state="failed", owner=None, lease_until=None)
                .where(reclaim & (Job.attempts >= MAX_JOB_ATTEMPTS))
                .execute()
            )
            if failed:
                _sync_doc_states()
            reclaimed = (
                Job.update(state="queued", owner=None, lease_until=None)
                .where(reclaim & (Job.attempts < MAX_JOB_ATTEMPTS))
                .execute()
            )
            lonely = rows(
                Document.select(Document.id)
                .join(Job, pw.JOIN.LEFT_OUTER, on=(Job.document == Document.id))
                .where(
                    Job.id.is_null()
                    & Document.compression.in_(
                        [Compression.NOT_QUEUED, Compression.PENDING, Compression.RUNNING]
                    )
                )
            )
            queued = 0
            for (doc_id,) in lonely:
                _ensure_job(doc_id)
                queued += 1
            _sync_doc_states()
            return reclaimed + failed, queued

        try:
            report.reclaimed, report.queued = self.write(tx)
        except Exception as exc:
            report.add("database", f"the sweep could not update the queue: {describe(exc).reason}")
        for temp in list(self.store.iter_temps()):
            with contextlib.suppress(OSError):
                if at_open or t - temp.stat().st_mtime > grace:
                    temp.unlink()
                    report.debris_removed += 1
        known = self._known_blobs()
        for sha, enc, path in self.store.iter_blobs():
            if (sha, enc) in known:
                continue
            # the raw copy of a document whose switch to .zst is committed: a compression
            # stopped between its commit and the unlink. Nothing will ever use it again
            # (an upload of the same content finds the .zst), so it goes now, not in an hour.
            superseded = enc == RAW and (sha, ZSTD) in known and self.store.exists(sha, ZSTD)
            with contextlib.suppress(OSError):
                if superseded or t - path.stat().st_mtime > grace:
                    path.unlink()
                    report.orphans_removed += 1
                else:
                    report.add("orphan", f"unreferenced blob {path.name} (kept for now)")
        for sha, enc in known:
            if not self.store.exists(sha, enc):
                report.add("missing", f"the stored copy of document {sha[:12]} is missing")
                log.warning("the stored copy of document %s is missing; run doctor", sha[:12])
        if report.reclaimed or report.queued or report.debris_removed or report.orphans_removed:
            log.info(
                "sweep: %d reclaimed, %d queued, %d temp files and %d orphans removed",
                report.reclaimed,
                report.queued,
                report.debris_removed,
                report.orphans_removed,
            )
        return report

    def _known_blobs(self) -> set[tuple[str, str]]:
        return {
            (sha, enc) for sha, enc in rows(Document.select(Document.sha256, Document.encoding))
        }

    # -- doctor ----------------------------------------------------------------

    def doctor(self, *, repair: bool = False) -> Report:
        """Check integrity, every blob's hash, orphans and debris; repair without loss."""
        report = Report()
        integrity = [r[0] for r in self.database.execute_sql("PRAGMA integrity_check").fetchall()]
        if integrity != ["ok"]:
            for line in integrity[:20]:
                report.add("database", f"database integrity: {line}")
        for row in self.database.execute_sql("PRAGMA foreign_key_check").fetchall():
            report.add("database", f"foreign key broken: {row}")
        for doc in list(Document.select()):
            why = self.store.verify(doc.sha256, doc.encoding, doc.size)
            if why is None:
                continue
            label = f"document {doc.id} ({doc.name}): stored copy {why}"
            other = ZSTD if doc.encoding == RAW else RAW
            if self.store.verify(doc.sha256, other, doc.size) is None:
                if repair and self.writable:
                    self._switch_encoding(doc, other)
                report.add("blob", label + f"; a good {other} copy exists", repair)
                continue
            if repair and self.writable:
                self._drop_damaged(doc, why)
            report.add("blob", label + "; upload it again from its source", repair)
        known = self._known_blobs()
        for sha, enc, path in list(self.store.iter_blobs()):
            if (sha, enc) in known:
                continue
            good = self.store.verify(sha, enc) is None
            what = "unreferenced blob" if good else "unreferenced damaged blob"
            if repair and self.writable:
                with contextlib.suppress(OSError):
                    if good:
                        path.unlink()
                    else:
                        self.store.quarantine_blob(path)
            report.add("orphan", f"{what} {path.name}", repair)
        for temp in list(self.store.iter_temps()):
            if repair and self.writable:
                with contextlib.suppress(OSError):
                    temp.unlink()
            report.add("debris", f"temp file {temp.name}", repair)
        if repair and self.writable:
            swept = self.sweep(at_open=True)
            for p in swept.problems:
                report.problems.append(p)
            if swept.queued or swept.reclaimed:
                report.add(
                    "queue",
                    f"{swept.queued} documents queued and {swept.reclaimed} jobs reclaimed",
                    True,
                )
        else:
            lonely = (
                Document.select(Document.id)
                .join(Job, pw.JOIN.LEFT_OUTER, on=(Job.document == Document.id))
                .where(Job.id.is_null() & (Document.compression == Compression.NOT_QUEUED))
                .count()
            )
            if lonely:
                report.add("queue", f"{lonely} documents are not queued for compression")
        return report

    def _switch_encoding(self, doc: Document, encoding: str) -> None:
        size = self.store.path(doc.sha256, encoding).stat().st_size
        state = Compression.DONE if encoding == ZSTD else Compression.NOT_QUEUED

        def tx() -> None:
            Document.update(encoding=encoding, stored_size=size, compression=state).where(
                Document.id == doc.id
            ).execute()

        self.write(tx)
        self.store.quarantine_blob(self.store.path(doc.sha256, doc.encoding))

    def _drop_damaged(self, doc: Document, why: str) -> None:
        """Quarantine a damaged blob; its uploads become failed rows that can be retried."""

        def tx() -> None:
            Upload.update(
                state=UploadState.FAILED,
                document=None,
                error="the stored copy was damaged; retry to upload it again from the source",
                error_kind=Kind.CORRUPT,
                updated_at=models.now(),
            ).where(Upload.document == doc.id).execute()
            Document.delete().where(Document.id == doc.id).execute()

        self.write(tx)
        path = self.store.path(doc.sha256, doc.encoding)
        if path.exists():
            self.store.quarantine_blob(path)

    # -- reading back ----------------------------------------------------------

    def export(self, doc_id: int, dest: Path, *, overwrite: bool = False) -> Path:
        """Stream a document out to `dest` (a file, or a folder to put it in), verified.

        Writes a temp file beside the destination and renames it only once the
        SHA-256 matches; a mismatch is an ExportError and leaves nothing behind.
        """
        doc = self.document(doc_id)
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / doc.name
        if dest.exists() and not overwrite:
            raise ExportError(f"{dest} already exists")
        # a short name: the destination's own name may already be at the length limit
        temp = dest.with_name(f".uploader-{uuid.uuid4().hex[:12]}.part")
        try:
            with self.store.open_plain(doc.sha256, doc.encoding) as reader:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
                out = os.open(temp, flags, 0o666)
                try:
                    sha, total = hash_stream(reader, out, name="export", depth=EXPORT_DEPTH)
                    os.fsync(out)
                finally:
                    os.close(out)
        except FileNotFoundError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            if exc.filename and Path(exc.filename) == temp:
                raise ExportError(f"cannot write {dest}: {exc.strerror}") from exc
            raise ExportError(
                f"the stored copy of {doc.name} is missing; upload it again from its source"
            ) from exc
        except zstandard.ZstdError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise ExportError(
                f"the stored copy of {doc.name} is damaged (cannot decompress); "
                "upload it again from its source"
            ) from exc
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise ExportError(f"cannot export {doc.name}: {describe(exc).reason}") from exc
        if sha != doc.sha256 or total != doc.size:
            temp.unlink()
            raise ExportError(
                f"the stored copy of {doc.name} is damaged (its content does not match its "
                "hash); upload it again from its source"
            )
        os.replace(temp, dest)
        fsync_dir(dest.parent)
        return dest

    def stats(self) -> dict[str, int]:
        """Counts for summaries: uploads by state, documents, bytes saved."""
        out: dict[str, int] = dict.fromkeys(UploadState.ALL, 0)
        for state, n in rows(
            Upload.select(Upload.state, pw.fn.COUNT(Upload.id)).group_by(Upload.state)
        ):
            out[state] = n
        out["documents"] = Document.select().count()
        size, stored = Document.select(
            pw.fn.COALESCE(pw.fn.SUM(Document.size), 0),
            pw.fn.COALESCE(pw.fn.SUM(Document.stored_size), 0),
        ).scalar(as_tuple=True)
        out["bytes"] = int(size)
        out["saved"] = int(size) - int(stored)
        return out


EXPORT_DEPTH = 8  # 1 MiB buffers in flight between reading, hashing and writing


def _probe(path: Path) -> int:
    """The schema version of the database at `path` (0 if none); refuses a damaged file."""
    if not path.exists():
        return 0
    try:
        # read-write when we may: after a crash the WAL must be recovered before the first
        # read, which a read-only connection cannot do ("attempt to write a readonly
        # database") although nothing is damaged; mode=rw still never creates the file
        mode = "rw" if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK) else "ro"
        conn = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=5)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version:
                check = conn.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise sqlite3.DatabaseError(check)
            return version
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc):
            raise LibraryError(f"the library's database is busy: {exc}") from exc
        code = getattr(exc, "sqlite_errorcode", None)
        # only SQLITE_CORRUPT, SQLITE_NOTADB or a failed check mean damage; a full disk
        # or an I/O error at open is not the file's fault
        if code is not None and code & 0xFF not in (11, 26):
            raise _cannot_open(path.parent, exc) from exc
        raise LibraryError(
            f"the library's database is damaged ({exc}); it was left as it is at {path}. "
            "Restore it from a backup or move it away to start a new library."
        ) from exc


def _cannot_open(root: Path, exc: BaseException) -> LibraryError:
    """Why a library could not be opened, in words; SQLite hides ENOSPC behind
    'disk I/O error' when it cannot create its WAL index, so the free space decides."""
    failure = describe(exc)
    reason = failure.reason
    if failure.kind == Kind.IO:
        with contextlib.suppress(OSError):
            if shutil.disk_usage(root).free < (1 << 20):
                reason = "the disk is full"
    return LibraryError(f"cannot open the library at {root}: {reason}")


def _ensure_job(doc_id: int) -> None:
    if Job.select().where(Job.document == doc_id).exists():
        return
    # a compressed or skipped document is finished: queueing it again would mark it
    # pending while its raw copy is gone, and the job could only fail
    finished = (Document.id == doc_id) & Document.compression.in_(
        [Compression.DONE, Compression.SKIPPED]
    )
    if Document.select().where(finished).exists():
        return
    Job.insert(document=doc_id, state="queued", priority=0, attempts=0, run_after=0.0).execute()
    Document.update(compression=Compression.PENDING).where(Document.id == doc_id).execute()


def _sync_doc_states() -> None:
    """Make each document's compression state agree with its job (one statement each)."""
    for job_state, doc_state in (
        ("queued", Compression.PENDING),
        ("running", Compression.RUNNING),
        ("failed", Compression.FAILED),
    ):
        ids = Job.select(Job.document).where(Job.state == job_state)
        Document.update(compression=doc_state).where(
            Document.id.in_(ids) & (Document.compression != doc_state)
        ).execute()


def _doc_snapshot(d: Document) -> DocumentSnapshot:
    return DocumentSnapshot(
        id=d.id,
        sha256=d.sha256,
        name=d.name,
        size=d.size,
        stored_size=d.stored_size,
        compression=d.compression,
        encoding=d.encoding,
        created_at=d.created_at,
    )


def _path_text(path: str | Path) -> str | bytes:
    """A path for the database: text, or the raw bytes when the name is not UTF-8."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return text


def path_from_db(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def display_name(name: str) -> str:
    """A name a person can read (undecodable bytes shown as U+FFFD)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _marks(items: Sequence[Any]) -> str:
    """The `?, ?, …` parameter marks of an `IN (...)` list."""
    return ",".join("?" * len(items))


def _chunks(items: list[T], n: int) -> Iterator[list[T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
