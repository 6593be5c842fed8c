"""The invariant checker itself: it must see each kind of damage it claims to check."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from faultkit import run_add, text_bytes
from invariants import check, snapshot_sources


@pytest.fixture
def stored(tmp_path: Path, lib_dir: Path) -> tuple[Path, list[dict[str, object]], Path]:
    src = tmp_path / "doc.txt"
    src.write_bytes(text_bytes(100_000, seed=1))
    proc, acks = run_add(lib_dir, src, extra=("--no-compress",))
    assert proc.returncode == 0, proc.stderr
    check(lib_dir, acknowledged=acks)  # healthy to begin with
    sha = str(acks[0]["sha256"])
    return lib_dir, acks, lib_dir / "blobs" / sha[:2] / sha


def test_sees_a_missing_blob(stored: tuple[Path, list[dict[str, object]], Path]) -> None:
    root, acks, blob = stored
    blob.unlink()
    with pytest.raises(AssertionError, match="4/7: document 1"):
        check(root, acknowledged=acks)


def test_sees_a_partial_blob(stored: tuple[Path, list[dict[str, object]], Path]) -> None:
    root, acks, blob = stored
    data = blob.read_bytes()
    blob.write_bytes(data[: len(data) // 2])
    with pytest.raises(AssertionError, match=r"3: .* is partial or damaged"):
        check(root, acknowledged=acks)


def test_sees_debris_after_recovery(stored: tuple[Path, list[dict[str, object]], Path]) -> None:
    root, acks, _ = stored
    (root / "tmp" / "left.part").write_bytes(b"x")
    check(root, acknowledged=acks)  # before recovery, debris is allowed
    with pytest.raises(AssertionError, match="5: 1 temp files"):
        check(root, acknowledged=acks, recovered=True)


def test_sees_a_lost_acknowledgement(stored: tuple[Path, list[dict[str, object]], Path]) -> None:
    root, acks, _ = stored
    ghost = {**acks[0], "upload_id": 99, "sha256": "0" * 64}
    with pytest.raises(AssertionError, match="2: acknowledged upload 99"):
        check(root, acknowledged=[*acks, ghost])


def test_sees_a_queue_out_of_step(stored: tuple[Path, list[dict[str, object]], Path]) -> None:
    root, acks, _ = stored
    conn = sqlite3.connect(root / "library.db")
    conn.execute("UPDATE document SET compression = 'done'")
    conn.commit()
    conn.close()
    with pytest.raises(AssertionError, match="6: document 1 is done but stored raw"):
        check(root, acknowledged=acks)


def test_sees_a_changed_source(tmp_path: Path) -> None:
    p = tmp_path / "s.txt"
    p.write_bytes(b"before")
    sources = snapshot_sources([p])
    p.write_bytes(b"after!")
    root = tmp_path / "lib"
    run_add(root, tmp_path / "nothing-here")  # a library with one failed row
    with pytest.raises(AssertionError, match="8: source"):
        check(root, sources=sources)
