"""The run report: per alarm, each channel's time from the end of the hold, fix errors, verdict.

Pure functions over what a backend observed (`Observations`): no I/O here, so the
arithmetic and the verdicts are tested on their own.

The clock is the host's `time.monotonic()`. The end of the hold is the press
start plus the configured `trigger_hold_ms`: the instant the firmware may first
know that this is an alarm, so "dial 0.040 s" means 40 ms of firmware and modem
reaction, whatever the hold length.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .scenario import CHANNELS, Scenario

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS84 points (spherical Earth)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class ChannelEvent:
    """Something a channel delivered, seen by the rig at host time `t`.

    kind: `dial`, `call_answered`, `sms_delivered`, `server_alarm`, or
    `server_position` (then `fix` holds method, lat, lon, acc).
    """

    t: float
    kind: str
    aid: str | None = None
    fix: dict[str, Any] | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlarmTrigger:
    aid: str
    end_of_hold: float   # host monotonic
    press_start: float


@dataclass
class Observations:
    """Everything a run saw; a backend fills it, `build_report` judges it."""

    scenario: Scenario
    backend: str
    t0: float                                        # READY: scenario times count from here
    triggers: list[AlarmTrigger] = field(default_factory=list)
    events: list[ChannelEvent] = field(default_factory=list)
    log_events: list[str] = field(default_factory=list)    # device event names in order
    server_alarm_count: int | None = None
    truth: Callable[[float], tuple[float, float]] | None = None
    log_path: str | None = None
    notes: list[str] = field(default_factory=list)
    conditions: dict[str, Any] = field(default_factory=dict)   # heap, seed, timing scale...
    faults: list[dict[str, Any]] = field(default_factory=list)  # what the emulator applied, when


def first_after(events: list[ChannelEvent], kind: str, start: float, end: float,
                aid: str | None, predicate: Callable[[ChannelEvent], bool] | None = None
                ) -> ChannelEvent | None:
    for ev in sorted(events, key=lambda e: e.t):
        if ev.kind != kind or ev.t < start or ev.t >= end:
            continue
        if aid is not None and ev.aid is not None and ev.aid != aid:
            continue
        if predicate is None or predicate(ev):
            return ev
    return None


def _fix_entry(ev: ChannelEvent, truth: Callable[[float], tuple[float, float]] | None,
               end_of_hold: float) -> dict[str, Any]:
    fix = dict(ev.fix or {})
    entry: dict[str, Any] = {"method": fix.get("method"), "lat": fix.get("lat"),
                             "lon": fix.get("lon"), "acc": fix.get("acc"),
                             "at_s": round(ev.t - end_of_hold, 3)}
    if truth is not None and fix.get("lat") is not None and fix.get("lon") is not None:
        true_lat, true_lon = truth(ev.t)
        entry["error_m"] = round(haversine_m(fix["lat"], fix["lon"], true_lat, true_lon), 1)
    return entry


def alarm_report(obs: Observations, index: int) -> dict[str, Any]:
    trig = obs.triggers[index]
    end = obs.triggers[index + 1].end_of_hold if index + 1 < len(obs.triggers) else math.inf
    start = trig.end_of_hold
    # The press start is the earliest a channel could move: a dial before the end of the
    # hold would be a firmware bug that must show as a negative time, not vanish.
    search_from = trig.press_start
    times: dict[str, float | None] = {}

    def at(kind: str, predicate=None) -> ChannelEvent | None:
        return first_after(obs.events, kind, search_from, end, trig.aid, predicate)

    found = {
        "dial": at("dial"),
        "call_answered": at("call_answered"),
        "server_alarm": at("server_alarm"),
        "position": at("server_position", lambda e: (e.fix or {}).get("lat") is not None),
        "gnss": at("server_position", lambda e: (e.fix or {}).get("method") == "G"),
        "sms_delivered": at("sms_delivered"),
    }
    for channel in CHANNELS:
        ev = found[channel]
        times[channel] = None if ev is None else round(ev.t - start, 3)

    positions = [e for e in obs.events if e.kind == "server_position" and search_from <= e.t < end
                 and (e.aid is None or e.aid == trig.aid) and (e.fix or {}).get("lat") is not None]
    fixes: dict[str, Any] = {}
    if found["position"] is not None:
        fixes["first"] = _fix_entry(found["position"], obs.truth, start)
    if found["gnss"] is not None:
        fixes["first_gnss"] = _fix_entry(found["gnss"], obs.truth, start)
    if positions:
        fixes["last"] = _fix_entry(sorted(positions, key=lambda e: e.t)[-1], obs.truth, start)
    # GNSS time to first fix of the receiver start that served this alarm (emulator only)
    starts = [e for e in obs.events if e.kind == "gnss_start" and e.t < end
              and (found["gnss"] is None or e.t <= found["gnss"].t)]
    ttff = None
    if starts:
        last_start = max(starts, key=lambda e: e.t)
        ttff = {"ttff_s": last_start.detail.get("ttff_s"), "hot": last_start.detail.get("hot"),
                "started_s": round(last_start.t - start, 3)}
    return {
        "aid": trig.aid,
        "end_of_hold_s": round(start - obs.t0, 3),
        "gnss_ttff_s": ttff["ttff_s"] if ttff else None,
        "gnss_start": ttff,
        "channels_s": times,
        "fixes": fixes,
        "positions_at_server": len(positions),
        "calls_answered": sum(1 for e in obs.events if e.kind == "call_answered"
                              and search_from <= e.t < end),
        "sms_delivered": sum(1 for e in obs.events if e.kind == "sms_delivered"
                             and search_from <= e.t < end),
    }


def judge(obs: Observations, alarms: list[dict[str, Any]]) -> list[str]:
    """Every way the run missed the scenario's expectations, as readable sentences."""
    exp = obs.scenario.expect
    failures: list[str] = []
    expected_alarms = exp.alarms if exp.alarms is not None else len(obs.scenario.alarm_presses())
    if len(obs.triggers) != expected_alarms:
        failures.append(f"the handset raised {len(obs.triggers)} alarm(s), expected {expected_alarms}")
    if exp.alarms is not None and obs.server_alarm_count is not None \
            and obs.server_alarm_count != exp.alarms:
        failures.append(f"the server holds {obs.server_alarm_count} alarm(s) for the handset, "
                        f"expected exactly {exp.alarms}")
    for alarm in alarms:
        label = f"alarm {alarm['aid']}"
        for channel, limit in exp.within_s.items():
            got = alarm["channels_s"][channel]
            if got is None:
                failures.append(f"{label}: {channel} never happened (expected within {limit} s)")
            elif got > limit:
                failures.append(f"{label}: {channel} after {got:.3f} s, expected within {limit} s")
        for channel in exp.absent:
            got = alarm["channels_s"][channel]
            if got is not None:
                failures.append(f"{label}: {channel} happened at {got:.3f} s, expected never")
        last = alarm["fixes"].get("last")
        if exp.fix_method is not None:
            method = last["method"] if last else None
            if method != exp.fix_method:
                failures.append(f"{label}: best position at the server has method {method}, "
                                f"expected {exp.fix_method}")
        if exp.fix_error_max_m is not None:
            err = last.get("error_m") if last else None
            if err is None:
                failures.append(f"{label}: no position to compare with the truth")
            elif err > exp.fix_error_max_m:
                failures.append(f"{label}: position {err} m from the truth, "
                                f"expected within {exp.fix_error_max_m} m")
        if exp.calls_answered_min is not None and alarm["calls_answered"] < exp.calls_answered_min:
            failures.append(f"{label}: {alarm['calls_answered']} call(s) answered, "
                            f"expected at least {exp.calls_answered_min}")
        if exp.sms_delivered_min is not None and alarm["sms_delivered"] < exp.sms_delivered_min:
            failures.append(f"{label}: {alarm['sms_delivered']} SMS delivered, "
                            f"expected at least {exp.sms_delivered_min}")
    missing = missing_from_sequence(obs.log_events, list(exp.log_sequence))
    if missing:
        failures.append(f"device log: expected events in order {list(exp.log_sequence)}, "
                        f"missing from {missing!r} on")
    for event in exp.log_absent:
        if event in obs.log_events:
            failures.append(f"device log: {event} appeared, expected never")
    return failures


