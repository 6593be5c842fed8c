"""A measured Qt process: `python -m bench.gui_child bare|window|drop|rows ...`.

`bare` is the GUI floor: a QMainWindow with an empty table of N rows. The others start
Uploader's own window (uploader.gui.app.run) with a hook that notes its first paint,
then drive it the way a person would: a real drop event, scrolling, typing a filter.
Prints one JSON line; times are on the system-wide monotonic clock.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from PySide6 import QtWidgets
from PySide6.QtCore import (
    QAbstractTableModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QPointF,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    QUrl,
)
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent

from .gui_tools import FirstPaint, Heartbeat, peak_rss, rss

_paint = FirstPaint()
_Base = QtWidgets.QApplication


class _HookedApplication(_Base):  # type: ignore[misc,valid-type]
    """QApplication plus the first-paint filter, installed before any window exists."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.installEventFilter(_paint)


def _hook() -> None:
    QtWidgets.QApplication = _HookedApplication  # type: ignore[misc]


def _finish(result: dict[str, Any]) -> None:
    result["peak_rss"] = peak_rss()
    result["rss"] = rss()
    print(json.dumps(result), flush=True)
    os._exit(0)  # the measurement is over; no clean-up is being measured


class _EmptyModel(QAbstractTableModel):
    def __init__(self, rows: int) -> None:
        super().__init__()
        self._rows = rows

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self._rows

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 5

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        return None


def bare(rows: int) -> int:
    _hook()
    app = QtWidgets.QApplication(sys.argv)
    window = QtWidgets.QMainWindow()
    view = QtWidgets.QTableView()
    model = _EmptyModel(rows)
    view.setModel(model)
    window.setCentralWidget(view)
    window.resize(1000, 700)
    _paint.callbacks.append(lambda at: _finish({"paint": at}))
    window.show()
    return app.exec()


def _views() -> list[QtWidgets.QAbstractItemView]:
    app = QtWidgets.QApplication.instance()
    assert isinstance(app, QtWidgets.QApplication)
    # the list may be hidden behind an "empty library" page until it has rows
    found = [
        w
        for w in app.allWidgets()
        if isinstance(w, QtWidgets.QAbstractItemView)
        and w.window().isVisible()
        and w.model() is not None
    ]
    found.sort(key=lambda w: (w.isVisible(), w.model().columnCount()), reverse=True)
    return found


def _run_window(library: Path, on_paint: Any) -> int:
    _hook()
    from uploader.gui.app import run

    _paint.callbacks.append(on_paint)
    return run(library, [])


def window(library: Path) -> int:
    return _run_window(library, lambda at: _finish({"paint": at}))


