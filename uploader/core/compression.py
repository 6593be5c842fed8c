"""The compression queue: claim a job with a lease, compress, verify, switch.

Secondary work: it never removes the only verified copy of a document. The
uncompressed blob is deleted only after the compressed one is fsynced, verified by
decompressing it, published under its name, and the switch is committed.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zstandard

from . import formats, models
from .events import DocumentSnapshot
from .library import MAX_JOB_ATTEMPTS, Library, _doc_snapshot, _sync_doc_states
from .models import Compression, Document, Job
from .retry import backoff, describe
from .store import CHUNK, RAW, ZSTD, BlobStore, hash_stream

log = logging.getLogger(__name__)

# Too small to be worth a frame: headers eat what little zstd saves.
MIN_SIZE = 4096
TRIAL = 1 << 20
MIN_SAVING = 0.03
# Above this size a job uses zstd's worker threads.
THREADED_FROM = 8 << 20
DEFAULT_LEASE = 60.0
# The longest backoff. A job due later than this was backed off under a clock that has
# since jumped back; it is due now rather than parked for as long as the jump.
BACKOFF_CAP = 600.0


@dataclass(frozen=True)
class Claimed:
    job_id: int
    document_id: int
    sha256: str
    size: int
    name: str
    attempts: int
    owner: str


@dataclass(frozen=True)
class Outcome:
    skipped: bool
    stored_size: int
    reason: str = ""


def claim(library: Library, owner: str, lease: float = DEFAULT_LEASE) -> Claimed | None:
    """Take the next due job (or one whose worker's lease expired), or None."""

    def tx() -> Claimed | None:
        t = models.now()
        expired = (Job.state == "running") & (Job.lease_until < t)
        if (
            Job.update(state="failed", owner=None, lease_until=None)
            .where(expired & (Job.attempts >= MAX_JOB_ATTEMPTS))
            .execute()
        ):
            _sync_doc_states()
        due = (Job.state == "queued") & (
            (Job.run_after <= t) | (Job.run_after > t + BACKOFF_CAP)
        ) | expired
        nxt = Job.select(Job.id).where(due).order_by(Job.priority.desc(), Job.id).limit(1)
        rows = list(
            Job.update(
                state="running", owner=owner, lease_until=t + lease, attempts=Job.attempts + 1
            )
            .where(Job.id.in_(nxt))
            .returning(Job.id, Job.document, Job.attempts)
            .tuples()
            .execute()
        )
        if not rows:
            return None
        job_id, doc_id, attempts = rows[0]
        Document.update(compression=Compression.RUNNING).where(Document.id == doc_id).execute()
        doc = Document.get_by_id(doc_id)
        return Claimed(job_id, doc_id, doc.sha256, doc.size, doc.name, attempts, owner)

    return library.write(tx)


def release(library: Library, owner: str) -> int:
    """Give back the jobs `owner` holds, uncounted: a clean shutdown is not a failed
    attempt (a crash still counts, so a file that kills the worker fails in the end)."""

    def tx() -> int:
        n = int(
            Job.update(state="queued", owner=None, lease_until=None, attempts=Job.attempts - 1)
            .where((Job.owner == owner) & (Job.state == "running") & (Job.attempts > 0))
            .execute()
        )
        if n:
            _sync_doc_states()
        return n

    return library.write(tx)


def renew(library: Library, job: Claimed, lease: float = DEFAULT_LEASE) -> bool:
    """Extend our lease; False if the job is no longer ours."""

    def tx() -> int:
        return int(
            Job.update(lease_until=models.now() + lease)
            .where((Job.id == job.job_id) & (Job.owner == job.owner) & (Job.state == "running"))
            .execute()
        )

    return library.write(tx) == 1


def compress(
    store: BlobStore,
    job: Claimed,
    *,
    level: int = 3,
    cancelled: Callable[[], bool] | None = None,
    heartbeat: Callable[[], None] | None = None,
) -> Outcome:
    """Write, fsync, verify and publish the .zst copy; or decide to store as is."""
    src = store.path(job.sha256, RAW)
    with open(src, "rb") as f:
        head = f.read(TRIAL)
    if job.size < MIN_SIZE:
        return Outcome(True, job.size, "too small to gain")
    if formats.already_compressed(head):
        return Outcome(True, job.size, "already compressed")
    trial = zstandard.ZstdCompressor(level=level).compress(head)
    if len(trial) > len(head) * (1 - MIN_SAVING):
        return Outcome(True, job.size, "does not compress")
    temp = store.new_temp()
    try:
        stored = _write_zstd(src, temp, job.size, level, cancelled, heartbeat)
        if stored >= job.size:
            temp.unlink()
            return Outcome(True, job.size, "does not compress")
        _verify(temp, job)
        store.publish(temp, job.sha256, ZSTD)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return Outcome(False, stored)


def _write_zstd(
    src: Path,
    temp: Path,
    size: int,
    level: int,
    cancelled: Callable[[], bool] | None,
    heartbeat: Callable[[], None] | None,
) -> int:
    threads = -1 if size >= THREADED_FROM else 0
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=threads)
    buf = bytearray(CHUNK * 4)  # one buffer, reused: no fresh 4 MiB (and page faults) per read
    view = memoryview(buf)
    with open(src, "rb", buffering=0) as inp, open(temp, "xb") as out:
        with cctx.stream_writer(out, size=size, closefd=False) as writer:
            while n := inp.readinto(buf):
                if cancelled is not None and cancelled():
                    raise InterruptedError("compression cancelled")
                writer.write(view[:n])
                if heartbeat is not None:
                    heartbeat()
        out.flush()
        os.fsync(out.fileno())
        return out.tell()


