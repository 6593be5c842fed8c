"""`uploader self-test`: the checks run for real; a failure is reported and blocks what needs it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

from uploader import selftest
from uploader.selftest import CHECKS, Check, CheckFailed, Context

ROOT = Path(__file__).resolve().parents[1]
WITHOUT_WINDOW = tuple(c for c in CHECKS if c.name != "window")


def run(checks: tuple[Check, ...] = CHECKS) -> tuple[int, list[str]]:
    """Run the checks on a thread of their own, as the command does in its own process:
    the GUI tests leave a qasync loop running on this thread, and the checks use
    asyncio.run."""
    out = io.StringIO()
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(selftest.run(checks, out=out)))
    worker.start()
    worker.join(300)
    assert result, "the self-test did not finish"
    return result[0], out.getvalue().splitlines()


def test_the_core_checks_hold_and_are_each_reported() -> None:
    rc, lines = run(WITHOUT_WINDOW)
    assert rc == 0, lines
    for check in WITHOUT_WINDOW:
        assert any(line.startswith(f"{check.name}: ok (") for line in lines), lines
    assert lines[-1] == f"self-test passed: {len(WITHOUT_WINDOW)} checks"
    assert any("truncated PDF" in line for line in lines)


def test_the_temporary_folder_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    rc, _ = run(WITHOUT_WINDOW[:1])
    assert rc == 0
    assert list(tmp_path.iterdir()) == []


def test_a_failed_check_fails_the_run_and_blocks_its_dependents() -> None:
    def broken(ctx: Context) -> str:
        raise CheckFailed("the disk is full")

    checks = (Check("store", broken), *WITHOUT_WINDOW[1:])
    rc, lines = run(checks)
    assert rc == 1
    assert "store: FAILED (the disk is full)" in lines
    assert "refuse corrupt: FAILED (not run: store failed)" in lines
    assert "export: FAILED (not run: compress, accept corrupt failed)" in lines
    assert lines[-1] == f"self-test FAILED: {len(checks)} of {len(checks)} checks"


def test_a_corrupted_document_that_is_stored_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    # a build whose corruption check were broken would store the truncated PDF at once
    monkeypatch.setattr("uploader.core.formats.corruption", lambda head, tail: None)
    rc, lines = run(WITHOUT_WINDOW[:2])
    assert rc == 1
    assert any(line.startswith("refuse corrupt: FAILED (expected a refusal") for line in lines)


def test_the_window_check_says_when_the_window_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uploader.gui.app", None)  # import raises ImportError
    rc, lines = run()
    assert rc == 1
    (line,) = [x for x in lines if x.startswith("window: ")]
    assert line.startswith("window: FAILED (cannot import the window: ")


def test_the_window_check_calls_open_and_close_on_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Path] = []

    def open_and_close(library_root: Path) -> str:
        seen.append(library_root)
        assert (library_root / "library.db").exists()
        return "a window with 3 rows"

    fake = ModuleType("uploader.gui.app")
    fake.open_and_close = open_and_close  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uploader.gui.app", fake)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    rc, lines = run()
    assert rc == 0, lines
    assert len(seen) == 1
    assert "window: ok (a window with 3 rows (offscreen))" in lines


def test_the_command_prints_each_check_and_its_exit_code_says_if_all_held() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run(
        [sys.executable, "-m", "uploader", "self-test"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    names = [line.split(":")[0] for line in r.stdout.splitlines()[1:-1]]
    assert names == [c.name for c in CHECKS], r.stdout
    window = next(line for line in r.stdout.splitlines() if line.startswith("window: "))
    assert window.startswith("window: ok (opened the main window"), r.stdout + r.stderr
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": ok (") == len(CHECKS), r.stdout
