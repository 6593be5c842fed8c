"""The table models over the engine's upload snapshots; they render, they never decide.

Snapshots arrive on the GUI thread as often as the engine publishes them; UploadModel
keeps the latest per id and flushes them on a timer, a bounded slice per turn of the
event loop: new rows in one insert, and `dataChanged` only for the cells whose text
changed. FilterModel is what the list shows: a category, a name filter, a sort order.
"""

from __future__ import annotations

import enum
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, islice, repeat
from operator import contains
from typing import Any, cast

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QByteArray,
    QModelIndex,
    QModelRoleData,
    QModelRoleDataSpan,
    QObject,
    QPersistentModelIndex,
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


def shown_name(snap: UploadSnapshot) -> str:
    """The name as the list shows it; the snapshot's own string when it is plain ASCII
    (100,000 rows, 100,000 strings fewer)."""
    return snap.name if snap.name.isascii() else display_name(snap.name)


def _cells(snap: UploadSnapshot) -> tuple[object, ...]:
    """What each column shows: a change here is a dataChanged for that column."""
    return (
        shown_name(snap),
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

    def follow(self, other: _Tally) -> None:
        """Take over the batch `other` was following (the counts stay this tally's)."""
        self.batch = other.batch
        self.batch_bytes, self.batch_done = other.batch_bytes, other.batch_done
        self.batch_finished = other.batch_finished

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


# What the flush timer may spend in one turn of the event loop; the rest waits for the next.
FLUSH_BUDGET = 0.012
_CHUNK = 32
# More spans of rows than this in one change, and FilterModel resets instead.
MAX_SPANS = 64

_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole)
_ACCESSIBLE = int(Qt.ItemDataRole.AccessibleTextRole)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_NCOLS = len(Column)
_PERSISTENT = "QList<QPersistentModelIndex>"
_HINT = QAbstractItemModel.LayoutChangeHint
_STATUS = int(Column.STATUS)
_ANSWERED = frozenset({_DISPLAY, _TOOLTIP, _ALIGN, _ACCESSIBLE, *map(int, Role)})

# A row's category as one byte (UploadModel.categories); 0 is "only under All".
_CODES = {Category.ACTIVE: 1, Category.FAILED: 2, Category.DONE: 3}
# bytes.translate tables: 1 where a row is in the category, 0 elsewhere
_PICK = {cat: bytes(int(i == code) for i in range(256)) for cat, code in _CODES.items()}


def _code(snap: UploadSnapshot) -> int:
    cat = category(snap)
    return 0 if cat is None else _CODES[cat]


@dataclass
class Flush:
    """What one flush changed, for the views over the model (FilterModel)."""

    first: int  # the new rows are first .. rowCount() - 1
    changed: dict[int, tuple[int, int]]  # existing row -> first and last column changed
    keys: set[int]  # columns whose sort key changed in some existing row


