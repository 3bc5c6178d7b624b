"""`tgd-rig campaign`: random life sequences on emulated handsets, invariants after every step.

    tgd-rig campaign --seed 7 --steps 200                 # one seed
    tgd-rig campaign --seed 7 --duration 600              # as many steps as fit in 10 min
    tgd-rig campaign --replay var/campaign/seed-7/replay.json
    tgd-rig campaign --seeds 1-20 --steps 200 --out var/campaign   # the long run

The plan (campaign_plan.generate) is pure; this module builds the rig, runs the
steps through the StepExecutor, feeds the InvariantMonitor and checks it after
every step. On a violation it prints the seed, the steps, where the traces are, and
writes `replay.json` (the steps up to the failing one) that `--replay` reproduces.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ota_fleet as fleet
from .campaign_actions import StepExecutor, factory_version
from .campaign_invariants import HandsetConfig, InvariantMonitor
from .campaign_plan import (
    Step,
    family_counts,
    generate,
    handset_names,
    replay_document,
    save_replay,
)
from .emulated import EmulatedRig, make_timing

HANDSET_CONFIG = {"trigger_hold_ms": 600, "track_interval_s": 30, "heartbeat_interval_s": 120}
RECOVER_S = 8.0            # after the last step: faults ended, time for what was pending
DURATION_STEPS = 100000    # the plan's length when only --duration bounds the run


@dataclass
class CampaignResult:
    seed: int
    steps_planned: int
    steps_run: int
    wall_s: float
    simulated_s: float
    violations: list[dict[str, Any]]
    summary: dict[str, Any]
    step_kinds: dict[str, int]
    outdir: str
    replay: str | None = None
    notes: list[str] = field(default_factory=list)
    rig_error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.violations and self.rig_error is None

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "steps_planned": self.steps_planned, "steps_run": self.steps_run,
                "wall_s": round(self.wall_s, 1), "simulated_s": round(self.simulated_s, 1),
                "passed": self.passed, "violations": self.violations, "step_kinds": self.step_kinds,
                "outdir": self.outdir, "replay": self.replay, "notes": self.notes[-50:],
                "rig_error": self.rig_error,
                **{k: v for k, v in self.summary.items() if k != "violations"}}


def run_campaign(seed: int, steps: list[Step], outdir: Path, *, handsets: int = 1,
                 timing: str = "fast", duration_s: float | None = None,
                 firmware_main: Path | None = None, stop_on_violation: bool = True,
                 out=print, monitor_options: dict[str, Any] | None = None) -> CampaignResult:
    """Run `steps` on a fresh emulated rig; stop at the first violation (or at duration_s)."""
    outdir = Path(outdir).resolve()   # the firmware runs in its own folder: absolute paths
    firmware_main = Path(firmware_main).resolve() if firmware_main else None
    outdir.mkdir(parents=True, exist_ok=True)
    names = handset_names(handsets)
    scale = make_timing(timing).scale
    rig = EmulatedRig(outdir / "rig", timing=timing, seed=seed, police_answer_after_s=0.5,
                      firmware_main=firmware_main)
    t_start = time.monotonic()
    done: list[Step] = []
    violations: list = []
    rig_error: str | None = None
    executor = None
    keys = fleet.Keys()    # the campaign's release key: the handsets get its public half
    with rig:
        devices = {}
        configs = {}
        for i, name in enumerate(names):
            device = f"CP{seed % 10000:04d}{i + 1}"
            config = dict(HANDSET_CONFIG)
            handset = fleet.fleet_handset(rig, keys, device, hold_ms=config.pop("trigger_hold_ms"),
                                          heartbeat_interval_s=config.pop("heartbeat_interval_s"),
                                          start=False, **config)
            devices[name] = device
            configs[name] = HandsetConfig(
                msisdn=handset.identity.special_number,
                trigger_hold_s=handset.config["trigger_hold_ms"] / 1000.0,
                track_interval_s=handset.config["track_interval_s"] * scale,
                emergency_number=rig.emergency_number, sms_number=rig.sms_number,
                factory_fw=None if firmware_main else factory_version())
        monitor = InvariantMonitor(configs, **(monitor_options or {}))
        by_device = {d: n for n, d in devices.items()}

        def feed(ev):
            if ev.device in by_device:
                ev = type(ev)(ev.t, ev.source, ev.kind, by_device[ev.device], ev.data)
            monitor.feed(ev)
        rig.events.subscribe(feed)
        for name in names:
            rig.handsets[devices[name]].power_on()
        for name in names:
            rig.handsets[devices[name]].expect("READY", timeout=60)
        executor = StepExecutor(rig, monitor, devices, keys)
        events_file = open(outdir / "events.log", "w", encoding="utf-8")
        rig.events.subscribe(lambda ev: events_file.write(str(ev) + "\n"))
        try:
            for step in steps:
                if duration_s is not None and time.monotonic() - t_start >= duration_s:
                    break
                out(f"  step {step}")
                try:
                    executor.run(step)
                except Exception as exc:  # noqa: BLE001 - the rig's fault, not the handset's
                    rig_error = f"step {step}: the rig could not run it: {exc!r}"
                    out(f"  RIG ERROR: {rig_error}")
                    break
                done.append(step)
                monitor.check(time.monotonic())
                if monitor.violations and stop_on_violation:
                    break
            if not (monitor.violations and stop_on_violation) and rig_error is None:
                executor.recover()
                executor.wait(RECOVER_S)
                monitor.check(time.monotonic())
                for name in names:
                    monitor.server_snapshot(name, rig.server_alarms(devices[name]),
                                            time.monotonic())
                monitor.finish(time.monotonic())
            violations = list(monitor.violations)
        finally:
            summary = monitor.summary()   # before the rig's own shutdown cuts the power
            executor.close()
            for name in names:
                handset = rig.handsets[devices[name]]
                handset.modem.transcript.dump(str(outdir / f"{name}-modem.txt"))
            events_file.close()
    wall = time.monotonic() - t_start
    result = CampaignResult(
        seed=seed, steps_planned=len(steps), steps_run=len(done), wall_s=wall,
        simulated_s=wall / scale, violations=[v.to_json() for v in violations],
        summary=summary, step_kinds=family_counts(done), outdir=str(outdir),
        notes=list(executor.notes) if executor else [], rig_error=rig_error)
    (outdir / "result.json").write_text(json.dumps(result.to_json(), indent=1) + "\n",
                                        encoding="utf-8")
    if violations or rig_error:
        replay = outdir / "replay.json"
        save_replay(replay, replay_document(seed, done, handsets, timing,
                                            note="; ".join(str(v) for v in violations[:3])))
        result.replay = str(replay)
        print(violation_report(result, done, names, devices), flush=True)   # even with --quiet
    return result


def violation_report(result: CampaignResult, done: list[Step], names: list[str],
                     devices: dict[str, str]) -> str:
    lines = [f"VIOLATION in campaign seed {result.seed} after {result.steps_run} step(s):"]
    lines += [f"  {v['invariant']}: {v['device']}: {v['message']}" for v in result.violations]
    lines.append("  steps:")
    lines += [f"    {s}" for s in done]
    lines.append(f"  traces: {result.outdir} (events.log, H*-modem.txt, "
                 + ", ".join(f"rig/handsets/{devices[n]}/device.log" for n in names) + ")")
    lines.append(f"  replay: tgd-rig campaign --replay {result.replay}")
    return "\n".join(lines)


def plan_for(seed: int, steps: int | None, handsets: int, duration_s: float | None) -> list[Step]:
    count = steps if steps is not None else DURATION_STEPS if duration_s else 50
    return generate(seed, count, handsets, HANDSET_CONFIG["trigger_hold_ms"])


def format_result(result: CampaignResult) -> str:
    s = result.summary
    verdict = "PASSED" if result.passed else f"FAILED ({len(result.violations)} violation(s))"
    if result.rig_error:
        verdict = f"RIG ERROR ({result.rig_error})"
    lines = [f"campaign seed {result.seed}: {verdict}: {result.steps_run} steps, "
             f"{result.wall_s:.0f} s wall = {result.simulated_s / 3600:.2f} h simulated"]
    lines.append("  passed:  " + ", ".join(f"{k} {v}" for k, v in s["passed"].items()))
    lines.append("  excused: " + ", ".join(f"{k} {v}" for k, v in s["excused"].items() if v))
    lines.append("  slowest: " + ", ".join(f"{k} {v} s" for k, v in s["slowest_s"].items()))
    lines.append("  events:  " + ", ".join(f"{k} {v}" for k, v in s["events"].items()))
    lines.append(f"  traces:  {result.outdir}")
    return "\n".join(lines)


def merge_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several seeds together (docs/benchmarks.md)."""
    total: dict[str, Any] = {"seeds": len(results), "steps": 0, "wall_s": 0.0, "simulated_s": 0.0,
                             "violations": 0, "events": {}, "step_kinds": {}, "slowest_s": {},
                             "passed": {}, "excused": {}, "logged_errors": {}}
    for r in results:
        total["steps"] += r["steps_run"]
        total["wall_s"] += r["wall_s"]
        total["simulated_s"] += r["simulated_s"]
        total["violations"] += len(r["violations"])
        total["rig_errors"] = total.get("rig_errors", 0) + (1 if r.get("rig_error") else 0)
        for note in r.get("notes", []):
            key = re.sub(r"^H\d+: ", "", note)
            key = re.sub(r"\(.*", "", key).strip()
            total.setdefault("notes", {})[key] = total.setdefault("notes", {}).get(key, 0) + 1
        for key in ("events", "step_kinds", "passed", "excused", "logged_errors"):
            for k, v in r.get(key, {}).items():
                total[key][k] = total[key].get(k, 0) + v
        for k, v in r.get("slowest_s", {}).items():
            total["slowest_s"][k] = max(v, total["slowest_s"].get(k, v))
    return total


