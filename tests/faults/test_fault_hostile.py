"""Hostile inputs in one batch: each bad one fails alone with its reason, in bounded time
(the FIFO does not hang), the good ones are stored, odd names included."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from faultkit import child_env, recover, tally, text_bytes, uploader_cmd
from invariants import check, read_acks, snapshot_sources

from uploader.core.ingest import copy_in
from uploader.core.library import Library
from uploader.core.retry import UploadError


@pytest.fixture
def hostile(tmp_path: Path) -> dict[str, bytes]:
    d = tmp_path / "in"
    d.mkdir()
    os.mkfifo(d / "fifo")
    os.symlink(d / "nowhere", d / "dangling")
    os.symlink(d / "loop2", d / "loop1")
    os.symlink(d / "loop1", d / "loop2")
    (d / "empty").write_bytes(b"")
    with open(d / "sparse", "wb") as f:
        f.truncate(100 << 30)
    good = {
        "plain.txt": text_bytes(30_000, seed=1),
        "new\nline.txt": text_bytes(20_000, seed=2),
        ("x" * 251) + ".txt": text_bytes(10_000, seed=3),
    }
    for name, data in good.items():
        (d / name).write_bytes(data)
    with open(os.fsencode(d) + b"/bad\xff\xfe.txt", "wb") as f:
        f.write(text_bytes(15_000, seed=4))
    return {
        "fifo": b"not a regular file: it is a named pipe (FIFO)",
        "dangling": b"the symbolic link points to nothing (dangling symlink)",
        "loop1": b"too many levels of symbolic links (a symlink loop)",
        "sparse": b"not enough free space",
    }


def test_hostile_batch(tmp_path: Path, lib_dir: Path, hostile: dict[str, bytes]) -> None:
    d = tmp_path / "in"
    names = sorted(os.listdir(os.fsencode(d)))
    paths = [os.path.join(os.fsencode(d), n) for n in names]
    regular = [Path(os.fsdecode(p)) for p in paths if not os.path.islink(p) and os.path.isfile(p)]
    regular = [p for p in regular if p.name != "sparse"]
    sources = snapshot_sources(regular)
    recover(lib_dir)
    extra = [b"/dev/zero", b"/proc/self/status"]
    proc = subprocess.run(
        [os.fsencode(a) for a in uploader_cmd("add", "--json", "--library", lib_dir)]
        + paths + extra,
        capture_output=True, env=child_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    got = {os.path.basename(r["path"]): r for r in map(json.loads, proc.stdout.splitlines())}
    assert len(got) == len(paths) + len(extra)
    for name, words in hostile.items():
        assert got[name]["status"] == "failed", got[name]
        assert words.decode() in got[name]["error"], got[name]
    assert got["zero"]["error"] == "not a regular file: it is a device"
    assert got["status"]["status"] == "failed"  # /proc: its size says 0, it reads more
    stored = {n for n, r in got.items() if r["status"] == "uploaded"}
    assert len(stored) == 5  # plain, newline, 255 bytes, bad UTF-8, empty
    assert got["empty"]["size"] == 0
    assert any("\n" in n for n in stored)
    assert any(len(os.fsencode(n)) == 255 for n in stored)
    fig = check(
        lib_dir, acknowledged=read_acks(proc.stdout.decode()), sources=sources, recovered=True
    )
    for cmd in ("status", "list"):
        for fmt in ((), ("--json",)):
            r = subprocess.run(
                uploader_cmd(cmd, *fmt, "--library", lib_dir),
                capture_output=True, env=child_env(), timeout=60,
            )  # fmt: skip
            assert r.returncode == 0, r.stderr
    tally(faults_injected=len(hostile) + len(extra), documents_checked=fig.documents)


def test_odd_names_print_in_text_mode(tmp_path: Path, lib_dir: Path) -> None:
    bad = Path(os.fsdecode(os.fsencode(tmp_path) + b"/bad\xff.txt"))
    bad.write_bytes(b"hello")
    r = subprocess.run(
        uploader_cmd("add", "--library", lib_dir, bad),
        capture_output=True, env=child_env(), timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert b"uploaded" in r.stdout


def test_folder_and_device_given_to_the_copy(tmp_path: Path, lib_dir: Path) -> None:
    with Library.open(lib_dir) as lib:
        for path, words in ((tmp_path, "it is a folder"), (Path("/dev/null"), "a device")):
            with pytest.raises(UploadError, match=words):
                copy_in(lib.store, path)
        assert not list(lib.store.iter_temps())
