"""Real faults at the critical path: a disk that fills mid-copy, an I/O error reading the
source, a path longer than the system allows. Each fails alone with its words."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from uploader.core.ingest import copy_in
from uploader.core.library import Library
from uploader.core.retry import Kind, UploadError

from .conftest import cli, text_bytes, tmpfs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs: a real file system that can really fill up."""
    yield from tmpfs(tmp_path / "disk", "24m")


def test_disk_fills_during_the_copy(small_disk: Path, src: Path) -> None:
    big = src / "big.txt"
    big.write_bytes(text_bytes(10 << 20))
    before = big.read_bytes()
    ballast = small_disk / "ballast"
    with Library.open(small_disk / "lib") as lib:

        def fill(done: int) -> None:  # another program fills the disk while we copy
            if not ballast.exists():
                with open(ballast, "wb") as f:
                    try:
                        while True:
                            f.write(b"\0" * (1 << 20))
                    except OSError:
                        pass

        with pytest.raises(UploadError) as err:
            copy_in(lib.store, big, progress=fill)
        assert err.value.kind == Kind.DISK_FULL
        assert err.value.reason == "the disk is full"
        assert list(lib.store.iter_temps()) == []
        assert list(lib.store.iter_blobs()) == []
        ballast.unlink()
        staged = copy_in(lib.store, big)  # after space is freed it works
        assert staged.size == len(before)
    assert big.read_bytes() == before


def test_disk_full_in_a_batch_then_retry(small_disk: Path, src: Path) -> None:
    lib_dir = small_disk / "lib"
    small = []
    for i in range(3):
        p = src / f"small{i}.txt"
        p.write_bytes(text_bytes(20_000, i))
        small.append(p)
    big = src / "big.txt"
    big.write_bytes(text_bytes(12 << 20, 99))
    assert cli("add", "--no-compress", "--library", lib_dir, *small).returncode == 0
    free = shutil.disk_usage(small_disk).free
    with open(small_disk / "ballast", "wb") as f:
        f.write(b"\0" * (free - (16 << 20)))  # leaves 16 MiB: the check passes for 12 MiB
    proc = cli("add", "--json", "--no-compress", "--library", lib_dir, big, src / "small0.txt")
    out = {o["name"]: o for o in map(json.loads, proc.stdout.splitlines())}
    # 12 MiB of copy + 8 MiB reserve > 16 MiB free: refused before copying anything
    assert out["big.txt"]["status"] == "failed"
    assert out["big.txt"]["error"].startswith("not enough free space: needs 12.6 MB,")
    assert out["small0.txt"]["status"] == "uploaded"
    assert proc.returncode == 1
    (small_disk / "ballast").unlink()
    retry = cli("retry", "--failed", "--json", "--library", lib_dir)
    assert retry.returncode == 0, retry.stderr
    assert json.loads(retry.stdout.splitlines()[0])["status"] == "uploaded"
    assert not os.listdir(lib_dir / "tmp")


def test_io_error_reading_the_source(lib_dir: Path, src: Path) -> None:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    good = src / "good.txt"
    good.write_bytes(text_bytes(30_000, 1))
    bad = src / "bad.txt"
    bad.write_bytes(text_bytes(3 << 20, 2))
    before = bad.read_bytes()

    def inject_eio(cmd: list[str]) -> list[str]:
        # the second read of that one file fails with EIO, as a failing disk would
        return [
            "strace",
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-P",
            str(bad),
            "-e",
            "trace=read,readv",
            "-e",
            "inject=read,readv:error=EIO:when=2",
            *cmd,
        ]

    proc = cli(
        "add",
        "--json",
        "--no-compress",
        "--jobs",
        "1",
        "--library",
        lib_dir,
        good,
        bad,
        wrap=inject_eio,
    )
    out = {o["name"]: o for o in map(json.loads, proc.stdout.splitlines())}
    assert proc.returncode == 1, proc.stderr
    assert out["good.txt"]["status"] == "uploaded"
    assert out["bad.txt"]["status"] == "failed"
    assert out["bad.txt"]["error"] == "an I/O error while reading the file"
    assert bad.read_bytes() == before
    with Library.open(lib_dir) as lib:
        assert [d.name for d in lib.documents()] == ["good.txt"]
        assert lib.doctor().ok


def test_path_longer_than_the_system_allows(library: Library, tmp_path: Path) -> None:
    """A file whose full path exceeds PATH_MAX: built with dir_fd, one level at a time."""
    level = "d" * 200
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(22):  # 22 × 201 bytes > 4096
            os.mkdir(level, dir_fd=fd)
            nfd = os.open(level, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        wfd = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, b"deep")
        os.close(wfd)
    finally:
        os.close(fd)
    deep = tmp_path.joinpath(*[level] * 22, "deep.txt")
    assert len(str(deep)) > 4096
    with pytest.raises(UploadError) as err:
        copy_in(library.store, deep)
    assert err.value.kind == Kind.NAME_TOO_LONG
    assert err.value.reason == "the name is too long"