def missing_from_sequence(seen: list[str], wanted: list[str]) -> str | None:
    """The first wanted event not found (in order) in `seen`, or None if all are there."""
    position = 0
    for event in wanted:
        try:
            position = seen.index(event, position) + 1
        except ValueError:
            return event
    return None


def build_report(obs: Observations) -> dict[str, Any]:
    alarms = [alarm_report(obs, i) for i in range(len(obs.triggers))]
    failures = judge(obs, alarms)
    sc = obs.scenario
    return {
        "scenario": sc.name,
        "file": str(sc.path) if sc.path else None,
        "backend": obs.backend,
        "timing": sc.timing,
        "device": sc.device_id,
        "passed": not failures,
        "failures": failures,
        "alarms": alarms,
        "server_alarms": obs.server_alarm_count,
        "log": obs.log_path,
        "conditions": obs.conditions,
        "faults_applied": obs.faults,
        "notes": obs.notes,
    }


def medians(reports: list[dict[str, Any]]) -> dict[str, float | None]:
    """Median time per channel over the first alarm of each report (None if never seen)."""
    out: dict[str, float | None] = {}
    for channel in CHANNELS:
        values = [r["alarms"][0]["channels_s"][channel] for r in reports
                  if r["alarms"] and r["alarms"][0]["channels_s"][channel] is not None]
        out[channel] = round(statistics.median(values), 3) if values else None
    return out
