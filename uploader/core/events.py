"""Immutable snapshots that the CLI and the window render; no behaviour beyond formatting."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UploadSnapshot:
    """One upload as it stands now. A change is `dataclasses.replace(...)`."""

    id: int
    path: str
    name: str
    size: int | None
    state: str  # models.UploadState
    done_bytes: int = 0
    error: str | None = None
    error_kind: str | None = None
    attempts: int = 0
    document_id: int | None = None
    duplicate: bool = False
    accept_corrupt: bool = False
    sha256: str | None = None
    compression: str | None = None  # models.Compression, None until a document exists
    stored_size: int | None = None
    created_at: float = 0.0
    started_at: float | None = None
    # bytes per second over the last few seconds of an upload in progress
    speed: float | None = None

    @property
    def fraction(self) -> float:
        if not self.size:
            return 1.0 if self.state == "uploaded" else 0.0
        return min(1.0, self.done_bytes / self.size)

    @property
    def saving(self) -> float | None:
        """Fraction saved by compression (0.62 for −62%), when compressed."""
        if self.compression != "done" or not self.size or self.stored_size is None:
            return None
        return 1.0 - self.stored_size / self.size


@dataclass(frozen=True, slots=True)
class DocumentSnapshot:
    id: int
    sha256: str
    name: str
    size: int
    stored_size: int
    compression: str
    encoding: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Expanding:
    """Folders are being expanded: `found` files so far; `done` once all are listed."""

    batch: int
    found: int
    done: bool = False


Event = UploadSnapshot | DocumentSnapshot | Expanding


def format_size(n: float) -> str:
    """Sizes as people read them: 0 B, 999 B, 1.5 kB, 12 MB, 3.2 GB (SI units)."""
    if n < 1000:
        return f"{int(n)} B"
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        n /= 1000
        if n < 999.95 or unit == "PB":
            return f"{n:.1f} {unit}" if n < 100 else f"{n:.0f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover
