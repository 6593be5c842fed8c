"""Real faults in the big-file copy (the kernel copies, another thread reads the copy back
and hashes it): a disk that fills, an I/O error reading the source and one reading the
copy back. Each fails its upload alone, in its words, and leaves nothing behind."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from uploader.core import ingest
from uploader.core.library import Library
from uploader.core.retry import Kind, UploadError

from .conftest import cli, text_bytes, tmpfs

SIZE = ingest.OVERLAP_FROM + (4 << 20) + 4321


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs holding both the source and the library: the kernel copies between
    them (one file system), and it can really fill up."""
    yield from tmpfs(tmp_path / "disk", "64m")


def test_disk_fills_during_a_kernel_copy(disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = disk / "big.txt"
    big.write_bytes(text_bytes(SIZE))
    before = big.read_bytes()
    ballast = disk / "ballast"
    real_check = ingest.check_space

    def check_then_fill(store: object, size: int) -> None:
        real_check(store, size)  # type: ignore[arg-type]
        with open(ballast, "wb") as f:  # another program fills the disk as the copy starts
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
            except OSError:
                pass

    with Library.open(disk / "lib") as lib:
        monkeypatch.setattr(ingest, "check_space", check_then_fill)
        with pytest.raises(UploadError) as err:
            ingest.copy_in(lib.store, big)
        assert err.value.kind == Kind.DISK_FULL
        assert err.value.reason == "the disk is full"
        assert list(lib.store.iter_temps()) == []
        monkeypatch.setattr(ingest, "check_space", real_check)
        ballast.unlink()
        staged = ingest.copy_in(lib.store, big)  # once space is freed it works
        assert staged.size == SIZE
        assert staged.temp.read_bytes() == before
    assert big.read_bytes() == before


def _strace(*args: str) -> list[str]:
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    return ["strace", "-f", "-qq", "-o", "/dev/null", *args]


def _add(lib_dir: Path, good: Path, bad: Path, trace: list[str]) -> dict[str, dict[str, str]]:
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
        wrap=lambda cmd: [*trace, *cmd],
    )
    assert proc.returncode == 1, proc.stderr
    return {o["name"]: o for o in map(json.loads, proc.stdout.splitlines())}


def test_io_error_reading_a_big_source(lib_dir: Path, src: Path) -> None:
    good = src / "good.txt"
    good.write_bytes(text_bytes(30_000, 1))
    bad = src / "bad.txt"
    bad.write_bytes(text_bytes(SIZE, 2))
    before = bad.read_bytes()
    # from the second call on, the kernel copy and the reads of that file fail with EIO,
    # as a failing disk would: the chunk retried through Python says which side failed
    trace = _strace(
        "-P",
        str(bad),
        "-e",
        "trace=copy_file_range,read,readv",
        "-e",
        "inject=copy_file_range,read,readv:error=EIO:when=2+",
    )
    out = _add(lib_dir, good, bad, trace)
    assert out["good.txt"]["status"] == "uploaded"
    assert out["bad.txt"]["status"] == "failed"
    assert out["bad.txt"]["error"] == "an I/O error while reading the file"
    assert bad.read_bytes() == before
    assert not list((lib_dir / "tmp").iterdir())
    with Library.open(lib_dir) as lib:
        assert [d.name for d in lib.documents()] == ["good.txt"]
        assert lib.doctor().ok


def test_io_error_reading_the_copy_back(lib_dir: Path, src: Path) -> None:
    good = src / "good.txt"
    good.write_bytes(text_bytes(30_000, 3))
    bad = src / "bad.txt"
    bad.write_bytes(text_bytes(SIZE, 4))
    # only the hashing thread reads with preadv2 (os.preadv: the copy in tmp/, read back)
    trace = _strace("-e", "trace=preadv2", "-e", "inject=preadv2:error=EIO:when=3")
    out = _add(lib_dir, good, bad, trace)
    assert out["good.txt"]["status"] == "uploaded"
    assert out["bad.txt"]["status"] == "failed"
    assert out["bad.txt"]["error"] == "an I/O error while saving to the library"
    assert not list((lib_dir / "tmp").iterdir())
    with Library.open(lib_dir) as lib:
        assert [d.name for d in lib.documents()] == ["good.txt"]
        assert lib.doctor().ok