def _verify(temp: Path, job: Claimed) -> None:
    """Decompress the file (in a second thread) and hash what comes out (in this one)."""
    with open(temp, "rb") as f:
        reader = zstandard.ZstdDecompressor().stream_reader(f, read_size=CHUNK)
        sha, total = hash_stream(reader, name="verify", depth=4, size=CHUNK * 4)
    if sha != job.sha256 or total != job.size:
        raise ValueError("the compressed copy did not decompress to the original")


def finish(library: Library, job: Claimed, outcome: Outcome) -> DocumentSnapshot:
    """Commit the switch (or the skip); only then delete the uncompressed blob."""

    def tx() -> bool:
        mine = (
            Job.delete()
            .where((Job.id == job.job_id) & (Job.owner == job.owner) & (Job.state == "running"))
            .execute()
        )
        if not mine:
            return False
        if outcome.skipped:
            Document.update(compression=Compression.SKIPPED).where(
                Document.id == job.document_id
            ).execute()
        else:
            Document.update(
                compression=Compression.DONE, encoding=ZSTD, stored_size=outcome.stored_size
            ).where(Document.id == job.document_id).execute()
        return True

    if library.write(tx) and not outcome.skipped:
        library.store.remove(job.sha256, RAW)
    return _doc_snapshot(Document.get_by_id(job.document_id))


def fail(
    library: Library, job: Claimed, exc: BaseException, *, retry_base: float = 2.0
) -> DocumentSnapshot:
    """Back off and requeue, or give up after MAX_JOB_ATTEMPTS; the original stays."""
    reason = describe(exc, "while compressing").reason
    log.warning("compression of %s failed (attempt %d): %s", job.name, job.attempts, reason)

    def tx() -> None:
        mine = (Job.id == job.job_id) & (Job.owner == job.owner)
        if job.attempts >= MAX_JOB_ATTEMPTS:
            Job.update(state="failed", owner=None, lease_until=None, last_error=reason).where(
                mine
            ).execute()
        else:
            delay = backoff(job.attempts - 1, base=retry_base, cap=BACKOFF_CAP)
            Job.update(
                state="queued",
                owner=None,
                lease_until=None,
                last_error=reason,
                run_after=models.now() + delay,
            ).where(mine).execute()
        _sync_doc_states()

    library.write(tx)
    return _doc_snapshot(Document.get_by_id(job.document_id))


def next_due(library: Library) -> float | None:
    """Seconds until the next queued job is due (0 if one is due now), None if none."""
    row = Job.select(Job.run_after).where(Job.state == "queued").order_by(Job.run_after).first()
    if row is None:
        return None
    wait = float(row.run_after) - models.now()
    return 0.0 if wait > BACKOFF_CAP else max(0.0, wait)


def work(
    library: Library, *, level: int = 3, owner: str | None = None, retry_base: float = 2.0
) -> int:
    """Work the queue in this thread until nothing is due; returns jobs handled."""
    owner = owner or library.owner
    handled = 0
    while (job := claim(library, owner)) is not None:
        try:
            outcome = compress(library.store, job, level=level)
        except Exception as exc:
            fail(library, job, exc, retry_base=retry_base)
        else:
            finish(library, job, outcome)
        handled += 1
    return handled
