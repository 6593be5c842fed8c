"""The asyncio engine that runs uploads and compression and publishes snapshots.

Blocking work runs in named thread pools (upload, db, compress, expand); subscribers
are called on the event loop's thread only. No Qt here: the CLI runs this with
asyncio.run, the window on a qasync loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import peewee as pw

from . import compression
from .events import DocumentSnapshot, Event, Expanding, UploadSnapshot
from .ingest import Staged, copy_in, discard, fsync_file, publish
from .library import Library
from .models import Job, UploadState, rows
from .retry import Kind, UploadError, backoff, describe
from .store import BlobStore, fsync_dir

log = logging.getLogger(__name__)
T = TypeVar("T")
Listener = Callable[[Event], None]

EXPAND_BATCH = 500
# While files are being listed, upload workers start nothing new for up to this long,
# so that the listing has the CPU and the db thread (the copies wait a moment; a very
# long listing shares them again after that).
LISTING_FIRST = 3.0
# After this many failed database writes in a row the compression worker is stuck (disk
# full, I/O error): it backs off, and drain_compression stops waiting for it.
STUCK_AFTER = 3
# copies staged and waiting for their record's commit, at most
RECORDING = 256
# a worker starts files under SMALL_FILE in groups of up to GROUP_FILES or GROUP_BYTES
SMALL_FILE = 1 << 20
GROUP_FILES = 64
GROUP_BYTES = 8 << 20
FSYNCS = 16
A = TypeVar("A")
R = TypeVar("R")


@dataclass
class Settings:
    jobs: int = 4
    # work the compression queue in this process
    compress: bool = True
    # queue each stored document's compression (off: the sweep queues it later)
    queue_compression: bool = True
    compress_workers: int = 1
    level: int = 3
    check_corrupt: bool = True
    progress_interval: float = 0.1
    lease: float = compression.DEFAULT_LEASE
    sweep_every: float = 60.0
    compress_retry_base: float = 2.0


class _Shutdown(Exception):
    """An upload interrupted because the engine closes; it resumes next time."""


class Engine:
    """Runs uploads (several at once) and the compression queue over one Library."""

    def __init__(self, library: Library, settings: Settings | None = None) -> None:
        self.library = library
        self.settings = settings or Settings()
        self.uploads: dict[int, UploadSnapshot] = {}
        self._listeners: list[Listener] = []
        self._by_doc: dict[int, set[int]] = {}
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._cancels: dict[int, _Flag] = {}
        self._waiters: dict[int, list[asyncio.Future[UploadSnapshot]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._upload_workers: list[asyncio.Task[None]] = []
        self._compress_wake = asyncio.Event()
        self._compress_busy = 0
        self._compress_failures = 0
        self._compress_error = ""
        self._closing = False
        self._shutdown = threading.Event()
        self._speed: dict[int, tuple[float, int]] = {}
        self._batches = 0
        self._adding: dict[int, threading.Event] = {}
        # set while no add is listing files; workers wait on it (see LISTING_FIRST)
        self._listed = asyncio.Event()
        self._listed.set()
        self._listing_since = 0.0
        s = self.settings
        self._upload_pool = ThreadPoolExecutor(max(1, s.jobs), thread_name_prefix="upload")
        self._db_pool = _DbThread("db")
        self._compress_pool = ThreadPoolExecutor(
            max(1, s.compress_workers), thread_name_prefix="compress"
        )
        self._expand_pool = ThreadPoolExecutor(1, thread_name_prefix="expand")
        # the fsyncs of a group of small files, issued at once
        self._fsync_crew = _Crew(FSYNCS, "fsync")
        self._export_pool = ThreadPoolExecutor(1, thread_name_prefix="export")
        self._loop: asyncio.AbstractEventLoop | None = None
        # one transaction for the starts, and one for the records, that arrive together
        self._starts = _Batcher(self, self._start_batch)
        self._to_record: asyncio.Queue[tuple[int, UploadSnapshot, Staged]] = asyncio.Queue()
        self._recording = asyncio.Semaphore(RECORDING)

    # -- life cycle ------------------------------------------------------------

    async def start(self, *, resume: bool = True, history: int | None = None) -> None:
        """Start the workers. `resume` queues uploads a previous run left unfinished;
        `history` loads that many recent uploads so that they can be shown."""
        self._loop = asyncio.get_running_loop()
        if history:
            for snap in await self._db(self.library.uploads, include_hidden=False, limit=history):
                self._remember(snap)
        if resume:
            ids = await self._db(self.library.queued_upload_ids)
            missing = [i for i in ids if i not in self.uploads]
            for snap in await self._db(self.library.snapshots, missing):
                self._remember(snap)
            for i in ids:
                self._queue.put_nowait(i)
        self._spawn(self._recorder())
        for _ in range(max(1, self.settings.jobs)):
            self._upload_workers.append(self._spawn(self._upload_worker()))
        if self.settings.compress:
            for _ in range(max(1, self.settings.compress_workers)):
                self._spawn(self._compress_worker())
        self._spawn(self._sweeper())

    async def close(self) -> None:
        """Stop cleanly: running uploads are put back in the queue for next time."""
        if self._closing:
            return
        self._closing = True
        self._shutdown.set()
        for ev in self._adding.values():
            ev.set()
        for flag in self._cancels.values():
            flag.set()
        self._compress_wake.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        running = [i for i, snap in self.uploads.items() if snap.state == UploadState.UPLOADING]
        if running:
            try:  # so that the next engine on this library resumes them
                await loop.run_in_executor(self._db_pool, self.library.requeue, running)
            except Exception as exc:  # the next open requeues them anyway
                log.warning("could not put uploads back in the queue: %s", describe(exc).reason)
        if self.settings.compress:
            try:
                await loop.run_in_executor(
                    self._db_pool, compression.release, self.library, self.library.owner
                )
            except Exception as exc:  # the next open reclaims them anyway
                log.warning("could not give back compression jobs: %s", describe(exc).reason)
        await loop.run_in_executor(self._db_pool, self.library.database.close)
        await loop.run_in_executor(self._export_pool, self.library.database.close)
        pools = (
            self._upload_pool,
            self._compress_pool,
            self._expand_pool,
            self._export_pool,
            self._fsync_crew,
            self._db_pool,
        )
        for pool in pools:
            await loop.run_in_executor(None, functools.partial(pool.shutdown, wait=True))
        for futs in self._waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.cancel()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` on the loop thread for every snapshot published."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- adding ---------------------------------------------------------------

    async def add(self, paths: Sequence[str | Path], *, accept_corrupt: bool = False) -> list[int]:
        """Add files and folders (expanded recursively, off the loop) as uploads."""
        loop = asyncio.get_running_loop()
        self._batches += 1
        batch = self._batches
        stop = threading.Event()
        self._adding[batch] = stop
        ids: list[int] = []
        found = 0

        async def take(chunk: list[tuple[str, int | None]]) -> None:
            nonlocal found
            snaps = await self._urgent(self.library.create_uploads, chunk, accept_corrupt)
            for snap in snaps:
                self._publish(snap)
                ids.append(snap.id)
                self._queue.put_nowait(snap.id)
            found += len(chunk)
            self._emit(Expanding(batch, found))

        def walk() -> None:
            chunk: list[tuple[str, int | None]] = []
            for item in expand(paths, stop.is_set):
                chunk.append(item)
                if len(chunk) >= EXPAND_BATCH:
                    asyncio.run_coroutine_threadsafe(take(chunk), loop).result()
                    chunk = []
            if chunk and not stop.is_set():
                asyncio.run_coroutine_threadsafe(take(chunk), loop).result()

        self._emit(Expanding(batch, 0))
        if self._listed.is_set():
            self._listed.clear()
            self._listing_since = time.monotonic()
        try:
            await loop.run_in_executor(self._expand_pool, walk)
        finally:
            del self._adding[batch]
            if not self._adding:
                self._listed.set()
            self._emit(Expanding(batch, found, done=True))
        return ids

    def cancel_adding(self) -> None:
        """Stop expanding folders; files already listed stay queued."""
        for ev in self._adding.values():
            ev.set()

    # -- retry and cancel -----------------------------------------------------

    async def retry(
        self, ids: Iterable[int] | None = None, *, accept_corrupt: bool | None = None
    ) -> list[int]:
        """Queue failed/cancelled uploads again (all failed ones when ids is None)."""
        wanted = None if ids is None else list(ids)
        snaps = await self._urgent(
            self.library.reset_for_retry, wanted, accept_corrupt=accept_corrupt
        )
        for snap in snaps:
            self._publish(snap)
            self._queue.put_nowait(snap.id)
        return [s.id for s in snaps]

    async def cancel(self, ids: Iterable[int]) -> None:
        """Cancel uploads: queued ones at once, running ones at their next chunk."""
        ids = list(ids)
        for i in ids:
            ev = self._cancels.get(i)
            if ev is not None:
                ev.set()
        done = await self._urgent(self.library.cancel_queued, ids)
        for snap in await self._urgent(self.library.snapshots, done):
            self._publish(snap)

    async def hide(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        await self._urgent(self.library.hide, ids)
        for i in ids:
            snap = self.uploads.pop(i, None)
            if snap is not None and snap.document_id is not None:
                self._by_doc.get(snap.document_id, set()).discard(i)

    async def export(self, doc_id: int, dest: Path, *, overwrite: bool = False) -> Path:
        """`Library.export` on its own thread, so that a large export never holds up
        the database thread the uploads record through."""
        fn = functools.partial(self.library.export, doc_id, dest, overwrite=overwrite)
        return await self._in(self._export_pool, fn)

    # -- waiting --------------------------------------------------------------

    async def wait_uploads(self, ids: Iterable[int]) -> list[UploadSnapshot]:
        """Wait until each upload reaches a final state; returns those states."""
        loop = asyncio.get_running_loop()
        futs: list[asyncio.Future[UploadSnapshot]] = []
        for i in ids:
            fut: asyncio.Future[UploadSnapshot] = loop.create_future()
            snap = self.uploads.get(i)
            if snap is not None and snap.state in UploadState.FINISHED:
                fut.set_result(snap)
            else:
                self._waiters.setdefault(i, []).append(fut)
            futs.append(fut)
        return list(await asyncio.gather(*futs))

    async def drain_compression(self, poll: float = 0.2) -> None:
        """Wait until no compression job is queued or running (failed ones stay)."""
        self._compress_wake.set()
        while True:
            counts = await self._db(_job_counts)
            if counts.get("queued", 0) == 0 and counts.get("running", 0) == 0:
                return
            if self._compress_failures >= STUCK_AFTER:
                log.warning(
                    "compression paused (%s); the queue resumes next time", self._compress_error
                )
                return
            await asyncio.sleep(poll)

    # -- internals: uploads ---------------------------------------------------

    async def _upload_worker(self) -> None:
        while not self._closing:
            group = [await self._queue.get()]
            await self._after_listing()
            self._take_small(group)
            try:
                started = await self._start(group)
            except Exception as exc:
                self._unrecorded(group, exc)
                continue
            try:
                if len(started) > 1:
                    await self._run_group(started)
                for uid in started if len(started) == 1 else ():
                    await self._run_upload(uid)
            except _Shutdown:
                return  # left as it is in the database; the next start resumes it
            except Exception as exc:
                self._unrecorded(started, exc)

    async def _after_listing(self) -> None:
        """Wait while files are being listed (LISTING_FIRST at most), so that a drop
        shows all its rows before its copies take the CPU and the db thread."""
        if self._listed.is_set():
            return
        left = self._listing_since + LISTING_FIRST - time.monotonic()
        if left > 0:
            # not wait_for: it can swallow a cancellation that comes as the wait ends
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._listed.wait()

    def _take_small(self, group: list[int]) -> None:
        """Small files go in groups, started in one transaction, so that a worker never
        waits a commit per file; a group ends with the first file that is not small."""
        total = 0
        while len(group) < GROUP_FILES and total < GROUP_BYTES:
            snap = self.uploads.get(group[-1])
            size = snap.size if snap is not None else None
            if size is None or size >= SMALL_FILE or self._queue.empty():
                return
            total += size
            group.append(self._queue.get_nowait())

    async def _start(self, group: list[int]) -> list[int]:
        """Mark the group's queued uploads as running (one transaction); those started."""
        ids = []
        for uid in group:
            snap = self.uploads.get(uid)
            if snap is not None and snap.state == UploadState.QUEUED and not self._closing:
                ids.append(uid)
        ok = await self._starts(ids) if ids else []
        started = [uid for uid, yes in zip(ids, ok, strict=True) if yes is True]
        for uid in started:  # cancel() finds them from now on, before their copy begins
            self._cancels[uid] = _Flag()
        return started

    def _unrecorded(self, uids: list[int], exc: BaseException) -> None:
        failure = describe(exc)
        if failure.kind in (Kind.DATABASE, Kind.UNKNOWN):
            log.exception("uploads %s: unexpected failure in the engine", uids, exc_info=exc)
        else:
            log.error("uploads %s could not be recorded: %s", uids, failure.reason)
        for uid in uids:
            self._fail_in_memory(uid, exc)

    def _fail_in_memory(self, uid: int, exc: BaseException) -> None:
        """The database refused even to record the failure (disk full, I/O error): show
        the real cause anyway, so that nobody waits forever. The row stays as it was and
        the next start resumes it."""
        snap = self.uploads.get(uid)
        if snap is None or snap.state in UploadState.FINISHED:
            return
        failure = describe(exc)
        self._publish(
            replace(snap, state=UploadState.FAILED, error=failure.reason, error_kind=failure.kind)
        )

    async def _run_upload(self, uid: int) -> None:
        snap = self.uploads[uid]
        cancel = self._cancels.setdefault(uid, _Flag())
        started = time.monotonic()
        self._speed[uid] = (started, 0)
        self._publish(
            replace(
                snap,
                state=UploadState.UPLOADING,
                attempts=snap.attempts + 1,
                done_bytes=0,
                error=None,
                error_kind=None,
                started_at=time.time(),
                speed=None,
            )
        )
        s = self.settings
        check = s.check_corrupt and not snap.accept_corrupt
        report = self._progress_reporter(uid)
        staged = None
        try:
            staged = await self._in(
                self._upload_pool,
                functools.partial(
                    _copy_and_publish,
                    self.library.store,
                    Path(snap.path),
                    progress=report,
                    cancelled=cancel.is_set,
                    check_corrupt=check,
                ),
            )
            if self._shutdown.is_set():
                raise _Shutdown
        except (_Shutdown, asyncio.CancelledError):
            if staged is not None:
                discard(staged)
            raise
        except Exception as exc:
            await self._failed(uid, snap, exc)
            return
        finally:
            self._cancels.pop(uid, None)
            self._speed.pop(uid, None)
        await self._hand_over(uid, snap, staged)

    async def _run_group(self, uids: list[int]) -> None:
        """Small files: one executor call copies the whole group; no progress events
        (each takes milliseconds), each still its own upload with its own outcome."""
        now = time.time()
        snaps = []
        for uid in uids:
            snap = replace(
                self.uploads[uid],
                state=UploadState.UPLOADING,
                attempts=self.uploads[uid].attempts + 1,
                done_bytes=0,
                error=None,
                error_kind=None,
                started_at=now,
                speed=None,
            )
            self._publish(snap)
            snaps.append(snap)
        s = self.settings
        work = [
            (
                snap.path,
                self._cancels[snap.id].is_set,
                s.check_corrupt and not snap.accept_corrupt,
            )
            for snap in snaps
        ]
        try:
            results = await self._in(
                self._upload_pool,
                functools.partial(_copy_group, self.library.store, self._fsync_crew, work),
            )
        finally:
            for uid in uids:
                self._cancels.pop(uid, None)
        for snap, result in zip(snaps, results, strict=True):
            if isinstance(result, Exception):
                await self._failed(snap.id, snap, result)
            elif self._shutdown.is_set():
                discard(result)
                raise _Shutdown
            else:
                await self._hand_over(snap.id, snap, result)

    async def _hand_over(self, uid: int, snap: UploadSnapshot, staged: Staged) -> None:
        """Records are committed in groups: queue the copy and go on to the next file."""
        await self._recording.acquire()
        self._to_record.put_nowait((uid, snap, staged))

    async def _recorder(self) -> None:
        """Commits the rows of every copy waiting at once, then publishes each outcome."""
        while True:
            items = [await self._to_record.get()]
            while not self._to_record.empty():
                items.append(self._to_record.get_nowait())
            try:
                results = await self._db(self._record_batch, [(u, st) for u, _, st in items])
            except Exception as exc:
                results = [exc] * len(items)
            try:
                for (uid, snap, staged), result in zip(items, results, strict=True):
                    try:
                        if isinstance(result, Exception):
                            await self._failed(uid, snap, result, staged)
                        else:
                            self._recorded(uid, *result)
                    except _Shutdown:
                        pass  # left uploading in the database; the next start resumes it
                    except Exception as exc:
                        self._unrecorded([uid], exc)
                self._compress_wake.set()
            finally:
                for _ in items:
                    self._recording.release()

    def _recorded(self, uid: int, final: UploadSnapshot, doc: DocumentSnapshot | None) -> None:
        started_at = self.uploads[uid].started_at
        if doc is None:
            final = replace(final, started_at=started_at)
        else:
            final = replace(
                final,
                started_at=started_at,
                compression=doc.compression,
                stored_size=doc.stored_size,
            )
            self._remember(final)
            self._publish_document(doc)
        self._publish(final)

    async def _failed(
        self, uid: int, snap: UploadSnapshot, exc: Exception, staged: Staged | None = None
    ) -> None:
        if staged is not None:
            discard(staged)
        if self._shutdown.is_set():
            raise _Shutdown from exc
        failure = describe(exc)
        state = UploadState.CANCELLED if failure.kind == Kind.CANCELLED else UploadState.FAILED
        if not isinstance(exc, UploadError):
            # a traceback only where the words cannot say it all
            trace = exc if failure.kind in (Kind.DATABASE, Kind.UNKNOWN) else None
            log.warning("upload of %s failed: %s", snap.path, failure.reason, exc_info=trace)
        try:
            final = await self._db(
                self.library.fail_upload, uid, failure.kind, failure.reason, state
            )
        except Exception as unrecorded:
            self._unrecorded([uid], unrecorded)
            return
        self._publish(replace(final, started_at=self.uploads[uid].started_at))

    def _start_batch(self, ids: list[int]) -> list[bool | Exception]:
        started = self.library.start_uploads(ids)
        return [i in started for i in ids]

    def _record_batch(
        self, items: list[tuple[int, Staged]]
    ) -> list[tuple[UploadSnapshot, DocumentSnapshot | None] | Exception]:
        """Record staged copies together, then queue their compression (secondary:
        failing to queue never fails an upload; the sweep queues it later)."""
        results = self.library.record_many(items)
        fresh = [
            r.document_id
            for r in results
            if isinstance(r, UploadSnapshot)
            and r.document_id is not None
            and r.compression == "not_queued"
        ]
        docs: dict[int, DocumentSnapshot] = {}
        if fresh and self.settings.queue_compression:
            self.library.queue_compression_many(fresh)
            docs = {d.id: d for d in self.library.documents(fresh)}
        return [
            r if isinstance(r, Exception) else (r, docs.get(r.document_id or -1)) for r in results
        ]

    def _progress_reporter(self, uid: int) -> Callable[[int], None]:
        loop = self._loop
        assert loop is not None
        interval = self.settings.progress_interval
        last = [time.monotonic()]  # a file copied within one interval needs no progress

        def report(done: int) -> None:
            t = time.monotonic()
            if t - last[0] >= interval:
                last[0] = t
                loop.call_soon_threadsafe(self._on_progress, uid, done, t)

        return report

    def _on_progress(self, uid: int, done: int, t: float) -> None:
        snap = self.uploads.get(uid)
        if snap is None or snap.state != UploadState.UPLOADING:
            return
        prev_t, prev_done = self._speed.get(uid, (t, 0))
        speed = snap.speed
        if t > prev_t:
            now_speed = (done - prev_done) / (t - prev_t)
            speed = now_speed if speed is None else 0.7 * speed + 0.3 * now_speed
            self._speed[uid] = (t, done)
        self._publish(replace(snap, done_bytes=done, speed=speed))

    # -- internals: compression -----------------------------------------------

    async def _compress_worker(self) -> None:
        s = self.settings
        while not self._closing:
            try:
                job = await self._db(compression.claim, self.library, self.library.owner, s.lease)
            except Exception as exc:
                self._compression_write_failed(exc)
                job = None
                timeout = backoff(self._compress_failures - 1, base=0.5, cap=s.sweep_every)
            else:
                if job is not None:
                    self._compress_failures = 0
                else:
                    due = await self._db(compression.next_due, self.library)
                    timeout = s.sweep_every if due is None else max(0.05, min(due, s.sweep_every))
            if job is None:
                self._compress_wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._compress_wake.wait(), timeout)
                continue
            await self._run_job(job)

    async def _run_job(self, job: compression.Claimed) -> None:
        s = self.settings
        self._compress_busy += 1
        for doc in await self._db(self.library.documents, [job.document_id]):
            self._publish_document(doc)
        renewer = self._spawn(self._renew(job))
        cancelled = self._shutdown.is_set
        try:
            try:
                outcome = await self._in(
                    self._compress_pool,
                    functools.partial(
                        compression.compress,
                        self.library.store,
                        job,
                        level=s.level,
                        cancelled=cancelled,
                    ),
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._shutdown.is_set():
                    return  # the lease runs out; the next start reclaims the job
                step = functools.partial(
                    compression.fail, self.library, job, exc, retry_base=s.compress_retry_base
                )
            else:
                step = functools.partial(compression.finish, self.library, job, outcome)
            # finish and fail check that the job is still ours, so a retry is harmless
            for attempt in range(STUCK_AFTER):
                try:
                    doc = await self._db(step)
                    break
                except Exception as exc:
                    self._compression_write_failed(exc)
                    if attempt == STUCK_AFTER - 1:
                        # the job stays leased to us and the raw copy stays; the lease
                        # running out (or the next open) frees it
                        return
                    await asyncio.sleep(backoff(attempt, base=0.5, cap=5.0))
        finally:
            renewer.cancel()
            self._compress_busy -= 1
        self._compress_failures = 0
        self._publish_document(doc)

    def _compression_write_failed(self, exc: BaseException) -> None:
        self._compress_failures += 1
        self._compress_error = describe(exc).reason
        log.warning("compression cannot update the library: %s", self._compress_error)

    async def _renew(self, job: compression.Claimed) -> None:
        lease = self.settings.lease
        while True:
            await asyncio.sleep(lease / 3)
            with contextlib.suppress(Exception):
                await self._db(compression.renew, self.library, job, lease)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_every)
            try:
                report = await self._db(self.library.sweep)
            except Exception as exc:
                log.warning("sweep failed: %s", describe(exc).reason)
                continue
            if report.queued or report.reclaimed:
                await self.refresh_documents()
                self._compress_wake.set()

    async def refresh_documents(self) -> None:
        """Re-read the documents behind known uploads and publish changed states."""
        doc_ids = [d for d, ups in self._by_doc.items() if ups]
        for part in range(0, len(doc_ids), 500):
            for doc in await self._db(self.library.documents, doc_ids[part : part + 500]):
                self._publish_document(doc)

    # -- internals: publishing ------------------------------------------------

    def _remember(self, snap: UploadSnapshot) -> None:
        old = self.uploads.get(snap.id)
        if old is not None and old.document_id is not None and old.document_id != snap.document_id:
            self._by_doc.get(old.document_id, set()).discard(snap.id)
        self.uploads[snap.id] = snap
        if snap.document_id is not None:
            self._by_doc.setdefault(snap.document_id, set()).add(snap.id)

    def _publish(self, snap: UploadSnapshot) -> None:
        self._remember(snap)
        self._emit(snap)
        if snap.state in UploadState.FINISHED:
            for fut in self._waiters.pop(snap.id, []):
                if not fut.done():
                    fut.set_result(snap)

    def _publish_document(self, doc: DocumentSnapshot) -> None:
        self._emit(doc)
        for uid in sorted(self._by_doc.get(doc.id, ())):
            snap = self.uploads.get(uid)
            if snap is None:
                continue
            if snap.compression != doc.compression or snap.stored_size != doc.stored_size:
                self._publish(
                    replace(snap, compression=doc.compression, stored_size=doc.stored_size)
                )

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("a listener failed on %r", event)

    # -- internals: executors -------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)  # asyncio holds tasks weakly
        task.add_done_callback(self._tasks.discard)
        return task

    async def _in(self, pool: Executor, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn)

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._in(self._db_pool, functools.partial(fn, *args, **kwargs))

    async def _urgent(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`_db` ahead of the queued background work: a person waits for this one."""
        fut = self._db_pool.submit_urgent(functools.partial(fn, *args, **kwargs))
        return await asyncio.wrap_future(fut)


class _DbThread(Executor):
    """The one database thread. Work runs in the order given, except that urgent work
    (listing dropped files, a person's retry or cancel) goes before work still waiting;
    a call that has begun always runs to its end."""

    _URGENT, _NORMAL, _LAST = 0, 1, 2

    def __init__(self, name: str) -> None:
        self._work: queue.PriorityQueue[tuple[int, int, Future[Any] | None, Any]] = (
            queue.PriorityQueue()
        )
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._closed = False
        # a daemon, so that an engine never closed cannot keep the process alive
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._put(self._NORMAL, functools.partial(fn, *args, **kwargs))

    def submit_urgent(self, fn: Callable[[], T]) -> Future[T]:
        return self._put(self._URGENT, fn)

    def _put(self, priority: int, fn: Callable[[], T]) -> Future[T]:
        fut: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._work.put((priority, next(self._order), fut, fn))
        return fut

    def _run(self) -> None:
        while True:
            _, _, fut, fn = self._work.get()
            if fut is None:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Runs the work already given (as ThreadPoolExecutor does), then ends."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._work.put((self._LAST, next(self._order), None, None))
        if wait:
            self._thread.join()


class _Batcher(Generic[A, R]):
    """Requests that arrive while the db thread is busy go to it together, as one call
    of `many(items)`, which returns a result or an exception per item."""

    def __init__(self, engine: Engine, many: Callable[[list[A]], Sequence[R | Exception]]) -> None:
        self._engine = engine
        self._many = many
        self._pending: list[tuple[list[A], asyncio.Future[Sequence[R | Exception]]]] = []
        self._flushing = False

    async def __call__(self, items: list[A]) -> Sequence[R | Exception]:
        fut: asyncio.Future[Sequence[R | Exception]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, fut))
        if not self._flushing:
            self._flushing = True
            self._engine._spawn(self._flush())
        return await fut

    async def _flush(self) -> None:
        batch: list[tuple[list[A], asyncio.Future[Sequence[R | Exception]]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                every = [item for items, _ in batch for item in items]
                try:
                    results = await self._engine._db(self._many, every)
                except Exception as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                at = 0
                for items, fut in batch:
                    if not fut.done():
                        fut.set_result(results[at : at + len(items)])
                    at += len(items)
        finally:
            self._flushing = False
            for _, fut in batch + self._pending:
                if not fut.done():
                    fut.cancel()
            self._pending = []


def _copy_group(
    store: BlobStore,
    crew: _Crew,
    work: list[tuple[str, Callable[[], bool], bool]],
) -> list[Staged | Exception]:
    """Copy small files one after the other, then make them durable together: every
    copy fsynced, renamed into place, every folder fsynced (the fsyncs of a step are
    issued at once, so that they share the file system's journal commits). An outcome
    per file; a file counts as published only once its folder is fsynced."""
    out: list[Staged | Exception] = []
    for path, cancelled, check in work:
        try:
            out.append(
                copy_in(store, Path(path), cancelled=cancelled, check_corrupt=check, durable=False)
            )
        except Exception as exc:
            out.append(exc)
    at = [i for i, st in enumerate(out) if isinstance(st, Staged)]
    errors = crew.map(fsync_file, [st.temp for st in out if isinstance(st, Staged)])
    for i, error in zip(at, errors, strict=True):
        st = out[i]
        assert isinstance(st, Staged)
        try:
            if error is not None:
                raise error
            out[i] = replace(st, temp=store.place(st.temp, st.sha256), published=True)
        except Exception as exc:
            discard(st)
            out[i] = exc
    folders = sorted({st.temp.parent for st in out if isinstance(st, Staged)})
    failed_dirs = dict(zip(folders, crew.map(fsync_dir, folders), strict=True))
    for i, st in enumerate(out):
        if isinstance(st, Staged) and (error := failed_dirs[st.temp.parent]) is not None:
            out[i] = error  # renamed but not durably: an unreferenced blob the sweep collects
    return out


class _Flag:
    """A cancel flag: set on the loop, read by a worker thread between chunks."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class _Crew:
    """Threads that run one function over many items at once (the fsyncs of a group):
    a wake-up per thread and one wait per call, not a future per item."""

    def __init__(self, n: int, name: str) -> None:
        self._inbox: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        # daemons, so that an engine never closed cannot keep the process alive
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True) for i in range(n)
        ]
        for t in self._threads:
            t.start()

    def map(self, fn: Callable[[A], object], items: Sequence[A]) -> list[Exception | None]:
        """fn(item) for every item, at once; the exception each raised, or None."""
        task = _Task(fn, items)
        for _ in range(min(len(self._threads), len(items))):
            self._inbox.put(task)
        task.done.wait()
        return task.errors

    def _run(self) -> None:
        while (task := self._inbox.get()) is not None:
            task.work()

    def shutdown(self, wait: bool = True) -> None:
        for _ in self._threads:
            self._inbox.put(None)
        if wait:
            for t in self._threads:
                t.join()


class _Task:
    def __init__(self, fn: Callable[[Any], object], items: Sequence[Any]) -> None:
        self.fn = fn
        self.items = items
        self.errors: list[Exception | None] = [None] * len(items)
        self.done = threading.Event()
        self._next = itertools.count()  # next() on it is atomic: each item taken once
        self._left = len(items)
        self._lock = threading.Lock()
        if not items:
            self.done.set()

    def work(self) -> None:
        n = len(self.items)
        finished = 0
        while (i := next(self._next)) < n:
            try:
                self.fn(self.items[i])
            except Exception as exc:
                self.errors[i] = exc
            except BaseException as exc:  # never lose a thread of the crew
                self.errors[i] = RuntimeError(repr(exc))
            finished += 1
        with self._lock:
            self._left -= finished
            if self._left == 0:
                self.done.set()


def _copy_and_publish(store: BlobStore, path: Path, **kwargs: Any) -> Staged:
    """The upload thread's part: copy, hash, check, fsync, rename into place, fsync."""
    return publish(store, copy_in(store, path, **kwargs))


def _job_counts() -> dict[str, int]:
    query = Job.select(Job.state, pw.fn.COUNT(Job.id)).group_by(Job.state)
    return {state: n for state, n in rows(query)}


def expand(
    paths: Iterable[str | Path], stopped: Callable[[], bool] = lambda: False
) -> Iterator[tuple[str, int | None]]:
    """Every file under `paths` (folders recursively, sorted), with its size if known.

    Follows symbolic links to folders but never into a loop; entries that are not
    regular files are listed too, so that they fail visibly with their reason. Paths
    are absolute strings (a Path per file costs more than its stat).
    """
    seen: set[tuple[int, int]] = set()

    def walk(folder: str, st: os.stat_result) -> Iterator[tuple[str, int | None]]:
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return
        seen.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            yield folder, None  # unreadable folder: a row that says why
            return
        for entry in entries:
            if stopped():
                return
            try:
                # one stat per entry, following symbolic links
                est = entry.stat()
            except OSError:
                yield entry.path, None
                continue
            if stat.S_ISDIR(est.st_mode):
                yield from walk(entry.path, est)
            else:
                yield entry.path, est.st_size if stat.S_ISREG(est.st_mode) else None

    for raw in paths:
        if stopped():
            return
        path = os.path.abspath(raw)
        try:
            st = os.stat(path)
        except OSError:
            yield path, None
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from walk(path, st)
        else:
            yield path, st.st_size if stat.S_ISREG(st.st_mode) else None
