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
    found = [
        w
        for w in app.allWidgets()
        if isinstance(w, QtWidgets.QAbstractItemView) and w.isVisible() and w.model() is not None
    ]
    found.sort(key=lambda w: w.width() * w.height(), reverse=True)
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


def drop(library: Path, folder: Path, timeout: float) -> int:
    """Drop every file of `folder` on the window; rows visible, stalls, RSS until stored."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    beat = Heartbeat(10)
    state: dict[str, Any] = {"files": len(files)}

    def go(_at: float) -> None:
        views = _views()
        if not views:
            _finish({"error": "no item view in the window"})
        view = views[0]
        model = view.model()
        before = model.rowCount()
        target = view.viewport()
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(p)) for p in files])
        pos = QPointF(target.rect().center())
        beat.start()
        t0 = time.monotonic()
        state["drop"] = t0
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
        state["accepted"] = dropped.isAccepted()
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
            if "rows_visible" not in state and model.rowCount() - before >= len(files):
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


def rows(library: Path, actions: int, needle: str) -> int:
    """Scroll and filter a window showing a big library; ms per action, RSS."""
    state: dict[str, Any] = {}

    def go(at: float) -> None:
        views = _views()
        if not views:
            _finish({"error": "no item view in the window"})
        view = views[0]
        state["rows"] = view.model().rowCount()
        bar = view.verticalScrollBar()
        scroll: list[float] = []
        for i in range(actions):
            t = time.perf_counter()
            bar.setValue(bar.maximum() * ((i * 7919) % actions) // max(1, actions - 1))
            view.viewport().repaint()
            scroll.append(time.perf_counter() - t)
        state["scroll"] = scroll
        edits = [
            w
            for w in QtWidgets.QApplication.allWidgets()
            if isinstance(w, QtWidgets.QLineEdit) and w.isVisible()
        ]
        filt: list[float] = []
        if edits:
            edit = edits[0]
            for i in range(actions):
                text = needle[: 1 + i % len(needle)] if i % 2 == 0 else ""
                t = time.perf_counter()
                edit.setText(text)
                QtWidgets.QApplication.processEvents()  # let a debounced filter apply
                view.viewport().repaint()
                filt.append(time.perf_counter() - t)
        state["filter"] = filt
        _finish(state)

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
    r.add_argument("--actions", type=int, default=20)
    r.add_argument("--needle", default="scan-0004")
    args = p.parse_args(argv)
    if args.what == "bare":
        return bare(args.rows)
    if args.what == "window":
        return window(args.library)
    if args.what == "drop":
        return drop(args.library, args.folder, args.timeout)
    return rows(args.library, args.actions, args.needle)


if __name__ == "__main__":
    sys.exit(main())
