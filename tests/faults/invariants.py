"""The invariants of issue 5, checked on a library folder from the outside (sqlite3 read-only
and the blob files themselves); never changes the library.

`check(root, ...)` raises AssertionError listing every broken invariant, or returns the
figures it looked at (documents, blobs, ...), so that tests can add them up.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

MAX_JOB_ATTEMPTS = 5
CHUNK = 1 << 20


@dataclass
class Figures:
    documents: int = 0
    blobs: int = 0
    orphans: int = 0
    uploads: int = 0
    acknowledged: int = 0
    temps: int = 0
    problems: list[str] = field(default_factory=list)


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    total = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            total += len(chunk)
    return digest.hexdigest(), total


def sha256_zst(path: Path) -> tuple[str, int]:
    """Hash of the decompressed bytes; raises zstandard.ZstdError on a bad frame or checksum."""
    digest = hashlib.sha256()
    total = 0
    with open(path, "rb") as f:
        reader = zstandard.ZstdDecompressor().stream_reader(f, read_size=CHUNK)
        while chunk := reader.read(CHUNK):
            digest.update(chunk)
            total += len(chunk)
    return digest.hexdigest(), total


def snapshot_sources(paths: Iterable[Path]) -> dict[Path, tuple[str, int, int]]:
    """(sha256, size, mtime_ns) of each source file, to compare after a fault (invariant 8)."""
    out: dict[Path, tuple[str, int, int]] = {}
    for p in paths:
        sha, size = sha256_file(p)
        out[p] = (sha, size, os.stat(p).st_mtime_ns)
    return out


def connect(root: Path, scratch: Path) -> sqlite3.Connection:
    """A connection to a copy of the database (and its WAL) in `scratch`.

    Right after a crash the WAL must be recovered, which a read-only connection cannot
    do; checking a copy leaves the library exactly as the crash left it.
    """
    for suffix in ("", "-wal"):
        src = root / f"library.db{suffix}"
        if src.exists():
            shutil.copyfile(src, scratch / f"library.db{suffix}")
    return sqlite3.connect(scratch / "library.db", timeout=30)


@contextlib.contextmanager
def connect_copy(root: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a throw-away copy of the library's database."""
    with tempfile.TemporaryDirectory(prefix="invariants-") as scratch:
        conn = connect(root, Path(scratch))
        try:
            yield conn
        finally:
            conn.close()