class UploadModel(QAbstractTableModel):
    """One row per upload, in the order they were added.

    Beside the snapshots it keeps, per row, what filtering and sorting need (the
    category as a byte, the lowercase name, the sort keys), so that FilterModel can
    choose rows without calling Python once per row.
    """

    summary_changed = Signal()
    # a batch ended (no row active any more): how many of it were uploaded, failed
    batch_finished = Signal(int, int)
    flushed = Signal(object)  # a Flush, after the rows and dataChanged it describes

    def __init__(
        self,
        parent: QObject | None = None,
        flush_ms: int = FLUSH_MS,
        budget: float = FLUSH_BUDGET,
    ) -> None:
        super().__init__(parent)
        self._ids: list[int] = []
        self._rows: dict[int, int] = {}
        self._snaps: dict[int, UploadSnapshot] = {}
        self._shown: dict[int, tuple[object, ...]] = {}
        self._pending: dict[int, UploadSnapshot] = {}
        self._removed: set[int] = set()
        self.categories = bytearray()
        self.keys: list[list[Any]] = [[] for _ in Column]
        self._tally = _Tally()
        self._summary = self._tally.summary()
        self._budget = budget
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(flush_ms)
        self._timer.timeout.connect(self._on_due)
        # the rest of a flush that ran out of budget, on the next turn of the loop
        self._more = QTimer(self)
        self._more.setSingleShot(True)
        self._more.setInterval(0)
        self._more.timeout.connect(self._on_due)

    @property
    def names(self) -> list[str]:
        """Each row's name as shown, casefolded (what Find matches)."""
        return self.keys[Column.NAME]

    # -- feeding --------------------------------------------------------------

    def apply(self, snap: UploadSnapshot) -> None:
        """Take the latest snapshot of an upload; shown at the next flush."""
        if snap.id in self._removed:
            return
        self._pending[snap.id] = snap
        if not self._timer.isActive() and not self._more.isActive():
            self._timer.start()

    def reset(self, snaps: Iterable[UploadSnapshot]) -> None:
        """Show exactly these uploads (after the engine was restarted)."""
        self.beginResetModel()
        self._pending.clear()
        self._removed.clear()
        self._load(sorted(snaps, key=lambda s: s.id))
        self.endResetModel()
        self._update_summary()

    def _load(self, ordered: list[UploadSnapshot]) -> None:
        self._ids = [s.id for s in ordered]
        self._rows = {i: r for r, i in enumerate(self._ids)}
        self._snaps = {s.id: s for s in ordered}
        self._shown = {s.id: _cells(s) for s in ordered}
        self.categories = bytearray(_code(s) for s in ordered)
        keys = [_keys_of(s) for s in ordered]
        self.keys = [[k[c] for k in keys] for c in range(_NCOLS)]
        self._tally = _Tally()
        for snap in ordered:
            self._tally.add(snap, +1)

    def flush(self) -> None:
        """Show every pending snapshot now: new rows in one insert, dataChanged for
        changed cells only."""
        self._flush(None)

    def _on_due(self) -> None:
        self._flush(self._budget)

    def _flush(self, budget: float | None) -> None:
        self._timer.stop()
        self._more.stop()
        pending = self._pending
        if not pending:
            return
        deadline = None if budget is None else time.perf_counter() + budget
        changed: dict[int, tuple[int, int]] = {}
        keys: set[int] = set()
        new: list[tuple[UploadSnapshot, tuple[object, ...], int, tuple[Any, ...]]] = []
        tally = self._tally
        while pending:
            for uid in list(islice(pending, _CHUNK)):
                snap = pending.pop(uid)
                row = self._rows.get(uid)
                if row is None:  # everything but the appending itself, within the budget
                    new.append((snap, _cells(snap), _code(snap), _keys_of(snap)))
                    tally.add(snap, +1)
                    tally.track(snap, new=True)
                else:
                    self._update(row, snap, changed, keys)
            if deadline is not None and time.perf_counter() > deadline:
                break
        first = len(self._ids)
        if new:
            new.sort(key=lambda n: n[0].id)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            for snap, shown, code, row_keys in new:
                uid = snap.id
                self._rows[uid] = len(self._ids)
                self._ids.append(uid)
                self._snaps[uid] = snap
                self._shown[uid] = shown
                self.categories.append(code)
                for column, key in zip(self.keys, row_keys, strict=True):
                    column.append(key)
            self.endInsertRows()
        cells = [(row, left, right) for row, (left, right) in changed.items()]
        for top, left, bottom, right in _ranges(cells):
            self.dataChanged.emit(self.index(top, left), self.index(bottom, right))
        self.flushed.emit(Flush(first, changed, keys))
        self._update_summary()
        if pending:
            self._more.start()
            return
        if tally.batch and tally.batch_finished == len(tally.batch):
            ended = [self._snaps[i] for i in tally.batch if i in self._snaps]
            tally.end_batch()
            self._update_summary()
            self.batch_finished.emit(
                sum(1 for x in ended if x.state == "uploaded"),
                sum(1 for x in ended if x.state == "failed"),
            )

    def _update(
        self,
        row: int,
        snap: UploadSnapshot,
        changed: dict[int, tuple[int, int]],
        keys: set[int],
    ) -> None:
        uid = snap.id
        tally = self._tally
        tally.add(self._snaps[uid], -1)
        tally.add(snap, +1)
        tally.track(snap)
        self._snaps[uid] = snap
        cells = _cells(snap)
        old = self._shown[uid]
        if cells != old:
            cols = [c for c in range(_NCOLS) if cells[c] != old[c]]
            changed[row] = (cols[0], cols[-1])
            self._shown[uid] = cells
        code = _code(snap)
        if code != self.categories[row]:
            self.categories[row] = code
            changed.setdefault(row, (_STATUS, _STATUS))
        for c, key in enumerate(_keys_of(snap)):
            column = self.keys[c]
            if column[row] != key:
                column[row] = key
                keys.add(c)
                changed.setdefault(row, (c, c))

    def remove(self, ids: Iterable[int]) -> None:
        """Take rows out of the list (the uploads stay in the library)."""
        gone = {i for i in ids if i in self._rows or i in self._pending}
        for uid in gone:
            self._pending.pop(uid, None)
        self._removed |= gone
        rows = sorted((self._rows[i] for i in gone if i in self._rows), reverse=True)
        spans = _spans(rows)
        if len(spans) > 8:  # one reset is cheaper than many removals for the views
            self.beginResetModel()
            batch = self._tally
            for uid in gone:
                batch.untrack(uid)
            self._load([self._snaps[i] for i in self._ids if i not in gone])
            self._tally.follow(batch)
            self.endResetModel()
            self._update_summary()
            return
        for first, last in spans:
            self.beginRemoveRows(QModelIndex(), first, last)
            for uid in self._ids[first : last + 1]:
                self._tally.add(self._snaps.pop(uid), -1)
                self._tally.untrack(uid)
                del self._shown[uid]
            del self._ids[first : last + 1]
            del self.categories[first : last + 1]
            for column in self.keys:
                del column[first : last + 1]
            self._rows = {i: r for r, i in enumerate(self._ids)}
            self.endRemoveRows()
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

    def cell(self, row: int, col: int, role: int) -> object:
        """What a cell shows for a role (a valid row and column; Qt's data() checks)."""
        uid = self._ids[row]
        if role == _DISPLAY:
            shown = self._shown[uid]
            if col == Column.PROGRESS:
                return cast(tuple[int, str], shown[col])[1]
            if col == Column.STATUS:
                return cast(tuple[str, object], shown[col])[0]
            if col == Column.SIZE:
                size = shown[col]
                return "" if size is None else format_size(cast(int, size))
            return shown[col] if col != Column.ACTIONS else None
        snap = self._snaps[uid]
        if role == _TOOLTIP:
            if col == Column.NAME:
                return snap.path
            if col == Column.STATUS and snap.error:
                return snap.error
            if col == Column.COMPRESSION:
                return badge_text(snap) or None
            return None
        if role == _ALIGN:
            return _RIGHT if col == Column.SIZE else None
        if role == _ACCESSIBLE:
            text = self.cell(row, col, _DISPLAY)
            if col == Column.ACTIONS:
                return ", ".join(ACTION_LABELS[a] for a in actions(snap))
            return text or ""
        if Role.SNAPSHOT <= role <= Role.SORT:
            return _custom(snap, role, col)
        return None

    # -- Qt -------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._ids)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else _NCOLS

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < _NCOLS:
            return HEADERS[Column(section)]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        row, col = index.row(), index.column()
        if not (0 <= row < len(self._ids)) or not (0 <= col < _NCOLS) or index.parent().isValid():
            return None
        return self.cell(row, col, int(role))

    def roleNames(self) -> dict[int, QByteArray]:
        names = dict(super().roleNames())
        for role in Role:
            names[int(role)] = QByteArray(role.name.lower().encode())
        return names


