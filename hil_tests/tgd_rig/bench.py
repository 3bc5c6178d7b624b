"""`tgd-rig bench`: the standard scenarios, several runs each, medians against the targets.

Targets (issue 3), with the emulator's realistic LTE timings:
- dial within 100 ms of the end of the hold;
- a position at the server within 3 s;
- a GNSS position at the server within the GNSS time to first fix + 2 s.

Not a test: it prints figures (docs/benchmarks.md records them with this command).
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .runner import run_scenario
from .scenario import CHANNELS, load_scenario

SCENARIOS_DIR = Path(__file__).resolve().parents[1] / "scenarios"
STANDARD = ("bench_outdoor.toml", "bench_indoor.toml")
TARGETS = {"dial": 0.1, "position": 3.0}
GNSS_MARGIN_S = 2.0


def run_bench(scenario_paths: list[Path] | None = None, runs: int = 3,
              progress: Callable[[str], None] = print) -> dict[str, Any]:
    paths = scenario_paths or [SCENARIOS_DIR / name for name in STANDARD]
    base = Path(tempfile.mkdtemp(prefix="tgd-rig-bench-"))
    progress(f"logs and databases in {base}")
    results: dict[str, Any] = {}
    for path in paths:
        scenario = load_scenario(path)
        reports = []
        for run in range(runs):
            report = run_scenario(scenario, workdir=base / f"{scenario.name}-{run + 1}",
                                  seed=run + 1)
            reports.append(report)
            first = report["alarms"][0]["channels_s"] if report["alarms"] else {}
            progress(f"  {scenario.name} run {run + 1}/{runs}: "
                     + " ".join(f"{k}={_fmt(first.get(k))}" for k in CHANNELS)
                     + ("" if report["passed"] else "  FAILED: " + "; ".join(report["failures"])))
        results[scenario.name] = summarise(reports)
    return results


def summarise(reports: list[dict[str, Any]]) -> dict[str, Any]:
    per_channel: dict[str, list[float]] = {c: [] for c in CHANNELS}
    ttffs: list[float] = []
    gnss_over_ttff: list[float] = []   # per run: GNSS position at the server minus that run's TTFF
    for report in reports:
        if not report["alarms"]:
            continue
        alarm = report["alarms"][0]
        for channel in CHANNELS:
            value = alarm["channels_s"][channel]
            if value is not None:
                per_channel[channel].append(value)
        if alarm.get("gnss_ttff_s") is not None:
            ttffs.append(alarm["gnss_ttff_s"])
            if alarm["channels_s"]["gnss"] is not None:
                gnss_over_ttff.append(alarm["channels_s"]["gnss"] - alarm["gnss_ttff_s"])
    medians = {c: (round(statistics.median(v), 3) if v else None) for c, v in per_channel.items()}
    summary = {"runs": len(reports), "passed": sum(1 for r in reports if r["passed"]),
               "medians_s": medians, "max_s": {c: (max(v) if v else None)
                                                for c, v in per_channel.items()},
               "seen": {c: len(v) for c, v in per_channel.items()}}
    if ttffs:
        summary["gnss_ttff_median_s"] = round(statistics.median(ttffs), 3)
    if gnss_over_ttff:
        summary["gnss_over_ttff_median_s"] = round(statistics.median(gnss_over_ttff), 3)
        summary["gnss_over_ttff_max_s"] = round(max(gnss_over_ttff), 3)
    summary["targets"] = verdicts(summary)
    return summary


def verdicts(summary: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    med = summary["medians_s"]
    for channel, limit in TARGETS.items():
        out[channel] = _verdict(med.get(channel), limit)
    if med.get("gnss") is not None:
        over = summary.get("gnss_over_ttff_median_s")
        out["gnss"] = (f"{'ok' if over <= GNSS_MARGIN_S else 'MISSED'} (TTFF + {over:.3f} s, "
                       f"target TTFF + {GNSS_MARGIN_S:.3f} s)") if over is not None \
            else "no TTFF measured"
    return out


def _verdict(value: float | None, limit: float) -> str:
    if value is None:
        return f"never (target {limit:.3f} s)"
    return f"{'ok' if value <= limit else 'MISSED'} ({value:.3f} s, target {limit:.3f} s)"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_table(results: dict[str, Any]) -> str:
    header = "| scenario | runs (passed) | " + " | ".join(CHANNELS) + " |"
    lines = [header, "|" + "---|" * (len(CHANNELS) + 2)]
    for name, summary in results.items():
        med = summary["medians_s"]
        lines.append(f"| {name} | {summary['runs']} ({summary['passed']}) | "
                     + " | ".join(_fmt(med[c]) for c in CHANNELS) + " |")
    lines.append("")
    for name, summary in results.items():
        targets = ", ".join(f"{k}: {v}" for k, v in summary["targets"].items())
        ttff = summary.get("gnss_ttff_median_s")
        lines.append(f"{name}: {targets}" + (f"; GNSS TTFF median {ttff:.3f} s" if ttff else ""))
    return "\n".join(lines)
