"""How fast dropped files are listed: `python -m bench.listing LIB PATH [--files N]`.

Drops PATH (a folder, or with --files the first N files in it, given one by one as a
window drop does) on a started engine that uploads at the same time, and prints one JSON
line: seconds from `Engine.add` called until every file had a published snapshot (its
row committed), until `add` returned, and until every upload was final.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from uploader.core.engine import Engine, Settings
from uploader.core.events import Event, UploadSnapshot
from uploader.core.library import Library


def listing(lib: Path, paths: list[str], expect: int | None, wait: bool) -> dict[str, Any]:
    with Library.open(lib) as library:

        async def main() -> dict[str, Any]:
            engine = Engine(library, Settings(compress=False))
            await engine.start(resume=False)
            seen: set[int] = set()
            out: dict[str, Any] = {}
            t0 = time.perf_counter()

            def on(event: Event) -> None:
                if isinstance(event, UploadSnapshot) and event.id not in seen:
                    seen.add(event.id)
                    if len(seen) == 1:
                        out["first_row"] = time.perf_counter() - t0
                    if expect is not None and len(seen) == expect:
                        out["all_rows"] = time.perf_counter() - t0

            engine.subscribe(on)
            try:
                t0 = time.perf_counter()
                ids = await engine.add(paths)
                out["add_returned"] = time.perf_counter() - t0
                out.setdefault("all_rows", out["add_returned"])
                if wait:
                    snaps = await engine.wait_uploads(ids)
                    out["all_uploaded"] = time.perf_counter() - t0
                    out["uploaded"] = sum(s.state == "uploaded" for s in snaps)
            finally:
                await engine.close()
            out["files"] = len(seen)
            return out

        return asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.listing")
    p.add_argument("library", type=Path)
    p.add_argument("path", type=Path)
    p.add_argument("--files", type=int, help="drop the first N files one by one")
    p.add_argument("--no-wait", action="store_true", help="close once every row is listed")
    args = p.parse_args(argv)
    if args.files:
        paths = sorted(str(f) for f in args.path.iterdir())[: args.files]
        expect: int | None = len(paths)
    else:
        paths, expect = [str(args.path)], None
    print(json.dumps(listing(args.library, paths, expect, not args.no_wait)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
