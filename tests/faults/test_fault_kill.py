"""SIGKILL of `uploader add` at random moments during ingest of hundreds of files, many
rounds; recovery at the next open; re-adding converges with nothing lost or doubled."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from faultkit import child_env, make_corpus, recover, run_add, tally, uploader_cmd
from invariants import check, read_acks, snapshot_sources

from uploader.core.library import Library

FILES = 300


def kill_rounds(root: Path, files: list[Path], rounds: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    sources = snapshot_sources(files)
    acks: list[dict[str, Any]] = []
    killed = 0
    for _ in range(rounds):
        order = files[:]
        rng.shuffle(order)
        order = order[: rng.randint(len(order) // 2, len(order))]
        proc = subprocess.Popen(
            uploader_cmd("add", "--json", "--library", root, *order),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        # python starts in about half a second; the kill lands anywhere after that
        delay = rng.uniform(0.2, 3.0)
        try:
            out, err = proc.communicate(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            killed += 1
        else:
            assert proc.returncode == 0, err
        acks += read_acks(out)
        # at the crash point, before anyone recovers: 1-4 and 7 hold already
        check(root, acknowledged=acks)
        recover(root)
        check(root, acknowledged=acks, recovered=True, sources=sources)
    proc, final = run_add(root, *files)
    assert proc.returncode == 0, proc.stderr
    acks += final
    expect = {sha for sha, _, _ in sources.values()}
    fig = check(
        root, acknowledged=acks, recovered=True, drained=True, sources=sources, expect_all=expect
    )
    assert fig.documents == len(expect)
    # a raw copy left by a kill between the switch to .zst and its unlink is collected
    # once the grace period is over
    with Library.open(root) as lib:
        lib.sweep(grace=0)
    assert check(root, recovered=True, drained=True).orphans == 0
    tally(
        kill_rounds=rounds,
        kills=killed,
        acknowledged_checked=len(acks),
        documents_checked=fig.documents,
    )
    return {"killed": killed, "acknowledged": len(acks), "documents": fig.documents}


def test_sigkill_rounds_converge(tmp_path: Path, lib_dir: Path) -> None:
    files = make_corpus(tmp_path / "src", FILES, seed=1, big=3)
    figures = kill_rounds(lib_dir, files, rounds=int(os.environ.get("FAULT_ROUNDS", "12")), seed=7)
    assert figures["killed"] > 0


@pytest.mark.slow
def test_sigkill_soak(tmp_path: Path, lib_dir: Path) -> None:
    files = make_corpus(tmp_path / "src", FILES, seed=2, big=6)
    figures = kill_rounds(lib_dir, files, rounds=150, seed=11)
    print(figures)
