"""The composition root: QApplication, the qasync loop, the library, the engine, the window.

Wiring only: one window per library (a second launch hands its files over through
a local socket), settings applied by restarting the engine, a clean shutdown.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import qasync
from PySide6.QtCore import QByteArray, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QMessageBox

from uploader.core.engine import Engine
from uploader.core.library import Library, default_root
from uploader.core.retry import LibraryError, LibraryLocked, describe

from . import icons
from .main_window import MainWindow
from .prefs import Prefs

log = logging.getLogger(__name__)

HISTORY = 1000
UNUSABLE = 2
HANDOVER_TIMEOUT_MS = 3000


def server_name(root: Path) -> str:
    """The local socket name for a library: one per user and library folder."""
    key = os.fsencode(os.path.realpath(root))
    digest = hashlib.sha256(key).hexdigest()[:20]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return f"uploader-{uid}-{digest}"


def hand_over(root: Path, paths: list[str], timeout_ms: int = HANDOVER_TIMEOUT_MS) -> bool:
    """Give `paths` to the window that has `root` open; False when none answers."""
    deadline = timeout_ms
    while deadline > 0:
        sock = QLocalSocket()
        sock.connectToServer(server_name(root))
        if sock.waitForConnected(500):
            payload = json.dumps({"paths": paths}).encode() + b"\n"
            sock.write(QByteArray(payload))
            sock.waitForBytesWritten(timeout_ms)
            answered = sock.waitForReadyRead(timeout_ms)
            reply = bytes(sock.readAll().data()) if answered else b""
            sock.disconnectFromServer()
            return reply.startswith(b"ok")
        # the window may hold the lock and not listen yet: it is still starting
        time.sleep(0.2)
        deadline -= 700
    return False


class InstanceServer(QObject):
    """Listens for second launches on the library's socket; emits what they hand over."""

    paths_received = Signal(list)

    def __init__(self, root: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(root)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._on_connection)
        self._buffers: dict[QLocalSocket, bytes] = {}

    def listen(self) -> bool:
        # we hold the library's lock, so a socket left under this name is stale
        QLocalServer.removeServer(self.name)
        ok = self._server.listen(self.name)
        if not ok:
            log.warning("cannot listen for other launches: %s", self._server.errorString())
        return ok

    def close(self) -> None:
        self._server.close()
        for sock in list(self._buffers):
            sock.abort()
            sock.deleteLater()
        self._buffers.clear()

    def _on_connection(self) -> None:
        while (sock := self._server.nextPendingConnection()) is not None:
            self._buffers[sock] = b""
            sock.readyRead.connect(self._on_ready_read)
            sock.disconnected.connect(self._on_disconnected)

    def _on_ready_read(self) -> None:
        sock = self.sender()
        if not isinstance(sock, QLocalSocket) or sock not in self._buffers:
            return
        data = self._buffers[sock] + bytes(sock.readAll().data())
        if b"\n" not in data:
            self._buffers[sock] = data
            return
        line = data.split(b"\n", 1)[0]
        self._buffers[sock] = b""
        try:
            message = json.loads(line)
            paths = [str(p) for p in message.get("paths", [])]
        except (ValueError, AttributeError, TypeError):
            sock.write(QByteArray(b"error\n"))
            return
        sock.write(QByteArray(b"ok\n"))
        sock.flush()
        self.paths_received.emit(paths)

    def _on_disconnected(self) -> None:
        sock = self.sender()
        if isinstance(sock, QLocalSocket):
            self._buffers.pop(sock, None)
            sock.deleteLater()


