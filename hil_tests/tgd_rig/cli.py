"""`tgd-rig`: run a scenario, run the benchmark, list the scenarios.

    tgd-rig run hil_tests/scenarios/alarm_outdoor.toml --report report.json
    tgd-rig run SCENARIO --backend serial --rig-config hil_tests/rig.toml
    tgd-rig bench [--runs 3] [SCENARIO ...]
    tgd-rig list
    tgd-rig run alarm_indoor.toml              (a name from `tgd-rig list`)
    tgd-rig power [--heartbeats 4] [--json power.json]
    tgd-rig emulator                          (a SIM7600 emulator on a pty, until Ctrl-C)
    tgd-rig campaign --seed 7 --steps 200 [--duration S] [--handsets 1] [--out DIR]
    tgd-rig campaign --seeds 1-20 --steps 200 --out var/campaign
    tgd-rig campaign --replay var/campaign/seed-7/replay.json

Exit status: 0 passed, 1 the scenario failed its expectations, 2 bad input (a
scenario or rig file that is not valid, a handset that never became ready).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .bench import SCENARIOS_DIR, format_table, run_bench
from .campaign_cli import add_campaign_parser, cmd_campaign
from .emulator_cli import add_emulator_parser, cmd_emulator
from .errors import RigError, ScenarioError
from .power import add_power_parser, cmd_power
from .rig import RigEvent
from .scenario import CHANNELS, load_scenario

DEFAULT_RIG_CONFIG = Path(__file__).resolve().parents[1] / "rig.toml"


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (no usage block) that says where the options are."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="tgd-rig", description="TGD hardware-in-the-loop rig")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one scenario and report each channel's timing")
    run.add_argument("scenario", type=Path,
                     help="a scenario file, or the name of one in hil_tests/scenarios (tgd-rig list)")
    run.add_argument("--report", type=Path, help="write the JSON report here")
    run.add_argument("--backend", choices=("emulated", "serial"), default="emulated")
    run.add_argument("--rig-config", type=Path, default=DEFAULT_RIG_CONFIG,
                     help="hardware description for the serial backend (default hil_tests/rig.toml)")
    run.add_argument("--workdir", type=Path, help="keep logs and databases here (default: a temp dir)")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--quiet", action="store_true", help="do not print events as they happen")

    bench = sub.add_parser("bench", help="run the standard scenarios several times, print medians")
    bench.add_argument("scenarios", nargs="*", type=Path)
    bench.add_argument("--runs", type=int, default=3)
    bench.add_argument("--json", type=Path, help="write the figures as JSON here")

    sub.add_parser("list", help="list the scenarios in hil_tests/scenarios")
    add_power_parser(sub)
    add_emulator_parser(sub)
    add_campaign_parser(sub)

    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "bench":
            return cmd_bench(args)
        if args.command == "power":
            return cmd_power(args)
        if args.command == "emulator":
            return cmd_emulator(args)
        if args.command == "campaign":
            return cmd_campaign(args)
        return cmd_list()
    except RigError as exc:
        print(f"tgd-rig: {exc}", file=sys.stderr)
        return 2


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import run_scenario

    scenario = load_scenario(find_scenario(args.scenario))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix=f"tgd-rig-{scenario.name}-"))
    print(f"logs and databases in {workdir}")
    printer = None if args.quiet else print_event
    rig = None
    if args.backend == "serial":
        from .serial_backend import SerialRig

        rig = SerialRig.from_toml(args.rig_config)
        rig.start()
    try:
        report = run_scenario(scenario, workdir=workdir, seed=args.seed, on_event=printer,
                              rig=rig)
    finally:
        if rig is not None:
            rig.stop()
    print(format_report(report))
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"report written to {args.report}")
    return 0 if report["passed"] else 1


def find_scenario(path: Path) -> Path:
    """``path`` as given, else the shipped scenario of that name (what `tgd-rig list` shows)."""
    if path.exists() or path.parent != Path("."):
        return path
    for candidate in (SCENARIOS_DIR / path.name, SCENARIOS_DIR / f"{path.name}.toml"):
        if candidate.is_file():
            return candidate
    raise ScenarioError(f"{path}: no such scenario file (here or among the shipped ones: "
                        "`tgd-rig list` shows them)")


def cmd_bench(args: argparse.Namespace) -> int:
    if args.runs < 1:
        print("tgd-rig: --runs must be at least 1", file=sys.stderr)
        return 2
    paths = args.scenarios or None
    results = run_bench(paths, runs=args.runs)
    print()
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def cmd_list() -> int:
    for path in sorted(SCENARIOS_DIR.glob("*.toml")):
        scenario = load_scenario(path)
        print(f"{path.name:28} {scenario.timing:10} {scenario.description}")
    return 0


_SHOWN_KINDS = {"press", "release", "power_cut", "power_on", "fault", "dial", "call_alerting",
                "call_answered", "call_ended", "call_failed", "sms_submitted", "sms_delivered",
                "server_alarm", "server_position", "alarm_updated", "modem_boot", "modem_off",
                "gnss_start", "sms_gateway_error"}


def print_event(event: RigEvent) -> None:
    if event.kind == "log":
        line = event.data["line"]
        if line.event is None and not line.raw.startswith("--- rig"):
            return
        print(f"{event.t:12.3f}  {event.device:8} | {line.raw}", flush=True)
    elif event.kind in _SHOWN_KINDS:
        data = " ".join(f"{k}={v}" for k, v in event.data.items() if k not in ("text",))
        print(f"{event.t:12.3f}  {event.device or '-':8} * {event.source}/{event.kind} {data}",
              flush=True)


def format_report(report: dict) -> str:
    lines = [f"scenario {report['scenario']} ({report['backend']}, {report['timing']}): "
             f"{'PASSED' if report['passed'] else 'FAILED'}"]
    for alarm in report["alarms"]:
        lines.append(f"  alarm {alarm['aid']} (end of hold at {alarm['end_of_hold_s']:.3f} s):")
        for channel in CHANNELS:
            value = alarm["channels_s"][channel]
            lines.append(f"    {channel:14} {'-' if value is None else f'{value:8.3f} s'}")
        for name, fix in alarm["fixes"].items():
            err = fix.get("error_m")
            lines.append(f"    fix {name:10} {fix['method']} acc {fix.get('acc')} m"
                         + (f", {err} m from the truth" if err is not None else ""))
    lines.append(f"  server alarms for the handset: {report['server_alarms']}")
    for failure in report["failures"]:
        lines.append(f"  FAIL: {failure}")
    for note in report.get("notes", []):
        lines.append(f"  note: {note}")
    if report.get("conditions"):
        lines.append("  conditions: " + ", ".join(f"{k} {v}" for k, v in report["conditions"].items()))
    if report.get("log"):
        lines.append(f"  device log: {report['log']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
