"""GUI fixtures: a qasync loop over pytest-qt's QApplication, sessions, real drops."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

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


@pytest.fixture(autouse=True)
def private_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real default library or the real settings."""
    monkeypatch.setenv("UPLOADER_LIBRARY", str(tmp_path / "default-library"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture(scope="session")
def shared_loop(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    """One qasync loop for the run. It counts as running whenever Qt processes events
    (pytest-qt processes them between test phases too), so tasks never step outside it."""
    make_app()
    ev = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(ev)
    yield ev
    ev.stop()
    ev.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def loop(
    shared_loop: asyncio.AbstractEventLoop, qapp: QApplication
) -> Iterator[asyncio.AbstractEventLoop]:
    """The loop; fails the test when it leaves tasks pending."""
    # a default executor per test, so that its threads end with the test
    executor = ThreadPoolExecutor(2, thread_name_prefix="default")
    shared_loop.set_default_executor(executor)
    yield shared_loop
    executor.shutdown(wait=True)
    pending = [t for t in asyncio.all_tasks(shared_loop) if not t.done()]
    for t in pending:
        t.cancel()
    deadline = time.monotonic() + 10
    while any(not t.done() for t in pending) and time.monotonic() < deadline:
        qapp.processEvents()
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
Run = Callable[..., Any]


@pytest.fixture
def until(loop: asyncio.AbstractEventLoop, qtbot: QtBot) -> Until:
    """Process events (so the loop runs) until `cond()` holds."""

    def wait(cond: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
        try:
            qtbot.waitUntil(cond, timeout=int(timeout * 1000))
        except qtbot.TimeoutError as exc:
            raise AssertionError(f"timed out waiting for {what or cond}") from exc

    return wait


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop, until: Until) -> Run:
    """Run a coroutine to its end on the loop and return its result."""

    def go(coro: Coroutine[Any, Any, Any], timeout: float = 120.0) -> Any:
        task = asyncio.ensure_future(coro)
        until(task.done, timeout=timeout, what=str(coro))
        return task.result()

    return go


@pytest.fixture
def open_session(run: Run, tmp_path: Path) -> Iterator[Callable[..., Session]]:
    """Open a session (library, engine, window) like `run()` does; closed at teardown."""
    sessions: list[Session] = []

    def open_(
        lib_dir: Path, *, listen: bool = False, compress: bool = True, **prefs: Any
    ) -> Session:
        lib = Library.open(lib_dir)
        qs = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
        session = Session(lib, Prefs(**prefs), qs, listen=listen)
        # compress=False: this first engine leaves compression queued (badges stay pending)
        session.engine.settings.compress = compress
        sessions.append(session)
        run(session.start([]))
        session.window.show()
        return session

    yield open_
    for session in sessions:
        run(session.close())


def drop(target: QWidget, urls: list[QUrl]) -> QDropEvent:
    """A real drag-enter + drop of `urls` at the middle of `target`."""
    mime = QMimeData()
    mime.setUrls(urls)
    pos = QPointF(target.rect().center())
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton)
    try:  # Qt 6.12 takes a QPointF (the QPoint form is deprecated there)
        enter = QDragEnterEvent(pos, *args, Qt.KeyboardModifier.NoModifier)
    except TypeError:
        enter = QDragEnterEvent(pos.toPoint(), *args, Qt.KeyboardModifier.NoModifier)
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