def format_total(total: dict[str, Any]) -> str:
    """The merged figures, as docs/benchmarks.md shows them."""
    lines = [f"all seeds: {total['seeds']} seeds, {total['steps']} steps, "
             f"{total['wall_s'] / 3600:.2f} h wall, {total['simulated_s'] / 3600:.1f} h simulated, "
             f"{total['violations']} violation(s), {total.get('rig_errors', 0)} rig error(s)"]
    lines.append("  steps of each kind: " + ", ".join(
        f"{k} {v}" for k, v in sorted(total["step_kinds"].items())))
    lines.append("  events: " + ", ".join(f"{k} {v}" for k, v in sorted(total["events"].items())))
    lines.append("  invariants passed: " + ", ".join(f"{k} {v}" for k, v in total["passed"].items()))
    lines.append("  excused: " + ", ".join(f"{k} {v}" for k, v in total["excused"].items() if v))
    lines.append("  slowest: " + ", ".join(f"{k} {v} s" for k, v in sorted(total["slowest_s"].items())))
    lines.append("  errors the firmware logged and skipped: " + (", ".join(
        f"{k} x{v}" for k, v in sorted(total.get("logged_errors", {}).items())) or "none"))
    if total.get("notes"):
        lines.append("  notes: " + ", ".join(f"{k} x{v}" for k, v in sorted(total["notes"].items())))
    return "\n".join(lines)
