"""Run a scenario on a rig and turn what happened into a report.

    report = run_scenario(load_scenario("hil_tests/scenarios/alarm_outdoor.toml"))

Steps: start the rig, provision and power the handset, wait for READY (time 0 of
the scenario), schedule the faults, press the button as written, watch until every
expected channel has delivered (or the observation window ends), then judge
(report.build_report).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .emulated import EmulatedRig
from .errors import RigError
from .report import AlarmTrigger, ChannelEvent, Observations, build_report, missing_from_sequence
from .rig import Handset, Rig, RigEvent
from .scenario import Scenario

BOOT_TIMEOUT_S = {"fast": 30.0, "realistic": 90.0}
_NETWORK_KINDS = {"dial", "call_answered", "sms_delivered"}


def run_scenario(scenario: Scenario, workdir: Path | None = None, seed: int = 1,
                 on_event: Callable[[RigEvent], None] | None = None,
                 rig: Rig | None = None) -> dict[str, Any]:
    """Run one scenario on a fresh emulated rig (or on `rig`, e.g. a SerialRig)."""
    own_rig = rig is None
    if rig is None:
        rig = EmulatedRig(workdir, timing=scenario.timing, fast_scale=scenario.fast_scale,
                          seed=seed, police_answer_after_s=scenario.police_answer_after_s,
                          cells_csv=scenario.cells)
    unsubscribe = rig.events.subscribe(on_event) if on_event else None
    try:
        if own_rig:
            rig.start()
        scenario = fit_to_rig(rig, scenario)
        handset = prepare_handset(rig, scenario)
        return observe(rig, handset, scenario)
    finally:
        if unsubscribe:
            unsubscribe()
        if own_rig:
            rig.stop()


def prepare_handset(rig: Rig, scenario: Scenario) -> Handset:
    if isinstance(rig, EmulatedRig):
        track = make_track(scenario)
        handset = rig.add_handset(scenario.device_id, track=track, indoor=scenario.indoor,
                                  battery_mv=scenario.battery_mv, config=scenario.config,
                                  special_number=scenario.msisdn)
    else:
        handset = rig.handset()
    handset.power_on()
    return handset


def fit_to_rig(rig: Rig, scenario: Scenario) -> Scenario:
    """On a board the hold is what it was provisioned with: keep each press's margin
    over (or under) the scenario's hold, around the board's."""
    board_hold_ms = getattr(rig, "trigger_hold_ms", None)
    if board_hold_ms is None:
        return scenario
    shift = board_hold_ms / 1000.0 - scenario.trigger_hold_s()
    presses = tuple(dataclasses.replace(p, hold_s=max(0.0, p.hold_s + shift))
                    for p in scenario.presses)
    return dataclasses.replace(scenario, presses=presses,
                               config={**scenario.config, "trigger_hold_ms": board_hold_ms})


def make_track(scenario: Scenario):
    from .emulator.track import Track

    if scenario.track.is_fixed:
        return Track.fixed(scenario.track.lat, scenario.track.lon)
    return Track.from_nmea(scenario.track.nmea)


def observe(rig: Rig, handset: Handset, scenario: Scenario) -> dict[str, Any]:
    if handset.can_power_cycle:
        t0 = handset.log.expect("READY", timeout=BOOT_TIMEOUT_S[scenario.timing]).t
    else:
        t0 = time.monotonic()   # a board that was already running: it is idle now
    start_mark = rig.events.mark()
    for fault in scenario.faults:
        rig.inject(handset.device_id, fault.name, at_s=max(0.0, t0 + fault.at_s - time.monotonic()),
                   **fault.params)
    presses: list[tuple[float, float]] = []   # (press start, hold) as really done
    for press in scenario.presses:
        delay = t0 + press.at_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        presses.append((handset.press(press.hold_s), press.hold_s))
    last_press_end = presses[-1][0] + presses[-1][1] if presses else t0
    wait_until_done(rig, handset, scenario, start_mark, last_press_end)
    return build_report(collect(rig, handset, scenario, t0, start_mark))


def wait_until_done(rig: Rig, handset: Handset, scenario: Scenario, mark: int,
                    last_press_end: float) -> None:
    """Until every expected channel delivered and the expected log sequence is complete
    (and channels that must stay silent had their chance), or the window is over."""
    deadline = last_press_end + scenario.observe_s
    expect = scenario.expect
    wanted = set(expect.within_s)
    n_alarms = expect.alarms if expect.alarms is not None else len(scenario.alarm_presses())
    done = threading.Event()

    def check() -> bool:
        if n_alarms == 0 or not wanted or expect.absent:
            return False        # something must NOT happen: watch the whole window
        events = rig.events.snapshot(mark)
        triggers = [e for e in events if e.kind == "log" and e.device == handset.device_id
                    and e.data["line"].event == "ALARM"]
        if len(triggers) < n_alarms:
            return False
        last_trigger = triggers[-1].t
        seen: set[str] = set()
        for e in events:
            if e.t >= last_trigger - 5 and e.device in (handset.device_id, None):
                seen |= _channels_of(e)
        if not wanted <= seen:
            return False
        log_events = [ln.event for ln in handset.log.lines if ln.event]
        return missing_from_sequence(log_events, list(expect.log_sequence)) is None

    while time.monotonic() < deadline:
        if check():
            done.set()
            break
        time.sleep(0.05)
    # one more beat so events published in the same instant are in
    time.sleep(0.1)


def _channels_of(event: RigEvent) -> set[str]:
    """The report channels an event counts for (a GNSS position is also a position)."""
    if event.kind in _NETWORK_KINDS or event.kind == "server_alarm":
        return {event.kind}
    if event.kind == "server_position":
        fix = event.data.get("fix") or {}
        if fix.get("lat") is None:
            return set()
        return {"position", "gnss"} if fix.get("method") == "G" else {"position"}
    return set()


def collect(rig: Rig, handset: Handset, scenario: Scenario, t0: float, mark: int) -> Observations:
    events = [e for e in rig.events.snapshot() if e.device in (handset.device_id, None)]
    presses = [e for e in events if e.kind == "press" and e.source == "rig"]
    hold = scenario.trigger_hold_s()
    triggers: list[AlarmTrigger] = []
    for ev in events:
        if ev.kind != "log":
            continue
        line = ev.data["line"]
        if line.event != "ALARM" or line.get("resumed") == "1":
            continue
        before = [p for p in presses if p.t <= line.t]
        if not before:
            raise RigError(f"ALARM logged without a press before it: {line.raw}")
        start = before[-1].t
        triggers.append(AlarmTrigger(aid=line.get("aid") or "?", end_of_hold=start + hold,
                                     press_start=start))
    channel_events: list[ChannelEvent] = []
    sms_number = getattr(rig, "sms_number", None)
    # The emulator sees the ATD itself; on a board the DIAL line on the console is the
    # closest witness (the receiver only sees the call once the network rings it).
    network_dials = any(ev.kind == "dial" and ev.source == "network" for ev in events)
    for ev in events:
        if not network_dials and ev.kind == "log" and ev.data["line"].event == "DIAL":
            channel_events.append(ChannelEvent(ev.t, "dial", detail={"from": "device log"}))
        elif ev.kind in ("dial", "call_answered") and ev.source in ("network", "receiver"):
            channel_events.append(ChannelEvent(ev.t, ev.kind, detail=_plain(ev.data)))
        elif ev.kind == "sms_delivered" and (sms_number is None or ev.data.get("to") in (None, sms_number)):
            channel_events.append(ChannelEvent(ev.t, "sms_delivered", detail=_plain(ev.data)))
        elif ev.kind == "gnss_start" and ev.source == "network":
            channel_events.append(ChannelEvent(ev.t, "gnss_start", detail=_plain(ev.data)))
        elif ev.kind == "server_alarm":
            channel_events.append(ChannelEvent(ev.t, "server_alarm", aid=ev.data.get("aid")))
        elif ev.kind == "server_position":
            channel_events.append(ChannelEvent(ev.t, "server_position", aid=ev.data.get("aid"),
                                               fix=ev.data.get("fix")))
    try:
        server_alarms = len(rig.server_alarms(handset.device_id))
    except RigError as exc:
        server_alarms = None
        note = f"server alarms not read: {exc}"
    else:
        note = None
    obs = Observations(scenario=scenario, backend=rig.backend, t0=t0, triggers=triggers,
                       events=channel_events,
                       log_events=[ln.event for ln in handset.log.lines if ln.event],
                       server_alarm_count=server_alarms, truth=truth_function(handset),
                       log_path=str(handset.log.path) if handset.log.path else None)
    if note:
        obs.notes.append(note)
    obs.faults = [{"name": e.data.get("name"), "at_s": round(e.t - t0, 3)}
                  for e in events if e.kind == "fault" and e.source == "network"]
    if isinstance(rig, EmulatedRig):
        obs.conditions = {"heap": rig.heap, "seed": rig.seed,
                          "timing_scale": rig.firmware_time_scale}
    server = getattr(rig, "server", None)
    for error in getattr(server, "server_errors", []):
        obs.notes.append(f"server error met by the rig (retried): {error}")
    return obs


def truth_function(handset: Handset):
    """Host time -> the handset's true (lat, lon), from the emulator's track (None on a board)."""
    fixed = getattr(handset, "truth", None)   # a board on a bench: where the bench is
    if fixed is not None:
        return lambda _t: fixed
    modem = getattr(handset, "modem", None)
    if modem is None:
        return None
    track_start = time.monotonic() - modem.uptime_s

    def truth(t: float) -> tuple[float, float]:
        pos = modem.track.at(t - track_start)
        return pos.lat, pos.lon
    return truth


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if isinstance(v, str | int | float | bool | type(None))}
