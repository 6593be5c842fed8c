"""The table model over the engine's upload snapshots; it renders, it never decides.

Snapshots arrive on the GUI thread as often as the engine publishes them; the model
keeps the latest per id and flushes them on a timer: new rows in one insert, and
`dataChanged` only for the cells whose text changed.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import (
    QAbstractTableModel,
    QByteArray,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)

from uploader.core.events import UploadSnapshot, format_size
from uploader.core.library import display_name

Index = QModelIndex | QPersistentModelIndex

FLUSH_MS = 100
# Above this size a running row shows its speed and the time left.
LARGE = 8_000_000


class Column(enum.IntEnum):
    NAME = 0
    SIZE = 1
    PROGRESS = 2
    STATUS = 3
    COMPRESSION = 4
    ACTIONS = 5


HEADERS = {
    Column.NAME: "Name",
    Column.SIZE: "Size",
    Column.PROGRESS: "Progress",
    Column.STATUS: "Status",
    Column.COMPRESSION: "Compression",
    Column.ACTIONS: "",
}


class Role(enum.IntEnum):
    SNAPSHOT = Qt.ItemDataRole.UserRole + 1
    UPLOAD_ID = Qt.ItemDataRole.UserRole + 2
    STATE = Qt.ItemDataRole.UserRole + 3
    PROGRESS = Qt.ItemDataRole.UserRole + 4  # 0..1000, or -1 for no bar
    COMPRESSION = Qt.ItemDataRole.UserRole + 5  # the badge's key (see BADGES)
    ACTIONS = Qt.ItemDataRole.UserRole + 6  # tuple of Action values
    ERROR = Qt.ItemDataRole.UserRole + 7
    CATEGORY = Qt.ItemDataRole.UserRole + 8
    SORT = Qt.ItemDataRole.UserRole + 9  # what a click on the column's header sorts by


class Action(enum.StrEnum):
    RETRY = "retry"
    UPLOAD_ANYWAY = "upload_anyway"
    CANCEL = "cancel"


ACTION_LABELS = {
    Action.RETRY: "Retry",
    Action.UPLOAD_ANYWAY: "Upload anyway",
    Action.CANCEL: "Cancel",
}


class Category(enum.StrEnum):
    """The filters: every row is in ALL and in at most one other."""

    ALL = "all"
    ACTIVE = "active"
    FAILED = "failed"
    DONE = "done"


# Compression states of the core, as the badge words them.
BADGES = {
    "not_queued": "not queued (will retry)",
    "pending": "pending",
    "running": "compressing",
    "done": "compressed",
    "skipped": "stored as is",
    "failed": "compression failed (will retry)",
}


def category(snap: UploadSnapshot) -> Category | None:
    if snap.state in ("queued", "uploading"):
        return Category.ACTIVE
    if snap.state == "failed":
        return Category.FAILED
    if snap.state == "uploaded":
        return Category.DONE
    return None  # cancelled: only under All


def actions(snap: UploadSnapshot) -> tuple[Action, ...]:
    if snap.state == "failed":
        if snap.error_kind == "corrupt":
            return (Action.RETRY, Action.UPLOAD_ANYWAY)
        return (Action.RETRY,)
    if snap.state == "cancelled":
        return (Action.RETRY,)
    if snap.state in ("queued", "uploading"):
        return (Action.CANCEL,)
    return ()


def status_text(snap: UploadSnapshot) -> str:
    match snap.state:
        case "queued":
            return "Queued"
        case "uploading":
            return f"Uploading {int(snap.fraction * 100)}%"
        case "uploaded":
            return "Already in library" if snap.duplicate else "Uploaded"
        case "failed":
            return f"Failed: {snap.error or 'unknown reason'}"
        case "cancelled":
            return "Cancelled"
    return snap.state


def badge_text(snap: UploadSnapshot) -> str:
    if snap.compression is None:
        return ""
    text = BADGES.get(snap.compression, snap.compression)
    saving = snap.saving
    if saving is not None:
        text = f"{text} −{max(0, int(saving * 100))}%"  # never rounds up to −100%
    return text


def duration_text(seconds: float) -> str:
    s = max(1, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def progress_text(snap: UploadSnapshot) -> str:
    """What the bar says: bytes done, and for large files the speed and time left."""
    if snap.state != "uploading":
        return ""
    if not snap.size:
        return format_size(snap.done_bytes)
    text = f"{format_size(snap.done_bytes)} of {format_size(snap.size)}"
    if snap.size >= LARGE and snap.speed:
        left = (snap.size - snap.done_bytes) / snap.speed
        text += f" · {format_size(snap.speed)}/s · {duration_text(left)} left"
    return text


def progress_value(snap: UploadSnapshot) -> int:
    """The bar's value in tenths of a percent; -1 for rows without a bar (not running)."""
    if snap.state == "uploading":
        return round(snap.fraction * 1000)
    return -1


