"""SQLite I/O errors at COMMIT with libfiu (fiu-run -x, switched on and off at run time by
fiu-ctrl): the failed transaction leaves no row, the error is the real cause, and the same
process commits again once the fault clears."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from faultkit import child_env, need, recover, tally, text_bytes
from invariants import check, connect_copy, snapshot_sources

STEPS = """
import json, sys
from pathlib import Path
from uploader.core.ingest import copy_in, discard
from uploader.core.library import Library
from uploader.core.retry import describe

lib = Library.open(sys.argv[1])
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    path = Path(line.strip())
    out = {"path": str(path), "status": "failed", "upload_id": None}
    staged = None
    try:
        snap = lib.create_uploads([(path, path.stat().st_size)])[0]
        out["upload_id"] = snap.id
        lib.start_upload(snap.id)
        staged = copy_in(lib.store, path)
        print(json.dumps({"staged": True}), flush=True)
        sys.stdin.readline()  # the fault is switched on or off now: it hits the COMMIT
        done = lib.record(snap.id, staged)
        out.update(status=done.state, sha256=done.sha256, size=done.size)
    except Exception as exc:
        if staged is not None:
            discard(staged)
        out["error"] = describe(exc).reason
    print(json.dumps(out), flush=True)
lib.close()
"""

FAULTS = [
    ("posix/io/sync/fdatasync", 5, "an I/O error in the library's database"),  # EIO
    ("posix/io/rw/pwrite", 28, "the disk is full"),  # ENOSPC
]


class Child:
    def __init__(self, root: Path, ctrl: Path) -> None:
        self.fiu_ctrl = need("fiu-ctrl")
        self.ctrl = ctrl
        self.proc = subprocess.Popen(
            [need("fiu-run"), "-x", "-f", str(ctrl), sys.executable, "-c", STEPS, str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert self.read() == {"ready": True}

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the child died: {self.proc.stderr and self.proc.stderr.read()}")
        out: dict[str, Any] = json.loads(line)
        return out

    def store(self, path: Path, before_record: str | None = None) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        assert self.read() == {"staged": True}
        if before_record:
            self.fiu(before_record)
        self.proc.stdin.write("record\n")
        self.proc.stdin.flush()
        return self.read()

    def fiu(self, command: str) -> None:
        subprocess.run(
            [self.fiu_ctrl, "-f", str(self.ctrl), "-c", command, str(self.proc.pid)],
            check=True,
            timeout=30,
        )

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0


@pytest.mark.parametrize(("point", "errno", "words"), FAULTS)
def test_commit_fails_then_works_again(
    tmp_path: Path, lib_dir: Path, point: str, errno: int, words: str
) -> None:
    files = []
    for i in range(3):
        p = tmp_path / f"d{i}.txt"
        p.write_bytes(text_bytes(50_000, seed=i))
        files.append(p)
    sources = snapshot_sources(files)
    child = Child(lib_dir, tmp_path / "fiu")
    try:
        first = child.store(files[0])
        assert first["status"] == "uploaded"
        failed = child.store(files[1], f"enable name={point},failinfo={errno}")
        child.fiu(f"disable name={point}")
        third = child.store(files[2])
    finally:
        child.close()
    assert failed["status"] == "failed"
    assert failed["error"] == words
    assert third["status"] == "uploaded", third
    acks = [first, third]
    check(lib_dir, acknowledged=acks, sources=sources)
    with connect_copy(lib_dir) as conn:
        uploaded = {r[0] for r in conn.execute("SELECT id FROM upload WHERE state='uploaded'")}
        documents = conn.execute("SELECT COUNT(*) FROM document").fetchone()[0]
    # the rows equal the acknowledged uploads exactly
    assert uploaded == {a["upload_id"] for a in acks}
    assert documents == len(acks)
    recover(lib_dir)
    check(lib_dir, acknowledged=acks, sources=sources, recovered=True)
    tally(faults_injected=1, documents_checked=documents)
