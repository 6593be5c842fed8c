"""The benchmark harness at tiny sizes, so that it cannot rot. Asserts what it writes,
never how fast anything was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--mode",
            "tiny",
            "--work",
            str(tmp_path),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    for heading in ("## The machine", "## Targets", "## Figures"):
        assert heading in text
    raw = json.loads(out.with_suffix(".json").read_text())
    for key in ("hash", "big", "small", "tree", "docs", "gz", "compress", "job", "export"):
        ours = raw[key]["seconds"]["hashlib" if key == "hash" else "uploader"]
        assert len(ours) == 1, key
        assert ours[0] > 0, key
    # the core figures drove the real engine: every upload was stored
    assert raw["_results"]["small"][0]["files"] == 20
    assert raw["_results"]["job"][0]["stored"] < raw["_results"]["job"][0]["size"]
    assert raw["_results"]["export"][0]["encoding"] == "zstd"
    assert raw["paint"]["seconds"]["bare window"][0] > 0
    # the window started through the real `uploader` entry point and painted
    assert raw["paint"]["seconds"]["uploader window"][0] > 0
    # every peer that ran is compared round by round with a ratio in the report
    assert "| cp + sync |" in text
    assert "uploader ÷ contender" in text
