"""I/O errors reading the source and writing, fsyncing or renaming in the store (strace
fault injection), and files unreadable to a root without CAP_DAC_OVERRIDE (capsh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from faultkit import child_env, need, recover, tally, text_bytes, uploader_cmd
from invariants import check, read_acks, snapshot_sources

HERE = Path(__file__).resolve().parent


def files_in(folder: Path, n: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"doc{i}.txt"
        p.write_bytes(text_bytes(150_000 + i, seed=i))
        out.append(p)
    return out


def results(stdout: str) -> dict[str, dict[str, Any]]:
    return {Path(r["path"]).name: r for r in map(json.loads, stdout.splitlines())}


def test_eio_reading_the_source_fails_that_file_alone(tmp_path: Path, lib_dir: Path) -> None:
    strace = need("strace")
    files = files_in(tmp_path / "src", 3)
    sources = snapshot_sources(files)
    recover(lib_dir)
    bad = files[1]
    proc = subprocess.run(
        [strace, "-f", "-o", os.devnull, "-P", str(bad), "-e", "trace=read,readv",
         "-e", "inject=read,readv:error=EIO",
         *uploader_cmd("add", "--json", "--library", lib_dir, *files)],
        capture_output=True, text=True, env=child_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    got = results(proc.stdout)
    assert got[bad.name]["status"] == "failed"
    assert got[bad.name]["error"] == "an I/O error while reading the file"
    assert all(got[p.name]["status"] == "uploaded" for p in files if p != bad)
    check(lib_dir, acknowledged=read_acks(proc.stdout), sources=sources, recovered=True)
    tally(faults_injected=1)


STORE_FAULTS = [
    # (syscall, when, words): the temp file's fsync, the folder's fsync, the rename
    ("fsync", 1, "an I/O error while saving to the library"),
    ("fsync", 2, "an I/O error"),
    ("fsync", 3, "an I/O error"),
    ("rename", 1, "the library's folders are on different file systems"),
]


@pytest.mark.parametrize(("call", "when", "words"), STORE_FAULTS)
def test_store_error_commits_no_row_and_the_copy_is_redone(
    tmp_path: Path, lib_dir: Path, call: str, when: int, words: str
) -> None:
    strace = need("strace")
    files = files_in(tmp_path / "src", 3)
    sources = snapshot_sources(files)
    recover(lib_dir)
    error = "EXDEV" if call == "rename" else "EIO"
    cmd = [strace, "-f", "-o", os.devnull, "-e", f"trace={call}",
           "-e", f"inject={call}:error={error}:when={when}",
           sys.executable, str(HERE / "driver.py"), str(lib_dir), *map(str, files)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=120)
    got = results(proc.stdout)
    failed = [r for r in got.values() if r["status"] == "failed"]
    assert len(failed) == 1, got
    assert words in failed[0]["error"]
    assert "rollback" not in proc.stderr
    acks = read_acks(proc.stdout)
    assert len(acks) == len(files) - 1
    # no row for the failed one, no temp left; a blob published before a failed folder
    # fsync is whole (invariant 3) and simply published again by the retry
    check(lib_dir, acknowledged=acks, sources=sources, recovered=True)
    assert not list((lib_dir / "tmp").iterdir())
    again = subprocess.run(
        [sys.executable, str(HERE / "driver.py"), str(lib_dir), failed[0]["path"]],
        capture_output=True, text=True, env=child_env(), timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    expect = {sha for sha, _, _ in sources.values()}
    check(
        lib_dir,
        acknowledged=acks + read_acks(again.stdout),
        sources=sources,
        recovered=True,
        drained=True,
        expect_all=expect,
    )
    tally(faults_injected=1, documents_checked=len(expect))


def no_dac(*cmd: str | os.PathLike[str]) -> list[str]:
    capsh = need("capsh")
    line = " ".join(f"'{c}'" for c in map(str, cmd))
    return [capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", f"exec {line}"]


def test_unreadable_file_as_root_without_dac_capabilities(tmp_path: Path, lib_dir: Path) -> None:
    files = files_in(tmp_path / "src", 3)
    secret = files[0]
    secret.chmod(0)
    locked = tmp_path / "src" / "locked"
    locked.mkdir()
    (locked / "inside.txt").write_bytes(b"cannot be listed")
    locked.chmod(0)
    sources = snapshot_sources(files)
    recover(lib_dir)
    try:
        # the library itself stays writable: root owns it
        probe = subprocess.run(no_dac("cat", secret), capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            pytest.skip("dropping CAP_DAC_OVERRIDE did not make the file unreadable here")
        proc = subprocess.run(
            no_dac(*uploader_cmd("add", "--json", "--library", lib_dir, *files, locked)),
            capture_output=True, text=True, env=child_env(), timeout=120,
        )  # fmt: skip
    finally:
        secret.chmod(0o644)
        locked.chmod(0o755)
    assert proc.returncode == 1, proc.stderr
    got = results(proc.stdout)
    assert got[secret.name]["error"] == "permission denied"
    assert got["locked"]["status"] == "failed"
    assert "permission denied" in got["locked"]["error"]
    assert all(got[p.name]["status"] == "uploaded" for p in files[1:])
    check(lib_dir, acknowledged=read_acks(proc.stdout), sources=sources, recovered=True)
    tally(faults_injected=2)


def test_lock_file_faults_are_words(tmp_path: Path, lib_dir: Path) -> None:
    """The pid in the lock file is only for messages: a full disk refusing it does not stop
    the library; a lock file that cannot be opened is a clear error, not a traceback."""
    strace = need("strace")
    files = files_in(tmp_path / "src", 2)
    recover(lib_dir)
    full = subprocess.run(
        [strace, "-o", os.devnull, "-e", "trace=write", "-e", "inject=write:error=ENOSPC:when=1",
         sys.executable, str(HERE / "driver.py"), str(lib_dir), *map(str, files)],
        capture_output=True, text=True, env=child_env(), timeout=120,
    )  # fmt: skip
    assert full.returncode == 0, full.stderr
    assert len(read_acks(full.stdout)) == len(files)
    denied = subprocess.run(
        [strace, "-f", "-o", os.devnull, "-P", str(lib_dir / "lock"), "-e", "trace=openat",
         "-e", "inject=openat:error=EACCES",
         *uploader_cmd("add", "--library", lib_dir, *files)],
        capture_output=True, text=True, env=child_env(), timeout=120,
    )  # fmt: skip
    assert denied.returncode == 2
    assert "cannot open the library" in denied.stderr
    assert "permission denied" in denied.stderr
    assert "Traceback" not in denied.stderr
    check(lib_dir, acknowledged=read_acks(full.stdout), recovered=True)
    tally(faults_injected=2)
