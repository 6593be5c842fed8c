"""A one-threaded ingest through the core API, so that syscall N is the same point every run:
`python driver.py LIBRARY FILE...` stores each file, prints one JSON line per stored file
(after its commit), then works the compression queue until nothing is due."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from uploader.core import compression
from uploader.core.ingest import copy_in, discard
from uploader.core.library import Library
from uploader.core.models import UploadState
from uploader.core.retry import UploadError, describe


def main(argv: list[str]) -> int:
    root, files = Path(argv[0]), [Path(a) for a in argv[1:]]
    failed = 0
    with Library.open(root) as lib:
        for snap in lib.create_uploads((p, p.stat().st_size) for p in files):
            if not lib.start_upload(snap.id):
                continue
            staged = None
            try:
                staged = copy_in(lib.store, Path(snap.path))
                done = lib.record(snap.id, staged)
            except Exception as exc:
                if staged is not None:
                    discard(staged)
                why = describe(exc)
                done = lib.fail_upload(snap.id, why.kind, why.reason)
                failed += 1
                if not isinstance(exc, UploadError):
                    print(f"driver: {why.reason}", file=sys.stderr)
            if done.state == UploadState.UPLOADED and done.document_id is not None:
                lib.queue_compression(done.document_id)
            print(
                json.dumps(
                    {
                        "path": done.path,
                        "status": done.state,
                        "upload_id": done.id,
                        "sha256": done.sha256,
                        "size": done.size,
                        "error": done.error,
                    }
                ),
                flush=True,
            )
        compression.work(lib, retry_base=0.01)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
