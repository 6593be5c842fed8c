"""Timing, interleaving and statistics: runs variants A B A B … and keeps every sample.

Knows nothing of Uploader; a variant is a callable returning the seconds it took (or a
dict with "seconds" and extra counters).
"""

from __future__ import annotations

import os
import shlex
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Timed = Callable[[], float]


@dataclass
class Variant:
    """One contender in a figure: what it is, how to run it once, how much work it does."""

    name: str
    run: Timed
    command: str
    # Work done per run, in `unit` (bytes, files): throughput = work / seconds.
    work: float
    prepare: Callable[[], None] | None = None
    note: str = ""


@dataclass
class Figure:
    """The samples of one figure: every variant's seconds per round, in run order."""

    key: str
    title: str
    unit: str
    variants: list[Variant]
    # ratio(ours, peer) checked against target: ours throughput / peer throughput
    ours: str
    targets: dict[str, float] = field(default_factory=dict)
    # peers measured only for information (no target)
    note: str = ""
    seconds: dict[str, list[float]] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def throughput(self, name: str) -> list[float]:
        work = next(v.work for v in self.variants if v.name == name)
        return [work / s for s in self.seconds.get(name, []) if s > 0]

    def ratios(self, peer: str) -> list[float]:
        """ours/peer throughput, round by round (each pair measured side by side)."""
        mine = self.seconds.get(self.ours, [])
        theirs = self.seconds.get(peer, [])
        return [t / m for m, t in zip(mine, theirs, strict=False) if m > 0]


def summary(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max); NaNs when there are no values."""
    if not values:
        nan = float("nan")
        return nan, nan, nan
    return statistics.median(values), min(values), max(values)


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on Linux
        return float("nan")


def measure(figure: Figure, rounds: int, log: Callable[[str], None] = print) -> Figure:
    """Run every variant once per round, in the same order each round (A B A B …)."""
    for r in range(rounds):
        figure.load.append(loadavg())
        for v in figure.variants:
            if v.prepare is not None:
                v.prepare()
            s = v.run()
            figure.seconds.setdefault(v.name, []).append(s)
            log(f"  [{figure.key}] round {r + 1}/{rounds} {v.name}: {s:.3f} s")
    return figure


def sh(cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
    """Run a command, failing loudly with its output when it fails."""
    done = subprocess.run(list(cmd), capture_output=True, **kw)
    if done.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(cmd)} failed ({done.returncode}): "
            f"{done.stderr.decode(errors='replace')[-2000:]}"
        )
    return done


def timed_commands(*cmds: Sequence[str], env: dict[str, str] | None = None) -> Timed:
    """A variant that runs the commands one after the other; wall-clock seconds."""

    def run() -> float:
        t = time.perf_counter()
        for cmd in cmds:
            sh(cmd, env=env)
        return time.perf_counter() - t

    return run


def drop_dirty() -> None:
    """Write back every dirty page (untimed), so one run's writeback never bills the next."""
    subprocess.run(["sync"], check=False)
