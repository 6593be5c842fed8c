"""The source's file system fails (FUSE returning EIO) or vanishes (its daemon dies: the
kernel answers ENOTCONN): that file fails alone with the real cause, the rest are stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faultkit import child_env, recover, tally, text_bytes, uploader_cmd
from invariants import check, read_acks, snapshot_sources

HERE = Path(__file__).resolve().parent
SIZE = 4 << 20


@pytest.fixture
def failing_fs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    pytest.importorskip("fuse", reason="fusepy is not installed (pip install fusepy)")
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        pytest.skip("FUSE needs /dev/fuse and root here")
    point = tmp_path / "share"
    point.mkdir()
    daemon = subprocess.Popen(
        [sys.executable, str(HERE / "fusefs.py"), str(point), request.param, str(SIZE)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    deadline = time.monotonic() + 20
    while not os.path.ismount(point):
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            err = daemon.stderr.read() if daemon.stderr else ""
            pytest.skip(f"cannot mount a FUSE file system here: {err.strip()[-300:]}")
        time.sleep(0.05)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait(timeout=30)


@pytest.mark.parametrize(
    ("failing_fs", "words"),
    [
        ("eio", "an I/O error while reading the file"),
        ("die", "the file's disk or network share was disconnected"),
    ],
    indirect=["failing_fs"],
)
def test_failing_source_file_system(
    tmp_path: Path, lib_dir: Path, failing_fs: Path, words: str
) -> None:
    good = [tmp_path / f"local{i}.txt" for i in range(3)]
    for i, p in enumerate(good):
        p.write_bytes(text_bytes(80_000, seed=i))
    sources = snapshot_sources(good)
    recover(lib_dir)
    remote = failing_fs / "doc.txt"
    proc = subprocess.run(
        uploader_cmd("add", "--json", "--library", lib_dir, good[0], remote, *good[1:]),
        capture_output=True, text=True, env=child_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    got = {Path(r["path"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
    assert got["doc.txt"]["status"] == "failed"
    assert got["doc.txt"]["error"] == words
    assert all(got[p.name]["status"] == "uploaded" for p in good)
    fig = check(lib_dir, acknowledged=read_acks(proc.stdout), sources=sources, recovered=True)
    assert fig.documents == len(good)
    tally(faults_injected=1, documents_checked=fig.documents)
