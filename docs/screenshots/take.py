"""Take the README screenshots of a real window (run under Xvfb: see README)."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import qasync
from PySide6.QtCore import QSettings

import uploader.core.engine as engine_module
from uploader.core.engine import Engine, Settings
from uploader.core.library import Library
from uploader.gui.app import Session, dark_palette, make_app
from uploader.gui.prefs import Prefs

OUT = Path(__file__).resolve().parent
real_copy_in = engine_module.copy_in
SUFFIX = [""]


def slow_copy_in(store: Any, path: Path, **kw: Any) -> Any:
    """Uploads of big files crawl, so that they are caught in progress."""
    report = kw.get("progress")
    if report is None:  # small files are copied in groups, without progress reports
        return real_copy_in(store, path, **kw)

    def progress(done: int) -> None:
        report(done)
        if path.stat().st_size > 50_000_000:
            time.sleep(0.05)

    return real_copy_in(store, path, **{**kw, "progress": progress})


async def main(tmp: Path) -> None:
    src = tmp / "Documents"
    (src / "Invoices 2026").mkdir(parents=True)
    line = b"Quarterly report: revenue, costs and notes that compress well.\n"
    for i, name in enumerate(["Annual report.pdf", "Budget 2027.xlsx", "Meeting notes.txt"]):
        body = line * (3000 + 500 * i)
        (src / name).write_bytes(
            b"%PDF-1.7\n" + body + b"%%EOF\n" if name.endswith("pdf") else body
        )
    for i in range(1, 4):
        (src / "Invoices 2026" / f"Invoice {i:03}.pdf").write_bytes(
            b"%PDF-1.4\n" + line * (800 * i) + b"%%EOF\n"
        )
    (src / "Scan (incomplete).pdf").write_bytes(b"%PDF-1.4\n" + line * 400)
    (src / "Holiday video.mp4").write_bytes(os.urandom(2_000_000))
    with open(src / "Site backup.tar", "wb") as f:
        f.truncate(400_000_000)
    os.mkfifo(src / "printer-pipe")
    lib = Library.open(tmp / "library")
    qs = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    session = Session(lib, Prefs(jobs=2), qs, listen=False)
    await session.start([])
    w = session.window
    w.resize(1240, 560)
    w.show()
    await asyncio.sleep(0.5)
    w.grab().save(str(OUT / f"empty{SUFFIX[0]}.png"))
    # first some documents stored and compressed ...
    w.add_paths([str(src / "Invoices 2026")])
    await w.idle()
    await session.engine.wait_uploads(list(session.engine.uploads))
    await session.engine.drain_compression()
    # ... then compression paused for the shot, so that some badges still say "pending"
    await session.engine.close()
    session.engine = Engine(lib, Settings(jobs=2, compress=False))
    await session.engine.start(resume=True, history=100)
    w.attach(session.engine)
    engine_module.copy_in = slow_copy_in
    names = [
        "Annual report.pdf",
        "Budget 2027.xlsx",
        "Meeting notes.txt",
        "Scan (incomplete).pdf",
        "printer-pipe",
        "Holiday video.mp4",
        "Site backup.tar",
    ]
    w.add_paths([str(src / n) for n in names])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        big = {s.name: s for s in w.model.snapshots()}.get("Site backup.tar")
        if big is not None and big.state == "uploading" and big.fraction > 0.3:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    w.grab().save(str(OUT / f"mixed{SUFFIX[0]}.png"))
    await session.engine.cancel([s.id for s in w.model.snapshots() if s.state == "uploading"])
    await session.close()


if __name__ == "__main__":
    app = make_app()
    if "--dark" in sys.argv:  # what a system in dark mode gets
        app.setPalette(dark_palette())
        SUFFIX[0] = "-dark"
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp:
        loop.run_until_complete(main(Path(tmp)))
    loop.close()
    sys.exit(0)
