"""The core figures: Uploader's core beside cp, rsync, rclone, sha256sum and zstd.

Each figure interleaves its variants round by round. Uploader runs in a fresh process
per round (bench.worker) and times the action alone; every peer is a command timed
from the outside, followed by a sync of what it wrote, so that both sides end with the
bytes on the disk.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .harness import Figure, Timed, Variant, drop_dirty, measure, sh, timed_commands

ROOT = Path(__file__).resolve().parents[1]
RCLONE_ENV = {"RCLONE_CONFIG": "/dev/null", "PATH": "/usr/bin:/bin:/usr/local/bin"}


@dataclass
class Context:
    work: Path
    data: dict[str, Path]
    rounds: int
    small_rounds: int
    log: Callable[[str], None] = print
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # a folder whose `uploader` package is an earlier version, measured beside this one
    baseline: Path | None = None
    tree_rounds: int = 0

    @property
    def run(self) -> Path:
        return self.work / "run"

    def fresh(self, *paths: Path) -> Callable[[], None]:
        """A prepare step: remove `paths`, write back dirty pages (untimed)."""

        def prepare() -> None:
            for p in paths:
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists() or p.is_symlink():
                    p.unlink()
            drop_dirty()

        return prepare

    def ours(self, key: str, *args: str, before: bool = False) -> Timed:
        """A variant that runs `python -m bench.worker ARGS` and reads its own timing
        (with the baseline's uploader package when `before`)."""

        def run() -> float:
            cwd = self.baseline if before and self.baseline is not None else ROOT
            done = sh([sys.executable, "-m", "bench.worker", *args], cwd=cwd)
            result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
            self.results.setdefault(key, []).append(result)
            return float(result["seconds"])

        return run


def with_before(ctx: Context, v: list[Variant], key: str, *args: str) -> None:
    """Add the baseline version of Uploader right after the current one, if asked for."""
    if ctx.baseline is None:
        return
    mine = v[0]
    v.insert(
        1,
        Variant(
            "uploader before",
            ctx.ours(key + "-before", *args, before=True),
            mine.command + " (baseline version)",
            mine.work,
            mine.prepare,
        ),
    )


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def _peer(
    figure_variants: list[Variant],
    name: str,
    tool: str,
    cmds: list[list[str]],
    work: float,
    prepare: Callable[[], None],
    env: dict[str, str] | None = None,
    note: str = "",
) -> None:
    if not have(tool):
        return
    figure_variants.append(
        Variant(
            name,
            timed_commands(*cmds, env=env),
            " && ".join(" ".join(c) for c in cmds),
            work,
            prepare,
            note,
        )
    )


def big_file(ctx: Context) -> Figure:
    src = ctx.data["mixed"]
    size = src.stat().st_size
    lib = ctx.run / "big-lib"
    dst = ctx.run / "big-dst"
    out = dst / src.name
    v: list[Variant] = [
        Variant(
            "uploader",
            ctx.ours("big", "ingest", str(lib), str(src)),
            f"python -m bench.worker ingest LIB {src.name}",
            size,
            ctx.fresh(lib),
            "Engine.add → wait_uploads: hashed, fsynced, renamed, folder fsynced, row committed",
        )
    ]
    with_before(ctx, v, "big", "ingest", str(lib), str(src))

    def mk() -> None:
        ctx.fresh(dst)()
        dst.mkdir(parents=True)

    _peer(v, "cp + sync", "cp", [["cp", str(src), str(out)], ["sync", str(out)]], size, mk)
    _peer(
        v, "rsync + sync", "rsync", [["rsync", str(src), f"{dst}/"], ["sync", str(out)]], size, mk
    )
    _peer(
        v,
        "rclone copy + sync",
        "rclone",
        [["rclone", "copy", str(src), str(dst)], ["sync", str(out)]],
        size,
        mk,
        env=RCLONE_ENV,
    )
    fig = Figure(
        "big",
        f"One {_size(size)} file, drop to uploaded",
        "B",
        v,
        "uploader",
        targets={"cp + sync": 0.8, "rsync + sync": 1.0, "rclone copy + sync": 1.0},
        note="Source in the page cache (warm) for every contender.",
    )
    return measure(fig, ctx.rounds, ctx.log)


def hashing(ctx: Context) -> Figure:
    src = ctx.data["mixed"]
    size = src.stat().st_size
    v = [
        Variant("hashlib", ctx.ours("hash", "hash", str(src)), "hashlib.sha256, 1 MiB reads", size)
    ]
    _peer(v, "sha256sum", "sha256sum", [["sha256sum", str(src)]], size, lambda: None)
    fig = Figure("hash", f"SHA-256 of the {_size(size)} file (the hash limit)", "B", v, "hashlib")
    return measure(fig, ctx.rounds, ctx.log)


def many_files(ctx: Context, key: str, title: str, floor: float | None) -> Figure:
    src = ctx.data[key]
    files = sum(1 for p in src.rglob("*") if p.is_file())
    lib = ctx.run / f"{key}-lib"
    dst = ctx.run / f"{key}-dst"
    v: list[Variant] = [
        Variant(
            "uploader",
            ctx.ours(key, "ingest", str(lib), str(src)),
            f"python -m bench.worker ingest LIB {src.name}/",
            files,
            ctx.fresh(lib),
            "every file durable (fsync, rename, folder fsync, row committed) when acknowledged",
        )
    ]
    with_before(ctx, v, key, "ingest", str(lib), str(src))
    mk = ctx.fresh(dst)
    _peer(
        v,
        "cp -r + sync",
        "cp",
        [["cp", "-r", str(src), str(dst)], ["sync", "-f", str(dst)]],
        files,
        mk,
    )
    _peer(
        v,
        "rsync -a + sync",
        "rsync",
        [["rsync", "-a", f"{src}/", f"{dst}/"], ["sync", "-f", str(ctx.run)]],
        files,
        mk,
    )
    _peer(
        v,
        "rclone copy + sync",
        "rclone",
        [["rclone", "copy", str(src), str(dst)], ["sync", "-f", str(ctx.run)]],
        files,
        mk,
        env=RCLONE_ENV,
    )
    targets = {"rclone copy + sync": 1.0} if floor is not None else {}
    fig = Figure(
        key,
        title.format(files=f"{files:,}"),
        "files",
        v,
        "uploader",
        targets=targets,
        note="The peers make nothing durable file by file: one sync of the whole file "
        "system at the end.",
    )
    if floor is not None:
        fig.extra["floor"] = floor
    rounds = ctx.tree_rounds if key == "tree" and ctx.tree_rounds else ctx.small_rounds
    return measure(fig, rounds, ctx.log)


def compress_only(ctx: Context) -> Figure:
    src = ctx.data["mixed"]
    size = src.stat().st_size
    out = ctx.run / "compress-only.zst"
    peer = ctx.run / "zstd-cli.zst"
    v = [
        Variant(
            "uploader",
            ctx.ours("compress", "compress-only", str(src), str(out)),
            "compression._write_zstd (level 3, zstd threads = cores, checksum, fsync)",
            size,
            ctx.fresh(out),
        )
    ]
    with_before(ctx, v, "compress", "compress-only", str(src), str(out))
    _zstd_peer(ctx, v, src, peer, size)
    fig = Figure(
        "compress",
        f"Compression of the {_size(size)} file at level 3 (compress only)",
        "B",
        v,
        "uploader",
        targets={"zstd -3 -T0 + sync": 1.0},
    )
    return measure(fig, ctx.rounds, ctx.log)


def _zstd_peer(ctx: Context, v: list[Variant], src: Path, peer: Path, size: int) -> None:
    """The compression peer of both compression figures: `zstd -3 -T0`, then a sync."""
    _peer(
        v,
        "zstd -3 -T0 + sync",
        "zstd",
        [["zstd", "-q", "-f", "-3", "-T0", str(src), "-o", str(peer)], ["sync", str(peer)]],
        size,
        ctx.fresh(peer),
    )


def _stage(ctx: Context, lib: Path) -> None:
    """A library holding the mixed file raw, its compression queued (untimed)."""
    ctx.fresh(lib)()
    sh([sys.executable, "-m", "bench.worker", "ingest", str(lib), str(ctx.data["mixed"])], cwd=ROOT)
    drop_dirty()


def compression_job(ctx: Context) -> Figure:
    src = ctx.data["mixed"]
    size = src.stat().st_size
    lib = ctx.run / "job-lib"
    peer = ctx.run / "zstd-cli.zst"
    v = [
        Variant(
            "uploader",
            ctx.ours("job", "job", str(lib)),
            "compression.work(library): claim, compress, fsync, verify (decompress + hash), "
            "publish, commit the switch, delete the raw copy",
            size,
            lambda: _stage(ctx, lib),
        )
    ]
    with_before(ctx, v, "job", "job", str(lib))
    _zstd_peer(ctx, v, src, peer, size)
    fig = Figure(
        "job",
        f"A whole compression job on the {_size(size)} file",
        "B",
        v,
        "uploader",
        targets={"zstd -3 -T0 + sync": 0.6},
    )
    return measure(fig, ctx.rounds, ctx.log)


def export(ctx: Context) -> Figure:
    src = ctx.data["mixed"]
    size = src.stat().st_size
    lib = ctx.run / "export-lib"
    _stage(ctx, lib)
    sh([sys.executable, "-m", "bench.worker", "job", str(lib)], cwd=ROOT)
    blob = next((lib / "blobs").rglob("*.zst"))
    out = ctx.run / "exported.bin"
    peer = ctx.run / "zstd-d.bin"
    v = [
        Variant(
            "uploader",
            ctx.ours("export", "export", str(lib), str(out)),
            "Library.export: decompress, hash, write, fsync, rename",
            size,
            ctx.fresh(out),
        )
    ]
    with_before(ctx, v, "export", "export", str(lib), str(out))
    _peer(
        v,
        "zstd -d + sync",
        "zstd",
        [["zstd", "-q", "-f", "-d", str(blob), "-o", str(peer)], ["sync", str(peer)]],
        size,
        ctx.fresh(peer),
    )
    fig = Figure(
        "export",
        f"Export of the compressed {_size(size)} document, verified",
        "B",
        v,
        "uploader",
        targets={"zstd -d + sync": 0.8},
        note="Both read the same .zst blob.",
    )
    return measure(fig, ctx.rounds, ctx.log)


def already_compressed(ctx: Context) -> Figure:
    src = ctx.data["compressed"]
    size = src.stat().st_size
    lib = ctx.run / "gz-lib"
    dst = ctx.run / "gz-dst"
    out = dst / src.name
    v = [
        Variant(
            "uploader",
            ctx.ours("gz", "ingest", str(lib), str(src)),
            f"python -m bench.worker ingest LIB {src.name}",
            size,
            ctx.fresh(lib),
        )
    ]

    def mk() -> None:
        ctx.fresh(dst)()
        dst.mkdir(parents=True)

    _peer(v, "cp + sync", "cp", [["cp", str(src), str(out)], ["sync", str(out)]], size, mk)
    fig = Figure(
        "gz",
        f"An already-compressed (gzip) {_size(size)} file, drop to uploaded",
        "B",
        v,
        "uploader",
    )
    return measure(fig, ctx.rounds, ctx.log)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def all_figures(ctx: Context, only: set[str] | None = None) -> list[Figure]:
    steps: list[tuple[str, Callable[[], Figure]]] = [
        ("hash", lambda: hashing(ctx)),
        ("big", lambda: big_file(ctx)),
        (
            "small",
            lambda: many_files(ctx, "small", "{files} files of 4 KiB, durable", 1000.0),
        ),
        ("tree", lambda: many_files(ctx, "tree", "A tree of {files} small files", None)),
        ("docs", lambda: many_files(ctx, "docs", "Real documents: {files} files", None)),
        ("gz", lambda: already_compressed(ctx)),
        ("compress", lambda: compress_only(ctx)),
        ("job", lambda: compression_job(ctx)),
        ("export", lambda: export(ctx)),
    ]
    figures = []
    ctx.run.mkdir(parents=True, exist_ok=True)
    for key, step in steps:
        if only and key not in only:
            continue
        ctx.log(f"figure {key}")
        figures.append(step())
        subprocess.run(["rm", "-rf", str(ctx.run)], check=False)
        ctx.run.mkdir(parents=True, exist_ok=True)
    return figures