def check(
    root: Path,
    *,
    acknowledged: Iterable[Mapping[str, Any]] = (),
    sources: Mapping[Path, tuple[str, int, int]] | None = None,
    recovered: bool = False,
    drained: bool = False,
    expect_all: Iterable[str] = (),
) -> Figures:
    """Check invariants 1-9 on the library at `root`.

    acknowledged: result lines (`uploader add --json`) with status "uploaded".
    recovered: the library was opened by a writer since the last crash (invariant 5).
    drained: the compression queue was worked until empty (invariant 6, second half).
    expect_all: SHA-256 of content that must be in the library (a converged run).
    """
    fig = Figures()
    bad = fig.problems
    acknowledged = list(acknowledged)
    blob_dir = root / "blobs"
    tmp_dir = root / "tmp"
    scratch = tempfile.TemporaryDirectory(prefix="invariants-")
    conn = connect(root, Path(scratch.name))
    try:
        # 1. the database itself
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            bad.append(f"1: integrity_check: {integrity[:5]}")
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            bad.append(f"1: foreign_key_check: {fk[:5]}")
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            # killed before the schema was created: an empty library
            if list(acknowledged):
                bad.append("2: acknowledged uploads, but the library has no schema")
            if bad:
                raise AssertionError("broken invariants:\n  " + "\n  ".join(bad))
            return fig
        docs = {
            r[0]: r
            for r in conn.execute(
                "SELECT id, sha256, size, encoding, stored_size, compression FROM document"
            )
        }
        by_sha = {r[1]: r for r in docs.values()}
        jobs = {
            r[1]: r for r in conn.execute("SELECT id, document_id, state, attempts, owner FROM job")
        }
        uploads = {
            r[0]: r
            for r in conn.execute("SELECT id, path, state, document_id, duplicate FROM upload")
        }
    finally:
        conn.close()
        scratch.cleanup()
    fig.documents = len(docs)
    fig.uploads = len(uploads)

    # 3. every file under a final name is whole: hashes to its address
    on_disk: dict[tuple[str, str], Path] = {}
    if blob_dir.exists():
        for folder in sorted(blob_dir.iterdir()):
            for path in sorted(folder.iterdir()):
                name = path.name
                enc = "zstd" if name.endswith(".zst") else "raw"
                sha = name[:-4] if enc == "zstd" else name
                on_disk[(sha, enc)] = path
                if folder.name != sha[:2]:
                    bad.append(f"3: {path} is in the wrong folder")
                try:
                    got, size = sha256_zst(path) if enc == "zstd" else sha256_file(path)
                except zstandard.ZstdError as exc:
                    bad.append(f"3: {path} does not decompress: {exc}")
                    continue
                if got != sha:
                    bad.append(f"3: {path} is partial or damaged (hashes to {got[:12]})")
                doc = by_sha.get(sha)
                if doc is not None and size != doc[2]:
                    bad.append(f"3: {path} holds {size} bytes, document says {doc[2]}")
    fig.blobs = len(on_disk)

    # 4 and 7. every document has a verified copy under its encoding
    for doc_id, sha, _size, enc, _stored, comp in docs.values():
        if (sha, enc) not in on_disk:
            bad.append(f"4/7: document {doc_id} ({enc}) has no blob {sha[:12]}")
        if enc == "zstd" and comp != "done":
            bad.append(f"6: document {doc_id} is zstd but compression is {comp}")
        if comp == "done" and enc != "zstd":
            bad.append(f"6: document {doc_id} is done but stored {enc}")
        # 6. exactly one of: compressed, skipped, or a job queued/running/failed
        job = jobs.get(doc_id)
        if comp in ("done", "skipped"):
            if job is not None:
                bad.append(f"6: document {doc_id} is {comp} and still has a job {job[2]}")
        elif job is None:
            if comp != "not_queued" or recovered:
                bad.append(f"6: document {doc_id} is {comp} without a job")
        else:
            want = {"queued": "pending", "running": "running", "failed": "failed"}[job[2]]
            if comp != want:
                bad.append(f"6: document {doc_id} is {comp}, its job is {job[2]}")
    known = {(r[1], r[3]) for r in docs.values()}
    fig.orphans = sum(1 for key in on_disk if key not in known)
    for _, doc_id, state, attempts, owner in jobs.values():
        if state not in ("queued", "running", "failed"):
            bad.append(f"6: job of document {doc_id} in state {state}")
        if attempts > MAX_JOB_ATTEMPTS:
            bad.append(f"6: job of document {doc_id} made {attempts} attempts")
        if drained and state in ("queued", "running"):
            bad.append(f"6: job of document {doc_id} still {state} after draining")
        if recovered and state == "running":
            bad.append(f"5: job of document {doc_id} still running (owner {owner}) after recovery")

    # 4. rows point at real things, never at temp files
    tmp_text = str(tmp_dir)
    for uid, path, state, doc_id, _dup in uploads.values():
        text = os.fsdecode(path) if isinstance(path, bytes) else path
        if text.startswith(tmp_text) or text.startswith(str(blob_dir)):
            bad.append(f"4: upload {uid} points into the library: {text}")
        if state == "uploaded" and (doc_id is None or doc_id not in docs):
            bad.append(f"4: upload {uid} is uploaded without a document")
        if recovered and state == "uploading":
            bad.append(f"5: upload {uid} still uploading after recovery")

    # 5. no debris after recovery
    temps = list(tmp_dir.iterdir()) if tmp_dir.exists() else []
    fig.temps = len(temps)
    if recovered and temps:
        bad.append(f"5: {len(temps)} temp files left after recovery: {temps[:3]}")

    # 2. every acknowledged upload is there, whole
    for ack in acknowledged:
        fig.acknowledged += 1
        row = uploads.get(ack["upload_id"])
        doc = by_sha.get(ack["sha256"])
        if row is None or row[2] != "uploaded":
            bad.append(f"2: acknowledged upload {ack['upload_id']} is {row and row[2]}")
        if doc is None:
            bad.append(f"2: acknowledged {ack['path']} has no document {ack['sha256'][:12]}")
            continue
        if row is not None and row[3] != doc[0]:
            bad.append(f"2: acknowledged upload {ack['upload_id']} points at {row[3]}")
        if doc[2] != ack["size"]:
            bad.append(f"2: acknowledged {ack['path']}: size {doc[2]} != {ack['size']}")

    # 9. converged: what must be there is there, once
    for sha in expect_all:
        if sha not in by_sha:
            bad.append(f"9: content {sha[:12]} is not in the library")
    if len(by_sha) != len(docs):
        bad.append("9: duplicate documents for one SHA-256")

    # 8. sources untouched
    for p, (sha, size, mtime) in (sources or {}).items():
        try:
            now = sha256_file(p)
            now_mtime = os.stat(p).st_mtime_ns
        except OSError as exc:
            bad.append(f"8: source {p} unreadable after the fault: {exc}")
            continue
        if now != (sha, size) or now_mtime != mtime:
            bad.append(f"8: source {p} changed")

    if bad:
        raise AssertionError("broken invariants:\n  " + "\n  ".join(bad))
    return fig


def read_acks(text: str) -> list[dict[str, Any]]:
    """The `uploader add --json` lines with status uploaded; a torn last line is ignored."""
    import json

    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and item.get("status") == "uploaded":
            out.append(item)
    return out
