"""Killed just before each durability step: `strace -e inject=SYSCALL:signal=SIGKILL:when=N`
over the N-th write, pwrite64, fsync, fdatasync, rename and unlink of a one-threaded ingest
(tests/faults/driver.py), then recovery, the invariants, and a re-run that converges."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from faultkit import child_env, need, recover, tally, uploader_cmd
from invariants import check, read_acks, snapshot_sources

HERE = Path(__file__).resolve().parent
SYSCALLS = ("write", "pwrite64", "fsync", "fdatasync", "rename", "unlink")
# pwrite64 (SQLite's pages) has by far the most points; the default run samples it
SAMPLED = {"pwrite64": 24}


def corpus(folder: Path) -> list[Path]:
    folder.mkdir()
    text = b"".join(b"line %d of text that compresses\n" % i for i in range(8000))
    (folder / "a.txt").write_bytes(text)
    (folder / "b.bin").write_bytes(random.Random(3).randbytes(50_000))
    (folder / "c.txt").write_bytes(text)  # the same content under another name
    (folder / "empty").write_bytes(b"")
    return sorted(folder.iterdir())


def driver(root: Path, files: list[Path], strace: list[str] | None = None) -> Any:
    cmd = [*(strace or []), sys.executable, str(HERE / "driver.py"), str(root), *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=120)


def count_calls(strace: str, tmp: Path, files: list[Path]) -> dict[str, int]:
    out = tmp / "count"
    trace = ["-f", "-c", "-o", str(out), "-e", "trace=" + ",".join(SYSCALLS)]
    r = driver(tmp / "counted", files, [strace, *trace])
    assert r.returncode == 0, r.stderr
    counts = dict.fromkeys(SYSCALLS, 0)
    for line in out.read_text().splitlines():
        parts = line.split()
        if parts and parts[-1] in counts:
            counts[parts[-1]] = int(parts[3])
    return counts


def crash_points(tmp: Path, *, every: bool) -> None:
    strace = need("strace")
    files = corpus(tmp / "src")
    sources = snapshot_sources(files)
    expect = {sha for sha, _, _ in sources.values()}
    counts = count_calls(strace, tmp, files)
    assert all(counts[c] for c in ("fsync", "rename", "pwrite64", "unlink")), counts
    rng = random.Random(5)
    points = 0
    for call in SYSCALLS:
        ns = list(range(1, counts[call] + 1))
        if not every and call in SAMPLED and len(ns) > SAMPLED[call]:
            ns = sorted(rng.sample(ns, SAMPLED[call]))
        for n in ns:
            root = tmp / f"lib-{call}-{n}"
            inject = f"inject={call}:signal=SIGKILL:when={n}"
            r = driver(
                root, files, [strace, "-f", "-o", os.devnull, "-e", f"trace={call}", "-e", inject]
            )
            assert r.returncode != 0, f"{inject} did not kill the driver"
            acks = read_acks(r.stdout)
            where = f"killed before {call} #{n}"
            if (root / "library.db").exists():
                try:
                    check(root, acknowledged=acks)
                    recover(root)
                    check(root, acknowledged=acks, recovered=True, sources=sources)
                except AssertionError as exc:
                    raise AssertionError(f"{where}: {exc}") from None
            again = driver(root, files)
            assert again.returncode == 0, f"{where}: the re-run failed: {again.stderr}"
            try:
                fig = check(
                    root,
                    acknowledged=acks + read_acks(again.stdout),
                    recovered=True,
                    drained=True,
                    sources=sources,
                    expect_all=expect,
                )
            except AssertionError as exc:
                raise AssertionError(f"{where}, after the re-run: {exc}") from None
            assert fig.documents == len(expect), where
            points += 1
            tally(crash_points=1, documents_checked=fig.documents)


def test_killed_before_each_durability_step(tmp_path: Path) -> None:
    crash_points(tmp_path, every=False)


@pytest.mark.slow
def test_killed_before_every_syscall(tmp_path: Path) -> None:
    crash_points(tmp_path, every=True)


def test_cli_killed_before_sampled_durability_steps(tmp_path: Path) -> None:
    """The same through the real `uploader add` (threads, engine, compression worker):
    a seeded sample of its fsync, fdatasync, rename and unlink calls."""
    strace = need("strace")
    files = corpus(tmp_path / "src")
    sources = snapshot_sources(files)
    expect = {sha for sha, _, _ in sources.values()}
    out = tmp_path / "count"
    calls = ("fsync", "fdatasync", "rename", "unlink")
    cmd = uploader_cmd("add", "--json", "--jobs", "2", "--library")
    r = subprocess.run(
        [strace, "-f", "-c", "-o", str(out), "-e", "trace=" + ",".join(calls),
         *cmd, tmp_path / "counted", *files],
        capture_output=True, text=True, env=child_env(), timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    counts = {p[-1]: int(p[3]) for p in map(str.split, out.read_text().splitlines())
              if p and p[-1] in calls}  # fmt: skip
    rng = random.Random(9)
    kills = 0
    points = [(c, n) for c in calls for n in range(1, counts.get(c, 0) + 1)]
    for call, n in sorted(rng.sample(points, min(16, len(points)))):
        root = tmp_path / f"cli-{call}-{n}"
        killed = subprocess.run(
            [strace, "-f", "-o", os.devnull, "-e", f"trace={call}",
             "-e", f"inject={call}:signal=SIGKILL:when={n}", *cmd, root, *files],
            capture_output=True, text=True, env=child_env(), timeout=120,
        )  # fmt: skip
        acks = read_acks(killed.stdout)
        # counters are per thread: a point past one thread's count may not fire
        kills += killed.returncode < 0 or killed.returncode == 137
        where = f"uploader add killed before {call} #{n}"
        try:
            if (root / "library.db").exists():
                check(root, acknowledged=acks)
                recover(root)
                check(root, acknowledged=acks, recovered=True, sources=sources)
            again = subprocess.run(
                [*cmd, root, *files], capture_output=True, text=True, env=child_env(), timeout=120
            )
            assert again.returncode == 0, again.stderr
            fig = check(
                root,
                acknowledged=acks + read_acks(again.stdout),
                recovered=True,
                drained=True,
                sources=sources,
                expect_all=expect,
            )
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None
        tally(crash_points=1, documents_checked=fig.documents)
    assert kills >= 8, f"only {kills} of the sampled points killed the CLI"
