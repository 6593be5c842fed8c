"""The window's persisted settings (QSettings); values only, no engine rules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings

from uploader.core.engine import Settings


@dataclass(frozen=True)
class Prefs:
    jobs: int = 4
    level: int = 3
    compress_workers: int = 1
    check_corrupt: bool = True
    # None: $UPLOADER_LIBRARY or the user data folder
    library: Path | None = None

    @classmethod
    def load(cls, qs: QSettings) -> Prefs:
        d = cls()
        library = str(qs.value("library", "") or "")
        return cls(
            jobs=_int(qs.value("uploads_at_once"), d.jobs, 1, 16),
            level=_int(qs.value("compression_level"), d.level, 1, 19),
            compress_workers=_int(qs.value("compression_workers"), d.compress_workers, 1, 8),
            check_corrupt=_bool(qs.value("check_corrupt"), d.check_corrupt),
            library=Path(library) if library else None,
        )

    def save(self, qs: QSettings) -> None:
        qs.setValue("uploads_at_once", self.jobs)
        qs.setValue("compression_level", self.level)
        qs.setValue("compression_workers", self.compress_workers)
        qs.setValue("check_corrupt", self.check_corrupt)
        qs.setValue("library", "" if self.library is None else str(self.library))
        qs.sync()

    def engine_settings(self) -> Settings:
        return Settings(
            jobs=self.jobs,
            level=self.level,
            compress_workers=self.compress_workers,
            check_corrupt=self.check_corrupt,
        )


def _int(value: object, default: int, lo: int, hi: int) -> int:
    try:
        n = int(str(value))
    except ValueError:
        return default
    return min(hi, max(lo, n))


def _bool(value: object, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    return str(value).lower() in ("1", "true", "yes", "on")
