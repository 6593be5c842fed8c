"""`python -m bench`: generate the data, run the figures, write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from . import core_figures, data, gui_figures, machine, report
from .harness import Figure, loadavg

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    # sizes: mixed and compressed in bytes, small/tree in files, docs in bytes
    "full": {
        "sizes": {
            "mixed": 1 << 30,
            "small": 10_000,
            "tree": 50_000,
            "compressed": 256 << 20,
            "docs": 256 << 20,
        },
        "rounds": 5,
        "small_rounds": 3,
        "tree_rounds": 2,
        "gui_rows": 10_000,
        "gui_big_rows": 100_000,
    },
    "quick": {
        "sizes": {
            "mixed": 256 << 20,
            "small": 2_000,
            "tree": 5_000,
            "compressed": 32 << 20,
            "docs": 32 << 20,
        },
        "rounds": 3,
        "small_rounds": 2,
        "gui_rows": 10_000,
        "gui_big_rows": 100_000,
    },
    # for the smoke test: seconds, not minutes
    "tiny": {
        "sizes": {
            "mixed": 2 << 20,
            "small": 20,
            "tree": 30,
            "compressed": 1 << 20,
            "docs": 1 << 20,
        },
        "rounds": 1,
        "small_rounds": 1,
        "gui_rows": 200,
        "gui_big_rows": 1_000,
    },
}


def _baseline(folder: Path, source: Path) -> Path:
    """A folder with the baseline's uploader package and this harness's bench package."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "uploader").symlink_to((source / "uploader").resolve())
    shutil.copytree(ROOT / "bench", folder / "bench")
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--mode", choices=sorted(MODES), default="quick")
    p.add_argument(
        "--work",
        type=Path,
        default=Path(os.environ.get("BENCH_WORK", "/var/tmp/uploader-bench")),
        help="where data and libraries go (on the file system you want to measure)",
    )
    p.add_argument("--out", type=Path, help="the report (default: BENCHMARKS.md for full)")
    p.add_argument("--only", help="comma-separated figure keys (hash,big,small,…,gui)")
    p.add_argument("--rounds", type=int, help="override the number of rounds")
    p.add_argument(
        "--baseline",
        type=Path,
        help="a folder holding an earlier `uploader` package, measured beside this one",
    )
    args = p.parse_args(argv)
    mode = MODES[args.mode]
    out = args.out or (
        ROOT / "BENCHMARKS.md" if args.mode == "full" else args.work / f"BENCHMARKS-{args.mode}.md"
    )
    only = set(args.only.split(",")) if args.only else None
    started = time.time()
    load_start = loadavg()
    args.work.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)

    sizes: dict[str, int] = mode["sizes"]  # type: ignore[assignment]
    paths = data.ensure(args.work / "data", sizes, log)
    rounds = args.rounds or int(mode["rounds"])  # type: ignore[call-overload]
    small_rounds = args.rounds or int(mode["small_rounds"])  # type: ignore[call-overload]
    ctx = core_figures.Context(args.work, paths, rounds, small_rounds, log)
    ctx.tree_rounds = args.rounds or int(mode.get("tree_rounds", small_rounds))  # type: ignore[call-overload]
    if args.baseline is not None:
        ctx.baseline = _baseline(args.work / "baseline", args.baseline)
    figures: list[Figure] = core_figures.all_figures(ctx, only)
    if only is None or "gui" in only:
        figures += gui_figures.all_figures(
            args.work,
            rows=int(mode["gui_rows"]),  # type: ignore[call-overload]
            big_rows=int(mode["gui_big_rows"]),  # type: ignore[call-overload]
            rounds=rounds,
            log=log,
        )
    info = machine.describe(args.work)
    text = report.render(figures, info, args.mode, started, (load_start, loadavg()), ctx.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    raw = {f.key: {"seconds": f.seconds, "load": f.load, "extra": f.extra} for f in figures} | {
        "_results": ctx.results,
        "_machine": info,
    }
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