def _uploaded(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM upload WHERE state='uploaded'").fetchone()[0])
    finally:
        conn.close()


def _drop_target() -> QtWidgets.QWidget | None:
    """The visible window that accepts drops (Uploader's main window)."""
    app = QtWidgets.QApplication.instance()
    assert isinstance(app, QtWidgets.QApplication)
    for w in app.topLevelWidgets():
        if w.isVisible() and w.acceptDrops():
            return w
    return None


def _send_drop(target: QtWidgets.QWidget, paths: list[Path]) -> bool:
    """A real drag enter, move and drop of `paths` on `target` (as a file manager does)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(target.rect().center())
    app = QtWidgets.QApplication.instance()
    assert app is not None
    for kind in (QDragEnterEvent, QDragMoveEvent):
        ev = kind(
            pos.toPoint(),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        app.sendEvent(target, ev)
    dropped = QDropEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    app.sendEvent(target, dropped)
    return dropped.isAccepted()


def _source_rows(view: QtWidgets.QAbstractItemView) -> int:
    """Every row listed, under whatever filter the view shows: the model at the bottom of
    its chain of proxies (a QSortFilterProxyModel, or any model with `sourceModel()`)."""
    model: Any = view.model()
    while isinstance(model, QSortFilterProxyModel) or callable(getattr(model, "sourceModel", None)):
        model = model.sourceModel()
    return int(model.rowCount())


def drop(library: Path, folder: Path, timeout: float) -> int:
    """Drop every file of `folder` on the window; rows visible, stalls, RSS until stored."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    beat = Heartbeat(10)
    state: dict[str, Any] = {"files": len(files)}

    def go(_at: float) -> None:
        views = _views()
        target = _drop_target()
        if not views or target is None:
            _finish({"error": "no item view or drop target in the window"})
            return
        view = views[0]
        before = _source_rows(view)
        beat.start()
        t0 = time.monotonic()
        state["accepted"] = _send_drop(target, files)
        state["drop_handler"] = time.monotonic() - t0
        done = threading.Event()

        def count() -> None:  # a plain thread: the loop must not wait on SQLite
            while not done.is_set():
                try:
                    if _uploaded(library / "library.db") >= len(files):
                        done.set()
                        return
                except sqlite3.Error:
                    pass
                time.sleep(0.05)

        threading.Thread(target=count, daemon=True).start()

        def poll() -> None:
            now = time.monotonic()
            if "rows_visible" not in state and _source_rows(view) - before >= len(files):
                state["rows_visible"] = now - t0
            if done.is_set() or now - t0 > timeout:
                beat.stop()
                state["all_uploaded"] = now - t0 if done.is_set() else None
                state["max_stall"] = beat.max_stall()
                state["stalls_over_50ms"] = beat.stalls_over(0.05)
                _finish(state)
            QTimer.singleShot(20, poll)

        QTimer.singleShot(0, poll)

    return _run_window(library, go)


def rows(library: Path, folder: Path, count: int, actions: int, timeout: float) -> int:
    """Drop a folder of `count` files, wait for every row, then scroll and filter while
    they upload: the time of each action (until repainted) and the peak RSS."""
    state: dict[str, Any] = {}

    def go(_at: float) -> None:
        views = _views()
        target = _drop_target()
        if not views or target is None:
            _finish({"error": "no item view or drop target in the window"})
            return
        view = views[0]
        t0 = time.monotonic()
        state["accepted"] = _send_drop(target, [folder])

        def wait_rows() -> None:
            if _source_rows(view) < count and time.monotonic() - t0 < timeout:
                QTimer.singleShot(50, wait_rows)
                return
            state["rows"] = _source_rows(view)
            state["rows_after"] = time.monotonic() - t0
            QTimer.singleShot(0, measure)

        def measure() -> None:
            bar = view.verticalScrollBar()
            scroll: list[float] = []
            for i in range(actions):
                t = time.perf_counter()
                bar.setValue(bar.maximum() * ((i * 7919) % actions) // max(1, actions - 1))
                view.viewport().repaint()
                scroll.append(time.perf_counter() - t)
            state["scroll"] = scroll
            app = QtWidgets.QApplication.instance()
            assert isinstance(app, QtWidgets.QApplication)
            edits = [
                w
                for w in app.allWidgets()
                if isinstance(w, QtWidgets.QLineEdit) and w.isVisible() and w.isEnabled()
            ]
            edits.sort(key=lambda w: "find" not in w.placeholderText().lower())
            filt: list[float] = []
            if edits:
                edit = edits[0]
                for i in range(actions):
                    text = f"file-{i % 10}" if i % 2 == 0 else ""
                    t = time.perf_counter()
                    edit.setText(text)
                    view.viewport().repaint()
                    filt.append(time.perf_counter() - t)
            buttons = [
                w
                for w in app.allWidgets()
                if isinstance(w, QtWidgets.QAbstractButton)
                and w.isCheckable()
                and w.property("category") is not None
                and w.isVisible()
            ]
            for button in buttons + buttons[:1]:  # every category, then back to the first
                t = time.perf_counter()
                button.click()
                view.viewport().repaint()
                filt.append(time.perf_counter() - t)
            state["filter"] = filt
            state["filter_actions"] = len(filt)
            _finish(state)

        QTimer.singleShot(0, wait_rows)

    return _run_window(library, go)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gui_child")
    sub = p.add_subparsers(dest="what", required=True)
    b = sub.add_parser("bare")
    b.add_argument("--rows", type=int, default=10_000)
    w = sub.add_parser("window")
    w.add_argument("library", type=Path)
    d = sub.add_parser("drop")
    d.add_argument("library", type=Path)
    d.add_argument("folder", type=Path)
    d.add_argument("--timeout", type=float, default=600.0)
    r = sub.add_parser("rows")
    r.add_argument("library", type=Path)
    r.add_argument("folder", type=Path)
    r.add_argument("--count", type=int, required=True)
    r.add_argument("--actions", type=int, default=20)
    r.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    if args.what == "bare":
        return bare(args.rows)
    if args.what == "window":
        return window(args.library)
    if args.what == "drop":
        return drop(args.library, args.folder, args.timeout)
    return rows(args.library, args.folder, args.count, args.actions, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
