"""Clock jumps (libfaketime on one process): a backoff or a lease written under a clock far
ahead or behind must not park a job for a year nor let it be done twice differently."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import child_env, need, run_add, tally, text_bytes, uploader_cmd
from invariants import check, connect_copy, snapshot_sources

WORK_ONCE = (
    "import sys\n"
    "from uploader.core.library import Library\n"
    "from uploader.core import compression\n"
    "with Library.open(sys.argv[1]) as lib:\n"
    "    compression.work(lib)\n"
)


def faketime_env(offset: str) -> dict[str, str]:
    need("faketime")
    lib = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
    if not lib.exists():
        pytest.skip("libfaketime.so.1 is not where Debian puts it")
    return child_env(LD_PRELOAD=str(lib), FAKETIME=offset, FAKETIME_DONT_FAKE_MONOTONIC="1")


@pytest.mark.parametrize("offset", ["+365d", "-365d"])
def test_failed_job_under_a_jumped_clock_is_not_parked(
    tmp_path: Path, lib_dir: Path, offset: str
) -> None:
    strace = need("strace")
    src = tmp_path / "doc.txt"
    src.write_bytes(text_bytes(2 << 20, seed=3))
    sources = snapshot_sources([src])
    proc, acks = run_add(lib_dir, src, extra=("--no-compress",))
    assert proc.returncode == 0, proc.stderr
    # one compression attempt under the jumped clock, its fsync failing: it backs off
    r = subprocess.run(
        [strace, "-f", "-o", "/dev/null", "-e", "trace=fsync", "-e",
         "inject=fsync:error=EIO:when=1", sys.executable, "-c", WORK_ONCE, str(lib_dir)],
        capture_output=True, text=True, env=faketime_env(offset), timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    with connect_copy(lib_dir) as conn:
        state, attempts, error = conn.execute(
            "SELECT state, attempts, last_error FROM job"
        ).fetchone()
    assert (state, attempts) == ("queued", 1)
    assert "I/O error" in error
    check(lib_dir, acknowledged=acks, sources=sources)
    # back on the real clock, the queue drains in bounded time
    done = subprocess.run(
        uploader_cmd("compress", "--library", lib_dir),
        capture_output=True, text=True, env=child_env(), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    fig = check(lib_dir, acknowledged=acks, recovered=True, drained=True, sources=sources)
    with connect_copy(lib_dir) as conn:
        assert conn.execute("SELECT compression FROM document").fetchone() == ("done",)
    tally(clock_jumps=1, faults_injected=1, documents_checked=fig.documents)


def test_killed_under_a_clock_behind_is_reclaimed(tmp_path: Path, lib_dir: Path) -> None:
    """A lease written by a clock a day behind is long expired for everyone else; one a
    day ahead would never expire: both are reclaimed at the next open."""
    src = tmp_path / "doc.txt"
    src.write_bytes(text_bytes(1 << 20, seed=4))
    proc, acks = run_add(lib_dir, src, extra=("--no-compress",))
    assert proc.returncode == 0, proc.stderr
    for offset in ("-1d", "+1d"):
        claim = (
            "import sys, os\n"
            "from uploader.core.library import Library\n"
            "from uploader.core import compression\n"
            "lib = Library.open(sys.argv[1])\n"
            "assert compression.claim(lib, 'jumped:1') is not None\n"
            "os._exit(0)\n"  # dies holding the lease
        )
        r = subprocess.run(
            [sys.executable, "-c", claim, str(lib_dir)],
            capture_output=True, text=True, env=faketime_env(offset), timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        with connect_copy(lib_dir) as conn:
            assert conn.execute("SELECT state FROM job").fetchone() == ("running",)
        check(lib_dir, acknowledged=acks)
    done = subprocess.run(
        uploader_cmd("compress", "--library", lib_dir),
        capture_output=True, text=True, env=child_env(), timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    check(lib_dir, acknowledged=acks, recovered=True, drained=True)
