"""peewee models and schema versions; no file I/O and no policy here.

The schema version lives in `PRAGMA user_version`. Each entry of MIGRATIONS takes
the schema from version n to n + 1 inside one BEGIN IMMEDIATE transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import peewee as pw

db = pw.DatabaseProxy()


def now() -> float:
    return time.time()


def rows(query: Any) -> list[tuple[Any, ...]]:
    """A query's rows as plain tuples (the stubs type them as model instances)."""
    return [tuple(r) for r in query.tuples()]


class Base(pw.Model):
    id = pw.AutoField()

    class Meta:
        database = db
        legacy_table_names = False


class Compression:
    """Compression state of a document (the badge on its rows)."""

    NOT_QUEUED = "not_queued"
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    ALL = (NOT_QUEUED, PENDING, RUNNING, DONE, SKIPPED, FAILED)


class UploadState:
    QUEUED = "queued"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ALL = (QUEUED, UPLOADING, UPLOADED, FAILED, CANCELLED)
    FINISHED = (UPLOADED, FAILED, CANCELLED)


class Document(Base):
    sha256 = pw.CharField(max_length=64, unique=True)
    size = pw.BigIntegerField()
    name = pw.TextField()
    # "raw": blobs/ab/<sha>; "zstd": blobs/ab/<sha>.zst
    encoding = pw.CharField(max_length=8, default="raw")
    stored_size = pw.BigIntegerField()
    compression = pw.CharField(max_length=16, default=Compression.NOT_QUEUED)
    created_at = pw.FloatField(default=now)


class PathField(pw.TextField):
    """A file path: text, or its raw bytes (stored as a BLOB) when it is not UTF-8."""

    def db_value(self, value: Any) -> Any:
        return value if isinstance(value, bytes) else super().db_value(value)

    def python_value(self, value: Any) -> Any:
        return value if isinstance(value, bytes) else super().python_value(value)


class Upload(Base):
    path = PathField()
    name = pw.TextField()
    size = pw.BigIntegerField(null=True)
    state = pw.CharField(max_length=16, default=UploadState.QUEUED, index=True)
    error = pw.TextField(null=True)
    error_kind = pw.CharField(max_length=32, null=True)
    attempts = pw.IntegerField(default=0)
    document = pw.ForeignKeyField(Document, null=True, on_delete="SET NULL")
    duplicate = pw.BooleanField(default=False)
    accept_corrupt = pw.BooleanField(default=False)
    created_at = pw.FloatField(default=now)
    updated_at = pw.FloatField(default=now)
    # Added in schema 2: removed from the window's list; the document stays.
    hidden = pw.BooleanField(default=False)


class Job(Base):
    """A compression job; a document has at most one."""

    document = pw.ForeignKeyField(Document, unique=True, on_delete="CASCADE")
    state = pw.CharField(max_length=16, default="queued", index=True)  # queued|running|failed
    priority = pw.IntegerField(default=0)
    attempts = pw.IntegerField(default=0)
    owner = pw.TextField(null=True)
    lease_until = pw.FloatField(null=True)
    run_after = pw.FloatField(default=0.0)
    last_error = pw.TextField(null=True)


MODELS: list[type[Base]] = [Document, Upload, Job]


def _v1(database: pw.SqliteDatabase) -> None:
    database.execute_sql(
        "CREATE TABLE document (id INTEGER PRIMARY KEY, sha256 VARCHAR(64) NOT NULL UNIQUE,"
        " size INTEGER NOT NULL, name TEXT NOT NULL, encoding VARCHAR(8) NOT NULL,"
        " stored_size INTEGER NOT NULL, compression VARCHAR(16) NOT NULL,"
        " created_at REAL NOT NULL)"
    )
    database.execute_sql(
        "CREATE TABLE upload (id INTEGER PRIMARY KEY, path TEXT NOT NULL, name TEXT NOT NULL,"
        " size INTEGER, state VARCHAR(16) NOT NULL, error TEXT, error_kind VARCHAR(32),"
        " attempts INTEGER NOT NULL, document_id INTEGER REFERENCES document (id)"
        " ON DELETE SET NULL, duplicate INTEGER NOT NULL, accept_corrupt INTEGER NOT NULL,"
        " created_at REAL NOT NULL, updated_at REAL NOT NULL)"
    )
    database.execute_sql("CREATE INDEX upload_state ON upload (state)")
    database.execute_sql("CREATE INDEX upload_document_id ON upload (document_id)")
    database.execute_sql(
        "CREATE TABLE job (id INTEGER PRIMARY KEY, document_id INTEGER NOT NULL UNIQUE"
        " REFERENCES document (id) ON DELETE CASCADE, state VARCHAR(16) NOT NULL,"
        " priority INTEGER NOT NULL, attempts INTEGER NOT NULL, owner TEXT,"
        " lease_until REAL, run_after REAL NOT NULL, last_error TEXT)"
    )
    database.execute_sql("CREATE INDEX job_state ON job (state)")


def _v2(database: pw.SqliteDatabase) -> None:
    database.execute_sql("ALTER TABLE upload ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0")


def _v3(database: pw.SqliteDatabase) -> None:
    # adding files looks up queued uploads by path; without it each lookup scans them all
    database.execute_sql("CREATE INDEX upload_queued_path ON upload (path) WHERE state = 'queued'")


MIGRATIONS: list[Callable[[pw.SqliteDatabase], None]] = [_v1, _v2, _v3]
SCHEMA_VERSION = len(MIGRATIONS)
