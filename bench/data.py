"""Deterministic test data (fixed seeds): a mixed file, many small files, a tree, an
already-compressed file, and the real documents found on the machine.

Generates into a data folder once and reuses it while its stamp matches.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import shutil
from pathlib import Path

BLOCK = 64 << 10
# bumped when a generator changes, so that old data is not reused
VERSIONS = {"mixed": "-v2"}
_VOCABULARY = (
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "so no what more said about up out into them than some could time these two may then "
    "do first any my now such like our over man me even most made after also did many "
    "before must through back years where much your way well down should because each just "
    "those people how too little state good very make world still own see men work long "
    "get here between both life being under never day same another know while last might "
    "us great old invoice contract report page section total amount date signature account "
    "balance scan"
)
WORDS = _VOCABULARY.split()


def _text_pool(rng: random.Random, size: int) -> bytes:
    """Prose-like text: words, punctuation, numbers and line breaks."""
    out: list[str] = []
    n = 0
    while n < size:
        line = " ".join(rng.choices(WORDS, k=rng.randint(6, 16)))
        if rng.random() < 0.3:
            line += f" {rng.randint(0, 99999)}.{rng.randint(0, 99):02d}"
        line = line.capitalize() + (".\n" if rng.random() < 0.8 else ",\n")
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def mixed_file(path: Path, size: int, seed: int = 1) -> Path:
    """Half text-like, half random, in alternating runs of 256 KiB to 4 MiB (like a
    document with embedded images); random runs of 64 KiB inside text would make
    libzstd 1.5.7 slower than the CLI's 1.5.4 (see bench/notes.md)."""
    rng = random.Random(seed)
    pool = _text_pool(rng, min(size, 16 << 20) // 2 + BLOCK)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as out:
        budget = {"text": size // 2, "random": size - size // 2}
        kind = "text"
        while budget["text"] + budget["random"] > 0:
            if budget[kind] == 0:
                kind = "random" if kind == "text" else "text"
            run = min(budget[kind], rng.randint(256 << 10, 4 << 20))
            budget[kind] -= run
            while run > 0:
                n = min(run, BLOCK)
                if kind == "text":
                    start = rng.randrange(0, len(pool) - BLOCK)
                    out.write(pool[start : start + n])
                else:
                    out.write(rng.randbytes(n))
                run -= n
            kind = "random" if kind == "text" else "text"
    os.replace(tmp, path)
    return path


def small_files(folder: Path, count: int, size: int = 4096, seed: int = 2) -> Path:
    """`count` distinct files of `size` bytes in one folder (distinct: no deduplication)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = str(seed).encode()
    for i in range(count):
        data = hashlib.shake_256(key + i.to_bytes(8, "little")).digest(size)
        (folder / f"file-{i:06d}.bin").write_bytes(data)
    return folder


def tree(folder: Path, count: int, seed: int = 3) -> Path:
    """`count` distinct small files (100 B to 16 KiB) in nested folders, 100 per folder."""
    rng = random.Random(seed)
    key = str(seed).encode()
    for i in range(count):
        sub = folder / f"d{i // 10000:02d}" / f"s{(i // 100) % 100:02d}"
        if i % 100 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        size = rng.randint(100, 16 << 10)
        data = hashlib.shake_256(key + i.to_bytes(8, "little")).digest(size)
        (sub / f"scan-{i:06d}.dat").write_bytes(data)
    return folder


def compressed_file(path: Path, size: int, seed: int = 4) -> Path:
    """A gzip file of about `size` bytes (text in, so it looks like a real archive)."""
    rng = random.Random(seed)
    pool = _text_pool(rng, 8 << 20)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        while raw.tell() < size:
            start = rng.randrange(0, len(pool) - BLOCK)
            gz.write(pool[start : start + BLOCK] + rng.randbytes(BLOCK // 4))
    os.replace(tmp, path)
    return path


def real_documents(folder: Path, limit_bytes: int) -> tuple[Path, int, int]:
    """Copy readable regular files from /usr/share/doc (sorted, up to `limit_bytes`).

    Returns (folder, files, bytes); (folder, 0, 0) when the machine has none.
    """
    folder.mkdir(parents=True, exist_ok=True)
    source = Path("/usr/share/doc")
    files = 0
    total = 0
    if not source.is_dir():
        return folder, 0, 0
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            size = p.stat().st_size
            if total + size > limit_bytes:
                return folder, files, total
            dest = folder / p.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(p, dest)
            except OSError:
                continue
            files += 1
            total += size
    return folder, files, total


def ensure(root: Path, sizes: dict[str, int], log: object = print) -> dict[str, Path]:
    """Generate what is missing under root; a stamp per item records its parameters."""
    root.mkdir(parents=True, exist_ok=True)
    makers = {
        "mixed": lambda p: mixed_file(p, sizes["mixed"]),
        "small": lambda p: small_files(p, sizes["small"]),
        "tree": lambda p: tree(p, sizes["tree"]),
        "compressed": lambda p: compressed_file(p, sizes["compressed"]),
        "docs": lambda p: real_documents(p, sizes["docs"]),
    }
    paths: dict[str, Path] = {}
    for name, make in makers.items():
        path = root / f"{name}-{sizes[name]}{VERSIONS.get(name, '')}"
        stamp = path.with_name(path.name + ".json")
        if not (stamp.exists() and path.exists()):
            if callable(log):
                log(f"generating {path.name} …")
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            info = make(path)
            meta = {"size": sizes[name]}
            if isinstance(info, tuple):
                meta.update(files=info[1], bytes=info[2])
            stamp.write_text(json.dumps(meta))
        paths[name] = path
    return paths


def stamp_info(path: Path) -> dict[str, int]:
    stamp = path.with_name(path.name + ".json")
    result: dict[str, int] = json.loads(stamp.read_text()) if stamp.exists() else {}
    return result