def _cells(snap: UploadSnapshot) -> tuple[object, ...]:
    """What each column shows: a change here is a dataChanged for that column."""
    return (
        display_name(snap.name),
        snap.size,
        (progress_value(snap), progress_text(snap)),
        (status_text(snap), snap.error_kind),
        badge_text(snap),
        actions(snap),
    )


@dataclass
class Summary:
    """Counts derived from the rows; the filters and the status bar read these."""

    counts: Counter[Category]
    uploaded: int
    failed: int
    cancelled: int
    active: int
    waiting_compression: int
    saved_bytes: int
    # the current batch: uploads that were active since the list was last idle
    batch_count: int = 0
    batch_finished: int = 0
    batch_bytes: int = 0
    batch_done_bytes: int = 0

    def text(self) -> str:
        parts = []
        if self.active:
            parts.append(f"{self.active} to upload")
        parts.append(f"{self.uploaded} uploaded")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.cancelled:
            parts.append(f"{self.cancelled} cancelled")
        if self.waiting_compression:
            parts.append(f"{self.waiting_compression} waiting for compression")
        if self.saved_bytes > 0:
            parts.append(f"{format_size(self.saved_bytes)} saved")
        return " · ".join(parts)


def _waits(compression: str | None) -> bool:
    return compression in ("not_queued", "pending", "running")


class _Tally:
    """Counts kept up to date one snapshot at a time, so that a flush costs what changed."""

    def __init__(self) -> None:
        self.counts: Counter[Category] = Counter()
        self.states: Counter[str] = Counter()
        self.doc_refs: Counter[int] = Counter()
        self.docs: dict[int, tuple[bool, int]] = {}  # doc id -> (waiting, bytes saved)
        self.waiting = 0
        self.saved = 0
        self.batch: dict[int, tuple[int, int, bool]] = {}  # id -> (size, done, finished)
        self.batch_bytes = 0
        self.batch_done = 0
        self.batch_finished = 0

    def add(self, snap: UploadSnapshot, sign: int) -> None:
        self.counts[Category.ALL] += sign
        cat = category(snap)
        if cat is not None:
            self.counts[cat] += sign
        self.states[snap.state] += sign
        if snap.document_id is not None:
            self.doc_refs[snap.document_id] += sign
            if self.doc_refs[snap.document_id] <= 0:
                del self.doc_refs[snap.document_id]
                self._set_doc(snap.document_id, None)
            elif sign > 0:
                self._set_doc(snap.document_id, snap)

    def _set_doc(self, doc_id: int, snap: UploadSnapshot | None) -> None:
        old = self.docs.pop(doc_id, None)
        if old is not None:
            self.waiting -= old[0]
            self.saved -= old[1]
        if snap is None:
            return
        saved = 0
        if snap.compression == "done" and snap.size and snap.stored_size is not None:
            saved = snap.size - snap.stored_size
        new = (_waits(snap.compression), saved)
        self.docs[doc_id] = new
        self.waiting += new[0]
        self.saved += new[1]

    def track(self, snap: UploadSnapshot, new: bool = False) -> None:
        """Follow the batch: rows added or made active since the list was last idle."""
        entry = self.batch.get(snap.id)
        active = snap.state in ("queued", "uploading")
        if entry is None and not active and not new:
            return
        if entry is not None:
            self.batch_bytes -= entry[0]
            self.batch_done -= entry[1]
            self.batch_finished -= entry[2]
        size = snap.size or 0
        now = (size, snap.done_bytes if active else size, not active)
        self.batch[snap.id] = now
        self.batch_bytes += now[0]
        self.batch_done += now[1]
        self.batch_finished += now[2]

    def untrack(self, uid: int) -> None:
        entry = self.batch.pop(uid, None)
        if entry is not None:
            self.batch_bytes -= entry[0]
            self.batch_done -= entry[1]
            self.batch_finished -= entry[2]

    def end_batch(self) -> None:
        self.batch.clear()
        self.batch_bytes = self.batch_done = self.batch_finished = 0

    def summary(self) -> Summary:
        st = self.states
        return Summary(
            counts=Counter(self.counts),
            uploaded=st["uploaded"],
            failed=st["failed"],
            cancelled=st["cancelled"],
            active=st["queued"] + st["uploading"],
            waiting_compression=self.waiting,
            saved_bytes=self.saved,
            batch_count=len(self.batch),
            batch_finished=self.batch_finished,
            batch_bytes=self.batch_bytes,
            batch_done_bytes=self.batch_done,
        )


