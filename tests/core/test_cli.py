"""The CLI contract, and the three scenarios this design exists for, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import uploader

from .conftest import ROOT, cli, pdf_bytes, text_bytes

ADD_KEYS = {
    "path",
    "name",
    "status",
    "upload_id",
    "document_id",
    "sha256",
    "size",
    "duplicate",
    "error",
    "compression",
}


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.rollback()
"""


def lines(proc: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_ten_documents_the_eighth_corrupted(lib_dir: Path, src: Path) -> None:
    files = []
    for i in range(10):
        p = src / f"doc{i:02}.pdf"
        p.write_bytes(pdf_bytes(i) if i != 7 else pdf_bytes(i)[:-7])
        files.append(p)
    proc = cli("add", "--json", "--library", lib_dir, *files)
    assert proc.returncode == 1, proc.stderr
    out = lines(proc)
    assert len(out) == 10
    assert all(set(o) == ADD_KEYS for o in out)
    by_name = {o["name"]: o for o in out}
    bad = by_name.pop("doc07.pdf")
    assert bad["status"] == "failed"
    assert bad["error"] == "corrupted (truncated PDF: no %%EOF marker)"
    assert bad["document_id"] is None
    assert {o["status"] for o in by_name.values()} == {"uploaded"}
    docs = json.loads(cli("list", "--json", "--library", lib_dir).stdout)
    assert len(docs) == 9
    assert {d["compression"] for d in docs} == {"done"}  # add compresses before it exits
    status = json.loads(cli("status", "--json", "--library", lib_dir).stdout)
    assert sorted(s["status"] for s in status) == ["failed"] + ["uploaded"] * 9
    assert set(status[0]) == {
        "upload_id",
        "path",
        "name",
        "size",
        "status",
        "error",
        "attempts",
        "document_id",
        "compression",
    }
    # upload it anyway
    retry = cli("retry", "--json", "--accept-corrupt", "--library", lib_dir, str(bad["upload_id"]))
    assert retry.returncode == 0, retry.stderr
    (again,) = lines(retry)
    assert again["status"] == "uploaded"


def test_uploads_while_another_process_holds_the_write_lock(lib_dir: Path, src: Path) -> None:
    files = []
    for i in range(8):
        p = src / f"doc{i}.txt"
        p.write_bytes(text_bytes(200_000, i))
        files.append(p)
    assert cli("status", "--library", lib_dir).returncode == 2  # no library yet
    with subprocess.Popen(
        [sys.executable, "-m", "uploader", "doctor", "--repair", "--library", str(lib_dir)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
    ) as p:
        p.wait()  # creates the library
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lib_dir / "library.db"), "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    proc = cli("add", "--json", "--library", lib_dir, *files)
    assert holder.wait() == 0
    assert time.monotonic() - started > 2  # it really had to wait for the lock
    assert proc.returncode == 0, proc.stderr
    assert {o["status"] for o in lines(proc)} == {"uploaded"}
    docs = json.loads(cli("list", "--json", "--library", lib_dir).stdout)
    assert len(docs) == 8
    # compressed, or queued again by the sweep
    assert {d["compression"] for d in docs} <= {"done", "pending", "not_queued"}
    cli("compress", "--library", lib_dir)
    docs = json.loads(cli("list", "--json", "--library", lib_dir).stdout)
    assert {d["compression"] for d in docs} == {"done"}


def test_no_compress_then_compress_later(lib_dir: Path, src: Path, tmp_path: Path) -> None:
    files = []
    for i in range(3):
        p = src / f"doc{i}.txt"
        p.write_bytes(text_bytes(300_000, i))
        files.append(p)
    proc = cli("add", "--json", "--no-compress", "--library", lib_dir, *files)
    assert proc.returncode == 0, proc.stderr
    assert {o["compression"] for o in lines(proc)} == {"pending"}
    docs = json.loads(cli("list", "--json", "--library", lib_dir).stdout)
    assert {d["compression"] for d in docs} == {"pending"}
    assert all(d["stored_size"] == d["size"] for d in docs)
    assert cli("compress", "--library", lib_dir).returncode == 0
    docs = json.loads(cli("list", "--json", "--library", lib_dir).stdout)
    assert {d["compression"] for d in docs} == {"done"}
    assert all(d["stored_size"] < d["size"] for d in docs)
    for d in docs:
        dest = tmp_path / f"out-{d['document_id']}"
        exp = cli("export", "--library", lib_dir, str(d["document_id"]), dest)
        assert exp.returncode == 0, exp.stderr
        assert dest.read_bytes() == (src / str(d["name"])).read_bytes()


def test_bad_usage_exits_2_and_changes_nothing(lib_dir: Path, src: Path) -> None:
    assert cli("add", "--library", lib_dir).returncode == 2  # no PATH
    assert cli("add", "--jobs", "0", "--library", lib_dir, src).returncode == 2
    assert cli("retry", "--library", lib_dir).returncode == 2  # neither ids nor --failed
    assert not lib_dir.exists()  # nothing was created by bad usage
    p = src / "a.txt"
    p.write_text("a")
    assert cli("add", "--library", lib_dir, p).returncode == 0
    proc = cli("retry", "--library", lib_dir, "999")
    assert proc.returncode == 2
    assert "no such upload: 999" in proc.stderr
    proc = cli("export", "--library", lib_dir, "42", src / "out")
    assert proc.returncode == 2
    assert "no document 42" in proc.stderr
    assert cli("list", "--library", "/nonexistent/lib").returncode == 2


def test_version() -> None:
    proc = cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"uploader {uploader.__version__}"


def test_doctor_json(lib_dir: Path, src: Path) -> None:
    p = src / "a.txt"
    p.write_bytes(text_bytes(100_000))
    cli("add", "--library", lib_dir, p)
    report = json.loads(cli("doctor", "--json", "--library", lib_dir).stdout)
    assert report == {"ok": True, "problems": [], "repaired": 0}
    (blob,) = [f for f in (lib_dir / "blobs").rglob("*") if f.is_file()]
    blob.write_bytes(b"tampered")
    proc = cli("doctor", "--json", "--library", lib_dir)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert report["problems"][0]["kind"] == "blob"
    fixed = json.loads(cli("doctor", "--repair", "--json", "--library", lib_dir).stdout)
    assert fixed["repaired"] >= 1
    status = json.loads(cli("status", "--json", "--library", lib_dir).stdout)
    assert status[0]["status"] == "failed"  # a visible row that can be retried
    assert cli("retry", "--failed", "--library", lib_dir).returncode == 0
    assert json.loads(cli("doctor", "--json", "--library", lib_dir).stdout)["ok"] is True


def test_default_library_from_environment(tmp_path: Path, src: Path) -> None:
    p = src / "a.txt"
    p.write_text("hello")
    env = {"UPLOADER_LIBRARY": str(tmp_path / "envlib")}
    assert cli("add", p, env=env).returncode == 0
    assert (tmp_path / "envlib" / "library.db").exists()
    home = tmp_path / "home"
    env2 = {"HOME": str(home), "XDG_DATA_HOME": str(home / "data"), "UPLOADER_LIBRARY": ""}
    assert cli("add", p, env=env2).returncode == 0
    assert (home / "data" / "Uploader" / "library" / "library.db").exists()


def test_library_option_before_the_command(lib_dir: Path, src: Path, tmp_path: Path) -> None:
    p = src / "a.txt"
    p.write_text("a")
    default = tmp_path / "default-library"
    env = {"UPLOADER_LIBRARY": str(default)}
    proc = cli("--library", lib_dir, "add", "--json", p, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "uploaded"
    assert json.loads(cli("--library", lib_dir, "list", "--json", env=env).stdout)[0]["name"] == (
        "a.txt"
    )
    # the library named before the command was used, the default one never opened
    assert (lib_dir / "library.db").exists()
    assert not default.exists()
    # given after the command too, the later one wins
    other = tmp_path / "other"
    proc = cli("--library", lib_dir, "list", "--json", "--library", other, env=env)
    assert proc.returncode == 2
    assert f"no library at {other}" in proc.stderr
