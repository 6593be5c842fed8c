"""The command line: argument parsing and output only; every rule lives in uploader.core.

Exit codes: 0 all went well, 1 some files failed (the rest are stored), 2 bad usage or a
library that cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .core.engine import Engine, Settings
from .core.events import Event, UploadSnapshot, format_size
from .core.library import ExportError, Library, Report
from .core.models import UploadState
from .core.retry import LibraryError

OK, SOME_FAILED, UNUSABLE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # bad usage is exit code 2 with a clear line
        self.print_usage(sys.stderr)
        self.exit(UNUSABLE, f"uploader: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    def library_option(default: Any) -> _Parser:
        parser = _Parser(add_help=False)
        parser.add_argument(
            "--library",
            metavar="DIR",
            default=default,
            help="the library folder (default: $UPLOADER_LIBRARY or the user data folder)",
        )
        return parser

    # Accepted before and after the command; after it, a missing option must not reset
    # the one given before (argparse copies a subcommand's defaults over the namespace).
    common = library_option(argparse.SUPPRESS)
    json_flag = _Parser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="machine-readable output")

    p = _Parser(
        prog="uploader",
        description="Store documents safely in a library, each file on its own.",
        parents=[library_option(None)],
    )
    p.add_argument("--version", action="version", version=f"uploader {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    add = sub.add_parser("add", parents=[common, json_flag], help="upload files and folders")
    add.add_argument("paths", nargs="+", metavar="PATH")
    add.add_argument("--jobs", type=_positive, default=4, metavar="N", help="uploads at once")
    add.add_argument("--no-compress", action="store_true", help="leave compression queued")
    add.add_argument(
        "--accept-corrupt", action="store_true", help="store documents that look truncated"
    )

    sub.add_parser("status", parents=[common, json_flag], help="the uploads and their states")
    sub.add_parser("list", parents=[common, json_flag], help="the documents in the library")

    retry = sub.add_parser("retry", parents=[common, json_flag], help="retry failed uploads")
    retry.add_argument("ids", nargs="*", type=int, metavar="UPLOAD_ID")
    retry.add_argument("--failed", action="store_true", help="retry every failed upload")
    retry.add_argument(
        "--accept-corrupt", action="store_true", help="store documents that look truncated"
    )

    sub.add_parser("compress", parents=[common], help="work the compression queue until empty")

    exp = sub.add_parser("export", parents=[common], help="write a document back out, verified")
    exp.add_argument("document_id", type=int, metavar="DOCUMENT_ID")
    exp.add_argument("dest", metavar="DEST")
    exp.add_argument("--force", action="store_true", help="overwrite DEST if it exists")

    doc = sub.add_parser("doctor", parents=[common, json_flag], help="check the library")
    doc.add_argument("--repair", action="store_true", help="fix what can be fixed safely")

    test = sub.add_parser(
        "self-test", help="check this installation in a temporary library (exit 0 if all held)"
    )
    test.add_argument("--keep", action="store_true", help="keep the temporary folder")

    return p


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=os.environ.get("UPLOADER_LOG", "WARNING").upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if _first_word(argv) not in _COMMANDS and not {"-h", "--help", "--version"} & set(argv):
        return _window(argv)
    args = _parser().parse_args(argv)
    if args.command is None:
        return _window(argv)
    library = Path(args.library) if args.library else None
    try:
        handler = _COMMANDS[args.command]
        return handler(args, library)
    except LibraryError as exc:
        print(f"uploader: {exc}", file=sys.stderr)
        return UNUSABLE
    except KeyboardInterrupt:
        print("uploader: interrupted; unfinished uploads resume next time", file=sys.stderr)
        return 130


def _first_word(argv: list[str]) -> str | None:
    """The first argument that is neither an option nor the value of --library."""
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--library":
            skip = True
        elif not a.startswith("-"):
            return a
    return None


def _window(argv: list[str]) -> int:
    p = _Parser(prog="uploader", description="Open the Uploader window.")
    p.add_argument("--library", metavar="DIR")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files to add as if dropped")
    args = p.parse_args(argv)
    from .gui.app import run  # the window is optional for every other command

    return run(Path(args.library) if args.library else None, args.paths)


# -- add / retry -------------------------------------------------------------


class _Printer:
    """Prints each upload's result as soon as it is final; progress on a terminal."""

    def __init__(self, as_json: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.as_json = as_json
        self.out = out
        self.err = err
        self.mine: set[int] = set()
        self.printed: set[int] = set()
        self.tty = err.isatty() and not as_json
        self.failed = 0
        self.stored = 0

    def on_event(self, event: Event) -> None:
        if not isinstance(event, UploadSnapshot) or event.id not in self.mine:
            return
        if event.state in UploadState.FINISHED and event.id not in self.printed:
            self.printed.add(event.id)
            self._result(event)
        elif self.tty and event.state == UploadState.UPLOADING and event.size:
            pct = int(event.fraction * 100)
            print(f"\r\x1b[K{event.name}  {pct}%", end="", file=self.err, flush=True)

    def _result(self, s: UploadSnapshot) -> None:
        if s.state == UploadState.UPLOADED:
            self.stored += 1
        else:
            self.failed += 1
        if self.tty:
            print("\r\x1b[K", end="", file=self.err)
        if self.as_json:
            print(json.dumps(_add_json(s)), file=self.out, flush=True)
        elif s.state == UploadState.UPLOADED:
            what = "already in the library" if s.duplicate else "uploaded"
            print(f"{what}: {s.path} (document {s.document_id})", file=self.out, flush=True)
        else:
            print(f"{s.state}: {s.path}: {s.error}", file=self.out, flush=True)


def _add_json(s: UploadSnapshot) -> dict[str, Any]:
    status = s.state if s.state in UploadState.FINISHED else "failed"
    return {
        "path": s.path,
        "name": s.name,
        "status": status,
        "upload_id": s.id,
        "document_id": s.document_id,
        "sha256": s.sha256,
        "size": s.size,
        "duplicate": s.duplicate,
        "error": s.error,
        "compression": s.compression,
    }


def _cmd_add(args: argparse.Namespace, library: Path | None) -> int:
    settings = Settings(jobs=args.jobs, compress=not args.no_compress)

    async def go(engine: Engine, printer: _Printer) -> list[int]:
        ids: list[int] = []

        def track(event: Event) -> None:
            if isinstance(event, UploadSnapshot) and event.state == UploadState.QUEUED:
                printer.mine.add(event.id)

        stop = engine.subscribe(track)
        try:
            ids = await engine.add(args.paths, accept_corrupt=args.accept_corrupt)
        finally:
            stop()
        await engine.wait_uploads(ids)
        return ids

    return _run_engine(library, settings, args.json, go)


def _cmd_retry(args: argparse.Namespace, library: Path | None) -> int:
    if bool(args.ids) == bool(args.failed):
        print("uploader: error: give UPLOAD_IDs or --failed (not both)", file=sys.stderr)
        return UNUSABLE

    ids = None if args.failed else list(args.ids)
    accept = True if args.accept_corrupt else None
    lib = Library.open(library)
    try:
        known = lib.snapshots(ids or [])
        if ids is not None and len(known) != len(set(ids)):
            missing = sorted(set(ids) - {s.id for s in known})
            print(f"uploader: no such upload: {', '.join(map(str, missing))}", file=sys.stderr)
            lib.close()
            return UNUSABLE
    except BaseException:
        lib.close()
        raise
    for s in known:
        if s.state not in (UploadState.FAILED, UploadState.CANCELLED):
            print(f"upload {s.id} is {s.state}: nothing to retry", file=sys.stderr)

    async def go(engine: Engine, printer: _Printer) -> list[int]:
        queued = await engine.retry(ids, accept_corrupt=accept)
        printer.mine.update(queued)
        await engine.wait_uploads(queued)
        return queued

    return _run_engine(lib, Settings(), args.json, go)


def _run_engine(library: Path | Library | None, settings: Settings, as_json: bool, go: Any) -> int:
    lib = library if isinstance(library, Library) else Library.open(library)
    printer = _Printer(as_json)

    async def main() -> None:
        engine = Engine(lib, settings)
        engine.subscribe(printer.on_event)
        await engine.start(resume=False)
        try:
            await go(engine, printer)
            if settings.compress:
                await engine.drain_compression()
        finally:
            await engine.close()

    try:
        asyncio.run(main())
    finally:
        lib.close()
    return SOME_FAILED if printer.failed else OK


# -- the rest ------------------------------------------------------------------


def _cmd_status(args: argparse.Namespace, library: Path | None) -> int:
    with Library.open(library, readonly=True) as lib:
        uploads = lib.uploads()
    if args.json:
        rows = [
            {
                "upload_id": s.id,
                "path": s.path,
                "name": s.name,
                "size": s.size,
                "status": s.state,
                "error": s.error,
                "attempts": s.attempts,
                "document_id": s.document_id,
                "compression": s.compression,
            }
            for s in uploads
        ]
        print(json.dumps(rows, indent=1))
        return OK
    for s in uploads:
        size = format_size(s.size) if s.size is not None else "?"
        extra = f": {s.error}" if s.error else ""
        comp = f", compression {s.compression}" if s.compression else ""
        print(f"{s.id:>6}  {s.state:<9} {size:>9}  {s.path}{extra}{comp}")
    counts: dict[str, int] = {}
    for s in uploads:
        counts[s.state] = counts.get(s.state, 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    print(summary or "no uploads yet")
    return OK


def _cmd_list(args: argparse.Namespace, library: Path | None) -> int:
    with Library.open(library, readonly=True) as lib:
        docs = lib.documents()
    if args.json:
        rows = [
            {
                "document_id": d.id,
                "name": d.name,
                "size": d.size,
                "sha256": d.sha256,
                "stored_size": d.stored_size,
                "compression": d.compression,
                "created_at": d.created_at,
            }
            for d in docs
        ]
        print(json.dumps(rows, indent=1))
        return OK
    for d in docs:
        print(
            f"{d.id:>6}  {format_size(d.size):>9} -> {format_size(d.stored_size):>9}"
            f"  {d.compression:<10} {d.sha256[:12]}  {d.name}"
        )
    print(f"{len(docs)} documents")
    return OK


def _cmd_compress(args: argparse.Namespace, library: Path | None) -> int:
    async def go(engine: Engine, printer: _Printer) -> list[int]:
        return []

    return _run_engine(library, Settings(compress=True), False, go)


def _cmd_export(args: argparse.Namespace, library: Path | None) -> int:
    with Library.open(library, readonly=True) as lib:
        try:
            dest = lib.export(args.document_id, Path(args.dest), overwrite=args.force)
        except ExportError as exc:
            print(f"uploader: {exc}", file=sys.stderr)
            return SOME_FAILED
    print(f"exported to {dest} (verified)")
    return OK


def _cmd_doctor(args: argparse.Namespace, library: Path | None) -> int:
    with Library.open(library, readonly=not args.repair, recover=False) as lib:
        report: Report = lib.doctor(repair=args.repair)
    if args.json:
        out = {
            "ok": report.ok,
            "problems": [p.as_dict() for p in report.problems],
            "repaired": report.repaired,
        }
        print(json.dumps(out, indent=1))
    else:
        for p in report.problems:
            mark = "repaired" if p.repaired else "problem"
            print(f"{mark}: {p.message}")
        print("the library is healthy" if report.ok else "the library has problems")
    return OK if report.ok else SOME_FAILED


def _cmd_self_test(args: argparse.Namespace, library: Path | None) -> int:
    from . import selftest

    return selftest.run(keep=args.keep)


_COMMANDS = {
    "add": _cmd_add,
    "status": _cmd_status,
    "list": _cmd_list,
    "retry": _cmd_retry,
    "compress": _cmd_compress,
    "export": _cmd_export,
    "doctor": _cmd_doctor,
    "self-test": _cmd_self_test,
}