class UploadModel(QAbstractTableModel):
    """One row per upload, in the order they were added."""

    summary_changed = Signal()
    # a batch ended (no row active any more): how many of it were uploaded, failed
    batch_finished = Signal(int, int)

    def __init__(self, parent: QObject | None = None, flush_ms: int = FLUSH_MS) -> None:
        super().__init__(parent)
        self._ids: list[int] = []
        self._rows: dict[int, int] = {}
        self._snaps: dict[int, UploadSnapshot] = {}
        self._shown: dict[int, tuple[object, ...]] = {}
        self._pending: dict[int, UploadSnapshot] = {}
        self._removed: set[int] = set()
        self._tally = _Tally()
        self._summary = self._tally.summary()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(flush_ms)
        self._timer.timeout.connect(self.flush)

    # -- feeding --------------------------------------------------------------

    def apply(self, snap: UploadSnapshot) -> None:
        """Take the latest snapshot of an upload; shown at the next flush."""
        if snap.id in self._removed:
            return
        self._pending[snap.id] = snap
        if not self._timer.isActive():
            self._timer.start()

    def reset(self, snaps: Iterable[UploadSnapshot]) -> None:
        """Show exactly these uploads (after the engine was restarted)."""
        self.beginResetModel()
        self._pending.clear()
        self._removed.clear()
        ordered = sorted(snaps, key=lambda s: s.id)
        self._ids = [s.id for s in ordered]
        self._rows = {i: r for r, i in enumerate(self._ids)}
        self._snaps = {s.id: s for s in ordered}
        self._shown = {s.id: _cells(s) for s in ordered}
        self._tally = _Tally()
        for snap in ordered:
            self._tally.add(snap, +1)
        self.endResetModel()
        self._update_summary()

    def flush(self) -> None:
        """Insert new rows in one go and emit dataChanged for changed cells only."""
        self._timer.stop()
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        new = sorted(i for i in pending if i not in self._rows)
        changed: list[tuple[int, int, int]] = []  # (row, first column, last column)
        for uid, snap in pending.items():
            row = self._rows.get(uid)
            if row is None:
                continue
            self._tally.add(self._snaps[uid], -1)
            self._tally.add(snap, +1)
            self._tally.track(snap)
            self._snaps[uid] = snap
            cells = _cells(snap)
            old = self._shown[uid]
            cols = [c for c in range(len(cells)) if cells[c] != old[c]]
            self._shown[uid] = cells
            if cols:
                changed.append((row, cols[0], cols[-1]))
        if new:
            first = len(self._ids)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for uid in new:
                self._rows[uid] = len(self._ids)
                self._ids.append(uid)
                self._snaps[uid] = pending[uid]
                self._shown[uid] = _cells(pending[uid])
                self._tally.add(pending[uid], +1)
                self._tally.track(pending[uid], new=True)
            self.endInsertRows()
        for top, left, bottom, right in _ranges(changed):
            self.dataChanged.emit(self.index(top, left), self.index(bottom, right))
        self._update_summary()
        tally = self._tally
        if tally.batch and tally.batch_finished == len(tally.batch):
            ended = [self._snaps[i] for i in tally.batch if i in self._snaps]
            tally.end_batch()
            self._update_summary()
            self.batch_finished.emit(
                sum(1 for x in ended if x.state == "uploaded"),
                sum(1 for x in ended if x.state == "failed"),
            )

    def remove(self, ids: Iterable[int]) -> None:
        """Take rows out of the list (the uploads stay in the library)."""
        gone = {i for i in ids if i in self._rows or i in self._pending}
        for uid in gone:
            self._pending.pop(uid, None)
        self._removed |= gone
        rows = sorted((self._rows[i] for i in gone if i in self._rows), reverse=True)
        for first, last in _spans(rows):
            self.beginRemoveRows(QModelIndex(), first, last)
            for uid in self._ids[first : last + 1]:
                self._tally.add(self._snaps.pop(uid), -1)
                self._tally.untrack(uid)
                del self._shown[uid]
            del self._ids[first : last + 1]
            self.endRemoveRows()
        self._rows = {i: r for r, i in enumerate(self._ids)}
        self._update_summary()

    # -- reading --------------------------------------------------------------

    def snapshot(self, row: int) -> UploadSnapshot:
        return self._snaps[self._ids[row]]

    def snapshots(self) -> list[UploadSnapshot]:
        return [self._snaps[i] for i in self._ids]

    def row_of(self, upload_id: int) -> int | None:
        return self._rows.get(upload_id)

    @property
    def summary(self) -> Summary:
        return self._summary

    def _update_summary(self) -> None:
        summary = self._tally.summary()
        if summary != self._summary:
            self._summary = summary
            self.summary_changed.emit()

    # -- Qt -------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._ids)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(Column):
            return HEADERS[Column(section)]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or index.parent().isValid():
            return None
        row, col = index.row(), index.column()
        if not (0 <= row < len(self._ids)) or not (0 <= col < len(Column)):
            return None
        snap = self._snaps[self._ids[row]]
        column = Column(col)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(snap, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == Column.NAME:
                return snap.path
            if column == Column.STATUS and snap.error:
                return snap.error
            if column == Column.COMPRESSION:
                return badge_text(snap) or None
            return None
        if role == Qt.ItemDataRole.TextAlignmentRole and column == Column.SIZE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return self._display(snap, column) or (
                ", ".join(ACTION_LABELS[a] for a in actions(snap))
                if column == Column.ACTIONS
                else ""
            )
        return self._custom(snap, role, column)

    def _display(self, snap: UploadSnapshot, column: Column) -> str | None:
        match column:
            case Column.NAME:
                return display_name(snap.name)
            case Column.SIZE:
                return "" if snap.size is None else format_size(snap.size)
            case Column.PROGRESS:
                return progress_text(snap)
            case Column.STATUS:
                return status_text(snap)
            case Column.COMPRESSION:
                return badge_text(snap)
        return None

    def _custom(self, snap: UploadSnapshot, role: int, column: Column) -> object:
        match role:
            case Role.SORT:
                return _sort_key(snap, column)
            case Role.SNAPSHOT:
                return snap
            case Role.UPLOAD_ID:
                return snap.id
            case Role.STATE:
                return snap.state
            case Role.PROGRESS:
                return progress_value(snap)
            case Role.COMPRESSION:
                return snap.compression
            case Role.ACTIONS:
                return actions(snap)
            case Role.ERROR:
                return snap.error
            case Role.CATEGORY:
                cat = category(snap)
                return None if cat is None else cat.value
        return None

    def roleNames(self) -> dict[int, QByteArray]:
        names = dict(super().roleNames())
        for role in Role:
            names[int(role)] = QByteArray(role.name.lower().encode())
        return names


class FilterModel(QSortFilterProxyModel):
    """The rows of one category (All, Active, Failed, Done)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._category = Category.ALL
        self._text = ""
        self.setFilterRole(Role.CATEGORY)
        self.setSortRole(Role.SORT)

    @property
    def category(self) -> Category:
        return self._category

    def set_category(self, cat: Category) -> None:
        if cat != self._category:
            self.beginFilterChange()
            self._category = cat
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_text(self, text: str) -> None:
        """Only rows whose name contains `text` (case-insensitive); "" for all."""
        text = text.strip().casefold()
        if text != self._text:
            self.beginFilterChange()
            self._text = text
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:
        if self._category == Category.ALL and not self._text:
            return True
        index = self.sourceModel().index(source_row, 0, source_parent)
        if self._category != Category.ALL and index.data(Role.CATEGORY) != self._category.value:
            return False
        return not self._text or self._text in str(index.data()).casefold()


_STATE_ORDER = {"failed": 0, "uploading": 1, "queued": 2, "cancelled": 3, "uploaded": 4}
_BADGE_ORDER = {"failed": 0, "not_queued": 1, "running": 2, "pending": 3, "done": 4, "skipped": 5}


def _sort_key(snap: UploadSnapshot, column: Column) -> object:
    """Plain values Qt compares: failures first under Status, names without case."""
    match column:
        case Column.NAME:
            return display_name(snap.name).casefold()
        case Column.SIZE:
            return snap.size if snap.size is not None else -1
        case Column.PROGRESS:
            return progress_value(snap)
        case Column.STATUS:
            return _STATE_ORDER.get(snap.state, 9)
        case Column.COMPRESSION:
            return _BADGE_ORDER.get(snap.compression or "", 9)
    return snap.id


def _spans(rows_desc: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous (first, last) spans of rows given in descending order, last span first."""
    spans: list[tuple[int, int]] = []
    for row in rows_desc:
        if spans and spans[-1][0] == row + 1:
            spans[-1] = (row, spans[-1][1])
        else:
            spans.append((row, row))
    return spans


def _ranges(cells: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Merge per-row column ranges into rectangles of neighbouring rows with the same columns."""
    out: list[tuple[int, int, int, int]] = []
    for row, left, right in sorted(cells):
        if out and out[-1][2] == row - 1 and out[-1][1] == left and out[-1][3] == right:
            top, _, _, _ = out[-1]
            out[-1] = (top, left, row, right)
        else:
            out.append((row, left, row, right))
    return out