class Session(QObject):
    """One open library with its engine, window and instance server."""

    def __init__(
        self,
        library: Library,
        prefs: Prefs,
        qsettings: QSettings,
        *,
        history: int = HISTORY,
        listen: bool = True,
    ) -> None:
        super().__init__()
        self.library = library
        self.prefs = prefs
        self.qsettings = qsettings
        self.history = history
        self.engine = Engine(library, prefs.engine_settings())
        self.window = MainWindow(self.engine, prefs)
        geometry = qsettings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.window.restoreGeometry(geometry)
        self.window.settings_changed.connect(self._on_settings_changed)
        self.window.close_confirmed.connect(self._on_close_confirmed)
        self.server: InstanceServer | None = None
        self._listen = listen
        self._closed: asyncio.Future[None] | None = None
        self._restart: asyncio.Task[None] | None = None
        self._is_closed = False

    async def start(self, paths: list[str]) -> None:
        self._closed = asyncio.get_running_loop().create_future()
        await self.engine.start(resume=True, history=self.history)
        self.window.attach(self.engine)
        if self._listen:
            self._start_server()
        self.window.add_paths(paths)

    def _start_server(self) -> None:
        self.server = InstanceServer(self.library.root, self)
        self.server.paths_received.connect(self._on_paths_received)
        self.server.listen()

    async def wait_closed(self) -> None:
        assert self._closed is not None
        await self._closed

    def _on_close_confirmed(self) -> None:
        self.quit()

    def quit(self) -> None:
        """End the session without asking (the system is logging out, or Ctrl+C)."""
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def _on_paths_received(self, paths: list[str]) -> None:
        self.window.add_paths(paths)
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def _on_settings_changed(self, prefs: Prefs) -> None:
        if self._restart is None or self._restart.done():
            self._restart = asyncio.ensure_future(self.apply(prefs))
            self._restart.add_done_callback(self._on_restart_done)

    def _on_restart_done(self, task: asyncio.Task[None]) -> None:
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            log.error("applying the settings failed", exc_info=exc)
            words = str(exc) if isinstance(exc, LibraryError) else describe(exc).reason
            self.window.banner.show_message(f"The settings could not be applied: {words}")

    async def apply(self, prefs: Prefs) -> None:
        """Save the settings and restart the engine with them (and the library, if moved)."""
        old_root = self.library.root
        # only a changed folder setting moves the session (not a --library it was opened
        # with); the folder just chosen wins over $UPLOADER_LIBRARY
        new_root = prefs.library.expanduser() if prefs.library is not None else default_root()
        moved = prefs.library != self.prefs.library and os.path.realpath(
            new_root
        ) != os.path.realpath(old_root)
        await self.window.idle()
        self.window.detach()
        await self.engine.close()  # puts interrupted uploads back in the queue
        if moved:
            if self.server is not None:
                self.server.close()
                self.server = None
            self.library.close()
            try:
                self.library = await _open_off_thread(new_root)
            except LibraryError as exc:
                self.library = await _open_off_thread(old_root)
                prefs = replace(prefs, library=self.prefs.library)
                self.window.banner.show_message(
                    f"Cannot use {new_root}: {exc}. Still using {old_root}."
                )
            if self._listen:
                self._start_server()
        self.prefs = prefs
        prefs.save(self.qsettings)
        self.window.prefs = prefs
        self.engine = Engine(self.library, prefs.engine_settings())
        await self.engine.start(resume=True, history=self.history)
        self.window.attach(self.engine)

    async def close(self) -> None:
        """Stop everything this session started; safe to call twice."""
        if self._is_closed:
            return
        self._is_closed = True
        if self._restart is not None and not self._restart.done():
            await asyncio.gather(self._restart, return_exceptions=True)
        if self.server is not None:
            self.server.close()
            self.server = None
        await self.window.idle()
        self.window.cleanup()
        geometry = self.window.closed_geometry or self.window.saveGeometry()
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.sync()
        await self.engine.close()
        self.library.close()
        self.window.hide()
        self.window.deleteLater()


async def _open_off_thread(root: Path) -> Library:
    """Library.open (migrate, recover, sweep: it can take a while) without freezing the
    window; the thread's own database connection is closed before it ends."""

    def open_() -> Library:
        lib = Library.open(root)
        lib.database.close()
        return lib

    with ThreadPoolExecutor(1, thread_name_prefix="open") as pool:
        return await asyncio.get_running_loop().run_in_executor(pool, open_)


def resolve_root(library: Path | None, prefs: Prefs) -> Path:
    """--library, else $UPLOADER_LIBRARY, else the saved folder, else the default."""
    if library is not None:
        return library.expanduser()
    if os.environ.get("UPLOADER_LIBRARY") or prefs.library is None:
        return default_root()
    return prefs.library.expanduser()


def make_app() -> QApplication:
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("Uploader")
    app.setOrganizationName("Uploader")
    app.setApplicationDisplayName("Uploader")
    app.setDesktopFileName("org.uploader.Uploader")  # matches the installed .desktop
    app.setQuitOnLastWindowClosed(False)
    app.setStyle("Fusion")
    follow_color_scheme(app)
    app.styleHints().colorSchemeChanged.connect(_on_color_scheme_changed)
    app.setWindowIcon(icons.app_icon())
    return app


