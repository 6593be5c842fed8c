"""The window figures: start to first paint beside the bare PySide6 window, a drop of
10,000 files, a library of 100,000 rows. Each runs in its own process (bench.gui_child)
on an Xvfb display when there is one, else Qt's offscreen platform.
"""

from __future__ import annotations

import compileall
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .harness import Figure, Variant, measure, summary

ROOT = Path(__file__).resolve().parents[1]


def have_window() -> bool:
    try:
        return importlib.util.find_spec("uploader.gui.app") is not None
    except ModuleNotFoundError:
        return False


@contextlib.contextmanager
def display() -> Iterator[dict[str, str]]:
    """An environment for the children: a private Xvfb server, else offscreen."""
    env = {**os.environ, "QT_API": "pyside6"}
    env.pop("QT_QPA_PLATFORM", None)
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        env["QT_QPA_PLATFORM"] = "offscreen"
        yield env
        return
    number = 90 + os.getpid() % 100
    proc = subprocess.Popen(
        [xvfb, f":{number}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        sock = Path(f"/tmp/.X11-unix/X{number}")
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        env["DISPLAY"] = f":{number}"
        env["QT_QPA_PLATFORM"] = "xcb"
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def child(
    env: dict[str, str], *args: str, timeout: float = 900, module: str = "bench.gui_child"
) -> tuple[float, dict[str, Any]]:
    """Start `python -m MODULE ARGS`; (monotonic time started, its JSON)."""
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"gui_child {args[0]} printed nothing: {done.stderr[-2000:]}")
    return t0, json.loads(lines[-1])


def first_paint(env: dict[str, str], work: Path, rows: int, rounds: int, log: Any) -> Figure:
    extra: dict[str, list[dict[str, Any]]] = {}

    def start(name: str, *args: str, module: str = "bench.gui_child") -> Callable[[], float]:
        def run() -> float:
            t0, result = child(env, *args, module=module)
            extra.setdefault(name, []).append(result)
            return float(result["paint"]) - t0

        return run

    v = [
        Variant(
            "bare window",
            start("bare", "bare", "--rows", str(rows)),
            f"python -m bench.gui_child bare --rows {rows}",
            1,
            note=f"QMainWindow + QTableView over an empty {rows:,}-row model",
        )
    ]
    ours = "bare window"
    targets: dict[str, float] = {}
    note = ""
    if have_window():
        lib = work / "gui-default-lib"
        shutil.rmtree(lib, ignore_errors=True)
        _make_library(lib, 0)
        v.insert(
            0,
            Variant(
                "uploader window",
                start("window", str(lib), module="bench.gui_start"),
                "python -m bench.gui_start LIB (uploader.cli.main, as the `uploader` command)",
                1,
            ),
        )
        ours = "uploader window"
        targets = {"bare window": 0.5}
    else:
        note = "The window (uploader.gui) is not in this build: only the floor is measured."
    fig = Figure(
        "paint", "Window: start to first paint", "paint", v, ours, targets=targets, note=note
    )
    _compile(log)
    fig = measure(fig, rounds, log)
    for name, results in extra.items():
        peak = summary([r["peak_rss"] / 1e6 for r in results])[0]
        fig.extra[f"{name} peak RSS at first paint (median)"] = f"{peak:.0f} MB"
    return fig


def _compile(log: Any) -> None:
    """Byte-compile the measured code first, as an installed copy is (pip and the bundle
    ship .pyc files): a start that compiles its own sources is not what a user sees."""
    folders = [ROOT / "bench"]
    spec = importlib.util.find_spec("uploader")
    if spec is not None and spec.submodule_search_locations:
        folders += [Path(p) for p in spec.submodule_search_locations]
    for folder in folders:
        if not compileall.compile_dir(folder, quiet=1):
            log(f"could not byte-compile {folder}")


def _make_library(lib: Path, uploads: int) -> None:
    """A library with `uploads` stored documents (rows written directly, no blobs)."""
    code = (
        "import sys; from bench.gui_figures import _fill; _fill(__import__('pathlib').Path("
        f"{str(lib)!r}), {uploads})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _fill(lib: Path, uploads: int) -> None:
    from uploader.core import models
    from uploader.core.library import Library
    from uploader.core.models import Document, Upload

    with Library.open(lib) as library:
        t = models.now()

        def tx(start: int, end: int) -> None:
            docs = [
                {
                    "sha256": f"{i:064x}",
                    "size": 4096 + i,
                    "name": f"scan-{i:06d}.pdf",
                    "encoding": "raw",
                    "stored_size": 4096 + i,
                    "compression": "skipped",
                    "created_at": t,
                }
                for i in range(start, end)
            ]
            Document.insert_many(docs).execute()
            ids = {sha: i for i, sha in Document.select(Document.id, Document.sha256).tuples()}
            Upload.insert_many(
                [
                    {
                        "path": f"/srv/scans/{d['name']}",
                        "name": d["name"],
                        "size": d["size"],
                        "state": "uploaded",
                        "attempts": 1,
                        "duplicate": False,
                        "accept_corrupt": False,
                        "document": ids[str(d["sha256"])],
                        "created_at": t,
                        "updated_at": t,
                    }
                    for d in docs
                ]
            ).execute()

        for start in range(0, uploads, 5000):
            library.write(lambda s=start: tx(s, min(uploads, s + 5000)))


def drop_files(env: dict[str, str], work: Path, files: Path, count: int, log: Any) -> Figure:
    fig = Figure("drop", f"Window: {count:,} files dropped at once", "files", [], "uploader")
    if not have_window():
        fig.note = "Not measured: the window (uploader.gui) is not in this build."
        fig.extra["verdicts"] = [
            (fig.title, "rows in 1 s, stalls ≤ 50 ms, RSS < 150 MB", "–", None)
        ]
        return fig
    lib = work / "gui-drop-lib"
    shutil.rmtree(lib, ignore_errors=True)
    _make_library(lib, 0)
    log(f"  [drop] dropping {count:,} files on the window")
    _, r = child(env, "drop", str(lib), str(files))
    if "error" in r:
        fig.note = f"Not measured: {r['error']}"
        return fig
    visible = r.get("rows_visible")
    stall = float(r["max_stall"]) * 1000
    peak = r["peak_rss"] / 1e6
    fig.extra["result"] = {
        "files dropped": f"{r['files']:,} (drop accepted: {r['accepted']})",
        "drop event handled in": f"{r['drop_handler'] * 1000:.0f} ms",
        "every row listed after": "never" if visible is None else f"{visible:.2f} s",
        "all uploaded after": (
            f"{r['all_uploaded']:.1f} s" if r.get("all_uploaded") else "not within the timeout"
        ),
        "longest event-loop stall (10 ms heartbeat)": f"{stall:.0f} ms",
        "stalls over 50 ms": r["stalls_over_50ms"],
        "peak RSS": f"{peak:.0f} MB",
    }
    fig.extra["verdicts"] = [
        (
            fig.title,
            "every row visible within 1 s",
            "never" if visible is None else f"{visible:.2f} s",
            visible is not None and visible <= 1.0,
        ),
        (fig.title, "event loop stalls ≤ 50 ms", f"longest {stall:.0f} ms", stall <= 50),
        (fig.title, "peak RSS < 150 MB", f"{peak:.0f} MB", peak < 150),
    ]
    return fig


def many_rows(env: dict[str, str], work: Path, folder: Path, count: int, log: Any) -> Figure:
    fig = Figure("rows", f"Window: {count:,} rows", "rows", [], "uploader")
    if not have_window():
        fig.note = "Not measured: the window (uploader.gui) is not in this build."
        fig.extra["verdicts"] = [(fig.title, "scroll, filter < 50 ms; RSS < 400 MB", "–", None)]
        return fig
    lib = work / "gui-rows-lib"
    shutil.rmtree(lib, ignore_errors=True)
    _make_library(lib, 0)
    log(f"  [rows] dropping a folder of {count:,} files, then scrolling and filtering")
    _, r = child(env, "rows", str(lib), str(folder), "--count", str(count))
    if "error" in r:
        fig.note = f"Not measured: {r['error']}"
        return fig
    scroll = max(r["scroll"], default=float("nan")) * 1000
    filt = max(r["filter"], default=float("nan")) * 1000
    peak = r["peak_rss"] / 1e6
    fig.note = (
        f"A folder of {count:,} files dropped on the window; once all {r['rows']:,} rows were "
        f"listed ({r['rows_after']:.1f} s), {len(r['scroll'])} jumps of the scroll bar and "
        f"{r['filter_actions']} filter changes (typing in the search box, the category "
        "buttons), each timed until the list was repainted, while the files uploaded."
    )
    fig.extra["result"] = {
        "rows listed": f"{r['rows']:,} after {r['rows_after']:.1f} s",
        "scroll ms (median, max)": f"{summary(r['scroll'])[0] * 1000:.1f}, {scroll:.1f}",
        "filter ms (median, max)": (
            f"{summary(r['filter'])[0] * 1000:.1f}, {filt:.1f}" if r["filter"] else "no filter"
        ),
        "peak RSS": f"{peak:.0f} MB",
    }
    fig.extra["verdicts"] = [
        (fig.title, "scroll < 50 ms per action", f"slowest {scroll:.1f} ms", scroll < 50),
        (fig.title, "filter < 50 ms per action", f"slowest {filt:.1f} ms", filt < 50),
        (fig.title, "peak RSS < 400 MB", f"{peak:.0f} MB", peak < 400),
    ]
    return fig


def all_figures(
    work: Path, *, rows: int, big_rows: int, rounds: int, log: Callable[[str], None] = print
) -> list[Figure]:
    if importlib.util.find_spec("PySide6") is None:
        return []
    from .data import small_files

    files = work / "data" / f"drop-{rows}"
    if not files.exists():
        small_files(files, rows, seed=5)
    many = work / "data" / f"rows-{big_rows}"
    if not many.exists():
        log(f"generating {many.name} …")
        small_files(many.with_suffix(".part"), big_rows, size=256, seed=6)
        many.with_suffix(".part").rename(many)
    with display() as env:
        log("figure paint")
        figures = [first_paint(env, work, rows, rounds, log)]
        log("figure drop")
        figures.append(drop_files(env, work, files, rows, log))
        log("figure rows")
        figures.append(many_rows(env, work, many, big_rows, log))
    return figures
