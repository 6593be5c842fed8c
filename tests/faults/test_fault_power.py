"""Power loss: the library on a loop-mounted ext4 image; the writer is frozen (SIGSTOP) at
a random moment and the image copied as the device holds it (what was not flushed is
lost), then e2fsck, mount the copy, open it (recovery) and check. Slow: behind a marker."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from faultkit import child_env, make_corpus, need, recover, tally, uploader_cmd
from invariants import check, read_acks, snapshot_sources

pytestmark = pytest.mark.slow


def sh(*cmd: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    need("mkfs.ext4")
    need("e2fsck")
    if os.geteuid() != 0:
        pytest.skip("loop mounts need root")
    image = tmp_path / "disk.img"
    point = tmp_path / "mnt"
    point.mkdir()
    with open(image, "wb") as f:
        f.truncate(96 << 20)
    assert sh("mkfs.ext4", "-q", "-m", "0", "-F", image).returncode == 0
    r = sh("mount", "-o", "loop", image, point)
    if r.returncode != 0:
        pytest.skip(f"cannot loop-mount an ext4 image here: {r.stderr.strip()}")
    try:
        yield image, point
    finally:
        sh("umount", "-l", point)


def _read_into(stream: IO[str], lines: list[str]) -> None:
    lines.extend(iter(stream.readline, ""))


def test_power_loss_rounds(tmp_path: Path, ext4: tuple[Path, Path]) -> None:
    image, point = ext4
    files = make_corpus(tmp_path / "src", 150, seed=3, big=2)
    sources = snapshot_sources(files)
    root = point / "library"
    rng = random.Random(13)
    acks: list[dict[str, object]] = []
    rounds = 15
    for n in range(rounds):
        proc = subprocess.Popen(
            uploader_cmd("add", "--json", "--library", root, *files),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=child_env(),
        )
        lines: list[str] = []
        assert proc.stdout is not None
        reader = threading.Thread(target=_read_into, args=(proc.stdout, lines))
        reader.start()
        time.sleep(rng.uniform(0.5, 4.0))
        frozen = proc.poll() is None
        if frozen:
            proc.send_signal(signal.SIGSTOP)
        time.sleep(0.3)  # let the reader take what the writer had printed
        seen = read_acks("".join(lines))
        # the device as it is now: what the file system has not flushed is lost
        copy = tmp_path / f"power{n}.img"
        shutil.copyfile(image, copy)
        if frozen:
            proc.kill()
        proc.wait()
        reader.join()
        fsck = sh("e2fsck", "-f", "-y", copy)
        assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr
        mnt = tmp_path / f"power{n}"
        mnt.mkdir()
        assert sh("mount", "-o", "loop", copy, mnt).returncode == 0
        try:
            lost = mnt / "library"
            if (lost / "library.db").exists():
                check(lost, acknowledged=seen, sources=sources)
                recover(lost)
                check(lost, acknowledged=seen, sources=sources, recovered=True)
            else:
                assert not seen
        finally:
            sh("umount", mnt)
            copy.unlink()
        # the real disk goes on from the killed writer, as after kill -9
        acks += read_acks("".join(lines))
        recover(root)
        check(root, acknowledged=acks, sources=sources, recovered=True)
        tally(power_losses=1, acknowledged_checked=len(seen))