def _on_color_scheme_changed(_scheme: Qt.ColorScheme) -> None:
    app = QApplication.instance()
    if isinstance(app, QApplication):
        follow_color_scheme(app)


def follow_color_scheme(app: QApplication) -> None:
    """The system's light or dark palette (Fusion draws either crisply)."""
    dark = app.styleHints().colorScheme() == Qt.ColorScheme.Dark
    app.setPalette(dark_palette() if dark else app.style().standardPalette())


def dark_palette() -> QPalette:
    p = QPalette()
    role, group = QPalette.ColorRole, QPalette.ColorGroup
    colors = {
        role.Window: "#2b2d30",
        role.WindowText: "#e6e6e6",
        role.Base: "#1f2023",
        role.AlternateBase: "#26282b",
        role.ToolTipBase: "#3a3c40",
        role.ToolTipText: "#e6e6e6",
        role.PlaceholderText: "#8c9096",
        role.Text: "#e6e6e6",
        role.Button: "#35373b",
        role.ButtonText: "#e6e6e6",
        role.BrightText: "#ff6b6b",
        role.Highlight: "#2f6fd0",
        role.HighlightedText: "#ffffff",
        role.Link: "#6aa5ff",
        role.Light: "#45474c",
        role.Midlight: "#3b3d41",
        role.Mid: "#2a2c2f",
        role.Dark: "#18191b",
        role.Shadow: "#000000",
    }
    for r, c in colors.items():
        p.setColor(r, QColor(c))
    for r in (role.WindowText, role.Text, role.ButtonText):
        p.setColor(group.Disabled, r, QColor("#7a7d82"))
    return p


def _complain(app: QApplication, text: str) -> None:
    print(f"uploader: {text}", file=sys.stderr)
    if QGuiApplication.platformName() not in ("offscreen", "minimal"):
        QMessageBox.critical(None, "Uploader", text)


def run(library: Path | None, paths: list[str]) -> int:
    """Open the window on `library` (or hand `paths` to the window that has it open)."""
    app = make_app()
    qsettings = QSettings()
    prefs = Prefs.load(qsettings)
    root = resolve_root(library, prefs)
    wanted = [os.path.abspath(p) for p in paths]
    try:
        lib = Library.open(root)
    except LibraryLocked as exc:
        if hand_over(root, wanted):
            return 0
        _complain(app, f"{exc}; close it first, or wait until it has finished")
        return UNUSABLE
    except LibraryError as exc:
        _complain(app, str(exc))
        return UNUSABLE
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    session = Session(lib, prefs, qsettings)

    def on_signal(signum: int, frame: object) -> None:
        loop.call_soon_threadsafe(session.quit)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    # Python runs signal handlers only between bytecodes: wake it up now and then
    wake = QTimer()
    wake.timeout.connect(_nothing)
    wake.start(300)
    try:
        loop.run_until_complete(session.start(wanted))
        session.window.show()
        loop.run_until_complete(session.wait_closed())
    finally:
        loop.run_until_complete(session.close())
        wake.stop()
        loop.close()
        asyncio.set_event_loop(None)
    return 0


def _nothing() -> None:
    pass


def open_and_close(root: Path) -> str:
    """The self-test's window check: open the real window on `root`, let it show the
    library's uploads, paint it, close it cleanly; says what it saw."""
    app = make_app()
    qsettings = QSettings(str(root / "self-test-settings.ini"), QSettings.Format.IniFormat)
    lib = Library.open(root)
    expected = len(lib.uploads(include_hidden=False))
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    session = Session(lib, Prefs.load(qsettings), qsettings, listen=False)
    try:
        loop.run_until_complete(session.start([]))
        session.window.show()
        loop.run_until_complete(session.window.idle())
        loop.run_until_complete(asyncio.sleep(0.3))  # a flush of the model, then a paint
        rows = session.window.model.rowCount()
        shot = session.window.grab()
        size = f"{shot.width()}×{shot.height()}"
        if rows != expected:
            raise RuntimeError(f"the window shows {rows} rows, the library has {expected}")
        if shot.isNull() or shot.width() < 200:
            raise RuntimeError(f"the window did not paint ({size})")
    finally:
        loop.run_until_complete(session.close())
        loop.close()
        asyncio.set_event_loop(None)
    return f"opened the main window ({size}, {rows} rows shown), closed it cleanly"
