"""The compression worker killed mid-job, and a lease that expires: the job is reclaimed
and finished, and the raw blob stays until the .zst is verified, durable and recorded."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from pathlib import Path

from faultkit import child_env, recover, run_add, tally, text_bytes, uploader_cmd
from invariants import check, connect_copy, snapshot_sources

from uploader.core import compression
from uploader.core.engine import Engine, Settings
from uploader.core.library import Library


def stored_raw(tmp: Path, root: Path, size: int) -> tuple[Path, str]:
    src = tmp / "big.txt"
    src.write_bytes(text_bytes(size, seed=9))
    proc, acks = run_add(root, src, extra=("--no-compress",))
    assert proc.returncode == 0, proc.stderr
    assert len(acks) == 1
    return src, acks[0]["sha256"]


def job_state(root: Path) -> tuple[str, int] | None:
    with connect_copy(root) as conn:
        row = conn.execute("SELECT state, attempts FROM job").fetchone()
    return None if row is None else (row[0], row[1])


def test_worker_killed_mid_job_keeps_the_raw_copy(tmp_path: Path, lib_dir: Path) -> None:
    src, sha = stored_raw(tmp_path, lib_dir, 48 << 20)
    sources = snapshot_sources([src])
    rng = random.Random(4)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(
            uploader_cmd("compress", "--library", lib_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env(),
        )
        # wait until the worker writes its .zst temp, then kill it somewhere in the job
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if any((lib_dir / "tmp").iterdir()):
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break  # it finished before the kill: nothing left to interrupt
        proc.kill()
        proc.wait()
        kills += 1
        fig = check(lib_dir, sources=sources)  # the raw copy is still there and whole
        state = job_state(lib_dir)
        if state is not None:
            assert state[0] == "running"  # its owner is dead; the next open reclaims it
            assert (lib_dir / "blobs" / sha[:2] / sha).exists()
        recover(lib_dir)
        check(lib_dir, recovered=True, sources=sources)
        state = job_state(lib_dir)
        assert state is None or state[0] == "queued"
        tally(compression_kills=1, documents_checked=fig.documents)
    assert kills >= 1
    done = subprocess.run(
        uploader_cmd("compress", "--library", lib_dir),
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    check(lib_dir, recovered=True, drained=True, sources=sources, expect_all=[sha])
    assert (lib_dir / "blobs" / sha[:2] / f"{sha}.zst").exists()
    assert not (lib_dir / "blobs" / sha[:2] / sha).exists()


def test_expired_lease_is_reclaimed_and_the_old_owner_cannot_finish(
    tmp_path: Path, lib_dir: Path
) -> None:
    _, sha = stored_raw(tmp_path, lib_dir, 1 << 20)
    raw = lib_dir / "blobs" / sha[:2] / sha
    with Library.open(lib_dir) as lib:
        ghost = compression.claim(lib, "ghost:1", lease=0.2)
        assert ghost is not None
        # the ghost compresses but stalls before committing; its lease runs out
        ghost_outcome = compression.compress(lib.store, ghost)
        time.sleep(0.4)
        report = lib.sweep()
        assert report.reclaimed == 1
        alive = compression.claim(lib, "alive:2", lease=60)
        assert alive is not None
        assert alive.job_id == ghost.job_id
        assert alive.attempts == 2
        # the ghost wakes up: its switch is refused and the raw copy stays
        snap = compression.finish(lib, ghost, ghost_outcome)
        assert snap.encoding == "raw"
        assert raw.exists()
        check(lib_dir)
        outcome = compression.compress(lib.store, alive)
        snap = compression.finish(lib, alive, outcome)
        assert snap.compression == "done"
    check(lib_dir, recovered=True, drained=True, expect_all=[sha])
    assert not raw.exists()


def test_claim_takes_an_expired_lease_without_a_sweep(tmp_path: Path, lib_dir: Path) -> None:
    _, sha = stored_raw(tmp_path, lib_dir, 1 << 20)
    with Library.open(lib_dir) as lib:
        ghost = compression.claim(lib, "ghost:1", lease=0.1)
        assert ghost is not None
        assert compression.claim(lib, "alive:2", lease=60) is None  # still leased
        time.sleep(0.3)
        alive = compression.claim(lib, "alive:2", lease=60)
        assert alive is not None
        assert alive.job_id == ghost.job_id
        compression.finish(lib, alive, compression.compress(lib.store, alive))
    check(lib_dir, recovered=True, drained=True, expect_all=[sha])


def test_closing_mid_job_does_not_use_up_its_attempts(tmp_path: Path, lib_dir: Path) -> None:
    """Closing the app while a big file compresses, again and again, must not make its
    compression fail for good: a clean shutdown gives the job back uncounted."""
    _, sha = stored_raw(tmp_path, lib_dir, 64 << 20)

    async def interrupted(lib: Library) -> bool:
        engine = Engine(lib, Settings(compress=True))
        await engine.start(resume=False)
        try:
            for _ in range(400):
                await asyncio.sleep(0.025)
                if any((lib_dir / "tmp").iterdir()):
                    return True  # mid-job: close now
            return False
        finally:
            await engine.close()

    closes = 0
    for _ in range(compression.MAX_JOB_ATTEMPTS + 1):
        with Library.open(lib_dir) as lib:
            if not asyncio.run(interrupted(lib)):
                break
        closes += 1
        state = job_state(lib_dir)
        if state is None:
            break  # it finished just as we closed
        assert state == ("queued", 0)
        check(lib_dir, recovered=True)
    assert closes >= 1
    done = subprocess.run(
        uploader_cmd("compress", "--library", lib_dir),
        capture_output=True, text=True, env=child_env(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    check(lib_dir, recovered=True, drained=True, expect_all=[sha])
    assert (lib_dir / "blobs" / sha[:2] / f"{sha}.zst").exists()
    tally(faults_injected=closes)
