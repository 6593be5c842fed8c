"""Writes BENCHMARKS.md from measured figures: machine, targets, every figure with its
median, min and max, and the ratios measured round by round."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from .harness import Figure, summary

NOTES = Path(__file__).with_name("notes.md")


def _rate(value: float, unit: str) -> str:
    if math.isnan(value):
        return "–"
    if unit == "B":
        return f"{value / (1 << 20):,.0f} MiB/s"
    if unit == "paint":
        return f"{1000 / value:,.0f} ms"
    if unit == "files":
        return f"{value:,.0f} files/s"
    return f"{value:,.3g} {unit}"


def _ratio(values: list[float]) -> str:
    med, lo, hi = summary(values)
    if math.isnan(med):
        return "–"
    return f"{med:.2f}× ({lo:.2f}–{hi:.2f})"


def _bytes(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def verdicts(fig: Figure) -> list[tuple[str, str, str, bool | None]]:
    """(figure, target, measured, met) rows for the summary table."""
    out: list[tuple[str, str, str, bool | None]] = []
    for peer, want in fig.targets.items():
        r = fig.ratios(peer)
        med = summary(r)[0]
        met = None if math.isnan(med) else med >= want
        out.append((fig.title, f"≥ {want:g} × {peer}", _ratio(r), met))
    floor = fig.extra.get("floor")
    if floor is not None:
        med = summary(fig.throughput(fig.ours))[0]
        met = None if math.isnan(med) else med >= floor
        out.append((fig.title, f"≥ {floor:,.0f} {fig.unit}/s", _rate(med, fig.unit), met))
    for row in fig.extra.get("verdicts", []):
        out.append(tuple(row))  # type: ignore[arg-type]
    return out


def render(
    figures: list[Figure],
    machine: dict[str, Any],
    mode: str,
    started: float,
    load: tuple[float, float],
    results: dict[str, list[dict[str, Any]]],
) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench{'' if mode == 'full' else '-quick'}` ({mode} mode) on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
        f"{(time.time() - started) / 60:.0f} minutes. "
        "Every figure is the median of several runs, with the minimum and maximum; every "
        "comparison is a ratio measured round by round, the contenders interleaved "
        "(A B A B …) so that the machine's drift cancels out. Higher ratios are better "
        "for Uploader (its throughput divided by the peer's).",
        "",
        "## The machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {machine['cpu']}, {machine['cores']} cores |",
        f"| memory | {_bytes(machine['memory'])} |",
        f"| file system | {machine['filesystem']} ({_bytes(machine['free'])} free) |",
        f"| OS | {machine['os']}, Linux {machine['kernel']} |",
        f"| Python | {machine['python']}, SQLite {machine['sqlite']}, "
        f"zstandard {machine['zstandard']}, peewee {machine['peewee']}, "
        f"PySide6 {machine['PySide6']} |",
    ]
    for tool in ("cp", "rsync", "rclone", "zstd", "sha256sum"):
        lines.append(f"| {tool} | {machine[tool]} |")
    lines += [
        f"| load average (1 min) | {load[0]:.2f} at the start, {load[1]:.2f} at the end |",
        "",
        "## Targets",
        "",
        "| figure | target | measured | met |",
        "|---|---|---|---|",
    ]
    for fig in figures:
        for title, target, measured, met in verdicts(fig):
            mark = "–" if met is None else ("yes" if met else "**no**")
            lines.append(f"| {title} | {target} | {measured} | {mark} |")
    lines += ["", "## Figures", ""]
    for fig in figures:
        lines += _figure(fig, results)
    if NOTES.exists():
        lines += ["", NOTES.read_text().strip(), ""]
    return "\n".join(lines) + "\n"


def _figure(fig: Figure, results: dict[str, list[dict[str, Any]]]) -> list[str]:
    if not fig.variants:
        lines = [f"### {fig.title}", ""]
        if fig.note:
            lines += [fig.note, ""]
        for key, value in fig.extra.get("result", {}).items():
            lines.append(f"- {key}: {value}")
        return [*lines, ""]
    rounds = max((len(s) for s in fig.seconds.values()), default=0)
    lo_load, hi_load = (min(fig.load), max(fig.load)) if fig.load else (0.0, 0.0)
    lines = [
        f"### {fig.title}",
        "",
        f"{rounds} rounds; load average {lo_load:.2f}–{hi_load:.2f} during the rounds."
        + (f" {fig.note}" if fig.note else ""),
        "",
        f"| contender | median | min | max | seconds (median) | {fig.ours} ÷ contender |",
        "|---|---|---|---|---|---|",
    ]
    for v in fig.variants:
        tp = fig.throughput(v.name)
        med, lo, hi = summary(tp)
        if fig.unit == "paint":  # shown as times: the fastest first
            lo, hi = hi, lo
        sec = summary(fig.seconds.get(v.name, []))[0]
        ratio = "" if v.name == fig.ours else _ratio(fig.ratios(v.name))
        lines.append(
            f"| {v.name} | {_rate(med, fig.unit)} | {_rate(lo, fig.unit)} | "
            f"{_rate(hi, fig.unit)} | {sec:.3f} | {ratio} |"
        )
    lines += ["", "Commands:", ""]
    for v in fig.variants:
        extra = f" — {v.note}" if v.note else ""
        lines.append(f"- {v.name}: `{v.command}`{extra}")
    cpu = [r["cpu"] for r in results.get(fig.key, []) if "cpu" in r]
    if cpu:
        lines.append(f"- {fig.ours} CPU time (user + system, median): {summary(cpu)[0]:.2f} s")
    for key, value in fig.extra.items():
        if key not in ("floor", "verdicts", "result"):
            lines.append(f"- {key}: {value}")
    samples = "; ".join(
        f"{name}: " + ", ".join(f"{s:.3f}" for s in secs) for name, secs in fig.seconds.items()
    )
    lines += [f"- raw seconds per round: {samples}", ""]
    return lines
