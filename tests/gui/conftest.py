"""GUI fixtures: a qasync loop over pytest-qt's QApplication, sessions, real drops."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from uploader.core.library import Library
from uploader.gui.app import Session, make_app
from uploader.gui.prefs import Prefs


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """Fail a test that leaves threads running (the engine's pools, qasync's executor)."""
    before = _native_threads()
    yield
    deadline = time.monotonic() + 5
    while True:
        extra = _native_threads() - before
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    names = {t.native_id: t.name for t in threading.enumerate()}
    assert not extra, f"threads left running: {[names.get(n, n) for n in extra]}"


def _native_threads() -> set[int]:
    """The OS threads of this process that run Python code (qasync's QThreads too)."""
    alive = {int(n) for n in os.listdir("/proc/self/task")}
    return {t.native_id for t in threading.enumerate() if t.native_id in alive}


@pytest.fixture
def loop(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    """A qasync loop; fails the test when tasks are left pending."""
    make_app()
    ev = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(ev)
    yield ev
    pending = [t for t in asyncio.all_tasks(ev) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        ev.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    ev.close()
    asyncio.set_event_loop(None)
    assert not pending, f"tasks left pending: {pending}"


@pytest.fixture
def lib_dir(tmp_path: Path) -> Path:
    return tmp_path / "library"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    return folder


Until = Callable[..., None]


@pytest.fixture
def until(loop: asyncio.AbstractEventLoop) -> Until:
    """Run the loop until `cond()` holds (the model's flush timer runs meanwhile)."""

    def run(cond: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
        async def poll() -> None:
            deadline = time.monotonic() + timeout
            while not cond():
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out waiting for {what or cond}")
                await asyncio.sleep(0.02)

        loop.run_until_complete(poll())

    return run


@pytest.fixture
def open_session(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> Iterator[Callable[..., Session]]:
    """Open a session (library, engine, window) like `run()` does; closed at teardown."""
    sessions: list[Session] = []

    def open_(lib_dir: Path, *, listen: bool = False, **prefs: Any) -> Session:
        lib = Library.open(lib_dir)
        qs = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
        session = Session(lib, Prefs(**prefs), qs, listen=listen)
        sessions.append(session)
        loop.run_until_complete(session.start([]))
        session.window.show()
        return session

    yield open_
    for session in sessions:
        loop.run_until_complete(session.close())


def drop(target: QWidget, urls: list[QUrl]) -> QDropEvent:
    """A real drag-enter + drop of `urls` at the middle of `target`."""
    mime = QMimeData()
    mime.setUrls(urls)
    pos = QPointF(target.rect().center())
    enter = QDragEnterEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    event = QDropEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(target, event)
    return event


def files(*paths: Path) -> list[QUrl]:
    return [QUrl.fromLocalFile(str(p)) for p in paths]
