"""A one-file FUSE file system that fails on purpose (fusepy over libfuse2):
`python fusefs.py MOUNTPOINT MODE SIZE`, MODE "eio" (reads past the first MiB fail with
EIO) or "die" (the daemon exits mid-read: the kernel answers ENOTCONN from then on)."""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from typing import Any

from fuse import FUSE, FuseOSError, Operations

FAIL_AT = 1 << 20


def content(offset: int, size: int) -> bytes:
    line = b"a line of a document on a failing share\n"
    start = offset % len(line)
    reps = (start + size) // len(line) + 2
    return (line * reps)[start : start + size]


class Failing(Operations):  # type: ignore[misc]
    def __init__(self, mode: str, size: int) -> None:
        self.mode = mode
        self.size = size
        self.mtime = time.time() - 100

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path == "/doc.txt":
            t = self.mtime
            return {
                "st_mode": stat.S_IFREG | 0o644,
                "st_nlink": 1,
                "st_size": self.size,
                "st_mtime": t,
                "st_ctime": t,
                "st_atime": t,
            }
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", "doc.txt"]

    def open(self, path: str, flags: int) -> int:
        return 0

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        if offset >= FAIL_AT:
            if self.mode == "die":
                os._exit(1)
            raise FuseOSError(errno.EIO)
        return content(offset, min(size, max(0, self.size - offset)))


if __name__ == "__main__":
    mount, mode, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    FUSE(Failing(mode, size), mount, foreground=True, nothreads=True, direct_io=True)
