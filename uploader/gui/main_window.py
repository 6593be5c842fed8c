"""The main window: drops, the list, filters, actions; it asks the engine, never decides.

Everything here runs on the GUI thread. Engine calls are coroutines run as tasks the
window keeps (asyncio holds tasks weakly); dialogs are opened from plain slots, never
from inside a task.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import stat
import tempfile
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QByteArray,
    QEvent,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPoint,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
    QPalette,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QSystemTrayIcon,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from uploader.core.engine import Engine
from uploader.core.events import Event, Expanding, UploadSnapshot
from uploader.core.library import ExportError, default_root
from uploader.core.retry import LibraryError, describe

from . import icons
from .delegates import ActionsDelegate, BadgeDelegate, ProgressDelegate
from .prefs import Prefs
from .upload_model import Action, Category, Column, FilterModel, UploadModel

log = logging.getLogger(__name__)

FINISHED = ("uploaded", "failed", "cancelled")
# Show "Adding N files…" only when listing takes longer than this.
ADDING_DELAY_MS = 300


class Banner(QFrame):
    """A one-line message above the list that stays until it is dismissed or replaced."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(self)
        close.setText("✕")
        close.setAutoRaise(True)
        close.setAccessibleName("Dismiss message")
        close.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 4, 4, 4)
        row.addWidget(self.label, 1)
        row.addWidget(close)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.setAccessibleDescription(text)
        self.show()


