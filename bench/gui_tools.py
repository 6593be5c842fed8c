"""Measuring tools for a Qt process: a heartbeat timer that measures event-loop stalls,
peak RSS, and a hook that reports the first paint of any window.

Only measures; never changes what the window does.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer


class Heartbeat(QObject):
    """A precise timer on the GUI thread; a gap longer than its interval is a stall."""

    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval = interval_ms / 1000
        self.beats: list[float] = []
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_beat)

    def start(self) -> None:
        self.beats = [time.monotonic()]
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self.beats.append(time.monotonic())

    def _on_beat(self) -> None:
        self.beats.append(time.monotonic())

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.beats, self.beats[1:], strict=False)]

    def max_stall(self) -> float:
        """The longest time the loop could not run the timer, beyond its interval (s)."""
        gaps = self.gaps()
        return max((g - self.interval for g in gaps), default=0.0)

    def stalls_over(self, seconds: float) -> int:
        return sum(1 for g in self.gaps() if g - self.interval > seconds)


def _status(field: str, pid: int | str = "self") -> int:
    """A VmXXX field of /proc/PID/status, in bytes (0 where there is no /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_rss(pid: int | str = "self") -> int:
    """The process's peak resident set size in bytes (VmHWM)."""
    return _status("VmHWM", pid)


def rss(pid: int | str = "self") -> int:
    return _status("VmRSS", pid)


class FirstPaint(QObject):
    """An application-wide event filter that notes the first paint of a visible window."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.at: float | None = None
        self.callbacks: list[Any] = []

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if self.at is None and event.type() == QEvent.Type.Paint:
            window = getattr(watched, "window", None)
            if window is not None and window().isVisible():
                # after the paint handler ran: the frame is drawn, not just requested
                QTimer.singleShot(0, self._painted)
                self.at = -1.0
        return False

    def _painted(self) -> None:
        self.at = time.monotonic()
        for cb in self.callbacks:
            cb(self.at)
