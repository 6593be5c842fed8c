"""Does dropping 10,000 files freeze the window? Measures how late a 10 ms GUI timer
fires (the event loop's stalls) while a folder of N files is dropped, listed, shown and
uploaded, against the same window idle in the same run.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/gui_drop_10k.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import qasync
from PySide6.QtCore import QMimeData, QPoint, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from uploader.core.library import Library
from uploader.gui.app import Session, make_app
from uploader.gui.prefs import Prefs


class Stalls:
    """Gaps between the ticks of a 10 ms timer: a frozen loop shows up as a long gap."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        return list(self.gaps)


def report(label: str, gaps: list[float]) -> None:
    gaps = sorted(gaps)
    p99 = gaps[int(len(gaps) * 0.99) - 1] if gaps else 0.0
    print(
        f"{label:>28}: ticks {len(gaps):6}  median {statistics.median(gaps) * 1000:6.1f} ms"
        f"  p99 {p99 * 1000:6.1f} ms  max {gaps[-1] * 1000:6.1f} ms"
    )


def drop(widget: QApplication | object, folder: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    target = widget  # the empty state: a drop anywhere on the window
    pos = target.rect().center()  # type: ignore[attr-defined]
    args = (
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(target, QDragEnterEvent(QPoint(pos), *args))  # type: ignore[arg-type]
    QApplication.sendEvent(target, QDropEvent(pos.toPointF(), *args))  # type: ignore[arg-type]


async def main(n: int, tmp: Path) -> None:
    folder = tmp / "drop"
    for part in range(n // 1000 + 1):
        sub = folder / f"part{part:02}"
        sub.mkdir(parents=True)
        for i in range(part * 1000, min(n, (part + 1) * 1000)):
            (sub / f"doc{i:05}.txt").write_bytes(b"document %d\n" % i * 20)
    lib = Library.open(tmp / "library")
    qs = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    session = Session(lib, Prefs(), qs, listen=False)
    await session.start([])
    w = session.window
    w.show()
    stalls = Stalls()

    stalls.start()
    await asyncio.sleep(3)
    report("idle (baseline)", stalls.stop())

    stalls.start()
    t0 = time.perf_counter()
    drop(w.empty, folder)
    while w.model.rowCount() < n:
        await asyncio.sleep(0.01)
    shown = time.perf_counter() - t0
    report(f"drop → {n} rows shown", stalls.stop())
    print(f"{'':>28}  all {n} rows shown after {shown:.1f} s")

    # scrolling while uploads run
    stalls.start()
    t1 = time.perf_counter()
    bar = w.view.verticalScrollBar()
    while time.perf_counter() - t1 < 10 and w.model.summary.active:
        bar.setValue((bar.value() + 400) % max(1, bar.maximum()))
        await asyncio.sleep(0.02)
    report("uploading + scrolling (10 s)", stalls.stop())
    print(f"{'':>28}  uploaded so far: {w.model.summary.uploaded}")
    w._close_ok = True
    await session.close()


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    app = make_app()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as d:
        loop.run_until_complete(main(count, Path(d)))
    loop.close()
