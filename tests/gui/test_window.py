"""The window over a real engine: drops, row buttons, filters, badges, closing, handing over."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import Run, Until, drop, files
from PySide6.QtCore import QSettings, Qt, QUrl
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from uploader.core.events import UploadSnapshot
from uploader.gui.app import Session
from uploader.gui.prefs import Prefs
from uploader.gui.upload_model import Category, Column

ROOT = Path(__file__).resolve().parents[2]
Open = Callable[..., Session]


def text(n: int, seed: int = 0) -> bytes:
    line = f"line {seed} of a document that compresses well\n".encode()
    return (line * (n // len(line) + 1))[:n]


def by_name(session: Session) -> dict[str, UploadSnapshot]:
    return {s.name: s for s in session.window.model.snapshots()}


def settled(session: Session, n: int) -> bool:
    snaps = session.window.model.snapshots()
    return len(snaps) == n and all(s.state in ("uploaded", "failed", "cancelled") for s in snaps)


def click_button(session: Session, name: str, label: str) -> None:
    """A real mouse click at the row's button, in the view's viewport."""
    w = session.window
    row = w.proxy.mapFromSource(w.model.index(w.model.row_of(by_name(session)[name].id), 0)).row()
    index = w.proxy.index(row, Column.ACTIONS)
    w.view.scrollTo(index)
    rect = w.view.visualRect(index)
    labels = [
        {"retry": "Retry", "upload_anyway": "Upload anyway", "cancel": "Cancel"}[a]
        for a in index.data(0x0100 + 6)
    ]
    buttons = w.actions_delegate.button_rects(rect, index, w.view.fontMetrics())
    target = buttons[labels.index(label)]
    vp = w.view.viewport()
    QTest.mouseMove(vp, target.center())
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, target.center())


def test_empty_state_invites_a_drop(open_session: Open, lib_dir: Path) -> None:
    w = open_session(lib_dir).window
    assert w.stack.currentWidget() is w.empty
    assert w.empty.title.text() == "Drop files or folders here"
    assert w.empty.add_files.text() == "Add files…"
    assert w.empty.add_folder.text() == "Add folder…"
    assert w.summary_label.text() == ""


def test_drop_files_folder_unreadable_and_corrupt(
    open_session: Open, lib_dir: Path, src: Path, tmp_path: Path, until: Until
) -> None:
    (src / "a.txt").write_bytes(text(50_000, 1))
    (src / "b.txt").write_bytes(text(70_000, 2))
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "c.txt").write_bytes(text(30_000, 3))
    (folder / "sub" / "d.txt").write_bytes(text(40_000, 4))
    os.mkfifo(src / "pipe")
    (src / "broken.pdf").write_bytes(b"%PDF-1.4\n" + text(20_000, 5))  # no %%EOF
    s = open_session(lib_dir)
    w = s.window
    # onto the empty state, then onto the list's viewport: both are "the window"
    assert drop(w.empty, files(src / "a.txt", src / "b.txt")).isAccepted()
    until(lambda: w.model.rowCount() == 2)
    assert w.stack.currentWidget() is w.view
    event = drop(w.view.viewport(), files(folder, src / "pipe", src / "broken.pdf"))
    assert event.isAccepted()
    until(lambda: settled(s, 6), what="all six rows final")
    rows = by_name(s)
    assert set(rows) == {"a.txt", "b.txt", "c.txt", "d.txt", "pipe", "broken.pdf"}
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        assert rows[name].state == "uploaded"
    status = {n: w.model.index(w.model.row_of(r.id), Column.STATUS).data() for n, r in rows.items()}
    assert status["a.txt"] == "Uploaded"
    assert status["pipe"].startswith("Failed: ")
    assert (
        "not a regular file" in status["pipe"]
        or "FIFO" in status["pipe"]
        or "pipe" in status["pipe"]
    )
    assert status["broken.pdf"] == "Failed: corrupted (truncated PDF: no %%EOF marker)"
    # the corrupt one also offers "Upload anyway"
    index = w.model.index(w.model.row_of(rows["broken.pdf"].id), Column.ACTIONS)
    assert index.data(0x0100 + 6) == ("retry", "upload_anyway")


def test_unreadable_file_shows_permission_denied(
    open_session: Open, lib_dir: Path, src: Path, tmp_path: Path, until: Until
) -> None:
    """Root reads everything, so the window runs in a child without the capabilities;
    the file fails there, SIGTERM ends that window cleanly, and the row is shown here."""
    if subprocess.run(["capsh", "--has-p=cap_dac_override"], capture_output=True).returncode:
        pytest.skip("needs capsh and CAP_DAC_OVERRIDE to drop")
    secret = src / "secret.txt"
    secret.write_bytes(b"top secret")
    secret.chmod(0)
    (src / "open.txt").write_bytes(b"anyone may read this")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    window = (
        f'exec "{sys.executable}" -m uploader --library "{lib_dir}" "{secret}" "{src / "open.txt"}"'
    )
    proc = subprocess.Popen(
        ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", window],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        until(
            lambda: (
                proc.poll() is not None or sorted(_states(lib_dir)) == [("failed",), ("uploaded",)]
            ),
            timeout=120,
            what="the child window to finish both files",
        )
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        until(lambda: proc.poll() is not None, timeout=60, what="the child window to quit")
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == 0, err
    s = open_session(lib_dir)  # the child released the library
    until(lambda: settled(s, 2))
    row = by_name(s)["secret.txt"]
    assert row.state == "failed"
    status = s.window.model.index(s.window.model.row_of(row.id), Column.STATUS).data()
    assert status == "Failed: permission denied"
    assert by_name(s)["open.txt"].state == "uploaded"


def test_non_local_urls_are_refused_with_a_message(
    open_session: Open, lib_dir: Path, src: Path, until: Until
) -> None:
    (src / "a.txt").write_bytes(b"local")
    w = open_session(lib_dir).window
    event = drop(w.empty, [QUrl("https://example.com/report.pdf")])
    assert not event.isAccepted()
    assert w.banner.isVisible()
    assert "Only files on this computer can be added" in w.banner.label.text()
    assert "https://example.com/report.pdf" in w.banner.label.text()
    assert w.model.rowCount() == 0
    # a mix: the local file is added, the remote one named
    drop(w.empty, [QUrl("ftp://host/x.txt"), *files(src / "a.txt")])
    until(lambda: w.model.rowCount() == 1)
    assert "ftp://host/x.txt" in w.banner.label.text()


def test_retry_button_retries_only_that_row_and_retry_all(
    open_session: Open, lib_dir: Path, src: Path, until: Until
) -> None:
    for name in ("one.pdf", "two.pdf", "three.pdf"):
        (src / name).write_bytes(b"%PDF-1.4\n" + text(5000, len(name)))
    s = open_session(lib_dir)
    w = s.window
    drop(w.empty, files(*sorted(src.iterdir())))
    until(lambda: settled(s, 3))
    assert {r.state for r in by_name(s).values()} == {"failed"}
    assert w.retry_all.text() == "Retry all failed (3)"
    for name in ("one.pdf", "two.pdf", "three.pdf"):
        with open(src / name, "ab") as f:
            f.write(b"\n%%EOF\n")  # repaired at the source
    click_button(s, "two.pdf", "Retry")
    until(lambda: by_name(s)["two.pdf"].state == "uploaded", what="two.pdf retried")
    rows = by_name(s)
    assert rows["one.pdf"].state == rows["three.pdf"].state == "failed"
    assert rows["one.pdf"].attempts == rows["three.pdf"].attempts == 1
    assert rows["two.pdf"].attempts == 2
    until(lambda: w.retry_all.text() == "Retry all failed (2)")
    QTest.mouseClick(w.retry_all, Qt.MouseButton.LeftButton)
    until(lambda: all(r.state == "uploaded" for r in by_name(s).values()), what="all retried")
    assert not w.retry_all.isEnabled()


def test_upload_anyway_stores_a_corrupt_document(
    open_session: Open, lib_dir: Path, src: Path, until: Until
) -> None:
    (src / "broken.pdf").write_bytes(b"%PDF-1.4\n" + text(5000))
    s = open_session(lib_dir)
    drop(s.window.empty, files(src / "broken.pdf"))
    until(lambda: settled(s, 1))
    click_button(s, "broken.pdf", "Upload anyway")
    until(lambda: by_name(s)["broken.pdf"].state == "uploaded")
    assert by_name(s)["broken.pdf"].accept_corrupt


def test_badge_moves_from_pending_to_compressed_or_stored_as_is(
    open_session: Open, lib_dir: Path, src: Path, until: Until
) -> None:
    (src / "notes.txt").write_bytes(text(400_000))
    (src / "noise.bin").write_bytes(random.Random(1).randbytes(400_000))
    s = open_session(lib_dir, compress=False)
    w = s.window
    drop(w.empty, files(src / "notes.txt", src / "noise.bin"))
    until(lambda: settled(s, 2))

    def badge(name: str) -> str:
        return str(w.model.index(w.model.row_of(by_name(s)[name].id), Column.COMPRESSION).data())

    assert badge("notes.txt") == badge("noise.bin") == "pending"
    assert "2 waiting for compression" in w.summary_label.text()
    # the settings are applied by restarting the engine, which now compresses
    s.window.settings_changed.emit(s.prefs)
    until(
        lambda: (
            badge("notes.txt").startswith("compressed −") and badge("noise.bin") == "stored as is"
        )
    )
    saving = int(badge("notes.txt").removeprefix("compressed −").removesuffix("%"))
    assert 50 < saving < 100
    assert "waiting for compression" not in w.summary_label.text()
    assert "saved" in w.summary_label.text()


def test_filter_counts_and_status_bar_agree_with_rows(
    open_session: Open, lib_dir: Path, src: Path, until: Until, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(4):
        (src / f"ok{i}.txt").write_bytes(text(3000 + i, i))
    (src / "bad.pdf").write_bytes(b"%PDF-1.4\nno end")
    os.mkfifo(src / "pipe")
    s = open_session(lib_dir)
    w = s.window
    monkeypatch.setattr(w, "isActiveWindow", lambda: False)
    drop(w.empty, files(src))
    until(lambda: settled(s, 6))
    snaps = w.model.snapshots()
    expect = {
        Category.ALL: len(snaps),
        Category.ACTIVE: 0,
        Category.FAILED: sum(x.state == "failed" for x in snaps),
        Category.DONE: sum(x.state == "uploaded" for x in snaps),
    }
    assert expect[Category.FAILED] == 2
    assert expect[Category.DONE] == 4
    until(lambda: w.filter_buttons[Category.DONE].text() == "Done (4)")
    for cat, n in expect.items():
        button = w.filter_buttons[cat]
        assert button.text().endswith(f"({n})")
        QTest.mouseClick(button, Qt.MouseButton.LeftButton)
        assert w.proxy.rowCount() == n
    assert w.summary_label.text().startswith("4 uploaded · 2 failed")
    # the person had switched to another window while the batch ran
    assert w.last_notification == ("Uploads finished, some failed", "4 uploaded, 2 failed")
    assert w.windowTitle() == "Uploader"
    # Clear finished takes the done rows off the list (they stay in the library)
    QTest.mouseClick(w.filter_buttons[Category.ALL], Qt.MouseButton.LeftButton)
    QTest.mouseClick(w.clear_finished, Qt.MouseButton.LeftButton)
    until(lambda: w.model.rowCount() == 2)
    assert w.filter_buttons[Category.DONE].text() == "Done (0)"
    assert "stay in the library" in w.banner.label.text()
    assert s.library.stats()["documents"] == 4


def test_second_launch_hands_its_files_to_the_first_window(
    open_session: Open, lib_dir: Path, src: Path, tmp_path: Path, until: Until
) -> None:
    (src / "handed.txt").write_bytes(text(10_000))
    s = open_session(lib_dir, listen=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uploader", "--library", str(lib_dir), "handed.txt"],
        cwd=src,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        until(lambda: proc.poll() is not None, timeout=120, what="the second launch to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
        _out, err = proc.communicate()
    assert proc.returncode == 0, err
    until(lambda: settled(s, 1))
    row = by_name(s)["handed.txt"]
    assert row.path == str(src / "handed.txt")
    assert row.state == "uploaded"


def test_closing_during_uploads_asks_and_they_resume_next_time(
    open_session: Open,
    lib_dir: Path,
    src: Path,
    until: Until,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for i in range(6):
        (src / f"f{i}.txt").write_bytes(text(200_000, i))
    # the first upload blocks in its copy until the engine closes: the rest stay queued
    import uploader.core.engine as engine_module

    real_copy_in = engine_module.copy_in
    started: list[str] = []

    def slow_copy_in(store: object, path: Path, **kw: Any) -> object:
        started.append(path.name)
        while not kw["cancelled"]():
            time.sleep(0.01)
        return real_copy_in(store, path, **kw)

    monkeypatch.setattr(engine_module, "copy_in", slow_copy_in)
    s = open_session(lib_dir, jobs=1)
    w = s.window
    closed: list[bool] = []
    w.close_confirmed.connect(lambda: closed.append(True))
    drop(w.empty, files(src))
    until(lambda: bool(started) and w.model.summary.active == 6, what="the first upload")
    assert w.windowTitle() == "0% · 0 of 6 · Uploader"
    w.close()
    assert not closed
    assert w.isVisible()
    box = w.confirm_box
    assert box is not None
    assert "resume next time" in box.informativeText()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert not closed
    assert w.isVisible()
    w.close()
    assert w.confirm_box is not None
    w.confirm_box.button(QMessageBox.StandardButton.Close).click()
    assert closed == [True]
    run(s.close())
    # the interrupted one is still marked as running: the next open puts it back in the queue
    assert sorted(r[0] for r in _states(lib_dir)) == ["queued"] * 5 + ["uploading"]
    monkeypatch.setattr(engine_module, "copy_in", real_copy_in)
    again = open_session(lib_dir)
    assert again.window.model.rowCount() == 6  # the recent rows are shown again
    until(lambda: settled(again, 6), what="the interrupted uploads to resume")
    assert {r.state for r in again.window.model.snapshots()} == {"uploaded"}
    assert again.library.stats()["documents"] == 6


def _states(lib_dir: Path) -> list[tuple[str]]:
    import sqlite3

    if not (lib_dir / "library.db").exists():
        return []
    db = sqlite3.connect(f"file:{lib_dir / 'library.db'}?mode=ro", uri=True, timeout=10)
    try:
        return list(db.execute("SELECT state FROM upload"))
    except sqlite3.OperationalError:
        return []  # the schema is not there yet
    finally:
        db.close()


def test_cancel_adding_stops_listing_a_big_folder(
    open_session: Open, lib_dir: Path, tmp_path: Path, until: Until
) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for i in range(5000):
        (big / f"{i:05}.txt").write_bytes(b"x%d" % i)
    s = open_session(lib_dir)
    w = s.window
    w.set_adding_delay(0)
    drop(w.empty, files(big))
    until(lambda: w.adding.isVisible(), what="the adding indicator")
    assert w.adding_label.text().startswith("Adding ")
    QTest.mouseClick(w.adding_cancel, Qt.MouseButton.LeftButton)
    until(lambda: not w.adding.isVisible(), what="adding to stop")
    w.model.flush()
    listed = w.model.rowCount()
    assert listed < 5000  # the listing stopped early (maybe before its first batch)
    stats = s.library.stats()
    assert sum(stats[k] for k in ("queued", "uploading", "uploaded", "failed")) == listed


def test_new_settings_restart_the_engine_and_interrupted_uploads_continue(
    open_session: Open,
    lib_dir: Path,
    src: Path,
    tmp_path: Path,
    until: Until,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uploader.core.engine as engine_module

    real_copy_in = engine_module.copy_in
    gate: list[str] = []

    def held_copy_in(store: object, path: Path, **kw: Any) -> object:
        gate.append(path.name)
        while not kw["cancelled"]():  # held until the engine stops for the restart
            time.sleep(0.01)
        return real_copy_in(store, path, **kw)

    for i in range(3):
        (src / f"f{i}.txt").write_bytes(text(10_000, i))
    monkeypatch.setattr(engine_module, "copy_in", held_copy_in)
    s = open_session(lib_dir, jobs=1)
    drop(s.window.empty, files(src))
    until(lambda: bool(gate) and s.window.model.summary.active == 3)
    monkeypatch.setattr(engine_module, "copy_in", real_copy_in)
    new = replace(s.prefs, jobs=3, level=9, check_corrupt=False)
    s.window.settings_changed.emit(new)
    until(lambda: settled(s, 3), what="the uploads to continue after the restart")
    assert {r.state for r in s.window.model.snapshots()} == {"uploaded"}
    assert s.engine.settings.jobs == 3
    assert s.engine.settings.level == 9
    assert not s.engine.settings.check_corrupt
    saved = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert Prefs.load(saved) == new


def select(session: Session, *names: str) -> None:
    w = session.window
    w.view.clearSelection()
    for name in names:
        row = w.proxy.mapFromSource(w.model.index(w.model.row_of(by_name(session)[name].id), 0))
        w.view.selectionModel().select(
            row,
            w.view.selectionModel().SelectionFlag.Select
            | w.view.selectionModel().SelectionFlag.Rows,
        )


def test_row_actions_open_export_copy_error_remove_and_ctrl_r(
    open_session: Open,
    lib_dir: Path,
    src: Path,
    tmp_path: Path,
    until: Until,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from PySide6.QtGui import QDesktopServices, QGuiApplication
    from PySide6.QtWidgets import QFileDialog

    body = text(300_000, 9)
    (src / "report.txt").write_bytes(body)
    (src / "broken.pdf").write_bytes(b"%PDF-1.4\nno end")
    s = open_session(lib_dir)
    w = s.window
    drop(w.empty, files(src / "report.txt", src / "broken.pdf"))
    until(lambda: settled(s, 2))
    opened: list[str] = []
    monkeypatch.setattr(
        QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True
    )

    # Open: a verified temporary copy, opened with the system's application
    select(s, "report.txt")
    assert w.act_open.isEnabled()
    assert not w.act_retry.isEnabled()
    w.act_open.trigger()
    until(lambda: bool(opened))
    assert Path(opened[0]).name == "report.txt"
    assert Path(opened[0]).read_bytes() == body

    # Export…: to the file the person chose
    dest = tmp_path / "exported.txt"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(dest), ""))
    w.act_export.trigger()
    until(lambda: "Exported 1 document" in w.banner.label.text())
    assert dest.read_bytes() == body

    # Copy error
    select(s, "broken.pdf")
    w.act_copy.trigger()
    assert QGuiApplication.clipboard().text() == (
        "broken.pdf: corrupted (truncated PDF: no %%EOF marker)"
    )

    # Ctrl+R retries the selection (the source is repaired meanwhile)
    with open(src / "broken.pdf", "ab") as f:
        f.write(b"\n%%EOF\n")
    w.activateWindow()
    w.view.setFocus()
    QTest.keyClick(w.view, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    until(lambda: by_name(s)["broken.pdf"].state == "uploaded", what="Ctrl+R")

    # Remove from list: gone from the window, still in the library, not back next time
    select(s, "report.txt")
    w.act_remove.trigger()
    until(lambda: w.model.rowCount() == 1)
    assert "stay in the library" in w.banner.label.text()
    assert s.library.stats()["documents"] == 2
    run(s.close())
    again = open_session(lib_dir)
    assert [r.name for r in again.window.model.snapshots()] == ["broken.pdf"]


def test_moving_the_library_in_settings_switches_to_it(
    open_session: Open, lib_dir: Path, src: Path, tmp_path: Path, until: Until
) -> None:
    (src / "old.txt").write_bytes(b"in the first library")
    (src / "new.txt").write_bytes(b"in the second library")
    s = open_session(lib_dir)
    w = s.window
    drop(w.empty, files(src / "old.txt"))
    until(lambda: settled(s, 1))
    other = tmp_path / "other library"
    w.settings_changed.emit(replace(s.prefs, library=other))
    until(lambda: s.library.root == other and w.model.rowCount() == 0, what="the switch")
    assert w.library_label.text() == str(other)
    assert w.stack.currentWidget() is w.empty
    drop(w.empty, files(src / "new.txt"))
    until(lambda: settled(s, 1))
    assert [r.name for r in w.model.snapshots()] == ["new.txt"]
    assert s.library.stats()["documents"] == 1
    # the first library was closed and its lock released: another process can write to it
    proc = subprocess.run(
        [sys.executable, "-m", "uploader", "status", "--library", str(lib_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lock = subprocess.run(
        ["flock", "-n", str(lib_dir / "lock"), "true"], capture_output=True, timeout=60
    )
    assert lock.returncode == 0


def test_window_size_is_remembered(open_session: Open, lib_dir: Path, run: Run) -> None:
    s = open_session(lib_dir)
    s.window.resize(780, 450)  # within the offscreen screen (800 × 600)
    size = (s.window.width(), s.window.height())
    assert size != (1240, 640)  # not the default size
    s.window.close()
    run(s.close())
    again = open_session(lib_dir)
    assert (again.window.width(), again.window.height()) == size


def test_settings_dialog_reads_back_what_was_chosen(qtbot: Any, tmp_path: Path) -> None:
    from uploader.gui.main_window import SettingsDialog

    dialog = SettingsDialog(Prefs())
    qtbot.addWidget(dialog)
    assert (dialog.jobs.value(), dialog.level.value(), dialog.workers.value()) == (4, 3, 1)
    assert dialog.check.isChecked()
    dialog.jobs.setValue(2)
    dialog.level.setValue(12)
    dialog.workers.setValue(3)
    dialog.check.setChecked(False)
    dialog.library.setText(str(tmp_path / "docs"))
    assert dialog.prefs() == Prefs(
        jobs=2, level=12, compress_workers=3, check_corrupt=False, library=tmp_path / "docs"
    )
    dialog.jobs.setValue(99)  # clamped to what the spin box allows
    assert dialog.prefs().jobs == 16


def test_an_unusable_library_folder_keeps_the_current_one(
    open_session: Open, lib_dir: Path, src: Path, tmp_path: Path, until: Until
) -> None:
    (src / "a.txt").write_bytes(b"stays")
    s = open_session(lib_dir)
    w = s.window
    drop(w.empty, files(src / "a.txt"))
    until(lambda: settled(s, 1))
    not_a_folder = tmp_path / "a file"
    not_a_folder.write_bytes(b"")
    w.settings_changed.emit(replace(s.prefs, library=not_a_folder / "library"))
    until(lambda: "Cannot use" in w.banner.label.text(), what="the refusal")
    assert "cannot create the library" in w.banner.label.text()
    assert s.library.root == lib_dir
    until(lambda: w.model.rowCount() == 1)
    assert s.prefs.library is None  # the unusable folder was not saved
