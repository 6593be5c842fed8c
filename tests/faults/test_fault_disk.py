"""Disk full: a small tmpfs with a ballast file, and ENOSPC injected with strace into the
copy and into SQLite's own writes; RLIMIT_FSIZE (EFBIG) in a child."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from faultkit import child_env, need, recover, run_add, tally, text_bytes, uploader_cmd
from invariants import check, connect_copy, read_acks, snapshot_sources

from uploader.core import compression
from uploader.core.library import Library

HERE = Path(__file__).resolve().parent


def fill(folder: Path, leave: int) -> Path:
    """A ballast file that leaves about `leave` bytes free on folder's file system."""
    ballast = folder / "ballast"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(ballast, "wb") as f:
        f.truncate(0)
        block = b"\0" * (1 << 20)
        todo = max(0, free - leave)
        while todo > 0:
            f.write(block[: min(todo, len(block))])
            todo -= min(todo, len(block))
    return ballast


def statuses(root: Path) -> dict[str, tuple[str, str | None]]:
    with connect_copy(root) as conn:
        return {
            os.path.basename(p): (s, e)
            for p, s, e in conn.execute("SELECT path, state, error FROM upload ORDER BY id")
        }


def test_no_room_fails_the_big_file_alone_and_a_retry_succeeds(tmp_path: Path, tmpfs) -> None:
    disk = tmpfs("40m")
    root = disk / "library"
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.txt"
    big.write_bytes(text_bytes(12 << 20, seed=1))
    small = [src / f"small{i}.txt" for i in range(5)]
    for i, p in enumerate(small):
        p.write_bytes(text_bytes(20_000, seed=10 + i))
    sources = snapshot_sources([big, *small])
    recover(root)
    ballast = fill(disk, leave=14 << 20)
    proc, acks = run_add(root, big, *small, extra=("--no-compress",))
    assert proc.returncode == 1, proc.stderr
    rows = statuses(root)
    assert rows["big.txt"][0] == "failed"
    assert "not enough free space" in rows["big.txt"][1]
    assert {name for name, (state, _) in rows.items() if state == "uploaded"} == {
        p.name for p in small
    }
    check(root, acknowledged=acks, sources=sources, recovered=True)
    ballast.unlink()
    r = subprocess.run(
        uploader_cmd("retry", "--failed", "--json", "--library", root),
        capture_output=True, text=True, env=child_env(), timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    acks += read_acks(r.stdout)
    expect = {sha for sha, _, _ in sources.values()}
    check(root, acknowledged=acks, sources=sources, recovered=True, drained=True, expect_all=expect)
    tally(faults_injected=1, documents_checked=len(expect))


def test_disk_fills_during_concurrent_copies(tmp_path: Path, tmpfs) -> None:
    """Each file passes the free-space check alone; together they do not fit: real ENOSPC
    in the middle of copies."""
    disk = tmpfs("64m")
    root = disk / "library"
    src = tmp_path / "src"
    src.mkdir()
    files = [src / f"doc{i}.bin" for i in range(4)]
    for i, p in enumerate(files):
        p.write_bytes(os.urandom(7 << 20) if i % 2 else text_bytes(7 << 20, seed=i))
    sources = snapshot_sources(files)
    recover(root)
    ballast = fill(disk, leave=22 << 20)
    proc, acks = run_add(root, *files, extra=("--no-compress", "--jobs", "4"))
    rows = statuses(root)
    failed = {n: e for n, (s, e) in rows.items() if s == "failed"}
    assert failed, rows
    # ENOSPC mid-copy, or the check before a copy that starts after the others took
    # the room: both are the disk's words, never a partial blob
    for error in failed.values():
        assert error == "the disk is full" or error.startswith("not enough free space"), rows
    assert len(acks) + len(failed) == len(files), (rows, proc.stderr)
    # on a full disk queueing a compression may fail too: a stored document may be left
    # "not queued" until a sweep can write again, so this check is the one before recovery
    check(root, acknowledged=acks, sources=sources, recovered=False)
    assert not list((root / "tmp").iterdir())
    assert "uploading" not in {s for s, _ in rows.values()}
    ballast.unlink()
    r = subprocess.run(
        uploader_cmd("retry", "--failed", "--json", "--library", root),
        capture_output=True, text=True, env=child_env(), timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    acks += read_acks(r.stdout)
    expect = {sha for sha, _, _ in sources.values()}
    check(root, acknowledged=acks, sources=sources, recovered=True, drained=True, expect_all=expect)
    tally(faults_injected=len(failed), documents_checked=len(expect))


def driver(root: Path, files: list[Path], strace: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [*strace, sys.executable, str(HERE / "driver.py"), str(root), *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=120)


def test_enospc_on_the_copy_write(tmp_path: Path, lib_dir: Path) -> None:
    strace = need("strace")
    files = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for i, p in enumerate(files):
        p.write_bytes(text_bytes(100_000, seed=i))
    sources = snapshot_sources(files)
    recover(lib_dir)  # so that the driver's first write is the lock's pid, its second the copy
    r = driver(lib_dir, files, [strace, "-f", "-o", os.devnull, "-e", "trace=write", "-e",
                                "inject=write:error=ENOSPC:when=2"])  # fmt: skip
    results = [json.loads(line) for line in r.stdout.splitlines()]
    assert results[0]["status"] == "failed"
    assert results[0]["error"] == "the disk is full"
    assert results[1]["status"] == "uploaded"
    check(lib_dir, acknowledged=read_acks(r.stdout), sources=sources, recovered=True)
    tally(faults_injected=1)


def test_enospc_in_sqlite_surfaces_the_real_cause(tmp_path: Path, lib_dir: Path) -> None:
    """From some write on, SQLite's pwrite64 fails with ENOSPC: the rows equal the
    acknowledged uploads exactly, the error says the disk is full, never 'cannot
    rollback', and once the fault clears the next run works."""
    strace = need("strace")
    files = [tmp_path / f"d{i}.txt" for i in range(6)]
    for i, p in enumerate(files):
        p.write_bytes(text_bytes(30_000, seed=i))
    sources = snapshot_sources(files)
    expect = {sha for sha, _, _ in sources.values()}
    recover(lib_dir)
    points = 0
    for n in (1, 5, 12, 20, 33, 50):
        root = tmp_path / f"lib{n}"
        recover(root)
        r = subprocess.run(
            [strace, "-f", "-o", os.devnull, "-e", "trace=pwrite64", "-e",
             f"inject=pwrite64:error=ENOSPC:when={n}+",
             *uploader_cmd("add", "--json", "--no-compress", "--library", root, *files)],
            capture_output=True, text=True, env=child_env(), timeout=120,
        )  # fmt: skip
        acks = read_acks(r.stdout)
        text = r.stdout + r.stderr
        assert "rollback" not in text, text
        assert "Traceback" not in text, text
        if len(acks) < len(files):
            assert "the disk is full" in text or "I/O error" in text, text
        assert "damaged" not in text, text
        check(root, acknowledged=acks, sources=sources)
        with connect_copy(root) as conn:
            stored = {u for (u,) in conn.execute("SELECT id FROM upload WHERE state='uploaded'")}
        assert stored == {a["upload_id"] for a in acks}
        recover(root)
        proc, more = run_add(root, *files)
        assert proc.returncode == 0, proc.stderr
        check(
            root,
            acknowledged=acks + more,
            sources=sources,
            recovered=True,
            drained=True,
            expect_all=expect,
        )
        points += 1
    tally(faults_injected=points, documents_checked=points * len(expect))


def test_compression_on_a_full_disk_keeps_the_original_and_backs_off(tmp_path: Path, tmpfs) -> None:
    disk = tmpfs("24m")
    root = disk / "library"
    src = tmp_path / "doc.bin"
    # compresses to about half: its .zst cannot fit in what is left
    src.write_bytes(b"".join(os.urandom(4096) + bytes(4096) for _ in range(768)))
    proc, acks = run_add(root, src, extra=("--no-compress",))
    assert proc.returncode == 0, proc.stderr
    ballast = fill(disk, leave=1 << 20)
    with Library.open(root) as lib:
        assert compression.work(lib) == 1
    with connect_copy(root) as conn:
        state, attempts, error = conn.execute(
            "SELECT state, attempts, last_error FROM job"
        ).fetchone()
        assert conn.execute("SELECT encoding FROM document").fetchone() == ("raw",)
    assert (state, attempts, error) == ("queued", 1, "the disk is full")
    check(root, acknowledged=acks, recovered=True)
    with Library.open(root) as lib:
        assert compression.next_due(lib) > 0  # backed off: no crash loop
        assert compression.work(lib) == 0
    ballast.unlink()
    with Library.open(root) as lib:
        lib.database.execute_sql("UPDATE job SET run_after = 0")
        assert compression.work(lib) == 1
    check(root, acknowledged=acks, recovered=True, drained=True)
    with connect_copy(root) as conn:
        assert conn.execute("SELECT compression FROM document").fetchone() == ("done",)
    tally(faults_injected=1, documents_checked=1)


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death


def test_file_size_limit_is_an_io_error_row(tmp_path: Path, lib_dir: Path) -> None:
    files = [tmp_path / "big.txt", tmp_path / "one.txt", tmp_path / "two.txt"]
    files[0].write_bytes(text_bytes(5 << 20, seed=1))
    files[1].write_bytes(text_bytes(50_000, seed=2))
    files[2].write_bytes(text_bytes(60_000, seed=3))
    sources = snapshot_sources(files)
    recover(lib_dir)
    proc = subprocess.run(
        uploader_cmd("add", "--json", "--library", lib_dir, *files),
        capture_output=True, text=True, env=child_env(), timeout=120,
        preexec_fn=_limit_file_size,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    results = {Path(r["path"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
    assert results["big.txt"]["status"] == "failed"
    assert "too large" in results["big.txt"]["error"]
    assert results["one.txt"]["status"] == results["two.txt"]["status"] == "uploaded"
    check(lib_dir, acknowledged=read_acks(proc.stdout), sources=sources, recovered=True)
    tally(faults_injected=1)


def test_opening_on_a_full_disk_says_so(tmp_path: Path, tmpfs) -> None:
    """Not 'the database is damaged': the disk is full, and the file is kept as it is."""
    disk = tmpfs("16m")
    root = disk / "library"
    small = tmp_path / "small.txt"
    small.write_bytes(text_bytes(10_000, seed=1))
    proc, acks = run_add(root, small)
    assert proc.returncode == 0, proc.stderr
    before = (root / "library.db").read_bytes()
    ballast = fill(disk, leave=0)
    r = subprocess.run(
        uploader_cmd("add", "--library", root, small),
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    assert "the disk is full" in r.stderr
    assert "damaged" not in r.stderr
    assert "Traceback" not in r.stderr
    assert (root / "library.db").read_bytes() == before
    ballast.unlink()
    check(root, acknowledged=acks)
    recover(root)
    check(root, acknowledged=acks, recovered=True, drained=True)


def test_database_full_during_compression_never_hangs_the_add(
    tmp_path: Path, lib_dir: Path
) -> None:
    """SQLite's writes fail from the N-th on, for N around the claim, the switch and the
    backoff of the compression job: `uploader add` still ends, the upload it acknowledged
    is whole, and the next run compresses it."""
    strace = need("strace")
    src = tmp_path / "a.txt"
    src.write_bytes(text_bytes(300_000, seed=1))
    sources = snapshot_sources([src])
    recover(lib_dir)
    template = tmp_path / "template"
    os.rename(lib_dir, template)
    count = tmp_path / "count"
    shutil.copytree(template, tmp_path / "counted")
    subprocess.run(
        [strace, "-f", "-c", "-o", str(count), "-e", "trace=pwrite64",
         *uploader_cmd("add", "--library", tmp_path / "counted", src)],
        check=True, capture_output=True, env=child_env(), timeout=120,
    )  # fmt: skip
    total = next(
        int(line.split()[3]) for line in count.read_text().splitlines() if "pwrite64" in line
    )
    points = 0
    for n in range(total, max(1, total - 40), -2):
        root = tmp_path / f"lib{n}"
        shutil.copytree(template, root)
        r = subprocess.run(
            [strace, "-f", "-o", os.devnull, "-e", "trace=pwrite64", "-e",
             f"inject=pwrite64:error=ENOSPC:when={n}+",
             *uploader_cmd("add", "--json", "--library", root, src)],
            capture_output=True, text=True, env=child_env(), timeout=120,
        )  # fmt: skip
        text = r.stdout + r.stderr
        assert "Traceback" not in text, text
        assert "rollback" not in text, text
        acks = read_acks(r.stdout)
        check(root, acknowledged=acks, sources=sources)
        recover(root)
        done = subprocess.run(
            uploader_cmd("add", "--json", "--library", root, src),
            capture_output=True, text=True, env=child_env(), timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        check(
            root,
            acknowledged=acks + read_acks(done.stdout),
            sources=sources,
            recovered=True,
            drained=True,
            expect_all=[sources[src][0]],
        )
        points += 1
    tally(faults_injected=points, documents_checked=points)