class EmptyState(QWidget):
    """What an empty list shows: an invitation to drop, and two buttons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.picture = QLabel(self)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel("Drop files or folders here", self)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.5)
        self.title.setFont(font)
        self.hint = QLabel("Each file is stored on its own, then compressed in the background.")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.add_files = QPushButton("Add files…", self)
        self.add_files.setAccessibleName("Add files")
        self.add_folder = QPushButton("Add folder…", self)
        self.add_folder.setAccessibleName("Add folder")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.add_files)
        buttons.addWidget(self.add_folder)
        buttons.addStretch(1)
        col = QVBoxLayout(self)
        col.addStretch(1)
        col.addWidget(self.picture)
        col.addSpacing(8)
        col.addWidget(self.title)
        col.addWidget(self.hint)
        col.addSpacing(16)
        col.addLayout(buttons)
        col.addStretch(2)
        self.refresh_icons()

    def refresh_icons(self) -> None:
        color = self.palette().color(QPalette.ColorRole.PlaceholderText)
        self.picture.setPixmap(icons.pixmap("drop", 72, self.devicePixelRatioF(), color))
        ink = self.palette().color(QPalette.ColorRole.ButtonText)
        self.add_files.setIcon(icons.icon("add-file", ink))
        self.add_folder.setIcon(icons.icon("add-folder", ink))


class SettingsDialog(QDialog):
    """Uploads at once, compression level and workers, library folder, corrupted-file check."""

    def __init__(self, prefs: Prefs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Uploader settings")
        self.jobs = _spin(1, 16, prefs.jobs, "Uploads at once")
        self.level = _spin(1, 19, prefs.level, "Compression level")
        self.level.setToolTip("Higher levels save more space and take longer (3 is a good balance)")
        self.workers = _spin(1, 8, prefs.compress_workers, "Compression workers")
        self.check = QCheckBox("Check documents for corruption (truncated PDF, PNG, JPEG, ZIP)")
        self.check.setChecked(prefs.check_corrupt)
        self.library = QLineEdit(str(prefs.library or ""))
        self.library.setPlaceholderText(str(default_root()))
        self.library.setAccessibleName("Library folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse)
        lib_row = QHBoxLayout()
        lib_row.addWidget(self.library, 1)
        lib_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Uploads at once:", self.jobs)
        form.addRow("Compression level:", self.level)
        form.addRow("Compression workers:", self.workers)
        form.addRow("Library folder:", lib_row)
        form.addRow(self.check)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        note = QLabel("Uploads in progress pause for a moment and continue with the new settings.")
        note.setWordWrap(True)
        note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        col = QVBoxLayout(self)
        col.addLayout(form)
        col.addWidget(note)
        col.addWidget(buttons)

    def _on_browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Library folder", self.library.text())
        if folder:
            self.library.setText(folder)

    def prefs(self) -> Prefs:
        text = self.library.text().strip()
        return Prefs(
            jobs=self.jobs.value(),
            level=self.level.value(),
            compress_workers=self.workers.value(),
            check_corrupt=self.check.isChecked(),
            library=Path(text).expanduser() if text else None,
        )


def _spin(lo: int, hi: int, value: int, name: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    box.setAccessibleName(name)
    return box


class MainWindow(QMainWindow):
    """The list of uploads over one engine."""

    settings_changed = Signal(object)  # Prefs
    close_confirmed = Signal()

    def __init__(
        self,
        engine: Engine,
        prefs: Prefs,
        parent: QWidget | None = None,
        *,
        adding_delay_ms: int = ADDING_DELAY_MS,
    ) -> None:
        super().__init__(parent)
        self.engine = engine
        self.prefs = prefs
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._expanding: dict[int, int] = {}
        self._close_ok = False
        self._open_dir: Path | None = None
        self.confirm_box: QMessageBox | None = None
        self.closed_geometry: QByteArray | None = None
        self.last_notification: tuple[str, str] | None = None
        self._tray: QSystemTrayIcon | None = None

        self.setWindowTitle("Uploader")
        self.setAcceptDrops(True)
        self.resize(1240, 640)
        self.model = UploadModel(self)
        self.proxy = FilterModel(self)
        self.proxy.setSourceModel(self.model)
        self._build()
        self._build_actions()
        self.model.summary_changed.connect(self._on_summary)
        self.model.batch_finished.connect(self._on_batch_finished)
        self.model.rowsInserted.connect(self._on_rows_changed)
        self.model.rowsRemoved.connect(self._on_rows_changed)
        self.model.modelReset.connect(self._on_rows_changed)
        self._adding_timer = QTimer(self)
        self._adding_timer.setSingleShot(True)
        self._adding_timer.setInterval(adding_delay_ms)
        self._adding_timer.timeout.connect(self._on_adding_due)
        self.attach(engine)

    # -- building -------------------------------------------------------------

    def _build(self) -> None:
        central = QWidget(self)
        col = QVBoxLayout(central)
        col.setContentsMargins(10, 8, 10, 4)
        col.setSpacing(6)

        bar = QHBoxLayout()
        self.filters = QButtonGroup(self)
        self.filters.setExclusive(True)
        self.filter_buttons: dict[Category, QToolButton] = {}
        for cat in Category:
            button = QToolButton(self)
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setProperty("category", cat.value)
            self.filters.addButton(button)
            self.filter_buttons[cat] = button
            bar.addWidget(button)
        self.filter_buttons[Category.ALL].setChecked(True)
        self.filters.buttonClicked.connect(self._on_filter)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Find by name")
        self.search.setAccessibleName("Find uploads by name")
        self.search.setClearButtonEnabled(True)
        self.search.setMaximumWidth(220)
        self.search.textChanged.connect(self.proxy.set_text)
        bar.addSpacing(8)
        bar.addWidget(self.search)
        bar.addStretch(1)
        self.retry_all = QPushButton(self)
        self.retry_all.clicked.connect(self._on_retry_all)
        self.clear_finished = QPushButton("Clear finished", self)
        self.clear_finished.setAccessibleName("Clear finished uploads from the list")
        self.clear_finished.setToolTip(
            "Take finished rows off the list; documents stay in the library"
        )
        self.clear_finished.clicked.connect(self._on_clear_finished)
        self.add_button = QPushButton("Add files…", self)
        self.add_button.setAccessibleName("Add files")
        self.add_button.clicked.connect(self._on_add_files)
        self.settings_button = QToolButton(self)
        self.settings_button.setAutoRaise(True)
        self.settings_button.setToolTip("Settings")
        self.settings_button.setAccessibleName("Settings")
        self.settings_button.clicked.connect(self._on_settings)
        for w in (self.retry_all, self.clear_finished, self.add_button, self.settings_button):
            bar.addWidget(w)
        col.addLayout(bar)

        self.banner = Banner(self)
        col.addWidget(self.banner)

        self.adding = QFrame(self)
        self.adding_label = QLabel(self.adding)
        self.adding_bar = QProgressBar(self.adding)
        self.adding_bar.setRange(0, 0)
        self.adding_bar.setMaximumWidth(160)
        self.adding_bar.setTextVisible(False)
        self.adding_cancel = QPushButton("Cancel", self.adding)
        self.adding_cancel.setAccessibleName("Stop adding files")
        self.adding_cancel.clicked.connect(self._on_cancel_adding)
        row = QHBoxLayout(self.adding)
        row.setContentsMargins(4, 0, 4, 0)
        row.addWidget(self.adding_label)
        row.addWidget(self.adding_bar)
        row.addStretch(1)
        row.addWidget(self.adding_cancel)
        self.adding.hide()
        col.addWidget(self.adding)

        self.stack = QStackedWidget(self)
        self.empty = EmptyState(self.stack)
        self.empty.add_files.clicked.connect(self._on_add_files)
        self.empty.add_folder.clicked.connect(self._on_add_folder)
        self.view = QTableView(self.stack)
        self.view.setAccessibleName("Uploads")
        self.view.setModel(self.proxy)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setShowGrid(False)
        self.view.setAlternatingRowColors(True)
        self.view.setWordWrap(False)
        self.view.setMouseTracking(True)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._on_context_menu)
        self.view.doubleClicked.connect(self._on_double_clicked)
        vh = self.view.verticalHeader()
        vh.hide()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(self.fontMetrics().height() + 16)
        hh = self.view.horizontalHeader()
        hh.setHighlightSections(False)
        # the order they were added in, until a header is clicked
        hh.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.view.setSortingEnabled(True)
        hh.setSectionResizeMode(Column.NAME, QHeaderView.ResizeMode.Stretch)
        fm = self.fontMetrics()
        widths = {
            Column.SIZE: fm.horizontalAdvance("999.9 MB") + 20,
            Column.PROGRESS: fm.horizontalAdvance("999 MB of 999 MB · 99.9 MB/s · 59 s left") + 14,
            Column.STATUS: fm.horizontalAdvance(
                "Failed: corrupted (truncated PDF: no %%EOF marker)"
            )
            + 16,
            Column.COMPRESSION: fm.horizontalAdvance("compressed −100%") + 40,
        }
        for column, width in widths.items():
            hh.resizeSection(column, width)
        self.progress_delegate = ProgressDelegate(self.view)
        self.badge_delegate = BadgeDelegate(self.view)
        self.actions_delegate = ActionsDelegate(self.view)
        self.actions_delegate.action_requested.connect(self._on_row_action)
        self.view.setItemDelegateForColumn(Column.PROGRESS, self.progress_delegate)
        self.view.setItemDelegateForColumn(Column.COMPRESSION, self.badge_delegate)
        self.view.setItemDelegateForColumn(Column.ACTIONS, self.actions_delegate)
        hh.resizeSection(Column.ACTIONS, self.actions_delegate.width_for(fm))
        self.view.selectionModel().selectionChanged.connect(self._on_selection)
        self._kept: tuple[list[int], int | None] | None = None
        self.proxy.modelAboutToBeReset.connect(self._on_about_to_refilter)
        self.proxy.modelReset.connect(self._on_refiltered)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.view)
        col.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.summary_label = QLabel(self)
        self.summary_label.setAccessibleName("Summary")
        self.statusBar().addWidget(self.summary_label, 1)
        self.library_label = QLabel(self)
        self.library_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.statusBar().addPermanentWidget(self.library_label)
        self._refresh_icons()

    def _build_actions(self) -> None:
        def make(text: str, slot: Callable[[], None], keys: QKeySequence | None = None) -> QAction:
            action = QAction(text, self)
            if keys is not None:
                action.setShortcut(keys)
                action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(slot)
            self.addAction(action)
            return action

        self.act_retry = make("Retry", self._on_retry_selected, QKeySequence("Ctrl+R"))
        self.act_anyway = make("Upload anyway", self._on_upload_anyway_selected)
        self.act_cancel = make("Cancel", self._on_cancel_selected, QKeySequence("Ctrl+."))
        self.act_open = make("Open", self._on_open_selected, QKeySequence("Return"))
        self.act_open.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.view.addAction(self.act_open)
        self.act_export = make("Export…", self._on_export_selected, QKeySequence("Ctrl+E"))
        self.act_show = make("Show source in folder", self._on_show_source)
        self.act_copy = make(
            "Copy error", self._on_copy_error, QKeySequence(QKeySequence.StandardKey.Copy)
        )
        self.act_remove = make(
            "Remove from list",
            self._on_remove_selected,
            QKeySequence(QKeySequence.StandardKey.Delete),
        )
        self.act_remove.setToolTip("The document stays in the library")
        self.act_add = make("Add files…", self._on_add_files, QKeySequence("Ctrl+O"))
        self.act_add_folder = make("Add folder…", self._on_add_folder, QKeySequence("Ctrl+Shift+O"))
        self.act_find = make("Find", self._on_find, QKeySequence(QKeySequence.StandardKey.Find))
        self.act_select_all = make(
            "Select all", self.view.selectAll, QKeySequence(QKeySequence.StandardKey.SelectAll)
        )
        self._on_selection()

    # -- the engine -----------------------------------------------------------

    def attach(self, engine: Engine) -> None:
        """Show this engine's uploads and follow its events (after a restart too)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.engine = engine
        self._expanding.clear()
        self.model.reset(engine.uploads.values())
        self._unsubscribe = engine.subscribe(self._on_event)
        self.library_label.setText(str(engine.library.root))
        self.library_label.setToolTip("The library folder")
        self._on_summary()
        self._update_adding()

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, event: Event) -> None:
        if isinstance(event, UploadSnapshot):
            self.model.apply(event)
        elif isinstance(event, Expanding):
            if event.done:
                self._expanding.pop(event.batch, None)
            else:
                self._expanding[event.batch] = event.found
                if not self._adding_timer.isActive() and not self.adding.isVisible():
                    self._adding_timer.start()
            self._update_adding()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run an engine call as a task the window holds; failures become a message."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._on_task_done)
        return task

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.warning("a window action failed", exc_info=exc)
            self.banner.show_message(_words(exc))

    async def idle(self) -> None:
        """Wait for the window's own tasks (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- adding ---------------------------------------------------------------

    def add_paths(self, paths: Iterable[str]) -> None:
        """Add files and folders as if they had been dropped."""
        paths = [p for p in paths if p]
        if paths:
            self.spawn(self.engine.add(paths))

    def _update_adding(self) -> None:
        if not self._expanding:
            self._adding_timer.stop()
            self.adding.hide()
            return
        found = sum(self._expanding.values())
        noun = "file" if found == 1 else "files"
        self.adding_label.setText(f"Adding {found:,} {noun}…" if found else "Adding files…")

    def set_adding_delay(self, ms: int) -> None:
        """How long listing may take before "Adding N files…" shows."""
        self._adding_timer.setInterval(ms)

    def _on_adding_due(self) -> None:
        if self._expanding:
            self.adding.show()

    def _on_cancel_adding(self) -> None:
        self.engine.cancel_adding()
        self.banner.show_message("Stopped adding files; the files listed so far will be uploaded.")

    def _on_add_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add files", str(Path.home()))
        self.add_paths(files)

    def _on_add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add folder", str(Path.home()))
        if folder:
            self.add_paths([folder])

    # -- drops ----------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
            self._set_drop_highlight(True)
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self._set_drop_highlight(False)

    def dropEvent(self, event: QDropEvent) -> None:
        self._set_drop_highlight(False)
        urls = event.mimeData().urls()
        local = [u.toLocalFile() for u in urls if u.isLocalFile() and u.toLocalFile()]
        remote = [u.toDisplayString() for u in urls if not (u.isLocalFile() and u.toLocalFile())]
        if remote:
            shown = ", ".join(remote[:3]) + (
                f" and {len(remote) - 3} more" if len(remote) > 3 else ""
            )
            self.banner.show_message(
                f"Only files on this computer can be added; not added: {shown}. "
                "Download them first, then drop the downloaded files."
            )
        if not local:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add_paths(local)

    def _set_drop_highlight(self, on: bool) -> None:
        self.stack.setProperty("dropping", on)
        self.stack.setStyleSheet(
            "QStackedWidget { border: 2px dashed palette(highlight); border-radius: 6px; }"
            if on
            else ""
        )

    # -- rows and their actions -----------------------------------------------

    def selected(self) -> list[UploadSnapshot]:
        rows = self.view.selectionModel().selectedRows()
        return sorted((self.proxy.snapshot(i.row()) for i in rows), key=lambda s: s.id)

    def _on_about_to_refilter(self) -> None:
        """A new filter resets the list: remember the selected uploads and the current one."""
        selection = self.view.selectionModel()
        ids = [self.proxy.snapshot(i.row()).id for i in selection.selectedRows()]
        current = selection.currentIndex()
        self._kept = (ids, self.proxy.snapshot(current.row()).id if current.isValid() else None)

    def _on_refiltered(self) -> None:
        kept, self._kept = self._kept, None
        if kept is None:
            return
        ids, current = kept
        rows = sorted(r for i in ids if (r := self.proxy.row_of(i)) is not None)
        selection = QItemSelection()
        last = self.proxy.columnCount() - 1
        for first, end in _runs(rows):
            selection.select(self.proxy.index(first, 0), self.proxy.index(end, last))
        model = self.view.selectionModel()
        flag = QItemSelectionModel.SelectionFlag
        if current is not None and (row := self.proxy.row_of(current)) is not None:
            model.setCurrentIndex(self.proxy.index(row, 0), flag.NoUpdate)
        if rows:
            model.select(selection, flag.ClearAndSelect | flag.Rows)

    def _on_row_action(self, upload_id: int, action: str) -> None:
        if action == Action.RETRY:
            self.spawn(self.engine.retry([upload_id]))
        elif action == Action.UPLOAD_ANYWAY:
            self.spawn(self.engine.retry([upload_id], accept_corrupt=True))
        elif action == Action.CANCEL:
            self.spawn(self.engine.cancel([upload_id]))

    def _on_retry_all(self) -> None:
        self.spawn(self.engine.retry(None))

    def _on_retry_selected(self) -> None:
        ids = [s.id for s in self.selected() if s.state in ("failed", "cancelled")]
        if ids:
            self.spawn(self.engine.retry(ids))

    def _on_upload_anyway_selected(self) -> None:
        ids = [s.id for s in self.selected() if s.state == "failed" and s.error_kind == "corrupt"]
        if ids:
            self.spawn(self.engine.retry(ids, accept_corrupt=True))

    def _on_cancel_selected(self) -> None:
        ids = [s.id for s in self.selected() if s.state in ("queued", "uploading")]
        if ids:
            self.spawn(self.engine.cancel(ids))

    def _on_clear_finished(self) -> None:
        ids = [s.id for s in self.model.snapshots() if s.state in ("uploaded", "cancelled")]
        if ids:
            self.spawn(self._remove(ids))

    def _on_remove_selected(self) -> None:
        ids = [s.id for s in self.selected() if s.state in FINISHED]
        if ids:
            self.spawn(self._remove(ids))

    async def _remove(self, ids: list[int]) -> None:
        await self.engine.hide(ids)
        self.model.remove(ids)
        noun = "row" if len(ids) == 1 else "rows"
        self.banner.show_message(
            f"Removed {len(ids)} {noun} from the list. Stored documents stay in the library."
        )

    def _on_copy_error(self) -> None:
        errors = [f"{s.name}: {s.error}" for s in self.selected() if s.error]
        if errors:
            QGuiApplication.clipboard().setText("\n".join(errors))

    def _on_show_source(self) -> None:
        for snap in self.selected()[:10]:
            folder = Path(snap.path).parent
            if not folder.is_dir():
                self.banner.show_message(f"The folder of {snap.name} is no longer there: {folder}")
                continue
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _on_double_clicked(self, index: QModelIndex) -> None:
        if index.column() != Column.ACTIONS:
            self._on_open_selected()

    def _on_open_selected(self) -> None:
        docs = [s for s in self.selected() if s.document_id is not None]
        for snap in docs[:10]:
            self.spawn(self._open(snap))

    async def _open(self, snap: UploadSnapshot) -> None:
        assert snap.document_id is not None
        if self._open_dir is None:
            self._open_dir = Path(tempfile.mkdtemp(prefix="uploader-open-"))
        folder = self._open_dir / str(snap.document_id)
        folder.mkdir(exist_ok=True)
        dest = folder / Path(snap.name).name
        if not dest.exists():
            await self.engine.export(snap.document_id, dest)
            # a read-only copy: changes to it would be lost, so editors should say so
            dest.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(dest))):
            self.banner.show_message(f"No application is set up to open {snap.name}.")

    def _on_export_selected(self) -> None:
        docs = [s for s in self.selected() if s.document_id is not None]
        if len(docs) == 1:
            snap = docs[0]
            name, _ = QFileDialog.getSaveFileName(
                self, "Export", str(Path.home() / Path(snap.name).name)
            )
            if name:
                self.spawn(self._export([(snap, Path(name))], overwrite=True))
        elif docs:
            folder = QFileDialog.getExistingDirectory(self, "Export to folder", str(Path.home()))
            if folder:
                self.spawn(self._export([(s, Path(folder)) for s in docs], overwrite=False))

    async def _export(self, items: list[tuple[UploadSnapshot, Path]], *, overwrite: bool) -> None:
        failed = []
        for snap, dest in items:
            assert snap.document_id is not None
            try:
                await self.engine.export(snap.document_id, dest, overwrite=overwrite)
            except Exception as exc:
                failed.append(f"{snap.name}: {_words(exc)}")
        if failed:
            self.banner.show_message("Not exported: " + "; ".join(failed[:3]))
        else:
            noun = "document" if len(items) == 1 else "documents"
            self.banner.show_message(f"Exported {len(items)} {noun}.")

    def _on_context_menu(self, pos: QPoint) -> None:
        index = self.view.indexAt(pos)
        if index.isValid() and not self.view.selectionModel().isRowSelected(index.row()):
            self.view.selectRow(index.row())
        if not self.selected():
            return
        menu = QMenu(self)
        for action in (self.act_retry, self.act_anyway, self.act_cancel):
            if action.isEnabled():
                menu.addAction(action)
        menu.addSeparator()
        for action in (self.act_open, self.act_export, self.act_show, self.act_copy):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.act_remove)
        menu.popup(self.view.viewport().mapToGlobal(pos))

    def _on_selection(self, *_: object) -> None:
        snaps = self.selected()
        states = {s.state for s in snaps}
        self.act_retry.setEnabled(bool(states & {"failed", "cancelled"}))
        self.act_anyway.setEnabled(
            any(s.state == "failed" and s.error_kind == "corrupt" for s in snaps)
        )
        self.act_cancel.setEnabled(bool(states & {"queued", "uploading"}))
        has_doc = any(s.document_id is not None for s in snaps)
        self.act_open.setEnabled(has_doc)
        self.act_export.setEnabled(has_doc)
        self.act_show.setEnabled(bool(snaps))
        self.act_copy.setEnabled(any(s.error for s in snaps))
        self.act_remove.setEnabled(bool(states & set(FINISHED)))

    def _on_find(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _on_filter(self, button: QToolButton) -> None:
        self.proxy.set_category(Category(str(button.property("category"))))

    # -- summary, title, notification -----------------------------------------

    def _on_rows_changed(self, *_: object) -> None:
        self.stack.setCurrentWidget(self.view if self.model.rowCount() else self.empty)

    def _on_summary(self) -> None:
        summary = self.model.summary
        labels = {
            Category.ALL: "All",
            Category.ACTIVE: "Active",
            Category.FAILED: "Failed",
            Category.DONE: "Done",
        }
        for cat, button in self.filter_buttons.items():
            n = summary.counts[cat]
            button.setText(f"{labels[cat]} ({n:,})")
            button.setAccessibleName(f"Show {labels[cat].lower()} uploads, {n}")
        failed = summary.counts[Category.FAILED]
        self.retry_all.setText(f"Retry all failed ({failed:,})")
        self.retry_all.setAccessibleName(f"Retry all failed uploads, {failed}")
        self.retry_all.setEnabled(failed > 0)
        self.clear_finished.setEnabled(summary.uploaded + summary.cancelled > 0)
        self.summary_label.setText(summary.text() if self.model.rowCount() else "")
        self._on_selection()
        self._update_title()

    def _update_title(self) -> None:
        summary = self.model.summary
        if not summary.active or not summary.batch_count:
            self.setWindowTitle("Uploader")
            return
        pct = min(99, int(100 * summary.batch_done_bytes / max(1, summary.batch_bytes)))
        self.setWindowTitle(
            f"{pct}% · {summary.batch_finished:,} of {summary.batch_count:,} · Uploader"
        )

    def _on_batch_finished(self, uploaded: int, failed: int) -> None:
        """A desktop notification when a batch ends while the person looks elsewhere."""
        if self.isActiveWindow() or not self.isVisible():
            return
        title = "Uploads finished" if not failed else "Uploads finished, some failed"
        text = f"{uploaded:,} uploaded" + (f", {failed:,} failed" if failed else "")
        self.last_notification = (title, text)
        if QSystemTrayIcon.isSystemTrayAvailable() and QSystemTrayIcon.supportsMessages():
            if self._tray is None:
                self._tray = QSystemTrayIcon(self.windowIcon(), self)
                self._tray.setToolTip("Uploader")
                self._tray.activated.connect(self._on_tray_activated)
            self._tray.show()
            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if failed
                else QSystemTrayIcon.MessageIcon.Information
            )
            self._tray.showMessage(title, text, icon, 8000)
        else:
            QApplication.alert(self)

    def _on_tray_activated(self, *_: object) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    # -- palette --------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._refresh_icons()
        super().changeEvent(event)

    def _refresh_icons(self) -> None:
        ink = self.palette().color(QPalette.ColorRole.ButtonText)
        self.retry_all.setIcon(icons.icon("retry", ink))
        self.clear_finished.setIcon(icons.icon("clear", ink))
        self.add_button.setIcon(icons.icon("add-file", ink))
        self.settings_button.setIcon(icons.icon("settings", ink))
        self.empty.refresh_icons()

    # -- settings and closing -------------------------------------------------

    def _on_settings(self) -> None:
        dialog = SettingsDialog(self.prefs, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            new = dialog.prefs()
            if new != self.prefs:
                self.settings_changed.emit(new)

    def closeEvent(self, event: QCloseEvent) -> None:
        active = self.model.summary.active + sum(self._expanding.values())
        if active and not self._close_ok:
            event.ignore()
            self._ask_close(active)
            return
        event.accept()
        self.closed_geometry = self.saveGeometry()
        self.close_confirmed.emit()

    def _ask_close(self, active: int) -> None:
        if self.confirm_box is not None:
            self.confirm_box.raise_()
            return
        noun = "upload is" if active == 1 else "uploads are"
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Quit Uploader?")
        box.setText(f"{active:,} {noun} not finished yet.")
        box.setInformativeText("If you quit now, they will resume next time you open Uploader.")
        box.setStandardButtons(QMessageBox.StandardButton.Close | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.button(QMessageBox.StandardButton.Close).setText("Quit")
        box.finished.connect(self._on_confirm_finished)
        self.confirm_box = box
        box.open()

    def _on_confirm_finished(self, result: int) -> None:
        box, self.confirm_box = self.confirm_box, None
        if box is not None:
            box.deleteLater()
        if result == QMessageBox.StandardButton.Close:
            self._close_ok = True
            self.close()

    def cleanup(self) -> None:
        """Drop the temporary copies made by Open."""
        self.detach()
        if self._open_dir is not None:
            shutil.rmtree(self._open_dir, ignore_errors=True)
            self._open_dir = None


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Ascending rows as (first, last) runs of neighbours."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and runs[-1][1] == row - 1:
            runs[-1] = (runs[-1][0], row)
        else:
            runs.append((row, row))
    return runs


def _words(exc: BaseException) -> str:
    """A failure as a person reads it: the core's own words, or the cause's."""
    if isinstance(exc, (ExportError, LibraryError)):
        return str(exc)
    return describe(exc).reason
