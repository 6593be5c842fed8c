"""One file in: every bad input fails alone, with its reason, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import socket
import struct
import zlib
from pathlib import Path

import pytest

from uploader.core import formats
from uploader.core.engine import Engine, Settings
from uploader.core.ingest import copy_in
from uploader.core.library import Library
from uploader.core.retry import Kind, UploadError

from .conftest import cli, pdf_bytes, text_bytes


def png_bytes(complete: bool = True) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00\x00")
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
    return out + chunk(b"IEND", b"") if complete else out


def jpeg_bytes(complete: bool = True) -> bytes:
    body = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + text_bytes(3000)
    return body + b"\xff\xd9" if complete else body


def zip_bytes(tmp: Path, complete: bool = True) -> bytes:
    import zipfile

    path = tmp / "z.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("word/document.xml", text_bytes(4000))
    data = path.read_bytes()
    path.unlink()
    return data if complete else data[: len(data) // 2]


def assert_clean(library: Library) -> None:
    """Nothing partial: no temp file, and every blob under a final name verifies."""
    assert list(library.store.iter_temps()) == []
    for sha, enc, _path in library.store.iter_blobs():
        assert library.store.verify(sha, enc) is None


def add_all(library: Library, paths: list[Path], **kw: object) -> dict[str, object]:
    async def main() -> dict[str, object]:
        engine = Engine(library, Settings(compress=False))
        await engine.start(resume=False)
        try:
            ids = await engine.add(paths, **kw)  # type: ignore[arg-type]
            snaps = await engine.wait_uploads(ids)
        finally:
            await engine.close()
        return {Path(s.path).name: s for s in snaps}

    return asyncio.run(main())


@pytest.fixture
def good(src: Path) -> list[Path]:
    files = []
    for i in range(3):
        p = src / f"good{i}.pdf"
        p.write_bytes(pdf_bytes(i))
        files.append(p)
    return files


def test_bad_inputs_fail_alone_with_reasons(library: Library, src: Path, good: list[Path]) -> None:
    fifo = src / "pipe"
    os.mkfifo(fifo)
    folder_link = src / "dangling"
    folder_link.symlink_to(src / "nowhere")
    loop = src / "loop"
    loop.symlink_to(loop)
    sock_path = src / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    truncated = src / "cut.pdf"
    truncated.write_bytes(pdf_bytes(9)[:-7])
    empty = src / "empty.txt"
    empty.write_bytes(b"")
    gone = src / "gone.txt"
    try:
        results = add_all(
            library,
            [*good, fifo, folder_link, loop, sock_path, Path("/dev/null"), truncated, empty, gone],
        )
    finally:
        sock.close()
    for p in good:
        assert results[p.name].state == "uploaded"  # type: ignore[attr-defined]
    expect = {
        "pipe": (Kind.NOT_REGULAR, "named pipe (FIFO)"),
        "dangling": (Kind.NOT_REGULAR, "points to nothing"),
        "loop": (Kind.NOT_REGULAR, "symlink loop"),
        "sock": (Kind.NOT_REGULAR, "socket"),
        "null": (Kind.NOT_REGULAR, "device"),
        "cut.pdf": (Kind.CORRUPT, "corrupted (truncated PDF: no %%EOF marker)"),
        "gone.txt": (Kind.VANISHED, "no longer there"),
    }
    for name, (kind, words) in expect.items():
        snap = results[name]
        assert snap.state == "failed", name  # type: ignore[attr-defined]
        assert snap.error_kind == kind, (name, snap.error)  # type: ignore[attr-defined]
        assert words in snap.error, (name, snap.error)  # type: ignore[attr-defined]
    assert results["empty.txt"].state == "uploaded"  # type: ignore[attr-defined]
    assert len(library.documents()) == 4  # three PDFs and the empty file
    assert_clean(library)


@pytest.mark.parametrize(
    ("name", "make", "why"),
    [
        ("a.pdf", lambda t: pdf_bytes()[:-6], "truncated PDF: no %%EOF marker"),
        ("a.png", lambda t: png_bytes(False), "truncated PNG: no IEND chunk"),
        ("a.jpg", lambda t: jpeg_bytes(False), "truncated JPEG: no end-of-image marker"),
        ("a.docx", lambda t: zip_bytes(t, False), "no end-of-central-directory record"),
    ],
)
def test_truncated_documents_detected_and_accepted_on_request(
    library: Library, src: Path, name: str, make: object, why: str
) -> None:
    path = src / name
    path.write_bytes(make(src))  # type: ignore[operator]
    with pytest.raises(UploadError) as err:
        copy_in(library.store, path)
    assert err.value.kind == Kind.CORRUPT
    assert why in err.value.reason
    assert list(library.store.iter_temps()) == []
    staged = copy_in(library.store, path, check_corrupt=False)
    assert staged.size == path.stat().st_size


@pytest.mark.parametrize(
    ("head", "tail"),
    [
        (pdf_bytes()[:64], pdf_bytes()[-100:]),
        (png_bytes()[:64], png_bytes()[-100:]),
        (jpeg_bytes()[:64], jpeg_bytes()[-100:]),
    ],
)
def test_complete_documents_are_not_flagged(head: bytes, tail: bytes) -> None:
    assert formats.corruption(head, tail) is None


def test_complete_zip_is_not_flagged(tmp_path: Path) -> None:
    data = zip_bytes(tmp_path)
    assert formats.corruption(data[:64], data[-formats.TAIL :]) is None


def test_file_changed_while_read_keeps_nothing(library: Library, src: Path) -> None:
    path = src / "growing.txt"
    path.write_bytes(text_bytes(5 << 20))
    original = path.read_bytes()
    calls = []

    def progress(done: int) -> None:
        calls.append(done)
        if len(calls) == 2:  # another program appends while we read
            with open(path, "ab") as f:
                f.write(b"appended")

    with pytest.raises(UploadError) as err:
        copy_in(library.store, path, progress=progress)
    assert err.value.kind == Kind.CHANGED
    assert err.value.reason == "the file changed while it was being read"
    assert list(library.store.iter_temps()) == []
    assert path.read_bytes() == original + b"appended"  # we never wrote to it


def test_not_enough_free_space(library: Library, src: Path) -> None:
    free = shutil.disk_usage(library.store.tmp).free
    sparse = src / "huge.bin"
    with open(sparse, "wb") as f:
        f.truncate(free + (1 << 40))  # sparse: costs nothing on disk
    with pytest.raises(UploadError) as err:
        copy_in(library.store, sparse)
    assert err.value.kind == Kind.NO_SPACE
    assert err.value.reason.startswith("not enough free space: needs ")
    assert " free" in err.value.reason
    assert list(library.store.iter_temps()) == []


def test_cancel_removes_temp(library: Library, src: Path) -> None:
    path = src / "big.txt"
    path.write_bytes(text_bytes(4 << 20))
    seen = []

    def progress(done: int) -> None:
        seen.append(done)

    with pytest.raises(UploadError) as err:
        copy_in(library.store, path, progress=progress, cancelled=lambda: len(seen) >= 1)
    assert err.value.kind == Kind.CANCELLED
    assert list(library.store.iter_temps()) == []


def test_odd_names_round_trip(library: Library, src: Path, tmp_path: Path) -> None:
    names = ["new\nline.txt", "x" * 251 + ".txt", "ünïcødé.txt"]
    paths = [src / n for n in names]
    raw = os.fsencode(src) + b"/bad-\xff\xfe.txt"  # not UTF-8
    with open(raw, "wb") as f:
        f.write(b"bytes")
    paths.append(Path(os.fsdecode(raw)))
    for i, p in enumerate(paths[:3]):
        p.write_bytes(text_bytes(100, i))
    results = add_all(library, paths)
    assert all(s.state == "uploaded" for s in results.values())  # type: ignore[attr-defined]
    # the paths come back exactly, so that a retry finds the file again
    stored = {s.path for s in library.uploads()}
    assert stored == {str(p) for p in paths}
    out = tmp_path / "out"
    out.mkdir()
    for doc in library.documents():
        dest = library.export(doc.id, out)
        assert dest.stat().st_size == doc.size


def test_permission_denied_for_a_reader_without_root_powers(
    lib_dir: Path, src: Path, good: list[Path]
) -> None:
    """As root chmod is not enough: the child drops CAP_DAC_OVERRIDE/READ_SEARCH."""
    if shutil.which("capsh") is None:
        pytest.skip("capsh (libcap2-bin) is not installed")
    secret = src / "secret.pdf"
    secret.write_bytes(pdf_bytes(7))
    secret.chmod(0o000)

    def drop_caps(cmd: list[str]) -> list[str]:
        line = " ".join(shlex.quote(c) for c in cmd)
        return ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", line]

    proc = cli(
        "add", "--json", "--no-compress", "--library", lib_dir, *good, secret, wrap=drop_caps
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    by_name = {line["name"]: line for line in lines}
    assert proc.returncode == 1, proc.stderr
    assert by_name["secret.pdf"]["status"] == "failed"
    assert by_name["secret.pdf"]["error"] == "permission denied"
    assert all(by_name[p.name]["status"] == "uploaded" for p in good)
