"""One timed action of Uploader's core, run in a fresh process: `python -m bench.worker ...`.

Prints one JSON line with "seconds" (the action alone: not Python's start-up, not
opening the library) and counters. Drives the core through its public Python API
(Library, Engine) the way the window does; compress-only calls the compression step
itself, since no public call does only that.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from uploader.core import compression
from uploader.core.engine import Engine, Settings
from uploader.core.library import Library
from uploader.core.models import UploadState


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ingest(lib: Path, paths: list[str], jobs: int, queue: bool) -> dict[str, Any]:
    """Drop `paths` on a running engine; time until every upload is final."""
    with Library.open(lib) as library:

        async def main() -> dict[str, Any]:
            settings = Settings(jobs=jobs, compress=False, queue_compression=queue)
            engine = Engine(library, settings)
            await engine.start(resume=False)
            try:
                cpu = _cpu()
                t = time.perf_counter()
                ids = await engine.add(paths)
                snaps = await engine.wait_uploads(ids)
                seconds = time.perf_counter() - t
                cpu = _cpu() - cpu
            finally:
                await engine.close()
            failed = [s for s in snaps if s.state != UploadState.UPLOADED]
            if failed:
                raise SystemExit(f"{len(failed)} uploads failed, first: {failed[0].error}")
            return {
                "seconds": seconds,
                "files": len(snaps),
                "bytes": sum(s.size or 0 for s in snaps),
                "cpu": cpu,
            }

        return asyncio.run(main())


def compress_only(src: Path, out: Path, level: int) -> dict[str, Any]:
    size = src.stat().st_size
    cpu = _cpu()
    t = time.perf_counter()
    stored = compression._write_zstd(src, out, size, level, None, None)
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "stored": stored, "cpu": _cpu() - cpu}


def job(lib: Path, level: int) -> dict[str, Any]:
    """Work the compression queue: claim, compress, verify, publish, switch, delete raw."""
    with Library.open(lib) as library:
        cpu = _cpu()
        t = time.perf_counter()
        handled = compression.work(library, level=level)
        seconds = time.perf_counter() - t
        docs = library.documents()
        if handled != 1 or docs[0].compression != "done":
            raise SystemExit(f"the compression job did not finish: {handled} {docs}")
        return {
            "seconds": seconds,
            "stored": docs[0].stored_size,
            "size": docs[0].size,
            "cpu": _cpu() - cpu,
        }


def export(lib: Path, dest: Path) -> dict[str, Any]:
    with Library.open(lib, readonly=True) as library:
        doc = library.documents()[0]
        cpu = _cpu()
        t = time.perf_counter()
        library.export(doc.id, dest, overwrite=True)
        seconds = time.perf_counter() - t
        return {"seconds": seconds, "encoding": doc.encoding, "cpu": _cpu() - cpu}


def hash_file(path: Path) -> dict[str, Any]:
    """hashlib.sha256 over the file in 1 MiB reads: the Python hash limit."""
    digest = hashlib.sha256()
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
    return {"seconds": time.perf_counter() - t, "sha256": digest.hexdigest()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("ingest")
    a.add_argument("library", type=Path)
    a.add_argument("paths", nargs="+")
    a.add_argument("--jobs", type=int, default=4)
    a.add_argument("--no-queue", action="store_true")
    c = sub.add_parser("compress-only")
    c.add_argument("src", type=Path)
    c.add_argument("out", type=Path)
    c.add_argument("--level", type=int, default=3)
    j = sub.add_parser("job")
    j.add_argument("library", type=Path)
    j.add_argument("--level", type=int, default=3)
    e = sub.add_parser("export")
    e.add_argument("library", type=Path)
    e.add_argument("dest", type=Path)
    h = sub.add_parser("hash")
    h.add_argument("path", type=Path)
    args = p.parse_args(argv)
    if args.action == "ingest":
        result = ingest(args.library, args.paths, args.jobs, not args.no_queue)
    elif args.action == "compress-only":
        result = compress_only(args.src, args.out, args.level)
    elif args.action == "job":
        result = job(args.library, args.level)
    elif args.action == "export":
        result = export(args.library, args.dest)
    else:
        result = hash_file(args.path)
    print(json.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