def _custom(snap: UploadSnapshot, role: int, col: int) -> object:
    if role == Role.SORT:
        return _keys_of(snap)[col]
    if role == Role.SNAPSHOT:
        return snap
    if role == Role.UPLOAD_ID:
        return snap.id
    if role == Role.STATE:
        return snap.state
    if role == Role.PROGRESS:
        return progress_value(snap)
    if role == Role.COMPRESSION:
        return snap.compression
    if role == Role.ACTIONS:
        return actions(snap)
    if role == Role.ERROR:
        return snap.error
    cat = category(snap)  # Role.CATEGORY
    return None if cat is None else cat.value


class FilterModel(QAbstractTableModel):
    """The rows the list shows: one category (All, Active, Failed, Done), a name filter
    and a sort order, over an UploadModel.

    Not a QSortFilterProxyModel: that one calls Python for every row it filters or
    compares. This one picks rows from the source's per-row arrays with C loops
    (`bytes.translate`, `itertools.compress`, `sorted` with a list's `__getitem__`):
    a change of category or name filter is one pass and a model reset; a flush of the
    source moves only the rows that changed (removals and insertions in spans, one
    layout change when the sort order moved).
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._src: UploadModel | None = None
        self._order: list[int] = []  # source rows, in the order shown
        self._pos: dict[int, int] | _Identity | None = None  # source row -> row here
        self._category = Category.ALL
        self._text = ""
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._resetting = False

    # -- setup ----------------------------------------------------------------

    def setSourceModel(self, model: UploadModel) -> None:
        if self._src is not None:
            old = self._src
            old.flushed.disconnect(self._on_flushed)
            old.modelAboutToBeReset.disconnect(self._on_source_about_to_reset)
            old.modelReset.disconnect(self._on_source_reset)
            old.rowsAboutToBeRemoved.disconnect(self._on_rows_about_to_be_removed)
            old.rowsRemoved.disconnect(self._on_rows_removed)
        self._src = model
        model.flushed.connect(self._on_flushed)
        model.modelAboutToBeReset.connect(self._on_source_about_to_reset)
        model.modelReset.connect(self._on_source_reset)
        model.rowsAboutToBeRemoved.connect(self._on_rows_about_to_be_removed)
        model.rowsRemoved.connect(self._on_rows_removed)
        self._rebuild()

    def sourceModel(self) -> UploadModel:
        assert self._src is not None, "FilterModel.setSourceModel first"
        return self._src

    @property
    def category(self) -> Category:
        return self._category

    @property
    def text(self) -> str:
        return self._text

    def set_category(self, cat: Category) -> None:
        if cat == self._category:
            return
        was, self._category = self._category, cat
        if was == Category.ALL:  # a subset of what is shown, in the same order
            self._reset_to(self._pick(self._order))
        else:
            self._reset_to(self._compute())

    def set_text(self, text: str) -> None:
        """Only rows whose name contains `text` (case-insensitive); "" for all."""
        text = text.strip().casefold()
        if text == self._text:
            return
        was, self._text = self._text, text
        if was in text:  # typing on narrows what is shown
            self._reset_to(self._match(self._order))
        else:
            self._reset_to(self._compute())

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._sort_column = column if 0 <= column < _NCOLS else -1
        self._sort_order = order
        self._relayout(self._sorted(sorted(self._order)))

    # -- reading --------------------------------------------------------------

    def source_row(self, row: int) -> int:
        return self._order[row]

    def snapshot(self, row: int) -> UploadSnapshot:
        return self.sourceModel().snapshot(self._order[row])

    def row_of(self, upload_id: int) -> int | None:
        """The row shown for an upload, or None when it is filtered out."""
        source = self.sourceModel().row_of(upload_id)
        return None if source is None else self._positions().get(source)

    def mapToSource(self, index: Index) -> QModelIndex:
        row = index.row()
        if not index.isValid() or not 0 <= row < len(self._order):
            return QModelIndex()
        return self.sourceModel().index(self._order[row], index.column())

    def mapFromSource(self, index: Index) -> QModelIndex:
        row = self._positions().get(index.row()) if index.isValid() else None
        return QModelIndex() if row is None else self.index(row, index.column())

    # -- choosing rows ----------------------------------------------------------

    def _pick(self, rows: list[int]) -> list[int]:
        """The rows of the current category, in the given order."""
        if self._category == Category.ALL:
            return list(rows)
        mask = self.sourceModel().categories.translate(_PICK[self._category])
        if len(rows) == len(mask) and isinstance(self._positions(), _Identity):  # all, in order
            return list(compress(rows, mask))
        return list(compress(rows, map(mask.__getitem__, rows)))

    def _match(self, rows: list[int]) -> list[int]:
        """The rows whose name contains the filter text, in the given order."""
        if not self._text:
            return list(rows)
        names = self.sourceModel().names
        found = map(contains, map(names.__getitem__, rows), repeat(self._text))
        return list(compress(rows, found))

    def _range(self, first: int, end: int) -> list[int]:
        """The source rows first .. end - 1 that pass the filters, in source order."""
        rows = range(first, end)
        if self._category != Category.ALL:
            mask = self.sourceModel().categories[first:end].translate(_PICK[self._category])
            return self._match(list(compress(rows, mask)))
        return self._match(list(rows))

    def _accepts(self, row: int) -> bool:
        src = self.sourceModel()
        if self._category != Category.ALL and src.categories[row] != _CODES[self._category]:
            return False
        return self._text in src.names[row]

    def _sorted(self, rows: list[int]) -> list[int]:
        """Rows given in source order, in the shown order (ties stay in source order)."""
        if self._sort_column < 0:
            return rows
        keys = self.sourceModel().keys[self._sort_column]
        descending = self._sort_order == Qt.SortOrder.DescendingOrder
        return sorted(rows, key=keys.__getitem__, reverse=descending)

    def _compute(self) -> list[int]:
        return self._sorted(self._range(0, self.sourceModel().rowCount()))

    def _positions(self) -> dict[int, int] | _Identity:
        """Where each source row is shown (built again after the rows moved)."""
        if self._pos is None:
            order, n = self._order, len(self._order)
            if not n or (order[-1] == n - 1 and order == list(range(n))):
                self._pos = _Identity(n)  # every row in source order: no table needed
            else:
                self._pos = dict(zip(order, range(n), strict=True))
        return self._pos

    # -- changing what is shown ------------------------------------------------

    def _reset_to(self, order: list[int]) -> None:
        self.beginResetModel()
        self._order = order
        self._pos = None
        self.endResetModel()

    def _rebuild(self) -> None:
        self._reset_to(self._compute() if self._src is not None else [])

    def _relayout(self, order: list[int]) -> None:
        """Show the same rows in another order, keeping the selection on them."""
        if order == self._order:
            return
        # the overload with the hint, so that selections save rows rather than cells
        hint = QAbstractItemModel.LayoutChangeHint.VerticalSortHint
        cast(Any, self.layoutAboutToBeChanged)[_PERSISTENT, _HINT].emit([], hint)
        before = self._order
        self._order = order
        self._pos = None
        pos = self._positions()
        old = self.persistentIndexList()
        new = [self.index(pos[before[i.row()]], i.column()) for i in old]
        self.changePersistentIndexList(old, new)
        cast(Any, self.layoutChanged)[_PERSISTENT, _HINT].emit([], hint)

    def _on_flushed(self, flush: Flush) -> None:
        if self._resetting:
            return
        pos = self._positions()
        leaving: list[int] = []
        entering: list[int] = []
        touched: list[tuple[int, int, int]] = []
        for row, (left, right) in flush.changed.items():
            here = pos.get(row)
            if here is None:
                if self._accepts(row):
                    entering.append(row)
            elif self._accepts(row):
                touched.append((here, left, right))
            else:
                leaving.append(here)
        new = self._range(flush.first, self.sourceModel().rowCount())
        for top, left, bottom, right in _ranges(touched):
            self.dataChanged.emit(self.index(top, left), self.index(bottom, right))
        sorting = self._sort_column >= 0
        resort = sorting and bool(entering or new or (touched and self._sort_column in flush.keys))
        if not (leaving or entering or new or resort):
            return
        removals = _spans(sorted(leaving, reverse=True))
        if len(removals) > MAX_SPANS:
            self._rebuild()
            return
        order = self._order
        for first, last in removals:
            self.beginRemoveRows(QModelIndex(), first, last)
            del order[first : last + 1]
            self._pos = None
            self.endRemoveRows()
        if sorting or not entering:  # at the end; a sorted list is put in order below
            inserts = [(len(order), entering + new)]
        else:
            inserts = _insertions(order, sorted(entering) + new)
            if len(inserts) > MAX_SPANS:
                self._rebuild()
                return
        for at, rows in reversed(inserts):
            if not rows:
                continue
            self.beginInsertRows(QModelIndex(), at, at + len(rows) - 1)
            order[at:at] = rows
            known = self._pos
            if at + len(rows) != len(order):
                self._pos = None
            elif (
                isinstance(known, _Identity)
                and known.n == at == rows[0] == rows[-1] - len(rows) + 1
            ):
                known.n = len(order)
            elif isinstance(known, dict):
                known.update(zip(rows, range(at, len(order)), strict=True))
            else:
                self._pos = None
            self.endInsertRows()
        if resort:
            self._relayout(self._sorted(sorted(order)))

    def _on_source_about_to_reset(self) -> None:
        self._resetting = True
        self.beginResetModel()

    def _on_source_reset(self) -> None:
        self._resetting = False
        self._order = self._compute()
        self._pos = None
        self.endResetModel()

    def _on_rows_about_to_be_removed(self, parent: Index, first: int, last: int) -> None:
        pos = self._positions()
        gone = sorted(
            (p for r in range(first, last + 1) if (p := pos.get(r)) is not None), reverse=True
        )
        spans = _spans(gone)
        if len(spans) > MAX_SPANS:
            self._resetting = True
            self.beginResetModel()
            return
        for a, b in spans:
            self.beginRemoveRows(QModelIndex(), a, b)
            del self._order[a : b + 1]
            self._pos = None
            self.endRemoveRows()

    def _on_rows_removed(self, parent: Index, first: int, last: int) -> None:
        count = last - first + 1
        self._pos = None
        if self._resetting:
            self._on_source_reset()
            return
        self._order = [r if r < first else r - count for r in self._order]

    # -- Qt -------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._order)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else _NCOLS

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        # one call from C++ per cell painted, instead of rowCount and columnCount
        if 0 <= row < len(self._order) and 0 <= column < _NCOLS and not parent.isValid():
            return self.createIndex(row, column)
        return QModelIndex()

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        return self.sourceModel().headerData(section, orientation, role)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        row, col = index.row(), index.column()
        if not (0 <= row < len(self._order)) or not (0 <= col < _NCOLS):
            return None
        return self.sourceModel().cell(self._order[row], col, int(role))

    def multiData(self, index: Index, roleDataSpan: QModelRoleDataSpan | QModelRoleData) -> None:
        # what a delegate paints, all roles in one call from C++ (Qt calls data() per role)
        row, col = index.row(), index.column()
        if not (0 <= row < len(self._order)) or not (0 <= col < _NCOLS):
            return
        cell = self.sourceModel().cell
        source = self._order[row]
        items: Iterable[QModelRoleData] = (
            [roleDataSpan]
            if isinstance(roleDataSpan, QModelRoleData)
            else cast(Iterable[QModelRoleData], roleDataSpan)  # a span iterates; stubs miss it
        )
        for item in items:
            role = item.role()
            if role in _ANSWERED:  # the others stay invalid, as Qt hands them over
                item.setData(cell(source, col, role))

    def roleNames(self) -> dict[int, QByteArray]:
        return self.sourceModel().roleNames()


class _Identity:
    """Positions when a FilterModel shows source rows 0 .. n - 1 in source order."""

    def __init__(self, n: int) -> None:
        self.n = n

    def get(self, row: int) -> int | None:
        return row if 0 <= row < self.n else None

    def __getitem__(self, row: int) -> int:
        if 0 <= row < self.n:
            return row
        raise KeyError(row)


def _insertions(order: list[int], rows: list[int]) -> list[tuple[int, list[int]]]:
    """Where ascending `rows` go into the ascending `order`: (position, rows) groups."""
    out: list[tuple[int, list[int]]] = []
    for row in rows:
        at = bisect_left(order, row)
        if out and out[-1][0] == at:
            out[-1][1].append(row)
        else:
            out.append((at, [row]))
    return out


_STATE_ORDER = {"failed": 0, "uploading": 1, "queued": 2, "cancelled": 3, "uploaded": 4}
_BADGE_ORDER = {"failed": 0, "not_queued": 1, "running": 2, "pending": 3, "done": 4, "skipped": 5}


def _keys_of(snap: UploadSnapshot) -> tuple[Any, ...]:
    """What a click on each column's header sorts by: plain values, failures first
    under Status, names without case; the buttons column sorts by upload id."""
    name = shown_name(snap)
    folded = name.casefold()
    return (
        name if folded == name else folded,  # one string for both, where it can be
        snap.size if snap.size is not None else -1,
        progress_value(snap),
        _STATE_ORDER.get(snap.state, 9),
        _BADGE_ORDER.get(snap.compression or "", 9),
        snap.id,
    )


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
