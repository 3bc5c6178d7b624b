"""Around alarms: heartbeats reach the server, a rattling button never alarms, the
police acknowledgement reaches her and closing ends the alarm.

Emulated always; on a board with `-m serial` (hil_tests/rig.toml).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from rig_testkit import RIG_TOML, needs_firmware

from tgd_rig.emulated import EmulatedRig
from tgd_rig.errors import ExpectTimeout
from tgd_rig.rig import Handset, Rig

HOLD_MS = 600


@pytest.fixture
def bench(backend, rig_workdir) -> Iterator[tuple[Rig, str]]:
    """(rig, factory of an idle handset); the handset's hold is HOLD_MS (emulated) or the board's."""
    if backend == "serial":
        from tgd_rig.serial_backend import SerialRig

        rig = SerialRig.from_toml(RIG_TOML)
        rig.start()
        try:
            yield rig, backend
        finally:
            rig.stop()
        return
    needs_firmware()
    with EmulatedRig(rig_workdir, timing="fast", police_answer_after_s=0.3) as rig:
        yield rig, backend


def idle_handset(rig: Rig, device_id: str, **config) -> tuple[Handset, float]:
    """A handset that is READY, and its hold in seconds."""
    if isinstance(rig, EmulatedRig):
        handset = rig.add_handset(device_id, config={"trigger_hold_ms": HOLD_MS, **config})
        handset.power_on()
        handset.expect("READY", timeout=30)
        return handset, HOLD_MS / 1000
    handset = rig.handset()
    if handset.can_power_cycle:
        handset.power_cut()
        time.sleep(1.0)
        handset.power_on()
        handset.expect("READY", timeout=120)
    return handset, rig.trigger_hold_ms / 1000


def test_heartbeat_arrives_at_the_server(bench):
    rig, backend = bench
    if backend == "serial":
        pytest.skip("a board beats every heartbeat_interval_s (30 min by default): "
                    "check last_heartbeat_at on the server's device page")
    # 60 s is the shortest interval the firmware accepts; the fast timing scales it.
    handset = rig.add_handset("HB0001", battery_mv=3900, config={"heartbeat_interval_s": 60})
    handset.power_on()
    handset.expect("READY", timeout=30)
    first = handset.expect("DATA", timeout=20, type="heartbeat", status=200)
    handset.expect("DATA", timeout=20, type="heartbeat", status=200)   # and the next, on its period
    rig.events.wait_for(lambda e: e.kind == "server_message" and e.device == "HB0001"
                        and e.data.get("type") == "heartbeat", 10, what="a heartbeat at the server")
    device = rig.server.request("GET", "/api/v1/devices/HB0001", rig.server.tech_token)
    assert device["last_heartbeat_at"] is not None
    assert device["battery_mv"] == 3900
    assert first.get("seq") is not None


def test_bounces_and_brushes_never_alarm(bench):
    rig, _ = bench
    handset, hold_s = idle_handset(rig, "BN0001")
    mark = handset.log.mark()
    before = len(rig.server_alarms(handset.device_id))
    # a rattle: contacts of 20 ms (under the 30 ms debounce), in bursts shorter than the
    # hold so that a briefly starved VM cannot merge them into one
    for _ in range(3):
        handset.bounce([0.02, 0.06] * int(0.6 * hold_s / 0.08))
        time.sleep(0.3)
    # brushes in a bag: presses of half the hold, each ending with a bounce
    for _ in range(3):
        handset.press(hold_s * 0.5)
        handset.bounce([0.005, 0.01, 0.005])
        time.sleep(0.3)
    with pytest.raises(ExpectTimeout):
        handset.log.expect("ALARM", timeout=2.0, since=mark)
    assert not handset.log.find("DIAL", since=mark)
    assert len(rig.server_alarms(handset.device_id)) == before


def test_a_bouncy_long_press_makes_exactly_one_alarm(bench):
    rig, _ = bench
    handset, hold_s = idle_handset(rig, "BN0002")
    mark = handset.log.mark()
    events_mark = rig.events.mark()
    handset.bounce([0.005, 0.004, 0.006, 0.003])    # bounce on the way down
    handset.press(hold_s + 0.5)                      # then held
    handset.bounce([0.004, 0.005, 0.003])           # and bounce on the way up
    alarm = handset.log.expect("ALARM", timeout=5, since=mark)
    rig.wait_server_alarm(handset.device_id, timeout=60, since=events_mark)
    with pytest.raises(ExpectTimeout):
        handset.log.expect("ALARM", timeout=1.5)     # nothing after the first
    mine = [a for a in rig.server_alarms(handset.device_id) if a["aid"] == alarm.get("aid")]
    assert len(mine) == 1
    if not isinstance(rig, EmulatedRig):
        rig.close_alarm(mine[0]["id"])                # leave the board idle


def test_police_acknowledgement_reaches_her_and_closing_ends_the_alarm(bench):
    """Help is coming: the operator's acknowledgement gives the discreet vibration, and
    closing the alarm on the console ends it on the handset."""
    rig, _ = bench
    handset, hold_s = idle_handset(rig, "AK0001")
    mark = handset.log.mark()
    events_mark = rig.events.mark()
    handset.press(hold_s + 0.5)
    aid = handset.log.expect("ALARM", timeout=5, since=mark).get("aid")
    alarm = rig.wait_server_alarm(handset.device_id, timeout=60, since=events_mark)
    assert alarm.data["aid"] == aid
    assert not handset.log.find("VIBRATE", since=mark, pattern="help")   # not before the ack
    rig.ack_alarm(alarm.data["alarm_id"])
    handset.log.expect("VIBRATE", timeout=60, since=mark, pattern="help")
    rig.close_alarm(alarm.data["alarm_id"], note="HIL: help arrived")
    handset.log.expect("ALARM_END", timeout=60, since=mark, aid=aid, reason="closed")
