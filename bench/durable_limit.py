"""The machine's own limit for durable small files, without Uploader: write 4 KiB, fsync,
rename into one of 256 shard folders, fsync the folder; N threads, no hash, no database.

`python -m bench.durable_limit DIR [FILES] [THREADS]` (DIR must not exist yet).
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time


def main(argv: list[str]) -> int:
    root = argv[0]
    n = int(argv[1]) if len(argv) > 1 else 10_000
    threads = int(argv[2]) if len(argv) > 2 else 4
    os.makedirs(f"{root}/tmp")
    for i in range(256):
        os.makedirs(f"{root}/b/{i:02x}")
    data = [hashlib.shake_256(i.to_bytes(8, "little")).digest(4096) for i in range(n)]

    def work(k: int) -> None:
        for i in range(k, n, threads):
            temp = f"{root}/tmp/{i}.part"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data[i])
            os.fsync(fd)
            os.close(fd)
            folder = f"{root}/b/{i % 256:02x}"
            os.rename(temp, f"{folder}/{i}")
            dfd = os.open(folder, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    dt = time.perf_counter() - t0
    print(f"{n:,} files, {threads} threads: {n / dt:,.0f} files/s ({dt:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
